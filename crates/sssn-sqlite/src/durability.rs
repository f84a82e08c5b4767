//! What a reader waits for so that it never reports a commit a crash could take back.
//!
//! With `Synchronous::Full` SQLite runs at `NORMAL` and the flusher thread makes commits
//! durable after the writer has committed them ([`crate::log_file`], [`crate::flusher`]).
//! In between, a commit is already visible to other connections. So commits are numbered:
//! the writer takes the next number just before `COMMIT`, and the flusher records the
//! highest number whose commit is on the disk. A read connection takes its snapshot, then
//! reads the last number taken: every commit its snapshot can see has that number or a
//! lower one, and the reader waits until that number is durable before it looks at
//! anything. Usually nothing is pending and the check is one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// The commit numbers taken and made durable, and a flush failure.
#[derive(Default)]
pub(crate) struct Durability {
    /// The number of the last commit the writer started.
    taken: AtomicU64,
    /// Every commit up to this number is on the disk (or was rolled back).
    durable: AtomicU64,
    /// Set once a flush failed: nothing after it becomes durable.
    failed: Mutex<Option<String>>,
    changed: Condvar,
}

impl Durability {
    /// The number of the commit the writer is about to make (taken just before `COMMIT`).
    pub(crate) fn take_number(&self) -> u64 {
        self.taken.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Every commit up to `number` is on the disk, or was rolled back.
    pub(crate) fn durable_up_to(&self, number: u64) {
        let _failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        self.durable.fetch_max(number, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// A flush failed: waiting readers and the writer give up with `cause`.
    pub(crate) fn fail(&self, cause: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert_with(|| cause.to_owned());
        self.changed.notify_all();
    }

    /// The failure of an earlier flush, if one failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Called after a read snapshot was taken: returns once every commit the snapshot can
    /// see is durable, or with the failure that keeps one from ever being.
    pub(crate) fn wait_for_snapshot(&self) -> Result<(), String> {
        // Read after the snapshot: a commit in it took its number before `COMMIT`.
        let seen = self.taken.load(Ordering::SeqCst);
        if self.durable.load(Ordering::SeqCst) >= seen {
            return Ok(());
        }
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.durable.load(Ordering::SeqCst) >= seen {
                return Ok(());
            }
            if let Some(cause) = &*failed {
                return Err(cause.clone());
            }
            failed = self.changed.wait(failed).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reader_waits_until_what_it_may_see_is_durable() {
        let d = Arc::new(Durability::default());
        assert!(d.wait_for_snapshot().is_ok(), "nothing pending");
        let first = d.take_number();
        let second = d.take_number();
        let reader = {
            let d = d.clone();
            std::thread::spawn(move || d.wait_for_snapshot())
        };
        d.durable_up_to(first);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !reader.is_finished(),
            "the second commit is not durable yet"
        );
        d.durable_up_to(second);
        assert!(reader.join().unwrap().is_ok());
    }

    #[test]
    fn a_failed_flush_ends_the_wait_with_its_cause() {
        let d = Arc::new(Durability::default());
        d.take_number();
        let reader = {
            let d = d.clone();
            std::thread::spawn(move || d.wait_for_snapshot())
        };
        std::thread::sleep(Duration::from_millis(50));
        d.fail("the disk is gone");
        assert_eq!(reader.join().unwrap().unwrap_err(), "the disk is gone");
        assert_eq!(d.failure().as_deref(), Some("the disk is gone"));
    }
}
