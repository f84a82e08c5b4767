//! [`WorkQueueChannel`]: competing consumers.

use super::ChannelBuilder;
use crate::message::ChannelKind;

/// Competing consumers: each message goes to one claimer at a time, for a lease of
/// `claim_timeout` (default 300 s). The claimer acks it (consumed), nacks it (released,
/// optionally after a delay), rejects it (dead letter), or extends the lease; a lease that
/// runs out makes the message claimable again. With `max_deliveries`, a message claimed
/// that many times without an ack becomes a dead letter that keeps the original message,
/// its attempt count and the reason.
///
/// Delivery is at-least-once, in sequence order among claimable messages. Acks and nacks
/// are fenced: one from a claim that expired or was reclaimed is refused
/// ([`ErrorKind::StaleClaim`](crate::ErrorKind::StaleClaim)). Shared reads are not
/// supported.
#[derive(Debug, Clone, Copy)]
pub struct WorkQueueChannel;

impl WorkQueueChannel {
    /// A builder for a work queue with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder::new(ChannelKind::WorkQueue, id)
    }
}
