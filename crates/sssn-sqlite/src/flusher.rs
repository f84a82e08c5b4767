//! The flusher thread: makes the writer's commits durable, then publishes and answers them.
//!
//! With `Synchronous::Full` the writer does not wait for the disk. It hands each commit
//! here and goes on with the next batch, so the next transaction runs while the disk
//! flushes the last one, and every commit made during a flush shares the next one
//! (PostgreSQL's group commit works the same way). The flusher takes whatever commits are
//! queued, syncs the log once ([`LogSync`]), records them as durable for readers
//! ([`Durability`]), and then, in commit order, publishes each one's heads, counters and
//! feed and replies to its callers. Nothing of a commit is seen or answered before it is
//! on the disk.
//!
//! If a sync fails, the commits it covered and every later one are refused: after a
//! failed flush the system may have dropped the unwritten pages, so a later successful
//! flush would not prove the earlier commits are on the disk. The writer refuses new work
//! from then on; reopening the store recovers from what the disk holds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sssn::{Error, Result};

use crate::durability::Durability;
use crate::log_file::LogSync;
use crate::writer::Committed;

/// The writer's handle on the flusher thread. Dropping it lets the thread finish the
/// commits already handed over, and waits for it.
pub(crate) struct Flusher {
    path: PathBuf,
    syncing: Arc<Syncing>,
    tx: Option<mpsc::Sender<Committed>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flusher of the store at `path`.
    pub(crate) fn start(path: &Path, sync: LogSync, durability: Arc<Durability>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Committed>();
        let syncing = Arc::new(Syncing::new());
        let thread_path = path.to_owned();
        let thread_syncing = syncing.clone();
        let thread = std::thread::Builder::new()
            .name("sssn-sqlite-flusher".to_owned())
            .spawn(move || run(&thread_path, sync, &durability, &thread_syncing, &rx))
            .map_err(|e| {
                Error::store(
                    format!(
                        "cannot start the flusher thread of SQLite store {}",
                        path.display()
                    ),
                    e,
                )
            })?;
        Ok(Self {
            path: path.to_owned(),
            syncing,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// How long the sync in progress will likely still take; `None` when none runs.
    pub(crate) fn sync_time_left(&self) -> Option<Duration> {
        self.syncing.time_left()
    }

    /// The callers the last sync answered: most send their next operation soon.
    pub(crate) fn callers_answered(&self) -> usize {
        self.syncing.answered.load(Ordering::Relaxed)
    }

    /// Hands over a commit to flush, publish and answer.
    pub(crate) fn flush(&self, commit: Committed) {
        if let Some(tx) = &self.tx
            && let Err(mpsc::SendError(commit)) = tx.send(commit)
        {
            // The thread is gone (it only ends when this handle drops): nobody will make
            // the commit durable, so its callers must not hear it succeeded.
            commit.refuse(&self.path, "the flusher thread stopped");
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sync in progress, as the writer sees it.
struct Syncing {
    epoch: Instant,
    /// When the sync in progress started (µs after `epoch`, at least 1); 0 when none runs.
    started_us: AtomicU64,
    /// A moving average of a sync's duration (µs).
    average_us: AtomicU64,
    answered: AtomicUsize,
}

impl Syncing {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            started_us: AtomicU64::new(0),
            average_us: AtomicU64::new(0),
            answered: AtomicUsize::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn time_left(&self) -> Option<Duration> {
        let started = self.started_us.load(Ordering::Acquire);
        if started == 0 {
            return None;
        }
        let elapsed = self.now_us().saturating_sub(started);
        let left = self
            .average_us
            .load(Ordering::Relaxed)
            .checked_sub(elapsed)?;
        (left > 0).then(|| Duration::from_micros(left))
    }

    fn start(&self) {
        self.started_us
            .store(self.now_us().max(1), Ordering::Release);
    }

    fn end(&self, jobs: usize) {
        let started = self.started_us.swap(0, Ordering::AcqRel);
        let took = self.now_us().saturating_sub(started);
        let average = self.average_us.load(Ordering::Relaxed);
        self.average_us
            .store((average * 7 + took) / 8, Ordering::Relaxed);
        self.answered.store(jobs, Ordering::Relaxed);
    }
}

fn run(
    path: &Path,
    mut sync: LogSync,
    durability: &Durability,
    syncing: &Syncing,
    rx: &mpsc::Receiver<Committed>,
) {
    let mut commits: Vec<Committed> = Vec::new();
    while let Ok(first) = rx.recv() {
        commits.push(first);
        commits.extend(rx.try_iter());
        let last = commits.last().map_or(0, Committed::number);
        syncing.start();
        let outcome = if durability.failure().is_none() {
            sync.sync()
        } else {
            Ok(())
        };
        syncing.end(commits.iter().map(Committed::jobs).sum());
        if let Err(e) = outcome {
            let cause = format!(
                "flushing the write-ahead log to the disk failed ({e}); the last commit may not \
                 be durable, so the store refuses every write until it is reopened"
            );
            tracing::error!(store = %path.display(), error = %e, "flushing the write-ahead log failed");
            durability.fail(&cause);
        }
        match durability.failure() {
            None => {
                durability.durable_up_to(last);
                for commit in commits.drain(..) {
                    commit.publish_and_answer();
                }
            }
            Some(cause) => {
                for commit in commits.drain(..) {
                    commit.refuse(path, &cause);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_sees_a_sync_in_progress_and_how_long_it_will_likely_take() {
        let syncing = Syncing::new();
        assert_eq!(syncing.time_left(), None, "no sync yet");
        syncing.start();
        std::thread::sleep(Duration::from_millis(16));
        syncing.end(3);
        assert_eq!(syncing.time_left(), None, "no sync runs");
        assert_eq!(syncing.answered.load(Ordering::Relaxed), 3);
        // The average moves an eighth of the way to the last sync: at least 2 ms now.
        syncing.start();
        let left = syncing.time_left().expect("a sync runs");
        assert!(
            left > Duration::from_millis(1) && left <= Duration::from_millis(16),
            "{left:?}"
        );
        std::thread::sleep(left + Duration::from_millis(1));
        assert_eq!(syncing.time_left(), None, "longer than the average");
    }
}
