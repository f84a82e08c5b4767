//! The store conformance suite, unchanged, on `JetStreamStore` against the shared server
//! at 127.0.0.1:4222 (skipped with a message when nothing listens there). Each test runs
//! under its own stream prefix, deleted when the test ends.

mod common;

sssn::conformance_tests!(real_time, async {
    common::shared_store("conformance test").await
});
