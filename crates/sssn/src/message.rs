//! The message model: [`ChannelMessage`], its [`Content`], and channel identity
//! ([`ChannelInfo`], [`Visibility`]).
//!
//! The JSON shape is sssn 0.0.1's, so clients written for it read and write these
//! messages unchanged:
//!
//! ```json
//! {"id": "…", "timestamp": 1795993127.47, "sender_id": "writer-1",
//!  "content": {"data": {"kind": "event", "value": 42}},
//!  "metadata": {}, "correlation_id": null, "reply_to": null, "recipient_id": null}
//! ```
//!
//! Content is kept as the exact JSON text it was written with, so every field survives a
//! round trip (v1 dropped declared fields when serialising, defect D2) and the framework
//! never re-encodes user data.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};

/// The payload of a message: always a JSON object, stored as its JSON text.
///
/// The default content for raw data is v1's `GenericContent`: `{"data": <value>}`
/// ([`Content::data`]). Typed content is any serde type that serialises to an object
/// ([`Content::new`]), read back with [`Content::get`].
#[derive(Clone)]
pub struct Content(Box<RawValue>);

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Content {}

impl Content {
    /// Content from a serde value that serialises to a JSON object.
    pub fn new<T: Serialize + ?Sized>(content: &T) -> Result<Self, Error> {
        // Serialised text is valid JSON already: no second parse.
        let raw = serde_json::value::to_raw_value(content)
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("content: {e}")))?;
        Self::from_raw(raw)
    }

    /// v1's `GenericContent`: `{"data": data}`.
    pub fn data<T: Serialize + ?Sized>(data: &T) -> Result<Self, Error> {
        #[derive(Serialize)]
        struct Generic<'a, T: ?Sized> {
            data: &'a T,
        }
        Self::new(&Generic { data })
    }

    /// Content from JSON text; it must be a JSON object.
    pub fn from_json(text: impl Into<String>) -> Result<Self, Error> {
        let raw = RawValue::from_string(text.into())
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("content: {e}")))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Box<RawValue>) -> Result<Self, Error> {
        if !raw.get().trim_start().starts_with('{') {
            return Err(Error::new(
                ErrorKind::InvalidMessage,
                "content must be a JSON object",
            ));
        }
        Ok(Self(raw))
    }

    /// The exact JSON text of the content.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Decodes the whole content as `T`.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(self.0.get())
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("content: {e}")))
    }

    /// Decodes the `data` field of a `GenericContent` as `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        #[derive(Deserialize)]
        struct Generic<T> {
            data: T,
        }
        self.get::<Generic<T>>().map(|g| g.data)
    }

    /// The content as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl Default for Content {
    /// `{"data": null}`, v1's `GenericContent()`.
    fn default() -> Self {
        Self(RawValue::from_string(r#"{"data":null}"#.to_owned()).expect("valid JSON"))
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// v1's `GenericContent`: a wrapper with one `data` field holding any JSON value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenericContent<T = Value> {
    /// The wrapped value.
    pub data: T,
}

/// The unit stored in a channel. Stored messages are shared as `Arc<ChannelMessage>` and
/// never change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// Unique message id (uuid v7 text by default). Writing an id the channel already
    /// holds is idempotent: the message is not stored twice.
    pub id: String,
    /// Creation time, Unix epoch seconds.
    pub timestamp: f64,
    /// Who wrote it. On writes through a channel this is always the caller's identity.
    pub sender_id: String,
    /// The payload.
    pub content: Content,
    /// Free annotations.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Request/response or thread key.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Channel id where replies go.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Mailbox target; `None` addresses everyone.
    #[serde(default)]
    pub recipient_id: Option<String>,
}

impl ChannelMessage {
    /// A new message with a fresh id and the current time.
    pub fn new(sender_id: impl Into<String>, content: Content) -> Self {
        Self {
            id: new_message_id(),
            timestamp: crate::clock::now_secs(),
            sender_id: sender_id.into(),
            content,
            metadata: Map::new(),
            correlation_id: None,
            reply_to: None,
            recipient_id: None,
        }
    }

    /// A new message whose content is `{"data": data}`.
    pub fn with_data<T: Serialize + ?Sized>(
        sender_id: impl Into<String>,
        data: &T,
    ) -> Result<Self, Error> {
        Ok(Self::new(sender_id, Content::data(data)?))
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the reply channel.
    #[must_use]
    pub fn reply_to(mut self, channel_id: impl Into<String>) -> Self {
        self.reply_to = Some(channel_id.into());
        self
    }

    /// Sets the mailbox recipient.
    #[must_use]
    pub fn recipient(mut self, recipient_id: impl Into<String>) -> Self {
        self.recipient_id = Some(recipient_id.into());
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Shorthand for `self.content.data_as()`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.content.data_as()
    }

    /// Encodes the message as v1 JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("messages always serialise")
    }

    /// Decodes a message from v1 JSON.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let msg: Self = serde_json::from_str(text)
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("message: {e}")))?;
        msg.validate()?;
        Ok(msg)
    }

    /// Checks the invariants a channel relies on (non-empty id, finite timestamp).
    pub fn validate(&self) -> Result<(), Error> {
        if self.id.is_empty() {
            return Err(Error::new(ErrorKind::InvalidMessage, "message id is empty"));
        }
        if !self.timestamp.is_finite() {
            return Err(Error::new(
                ErrorKind::InvalidMessage,
                "message timestamp is not a finite number",
            ));
        }
        Ok(())
    }
}

/// What a writer hands to a channel: raw data (wrapped as `{"data": …}` by the default
/// conversion), ready content, or a complete message (a direct write).
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// Raw JSON data.
    Data(Value),
    /// Content to store as is.
    Content(Content),
    /// A complete message (direct write).
    Message(ChannelMessage),
}

impl Eq for ChannelMessage {}

impl std::hash::Hash for ChannelMessage {
    /// By id: equal messages have equal ids (v1 promised hashable messages, defect D21).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// A fresh message id: uuid v7 text (time-ordered within a process).
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Who may see a channel from outside its process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// In-process only (the default).
    #[default]
    Private,
    /// Served over HTTP and listed in discovery.
    Public,
}

impl Visibility {
    /// `"private"` or `"public"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
        }
    }
}

impl std::str::FromStr for Visibility {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "private" => Ok(Self::Private),
            "public" => Ok(Self::Public),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown visibility '{other}' (expected 'private' or 'public')"),
            )),
        }
    }
}

/// The kind of a channel, which fixes what its operations mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Base kind: shared (cursor) reads and exclusive (claim) reads.
    Passthrough,
    /// Fan-out: cursor reads and push subscriptions, no claims.
    Broadcast,
    /// Competing consumers: claims with leases, no shared reads.
    WorkQueue,
    /// Per-recipient delivery.
    Mailbox,
    /// A channel with its own loop that pulls a source every period.
    Periodic,
    /// Registry of channels and systems with TTL.
    Discovery,
}

impl ChannelKind {
    /// Snake-case name, as in configs and `ChannelInfo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough",
            Self::Broadcast => "broadcast",
            Self::WorkQueue => "work_queue",
            Self::Mailbox => "mailbox",
            Self::Periodic => "periodic",
            Self::Discovery => "discovery",
        }
    }

    /// Whether cursor (shared) reads are allowed.
    pub fn shared_reads(self) -> bool {
        !matches!(self, Self::WorkQueue)
    }

    /// Whether claims (exclusive reads), acks and nacks are allowed.
    pub fn claims(self) -> bool {
        matches!(self, Self::Passthrough | Self::WorkQueue | Self::Periodic)
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.replace('-', "_").as_str() {
            "passthrough" => Self::Passthrough,
            "broadcast" => Self::Broadcast,
            "work_queue" | "workqueue" => Self::WorkQueue,
            "mailbox" => Self::Mailbox,
            "periodic" | "periodic_source" => Self::Periodic,
            "discovery" => Self::Discovery,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("unknown channel kind '{other}'"),
                ));
            }
        })
    }
}

/// Serialisable snapshot of a channel's identity (v1 shape plus `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Channel id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Private or public.
    #[serde(default)]
    pub visibility: Visibility,
    /// Loop period in seconds (meaningful for periodic channels).
    #[serde(default = "default_period")]
    pub period: f64,
    /// Channel kind (absent in v1 JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChannelKind>,
}

fn default_period() -> f64 {
    60.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_content_round_trips_in_v1_shape() {
        let msg = ChannelMessage::with_data(
            "writer-1",
            &serde_json::json!({"kind": "event", "value": 42}),
        )
        .unwrap();
        let json = msg.to_json();
        assert!(
            json.contains(r#""content":{"data":{"kind":"event","value":42}}"#),
            "{json}"
        );
        assert!(json.contains(r#""correlation_id":null"#));
        let back = ChannelMessage::from_json(&json).unwrap();
        assert_eq!(back, msg);
        let data: Value = back.data().unwrap();
        assert_eq!(data["value"], 42);
    }

    #[test]
    fn typed_content_keeps_declared_fields() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Reading {
            celsius: f64,
            sensor: String,
        }
        let r = Reading {
            celsius: 2.5,
            sensor: "s1".into(),
        };
        let msg = ChannelMessage::new("s", Content::new(&r).unwrap());
        let back = ChannelMessage::from_json(&msg.to_json()).unwrap();
        assert_eq!(back.content.get::<Reading>().unwrap(), r);
    }

    #[test]
    fn content_must_be_an_object() {
        for bad in ["1", "[1]", "\"x\"", "null"] {
            let err = Content::from_json(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidMessage);
        }
        let text = r#"{"id":"a","timestamp":1.0,"sender_id":"s","content":[1]}"#;
        assert!(ChannelMessage::from_json(text).is_err());
    }

    #[test]
    fn v1_message_json_parses_with_defaults() {
        let text = r#"{"id":"m1","timestamp":1795993127.5,"sender_id":"w","content":{"data":{"a":1}},"extra":true}"#;
        let msg = ChannelMessage::from_json(text).unwrap();
        assert_eq!(msg.correlation_id, None);
        assert!(msg.metadata.is_empty());
        assert_eq!(msg.content.json(), r#"{"data":{"a":1}}"#);
        assert!(
            ChannelMessage::from_json(r#"{"id":1,"timestamp":1,"sender_id":"s","content":{}}"#)
                .is_err()
        );
    }

    #[test]
    fn default_content_is_generic_null() {
        assert_eq!(Content::default().data_as::<Option<i32>>().unwrap(), None);
    }

    #[test]
    fn channel_info_serialises_visibility_as_lowercase() {
        let info = ChannelInfo {
            id: "c".into(),
            name: "C".into(),
            description: String::new(),
            visibility: Visibility::Private,
            period: 60.0,
            kind: None,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["visibility"], "private");
        assert_eq!(v["period"], 60.0);
        assert!("PUBLIC".parse::<Visibility>().is_err());
    }
}
