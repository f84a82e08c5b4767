//! The writer thread: every write goes through it, grouped into shared transactions.
//!
//! Callers hand the thread a [`Job`] (a closure over a [`Txn`]) and wait on a oneshot
//! reply. The thread takes one job, drains whatever else is queued (up to `max_batch`;
//! [`crate::batching`] has the short wait for more), runs them all inside one
//! `BEGIN IMMEDIATE … COMMIT`, and only then publishes the effects: new head sequences
//! and counters, the feed of appended entries (in sequence order), and finally the
//! replies. Many concurrent writers therefore share one flush, and nobody (caller or
//! subscriber) sees a write that a crash could take back.
//!
//! If the shared transaction fails, it is rolled back and each job is run again alone,
//! so one failing operation (a full disk may hit everyone, a bad row only its owner)
//! fails only the callers it concerns; when another program holds the file's write lock,
//! every job of the batch fails at once (each would only wait out the busy timeout
//! again). Nothing is published for a rolled-back transaction.
//!
//! A commit is answered only once it is durable: with `Synchronous::Full` the thread
//! flushes the log itself after `COMMIT` (see [`crate::log_file`]). If that flush fails,
//! nothing of the batch is published, its callers get the error, and the writer refuses
//! every later operation: after a failed flush the system may have dropped the unwritten
//! pages, so a later successful flush would not prove the earlier commits are on the disk.
//! Reopening the store recovers from what the disk holds.
//!
//! When idle (or every 1,024 batches) the thread checks the free pages left by deleted
//! rows and, if they are a large share of the file, hands them back to the file system
//! (`PRAGMA incremental_vacuum`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sssn::store::Entry;
use sssn::{Error, ErrorKind, Result};
use tokio::sync::oneshot;

use crate::batching::Batching;
use crate::channel::{ChanShared, Counts};
use crate::error::{db_error, writer_stopped};
use crate::log_file::{FlushGate, LogFile};

/// One operation for the writer thread.
pub(crate) trait Job: Send {
    /// Runs inside the batch transaction. `Err` means the database failed and the whole
    /// batch is rolled back; the job keeps its own (logical) outcome for [`Job::finish`].
    fn run(&mut self, txn: &mut Txn<'_>) -> rusqlite::Result<()>;

    /// Replies to the caller: with the outcome of the last `run`, or with `failure`.
    fn finish(self: Box<Self>, failure: Option<Error>);

    /// The operation's name, for errors.
    fn action(&self) -> &'static str;
}

struct Call<T, F> {
    action: &'static str,
    f: F,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnMut(&mut Txn<'_>) -> rusqlite::Result<Result<T>> + Send,
{
    fn run(&mut self, txn: &mut Txn<'_>) -> rusqlite::Result<()> {
        self.out = Some((self.f)(txn)?);
        Ok(())
    }

    fn finish(self: Box<Self>, failure: Option<Error>) {
        let outcome = match failure {
            Some(e) => Err(e),
            None => self.out.unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Internal,
                    format!("{}: the writer finished a job it never ran", self.action),
                ))
            }),
        };
        // The caller may have given up waiting; the write is committed regardless.
        let _ = self.reply.send(outcome);
    }

    fn action(&self) -> &'static str {
        self.action
    }
}

/// A channel's changes within one transaction, published only after the commit.
struct Pending {
    shared: Arc<ChanShared>,
    head: u64,
    counts: Counts,
    committed_head: u64,
    committed_counts: Counts,
    feed: Vec<Entry>,
    /// The exact earliest due time, when this transaction worked it out (see
    /// [`ChanShared::next_due`]); published after the counters.
    next_due: Option<u64>,
}

/// The open transaction a job runs in: the connection plus the per-channel state the
/// batch has changed so far (heads, counters, entries to announce).
pub(crate) struct Txn<'c> {
    pub(crate) conn: &'c Connection,
    pending: Vec<Pending>,
}

impl<'c> Txn<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            pending: Vec::new(),
        }
    }

    fn slot(&mut self, shared: &Arc<ChanShared>) -> &mut Pending {
        let i = match self
            .pending
            .iter()
            .position(|p| Arc::ptr_eq(&p.shared, shared))
        {
            Some(i) => i,
            None => {
                let head = shared.head.load(Ordering::Acquire);
                let counts = shared.counts();
                self.pending.push(Pending {
                    shared: shared.clone(),
                    head,
                    counts,
                    committed_head: head,
                    committed_counts: counts,
                    feed: Vec::new(),
                    next_due: None,
                });
                self.pending.len() - 1
            }
        };
        &mut self.pending[i]
    }

    /// The channel's head sequence as of this point of the transaction.
    pub(crate) fn head(&mut self, shared: &Arc<ChanShared>) -> u64 {
        self.slot(shared).head
    }

    /// The channel's counters as of this point of the transaction, for update.
    pub(crate) fn counts(&mut self, shared: &Arc<ChanShared>) -> &mut Counts {
        &mut self.slot(shared).counts
    }

    /// Records an appended entry: it becomes the head and is announced after the commit.
    pub(crate) fn appended(&mut self, shared: &Arc<ChanShared>, entry: Entry) {
        let p = self.slot(shared);
        p.head = entry.seq;
        p.feed.push(entry);
    }

    /// No delayed message comes due and no lease runs out before this time, as of this
    /// point of the transaction (a lower bound; see [`ChanShared::next_due`]).
    pub(crate) fn next_due(&mut self, shared: &Arc<ChanShared>) -> u64 {
        match self.slot(shared).next_due {
            Some(t) => t,
            None => shared.next_due.load(Ordering::Acquire),
        }
    }

    /// Something comes due at `t` (a lease, a delayed nack). The shared bound is lowered
    /// at once: a bound that is too low is always safe, even if this batch rolls back.
    pub(crate) fn due_at(&mut self, shared: &Arc<ChanShared>, t: u64) {
        shared.next_due.fetch_min(t, Ordering::AcqRel);
        let p = self.slot(shared);
        p.next_due = p.next_due.map(|d| d.min(t));
    }

    /// The exact earliest due time, to publish once committed (raising the bound).
    pub(crate) fn set_next_due(&mut self, shared: &Arc<ChanShared>, t: u64) {
        self.slot(shared).next_due = Some(t);
    }

    /// Writes the heads and counters of changed channels (before the commit).
    fn flush(&mut self) -> rusqlite::Result<()> {
        for p in &self.pending {
            if p.head == p.committed_head && p.counts == p.committed_counts {
                continue;
            }
            let c = &p.counts;
            self.conn
                .prepare_cached(
                    "UPDATE channels SET head = ?2, stored = ?3, ready = ?4, delayed = ?5, \
                     in_flight = ?6, acknowledged = ?7, dead = ?8 WHERE chan = ?1",
                )?
                .execute((
                    p.shared.chan,
                    int(p.head),
                    int(c.stored),
                    int(c.ready),
                    int(c.delayed),
                    int(c.in_flight),
                    int(c.acknowledged),
                    int(c.dead),
                ))?;
        }
        Ok(())
    }

    /// After the commit: heads, counters, then the feed, in sequence order.
    fn publish(self) {
        for p in self.pending {
            p.shared.set_counts(p.counts);
            p.shared.head.store(p.head, Ordering::Release);
            // After the counters: whoever sees the raised bound sees the messages it
            // made ready (`ChanShared::nothing_claimable` reads in the other order).
            if let Some(t) = p.next_due {
                p.shared.next_due.store(t, Ordering::Release);
            }
            for entry in p.feed {
                // No subscriber is not an error.
                let _ = p.shared.feed.send(entry);
            }
        }
    }
}

/// Seconds and sequences are `u64` in the API and `INTEGER` (`i64`) in SQLite.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The handle callers use to reach the writer thread. Dropping it stops the thread after
/// the jobs already queued, and waits for it (so the file is closed and unlocked).
pub(crate) struct Writer {
    path: PathBuf,
    tx: mpsc::Sender<Box<dyn Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. `lock` is held until the thread has closed the
    /// connection.
    pub(crate) fn start(
        path: &Path,
        conn: Connection,
        mut log: LogFile,
        lock: File,
        max_batch: usize,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let thread_path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("sssn-sqlite-writer".to_owned())
            .spawn(move || {
                run(&thread_path, &conn, &mut log, &rx, max_batch);
                drop(log);
                drop(conn);
                drop(lock);
            })
            .map_err(|e| {
                Error::store(
                    format!(
                        "cannot start the writer thread of SQLite store {}",
                        path.display()
                    ),
                    e,
                )
            })?;
        Ok(Self {
            path: path.to_owned(),
            tx,
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next batch transaction and returns its outcome once committed.
    pub(crate) async fn call<T, F>(&self, action: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Txn<'_>) -> rusqlite::Result<Result<T>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Call {
            action,
            f,
            out: None,
            reply,
        });
        self.tx.send(job).map_err(|_| writer_stopped(&self.path))?;
        rx.await.map_err(|_| writer_stopped(&self.path))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Batches between checks of the free-page count.
const VACUUM_CHECK_EVERY: u32 = 1024;

fn run(
    path: &Path,
    conn: &Connection,
    log: &mut LogFile,
    rx: &mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut batching = Batching::default();
    let mut since_vacuum_check = 0u32;
    // Set once a flush failed: every later operation is refused with it.
    let mut failed: Option<String> = None;
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle: a good moment to give space back.
                if since_vacuum_check > 0 && failed.is_none() {
                    since_vacuum_check = 0;
                    vacuum_if_sparse(path, conn);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        batch.push(first);
        batching.gather(rx, &mut batch, max_batch);
        if let Some(cause) = &failed {
            for job in batch.drain(..) {
                let action = job.action();
                job.finish(Some(refused(path, action, cause)));
            }
            continue;
        }
        match commit(conn, log, &mut batch) {
            Ok((txn, flush)) => {
                batching.committed(batch.len(), flush);
                txn.publish();
                for job in batch.drain(..) {
                    job.finish(None);
                }
            }
            Err(Failure::Flush(e)) => {
                let cause = flush_failed(path, &e, &mut failed);
                for job in batch.drain(..) {
                    let action = job.action();
                    job.finish(Some(refused(path, action, &cause)));
                }
            }
            Err(Failure::Db(e)) if batch.len() == 1 => {
                let job = batch.pop().expect("one job");
                let action = job.action();
                job.finish(Some(db_error(path, action, e)));
            }
            Err(Failure::Db(e)) if waits_for_others(&e) => {
                // Another connection holds the file: every job would wait and fail again.
                for job in batch.drain(..) {
                    let action = job.action();
                    job.finish(Some(db_error(path, action, clone_error(&e))));
                }
            }
            Err(Failure::Db(_)) => {
                // Find out which jobs fail on their own; the others still commit.
                for mut job in batch.drain(..) {
                    if let Some(cause) = &failed {
                        let action = job.action();
                        job.finish(Some(refused(path, action, cause)));
                        continue;
                    }
                    match commit(conn, log, std::slice::from_mut(&mut job)) {
                        Ok((txn, _)) => {
                            txn.publish();
                            job.finish(None);
                        }
                        Err(Failure::Flush(e)) => {
                            let cause = flush_failed(path, &e, &mut failed);
                            let action = job.action();
                            job.finish(Some(refused(path, action, &cause)));
                        }
                        Err(Failure::Db(e)) => {
                            let action = job.action();
                            job.finish(Some(db_error(path, action, e)));
                        }
                    }
                }
            }
        }
        if failed.is_some() {
            continue;
        }
        log.maintain(conn);
        since_vacuum_check += 1;
        if since_vacuum_check >= VACUUM_CHECK_EVERY {
            since_vacuum_check = 0;
            vacuum_if_sparse(path, conn);
        }
    }
}

/// Why a batch did not commit durably.
enum Failure {
    /// The database refused it; it was rolled back.
    Db(rusqlite::Error),
    /// It committed, but flushing the log failed: it may not be on the disk.
    Flush(std::io::Error),
}

/// Runs `jobs` in one transaction and flushes it; on success returns it ready to publish,
/// with the time the flush took. Readers take no snapshot in between (they would see a
/// commit not yet on the disk).
fn commit<'c>(
    conn: &'c Connection,
    log: &mut LogFile,
    jobs: &mut [Box<dyn Job>],
) -> std::result::Result<(Txn<'c>, Duration), Failure> {
    let gate = log.gate();
    let _readers_wait = gate.as_ref().map(FlushGate::flush_pending);
    let txn = execute(conn, jobs).map_err(Failure::Db)?;
    let started = Instant::now();
    log.flush().map_err(Failure::Flush)?;
    Ok((txn, started.elapsed()))
}

/// Records the first flush failure (logged once) and returns its description.
fn flush_failed(path: &Path, e: &std::io::Error, failed: &mut Option<String>) -> String {
    let cause = format!(
        "flushing the write-ahead log to the disk failed ({e}); the last commit may not be \
         durable, so the store refuses every write until it is reopened"
    );
    tracing::error!(store = %path.display(), error = %e, "flushing the write-ahead log failed");
    failed.get_or_insert(cause).clone()
}

fn refused(path: &Path, action: &str, cause: &str) -> Error {
    Error::new(
        ErrorKind::Store,
        format!("{action} on SQLite store {}: {cause}", path.display()),
    )
}

/// Whether `e` is a lock held by another connection (retrying job by job would only
/// wait out the busy timeout once per job).
fn waits_for_others(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A copy of a SQLite failure for each caller it concerns.
fn clone_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// Runs `jobs` in one transaction; on success returns it committed, ready to publish.
fn execute<'c>(conn: &'c Connection, jobs: &mut [Box<dyn Job>]) -> rusqlite::Result<Txn<'c>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut txn = Txn::new(conn);
    let outcome = (|| {
        for job in jobs.iter_mut() {
            job.run(&mut txn)?;
        }
        txn.flush()?;
        conn.execute_batch("COMMIT")
    })();
    match outcome {
        Ok(()) => Ok(txn),
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

/// Free pages that trigger giving space back (4 MiB of 4 KiB pages)...
const SPARSE_MIN_FREE: i64 = 1024;
/// ...when they are also at least this share of the file (1/4).
const SPARSE_RATIO: i64 = 4;
/// Most pages handed back per pass, so one pass never stalls writers for long.
const VACUUM_STEP: i64 = 4096;

/// Deleted rows leave free pages that later inserts reuse, so a steady flow does not
/// grow the file. After a burst, hand a large surplus back to the file system.
fn vacuum_if_sparse(path: &Path, conn: &Connection) {
    let pages =
        |name: &str| -> rusqlite::Result<i64> { conn.pragma_query_value(None, name, |r| r.get(0)) };
    let outcome = (|| -> rusqlite::Result<()> {
        let free = pages("freelist_count")?;
        let total = pages("page_count")?;
        if free >= SPARSE_MIN_FREE && free * SPARSE_RATIO >= total {
            let mut stmt = conn.prepare(&format!(
                "PRAGMA incremental_vacuum({})",
                free.min(VACUUM_STEP)
            ))?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            // Copy the result into the file now (it only shrinks at a checkpoint).
            let mut stmt = conn.prepare("PRAGMA wal_checkpoint(PASSIVE)")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        tracing::warn!(store = %path.display(), error = %e, "incremental vacuum failed");
    }
}
