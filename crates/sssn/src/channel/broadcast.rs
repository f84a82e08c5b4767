//! [`BroadcastChannel`]: fan-out to every reader.

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::message::ChannelKind;

/// Fan-out: every reader sees every message, through its own cursor (shared reads) or a
/// push [`Subscription`](super::Subscription). No claims and no acknowledgements: one
/// reader can never hide a message from another (v1 let an ack do that, defect D13).
#[derive(Debug, Clone, Copy)]
pub struct Broadcast;

kind!(
    Broadcast,
    ChannelKind::Broadcast,
    SharedReads,
    Subscriptions
);

/// A broadcast channel handle.
pub type BroadcastChannel = Channel<Broadcast>;

impl Channel<Broadcast> {
    /// A builder for a broadcast channel with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder<Broadcast> {
        ChannelBuilder::typed(id)
    }
}
