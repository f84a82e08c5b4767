//! [`ChannelStats`]: what operators look at.

use serde::{Deserialize, Serialize};

use super::ChannelState;
use crate::message::ChannelKind;

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
