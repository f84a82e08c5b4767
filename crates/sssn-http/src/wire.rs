//! The JSON shapes of the HTTP API and the parsers of request bodies and parameters.
//!
//! Server and remote client share these types, so both ends agree by construction. The
//! parsers are what the server runs on untrusted input (and what the fuzz targets drive);
//! each failure is a typed [`sssn::Error`] the server answers with 400.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sssn::channel::ChannelStats;
use sssn::message::{MAX_CONTENT_DEPTH, check_json_depth};
use sssn::store::{DeadLetter, Seq, Settled};
use sssn::{ChannelInfo, ChannelMessage, Content, Error, ErrorKind, Payload};

/// How a write body is to be understood (query `kind`, or v1's `direct`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadKind {
    /// Raw data: stored as `{"data": <body>}` by the default conversion (v1 `direct=false`).
    #[default]
    Data,
    /// Content: a JSON object stored as is.
    Content,
    /// A complete message (v1 `direct=true`); its `sender_id` must be the caller.
    Message,
    /// Batch only: each item is `{"data": …}`, `{"content": …}` or `{"message": …}`.
    Mixed,
}

impl PayloadKind {
    /// The query value (`data`, `content`, `message`, `mixed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Content => "content",
            Self::Message => "message",
            Self::Mixed => "mixed",
        }
    }

    /// From the query parameters `kind` and `direct` (`direct=true` means `message`).
    pub fn from_query(kind: Option<&str>, direct: Option<&str>) -> Result<Self, Error> {
        let direct = direct.map(parse_bool).transpose()?.unwrap_or(false);
        let kind = match kind {
            None | Some("") => None,
            Some("data") => Some(Self::Data),
            Some("content") => Some(Self::Content),
            Some("message") => Some(Self::Message),
            Some("mixed") => Some(Self::Mixed),
            Some(other) => {
                return Err(invalid(format!(
                    "unknown payload kind '{other}' (expected data, content, message or mixed)"
                )));
            }
        };
        match (kind, direct) {
            (None, true) | (Some(Self::Message), _) => Ok(Self::Message),
            (Some(k), true) => Err(invalid(format!(
                "'direct=true' contradicts 'kind={}'",
                k.as_str()
            ))),
            (Some(k), false) => Ok(k),
            (None, false) => Ok(Self::Data),
        }
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, detail)
}

fn bad_json(e: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::InvalidMessage,
        format!("Invalid JSON body: {e}."),
    )
}

/// A boolean query value, as v1 accepted it: true/false, 1/0, yes/no, on/off (any case).
pub fn parse_bool(text: &str) -> Result<bool, Error> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(invalid(format!("'{text}' is not a boolean"))),
    }
}

/// A non-negative integer query value (`limit`): decimal digits, or a number in decimal or
/// exponent notation whose value is a whole number (`10.0`, `1e20`). Values beyond `usize`
/// saturate; the server then clamps them to its maximum.
pub fn parse_count(name: &str, text: &str) -> Result<usize, Error> {
    let t = text.trim();
    let bad = || {
        invalid(format!(
            "'{name}' must be a non-negative integer, got '{text}'"
        ))
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(t.parse::<usize>().unwrap_or(usize::MAX));
    }
    // Only plain numbers: no signs, no `inf`/`nan`, no hex.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        || !t.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(bad());
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => {
            // `as` saturates at usize::MAX.
            Ok(v as usize)
        }
        _ => Err(bad()),
    }
}

/// A sequence number: the `Last-Event-ID` header or the `after` parameter of the event
/// stream.
pub fn parse_seq(text: &str) -> Result<Seq, Error> {
    text.trim().parse::<Seq>().map_err(|_| {
        invalid(format!(
            "event id must be a sequence number (a non-negative integer), got '{text}'"
        ))
    })
}

/// How deep one payload of `kind` may nest (see [`MAX_CONTENT_DEPTH`]): raw data is
/// wrapped in `{"data": …}`, a message wraps its content, a mixed item wraps a payload.
fn depth_limit(kind: PayloadKind) -> usize {
    match kind {
        PayloadKind::Data => MAX_CONTENT_DEPTH - 1,
        PayloadKind::Content => MAX_CONTENT_DEPTH,
        PayloadKind::Message => MAX_CONTENT_DEPTH + 1,
        PayloadKind::Mixed => MAX_CONTENT_DEPTH + 2,
    }
}

fn payload_of(kind: PayloadKind, raw: &RawValue) -> Result<Payload, Error> {
    match kind {
        PayloadKind::Data => {
            check_json_depth(raw.get().as_bytes(), depth_limit(kind), "raw data")?;
            serde_json::from_str::<Value>(raw.get())
                .map(Payload::Data)
                .map_err(|e| bad_json(&e))
        }
        PayloadKind::Content => Content::from_json(raw.get()).map(Payload::Content),
        PayloadKind::Message => {
            ChannelMessage::from_json(&with_message_defaults(raw.get())).map(Payload::Message)
        }
        PayloadKind::Mixed => {
            #[derive(Deserialize)]
            #[serde(rename_all = "lowercase")]
            enum Tagged<'a> {
                #[serde(borrow)]
                Data(&'a RawValue),
                #[serde(borrow)]
                Content(&'a RawValue),
                #[serde(borrow)]
                Message(&'a RawValue),
            }
            let tagged: Tagged<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidMessage,
                    format!(
                        "a mixed batch item must be {{\"data\": …}}, {{\"content\": …}} or {{\"message\": …}}: {e}"
                    ),
                )
            })?;
            match tagged {
                Tagged::Data(r) => payload_of(PayloadKind::Data, r),
                Tagged::Content(r) => payload_of(PayloadKind::Content, r),
                Tagged::Message(r) => payload_of(PayloadKind::Message, r),
            }
        }
    }
}

/// A direct message may leave out what the server fills in anyway: `id` (a new one),
/// `timestamp` (now) and `sender_id` (the caller), so that `{"content": …,
/// "recipient_id": "bob"}` addresses a mailbox message. A body that is not an object is
/// passed on unchanged, for the message parser to report.
fn with_message_defaults(text: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    // Raw field values: the content's exact text is kept.
    let Ok(mut fields) =
        serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(text)
    else {
        return Cow::Borrowed(text);
    };
    if ["id", "timestamp", "sender_id"]
        .iter()
        .all(|k| fields.contains_key(*k))
    {
        return Cow::Borrowed(text);
    }
    let raw = |v: Value| RawValue::from_string(v.to_string()).ok();
    if !fields.contains_key("id")
        && let Some(v) = raw(Value::String(sssn::message::new_message_id()))
    {
        fields.insert("id".into(), v);
    }
    if !fields.contains_key("timestamp")
        && let Some(v) = raw(Value::from(sssn::clock::now_secs()))
    {
        fields.insert("timestamp".into(), v);
    }
    if !fields.contains_key("sender_id")
        && let Some(v) = raw(Value::String(String::new()))
    {
        fields.insert("sender_id".into(), v);
    }
    serde_json::to_string(&fields).map_or(Cow::Borrowed(text), Cow::Owned)
}

/// The body of `PUT /channels/{id}`: one payload of `kind` (`mixed` is for batches only).
/// Its content may nest at most [`MAX_CONTENT_DEPTH`] levels (raw data one less, a
/// message one more); a deeper body is refused before it is parsed.
pub fn parse_write(body: &[u8], kind: PayloadKind) -> Result<Payload, Error> {
    if kind == PayloadKind::Mixed {
        return Err(invalid("'kind=mixed' is for batch writes"));
    }
    let what = match kind {
        PayloadKind::Data => "the body (raw data)",
        PayloadKind::Content => "the body (content)",
        _ => "the body (a message)",
    };
    check_json_depth(body, depth_limit(kind), what)?;
    let raw: &RawValue = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
    payload_of(kind, raw)
}

/// The body of `POST /channels/{id}/batch`: a JSON array of payloads of `kind`, each
/// within the nesting limit of [`parse_write`] (a deeper body is refused before it is
/// parsed).
pub fn parse_batch(body: &[u8], kind: PayloadKind) -> Result<Vec<Payload>, Error> {
    // The array is one level more than its items.
    check_json_depth(body, depth_limit(kind) + 1, "the batch body")?;
    let not_array = |e: serde_json::Error| {
        if e.is_data() {
            invalid("A batch body must be a JSON array.")
        } else {
            bad_json(&e)
        }
    };
    if kind == PayloadKind::Data {
        // One pass straight to values (the common, hot case).
        let items: Vec<Value> = serde_json::from_slice(body).map_err(not_array)?;
        return Ok(items.into_iter().map(Payload::Data).collect());
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(not_array)?;
    items.into_iter().map(|raw| payload_of(kind, raw)).collect()
}

/// The body of acknowledge, nack, extend, reject and redrive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsRequest {
    /// Message ids (a missing key means none, as in v1).
    #[serde(default)]
    pub message_ids: Vec<String>,
    /// Nack only: claimable again after this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Reject only: why the messages are dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Parses an [`IdsRequest`] body with v1's error texts (`'message_ids' must be a list.`).
pub fn parse_ids(body: &[u8]) -> Result<IdsRequest, Error> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_json_text("empty body"));
    } else {
        serde_json::from_slice(body).map_err(|e| bad_json(&e))?
    };
    let Value::Object(mut map) = value else {
        return Err(invalid("The body must be a JSON object."));
    };
    let message_ids = match map.remove("message_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid("'message_ids' must be a list of strings.")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("'message_ids' must be a list.")),
    };
    let delay_ms = match map.remove("delay_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            json_count(&v).ok_or_else(|| invalid("'delay_ms' must be a non-negative integer."))?,
        ),
    };
    let reason = match map.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid("'reason' must be a string.")),
    };
    Ok(IdsRequest {
        message_ids,
        delay_ms,
        reason,
    })
}

fn bad_json_text(why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidMessage,
        format!("Invalid JSON body: {why}."),
    )
}

/// `GET /channels/{id}` response: `{"messages": [...]}` with full content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse<M = ChannelMessage> {
    /// The messages, in sequence order.
    pub messages: Vec<M>,
}

/// `PUT /channels/{id}` response: `{"status": "accepted", "item_id": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResponse {
    /// Always `accepted`.
    pub status: String,
    /// The new message id (on a periodic channel: the buffered item's id; `""` when the
    /// channel's conversion dropped the item).
    pub item_id: String,
}

/// `POST /channels/{id}/batch` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Always `accepted`.
    pub status: String,
    /// One id per item, in order.
    pub item_ids: Vec<String>,
}

/// Response of acknowledge / nack / extend / reject / redrive: `{"status": "ok", "<verb>": n}`
/// with the number actually settled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledResponse {
    /// Always `ok`.
    pub status: String,
    /// Acknowledge: how many were acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<usize>,
    /// Nack: how many were released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nacked: Option<usize>,
    /// Extend: how many leases were renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended: Option<usize>,
    /// Reject: how many were dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<usize>,
    /// Redrive: how many dead letters went back into the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven: Option<usize>,
    /// Clear, evict, remove: how many messages were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<usize>,
    /// Settling: the ids that were settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Vec<String>>,
    /// Settling: the ids with no live claim by the caller (expired, reclaimed, already
    /// settled or unknown); they were left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<Vec<String>>,
}

impl SettledResponse {
    /// The answer to a settle (`verb`: acknowledged, nacked, extended, rejected): v1's
    /// count, and the outcome of every id.
    pub fn of(verb: &str, settled: Settled) -> Self {
        let mut r = Self::count_of(verb, settled.done.len());
        r.done = Some(settled.done);
        r.stale = Some(settled.stale);
        r
    }

    /// An answer that carries a count under `verb`.
    pub fn count_of(verb: &str, n: usize) -> Self {
        let mut r = Self {
            status: "ok".into(),
            ..Self::default()
        };
        match verb {
            "acknowledged" => r.acknowledged = Some(n),
            "nacked" => r.nacked = Some(n),
            "extended" => r.extended = Some(n),
            "rejected" => r.rejected = Some(n),
            "redriven" => r.redriven = Some(n),
            _ => r.removed = Some(n),
        }
        r
    }

    /// The count, whichever verb carries it.
    pub fn count(&self) -> usize {
        self.acknowledged
            .or(self.nacked)
            .or(self.extended)
            .or(self.rejected)
            .or(self.redriven)
            .or(self.removed)
            .unwrap_or(0)
    }

    /// The per-id outcome of a settle of `ids`. A server that reports no outcome (v1)
    /// settled everything it counted.
    pub fn settled(self, ids: &[&str]) -> Settled {
        let n = self.count().min(ids.len());
        match (self.done, self.stale) {
            (Some(done), Some(stale)) => Settled { done, stale },
            _ => Settled {
                done: ids[..n].iter().map(|&id| id.to_owned()).collect(),
                stale: ids[n..].iter().map(|&id| id.to_owned()).collect(),
            },
        }
    }
}

/// The body of `POST /channels/{id}/evict`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvictRequest {
    /// Remove messages stored before this time (Unix epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<f64>,
    /// Then keep only the newest this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<usize>,
}

/// Parses an [`EvictRequest`] body: an object (serde alone would also take an array, by
/// position, which the document does not allow).
pub fn parse_evict(body: &[u8]) -> Result<EvictRequest, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(EvictRequest::default());
    }
    let shape = || "The body must be {\"before\": epoch seconds, \"max_count\": n}";
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("{}: {e}", shape())))?;
    let Value::Object(map) = value else {
        return Err(invalid(format!("{}.", shape())));
    };
    let mut request = EvictRequest::default();
    for (key, v) in map {
        match (key.as_str(), v) {
            (_, Value::Null) => {}
            ("before", v) => {
                request.before = Some(v.as_f64().filter(|b| b.is_finite()).ok_or_else(|| {
                    invalid("'before' must be a finite number of epoch seconds.")
                })?);
            }
            ("max_count", v) => {
                let n = json_count(&v)
                    .ok_or_else(|| invalid("'max_count' must be a non-negative integer."))?;
                request.max_count = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            // Unknown fields are ignored, as serde does for the other bodies.
            _ => {}
        }
    }
    Ok(request)
}

/// A non-negative integer from JSON, written as `440` or `440.0` (JSON Schema counts both as
/// integers).
fn json_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64)
            // Exact: the value is integral and in range.
            .map(|f| f as u64)
    })
}

/// One claimed message in `POST /channels/{id}/claim`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimedMessage<M = ChannelMessage> {
    /// Sequence number in the channel.
    pub seq: Seq,
    /// Delivery attempt, 1 for the first claim.
    pub attempt: u32,
    /// When the lease runs out, Unix epoch milliseconds.
    pub lease_until_ms: u64,
    /// The message.
    pub message: M,
}

/// `POST /channels/{id}/claim` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimResponse<M = ChannelMessage> {
    /// The claims, oldest message first.
    pub claims: Vec<ClaimedMessage<M>>,
}

/// `POST /channels/{id}/ack-and-claim` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckAndClaimResponse<M = ChannelMessage> {
    /// Always `ok`.
    pub status: String,
    /// How many were acknowledged.
    pub acknowledged: usize,
    /// The ids that were acknowledged.
    pub done: Vec<String>,
    /// The ids with no live claim by the caller; left alone.
    pub stale: Vec<String>,
    /// The new claims, oldest message first.
    pub claims: Vec<ClaimedMessage<M>>,
}

/// `GET /channels/{id}/dead-letters` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLettersResponse {
    /// Dead letters, oldest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// `GET /channels` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelsResponse {
    /// The channels the caller may read, by id.
    pub channels: Vec<ChannelInfo>,
}

/// `GET /channels/{id}/stats` response: [`ChannelStats`] (its `state` included).
pub type StatsResponse = ChannelStats;

/// Data of the SSE `gap` event: the messages `from..=to` were removed before they could be
/// delivered (retention, removal, a consuming ack). Its event id is `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapEvent {
    /// First sequence lost.
    pub from: Seq,
    /// Last sequence lost.
    pub to: Seq,
}

/// The data of the `ready` event that opens every event stream: the sequence delivery
/// starts after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyEvent {
    /// Events follow with sequences greater than this.
    pub after: Seq,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_message_may_leave_out_what_the_server_fills_in() {
        let Payload::Message(m) = parse_write(
            br#"{"content": {"data": "hi"}, "recipient_id": "bob"}"#,
            PayloadKind::Message,
        )
        .unwrap() else {
            panic!("a message")
        };
        assert!(!m.id.is_empty());
        assert!(m.timestamp > 0.0);
        assert_eq!(m.sender_id, "");
        assert_eq!(m.recipient_id.as_deref(), Some("bob"));
        // What it gives is kept.
        let Payload::Message(m) = parse_write(
            br#"{"id": "m1", "timestamp": 5, "sender_id": "me", "content": {"data": 1}}"#,
            PayloadKind::Message,
        )
        .unwrap() else {
            panic!("a message")
        };
        assert_eq!(
            (m.id.as_str(), m.timestamp, m.sender_id.as_str()),
            ("m1", 5.0, "me")
        );
        assert!(parse_write(br#"{"recipient_id": "bob"}"#, PayloadKind::Message).is_err());
        assert!(parse_write(b"[1]", PayloadKind::Message).is_err());
    }

    #[test]
    fn evict_bodies_are_objects_and_counts_may_be_written_as_floats() {
        // Found by schemathesis: `[null, null]` was taken as a struct by position.
        for body in ["[null, null]", "[1, 2]", "3", "\"x\""] {
            assert!(parse_evict(body.as_bytes()).is_err(), "{body}");
        }
        assert_eq!(parse_evict(b" ").unwrap(), EvictRequest::default());
        let r = parse_evict(br#"{"max_count": 440.0, "before": null, "other": {}}"#).unwrap();
        assert_eq!((r.before, r.max_count), (None, Some(440)));
        let r = parse_evict(br#"{"before": 1.5, "max_count": 3}"#).unwrap();
        assert_eq!((r.before, r.max_count), (Some(1.5), Some(3)));
        for body in [
            r#"{"max_count": -1}"#,
            r#"{"max_count": 1.5}"#,
            r#"{"before": "now"}"#,
        ] {
            assert!(parse_evict(body.as_bytes()).is_err(), "{body}");
        }
        let ids = parse_ids(br#"{"message_ids": [], "delay_ms": 250.0}"#).unwrap();
        assert_eq!(ids.delay_ms, Some(250));
        assert!(parse_ids(br#"{"message_ids": [], "delay_ms": 2.5}"#).is_err());
    }

    #[test]
    fn payload_kind_from_query() {
        assert_eq!(
            PayloadKind::from_query(None, None).unwrap(),
            PayloadKind::Data
        );
        assert_eq!(
            PayloadKind::from_query(None, Some("yes")).unwrap(),
            PayloadKind::Message
        );
        assert_eq!(
            PayloadKind::from_query(Some("content"), Some("false")).unwrap(),
            PayloadKind::Content
        );
        assert!(PayloadKind::from_query(Some("content"), Some("true")).is_err());
        assert!(PayloadKind::from_query(Some("blob"), None).is_err());
        assert!(PayloadKind::from_query(None, Some("maybe")).is_err());
    }

    #[test]
    fn write_bodies() {
        assert_eq!(
            parse_write(b"[1,2]", PayloadKind::Data).unwrap(),
            Payload::Data(serde_json::json!([1, 2]))
        );
        let Payload::Content(c) = parse_write(br#"{"a": 1}"#, PayloadKind::Content).unwrap() else {
            panic!("content expected")
        };
        assert_eq!(c.json(), r#"{"a": 1}"#);
        assert!(parse_write(b"1", PayloadKind::Content).is_err());
        assert!(parse_write(b"{", PayloadKind::Data).is_err());
        assert!(parse_write(br#"{"id": 1}"#, PayloadKind::Message).is_err());
        let msg = ChannelMessage::with_data("me", &1).unwrap();
        assert_eq!(
            parse_write(msg.to_json().as_bytes(), PayloadKind::Message).unwrap(),
            Payload::Message(msg)
        );
    }

    #[test]
    fn batch_bodies() {
        let items = parse_batch(br#"[1, "two", {"x": 3}]"#, PayloadKind::Data).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(
            parse_batch(br#"{"x": 1}"#, PayloadKind::Data)
                .unwrap_err()
                .message(),
            "A batch body must be a JSON array."
        );
        let mixed = parse_batch(
            br#"[{"data": 1}, {"content": {"c": true}}]"#,
            PayloadKind::Mixed,
        )
        .unwrap();
        assert!(matches!(mixed[0], Payload::Data(_)));
        assert!(matches!(mixed[1], Payload::Content(_)));
        assert!(parse_batch(br#"[{"other": 1}]"#, PayloadKind::Mixed).is_err());
        assert!(parse_batch(br#"[{"data": 1, "content": {}}]"#, PayloadKind::Mixed).is_err());
    }

    /// `levels` nested arrays around `1`.
    fn arrays(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    /// A content object nested `levels` deep.
    fn objects(levels: usize) -> String {
        format!(
            "{}{{}}{}",
            r#"{"a":"#.repeat(levels - 1),
            "}".repeat(levels - 1)
        )
    }

    #[test]
    fn every_body_kind_keeps_to_one_nesting_limit() {
        let max = MAX_CONTENT_DEPTH;
        let deep_error = |r: Result<Payload, Error>| {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidMessage);
            assert!(e.message().contains("nested more than"), "{}", e.message());
        };
        // Data: wrapped in {"data": …}, so one level less.
        assert!(parse_write(arrays(max - 1).as_bytes(), PayloadKind::Data).is_ok());
        deep_error(parse_write(arrays(max).as_bytes(), PayloadKind::Data));
        deep_error(parse_write(arrays(100_000).as_bytes(), PayloadKind::Data));
        // Content.
        assert!(parse_write(objects(max).as_bytes(), PayloadKind::Content).is_ok());
        deep_error(parse_write(
            objects(max + 1).as_bytes(),
            PayloadKind::Content,
        ));
        let hostile = format!("{}{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
        deep_error(parse_write(hostile.as_bytes(), PayloadKind::Content));
        // A direct message.
        let msg = |content: &str| {
            format!(r#"{{"id":"m","timestamp":1.0,"sender_id":"s","content":{content}}}"#)
        };
        assert!(parse_write(msg(&objects(max)).as_bytes(), PayloadKind::Message).is_ok());
        deep_error(parse_write(
            msg(&objects(max + 1)).as_bytes(),
            PayloadKind::Message,
        ));
        // Batches of each kind, including items of a mixed batch.
        let batch = |items: &[String]| format!("[{}]", items.join(","));
        let ok = |body: String, kind| assert!(parse_batch(body.as_bytes(), kind).is_ok());
        let deep = |body: String, kind| {
            let e = parse_batch(body.as_bytes(), kind).unwrap_err();
            assert!(e.message().contains("nested more than"), "{}", e.message());
        };
        ok(batch(&[arrays(max - 1), "2".into()]), PayloadKind::Data);
        deep(batch(&["2".into(), arrays(max)]), PayloadKind::Data);
        ok(batch(&[objects(max)]), PayloadKind::Content);
        deep(
            batch(&["{}".into(), objects(max + 1)]),
            PayloadKind::Content,
        );
        ok(batch(&[msg(&objects(max))]), PayloadKind::Message);
        deep(batch(&[msg(&objects(max + 1))]), PayloadKind::Message);
        let tagged = |tag: &str, item: &str| format!(r#"{{"{tag}":{item}}}"#);
        ok(
            batch(&[
                tagged("data", &arrays(max - 1)),
                tagged("content", &objects(max)),
                tagged("message", &msg(&objects(max))),
            ]),
            PayloadKind::Mixed,
        );
        deep(batch(&[tagged("data", &arrays(max))]), PayloadKind::Mixed);
        deep(
            batch(&[tagged("content", &objects(max + 1))]),
            PayloadKind::Mixed,
        );
        deep(
            batch(&[tagged("message", &msg(&objects(max + 1)))]),
            PayloadKind::Mixed,
        );
    }

    #[test]
    fn ids_bodies_follow_v1() {
        assert_eq!(parse_ids(b"{}").unwrap().message_ids, Vec::<String>::new());
        assert_eq!(
            parse_ids(br#"{"message_ids": "a"}"#).unwrap_err().message(),
            "'message_ids' must be a list."
        );
        assert_eq!(
            parse_ids(b"[]").unwrap_err().message(),
            "The body must be a JSON object."
        );
        assert!(parse_ids(b"").is_err());
        assert!(parse_ids(br#"{"message_ids": [1]}"#).is_err());
        let r = parse_ids(br#"{"message_ids": ["a"], "delay_ms": 50, "reason": "bad"}"#).unwrap();
        assert_eq!(r.delay_ms, Some(50));
        assert_eq!(r.reason.as_deref(), Some("bad"));
        assert!(parse_ids(br#"{"delay_ms": -1}"#).is_err());
    }

    #[test]
    fn scalars() {
        assert!(parse_bool("ON").unwrap());
        assert!(!parse_bool("0").unwrap());
        assert_eq!(parse_seq(" 42 ").unwrap(), 42);
        assert!(parse_seq("-1").is_err());
        assert!(parse_count("limit", "ten").is_err());
        assert_eq!(parse_count("limit", "1e20").unwrap(), usize::MAX);
        assert_eq!(
            parse_count("limit", "99999999999999999999999").unwrap(),
            usize::MAX
        );
        assert_eq!(parse_count("limit", "10.0").unwrap(), 10);
        assert_eq!(parse_count("limit", "1E3").unwrap(), 1000);
        for bad in ["-1", "2.5", "inf", "NaN", "0x10", "", "+5", "1e-1", "e5"] {
            assert!(parse_count("limit", bad).is_err(), "{bad}");
        }
    }
}
