//! The database layout, its version, and migrations.
//!
//! An sssn database is marked by `PRAGMA application_id` = [`APPLICATION_ID`] and carries
//! its layout version in `PRAGMA user_version`. Opening a file checks both before touching
//! anything: an empty file becomes a new database, an older layout is migrated in one
//! transaction, and a file of another application or of a newer layout is refused with an
//! error naming it (nothing in it is changed).
//!
//! Tables (one file holds many channels; `chan` is the channel's number in `channels`):
//!
//! * `channels`: name, kind, head sequence and the counters `stats` reports, so opening
//!   a channel reads one row whatever the size of its log;
//! * `messages`: the log. Message fields are columns; `content` is the exact JSON text the
//!   message was written with. `state` is NULL on channels without claims, else 0 ready,
//!   1 delayed (claimable from `due`), 2 in flight (lease runs out at `due`, held by
//!   `claimer`); `attempts` counts deliveries; `stored_at` is the arrival time (epoch ms)
//!   that retention compares;
//! * `cursors`: the last sequence given to each shared reader;
//! * `dead_letters`: messages that exceeded `max_deliveries` or were rejected, with
//!   attempts, reason and time, in arrival order (`n`), and on a mailbox the recipient
//!   whose inbox gave it up;
//! * `inboxes`, `inbox_claims` (layout 2): claims per recipient (mailboxes), see
//!   `crate::inbox`.
//!
//! Indexes make every per-message operation a B-tree lookup: `(chan, seq)` for reads,
//! `(chan, id)` for duplicate detection and settling by id, and `(chan, state, due, seq)`
//! (only rows with claims) for "oldest claimable", "due delayed" and "expired lease".

use std::path::Path;

use rusqlite::Connection;
use sssn::{Error, ErrorKind, Result};

use crate::error::db_error;

/// `PRAGMA application_id` of an sssn database ("SSSN").
pub(crate) const APPLICATION_ID: i32 = 0x5353_534E;

/// Layout version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i32 = 2;

/// `MIGRATIONS[v]` upgrades a database from layout `v` to `v + 1` (0 is an empty file).
const MIGRATIONS: &[&str] = &[V1, V2];

const V1: &str = "
CREATE TABLE channels (
    chan         INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    claims       INTEGER NOT NULL,
    head         INTEGER NOT NULL DEFAULT 0,
    stored       INTEGER NOT NULL DEFAULT 0,
    ready        INTEGER NOT NULL DEFAULT 0,
    delayed      INTEGER NOT NULL DEFAULT 0,
    in_flight    INTEGER NOT NULL DEFAULT 0,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    dead         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    chan           INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    id             TEXT NOT NULL,
    timestamp      REAL NOT NULL,
    sender_id      TEXT NOT NULL,
    content        TEXT NOT NULL,
    metadata       TEXT,
    correlation_id TEXT,
    reply_to       TEXT,
    recipient_id   TEXT,
    stored_at      INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    state          INTEGER,
    due            INTEGER NOT NULL DEFAULT 0,
    claimer        TEXT
);
CREATE UNIQUE INDEX messages_seq ON messages (chan, seq);
CREATE UNIQUE INDEX messages_id ON messages (chan, id);
CREATE INDEX messages_claimable ON messages (chan, state, due, seq) WHERE state IS NOT NULL;
CREATE TABLE cursors (
    chan   INTEGER NOT NULL,
    reader TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (chan, reader)
) WITHOUT ROWID;
CREATE TABLE dead_letters (
    n              INTEGER PRIMARY KEY,
    chan           INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    id             TEXT NOT NULL,
    timestamp      REAL NOT NULL,
    sender_id      TEXT NOT NULL,
    content        TEXT NOT NULL,
    metadata       TEXT,
    correlation_id TEXT,
    reply_to       TEXT,
    recipient_id   TEXT,
    attempts       INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    dead_at        INTEGER NOT NULL
);
CREATE INDEX dead_letters_chan ON dead_letters (chan, n);
CREATE INDEX dead_letters_id ON dead_letters (chan, id);
";

/// Claims per recipient (mailboxes): each recipient's inbox (`inboxes`: how far it has
/// examined the log) and its claim state per message (`inbox_claims`: 0 ready, 1 delayed,
/// 2 in flight, with `due` and `attempts`, as `messages.state` on a shared queue); the
/// channel's scope (`claim_scope`: 0 shared, 1 per recipient); the recipient a dead letter
/// came from; and `messages_recipient` to find a recipient's messages (and those to
/// everyone) on channels whose messages carry no shared claim state. A channel stored
/// before keeps its scope (shared, or no claims).
const V2: &str = "
ALTER TABLE channels ADD COLUMN claim_scope INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN recipient TEXT;
CREATE INDEX messages_recipient ON messages (chan, recipient_id, seq) WHERE state IS NULL;
CREATE TABLE inboxes (
    chan      INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    scanned   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chan, recipient)
) WITHOUT ROWID;
CREATE TABLE inbox_claims (
    chan      INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    state     INTEGER NOT NULL,
    due       INTEGER NOT NULL DEFAULT 0,
    attempts  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chan, recipient, seq)
) WITHOUT ROWID;
CREATE INDEX inbox_claims_due ON inbox_claims (chan, state, due, seq);
CREATE INDEX inbox_claims_seq ON inbox_claims (chan, seq);
";

/// Checks that `conn` holds an sssn database this build can use, creating or migrating
/// it as needed, and leaves it in WAL mode.
pub(crate) fn prepare(conn: &Connection, path: &Path) -> Result<()> {
    let fail = |e| db_error(path, "open", e);
    // The first read of the header: a file that is not SQLite fails here (SQLITE_NOTADB).
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(fail)?;
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(fail)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(fail)?;
    let fresh = app_id == 0 && tables == 0;
    if !fresh && app_id != APPLICATION_ID {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "open on SQLite store {}: the file is not an sssn database: it is a SQLite \
                 database of another application (application_id {app_id:#x}, {tables} \
                 schema objects); nothing in it was changed",
                path.display()
            ),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "open on SQLite store {}: the database was written by a newer sssn-sqlite \
                 (schema version {version}; this build reads up to {SCHEMA_VERSION}); \
                 upgrade sssn-sqlite to open it, nothing in it was changed",
                path.display()
            ),
        ));
    }
    if fresh {
        // Must be set before the first table exists; lets the writer hand freed pages back
        // to the file system (see `writer::vacuum_if_sparse`).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(fail)?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "open on SQLite store {}: the file system does not support write-ahead \
                 logging (journal_mode stayed '{mode}')",
                path.display()
            ),
        ));
    }
    if version < SCHEMA_VERSION {
        migrate(conn, version).map_err(|e| db_error(path, "schema migration", e))?;
    }
    Ok(())
}

fn migrate(conn: &Connection, from: i32) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let run = || -> rusqlite::Result<()> {
        for step in &MIGRATIONS[from as usize..] {
            conn.execute_batch(step)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute_batch("COMMIT")
    };
    run().inspect_err(|_| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of layout 1 (before claims per recipient) with a mailbox stored as a log:
    /// it migrates, and the mailbox opens with claims per recipient over its messages.
    #[tokio::test]
    async fn a_layout_1_mailbox_migrates_and_gains_claims_per_recipient() {
        use sssn::channel::MailboxChannel;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO channels (chan, name, kind, claims, head, stored) \
                 VALUES (1, 'inbox', 'mailbox', 0, 3, 3);
                 INSERT INTO messages (chan, seq, id, timestamp, sender_id, content, \
                 recipient_id, stored_at) VALUES \
                 (1, 1, 'to-alice', 1.0, 'w', '{\"data\":1}', 'alice', 1000), \
                 (1, 2, 'to-bob', 2.0, 'w', '{\"data\":2}', 'bob', 2000), \
                 (1, 3, 'to-all', 3.0, 'w', '{\"data\":3}', NULL, 3000);",
            )
            .unwrap();
        }
        let store = crate::SqliteStore::open(&path).unwrap();
        let inbox = MailboxChannel::new("inbox").store(store).build();
        inbox.start().await.unwrap();
        let ids = |c: Vec<sssn::Claimed>| {
            c.into_iter()
                .map(|c| c.message.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(inbox.claim("alice", 10).await.unwrap()),
            ["to-alice", "to-all"]
        );
        assert_eq!(
            ids(inbox.claim("bob", 10).await.unwrap()),
            ["to-bob", "to-all"]
        );
        assert_eq!(
            inbox.read("bob", 10).await.unwrap().len(),
            2,
            "shared reads as before"
        );
        inbox.stop().await;
        let conn = Connection::open(&path).unwrap();
        let version: i32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn one_migration_per_version() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
    }

    #[test]
    fn claim_queries_use_the_claimable_index() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V2).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.join("; ")
        };
        for sql in [
            "SELECT rowid FROM messages WHERE chan = 1 AND state = 0 ORDER BY due, seq LIMIT 5",
            "SELECT rowid FROM messages WHERE chan = 1 AND state = 2 AND due <= 9 ORDER BY due, seq",
            "UPDATE messages SET state = 0, due = 0 WHERE chan = 1 AND state = 1 AND due <= 9",
            "SELECT min(due) FROM messages WHERE chan = 1 AND state = 2",
        ] {
            let p = plan(sql);
            assert!(p.contains("messages_claimable"), "{sql}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
        }
        let p = plan("SELECT seq FROM messages WHERE chan = 1 AND seq > 5 ORDER BY seq");
        assert!(p.contains("messages_seq"), "{p}");
        let p = plan("DELETE FROM messages WHERE chan = 1 AND id = 'x' AND state = 2");
        assert!(p.contains("messages_id"), "{p}");
        // Claims per recipient: a recipient's messages, those to everyone, its inbox rows.
        for (sql, index) in [
            (
                "SELECT seq FROM messages WHERE chan = 1 AND recipient_id = 'a' \
                 AND state IS NULL AND seq > 5 ORDER BY seq LIMIT 3",
                "messages_recipient",
            ),
            (
                "SELECT seq FROM messages WHERE chan = 1 AND recipient_id IS NULL \
                 AND state IS NULL AND seq > 5 ORDER BY seq LIMIT 3",
                "messages_recipient",
            ),
            (
                "SELECT recipient, seq FROM inbox_claims WHERE chan = 1 AND state = 2 \
                 AND due <= 9 ORDER BY due, seq",
                "inbox_claims_due",
            ),
            (
                "DELETE FROM inbox_claims INDEXED BY inbox_claims_seq WHERE chan = 1 AND seq = 4",
                "inbox_claims_seq",
            ),
        ] {
            let p = plan(sql);
            assert!(p.contains(index), "{sql}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
        }
    }
}
