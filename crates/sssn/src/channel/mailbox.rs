//! [`MailboxChannel`]: per-recipient delivery.

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::message::ChannelKind;

/// Per-recipient delivery: a reader sees only messages whose `recipient_id` is its own id
/// or is empty (addressed to everyone), through its own cursor or a push subscription.
/// Nothing addressed to a reader is ever skipped, whatever the `limit` (v1 lost messages
/// past the limit, defect D9), and subscribers get only their own messages.
///
/// A recipient can also take its messages exclusively, with claims (leases, ack, nack,
/// reject, extend, `max_deliveries`, dead letters), as on a work queue, except that every
/// recipient has its own inbox of claim state
/// ([`ClaimScope::PerRecipient`](crate::policy::ClaimScope)):
///
/// * `claim(me, n)` takes only messages addressed to `me` or to everyone, never another
///   recipient's (v1's exclusive read took every message in its window, defect D9);
/// * a message addressed to everyone is claimable once per recipient: each recipient's
///   ack, nack, lapsed lease or dead letter concerns its own inbox only;
/// * an ack consumes a message addressed to the acknowledging recipient (it leaves the
///   store); a message addressed to everyone stays for the other recipients and leaves
///   by retention;
/// * workers sharing one recipient identity compete for that recipient's messages.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sssn::Result<()> {
/// use sssn::channel::MailboxChannel;
/// use sssn::message::ChannelMessage;
///
/// let inbox = MailboxChannel::new("inbox").build();
/// inbox.start().await?;
/// let to_bob = ChannelMessage::with_data("alice", &"hi bob")?.recipient("bob");
/// inbox.write_message("alice", to_bob).await?;
/// inbox.write("alice", &"hello all").await?;
///
/// let carol = inbox.claim("carol", 10).await?;
/// assert_eq!(carol.len(), 1, "carol gets the message to everyone, not bob's");
/// let bob = inbox.claim("bob", 10).await?;
/// assert_eq!(bob.len(), 2, "bob gets his own and the one to everyone");
/// assert!(inbox.ack("bob", &bob).await?.all_done());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Mailbox;

kind!(
    Mailbox,
    ChannelKind::Mailbox,
    SharedReads,
    Claims,
    Subscriptions
);

/// A mailbox channel handle.
pub type MailboxChannel = Channel<Mailbox>;

impl Channel<Mailbox> {
    /// A builder for a mailbox channel with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder<Mailbox> {
        ChannelBuilder::typed(id)
    }
}
