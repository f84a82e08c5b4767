//! How the writer thread forms a batch: everything already queued, and, when commits are
//! flushed, a short wait for the callers the last batch answered.
//!
//! Callers that wait for their operation (a producer's write, a consumer's ack and next
//! claim) send the next one soon after their answer. Without a wait the writer starts
//! the next batch with the first of them to come back, and the rest wait a whole flush
//! for the batch after: commits alternate between a few operations and many. So a batch
//! smaller than the last one waits for up to half the recent flush time (at most
//! [`MAX_PATIENCE`]) for more. With `Synchronous::Normal` a commit costs no flush and
//! nothing waits.

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crate::writer::Job;

/// The longest a batch waits for more operations.
const MAX_PATIENCE: Duration = Duration::from_millis(1);

/// The writer's memory of its last batches.
#[derive(Default)]
pub(crate) struct Batching {
    /// Operations in the last batch: callers that will likely come back.
    last_batch: usize,
    /// A moving average of the time a commit's flush takes.
    flush_time: Duration,
}

impl Batching {
    /// Adds to `batch` (holding the first job) what is queued, then waits for the callers
    /// of the last batch, up to the patience. At most `max_batch` jobs.
    pub(crate) fn gather(
        &self,
        rx: &Receiver<Box<dyn Job>>,
        batch: &mut Vec<Box<dyn Job>>,
        max_batch: usize,
    ) {
        let patience = (self.flush_time / 2).min(MAX_PATIENCE);
        let deadline = Instant::now() + patience;
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if batch.len() >= self.last_batch || now >= deadline {
                        break;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(job) => batch.push(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
    }

    /// Records a batch of `jobs` whose flush took `flush`.
    pub(crate) fn committed(&mut self, jobs: usize, flush: Duration) {
        self.last_batch = jobs;
        self.flush_time = (self.flush_time * 7 + flush) / 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::Txn;

    struct Nop;

    impl Job for Nop {
        fn run(&mut self, _: &mut Txn<'_>) -> rusqlite::Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>, _: Option<sssn::Error>) {}
        fn action(&self) -> &'static str {
            "nop"
        }
    }

    #[test]
    fn waits_for_the_callers_of_the_last_batch_only_while_commits_flush() {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let mut batching = Batching::default();
        for _ in 0..20 {
            batching.committed(3, Duration::from_millis(10));
        }
        // Two of the last batch's three callers are back; the third is not coming.
        tx.send(Box::new(Nop)).unwrap();
        let mut batch: Vec<Box<dyn Job>> = vec![Box::new(Nop)];
        let t = Instant::now();
        batching.gather(&rx, &mut batch, 512);
        let waited = t.elapsed();
        assert_eq!(batch.len(), 2);
        assert!(waited >= MAX_PATIENCE, "gave up after {waited:?}");

        // All three back: no wait.
        for _ in 0..2 {
            tx.send(Box::new(Nop)).unwrap();
        }
        let mut batch: Vec<Box<dyn Job>> = vec![Box::new(Nop)];
        batching.gather(&rx, &mut batch, 512);
        assert_eq!(batch.len(), 3);

        // Without flushes (NORMAL) a batch takes what is queued and goes.
        let mut batching = Batching::default();
        batching.committed(3, Duration::ZERO);
        tx.send(Box::new(Nop)).unwrap();
        let mut batch: Vec<Box<dyn Job>> = vec![Box::new(Nop)];
        let t = Instant::now();
        batching.gather(&rx, &mut batch, 512);
        assert_eq!(batch.len(), 2);
        assert!(t.elapsed() < MAX_PATIENCE, "waited {:?}", t.elapsed());
    }
}
