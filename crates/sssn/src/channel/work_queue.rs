//! [`WorkQueueChannel`]: competing consumers.

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::message::ChannelKind;

/// Competing consumers: each message goes to one claimer at a time, for a lease of
/// `claim_timeout` (default 300 s). The claimer acks it (consumed), nacks it (released,
/// optionally after a delay), rejects it (dead letter), or extends the lease; a lease that
/// runs out makes the message claimable again. With `max_deliveries`, a message claimed
/// that many times without an ack becomes a dead letter that keeps the original message,
/// its attempt count and the reason.
///
/// Delivery is at-least-once, in sequence order among claimable messages. Settling is
/// fenced: an ack or nack from a claim that expired or was reclaimed is reported in
/// [`Settled::stale`](crate::store::Settled::stale). A work queue has no shared reads and
/// no subscriptions: its work is claimed.
#[derive(Debug, Clone, Copy)]
pub struct WorkQueue;

kind!(WorkQueue, ChannelKind::WorkQueue, Claims);

/// A work queue handle.
pub type WorkQueueChannel = Channel<WorkQueue>;

impl Channel<WorkQueue> {
    /// A builder for a work queue with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder<WorkQueue> {
        ChannelBuilder::typed(id)
    }
}
