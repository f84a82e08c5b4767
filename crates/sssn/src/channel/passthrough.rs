//! [`PassthroughChannel`]: the base kind.

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::message::ChannelKind;

/// The base kind: writes are converted inline, readers use shared (cursor) reads or push
/// subscriptions, and consumers may also claim messages (exclusive reads) and settle them.
///
/// A shared read sees every stored message; an acknowledged message is consumed and leaves
/// the channel, so later shared reads no longer see it. Claims do not hide a message from
/// shared readers (v1 hid it and then skipped it forever, defect D17).
#[derive(Debug, Clone, Copy)]
pub struct Passthrough;

kind!(
    Passthrough,
    ChannelKind::Passthrough,
    SharedReads,
    Claims,
    Subscriptions
);

/// A passthrough channel handle.
pub type PassthroughChannel = Channel<Passthrough>;

impl Channel<Passthrough> {
    /// A builder for a passthrough channel with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder<Passthrough> {
        ChannelBuilder::typed(id)
    }
}
