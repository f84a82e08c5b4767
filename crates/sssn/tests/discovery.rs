//! Discovery on the memory store with two worker threads: refreshes and queries run in
//! parallel, so a refresh that left the record missing for a moment would be caught.

use std::sync::Arc;

use sssn::conformance::{
    RealTimeHarness, discovery_refresh_never_hides_the_record,
    replace_never_hides_the_id_from_scans,
};
use sssn::store::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_in_parallel_with_queries_never_hide_the_record() {
    let h = RealTimeHarness::new(Arc::new(MemoryStore::new()));
    for _ in 0..5 {
        discovery_refresh_never_hides_the_record(&h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaces_in_parallel_with_store_reads_never_hide_the_id() {
    let h = RealTimeHarness::new(Arc::new(MemoryStore::new()));
    for _ in 0..5 {
        replace_never_hides_the_id_from_scans(&h).await;
    }
}
