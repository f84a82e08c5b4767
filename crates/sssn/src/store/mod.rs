//! The storage contract every backend implements, and the in-memory backend.
//!
//! A [`Store`] is a backend (memory, a SQLite file, a NATS server). It opens one
//! [`ChannelStore`] per channel: the channel's log of messages, its per-reader cursors, its
//! claims with leases, its dead letters, and a feed of committed appends for push
//! subscribers.
//!
//! The contract is shaped by what NATS JetStream can do, so each backend is a mapping:
//!
//! * every message gets a sequence number ([`Seq`]) when it is appended; cursors and
//!   claims refer to sequences, never to list positions, so eviction and removal never
//!   shift what a reader sees;
//! * a claim holds a message for a lease (the channel's `claim_timeout`); ack consumes it
//!   (it leaves the store), nack releases it (optionally after a delay), a lease that runs
//!   out makes it claimable again, and a message claimed `max_deliveries` times without an
//!   ack becomes a dead letter;
//! * acks, nacks and lease extensions are fenced: only the live claim's holder can settle it;
//! * nothing scans history: claim, ack, nack and cursor reads cost O(1) or O(log n) in the
//!   number of messages ever written.
//!
//! Channel kinds decide which operations they allow; a store implements all of them.

mod id_index;
mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use memory::MemoryStore;

use crate::error::Result;
use crate::message::{ChannelKind, ChannelMessage};

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

/// Outcome of settling (ack, nack, reject, extend) a batch of claims by message id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Ids that were settled.
    pub done: Vec<String>,
    /// Ids with no live claim by the caller: unknown, already settled, expired or
    /// reclaimed by someone else.
    pub stale: Vec<String>,
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
}

/// A snapshot of a channel's storage state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Messages currently stored (including claimed ones).
    pub stored: u64,
    /// Messages waiting to be claimed (claim-capable channels), delayed ones included.
    pub backlog: u64,
    /// Messages nacked with a delay that is not over yet.
    pub delayed: u64,
    /// Messages held by a live claim.
    pub in_flight: u64,
    /// Messages acknowledged since the channel was created.
    pub acknowledged: u64,
    /// Dead letters currently kept.
    pub dead_lettered: u64,
    /// Timestamp (epoch seconds) of the oldest stored message not yet acknowledged.
    pub oldest_unacked: Option<f64>,
    /// Sequence of the newest message ever appended.
    pub head_seq: Seq,
    /// Cursor of every reader (the last sequence it was given).
    pub cursors: Vec<(String, Seq)>,
}

/// What a store needs to know about a channel when opening it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSpec {
    /// Channel id (unique within a store).
    pub id: String,
    /// Channel kind.
    pub kind: ChannelKind,
    /// How long a claim holds a message before it can be claimed again.
    pub claim_timeout: Duration,
    /// Deliveries after which an unacknowledged message becomes a dead letter.
    pub max_deliveries: Option<u32>,
    /// Capacity of the push feed (how far a subscriber may fall behind before it lags).
    pub feed_capacity: usize,
}

impl ChannelSpec {
    /// A spec with the defaults of `kind`.
    pub fn new(id: impl Into<String>, kind: ChannelKind) -> Self {
        Self {
            id: id.into(),
            kind,
            claim_timeout: Duration::from_secs(300),
            max_deliveries: None,
            feed_capacity: 1024,
        }
    }
}

/// A storage backend: opens the storage of each channel.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Opens (creating if needed) the storage of one channel. Opening the same id again
    /// returns storage with the same contents.
    async fn open_channel(&self, spec: &ChannelSpec) -> Result<Arc<dyn ChannelStore>>;

    /// A short description for logs and stats (`memory`, `sqlite:/path`, `nats://…`).
    fn describe(&self) -> String;
}

/// The storage of one channel. See the module docs for the semantics.
#[async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    /// Appends messages in order and returns them with their sequences. A message whose id
    /// is already stored is not stored again; its existing entry is returned. Returns only
    /// once the append is durable (for durable stores); the feed sees it afterwards.
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>>;

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

    /// Claims up to `limit` of the oldest claimable messages for `claimer`. Claimable:
    /// never claimed, nacked (and any delay is over), or whose lease ran out. A message
    /// that would exceed `max_deliveries` is dead-lettered instead.
    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>>;

    /// Consumes claimed messages; they leave the store.
    async fn ack(&self, claimer: &str, ids: &[String]) -> Result<Settled>;

    /// Releases claimed messages, claimable again at once or after `delay`.
    async fn nack(&self, claimer: &str, ids: &[String], delay: Option<Duration>)
    -> Result<Settled>;

    /// Moves claimed messages straight to the dead letters with `reason`.
    async fn reject(&self, claimer: &str, ids: &[String], reason: &str) -> Result<Settled>;

    /// Renews the lease of claimed messages: they are held for a full `claim_timeout` from now.
    async fn extend(&self, claimer: &str, ids: &[String]) -> Result<Settled>;

    /// Makes messages whose lease ran out claimable again (or dead letters); returns how many.
    async fn reclaim_expired(&self) -> Result<usize>;

    /// Up to `limit` dead letters, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Appends dead letters back to the channel as new messages (same id, attempts reset)
    /// and forgets them; returns how many were moved.
    async fn redrive(&self, ids: &[String]) -> Result<usize>;

    /// Removes messages stored before `before` (epoch seconds of arrival, at the store's
    /// time grain: the memory store keeps whole seconds rounded up, so a message may
    /// outlive `before` by under a second, never the reverse), then all but the newest
    /// `max_count`; returns how many were removed.
    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize>;

    /// Removes messages by id; returns how many were removed.
    async fn remove(&self, ids: &[String]) -> Result<usize>;

    /// Removes every message (cursors stay valid: new messages get higher sequences).
    async fn clear(&self) -> Result<usize>;

    /// A snapshot of the storage state.
    async fn stats(&self) -> Result<StoreStats>;

    /// A receiver of every append committed from now on, in sequence order.
    fn feed(&self) -> broadcast::Receiver<Entry>;

    /// Sequence of the newest message ever appended.
    fn head(&self) -> Seq;
}
