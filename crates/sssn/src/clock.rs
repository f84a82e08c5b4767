//! Wall-clock time that follows tokio's clock.
//!
//! Leases, delays and TTLs are stored as Unix epoch milliseconds so that durable stores can
//! persist them. Reading the time through tokio's [`Instant`](tokio::time::Instant) means a
//! test with paused time (`start_paused = true`, `tokio::time::advance`) moves these deadlines
//! too, so time-dependent behaviour is tested without real sleeps.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static BASE: OnceLock<(u64, std::time::Instant)> = OnceLock::new();

fn base() -> (u64, std::time::Instant) {
    *BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        (wall, std::time::Instant::now())
    })
}

/// Current time in Unix epoch milliseconds, as seen by tokio's clock.
pub fn now_millis() -> u64 {
    millis(now())
}

/// Current time in Unix epoch seconds (the `timestamp` unit of messages).
pub fn now_secs() -> f64 {
    now().as_secs_f64()
}

/// Current time since the Unix epoch, as seen by tokio's clock: one clock read for
/// callers that need it both in seconds and in milliseconds.
pub fn now() -> Duration {
    let (wall, start) = base();
    let now = tokio::time::Instant::now().into_std();
    Duration::from_millis(wall) + now.saturating_duration_since(start)
}

/// Milliseconds in a duration, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
