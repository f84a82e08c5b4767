//! The store conformance suite on the memory store, with paused time.

sssn::conformance_tests!(paused, async {
    Some(sssn::conformance::MemoryHarness::default())
});
