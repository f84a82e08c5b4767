//! The store conformance suite, unchanged, on `JetStreamStore` against the shared server
//! at 127.0.0.1:4222 (nats-server 2.9.10 on the test machines; skipped with one line per
//! test when nothing listens there). Each test runs under its own stream prefix, deleted
//! when the test ends. `conformance_2_15.rs` runs the same suite on nats-server 2.15.

mod common;

sssn::conformance_tests!(real_time, async {
    common::try_shared_store(function_name!()).await
});
