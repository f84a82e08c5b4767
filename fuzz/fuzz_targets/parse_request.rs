//! Request parsing: write/batch/ids bodies, query values, event ids, and the SSE codec
//! (what the server runs on untrusted input and the client on the server's stream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sssn::Payload;
use sssn_http::sse::{SseParser, encode_event};
use sssn_http::wire::{self, PayloadKind};

const KINDS: [PayloadKind; 4] = [
    PayloadKind::Data,
    PayloadKind::Content,
    PayloadKind::Message,
    PayloadKind::Mixed,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(selector & 3)];
    if let Ok(payload) = wire::parse_write(body, kind) {
        if let Payload::Content(c) = &payload {
            assert!(c.json().trim_start().starts_with('{'));
        }
        if let Payload::Message(m) = &payload {
            assert!(m.validate().is_ok());
        }
    }
    if let Ok(items) = wire::parse_batch(body, kind) {
        assert!(items.len() <= body.len());
    }
    if let Ok(ids) = wire::parse_ids(body) {
        let encoded = serde_json::to_vec(&ids).unwrap();
        assert_eq!(wire::parse_ids(&encoded).unwrap(), ids);
    }
    let text = String::from_utf8_lossy(body);
    let _ = wire::parse_bool(&text);
    let _ = wire::parse_count("limit", &text);
    if let Ok(seq) = wire::parse_seq(&text) {
        assert_eq!(wire::parse_seq(&seq.to_string()).unwrap(), seq);
    }
    let (a, b) = text.split_at(text.floor_char_boundary(text.len() / 2));
    let _ = PayloadKind::from_query(Some(a), Some(b));

    // The SSE parser never panics, whatever the split; and what we encode parses back.
    let cut = usize::from(selector) % (body.len() + 1);
    let mut parser = SseParser::new();
    let _ = parser.push(&body[..cut]);
    let _ = parser.push(&body[cut..]);
    let mut out = bytes_mut();
    encode_event(&mut out, Some("message"), Some(u64::from(selector)), &text);
    let mut parser = SseParser::new();
    let (first, second) = out.split_at(cut.min(out.len()));
    let mut events = parser.push(first);
    events.extend(parser.push(second));
    assert_eq!(events.len(), 1);
    let expected = text.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(events[0].data, expected);
    assert_eq!(events[0].id.as_deref(), Some(selector.to_string().as_str()));
});

fn bytes_mut() -> bytes::BytesMut {
    bytes::BytesMut::new()
}
