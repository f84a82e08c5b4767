//! Server-Sent Events: the encoder the server streams with and the parser the remote client
//! reads with.
//!
//! A channel's event stream (`GET /channels/{id}/events`) opens with a `ready` event whose
//! id is the sequence delivery starts after, then sends one unnamed event per message —
//! `id` = the message's sequence, `data` = the message in v1 JSON — and a `: keep-alive`
//! comment when idle:
//!
//! ```text
//! event: ready
//! id: 41
//! data: {"after":41}
//!
//! id: 42
//! data: {"id":"…","timestamp":…,"sender_id":"sensor","content":{"data":22.4},…}
//!
//! : keep-alive
//!
//! ```
//!
//! A client that reconnects sends the last id it saw as `Last-Event-ID` (browsers do this
//! by themselves, and the `ready` event's id counts) and gets every later message exactly
//! once.

use bytes::{BufMut, BytesMut};

/// Appends one event to `out`. `data` may contain line breaks (content JSON keeps the
/// writer's whitespace): each line becomes its own `data:` field, which a parser joins
/// back with `\n`.
pub fn encode_event(out: &mut BytesMut, event: Option<&str>, id: Option<u64>, data: &str) {
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    let mut rest = data;
    loop {
        let (line, next) = match rest.find(['\r', '\n']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], Some(&rest[i + skip..]))
            }
            None => (rest, None),
        };
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    out.put_u8(b'\n');
}

/// Appends a comment (ignored by parsers; keeps idle connections open).
pub fn encode_comment(out: &mut BytesMut, text: &str) {
    out.put_slice(b": ");
    out.put_slice(text.replace(['\r', '\n'], " ").as_bytes());
    out.put_slice(b"\n\n");
}

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field (`None` for the default `message` type).
    pub event: Option<String>,
    /// The `id` field of this event, if it had one.
    pub id: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser (the WHATWG algorithm, minus `retry`): feed
/// it bytes as they arrive, take events as they complete.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: String,
    has_data: bool,
    /// The last event id seen (kept across events, as `Last-Event-ID`).
    last_event_id: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id the stream set (what to send as `Last-Event-ID` on reconnect).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Feeds bytes; returns the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < buffer.len() {
            match buffer[i] {
                b'\n' => {
                    self.line(&buffer[start..i], &mut events);
                    i += 1;
                    start = i;
                }
                b'\r' => {
                    if i + 1 == buffer.len() {
                        break; // a `\r\n` may be split across reads: wait for the next byte
                    }
                    self.line(&buffer[start..i], &mut events);
                    i += if buffer[i + 1] == b'\n' { 2 } else { 1 };
                    start = i;
                }
                _ => i += 1,
            }
        }
        buffer.drain(..start);
        self.buffer = buffer;
        events
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                events.push(SseEvent {
                    event: self.event.take(),
                    id: self.id.take(),
                    data,
                });
            }
            self.event = None;
            self.id = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                self.id = Some(value.to_owned());
                self.last_event_id = Some(value.to_owned());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_parses_back_split_anywhere() {
        let mut out = BytesMut::new();
        encode_event(&mut out, Some("ready"), Some(7), r#"{"after":7}"#);
        encode_comment(&mut out, "keep-alive");
        encode_event(&mut out, None, Some(8), "{\"a\":\r\n 1,\n\"b\": 2}");
        let bytes = out.freeze();
        for split in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut events = p.push(&bytes[..split]);
            events.extend(p.push(&bytes[split..]));
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0].event.as_deref(), Some("ready"));
            assert_eq!(events[0].id.as_deref(), Some("7"));
            assert_eq!(events[1].event, None);
            assert_eq!(events[1].id.as_deref(), Some("8"));
            assert_eq!(events[1].data, "{\"a\":\n 1,\n\"b\": 2}");
            assert_eq!(p.last_event_id(), Some("8"));
        }
    }

    #[test]
    fn parser_follows_the_spec_on_odd_input() {
        let mut p = SseParser::new();
        let events = p.push(b"data\n\nid: 3\n\n:c\ndata:x\rdata: y\r\n\r\n");
        // "data" alone adds an empty line; an id-only block dispatches nothing but sets the id.
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "");
        assert_eq!(events[1].data, "x\ny");
        assert_eq!(p.last_event_id(), Some("3"));
    }
}
