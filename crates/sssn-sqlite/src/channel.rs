//! One channel's storage in a [`SqliteStore`](crate::SqliteStore): the
//! [`ChannelStore`] implementation.
//!
//! Every operation that changes something (appends, cursor reads, claims, settling,
//! removal, stats, which first applies due delays and expired leases) becomes a job for
//! the writer thread and returns once its batch is committed. `range` and `dead_letters`
//! change nothing and run on a read-only connection instead, in parallel with writes
//! (WAL). Time is read here, on the caller's side, with `sssn::clock`, so leases and
//! delays are epoch milliseconds that survive a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sssn::clock::now_millis;
use sssn::message::ChannelMessage;
use sssn::store::{
    ChannelStore, Claimed, DeadLetter, Entry, ReadFilter, ReadFrom, Seq, Settled, StoreStats,
};
use sssn::{Error, ErrorKind, Result};
use tokio::sync::broadcast;

use crate::ops;
use crate::store::StoreInner;
use crate::writer::Txn;

/// A channel's counters as stored in `channels` (what `stats` reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) stored: u64,
    pub(crate) ready: u64,
    pub(crate) delayed: u64,
    pub(crate) in_flight: u64,
    pub(crate) acknowledged: u64,
    pub(crate) dead: u64,
}

/// What every handle on one channel shares: identity, committed head and counters, and
/// the feed. Only the writer thread changes it, after each commit.
pub(crate) struct ChanShared {
    /// The channel's number in `channels`.
    pub(crate) chan: i64,
    pub(crate) claims: bool,
    pub(crate) lease_ms: u64,
    pub(crate) max_deliveries: Option<u32>,
    pub(crate) head: AtomicU64,
    counts: Mutex<Counts>,
    pub(crate) feed: broadcast::Sender<Entry>,
}

impl ChanShared {
    pub(crate) fn new(row: &ops::ChannelRow, spec: &sssn::store::ChannelSpec) -> Self {
        let (feed, _) = broadcast::channel(spec.feed_capacity.max(1));
        Self {
            chan: row.chan,
            claims: row.claims,
            lease_ms: millis(spec.claim_timeout),
            max_deliveries: spec.max_deliveries,
            head: AtomicU64::new(row.head),
            counts: Mutex::new(row.counts),
            feed,
        }
    }

    /// The committed counters.
    pub(crate) fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_counts(&self, counts: Counts) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A handle on one channel's storage.
pub(crate) struct SqliteChannel {
    pub(crate) store: Arc<StoreInner>,
    pub(crate) shared: Arc<ChanShared>,
}

impl SqliteChannel {
    fn require_claims(&self) -> Result<()> {
        if self.shared.claims {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::UnsupportedOperation,
                "this channel kind has no claims",
            ))
        }
    }

    /// Runs one settle operation (ack, nack, reject, extend) in a writer transaction,
    /// with the time read on the caller's side.
    async fn settle<F>(
        &self,
        action: &'static str,
        claimer: &str,
        ids: &[String],
        op: F,
    ) -> Result<Settled>
    where
        F: Fn(&mut Txn<'_>, &Arc<ChanShared>, &str, &[String], u64) -> rusqlite::Result<Settled>
            + Send
            + 'static,
    {
        self.require_claims()?;
        let now = now_millis();
        let ch = self.shared.clone();
        let claimer = claimer.to_owned();
        let ids = ids.to_vec();
        self.store
            .writer
            .call(action, move |txn| op(txn, &ch, &claimer, &ids, now).map(Ok))
            .await
    }
}

#[async_trait]
impl ChannelStore for SqliteChannel {
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_millis();
        let ch = self.shared.clone();
        let messages: Vec<Arc<ChannelMessage>> = messages.into_iter().map(Arc::new).collect();
        self.store
            .writer
            .call("append", move |txn| {
                ops::append(txn, &ch, &messages, now).map(Ok)
            })
            .await
    }

    async fn read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let ch = self.shared.clone();
        let reader = reader.to_owned();
        let filter = filter.clone();
        self.store
            .writer
            .call("read", move |txn| {
                ops::read(txn, &ch, &reader, &from, limit, &filter)
            })
            .await
    }

    async fn range(&self, after: Seq, limit: usize) -> Result<Vec<Entry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let chan = self.shared.chan;
        self.store
            .query("range", move |conn| ops::range(conn, chan, after, limit))
            .await
    }

    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>> {
        self.require_claims()?;
        let now = now_millis();
        let ch = self.shared.clone();
        let claimer = claimer.to_owned();
        self.store
            .writer
            .call("claim", move |txn| {
                ops::claim(txn, &ch, &claimer, limit, now).map(Ok)
            })
            .await
    }

    async fn ack(&self, claimer: &str, ids: &[String]) -> Result<Settled> {
        self.settle("ack", claimer, ids, ops::ack).await
    }

    async fn nack(
        &self,
        claimer: &str,
        ids: &[String],
        delay: Option<Duration>,
    ) -> Result<Settled> {
        self.settle("nack", claimer, ids, move |txn, ch, claimer, ids, now| {
            let due = delay.map(|d| now.saturating_add(millis(d)));
            ops::nack(txn, ch, claimer, ids, due, now)
        })
        .await
    }

    async fn reject(&self, claimer: &str, ids: &[String], reason: &str) -> Result<Settled> {
        let reason = reason.to_owned();
        self.settle("reject", claimer, ids, move |txn, ch, claimer, ids, now| {
            ops::reject(txn, ch, claimer, ids, &reason, now)
        })
        .await
    }

    async fn extend(&self, claimer: &str, ids: &[String]) -> Result<Settled> {
        self.settle("extend", claimer, ids, ops::extend).await
    }

    async fn reclaim_expired(&self) -> Result<usize> {
        if !self.shared.claims {
            return Ok(0);
        }
        let now = now_millis();
        let ch = self.shared.clone();
        self.store
            .writer
            .call("reclaim_expired", move |txn| {
                ops::maintain(txn, &ch, now).map(Ok)
            })
            .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let chan = self.shared.chan;
        self.store
            .query("dead_letters", move |conn| {
                ops::dead_letters(conn, chan, limit)
            })
            .await
    }

    async fn redrive(&self, ids: &[String]) -> Result<usize> {
        let now = now_millis();
        let ch = self.shared.clone();
        let ids = ids.to_vec();
        self.store
            .writer
            .call("redrive", move |txn| {
                ops::redrive(txn, &ch, &ids, now).map(Ok)
            })
            .await
    }

    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        let ch = self.shared.clone();
        self.store
            .writer
            .call("evict", move |txn| {
                ops::evict(txn, &ch, before, max_count).map(Ok)
            })
            .await
    }

    async fn remove(&self, ids: &[String]) -> Result<usize> {
        let ch = self.shared.clone();
        let ids = ids.to_vec();
        self.store
            .writer
            .call("remove", move |txn| ops::remove(txn, &ch, &ids).map(Ok))
            .await
    }

    async fn clear(&self) -> Result<usize> {
        let ch = self.shared.clone();
        self.store
            .writer
            .call("clear", move |txn| ops::clear(txn, &ch).map(Ok))
            .await
    }

    async fn stats(&self) -> Result<StoreStats> {
        let now = now_millis();
        let ch = self.shared.clone();
        self.store
            .writer
            .call("stats", move |txn| ops::stats(txn, &ch, now).map(Ok))
            .await
    }

    fn feed(&self) -> broadcast::Receiver<Entry> {
        self.shared.feed.subscribe()
    }

    fn head(&self) -> Seq {
        self.shared.head.load(Ordering::Acquire)
    }
}
