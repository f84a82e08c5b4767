//! Acks, retention and removal delete rows, and the file does not grow without bound:
//! freed pages are reused by new rows, and a large surplus left by a burst is handed
//! back to the file system once the writer is idle.

use std::path::Path;
use std::time::Duration;

use sssn::message::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::{ChannelSpec, ChannelStorage, Settle, Store};
use sssn_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn message(n: u64) -> ChannelMessage {
    let mut m =
        ChannelMessage::with_data("w", &serde_json::json!({"n": n, "pad": "x".repeat(200)}))
            .unwrap();
    m.id = format!("m{n}");
    m
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Pages the database uses, as a reader sees it (committed state, WAL included).
fn pages(path: &Path) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let total = conn
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    let free = conn
        .pragma_query_value(None, "freelist_count", |r| r.get(0))
        .unwrap();
    (total, free)
}

async fn work_queue(store: &SqliteStore) -> ChannelStorage {
    store
        .open_channel(&ChannelSpec::with_claims("q", ClaimPolicy::default()))
        .await
        .unwrap()
}

/// Writes, claims and acks `rounds` batches of 100 (backlog ≤ 100).
async fn steady(ch: &ChannelStorage, from: u64, rounds: u64) {
    let queue = ch.claims.as_ref().unwrap();
    for r in 0..rounds {
        let base = from + r * 100;
        ch.log
            .append((base..base + 100).map(message).collect())
            .await
            .unwrap();
        let claimed = queue.claim("w", 100).await.unwrap();
        let ids: Vec<&str> = claimed.iter().map(|c| c.message.id.as_str()).collect();
        let settled = queue.settle("w", &ids, Settle::Ack).await.unwrap();
        assert_eq!(settled.done.len(), 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_flow_reuses_freed_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steady.db");
    let store = SqliteOptions::new()
        .synchronous(Synchronous::Normal)
        .open(&path)
        .unwrap();
    let ch = work_queue(&store).await;
    steady(&ch, 0, 100).await; // 10,000 messages through
    let (warm_pages, _) = pages(&path);
    steady(&ch, 10_000, 400).await; // 40,000 more
    let (pages_after, free) = pages(&path);
    let db = file_len(&path);
    let wal = file_len(&wal_path(&path));
    println!(
        "after 10,000 messages: {warm_pages} pages; after 50,000: {pages_after} pages \
         ({free} free), file {db} bytes, WAL {wal} bytes"
    );
    assert!(
        pages_after <= warm_pages + 16,
        "the database grew from {warm_pages} to {pages_after} pages under a steady flow"
    );
    assert!(wal <= 64 << 20, "the WAL grew to {wal} bytes");
    assert_eq!(ch.log.stats().await.unwrap().stored, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn space_left_by_a_burst_is_given_back_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burst.db");
    let store = SqliteOptions::new()
        .synchronous(Synchronous::Normal)
        .open(&path)
        .unwrap();
    let ch = work_queue(&store).await;
    for chunk in 0..40u64 {
        ch.log
            .append((chunk * 500..(chunk + 1) * 500).map(message).collect())
            .await
            .unwrap();
    }
    let (full, _) = pages(&path);
    assert_eq!(ch.log.clear().await.unwrap(), 20_000);
    let (_, freed) = pages(&path);
    assert!(freed * 2 > full, "{freed} of {full} pages free after clear");
    // The writer vacuums after a second without work; give it up to 30 s.
    let mut now = full;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = pages(&path).0;
        if now * 4 < full {
            break;
        }
    }
    println!(
        "burst of 20,000 messages: {full} pages; cleared: {freed} free; after idle: {now} \
         pages, file {} bytes",
        file_len(&path)
    );
    assert!(now * 4 < full, "{now} pages left of {full}");
    // Still a working store.
    steady(&ch, 100_000, 2).await;
}

/// With `Synchronous::Full` the writer grows the log ahead of SQLite with zeros (so that a
/// commit's flush overwrites blocks the file has), and once checkpoints restart the log
/// from its start the same file is reused: it stops growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_grown_ahead_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let store = SqliteOptions::new()
        .checkpoint_pages(200)
        .open(&path)
        .unwrap();
    let ch = work_queue(&store).await;
    steady(&ch, 0, 2).await;
    let grown = file_len(&wal_path(&path));
    // A few hundred KiB of frames so far; the file is ahead by megabytes.
    assert!(grown >= 4 << 20, "log of {grown} bytes");
    // Megabytes of frames more, so many checkpoints of 200 pages (under 1 MiB of log):
    // the log restarts from its start every time, so the file needs no more room.
    steady(&ch, 200, 100).await;
    assert_eq!(file_len(&wal_path(&path)), grown, "the log grew again");
    assert_eq!(
        ch.claims
            .as_ref()
            .unwrap()
            .claim("w", 10)
            .await
            .unwrap()
            .len(),
        0
    );
    drop(ch);
    drop(store);
    // Zeros past the last frame are no frames: the file opens with everything in it.
    let store = SqliteStore::open(&path).unwrap();
    let ch = work_queue(&store).await;
    ch.log
        .append((0..3).map(|n| message(1_000_000 + n)).collect())
        .await
        .unwrap();
    assert_eq!(
        ch.claims
            .as_ref()
            .unwrap()
            .claim("w", 10)
            .await
            .unwrap()
            .len(),
        3
    );
}

/// `Synchronous::Normal` does not flush commits, so it has nothing to grow the log for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_leaves_the_log_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("normal.db");
    let store = SqliteOptions::new()
        .synchronous(Synchronous::Normal)
        .open(&path)
        .unwrap();
    let ch = work_queue(&store).await;
    steady(&ch, 0, 2).await;
    let len = file_len(&wal_path(&path));
    assert!(len < 1 << 20, "log of {len} bytes");
}
