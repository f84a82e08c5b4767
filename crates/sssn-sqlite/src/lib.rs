//! A durable, embedded store for sssn channels: [`SqliteStore`] keeps every channel's
//! whole state in one SQLite file, so a single node survives crashes and restarts
//! without losing anything it acknowledged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sssn::channel::WorkQueueChannel;
//! use sssn_sqlite::SqliteStore;
//!
//! # async fn demo() -> sssn::Result<()> {
//! let store = Arc::new(SqliteStore::open("channels.db")?);
//! let jobs = WorkQueueChannel::new("jobs").store(store).build();
//! jobs.start().await?;
//! jobs.write("producer", &"resize image 42").await?; // durable when it returns
//! # Ok(()) }
//! ```
//!
//! # How data flows
//!
//! * **Writes** (appends, cursor reads, which store the cursor, claims, acks, nacks,
//!   extensions, removal, stats, which first applies due delays and expired leases) are
//!   jobs sent to one **writer thread** that owns the read-write connection. It takes a
//!   job, drains whatever else is queued (up to [`SqliteOptions::max_batch`]) and runs
//!   them all in one `BEGIN IMMEDIATE … COMMIT`. With [`Synchronous::Full`] a **flusher
//!   thread** then syncs the log once for every commit made meanwhile (**group commit**)
//!   while the writer runs the next batch. Only once a commit is on the disk are each
//!   channel's head and counters updated, the appended entries sent to the channel's feed
//!   (push subscribers), and the callers answered. A caller or subscriber therefore never
//!   sees a write a crash could take back.
//! * **Pure reads** (`range`, used by subscribers catching up, and `dead_letters`) run on
//!   pooled read-only connections in `spawn_blocking`; WAL lets them proceed while the
//!   writer commits, they see everything acknowledged before they started, and they wait
//!   for the sync of any commit their snapshot holds.
//! * **Time** is read on the caller's side with [`sssn::clock`], so lease deadlines and
//!   nack delays are stored as epoch milliseconds and mean the same after a restart.
//! * **Opening** a channel reads one row (its head sequence and counters): it costs the
//!   same for an empty channel and for one holding millions of messages.
//!
//! Deleted rows (acks, retention, removal) free pages that new rows reuse, so a steady
//! flow keeps the file at the size of its backlog; after a burst the writer hands large
//! runs of free pages back to the file system (`auto_vacuum = INCREMENTAL`).
//!
//! # Errors
//!
//! Opening fails with an error naming the file and the cause when the directory is
//! missing or not writable, the file is already open in another `SqliteStore`, the file
//! is not an sssn database ([`ErrorKind::InvalidArgument`](sssn::ErrorKind)), or it was
//! written by a newer schema version. A full disk (or [`SqliteOptions::max_size`])
//! fails the writes of the batch it hits with [`ErrorKind::Store`](sssn::ErrorKind);
//! nothing committed before is affected and writes succeed again once space is free.
//!
//! # Durability
//!
//! [`Synchronous::Full`] (the default) acknowledges a write once the write-ahead log is
//! flushed to the disk (the flusher thread syncs it after each group commit, with
//! `fdatasync`, into a log grown ahead of use: see the crate README): it survives a power
//! loss. [`Synchronous::Normal`] survives a
//! process crash but may lose the last commits on a power loss. The layout of the file is
//! described in the `schema` module; its version is kept in `PRAGMA user_version` and
//! older layouts are migrated on open.

mod channel;
mod claim_rows;
mod durability;
mod error;
mod flusher;
mod history;
mod inbox;
mod log_file;
mod ops;
mod options;
mod schema;
mod store;
mod writer;

pub use options::{SqliteOptions, Synchronous};
pub use store::SqliteStore;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<SqliteStore>();
        assert_send_sync::<SqliteOptions>();
    }
}
