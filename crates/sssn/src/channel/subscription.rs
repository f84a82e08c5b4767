//! Push subscriptions.
//!
//! Each subscriber has its own bounded queue (a `tokio::sync::broadcast` receiver on the
//! store's feed of committed appends), so a slow subscriber never blocks writers or other
//! subscribers. When it falls more than the queue's capacity behind, [`Subscription::recv`]
//! reports [`RecvError::Lagged`] with the number of messages it skipped past, then
//! continues *from the store* at the first message it has not seen: delivery stays
//! gap-free as long as retention has not removed those messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{ChannelStore, Entry, ReadFilter, Seq};

/// Why [`Subscription::recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The subscriber fell behind by this many messages; the next `recv` catches up from
    /// the store.
    Lagged(u64),
    /// Unsubscribed, or the channel stopped.
    Closed,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged by {n} messages"),
            Self::Closed => f.write_str("subscription closed"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Shared between a subscription and its channel's registry (for stats and unsubscribe).
#[derive(Debug)]
pub(crate) struct SubscriberState {
    pub(crate) reader: String,
    pub(crate) position: AtomicU64,
    pub(crate) cancel: CancellationToken,
}

/// A live push subscription. Dropping it unsubscribes.
pub struct Subscription {
    channel_id: String,
    rx: broadcast::Receiver<Entry>,
    store: Arc<dyn ChannelStore>,
    filter: ReadFilter,
    state: Arc<SubscriberState>,
    catching_up: bool,
    backlog: std::collections::VecDeque<Entry>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel_id", &self.channel_id)
            .field("reader", &self.state.reader)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        channel_id: String,
        store: Arc<dyn ChannelStore>,
        filter: ReadFilter,
        state: Arc<SubscriberState>,
        start_after: Option<Seq>,
    ) -> Self {
        let rx = store.feed();
        let catching_up = match start_after {
            Some(seq) => {
                state.position.store(seq, Ordering::Relaxed);
                true
            }
            None => {
                state.position.store(store.head(), Ordering::Relaxed);
                false
            }
        };
        Self {
            channel_id,
            rx,
            store,
            filter,
            state,
            catching_up,
            backlog: Default::default(),
        }
    }

    /// The channel this subscription is on.
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    /// The subscriber's id.
    pub fn reader(&self) -> &str {
        &self.state.reader
    }

    /// Sequence of the last message delivered (or skipped by the filter).
    pub fn position(&self) -> Seq {
        self.state.position.load(Ordering::Relaxed)
    }

    fn advance(&self, seq: Seq) {
        self.state.position.store(seq, Ordering::Relaxed);
    }

    /// The next message, in sequence order, without gaps or repeats.
    pub async fn recv(&mut self) -> Result<Entry, RecvError> {
        loop {
            if self.state.cancel.is_cancelled() {
                return Err(RecvError::Closed);
            }
            if let Some(entry) = self.backlog.pop_front() {
                self.advance(entry.seq);
                if self.filter.matches(&entry.message) {
                    return Ok(entry);
                }
                continue;
            }
            if self.catching_up {
                let missed = self.store.range(self.position(), 256).await.map_err(|e| {
                    tracing::warn!(channel = %self.channel_id, error = %e, "subscriber catch-up failed");
                    RecvError::Closed
                })?;
                if missed.is_empty() {
                    self.catching_up = false;
                } else {
                    self.backlog.extend(missed);
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                () = self.state.cancel.cancelled() => return Err(RecvError::Closed),
                r = self.rx.recv() => r,
            };
            match received {
                Ok(entry) if entry.seq <= self.position() => {} // already delivered from the store
                Ok(entry) => {
                    if entry.seq > self.position() + 1 {
                        // The feed skipped ahead of us (e.g. we joined mid-append): refill.
                        self.catching_up = true;
                        self.backlog.clear();
                        continue;
                    }
                    self.advance(entry.seq);
                    if self.filter.matches(&entry.message) {
                        return Ok(entry);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.catching_up = true;
                    return Err(RecvError::Lagged(n));
                }
                Err(broadcast::error::RecvError::Closed) => return Err(RecvError::Closed),
            }
        }
    }

    /// Like [`recv`](Self::recv), but catches up after a lag silently (logging it), and
    /// returns `None` once closed.
    pub async fn next(&mut self) -> Option<Entry> {
        loop {
            match self.recv().await {
                Ok(entry) => return Some(entry),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(channel = %self.channel_id, reader = %self.reader(), missed = n, "subscriber lagged; catching up from the store");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Stops this subscription.
    pub fn close(&self) {
        self.state.cancel.cancel();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.state.cancel.cancel();
    }
}
