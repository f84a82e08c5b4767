//! The store conformance suite, unchanged, on a three-node JetStream cluster on loopback
//! with every stream and claims consumer at three replicas (`?replicas=3`), for
//! nats-server 2.15 (`on_2_15::…`) and 2.9 (`on_2_9::…`). One cluster per release is
//! shared by the tests of this file, each test under its own prefix.

mod common;

mod on_2_15 {
    sssn::conformance_tests!(real_time, async {
        crate::common::try_cluster_store(crate::common::Release::V2_15, crate::function_name!())
            .await
    });
}

mod on_2_9 {
    sssn::conformance_tests!(real_time, async {
        crate::common::try_cluster_store(crate::common::Release::V2_9, crate::function_name!())
            .await
    });
}
