//! [`SqliteOptions`]: how a [`SqliteStore`](crate::SqliteStore) opens its file.

use std::path::Path;
use std::time::Duration;

use sssn::Result;

use crate::SqliteStore;

/// How hard the store works to make a commit survive a power loss (SQLite's
/// `PRAGMA synchronous` levels; SQLite itself always runs at `NORMAL`, and with `Full` a
/// flusher thread adds the flush of each group commit).
///
/// Both levels survive a crash of the process: a write acknowledged to its caller is in
/// the write-ahead log before the call returns. They differ on a power loss or an
/// operating-system crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Synchronous {
    /// `FULL` (the default): the write-ahead log is flushed to the disk (`fdatasync`;
    /// `F_FULLFSYNC` on macOS) after every commit and before any of it is answered or
    /// visible to readers, so an acknowledged write also survives a power loss, provided
    /// the disk honours flushes. Group commit shares one flush among every commit made
    /// while the one before was being flushed.
    #[default]
    Full,
    /// `NORMAL`: the log is flushed only at checkpoints. Acknowledged writes survive a
    /// process crash, but the last commits before a power loss or an OS crash may roll
    /// back (the database stays consistent). Much cheaper per commit.
    Normal,
}

/// Options of a [`SqliteStore`]. Chain the setters, then [`open`](Self::open):
///
/// ```no_run
/// use sssn_sqlite::{SqliteOptions, Synchronous};
/// # fn main() -> sssn::Result<()> {
/// let store = SqliteOptions::new()
///     .synchronous(Synchronous::Normal)
///     .max_size(1 << 30)
///     .open("/var/lib/app/channels.db")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of each commit (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Largest size the database file may reach, in bytes (default: no limit). A write
    /// that would grow the file past it fails with a "database is full" error, like a
    /// full disk, and nothing already committed is affected.
    pub max_size: Option<u64>,
    /// Most operations the writer thread groups into one transaction (default 512).
    pub max_batch: usize,
    /// Idle read-only connections kept for reads that do not write (default 4).
    pub read_connections: usize,
    /// How long a connection waits for a lock held by another connection (default 5 s).
    pub busy_timeout: Duration,
    /// Pages (4 KiB each) the write-ahead log may hold before the writer copies them into
    /// the database file (`PRAGMA wal_autocheckpoint`, default 10,000, about 40 MiB).
    /// Fewer, larger checkpoints copy a page that is written and soon deleted again (a
    /// claimed and acknowledged message) once instead of many times; a larger log costs
    /// disk space and a little more time to replay when opening after a crash.
    pub checkpoint_pages: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            max_size: None,
            max_batch: 512,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            checkpoint_pages: 10_000,
        }
    }
}

impl SqliteOptions {
    /// The defaults: `synchronous = FULL`, no size limit, batches of up to 512 operations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the durability of each commit.
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Caps the size of the database file at `bytes`.
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Sets how many operations one transaction may group (at least 1).
    #[must_use]
    pub fn max_batch(mut self, operations: usize) -> Self {
        self.max_batch = operations.max(1);
        self
    }

    /// Sets how many idle read-only connections are kept.
    #[must_use]
    pub fn read_connections(mut self, connections: usize) -> Self {
        self.read_connections = connections;
        self
    }

    /// Sets how long a connection waits for a lock.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets how many log pages trigger a checkpoint (at least 1).
    #[must_use]
    pub fn checkpoint_pages(mut self, pages: u32) -> Self {
        self.checkpoint_pages = pages.max(1);
        self
    }

    /// Opens (creating if needed) the database at `path` with these options.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, self)
    }
}
