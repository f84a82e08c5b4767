//! A subset of the store conformance suite, unchanged, on a three-node JetStream cluster
//! on loopback with every stream and claims consumer at three replicas (`?replicas=3`),
//! for nats-server 2.15 (`on_2_15::…`) and 2.9 (`on_2_9::…`). One cluster per release is
//! shared by the tests of this file, each test under its own prefix.
//!
//! The subset: claims and acks, ordering, idempotent appends, batches, fan-out and push.
//! Left out:
//!
//! * tests timed by 1 s leases (lease expiry, fencing after expiry, nack, nack with delay,
//!   extend, reject, max deliveries): on the 2-core test machine under load an R3 round
//!   trip can take a good part of a second, and they then failed with the lease run out
//!   (`StaleClaim`) — they measure the machine, not the store. `cluster_faults.rs` covers
//!   claims, leases and redeliveries on the cluster with 2 s leases.
//! * tests whose last step reads, right after a write, through a replica that may not
//!   have applied it yet (see "Replicated streams do not give read-your-writes yet" in the
//!   crate README): `reopen_keeps_contents` (acknowledged count read by direct get from a
//!   lagging replica), `periodic_channel_pulls` and `evict_does_not_shift_cursors` (a
//!   shared read's R1 consumer on a follower that had not applied the last write),
//!   `max_deliveries_dead_letters` (the redrive's direct get of the dead letter found
//!   nothing; a fetch from the new R3 claims consumer got a 503 before its leader was
//!   elected).

mod common;

macro_rules! cluster_subset {
    ($release:expr) => {
        sssn::conformance_tests!(@each real_time,
            async { crate::common::try_cluster_store($release, crate::function_name!()).await };
            ack_consumes, claim_order_and_limit, acked_never_reappears,
            claims_do_not_hide_from_shared_readers, duplicate_ids_are_idempotent,
            broadcast_readers_see_everything, subscribe_and_unsubscribe,
            lagging_subscriber_catches_up, write_batch_and_entries_after);
    };
}

mod on_2_15 {
    cluster_subset!(crate::common::Release::V2_15);
}

mod on_2_9 {
    cluster_subset!(crate::common::Release::V2_9);
}
