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
use sssn::Result;
use sssn::clock::now_millis;
use sssn::message::ChannelMessage;
use sssn::policy::{ClaimPolicy, ClaimScope};
use sssn::store::{
    ClaimQueue, ClaimStats, Claimed, DeadLetter, Entry, Log, LogStats, ReadFilter, ReadFrom, Seq,
    Settle, Settled,
};
use tokio::sync::broadcast;

use crate::store::StoreInner;
use crate::{history, ops};

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

/// What every handle on one channel shares: identity, durable head and counters, and
/// the feed. Only the writer's threads change it: the writer after each commit, the
/// flusher once the commit is on the disk.
pub(crate) struct ChanShared {
    /// The channel's number in `channels`.
    pub(crate) chan: i64,
    /// `Some` for channels with claims.
    pub(crate) policy: Option<ClaimPolicy>,
    /// One shared queue (`messages.state`), or an inbox per recipient (`crate::inbox`).
    pub(crate) scope: ClaimScope,
    /// The lease in force (milliseconds), changeable while the channel runs.
    lease_ms: AtomicU64,
    /// The head and counters callers see: of commits that are on the disk.
    pub(crate) head: AtomicU64,
    counts: Mutex<Counts>,
    /// The head and counters as of the writer's last commit, which its next transaction
    /// starts from: ahead of `head` and `counts` while that commit waits for its flush.
    /// Only the writer thread uses it.
    last_commit: Mutex<(u64, Counts)>,
    pub(crate) feed: broadcast::Sender<Entry>,
    /// No delayed message comes due and no lease runs out before this time (epoch ms).
    /// A lower bound: the writer lowers it whenever it sets a due time, and makes it exact
    /// when it applies due delays and expired leases; 0 (unknown) until it first does.
    pub(crate) next_due: AtomicU64,
}

impl ChanShared {
    pub(crate) fn new(row: &ops::ChannelRow, spec: &sssn::store::ChannelSpec) -> Self {
        let (feed, _) = broadcast::channel(spec.feed_capacity.max(1));
        Self {
            chan: row.chan,
            policy: spec.claims,
            scope: spec.claim_scope,
            lease_ms: AtomicU64::new(sssn::clock::millis(spec.claims.unwrap_or_default().lease)),
            head: AtomicU64::new(row.head),
            counts: Mutex::new(row.counts),
            last_commit: Mutex::new((row.head, row.counts)),
            feed,
            next_due: AtomicU64::new(0),
        }
    }

    /// Whether the channel has one shared claim queue (messages carry its state).
    pub(crate) fn shared_claims(&self) -> bool {
        self.policy.is_some() && self.scope == ClaimScope::Shared
    }

    /// Whether the channel has claims per recipient.
    pub(crate) fn per_recipient(&self) -> bool {
        self.policy.is_some() && self.scope == ClaimScope::PerRecipient
    }

    /// The committed counters.
    pub(crate) fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_counts(&self, counts: Counts) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
    }

    /// The head and counters of the writer's last commit (see `last_commit`).
    pub(crate) fn last_commit(&self) -> (u64, Counts) {
        *self.last_commit.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_last_commit(&self, head: u64, counts: Counts) {
        *self.last_commit.lock().unwrap_or_else(|e| e.into_inner()) = (head, counts);
    }

    /// Whether a claim at `now` would find nothing, from the committed state alone:
    /// nothing ready, and nothing comes due before `now`.
    pub(crate) fn nothing_claimable(&self, now: u64) -> bool {
        // The bound first: the writer publishes the counters before it raises the bound.
        // Inboxes keep no ready counter: a claim per recipient always looks.
        !self.per_recipient()
            && now < self.next_due.load(Ordering::Acquire)
            && self.counts().ready == 0
    }

    /// The claim policy (the claim queue exists only for channels opened with one).
    fn policy(&self) -> ClaimPolicy {
        ClaimPolicy {
            lease: std::time::Duration::from_millis(self.lease_ms.load(Ordering::Relaxed)),
            ..self.policy.unwrap_or_default()
        }
    }
}

/// A handle on one channel's storage: its log, and its claim queue when it has claims.
pub(crate) struct SqliteChannel {
    pub(crate) store: Arc<StoreInner>,
    pub(crate) shared: Arc<ChanShared>,
}

#[async_trait]
impl Log for SqliteChannel {
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

    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        let ch = self.shared.clone();
        self.store
            .writer
            .call("evict", move |txn| {
                ops::evict(txn, &ch, before, max_count).map(Ok)
            })
            .await
    }

    async fn remove(&self, ids: &[&str]) -> Result<usize> {
        let ch = self.shared.clone();
        let ids: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
        self.store
            .writer
            .call("remove", move |txn| ops::remove(txn, &ch, &ids).map(Ok))
            .await
    }

    async fn replace(&self, message: ChannelMessage, _ttl: Option<Duration>) -> Result<Entry> {
        // One transaction: the old version goes and the new one arrives in the same commit.
        // Expiry is the channel's purge.
        let now = now_millis();
        let ch = self.shared.clone();
        let message = Arc::new(message);
        self.store
            .writer
            .call("replace", move |txn| {
                ops::remove(txn, &ch, std::slice::from_ref(&message.id))?;
                let mut entries = ops::append(txn, &ch, std::slice::from_ref(&message), now)?;
                Ok(Ok(entries.remove(0)))
            })
            .await
    }

    async fn remove_seqs(&self, seqs: &[Seq]) -> Result<usize> {
        let ch = self.shared.clone();
        let seqs = seqs.to_vec();
        self.store
            .writer
            .call("remove", move |txn| {
                ops::remove_seqs(txn, &ch, &seqs).map(Ok)
            })
            .await
    }

    async fn clear(&self) -> Result<usize> {
        let ch = self.shared.clone();
        self.store
            .writer
            .call("clear", move |txn| ops::clear(txn, &ch).map(Ok))
            .await
    }

    async fn stats(&self) -> Result<LogStats> {
        let ch = self.shared.clone();
        self.store
            .writer
            .call("stats", move |txn| ops::log_stats(txn, &ch).map(Ok))
            .await
    }

    fn feed(&self) -> broadcast::Receiver<Entry> {
        self.shared.feed.subscribe()
    }

    fn head(&self) -> Seq {
        self.shared.head.load(Ordering::Acquire)
    }

    async fn get(&self, id: &str) -> Result<Option<Entry>> {
        let chan = self.shared.chan;
        let id = id.to_owned();
        self.store
            .query("get", move |conn| history::get(conn, chan, &id))
            .await
    }

    async fn arrived_between(
        &self,
        start: f64,
        end: f64,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let chan = self.shared.chan;
        let filter = filter.clone();
        self.store
            .query("history", move |conn| {
                history::arrived_between(conn, chan, start, end, limit, &filter)
            })
            .await
    }

    async fn latest(&self, limit: usize, filter: &ReadFilter) -> Result<Vec<Entry>> {
        let chan = self.shared.chan;
        let filter = filter.clone();
        self.store
            .query("history", move |conn| {
                history::latest(conn, chan, limit, &filter)
            })
            .await
    }
}

#[async_trait]
impl ClaimQueue for SqliteChannel {
    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>> {
        let now = now_millis();
        // An empty poll costs no transaction: it neither waits behind the writes queued
        // on the writer thread nor takes a place in their group commit.
        if self.shared.nothing_claimable(now) {
            return Ok(Vec::new());
        }
        let ch = self.shared.clone();
        let policy = ch.policy();
        let claimer = claimer.to_owned();
        self.store
            .writer
            .call("claim", move |txn| {
                ops::claim(txn, &ch, &policy, &claimer, limit, now).map(Ok)
            })
            .await
    }

    async fn settle(&self, claimer: &str, ids: &[&str], how: Settle) -> Result<Settled> {
        // Time is read here, on the caller's side, so leases mean the same after a restart.
        let now = now_millis();
        let ch = self.shared.clone();
        let policy = ch.policy();
        let claimer = claimer.to_owned();
        let ids: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
        self.store
            .writer
            .call(how.name(), move |txn| {
                ops::settle(txn, &ch, &policy, &claimer, &ids, &how, now).map(Ok)
            })
            .await
    }

    async fn settle_and_claim(
        &self,
        claimer: &str,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        let now = now_millis();
        let ch = self.shared.clone();
        let policy = ch.policy();
        let claimer = claimer.to_owned();
        let ids: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
        // One job, so one transaction and one commit for both.
        self.store
            .writer
            .call("settle and claim", move |txn| {
                let settled = ops::settle(txn, &ch, &policy, &claimer, &ids, &how, now)?;
                let claimed = ops::claim(txn, &ch, &policy, &claimer, limit, now)?;
                Ok(Ok((settled, claimed)))
            })
            .await
    }

    async fn reclaim_expired(&self) -> Result<usize> {
        let now = now_millis();
        if now < self.shared.next_due.load(Ordering::Acquire) {
            return Ok(0);
        }
        let ch = self.shared.clone();
        let policy = ch.policy();
        self.store
            .writer
            .call("reclaim_expired", move |txn| {
                ops::maintain(txn, &ch, &policy, now).map(Ok)
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

    async fn redrive(&self, ids: &[&str]) -> Result<usize> {
        let now = now_millis();
        let ch = self.shared.clone();
        let ids: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
        self.store
            .writer
            .call("redrive", move |txn| {
                ops::redrive(txn, &ch, &ids, now).map(Ok)
            })
            .await
    }

    async fn set_lease(&self, lease: std::time::Duration) -> Result<()> {
        self.shared
            .lease_ms
            .store(sssn::clock::millis(lease), Ordering::Relaxed);
        Ok(())
    }

    async fn stats(&self) -> Result<ClaimStats> {
        let now = now_millis();
        let ch = self.shared.clone();
        let policy = ch.policy();
        self.store
            .writer
            .call("stats", move |txn| {
                ops::claim_stats(txn, &ch, &policy, now).map(Ok)
            })
            .await
    }
}
