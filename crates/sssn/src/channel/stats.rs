//! [`ChannelStats`]: what operators look at.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::core::lock;
use super::kind::Kind;
use super::{Caller, Channel, ChannelState, Who};
use crate::error::Result;
use crate::message::ChannelKind;
use crate::security::Operation;
use crate::store::ClaimStats;

/// A snapshot of one channel's health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Channel id.
    pub id: String,
    /// Channel kind.
    pub kind: ChannelKind,
    /// Life-cycle state.
    pub state: ChannelState,
    /// Storage backend.
    pub store: String,
    /// Messages stored now.
    pub stored: u64,
    /// Messages waiting to be claimed (claim-capable kinds).
    pub backlog: u64,
    /// Of the backlog, messages nacked with a delay not yet over.
    pub delayed: u64,
    /// Messages held by live claims.
    pub in_flight: u64,
    /// Messages acknowledged since the channel was created.
    pub acknowledged: u64,
    /// Dead letters kept.
    pub dead_lettered: u64,
    /// Age in seconds of the oldest stored message not yet acknowledged.
    pub oldest_unacked_age_secs: Option<f64>,
    /// Sequence of the newest message.
    pub head_seq: u64,
    /// Messages written through this handle since start.
    pub writes: u64,
    /// Messages returned by shared reads.
    pub reads: u64,
    /// Messages claimed.
    pub claims: u64,
    /// Messages acknowledged through this handle.
    pub acks: u64,
    /// Messages nacked through this handle.
    pub nacks: u64,
    /// Raw items waiting in a periodic channel's buffer.
    pub raw_buffered: u64,
    /// Per-reader cursors and lag.
    pub readers: Vec<ReaderStats>,
    /// Per-subscriber position and queue depth.
    pub subscribers: Vec<SubscriberStats>,
}

/// A shared reader's cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderStats {
    /// Reader id.
    pub reader: String,
    /// Last sequence given to the reader.
    pub cursor: u64,
    /// Messages written after the cursor.
    pub lag: u64,
}

/// A push subscriber's progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStats {
    /// Subscriber id.
    pub reader: String,
    /// Last sequence delivered.
    pub position: u64,
    /// Messages committed but not yet delivered.
    pub queue_depth: u64,
}

impl<K: Kind> Channel<K> {
    /// A snapshot of the channel's counters and storage state, without an authorisation
    /// check: the owner's view. Callers acting for someone else use
    /// [`stats_for`](Self::stats_for).
    pub async fn stats(&self) -> Result<ChannelStats> {
        let core = &self.core;
        let storage = core.storage()?;
        let log = storage.log.stats().await?;
        let claims = match &storage.claims {
            Some(queue) => queue.stats().await?,
            None => ClaimStats::default(),
        };
        let c = &core.counters;
        let subscribers = {
            let subs = lock(&core.subscribers);
            let mut out: Vec<SubscriberStats> = subs
                .values()
                .flatten()
                .filter(|s| !s.is_closed())
                .map(|s| {
                    let position = s.position.load(Ordering::Relaxed);
                    SubscriberStats {
                        reader: s.reader.clone(),
                        position,
                        queue_depth: log.head_seq.saturating_sub(position),
                    }
                })
                .collect();
            out.sort_by(|a, b| a.reader.cmp(&b.reader));
            out
        };
        let now = crate::clock::now_secs();
        Ok(ChannelStats {
            id: self.id().to_owned(),
            kind: core.kind,
            state: self.state(),
            store: self.store_description(),
            stored: log.stored,
            backlog: claims.backlog,
            delayed: claims.delayed,
            in_flight: claims.in_flight,
            acknowledged: claims.acknowledged,
            dead_lettered: claims.dead_lettered,
            oldest_unacked_age_secs: log.oldest.map(|t| (now - t).max(0.0)),
            head_seq: log.head_seq,
            writes: c.writes.load(Ordering::Relaxed),
            reads: c.reads.load(Ordering::Relaxed),
            claims: c.claims.load(Ordering::Relaxed),
            acks: c.acks.load(Ordering::Relaxed),
            nacks: c.nacks.load(Ordering::Relaxed),
            raw_buffered: core.raw.as_ref().map_or(0, |r| r.len() as u64),
            readers: log
                .cursors
                .into_iter()
                .map(|(reader, cursor)| ReaderStats {
                    lag: log.head_seq.saturating_sub(cursor),
                    reader,
                    cursor,
                })
                .collect(),
            subscribers,
        })
    }

    /// [`stats`](Self::stats) for `caller`, who needs read rights (what a remote client
    /// sees).
    pub async fn stats_for(&self, caller: impl Caller) -> Result<ChannelStats> {
        self.core.authorize(&Who::of(&caller), Operation::Read)?;
        self.stats().await
    }
}
