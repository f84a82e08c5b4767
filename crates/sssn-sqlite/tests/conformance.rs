//! The store conformance suite on `SqliteStore`, in real time (the writer is a thread),
//! each test on its own database file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sssn::conformance::{Harness, RealTimeHarness};
use sssn::store::Store;
use sssn_sqlite::SqliteStore;

/// A real-time harness that keeps the test's temporary directory alive.
struct SqliteHarness {
    inner: RealTimeHarness,
    _dir: tempfile::TempDir,
}

impl SqliteHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path().join("conformance.db")).expect("open store");
        Self {
            inner: RealTimeHarness::new(Arc::new(store)),
            _dir: dir,
        }
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    fn store(&self) -> Arc<dyn Store> {
        self.inner.store()
    }

    async fn advance(&self, d: Duration) {
        self.inner.advance(d).await;
    }
}

sssn::conformance_tests!(real_time, async { Some(SqliteHarness::new()) });

#[tokio::test]
async fn claim_timeout_changes_while_running_on_sqlite() {
    sssn::conformance::claim_timeout_changes_while_running(&SqliteHarness::new()).await;
}

/// One commit swaps the versions: scans find one too (JetStream does not promise it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_never_hides_the_id_from_scans_on_sqlite() {
    sssn::conformance::replace_never_hides_the_id_from_scans(&SqliteHarness::new()).await;
}

/// Refreshes and queries on two threads: no query misses the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refresh_never_hides_the_record_on_two_threads() {
    sssn::conformance::discovery_refresh_never_hides_the_record(&SqliteHarness::new()).await;
}
