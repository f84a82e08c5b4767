//! The write-ahead log as the writer thread keeps it: flushed by the writer after every
//! group commit, checkpointed once the replies are out, and grown ahead of SQLite with
//! written zeros so that a flush overwrites blocks the file already has.
//!
//! **Why the writer flushes the log itself.** SQLite's own `synchronous = FULL` calls
//! `fsync` on the log at every commit: the bundled build leaves `HAVE_FDATASYNC` unset, so
//! its `fdatasync` is `fsync`. An `fsync` also writes the file's new modification time,
//! which on ext4 is a journal commit (a second write and cache flush) on every commit. So
//! SQLite runs at `NORMAL`, which in WAL mode drops exactly one sync, the log's at each
//! commit: a checkpoint still syncs the log before copying it into the database and the
//! database before the log may restart, and a restarted log's header is still synced. With
//! [`Synchronous::Full`](crate::Synchronous::Full) the flusher thread puts that one sync
//! back ([`LogSync`]): [`File::sync_data`] of the log (`fdatasync` on Linux, `F_FULLFSYNC`
//! on macOS) after `COMMIT`, before anything of the batch is published or answered. Read
//! connections wait until what their snapshot holds is durable ([`crate::durability`]),
//! so no reader sees a commit before it is on the disk, as with SQLite's FULL, where a
//! commit becomes visible after its sync.
//!
//! **Why the log is grown ahead.** A flush of a file that grew must also commit its new
//! size and block allocation, a journal commit again; PostgreSQL avoids it by writing its
//! log segments full of zeros before use. The writer does the same: when SQLite's frames
//! come within [`GROW_AHEAD`] of the file's end, it appends [`GROW_STEP`] of zeros and
//! syncs them, between batches (never while SQLite writes). Zeros, not `fallocate`: ext4
//! marks fallocated blocks unwritten, so the first write into them changes metadata too.
//! SQLite reads past them: a frame counts only if its salts and checksum match the log
//! header. After a checkpoint SQLite restarts the log from its start and overwrites the
//! same blocks; it truncates a restarted log only above `journal_size_limit`, which the
//! growth never passes.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

/// Grow the log when fewer bytes than this remain past SQLite's last frame.
pub(crate) const GROW_AHEAD: u64 = 2 << 20;
/// Bytes of zeros appended at a time.
pub(crate) const GROW_STEP: u64 = 4 << 20;
/// The log file's header, before the first frame.
const LOG_HEADER: u64 = 32;
/// A frame's header, before its page.
const FRAME_HEADER: u64 = 24;

/// The writer's handle on the log: flushes, checkpoints and growth.
pub(crate) struct LogFile {
    path: PathBuf,
    /// Opened at the first flush (SQLite creates the log); SQLite keeps its own descriptor,
    /// and a sync of either flushes the same file. The log carries no locks, so closing
    /// this one releases nothing of SQLite's.
    file: Option<File>,
    /// Whether every commit is flushed (`Synchronous::Full`).
    flush_commits: bool,
    frame_bytes: u64,
    /// Frames in the log after the last commit, as SQLite's WAL hook reports them.
    frames: Arc<AtomicU64>,
    checkpoint_frames: u64,
    /// The log is not grown past this many bytes (`journal_size_limit`).
    limit: u64,
    /// The file is known to be at least this long.
    grown_to: u64,
    /// Log syncs made (commits and growth), for tests.
    syncs: Arc<AtomicU64>,
}

impl LogFile {
    /// Takes over the checkpoints of `conn` (SQLite's automatic checkpoint is a WAL hook,
    /// which this one replaces) and, with `flush_commits`, the flush of each commit.
    pub(crate) fn attach(
        conn: &mut Connection,
        db_path: &Path,
        flush_commits: bool,
        checkpoint_pages: u32,
        limit: u64,
    ) -> rusqlite::Result<Self> {
        let page: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let frames = Arc::new(AtomicU64::new(0));
        let reported = frames.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            reported.store(u64::try_from(pages).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))?;
        let mut path = db_path.as_os_str().to_owned();
        path.push("-wal");
        Ok(Self {
            path: path.into(),
            file: None,
            flush_commits,
            frame_bytes: page + FRAME_HEADER,
            frames,
            checkpoint_frames: u64::from(checkpoint_pages),
            limit,
            grown_to: 0,
            syncs: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The count of log syncs made (by the writer and the flusher).
    pub(crate) fn sync_counter(&self) -> Arc<AtomicU64> {
        self.syncs.clone()
    }

    /// What the flusher makes commits durable with, when commits are flushed at all.
    pub(crate) fn commit_sync(&self) -> Option<LogSync> {
        self.flush_commits
            .then(|| LogSync::new(self.path.clone(), self.syncs.clone()))
    }

    /// Between batches: a checkpoint once the log holds `checkpoint_pages` frames (as
    /// SQLite's automatic checkpoint does, but after the batch's replies), then growth.
    /// Failures are logged: a checkpoint is retried after the next commit, and without
    /// growth SQLite extends the log itself.
    pub(crate) fn maintain(&mut self, conn: &Connection) {
        if self.frames.load(Ordering::Relaxed) >= self.checkpoint_frames {
            let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            if let Err(e) = outcome {
                tracing::warn!(log = %self.path.display(), error = %e, "checkpoint failed");
            }
        }
        if self.flush_commits
            && let Err(e) = self.grow()
        {
            tracing::warn!(log = %self.path.display(), error = %e, "growing the log failed");
        }
    }

    /// Appends zeros when SQLite's frames come close to the end of the file.
    fn grow(&mut self) -> std::io::Result<()> {
        let end = LOG_HEADER + self.frames.load(Ordering::Relaxed) * self.frame_bytes;
        if end + GROW_AHEAD <= self.grown_to || self.grown_to >= self.limit {
            return Ok(());
        }
        let target = (end + GROW_AHEAD + GROW_STEP).min(self.limit);
        let file = self.file()?;
        // Never below the file's end: everything there may be SQLite's.
        let len = file.metadata()?.len();
        if len < target {
            file.seek(SeekFrom::Start(len))?;
            let zeros = vec![0u8; 256 << 10];
            let mut at = len;
            while at < target {
                let n = (target - at).min(zeros.len() as u64);
                file.write_all(&zeros[..n as usize])?;
                at += n;
            }
            file.sync_data()?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.grown_to = len.max(target);
        Ok(())
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }
}

/// The flusher's handle on the log: it syncs what the writer has committed.
pub(crate) struct LogSync {
    path: PathBuf,
    /// Opened at the first sync: SQLite creates the log at the first commit, before it.
    file: Option<File>,
    syncs: Arc<AtomicU64>,
}

impl LogSync {
    /// Syncs of the log at `path`, counted in `syncs`.
    pub(crate) fn new(path: PathBuf, syncs: Arc<AtomicU64>) -> Self {
        Self {
            path,
            file: None,
            syncs,
        }
    }

    /// Makes every commit written to the log so far durable.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(OpenOptions::new().read(true).write(true).open(&self.path)?);
        }
        self.file.as_ref().expect("just opened").sync_data()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
