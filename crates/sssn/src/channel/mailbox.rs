//! [`MailboxChannel`]: per-recipient delivery.

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::message::ChannelKind;

/// Per-recipient delivery: a reader sees only messages whose `recipient_id` is its own id
/// or is empty (addressed to everyone), through its own cursor or a push subscription.
/// Nothing addressed to a reader is ever skipped, whatever the `limit` (v1 lost messages
/// past the limit, defect D9), and subscribers get only their own messages.
#[derive(Debug, Clone, Copy)]
pub struct Mailbox;

kind!(Mailbox, ChannelKind::Mailbox, SharedReads, Subscriptions);

/// A mailbox channel handle.
pub type MailboxChannel = Channel<Mailbox>;

impl Channel<Mailbox> {
    /// A builder for a mailbox channel with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder<Mailbox> {
        ChannelBuilder::typed(id)
    }
}
