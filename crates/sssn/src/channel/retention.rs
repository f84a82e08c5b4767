//! [`Retention`]: how long and how many messages a channel keeps, changeable while it
//! runs (v1 let a program set `retention_max_age`/`retention_max_count` at any time). Read
//! on every write (count retention follows the writes), so it is two atomics, not a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::kind::Kind;
use super::{Caller, Channel, Who};
use crate::clock::millis;
use crate::error::Result;
use crate::security::Operation;

/// "No limit" in either atomic.
const NONE: u64 = u64::MAX;

/// The retention limits of one channel.
pub(crate) struct Retention {
    max_age_ms: AtomicU64,
    max_count: AtomicU64,
}

impl Retention {
    pub(crate) fn new(max_age: Option<Duration>, max_count: Option<usize>) -> Self {
        let r = Self {
            max_age_ms: AtomicU64::new(NONE),
            max_count: AtomicU64::new(NONE),
        };
        r.set(max_age, max_count);
        r
    }

    pub(crate) fn set(&self, max_age: Option<Duration>, max_count: Option<usize>) {
        let age = max_age.map_or(NONE, |a| millis(a).min(NONE - 1));
        let count = max_count.map_or(NONE, |c| (c as u64).min(NONE - 1));
        self.max_age_ms.store(age, Ordering::Relaxed);
        self.max_count.store(count, Ordering::Relaxed);
    }

    pub(crate) fn max_age(&self) -> Option<Duration> {
        match self.max_age_ms.load(Ordering::Relaxed) {
            NONE => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(crate) fn max_count(&self) -> Option<usize> {
        match self.max_count.load(Ordering::Relaxed) {
            NONE => None,
            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

impl<K: Kind> Channel<K> {
    /// The retention limits now: maximum age and maximum count (`None`: no limit).
    pub fn retention(&self) -> (Option<Duration>, Option<usize>) {
        let r = &self.core.retention;
        (r.max_age(), r.max_count())
    }

    /// Changes the retention limits of a created or running channel (admin). They apply
    /// from the next write (count) and the next maintenance pass (age and count); nothing
    /// is evicted by the call itself.
    pub fn set_retention(
        &self,
        caller: impl Caller,
        max_age: Option<Duration>,
        max_count: Option<usize>,
    ) -> Result<()> {
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        self.core.retention.set(max_age, max_count);
        Ok(())
    }
}
