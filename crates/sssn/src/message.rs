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

/// The deepest nesting of JSON arrays and objects a message's content may have: `{}` is
/// one level, `{"data": [1]}` two. Content deeper than this is refused on every path by
/// which it enters ([`Content::new`], [`Content::data`], [`Content::from_json`], message
/// and payload deserialisation, the HTTP write, batch and direct-message bodies), so every
/// reader can parse what it reads: serde_json stops at 128 levels and a message inside a
/// response adds up to four (`{"claims": [{"message": {"content": …`). Raw data, stored
/// as `{"data": <value>}`, may therefore nest one level less (63), and so may each
/// metadata value (the metadata object itself is at most 64 levels, like content).
pub const MAX_CONTENT_DEPTH: usize = 64;

/// The nesting depth of JSON text: the largest number of arrays and objects open at one
/// point (`1` for `{}` or `[1, 2]`, `0` for a scalar). Brackets inside strings do not
/// count. A fast scan of the bytes, meant to run before a parser on untrusted input; it
/// does not validate the JSON.
pub fn json_depth(text: &[u8]) -> usize {
    let mut deepest = 0;
    scan_depth(text, usize::MAX, &mut deepest);
    deepest
}

/// Whether `text` nests arrays and objects more than `max` levels deep (stops at the
/// first bracket past `max`, so a hostile body costs no more than its first levels).
pub fn json_deeper_than(text: &[u8], max: usize) -> bool {
    // Each level takes at least one byte: short text needs no scan.
    if text.len() <= max {
        return false;
    }
    let mut deepest = 0;
    scan_depth(text, max, &mut deepest)
}

/// [`json_deeper_than`] for text known to be valid JSON (a [`RawValue`]): every level
/// then takes two bytes, so the common small message needs no scan at all.
fn valid_json_deeper_than(text: &str, max: usize) -> bool {
    text.len() >= 2 * (max + 1) && json_deeper_than(text.as_bytes(), max)
}

/// Scans `text`, tracking the deepest nesting in `deepest`; `true` as soon as it passes
/// `max`.
fn scan_depth(text: &[u8], max: usize, deepest: &mut usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                // Skip the string: up to the next quote that is not escaped.
                i += 1;
                while i < text.len() {
                    match text[i] {
                        b'"' => break,
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > *deepest {
                    *deepest = depth;
                    if depth > max {
                        return true;
                    }
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// The error for JSON nested deeper than its limit: `what` names it ("content", "raw
/// data", "the message", …).
pub fn too_deep(what: &str, max: usize) -> Error {
    Error::new(
        ErrorKind::InvalidMessage,
        format!(
            "{} is nested more than {max} levels deep (arrays and objects); message content may nest at most {MAX_CONTENT_DEPTH} levels, so that every reader can parse it.",
            capitalised(what)
        ),
    )
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Fails with [`too_deep`] when `text` nests more than `max` levels.
pub fn check_json_depth(text: &[u8], max: usize, what: &str) -> Result<(), Error> {
    if json_deeper_than(text, max) {
        Err(too_deep(what, max))
    } else {
        Ok(())
    }
}

/// The nesting depth of a JSON value (`0` for a scalar), walked without recursion so a
/// value built deep in Rust cannot overflow the stack; stops counting past `max`.
fn value_deeper_than(value: &Value, max: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        if depth > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth)));
    }
    false
}

/// Metadata (an object inside the message) may nest as deep as content.
fn check_metadata(metadata: &Map<String, Value>) -> Result<(), Error> {
    if metadata
        .values()
        .any(|v| value_deeper_than(v, MAX_CONTENT_DEPTH - 1))
    {
        return Err(too_deep("the metadata", MAX_CONTENT_DEPTH));
    }
    Ok(())
}

fn metadata_within_limit<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Map<String, Value>, D::Error> {
    let metadata = Map::<String, Value>::deserialize(d)?;
    check_metadata(&metadata).map_err(|e| serde::de::Error::custom(e.message()))?;
    Ok(metadata)
}

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
    /// Content from a serde value that serialises to a JSON object nested at most
    /// [`MAX_CONTENT_DEPTH`] levels.
    pub fn new<T: Serialize + ?Sized>(content: &T) -> Result<Self, Error> {
        // Serialised text is valid JSON already: no second parse.
        let raw = serde_json::value::to_raw_value(content)
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("content: {e}")))?;
        Self::from_raw(raw)
    }

    /// v1's `GenericContent`: `{"data": data}` (so `data` may nest at most
    /// [`MAX_CONTENT_DEPTH`]` - 1` levels).
    pub fn data<T: Serialize + ?Sized>(data: &T) -> Result<Self, Error> {
        #[derive(Serialize)]
        struct Generic<'a, T: ?Sized> {
            data: &'a T,
        }
        Self::new(&Generic { data })
    }

    /// Content from JSON text; it must be a JSON object nested at most
    /// [`MAX_CONTENT_DEPTH`] levels.
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
        if valid_json_deeper_than(raw.get(), MAX_CONTENT_DEPTH) {
            return Err(too_deep("content", MAX_CONTENT_DEPTH));
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
    /// Free annotations (each value nested at most [`MAX_CONTENT_DEPTH`]` - 1` levels).
    #[serde(default, deserialize_with = "metadata_within_limit")]
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
        // One clock read for the id's time and the timestamp.
        let now = crate::clock::now();
        Self {
            id: crate::message_id::new_message_id_at(crate::clock::millis(now)),
            timestamp: now.as_secs_f64(),
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

    /// Decodes a message from v1 JSON (content and metadata nested at most
    /// [`MAX_CONTENT_DEPTH`] levels, so the message at most one more).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        check_json_depth(text.as_bytes(), MAX_CONTENT_DEPTH + 1, "the message")?;
        let msg: Self = serde_json::from_str(text)
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("message: {e}")))?;
        msg.validate()?;
        Ok(msg)
    }

    /// Checks the invariants a channel relies on (non-empty id, finite timestamp,
    /// metadata within [`MAX_CONTENT_DEPTH`]; content is checked when it is made).
    pub fn validate(&self) -> Result<(), Error> {
        check_metadata(&self.metadata)?;
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

pub use crate::message_id::new_message_id;

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
        matches!(
            self,
            Self::Passthrough | Self::WorkQueue | Self::Periodic | Self::Mailbox
        )
    }

    /// Whose claim state a claimer works in: a mailbox gives every recipient its own inbox
    /// ([`ClaimScope::PerRecipient`](crate::policy::ClaimScope)); the other kinds with
    /// claims share one queue.
    pub fn claim_scope(self) -> crate::policy::ClaimScope {
        match self {
            Self::Mailbox => crate::policy::ClaimScope::PerRecipient,
            _ => crate::policy::ClaimScope::Shared,
        }
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

    fn nested(levels: usize) -> String {
        // `levels` objects: {"a":{"a":…{}…}}
        let mut s = String::new();
        for _ in 1..levels {
            s.push_str(r#"{"a":"#);
        }
        s.push_str("{}");
        s.push_str(&"}".repeat(levels - 1));
        s
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"data": [1, {"x": []}]}"#), 4);
        assert_eq!(json_depth(br#"{"s": "[[[[{{{{\"]]]]"}"#), 1);
        assert_eq!(json_depth(br#"["\\", ["\""]]"#), 2);
        assert_eq!(json_depth(nested(200).as_bytes()), 200);
        assert!(json_deeper_than(nested(65).as_bytes(), 64));
        assert!(!json_deeper_than(nested(64).as_bytes(), 64));
        // The length shortcuts are exact at the boundary.
        assert!(json_deeper_than("[".repeat(65).as_bytes(), 64));
        assert!(!json_deeper_than("[".repeat(64).as_bytes(), 64));
        let tightest = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(tightest.len(), 2 * 65);
        assert!(valid_json_deeper_than(&tightest, 64));
        assert!(!valid_json_deeper_than(
            &tightest[1..tightest.len() - 1],
            64
        ));
        // A hostile prefix is refused without reading the rest.
        assert!(json_deeper_than("[".repeat(100_000).as_bytes(), 64));
    }

    #[test]
    fn content_deeper_than_the_limit_is_refused_on_every_path() {
        let at_limit = nested(MAX_CONTENT_DEPTH);
        let over = nested(MAX_CONTENT_DEPTH + 1);
        assert!(Content::from_json(at_limit.clone()).is_ok());
        let err = Content::from_json(over.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidMessage);
        assert!(
            err.message()
                .starts_with("Content is nested more than 64 levels deep")
        );
        assert!(Content::from_json("[".repeat(100_000)).is_err());

        // From Rust values: content as is, data wrapped in {"data": …}.
        let value = |levels: usize| -> Value { serde_json::from_str(&nested(levels)).unwrap() };
        assert!(Content::new(&value(MAX_CONTENT_DEPTH)).is_ok());
        assert!(Content::new(&value(MAX_CONTENT_DEPTH + 1)).is_err());
        assert!(Content::data(&value(MAX_CONTENT_DEPTH - 1)).is_ok());
        assert!(Content::data(&value(MAX_CONTENT_DEPTH)).is_err());
        assert!(ChannelMessage::with_data("s", &value(MAX_CONTENT_DEPTH)).is_err());

        // Deserialising a message or content.
        let msg = |content: &str, metadata: &str| {
            format!(
                r#"{{"id":"m","timestamp":1.0,"sender_id":"s","content":{content},"metadata":{metadata}}}"#
            )
        };
        assert!(ChannelMessage::from_json(&msg(&at_limit, "{}")).is_ok());
        assert!(ChannelMessage::from_json(&msg(&over, "{}")).is_err());
        assert!(serde_json::from_str::<ChannelMessage>(&msg(&over, "{}")).is_err());
        assert!(serde_json::from_str::<Content>(&over).is_err());
        // Metadata: the object nests like content.
        assert!(ChannelMessage::from_json(&msg("{}", &at_limit)).is_ok());
        assert!(ChannelMessage::from_json(&msg("{}", &over)).is_err());
        let err = serde_json::from_str::<ChannelMessage>(&msg("{}", &over)).unwrap_err();
        assert!(
            err.to_string().starts_with("The metadata is nested"),
            "{err}"
        );
        let mut m = ChannelMessage::with_data("s", &1).unwrap();
        m.metadata.insert("deep".into(), value(MAX_CONTENT_DEPTH));
        assert!(m.validate().is_err());
        // A hostile message body fails fast with the same words, not serde's.
        let err = ChannelMessage::from_json(&"[".repeat(100_000)).unwrap_err();
        assert!(
            err.message()
                .starts_with("The message is nested more than 65")
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
