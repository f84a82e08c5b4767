//! User hooks of a channel: the [`ChannelHooks`] trait (the Rust analogue of v1's
//! subclass overrides) and the closure types of the builder's single-hook setters.
//!
//! Every hook runs guarded (see `hook_calls.rs`): a panic is caught and becomes an
//! [`Error`] of kind [`Internal`](crate::ErrorKind::Internal), an async hook that runs
//! longer than the channel's `hook_timeout` is abandoned with an error of kind
//! [`Timeout`](crate::ErrorKind::Timeout). On the write path the writer gets that error
//! (and `on_error` hears of it); in a background phase `on_error` hears of it and the
//! phase goes on.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::Channel;
use crate::error::{Error, Result};
use crate::message::{ChannelMessage, Content, Payload};

/// Converts a raw write into a message (or drops it with `Ok(None)`), synchronously.
pub type ConvertFn = Arc<dyn Fn(&str, Payload) -> Result<Option<ChannelMessage>> + Send + Sync>;
/// Converts a raw write into a message, asynchronously (sender id, payload).
pub type AsyncConvertFn = Arc<
    dyn Fn(String, Payload) -> BoxFuture<'static, Result<Option<ChannelMessage>>> + Send + Sync,
>;
/// Filters (`Ok(None)`) or changes a converted message before it is stored.
pub type BeforeStoreFn =
    Arc<dyn Fn(ChannelMessage) -> Result<Option<ChannelMessage>> + Send + Sync>;
/// Observes every stored message.
pub type MessageFn = Arc<dyn Fn(&ChannelMessage) + Send + Sync>;
/// Observes failures of background phases and of hooks (phase, error).
pub type ErrorFn = Arc<dyn Fn(&str, &Error) + Send + Sync>;

/// v1's default conversion: a message is kept as is, content is wrapped in a new message,
/// anything else becomes `{"data": …}`.
pub fn default_convert(sender_id: &str, payload: Payload) -> Result<Option<ChannelMessage>> {
    Ok(Some(match payload {
        Payload::Message(m) => m,
        Payload::Content(c) => ChannelMessage::new(sender_id, c),
        Payload::Data(v) => ChannelMessage::new(sender_id, Content::data(&v)?),
    }))
}

/// What one processing pass of a periodic channel did with its raw buffer, handed to
/// [`ChannelHooks::on_process`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// Raw items taken from the buffer.
    pub taken: usize,
    /// Messages stored.
    pub stored: usize,
    /// Items a conversion (or `before_store`) dropped on purpose (`Ok(None)`).
    pub dropped: usize,
    /// Items whose conversion failed (reported to `on_error` as `process`, then dropped).
    pub failed: usize,
}

/// The hooks of a channel, for [`ChannelBuilder::hooks`](super::ChannelBuilder::hooks):
/// override the methods you need, every other keeps its default (the channel's own
/// behaviour). The analogue of v1's subclass overrides, with three differences: a hook
/// runs *after* the channel's default step instead of replacing it (nothing to forget to
/// call), a failing or panicking hook is reported and never ends a loop (v1 defect D25),
/// and a hook is bounded by the channel's `hook_timeout` (default 10 s).
///
/// Where each hook runs:
///
/// | hook | when | a failure |
/// |---|---|---|
/// | [`convert`](Self::convert) | each write (every kind), or each buffered item (periodic) | the writer gets it; periodic: `on_error("process")`, item dropped |
/// | [`before_store`](Self::before_store) | after `convert`, before the store | as `convert` |
/// | [`on_message`](Self::on_message) | after each message is stored, in the writer's call | `on_error("on_message")`; the write succeeded |
/// | [`on_start`](Self::on_start) | `start`, once the store is open and writes are accepted | `start` fails, the channel is back where it was |
/// | [`on_stop`](Self::on_stop) | `stop`/`drain` of a running channel, after its loops ended (and the buffer drained) | `on_error("on_stop")` |
/// | [`on_pull`](Self::on_pull) | periodic: each cycle, after the source's pull | `on_error("on_pull")` |
/// | [`on_process`](Self::on_process) | periodic: after each processing pass of the raw buffer | `on_error("on_process")` |
/// | [`on_maintain`](Self::on_maintain) | after each maintenance pass (retention, lease reclaim, registration expiry) | `on_error("on_maintain")` |
/// | [`on_error`](Self::on_error) | a background phase or a hook failed | caught and logged |
///
/// Hooks run in the task of whoever triggered them (the writer, the loop), so a write a
/// hook makes continues the trace being handled (see [`crate::trace`]). A hook must not
/// start, stop or drain its own channel (those wait for the hook: it would time out).
/// A synchronous hook cannot be interrupted: do blocking work with
/// `tokio::task::spawn_blocking`. A channel with a hooks object calls its `convert`,
/// `before_store` and `on_message` on every write (a boxed future each); a channel
/// without hooks pays nothing for them.
///
/// ```
/// # async fn demo() -> sssn::Result<()> {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use sssn::channel::{Channel, ChannelHooks, PassthroughChannel};
/// use sssn::{ChannelMessage, Result};
///
/// /// Drops readings below zero and stamps the rest with the unit.
/// #[derive(Default)]
/// struct Celsius {
///     started: AtomicUsize,
/// }
///
/// #[async_trait::async_trait]
/// impl ChannelHooks for Celsius {
///     async fn before_store(&self, message: ChannelMessage) -> Result<Option<ChannelMessage>> {
///         if message.data::<f64>()? < 0.0 {
///             return Ok(None);
///         }
///         Ok(Some(message.meta("unit", "celsius")))
///     }
///
///     async fn on_start(&self, _channel: &Channel) -> Result<()> {
///         self.started.fetch_add(1, Ordering::SeqCst);
///         Ok(())
///     }
/// }
///
/// let ch = PassthroughChannel::new("temps").hooks(Celsius::default()).build();
/// ch.start().await?;
/// assert_eq!(ch.write("sensor", &-3.0).await?, "", "filtered");
/// ch.write("sensor", &21.5).await?;
/// let stored = ch.read("reader", 10).await?;
/// assert_eq!(stored.len(), 1);
/// assert_eq!(stored[0].metadata["unit"], "celsius");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ChannelHooks: Send + Sync + 'static {
    /// Converts a raw write into the message to store; `Ok(None)` drops it (the write
    /// returns `""`). Default: [`default_convert`]. A direct write's message goes through
    /// it too (after the sender check).
    async fn convert(&self, sender_id: &str, payload: Payload) -> Result<Option<ChannelMessage>> {
        default_convert(sender_id, payload)
    }

    /// Filters (`Ok(None)`: the write returns `""`) or changes (enriches) a converted
    /// message before it is stored. Its `sender_id` is filled in already; the result is
    /// validated again. Default: stores the message as it is.
    async fn before_store(&self, message: ChannelMessage) -> Result<Option<ChannelMessage>> {
        Ok(Some(message))
    }

    /// Observes a message once it is stored (it cannot change it any more). Default:
    /// nothing.
    async fn on_message(&self, message: &ChannelMessage) -> Result<()> {
        let _ = message;
        Ok(())
    }

    /// The channel was started: its store is open and it accepts writes (this hook may
    /// write). An error fails `start`. Default: nothing.
    async fn on_start(&self, channel: &Channel) -> Result<()> {
        let _ = channel;
        Ok(())
    }

    /// The channel stopped (writes refused, loops ended; after a drain, the buffer is
    /// processed). Called once per `start`. Default: nothing.
    async fn on_stop(&self, channel: &Channel) -> Result<()> {
        let _ = channel;
        Ok(())
    }

    /// Periodic channels: a cycle began and the source's pull buffered `pulled` items.
    /// What this hook writes to the channel is processed in the same cycle (v1's
    /// `pull_fn` writing into its channel). Default: nothing.
    async fn on_pull(&self, channel: &Channel, pulled: usize) -> Result<()> {
        let _ = (channel, pulled);
        Ok(())
    }

    /// Periodic channels: a processing pass of the raw buffer ended (each cycle, and each
    /// batch of a drain). With [`on_pull`](Self::on_pull), which runs just before the
    /// cycle's pass, it brackets the conversion of the buffer. Default: nothing.
    async fn on_process(&self, channel: &Channel, report: &ProcessReport) -> Result<()> {
        let _ = (channel, report);
        Ok(())
    }

    /// A maintenance pass ended (retention, lease reclaim, registration expiry; each
    /// `maintenance_interval`, or a [`maintain`](Channel::maintain) call). Default:
    /// nothing.
    async fn on_maintain(&self, channel: &Channel) -> Result<()> {
        let _ = channel;
        Ok(())
    }

    /// A background phase or a hook failed. `phase` is `pull`, `process`, `maintain`,
    /// `retention`, `subscriber`, `stop`, or the name of the failed hook (`convert`,
    /// `before_store`, `on_message`, `on_start`, `on_stop`, `on_pull`, `on_process`,
    /// `on_maintain`). Default: an `error` log event.
    fn on_error(&self, channel_id: &str, phase: &str, error: &Error) {
        tracing::error!(channel = channel_id, phase, %error, "channel error");
    }
}

/// Shared hooks: one object can serve several channels, or stay in the owner's hands.
#[async_trait]
impl<T: ChannelHooks + ?Sized> ChannelHooks for Arc<T> {
    async fn convert(&self, sender_id: &str, payload: Payload) -> Result<Option<ChannelMessage>> {
        (**self).convert(sender_id, payload).await
    }
    async fn before_store(&self, message: ChannelMessage) -> Result<Option<ChannelMessage>> {
        (**self).before_store(message).await
    }
    async fn on_message(&self, message: &ChannelMessage) -> Result<()> {
        (**self).on_message(message).await
    }
    async fn on_start(&self, channel: &Channel) -> Result<()> {
        (**self).on_start(channel).await
    }
    async fn on_stop(&self, channel: &Channel) -> Result<()> {
        (**self).on_stop(channel).await
    }
    async fn on_pull(&self, channel: &Channel, pulled: usize) -> Result<()> {
        (**self).on_pull(channel, pulled).await
    }
    async fn on_process(&self, channel: &Channel, report: &ProcessReport) -> Result<()> {
        (**self).on_process(channel, report).await
    }
    async fn on_maintain(&self, channel: &Channel) -> Result<()> {
        (**self).on_maintain(channel).await
    }
    fn on_error(&self, channel_id: &str, phase: &str, error: &Error) {
        (**self).on_error(channel_id, phase, error);
    }
}

/// An [`AsyncConvertFn`] from a closure returning a future.
pub(crate) fn async_convert<F, Fut>(f: F) -> AsyncConvertFn
where
    F: Fn(String, Payload) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<ChannelMessage>>> + Send + 'static,
{
    Arc::new(move |sender, payload| Box::pin(f(sender, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_convert_matches_v1() {
        let m = ChannelMessage::with_data("other", &1).unwrap();
        let out = default_convert("me", Payload::Message(m.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out, m, "a message is returned unchanged");

        let c = Content::from_json(r#"{"celsius":2.5}"#).unwrap();
        let out = default_convert("me", Payload::Content(c.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out.content, c);
        assert_eq!(out.sender_id, "me");

        let out = default_convert("me", Payload::Data(serde_json::json!([1, 2])))
            .unwrap()
            .unwrap();
        assert_eq!(out.data::<Vec<i32>>().unwrap(), vec![1, 2]);
    }

    struct Plain;
    impl ChannelHooks for Plain {}

    #[tokio::test]
    async fn the_trait_defaults_are_the_channels_own_behaviour() {
        let h = Plain;
        let m = h
            .convert("me", Payload::Data(serde_json::json!(1)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.sender_id, "me");
        let kept = h.before_store(m.clone()).await.unwrap().unwrap();
        assert_eq!(kept, m, "before_store keeps the message as it is");
        h.on_message(&m).await.unwrap();
    }
}
