//! User hooks of a channel: `convert`, `on_message`, `on_error`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::message::{ChannelMessage, Content, Payload};

/// Converts a raw write into a message (or drops it with `Ok(None)`).
pub type ConvertFn = Arc<dyn Fn(&str, Payload) -> Result<Option<ChannelMessage>> + Send + Sync>;
/// Observes every stored message.
pub type MessageFn = Arc<dyn Fn(&ChannelMessage) + Send + Sync>;
/// Observes failures of background phases.
pub type ErrorFn = Arc<dyn Fn(&str, &Error) + Send + Sync>;

#[derive(Default, Clone)]
pub(crate) struct Hooks {
    pub(crate) convert: Option<ConvertFn>,
    pub(crate) on_message: Option<MessageFn>,
    pub(crate) on_error: Option<ErrorFn>,
}

/// v1's default conversion: a message is kept as is, content is wrapped in a new message,
/// anything else becomes `{"data": …}`.
pub fn default_convert(sender_id: &str, payload: Payload) -> Result<Option<ChannelMessage>> {
    Ok(Some(match payload {
        Payload::Message(m) => m,
        Payload::Content(c) => ChannelMessage::new(sender_id, c),
        Payload::Data(v) => ChannelMessage::new(sender_id, Content::data(&v)?),
    }))
}

impl Hooks {
    pub(crate) fn convert(
        &self,
        sender_id: &str,
        payload: Payload,
    ) -> Result<Option<ChannelMessage>> {
        match &self.convert {
            Some(f) => f(sender_id, payload),
            None => default_convert(sender_id, payload),
        }
    }

    pub(crate) fn error(&self, channel_id: &str, phase: &str, error: &Error) {
        match &self.on_error {
            Some(f) => f(phase, error),
            None => tracing::error!(channel = channel_id, phase, %error, "channel error"),
        }
    }
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
}
