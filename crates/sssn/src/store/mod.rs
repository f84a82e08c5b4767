//! The storage contract every backend implements, and the in-memory backend.
//!
//! A [`Store`] is a backend (memory, a SQLite file, a NATS server). It opens the storage
//! of each channel ([`ChannelStorage`]) in two parts:
//!
//! * the [`Log`]: the channel's messages in sequence order, per-reader cursors, retention,
//!   and a feed of committed appends for push subscribers — every channel has one;
//! * the [`ClaimQueue`]: claims with leases, settling (ack, nack, reject, extend), lease
//!   reclaim and dead letters — only channels opened with a [`ClaimPolicy`] have one, so
//!   a broadcast's storage has no claim surface at all.
//!
//! A store is told capabilities ([`ChannelSpec`]: claims and their policy, feed capacity),
//! never the channel kind. It performs atomic mechanics; every decision about claims (does
//! a release requeue or dead-letter, with which reason, may this caller settle) is asked of
//! the [`ClaimPolicy`] (see [`crate::policy`]).
//!
//! The contract is shaped by what NATS JetStream can do, so each backend is a mapping:
//!
//! * every message gets a sequence number ([`Seq`]) when it is appended; cursors and
//!   claims refer to sequences, never to list positions, so eviction and removal never
//!   shift what a reader sees;
//! * a claim holds a message for the policy's lease; ack consumes it (it leaves the
//!   store), nack releases it (optionally after a delay), a lease that runs out releases
//!   it too, and the policy decides whether a released message is claimable again or a
//!   dead letter;
//! * acks, nacks and lease extensions are fenced: only the live claim's holder can settle it;
//! * nothing scans history: claim, ack, nack and cursor reads cost O(1) or O(log n) in the
//!   number of messages ever written.

mod id_index;
mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use memory::MemoryStore;

use crate::error::Result;
use crate::message::ChannelMessage;
pub use crate::policy::{ClaimPolicy, ClaimScope};

/// Sequence number of a message in its channel, starting at 1. `0` means "before the
/// first message".
pub type Seq = u64;

/// A stored message with its sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the channel's log.
    pub seq: Seq,
    /// The message.
    pub message: Arc<ChannelMessage>,
}

/// A message held by a claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// Position in the channel's log.
    pub seq: Seq,
    /// The message.
    pub message: Arc<ChannelMessage>,
    /// Delivery attempt, 1 for the first claim of this message.
    pub attempt: u32,
    /// When the lease runs out, Unix epoch milliseconds.
    pub lease_until_ms: u64,
}

/// Where a shared read starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// The reader's stored cursor (the start for a new reader).
    Cursor,
    /// Just after the message with this id; the id must be stored in the channel.
    AfterId(String),
    /// Just after this sequence number.
    AfterSeq(Seq),
}

/// A history query (v1's `get`, `get_range`, `get_latest`): reads of stored messages that
/// move no cursor and take no claim.
#[derive(Clone, Debug, PartialEq)]
pub enum History {
    /// The stored message with this id (none or one).
    Id(String),
    /// Up to `limit` messages that arrived at the store between `start` and `end` (Unix
    /// epoch seconds, both inclusive), oldest first. Arrival is the store's clock, the one
    /// retention by age uses: it is the time of the commit, not the message's own
    /// `timestamp` field, which a direct write may set to anything.
    Between {
        /// Earliest arrival, epoch seconds.
        start: f64,
        /// Latest arrival, epoch seconds.
        end: f64,
        /// At most this many.
        limit: usize,
    },
    /// The newest `limit` stored messages, newest first.
    Latest {
        /// At most this many.
        limit: usize,
    },
}

impl History {
    /// The most entries the query can return.
    pub fn limit(&self) -> usize {
        match self {
            Self::Id(_) => 1,
            Self::Between { limit, .. } | Self::Latest { limit } => *limit,
        }
    }

    /// The same query asking for at most `limit` entries (an id query stays as it is).
    pub fn with_limit(&self, limit: usize) -> Self {
        match self {
            Self::Id(id) => Self::Id(id.clone()),
            Self::Between { start, end, .. } => Self::Between {
                start: *start,
                end: *end,
                limit,
            },
            Self::Latest { .. } => Self::Latest { limit },
        }
    }

    /// Runs the query on `log`, keeping what passes `filter`.
    pub async fn run(&self, log: &dyn Log, filter: &ReadFilter) -> Result<Vec<Entry>> {
        match self {
            Self::Id(id) => Ok(log
                .get(id)
                .await?
                .filter(|e| filter.matches(&e.message))
                .into_iter()
                .collect()),
            Self::Between { start, end, limit } => {
                if !start.is_finite() || !end.is_finite() {
                    return Err(crate::Error::new(
                        crate::ErrorKind::InvalidArgument,
                        "history: start and end must be finite epoch seconds",
                    ));
                }
                log.arrived_between(*start, *end, *limit, filter).await
            }
            Self::Latest { limit } => log.latest(*limit, filter).await,
        }
    }
}

/// Which messages a shared read returns. Messages it passes over still move the cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// Only messages addressed to this recipient or to nobody (mailboxes).
    pub recipient: Option<String>,
}

impl ReadFilter {
    /// Whether `message` passes the filter.
    pub fn matches(&self, message: &ChannelMessage) -> bool {
        match (&self.recipient, &message.recipient_id) {
            (Some(me), Some(to)) => me == to,
            _ => true,
        }
    }
}

/// Outcome of settling (ack, nack, reject, extend) a batch of claims by message id: which
/// ids were settled and which were stale. A stale id does not fail the batch; check
/// [`stale`](Self::stale), or turn it into an error with
/// [`into_result`](Self::into_result).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "stale claims are reported here, not as an error"]
pub struct Settled {
    /// Ids that were settled.
    pub done: Vec<String>,
    /// Ids with no live claim by the caller: unknown, already settled, expired or
    /// reclaimed by someone else.
    pub stale: Vec<String>,
}

impl Settled {
    /// Whether every id was settled.
    pub fn all_done(&self) -> bool {
        self.stale.is_empty()
    }

    /// How many ids were settled.
    pub fn count(&self) -> usize {
        self.done.len()
    }

    /// The number settled, or [`ErrorKind::StaleClaim`](crate::ErrorKind::StaleClaim)
    /// naming the stale ids (the others stay settled).
    pub fn into_result(self) -> Result<usize> {
        if self.stale.is_empty() {
            return Ok(self.done.len());
        }
        Err(crate::Error::new(
            crate::ErrorKind::StaleClaim,
            format!(
                "no live claim held by the caller for {:?} (expired, reclaimed, already settled or unknown); {} other(s) settled",
                self.stale,
                self.done.len()
            ),
        ))
    }
}

/// How to settle claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Consume: the messages leave the store.
    Ack,
    /// Release: claimable again at once, or after `delay`.
    Nack {
        /// How long the messages stay out of line (`None` or zero: not at all).
        delay: Option<Duration>,
    },
    /// Dead-letter at once with this reason.
    Reject {
        /// Why (kept in the dead letter).
        reason: String,
    },
    /// Renew the leases for a full lease from now.
    Extend,
}

impl Settle {
    /// The operation's name in error messages and logs (`ack`, `nack`, `reject`, `extend`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Nack { .. } => "nack",
            Self::Reject { .. } => "reject",
            Self::Extend => "extend",
        }
    }
}

/// A message that exceeded `max_deliveries` or was rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Sequence the message had in its channel.
    pub seq: Seq,
    /// The original message.
    pub message: ChannelMessage,
    /// How many times it was delivered.
    pub attempts: u32,
    /// Why it was dead-lettered (`max_deliveries`, or the reason given to `reject`).
    pub reason: String,
    /// When, Unix epoch milliseconds.
    pub dead_at_ms: u64,
    /// On a channel with claims per recipient ([`ClaimScope::PerRecipient`]): the recipient
    /// whose inbox gave it up. A redrive puts it back in that inbox only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// A snapshot of a log's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogStats {
    /// Messages currently stored (including claimed ones).
    pub stored: u64,
    /// Timestamp (epoch seconds) of the oldest stored message.
    pub oldest: Option<f64>,
    /// Sequence of the newest message ever appended.
    pub head_seq: Seq,
    /// Cursor of every reader (the last sequence it was given).
    pub cursors: Vec<(String, Seq)>,
}

/// A snapshot of a claim queue's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimStats {
    /// Messages waiting to be claimed, delayed ones included.
    pub backlog: u64,
    /// Messages nacked with a delay that is not over yet.
    pub delayed: u64,
    /// Messages held by a live claim.
    pub in_flight: u64,
    /// Messages acknowledged since the channel was created.
    pub acknowledged: u64,
    /// Dead letters currently kept.
    pub dead_lettered: u64,
}

/// What a store needs to know about a channel when opening it: capabilities, not the kind.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSpec {
    /// Channel id (unique within a store).
    pub id: String,
    /// Whether the channel has claims, and how they behave. `None`: a log only.
    pub claims: Option<ClaimPolicy>,
    /// Whose claim state a claimer works in: one shared queue, or an inbox per recipient
    /// (mailboxes). Meaningful only with `claims`.
    pub claim_scope: ClaimScope,
    /// Capacity of the push feed (how far a subscriber may fall behind before it lags).
    pub feed_capacity: usize,
    /// The channel keeps one version per id of records that live for a time: they are
    /// written with [`Log::replace`] and its `ttl`. A store whose engine keeps one message
    /// per key and expires messages itself may map the channel onto that (the channel
    /// still purges what it finds expired). Other stores ignore it.
    pub expiring: bool,
}

impl ChannelSpec {
    /// A log-only channel with the default feed capacity.
    pub fn log(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            claims: None,
            claim_scope: ClaimScope::Shared,
            feed_capacity: 1024,
            expiring: false,
        }
    }

    /// A channel with claims under `policy`.
    pub fn with_claims(id: impl Into<String>, policy: ClaimPolicy) -> Self {
        Self {
            claims: Some(policy),
            ..Self::log(id)
        }
    }

    /// A channel with claims per recipient under `policy` (a mailbox): each claimer claims
    /// from its own inbox the messages addressed to it or to everyone
    /// ([`ClaimScope::PerRecipient`]).
    pub fn with_claims_per_recipient(id: impl Into<String>, policy: ClaimPolicy) -> Self {
        Self {
            claim_scope: ClaimScope::PerRecipient,
            ..Self::with_claims(id, policy)
        }
    }
}

/// The storage of one channel: its log, and its claim queue if it has claims.
#[derive(Clone)]
pub struct ChannelStorage {
    /// Messages, cursors, retention, feed.
    pub log: Arc<dyn Log>,
    /// Claims, settling, dead letters (channels opened with a claim policy).
    pub claims: Option<Arc<dyn ClaimQueue>>,
}

impl std::fmt::Debug for ChannelStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelStorage")
            .field("claims", &self.claims.is_some())
            .finish_non_exhaustive()
    }
}

/// A storage backend: opens the storage of each channel.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Opens (creating if needed) the storage of one channel. Opening the same id again
    /// returns storage with the same contents. Opening an existing channel with other
    /// capabilities (claims or none, shared or per recipient) than it was created with
    /// fails — except that a durable store lets a log-only channel gain claims per
    /// recipient: its inboxes start empty, so every stored message is claimable by its
    /// recipients (how a mailbox stored before mailboxes had claims opens).
    async fn open_channel(&self, spec: &ChannelSpec) -> Result<ChannelStorage>;

    /// A short description for logs and stats (`memory`, `sqlite:/path`, `nats://…`).
    fn describe(&self) -> String;
}

/// Anything that can serve as a store: a store by value (`SqliteStore::open(..)?`), or one
/// already shared (`Arc<SqliteStore>`, `Arc<dyn Store>`).
pub trait IntoStore {
    /// The shared store.
    fn into_store(self) -> Arc<dyn Store>;
}

impl<S: Store> IntoStore for S {
    fn into_store(self) -> Arc<dyn Store> {
        Arc::new(self)
    }
}

impl<S: Store> IntoStore for Arc<S> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}

impl IntoStore for Arc<dyn Store> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}

/// A channel's log: messages in sequence order, reader cursors, retention, push feed.
#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Appends messages in order and returns them with their sequences. A message whose id
    /// is already stored is not stored again; its existing entry is returned. A store whose
    /// writes cross a network may also refuse an id it stored a short while ago and removed
    /// since, so that a retried write does not bring back a consumed message (JetStream:
    /// its duplicate window); it then returns the entry as first stored. Returns only once
    /// the append is durable (for durable stores); the feed sees it afterwards.
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>>;

    /// [`append`](Self::append) of one message (a single write's path); a store may
    /// override it to spare the vectors.
    async fn append_one(&self, message: ChannelMessage) -> Result<Entry> {
        self.append(vec![message]).await?.pop().ok_or_else(|| {
            crate::Error::new(
                crate::ErrorKind::Internal,
                "the store's append returned no entry",
            )
        })
    }

    /// [`append_one`](Self::append_one) without waiting, for a store that appends in
    /// memory: the same outcome, minus the boxed future of an async trait call (a heap
    /// allocation on every write). A store that may have to wait hands the message back
    /// (the default), and the caller awaits `append_one`.
    #[allow(
        clippy::result_large_err,
        reason = "the `Err` is the message handed back, not an error: boxing it would cost the allocation this call spares"
    )]
    fn append_one_now(
        &self,
        message: ChannelMessage,
    ) -> std::result::Result<Result<Entry>, ChannelMessage> {
        Err(message)
    }

    /// Shared read: up to `limit` messages after the start point that pass `filter`, in
    /// sequence order. Stores the reader's cursor at the last message examined.
    async fn read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>>;

    /// Up to `limit` stored messages with sequence greater than `after`, without touching
    /// any cursor (catch-up for subscribers, listing).
    async fn range(&self, after: Seq, limit: usize) -> Result<Vec<Entry>>;

    /// Removes messages stored before `before` (epoch seconds of arrival, at the store's
    /// time grain: the memory store keeps whole seconds rounded up, so a message may
    /// outlive `before` by under a second, never the reverse), then all but the newest
    /// `max_count`; returns how many were removed. Claimed messages go too.
    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize>;

    /// Removes messages by id; returns how many were removed.
    async fn remove(&self, ids: &[&str]) -> Result<usize>;

    /// Stores `message` as the one version of its id, as one step: the stored message with
    /// the same id, if any, is replaced by the new one, which gets a new (higher) sequence
    /// and reaches the feed like any append (a feed may skip the old version if it was
    /// replaced before the feed read it). A lookup by id never finds the id missing in
    /// between: it sees the old version or the new one. A scan at the same time sees one
    /// or the other on the memory and SQLite stores (they swap in one step); on JetStream
    /// it may see both, or, racing the swap, neither.
    ///
    /// `ttl` is how long the version is meant to live. A store whose engine expires
    /// messages by itself (see [`ChannelSpec::expiring`]) removes it then; the others keep it
    /// until it is removed, which the channel does (discovery's purge). Stores that do not
    /// override this refuse with `UnsupportedOperation`.
    async fn replace(&self, message: ChannelMessage, ttl: Option<Duration>) -> Result<Entry> {
        let _ = (message, ttl);
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedOperation,
            "this store cannot replace a message by id",
        ))
    }

    /// Removes the messages stored at these sequences (a sequence names one version of an
    /// id: a newer version stored since is left alone); returns how many were removed.
    /// Stores that do not override this refuse with `UnsupportedOperation`.
    async fn remove_seqs(&self, seqs: &[Seq]) -> Result<usize> {
        let _ = seqs;
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedOperation,
            "this store cannot remove messages by sequence",
        ))
    }

    /// Removes every message (cursors stay valid: new messages get higher sequences).
    async fn clear(&self) -> Result<usize>;

    /// A snapshot of the log's state.
    async fn stats(&self) -> Result<LogStats>;

    /// A receiver of every append committed from now on, in sequence order.
    fn feed(&self) -> broadcast::Receiver<Entry>;

    /// Sequence of the newest message ever appended. Never starts background work.
    fn head(&self) -> Seq;

    /// The stored message with this id, found through the store's id index.
    async fn get(&self, id: &str) -> Result<Option<Entry>> {
        let _ = id;
        Err(history_unsupported())
    }

    /// Up to `limit` stored messages that pass `filter` and arrived between `start` and
    /// `end` (epoch seconds at the store's clock, both inclusive), in sequence (= arrival)
    /// order. A store locates the first one without walking older history.
    async fn arrived_between(
        &self,
        start: f64,
        end: f64,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let _ = (start, end, limit, filter);
        Err(history_unsupported())
    }

    /// The newest `limit` stored messages that pass `filter`, newest first.
    async fn latest(&self, limit: usize, filter: &ReadFilter) -> Result<Vec<Entry>> {
        let _ = (limit, filter);
        Err(history_unsupported())
    }
}

fn history_unsupported() -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::UnsupportedOperation,
        "this store does not answer history queries",
    )
}

/// A channel's claims: exclusive, leased, fenced deliveries of its log's messages.
#[async_trait]
pub trait ClaimQueue: Send + Sync + 'static {
    /// Claims up to `limit` of the oldest claimable messages for `claimer`. Claimable:
    /// never claimed, nacked (and any delay is over), or whose lease ran out — unless the
    /// policy makes the lapsed one a dead letter. With claims per recipient, only messages
    /// `claimer` may see ([`ClaimScope::may_claim`]), in `claimer`'s own inbox.
    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>>;

    /// Settles claims by message id: only those `claimer` holds live claims on (the
    /// policy's fencing rule); the others are reported stale.
    async fn settle(&self, claimer: &str, ids: &[&str], how: Settle) -> Result<Settled>;

    /// Settles `ids` as [`settle`](Self::settle) does, then claims up to `limit` for the
    /// same `claimer`: "done with these, give me the next batch". The default makes the
    /// two calls in turn; a store that can do both in one transaction (one durable commit
    /// instead of two) overrides it. When settling fails, nothing is claimed.
    async fn settle_and_claim(
        &self,
        claimer: &str,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        let settled = self.settle(claimer, ids, how).await?;
        let claimed = self.claim(claimer, limit).await?;
        Ok((settled, claimed))
    }

    /// Releases messages whose lease ran out (requeue or dead letter, as the policy says);
    /// returns how many.
    async fn reclaim_expired(&self) -> Result<usize>;

    /// Up to `limit` dead letters, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Appends dead letters back to the channel as new messages (same id, attempts reset)
    /// and forgets them; returns how many were moved.
    async fn redrive(&self, ids: &[&str]) -> Result<usize>;

    /// A snapshot of the queue's state. With claims per recipient, the sums over every
    /// inbox (a recipient has one from its first claim on): `backlog` counts a message
    /// once for each such recipient that still has it to take, `acknowledged` counts
    /// acknowledgements (a message addressed to everyone once per recipient); a message
    /// addressed to a recipient that never claimed is in no backlog yet.
    async fn stats(&self) -> Result<ClaimStats>;

    /// Changes the lease of the claims and extensions made from now on (v1's run-time
    /// `claim_timeout`); leases already given keep their deadline. Stores whose engine fixes
    /// the lease when the channel opens refuse with `UnsupportedOperation`.
    async fn set_lease(&self, lease: Duration) -> Result<()> {
        let _ = lease;
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedOperation,
            "this store fixes the claim lease when the channel opens",
        ))
    }
}
