//! Writes a periodic channel accepted survive a SIGKILL: its raw buffer lives in the store.
//!
//! The test re-runs its own binary as the child (selected by an environment variable):
//! the child opens a SQLite store, writes 100 items to a periodic channel whose loop would
//! only process them an hour later, prints their ids, and waits to be killed. The parent
//! kills it with SIGKILL, opens the file again, drains the channel and finds every item
//! stored, under the id its write returned.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sssn::channel::PeriodicChannel;
use sssn_sqlite::SqliteStore;

const CHILD: &str = "SSSN_PERIODIC_CRASH_CHILD";
const ITEMS: usize = 100;

fn channel(store: Arc<SqliteStore>) -> sssn::PeriodicChannel {
    PeriodicChannel::buffered("ingest")
        .period(Duration::from_secs(3600))
        .store(store)
        .build()
}

fn child(path: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(path).unwrap());
        let ch = channel(store);
        ch.start().await.unwrap();
        // The loop's first cycle runs at start; let it pass, so nothing is processed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..ITEMS {
            let id = ch.write("sensor", &i).await.unwrap();
            println!("{id}");
        }
        println!("written");
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

#[test]
fn accepted_periodic_writes_survive_sigkill() {
    if let Ok(path) = std::env::var(CHILD) {
        child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("periodic.db");
    let mut kid = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "accepted_periodic_writes_survive_sigkill",
            "--nocapture",
        ])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ids = Vec::new();
    for line in BufReader::new(kid.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "written" {
            break;
        }
        if line.len() == 36 {
            ids.push(line);
        }
    }
    assert_eq!(ids.len(), ITEMS, "the child acknowledged every write");
    // SIGKILL: no drain, no destructor.
    kid.kill().unwrap();
    kid.wait().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let ch = channel(store);
        ch.start().await.unwrap();
        assert_eq!(ch.stats().await.unwrap().raw_buffered, ITEMS as u64);
        ch.drain(Some(Duration::from_secs(30))).await.unwrap();
        let stored: Vec<String> = ch
            .entries_after("check", 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.message.id.clone())
            .collect();
        assert_eq!(
            stored, ids,
            "every accepted write, once, in order, under its id"
        );
    });
}
