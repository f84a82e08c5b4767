//! Push subscriptions.
//!
//! Each subscriber has its own bounded queue (a `tokio::sync::broadcast` receiver on the
//! store's feed of committed appends), so a slow subscriber never blocks writers or other
//! subscribers. When it falls more than the queue's capacity behind, [`Subscription::recv`]
//! reports [`RecvError::Lagged`] with the number of messages it skipped past, then
//! continues *from the store* at the first message it has not seen. Messages that are no
//! longer stored by then (retention, removal, a consuming ack) cannot be delivered: `recv`
//! says so with [`RecvError::Gap`] naming the first and last sequence lost, then goes on
//! with the next stored message. Nothing is ever skipped silently.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::core::lock;
use super::kind::Subscriptions;
use super::{Caller, Channel, Who};
use crate::error::Result;
use crate::security::Operation;
use crate::store::{Entry, Log, ReadFilter, Seq};

/// Why [`Subscription::recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind by this many messages; the next `recv` catches up from
    /// the store.
    Lagged(u64),
    /// The messages with sequences `from..=to` can no longer be delivered: they were
    /// removed (retention, removal, an ack) before this subscriber got them. The next
    /// `recv` goes on after `to`.
    Gap {
        /// First sequence lost.
        from: Seq,
        /// Last sequence lost.
        to: Seq,
    },
    /// Unsubscribed, or the channel stopped.
    Closed,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged by {n} messages"),
            Self::Gap { from, to } => {
                write!(f, "messages {from} to {to} were removed before delivery")
            }
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
    /// Cancelled by `close`, or with the channel's token when the channel stops.
    pub(crate) cancel: CancellationToken,
    /// Set by `close`: a lock-free check on every delivery (the token's check takes a lock).
    pub(crate) closed: AtomicBool,
}

impl SubscriberState {
    pub(crate) fn new(reader: String, cancel: CancellationToken) -> Self {
        Self {
            reader,
            position: AtomicU64::new(0),
            cancel,
            closed: AtomicBool::new(false),
        }
    }

    /// Ends the subscription.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.cancel.cancel();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.cancel.is_cancelled()
    }
}

/// A live push subscription, on a local channel or a remote one. Dropping it unsubscribes.
pub struct Subscription {
    channel_id: String,
    state: Arc<SubscriberState>,
    source: Source,
}

enum Source {
    /// The store's feed, with catch-up from the store after a lag.
    Local {
        rx: broadcast::Receiver<Entry>,
        store: Arc<dyn Log>,
        filter: ReadFilter,
        catching_up: bool,
        backlog: VecDeque<Entry>,
        /// The first feed entry after a lag (or a jump): catch-up from the store stops
        /// before it, and the feed goes on from it, so a lag costs the messages the feed
        /// lost, not a re-read of everything since.
        resume: Option<Entry>,
    },
    /// Deliveries forwarded by a transport (e.g. an SSE client task).
    Remote {
        rx: mpsc::Receiver<Result<Entry, RecvError>>,
    },
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
        store: Arc<dyn Log>,
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
            state,
            source: Source::Local {
                rx,
                store,
                filter,
                catching_up,
                backlog: Default::default(),
                resume: None,
            },
        }
    }

    /// A subscription fed by a transport: `rx` yields deliveries in sequence order (or a
    /// lag notice); the sending side should stop when `cancel` fires (on drop or `close`).
    pub fn from_remote(
        channel_id: impl Into<String>,
        reader: impl Into<String>,
        rx: mpsc::Receiver<Result<Entry, RecvError>>,
        cancel: CancellationToken,
    ) -> Self {
        let state = Arc::new(SubscriberState::new(reader.into(), cancel));
        Self {
            channel_id: channel_id.into(),
            state,
            source: Source::Remote { rx },
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

    /// The next message, in sequence order, without repeats. Messages removed before
    /// they could be delivered are reported as [`RecvError::Gap`], never skipped silently.
    pub async fn recv(&mut self) -> Result<Entry, RecvError> {
        let Self {
            channel_id,
            state,
            source,
        } = self;
        let state: &SubscriberState = state;
        match source {
            Source::Remote { rx } => {
                let next = tokio::select! {
                    biased;
                    () = state.cancel.cancelled() => return Err(RecvError::Closed),
                    r = rx.recv() => r,
                };
                match next {
                    Some(Ok(entry)) => {
                        state.position.store(entry.seq, Ordering::Relaxed);
                        Ok(entry)
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(RecvError::Closed),
                }
            }
            Source::Local {
                rx,
                store,
                filter,
                catching_up,
                backlog,
                resume,
            } => {
                let position = || state.position.load(Ordering::Relaxed);
                let advance = |seq: Seq| state.position.store(seq, Ordering::Relaxed);
                loop {
                    if state.closed.load(Ordering::Relaxed) {
                        return Err(RecvError::Closed);
                    }
                    if let Some(next) = backlog.front().map(|e| e.seq) {
                        // Stored sequences are dense: a jump is messages removed meanwhile.
                        if next > position() + 1 {
                            let gap = RecvError::Gap {
                                from: position() + 1,
                                to: next - 1,
                            };
                            advance(next - 1);
                            return Err(gap);
                        }
                        let Some(entry) = backlog.pop_front() else {
                            continue;
                        };
                        advance(entry.seq);
                        if filter.matches(&entry.message) {
                            return Ok(entry);
                        }
                        continue;
                    }
                    if *catching_up {
                        if resume.is_none() {
                            *resume = first_unseen(rx, position());
                        }
                        if let Some(gap) = catch_up(&**store, position(), resume, backlog)
                            .await
                            .map_err(|e| {
                                tracing::warn!(channel = %channel_id, error = %e, "subscriber catch-up failed");
                                RecvError::Closed
                            })?
                        {
                            *catching_up = false;
                            if let Some(to) = gap {
                                let from = position() + 1;
                                advance(to);
                                return Err(RecvError::Gap { from, to });
                            }
                        }
                        continue;
                    }
                    let received = if let Some(entry) = resume.take() {
                        Ok(entry)
                    } else {
                        // The feed first: a queued delivery never polls the token (whose
                        // check takes a lock); the token ends a wait for the next append
                        // (`close` also sets the flag checked above).
                        tokio::select! {
                            biased;
                            r = rx.recv() => r,
                            () = state.cancel.cancelled() => return Err(RecvError::Closed),
                        }
                    };
                    match received {
                        Ok(entry) if entry.seq <= position() => {} // already delivered from the store
                        Ok(entry) => {
                            if entry.seq > position() + 1 {
                                // The feed is ahead of us (we joined mid-append, or lagged):
                                // what lies between comes from the store, then this entry.
                                *resume = Some(entry);
                                *catching_up = true;
                                continue;
                            }
                            advance(entry.seq);
                            if filter.matches(&entry.message) {
                                return Ok(entry);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            *catching_up = true;
                            return Err(RecvError::Lagged(n));
                        }
                        Err(broadcast::error::RecvError::Closed) => return Err(RecvError::Closed),
                    }
                }
            }
        }
    }

    /// Like [`recv`](Self::recv), but goes on after a lag (logged at debug level: nothing
    /// is lost) or a gap (logged as a warning: messages were lost), and returns `None` once
    /// closed.
    pub async fn next(&mut self) -> Option<Entry> {
        loop {
            match self.recv().await {
                Ok(entry) => return Some(entry),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(channel = %self.channel_id, reader = %self.reader(), missed = n, "subscriber lagged; catching up from the store");
                }
                Err(RecvError::Gap { from, to }) => {
                    tracing::warn!(channel = %self.channel_id, reader = %self.reader(), from, to, "messages were removed before this subscriber got them");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Stops this subscription.
    pub fn close(&self) {
        self.state.close();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.state.close();
    }
}

/// Messages read from the store per catch-up step.
const CATCH_UP_CHUNK: usize = 256;

/// The first feed entry after `position`, if the feed holds one now (after a lag it
/// holds the newest `capacity` entries; older ones already delivered are passed over).
fn first_unseen(rx: &mut broadcast::Receiver<Entry>, position: Seq) -> Option<Entry> {
    loop {
        match rx.try_recv() {
            Ok(entry) if entry.seq <= position => {}
            Ok(entry) => return Some(entry),
            // Lagged again: the next entry is the oldest the feed still holds.
            Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
        }
    }
}

/// One step of catching up from the store after `from`, up to the `resume` entry (or the
/// head when there is none): fills `backlog`, or says the catch-up is over (`Some`), with
/// the last sequence lost when messages before the end were removed (`Some(Some(to))`).
async fn catch_up(
    store: &dyn Log,
    from: Seq,
    resume: &Option<Entry>,
    backlog: &mut VecDeque<Entry>,
) -> Result<Option<Option<Seq>>> {
    // The head is read before the range: a message appended after the range was read is
    // then never taken for lost.
    let end = match resume {
        Some(entry) => entry.seq - 1,
        None => store.head(),
    };
    if end <= from {
        return Ok(Some(None));
    }
    let wanted = usize::try_from(end - from).map_or(CATCH_UP_CHUNK, |n| n.min(CATCH_UP_CHUNK));
    let missed = store.range(from, wanted).await?;
    let before = backlog.len();
    backlog.extend(missed.into_iter().take_while(|e| e.seq <= end));
    if backlog.len() > before {
        return Ok(None);
    }
    // Nothing stored between `from` and `end`: those messages were removed.
    Ok(Some(Some(end)))
}

impl<K: Subscriptions> Channel<K> {
    /// Subscribes to every new message from now on. On a mailbox only messages for the
    /// caller (or for everyone) are delivered.
    pub async fn subscribe(&self, caller: impl Caller) -> Result<Subscription> {
        self.subscribe_from(caller, None).await
    }

    /// Subscribes starting after sequence `after` (resume, e.g. SSE `Last-Event-ID`).
    pub async fn subscribe_after(&self, caller: impl Caller, after: Seq) -> Result<Subscription> {
        self.subscribe_from(caller, Some(after)).await
    }

    /// Subscribes from now (`None`) or after a sequence.
    pub async fn subscribe_from(
        &self,
        caller: impl Caller,
        after: Option<Seq>,
    ) -> Result<Subscription> {
        let core = &self.core;
        let caller = Who::of(&caller);
        core.authorize(&caller, Operation::Subscribe)?;
        let log = core.log()?.clone();
        let parent = lock(&core.cancel).clone();
        let state = Arc::new(SubscriberState::new(
            caller.id().to_owned(),
            parent.child_token(),
        ));
        {
            let mut subs = lock(&core.subscribers);
            let list = subs.entry(caller.id().to_owned()).or_default();
            list.retain(|s| !s.is_closed());
            list.push(state.clone());
        }
        Ok(Subscription::new(
            self.id().to_owned(),
            log,
            core.read_filter(caller.id()),
            state,
            after,
        ))
    }

    /// Ends every subscription of `caller` on this channel.
    pub fn unsubscribe(&self, caller: impl Caller) {
        let caller = Who::of(&caller);
        if let Some(list) = lock(&self.core.subscribers).remove(caller.id()) {
            for s in list {
                s.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RecvError;
    use crate::channel::BroadcastChannel;

    /// Stopping the channel ends its subscriptions: one with deliveries queued gets them
    /// first (they were appended before the stop), then `Closed`; one waiting for the next
    /// append is woken with `Closed`.
    #[tokio::test]
    async fn stopping_the_channel_ends_queued_and_waiting_subscriptions() {
        let feed = BroadcastChannel::new("stops").build();
        feed.start().await.unwrap();
        let mut queued = feed.subscribe("queued").await.unwrap();
        let mut waiting = feed.subscribe("waiting").await.unwrap();
        for i in 0..3 {
            feed.write("w", &i).await.unwrap();
        }
        for _ in 0..3 {
            waiting.recv().await.unwrap();
        }
        let waiter = tokio::spawn(async move { waiting.recv().await });
        tokio::task::yield_now().await;
        feed.stop().await;
        let woken = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiting subscriber is woken")
            .unwrap();
        assert_eq!(woken.unwrap_err(), RecvError::Closed);
        for seq in 1..=3 {
            assert_eq!(queued.recv().await.unwrap().seq, seq);
        }
        let closed = tokio::time::timeout(Duration::from_secs(5), queued.recv())
            .await
            .expect("the queued subscriber ends after its deliveries");
        assert_eq!(closed.unwrap_err(), RecvError::Closed);
    }

    /// Subscribers far behind a writer that keeps appending alternate between the store
    /// and the feed; every message arrives once, in order, and none is reported lost (a
    /// catch-up that read the head after its range used to report a message appended in
    /// between as removed, and its subscriber then waited forever for it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lagging_subscribers_lose_nothing_while_the_writer_appends() {
        const N: u64 = 20_000;
        let feed = BroadcastChannel::new("lag").subscriber_capacity(8).build();
        feed.start().await.unwrap();
        let mut readers = tokio::task::JoinSet::new();
        for k in 0..4 {
            let mut sub = feed.subscribe(format!("sub-{k}")).await.unwrap();
            readers.spawn(async move {
                let (mut next, mut lags) = (1, 0);
                while next <= N {
                    match sub.recv().await {
                        Ok(entry) => {
                            assert_eq!(entry.seq, next, "in order, once");
                            next += 1;
                        }
                        Err(RecvError::Lagged(_)) => lags += 1,
                        Err(e) => panic!("subscriber {k} at {next}: {e}"),
                    }
                }
                lags
            });
        }
        let writer = feed.clone();
        let writing = tokio::spawn(async move {
            for i in 0..N {
                writer.write("w", &i).await.unwrap();
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let all = async {
            writing.await.unwrap();
            let mut lags = 0;
            while let Some(r) = readers.join_next().await {
                lags += r.unwrap();
            }
            lags
        };
        let lags = tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("every subscriber got every message");
        assert!(lags > 0, "capacity 8 against 20,000 writes lags");
    }
}
