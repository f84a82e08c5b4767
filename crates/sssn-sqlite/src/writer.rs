//! The writer thread: every write goes through it, grouped into shared transactions.
//!
//! Callers hand the thread a [`Job`] (a closure over a [`Txn`]) and wait on a oneshot
//! reply. The thread takes one job and whatever else is queued (up to `max_batch`), runs
//! them all inside one `BEGIN IMMEDIATE … COMMIT`, and only once that is durable are the
//! effects published: new head sequences and counters, the feed of appended entries (in
//! sequence order), and finally the replies. Many concurrent writers therefore share one
//! flush, and nobody (caller or subscriber) sees a write that a crash could take back.
//!
//! If the shared transaction fails, it is rolled back and each job is run again alone,
//! so one failing operation (a full disk may hit everyone, a bad row only its owner)
//! fails only the callers it concerns; when another program holds the file's write lock,
//! every job of the batch fails at once (each would only wait out the busy timeout
//! again). Nothing is published for a rolled-back transaction.
//!
//! A commit is answered only once it is durable: with `Synchronous::Full` the writer hands
//! it to the flusher thread ([`crate::flusher`]), which syncs the log (see
//! [`crate::log_file`]) and then publishes and answers it, while the writer goes on with
//! the next batch. The next transaction therefore starts from the writer's own view of
//! its last commit ([`ChanShared::last_commit`]), not from the published one. If a flush
//! fails, nothing of the batches it covered is published, their callers get the error,
//! and the writer refuses every later operation. Reopening the store recovers from what
//! the disk holds.
//!
//! When idle (or every 1,024 batches) the thread checks the free pages left by deleted
//! rows and, if they are a large share of the file, hands them back to the file system
//! (`PRAGMA incremental_vacuum`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use sssn::store::Entry;
use sssn::{Error, ErrorKind, Result};
use tokio::sync::oneshot;

use crate::channel::{ChanShared, Counts};
use crate::durability::Durability;
use crate::error::{db_error, writer_stopped};
use crate::flusher::Flusher;
use crate::log_file::LogFile;

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
    /// The shared bound when the transaction committed: publishing raises it only if no
    /// later transaction lowered it meanwhile.
    next_due_at_commit: u64,
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
                let (head, counts) = shared.last_commit();
                self.pending.push(Pending {
                    shared: shared.clone(),
                    head,
                    counts,
                    committed_head: head,
                    committed_counts: counts,
                    feed: Vec::new(),
                    next_due: None,
                    next_due_at_commit: 0,
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

    /// Right after `COMMIT`: the next transaction starts from this one's state.
    fn committed(&mut self) {
        for p in &mut self.pending {
            p.shared.set_last_commit(p.head, p.counts);
            p.next_due_at_commit = p.shared.next_due.load(Ordering::Acquire);
        }
    }
}

/// A committed batch: what it changed, to publish once it is durable, and whom to answer.
pub(crate) struct Committed {
    /// Its commit number ([`Durability`]); 0 when commits are not numbered.
    number: u64,
    changes: Vec<Pending>,
    jobs: Vec<Box<dyn Job>>,
}

impl Committed {
    /// A commit number taken by a transaction that then rolled back: nothing to publish,
    /// but readers may wait for the number.
    fn rolled_back(number: u64) -> Self {
        Self {
            number,
            changes: Vec::new(),
            jobs: Vec::new(),
        }
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Publishes heads, counters, then the feed in sequence order; then answers.
    pub(crate) fn publish_and_answer(self) {
        for p in self.changes {
            p.shared.set_counts(p.counts);
            p.shared.head.store(p.head, Ordering::Release);
            // After the counters: whoever sees the raised bound sees the messages it
            // made ready (`ChanShared::nothing_claimable` reads in the other order). Not
            // over a bound a later transaction lowered: a bound that is too low is safe.
            if let Some(t) = p.next_due {
                let _ = p.shared.next_due.compare_exchange(
                    p.next_due_at_commit,
                    t,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            for entry in p.feed {
                // No subscriber is not an error.
                let _ = p.shared.feed.send(entry);
            }
        }
        for job in self.jobs {
            job.finish(None);
        }
    }

    /// Answers every caller with `cause`; nothing is published.
    pub(crate) fn refuse(self, path: &Path, cause: &str) {
        refuse_all(path, self.jobs, cause);
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
        durability: Arc<Durability>,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let flusher = match log.commit_sync() {
            Some(sync) => Some(Flusher::start(path, sync, durability.clone())?),
            None => None,
        };
        let thread_path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("sssn-sqlite-writer".to_owned())
            .spawn(move || {
                let mut w = WriterThread {
                    path: &thread_path,
                    conn: &conn,
                    log: &mut log,
                    flusher: flusher.as_ref(),
                    durability: &durability,
                };
                w.run(&rx, max_batch);
                // The commits handed over are flushed and answered before the file closes.
                drop(flusher);
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

/// The writer thread's state.
struct WriterThread<'a> {
    path: &'a Path,
    conn: &'a Connection,
    log: &'a mut LogFile,
    /// `None` with `Synchronous::Normal`: nothing waits for the disk, so the writer
    /// publishes and answers each commit itself.
    flusher: Option<&'a Flusher>,
    durability: &'a Durability,
}

impl WriterThread<'_> {
    fn run(&mut self, rx: &mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
        let mut since_vacuum_check = 0u32;
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: a good moment to give space back.
                    if since_vacuum_check > 0 && self.durability.failure().is_none() {
                        since_vacuum_check = 0;
                        vacuum_if_sparse(self.path, self.conn);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            batch.push(first);
            // What else is queued joins it. Nothing waits for more: while the flusher
            // syncs, the next commits queue up for its next sync.
            batch.extend(rx.try_iter().take(max_batch.saturating_sub(1)));
            if let Some(cause) = self.durability.failure() {
                refuse_all(self.path, batch.drain(..), &cause);
                continue;
            }
            match self.commit(&mut batch) {
                Ok(()) => {}
                Err(e) if batch.len() == 1 => {
                    let job = batch.pop().expect("one job");
                    let action = job.action();
                    job.finish(Some(db_error(self.path, action, e)));
                }
                Err(e) if waits_for_others(&e) => {
                    // Another connection holds the file: every job would wait and fail again.
                    for job in batch.drain(..) {
                        let action = job.action();
                        job.finish(Some(db_error(self.path, action, clone_error(&e))));
                    }
                }
                Err(_) => {
                    // Find out which jobs fail on their own; the others still commit.
                    for job in batch.drain(..) {
                        let mut one = vec![job];
                        if let Err(e) = self.commit(&mut one) {
                            let job = one.pop().expect("one job");
                            let action = job.action();
                            job.finish(Some(db_error(self.path, action, e)));
                        }
                    }
                }
            }
            self.log.maintain(self.conn);
            since_vacuum_check += 1;
            if since_vacuum_check >= VACUUM_CHECK_EVERY {
                since_vacuum_check = 0;
                vacuum_if_sparse(self.path, self.conn);
            }
        }
    }

    /// Runs `jobs` in one transaction. Committed, they go to the flusher (or, when
    /// commits are not flushed, are published and answered at once) and `jobs` is left
    /// empty; rolled back, `jobs` is left as it was, for the caller to answer.
    fn commit(&mut self, jobs: &mut Vec<Box<dyn Job>>) -> rusqlite::Result<()> {
        let numbers = self.flusher.is_some().then_some(self.durability);
        match execute(self.conn, jobs, numbers) {
            Ok((mut txn, number)) => {
                txn.committed();
                let commit = Committed {
                    number,
                    changes: txn.pending,
                    jobs: std::mem::take(jobs),
                };
                match self.flusher {
                    Some(flusher) => flusher.flush(commit),
                    None => commit.publish_and_answer(),
                }
                Ok(())
            }
            Err((e, number)) => {
                if number > 0
                    && let Some(flusher) = self.flusher
                {
                    flusher.flush(Committed::rolled_back(number));
                }
                Err(e)
            }
        }
    }
}

/// Answers each of `jobs` with the store's refusal for `cause` (a failed flush).
fn refuse_all(path: &Path, jobs: impl IntoIterator<Item = Box<dyn Job>>, cause: &str) {
    for job in jobs {
        let action = job.action();
        job.finish(Some(refused(path, action, cause)));
    }
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

/// Runs `jobs` in one transaction; on success returns it committed, ready to publish, with
/// its commit number when `numbers` is given (taken just before `COMMIT`). On failure the
/// transaction is rolled back; the number is given back when one was taken.
fn execute<'c>(
    conn: &'c Connection,
    jobs: &mut [Box<dyn Job>],
    numbers: Option<&Durability>,
) -> std::result::Result<(Txn<'c>, u64), (rusqlite::Error, u64)> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| (e, 0))?;
    let mut txn = Txn::new(conn);
    let mut number = 0;
    let outcome = (|| {
        for job in jobs.iter_mut() {
            job.run(&mut txn)?;
        }
        txn.flush()?;
        number = numbers.map_or(0, Durability::take_number);
        conn.execute_batch("COMMIT")
    })();
    match outcome {
        Ok(()) => Ok((txn, number)),
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err((e, number))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_file::LogSync;

    fn job(reply: oneshot::Sender<Result<u32>>) -> Box<dyn Job> {
        Box::new(Call {
            action: "test",
            f: |_: &mut Txn<'_>| Ok(Ok(1)),
            out: Some(Ok(1)),
            reply,
        })
    }

    fn committed(durability: &Durability, reply: oneshot::Sender<Result<u32>>) -> Committed {
        Committed {
            number: durability.take_number(),
            changes: Vec::new(),
            jobs: vec![job(reply)],
        }
    }

    #[test]
    fn commits_are_answered_after_their_sync() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("q.db-wal");
        std::fs::write(&log, b"").unwrap();
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let durability = Arc::new(Durability::default());
        let flusher = Flusher::start(
            dir.path(),
            LogSync::new(log, syncs.clone()),
            durability.clone(),
        )
        .unwrap();
        let (tx, rx) = oneshot::channel();
        flusher.flush(committed(&durability, tx));
        assert_eq!(rx.blocking_recv().unwrap().unwrap(), 1);
        assert!(syncs.load(Ordering::Relaxed) >= 1);
        assert!(durability.wait_for_snapshot().is_ok());
    }

    #[test]
    fn a_failed_sync_refuses_its_commits_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        // A log that cannot be opened: the first sync fails.
        let sync = LogSync::new(dir.path().join("missing-wal"), Arc::default());
        let durability = Arc::new(Durability::default());
        let flusher = Flusher::start(dir.path(), sync, durability.clone()).unwrap();
        let (tx, rx) = oneshot::channel();
        flusher.flush(committed(&durability, tx));
        let err = rx.blocking_recv().unwrap().unwrap_err();
        assert!(
            err.to_string().contains("flushing the write-ahead log"),
            "{err}"
        );
        assert!(durability.failure().is_some());
        assert!(
            durability.wait_for_snapshot().is_err(),
            "a reader must not wait for a commit that will never be durable"
        );
        let (tx, rx) = oneshot::channel();
        flusher.flush(committed(&durability, tx));
        assert!(rx.blocking_recv().unwrap().is_err(), "a later commit");
    }
}
