//! [`PassthroughChannel`]: the base kind.

use super::ChannelBuilder;
use crate::message::ChannelKind;

/// The base kind: writes are converted inline, readers use shared (cursor) reads, and
/// consumers may also claim messages (exclusive reads) and ack or nack them.
///
/// A shared read sees every stored message; an acknowledged message is consumed and leaves
/// the channel, so later shared reads no longer see it. Claims do not hide a message from
/// shared readers (v1 hid it and then skipped it forever, defect D17).
#[derive(Debug, Clone, Copy)]
pub struct PassthroughChannel;

impl PassthroughChannel {
    /// A builder for a passthrough channel with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder::new(ChannelKind::Passthrough, id)
    }
}
