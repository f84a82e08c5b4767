//! Bad input when opening, and a full disk: each gets a clear error naming the file and
//! the cause, and nothing already committed is damaged.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sssn::ErrorKind;
use sssn::message::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::{ChannelSpec, ChannelStorage, Settle, Store};
use sssn_sqlite::{SqliteOptions, SqliteStore};

fn spec(id: &str) -> ChannelSpec {
    ChannelSpec::with_claims(id, ClaimPolicy::default())
}

async fn channel(store: &SqliteStore, id: &str) -> ChannelStorage {
    store.open_channel(&spec(id)).await.expect("open channel")
}

fn message(n: usize, bytes: usize) -> ChannelMessage {
    ChannelMessage::with_data("w", &serde_json::json!({"n": n, "pad": "x".repeat(bytes)})).unwrap()
}

async fn stored_ids(path: &Path, id: &str) -> Vec<String> {
    let store = SqliteStore::open(path).expect("reopen");
    let ch = channel(&store, id).await;
    ch.log
        .range(0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.clone())
        .collect()
}

#[tokio::test]
async fn a_text_file_is_not_an_sssn_database_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not an sssn database"), "{msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ann');")
            .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("another application"), "{msg}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "ann");
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no sssn table was added");
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let id = {
        let store = SqliteStore::open(&path).unwrap();
        let ch = channel(&store, "q").await;
        ch.log.append(vec![message(1, 10)]).await.unwrap()[0]
            .message
            .id
            .clone()
    };
    let set_version = |v: i32| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", v).unwrap();
    };
    set_version(99);
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("newer") && msg.contains("schema version 99"),
        "{msg}"
    );
    set_version(2);
    assert_eq!(stored_ids(&path, "q").await, vec![id]);
}

#[tokio::test]
async fn a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no").join("such").join("dir").join("q.db");
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
}

#[tokio::test]
async fn a_directory_is_not_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let first = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert!(err.to_string().contains("already open"), "{err}");
    drop(first);
    SqliteStore::open(&path).expect("free again once the first store is dropped");
}

#[tokio::test]
async fn store_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let store = SqliteStore::open_url(&format!("sqlite:{}", path.display())).unwrap();
    assert_eq!(store.describe(), format!("sqlite:{}", path.display()));
    drop(store);
    let err = SqliteStore::open_url("postgres://db/x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn a_channel_keeps_whether_it_has_claims() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        channel(&store, "jobs").await;
        let err = store
            .open_channel(&ChannelSpec::log("jobs"))
            .await
            .expect_err("refused while open");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
    let store = SqliteStore::open(&path).unwrap();
    let err = store
        .open_channel(&ChannelSpec::log("jobs"))
        .await
        .expect_err("refused after reopening");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.to_string().contains("created with shared claims"),
        "{err}"
    );
    let err = store
        .open_channel(&ChannelSpec::with_claims_per_recipient(
            "jobs",
            ClaimPolicy::default(),
        ))
        .await
        .expect_err("a work queue does not become a mailbox");
    assert!(
        err.to_string().contains("with claims per recipient"),
        "{err}"
    );
    // A log-only channel gains claims per recipient (a mailbox stored before they existed),
    // and keeps them.
    store
        .open_channel(&ChannelSpec::log("inbox"))
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let per_recipient = ChannelSpec::with_claims_per_recipient("inbox", ClaimPolicy::default());
    assert!(
        store
            .open_channel(&per_recipient)
            .await
            .unwrap()
            .claims
            .is_some()
    );
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let err = store
        .open_channel(&ChannelSpec::log("inbox"))
        .await
        .expect_err("the inboxes stay");
    assert!(
        err.to_string().contains("with claims per recipient"),
        "{err}"
    );
    // Same capabilities (another kind with claims, another lease): fine.
    store
        .open_channel(&ChannelSpec::with_claims(
            "jobs",
            ClaimPolicy::with_lease(std::time::Duration::from_secs(5)),
        ))
        .await
        .expect("claims again");
}

/// Appends 1 KiB messages one by one until the store refuses; returns the ids it
/// acknowledged and the error.
async fn fill(ch: &ChannelStorage) -> (Vec<String>, sssn::Error) {
    let mut acked = Vec::new();
    for n in 0..1_000_000 {
        match ch.log.append(vec![message(n, 1024)]).await {
            Ok(entries) => acked.push(entries[0].message.id.clone()),
            Err(e) => return (acked, e),
        }
    }
    panic!("the store never filled up");
}

#[tokio::test]
async fn a_size_limit_fails_writes_like_a_full_disk_and_keeps_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    let acked = {
        let store = SqliteOptions::new()
            .max_size(256 * 1024)
            .open(&path)
            .unwrap();
        let ch = channel(&store, "q").await;
        let mut feed = ch.log.feed();
        let (acked, err) = fill(&ch).await;
        assert!(acked.len() > 50, "{} writes before full", acked.len());
        // Subscribers saw exactly the committed appends, not the one that failed.
        let mut announced = Vec::new();
        while let Ok(e) = feed.try_recv() {
            announced.push(e.message.id.clone());
        }
        assert_eq!(announced, acked);
        assert_eq!(ch.log.head(), acked.len() as u64);
        assert_eq!(err.kind(), ErrorKind::Store, "{err}");
        let msg = err.to_string();
        eprintln!("error: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("SQLITE_FULL"), "{msg}");
        // Reads and settling still work; freeing space lets writes through again.
        let queue = ch.claims.as_ref().unwrap();
        let claimed = queue.claim("w", 10).await.unwrap();
        let ids: Vec<&str> = claimed.iter().map(|c| c.message.id.as_str()).collect();
        assert_eq!(
            queue.settle("w", &ids, Settle::Ack).await.unwrap().done,
            ids
        );
        ch.log
            .append(vec![message(0, 1024)])
            .await
            .expect("space freed by acks is reused");
        acked
    };
    let stored = stored_ids(&path, "q").await;
    assert_eq!(stored.len(), acked.len() - 10 + 1);
    assert_eq!(
        stored[..acked.len() - 10],
        acked[10..],
        "nothing committed was lost"
    );
}

/// A tiny tmpfs, unmounted on drop.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount(options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn remount(&self, options: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_and_keeps_committed_data() {
    let Some(disk) = TinyDisk::mount("size=640k") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_full_disk_fails_writes_clearly: cannot mount a tmpfs here"
        );
        return;
    };
    let path = disk.path().join("full.db");
    let acked = {
        let store = SqliteStore::open(&path).unwrap();
        let ch = channel(&store, "q").await;
        let (acked, err) = fill(&ch).await;
        assert!(acked.len() > 20, "{} writes before full", acked.len());
        assert_eq!(err.kind(), ErrorKind::Store, "{err}");
        let msg = err.to_string();
        eprintln!("error: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("append on SQLite store"), "{msg}");
        assert!(msg.contains("disk is full"), "{msg}");
        acked
    };
    let stored = stored_ids(&path, "q").await;
    assert_eq!(
        stored, acked,
        "every acknowledged write survived, nothing else"
    );
}

#[tokio::test]
async fn a_read_only_directory_is_named_and_its_database_kept() {
    let Some(disk) = TinyDisk::mount("size=4m") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_read_only_directory_is_named: cannot mount a tmpfs here"
        );
        return;
    };
    let path = disk.path().join("ro.db");
    let id = {
        let store = SqliteStore::open(&path).unwrap();
        let ch = channel(&store, "q").await;
        ch.log.append(vec![message(1, 10)]).await.unwrap()[0]
            .message
            .id
            .clone()
    };
    std::fs::remove_file(disk.path().join("ro.db.lock")).unwrap();
    assert!(disk.remount("ro"), "remount read-only");
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("read-only"), "{msg}");
    assert!(disk.remount("rw"), "remount read-write");
    assert_eq!(stored_ids(&path, "q").await, vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_locked_by_another_program_fails_writes_clearly_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let store = SqliteOptions::new()
        .busy_timeout(std::time::Duration::from_millis(200))
        .open(&path)
        .unwrap();
    let ch = channel(&store, "q").await;
    let first = ch.log.append(vec![message(0, 10)]).await.unwrap();
    // Another program (say the sqlite3 shell) takes the write lock and keeps it.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let attempts = (1..4).map(|n| {
        let ch = ch.clone();
        tokio::spawn(async move { ch.log.append(vec![message(n, 10)]).await })
    });
    for attempt in attempts {
        let err = attempt.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("locked by another connection"), "{msg}");
    }
    other.execute_batch("COMMIT").unwrap();
    let next = ch.log.append(vec![message(9, 10)]).await.unwrap();
    let stored: Vec<_> = ch
        .log
        .range(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.clone())
        .collect();
    assert_eq!(
        stored,
        vec![first[0].message.id.clone(), next[0].message.id.clone()]
    );
    assert_eq!(ch.log.head(), 2, "failed appends used no sequence");
}
