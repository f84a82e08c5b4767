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
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use sssn::{Error, Result};

use crate::durability::Durability;
use crate::log_file::LogSync;
use crate::writer::Committed;

/// The writer's handle on the flusher thread. Dropping it lets the thread finish the
/// commits already handed over, and waits for it.
pub(crate) struct Flusher {
    path: PathBuf,
    tx: Option<mpsc::Sender<Committed>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flusher of the store at `path`.
    pub(crate) fn start(path: &Path, sync: LogSync, durability: Arc<Durability>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Committed>();
        let thread_path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("sssn-sqlite-flusher".to_owned())
            .spawn(move || run(&thread_path, sync, &durability, &rx))
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
            tx: Some(tx),
            thread: Some(thread),
        })
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

fn run(path: &Path, mut sync: LogSync, durability: &Durability, rx: &mpsc::Receiver<Committed>) {
    let mut commits: Vec<Committed> = Vec::new();
    while let Ok(first) = rx.recv() {
        commits.push(first);
        commits.extend(rx.try_iter());
        let last = commits.last().map_or(0, Committed::number);
        if durability.failure().is_none()
            && let Err(e) = sync.sync()
        {
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
