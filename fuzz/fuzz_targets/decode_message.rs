//! Message decoding: any input either fails with a typed error or decodes into a message
//! that re-encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sssn::{ChannelMessage, Content};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = ChannelMessage::from_json(text) {
        let again = ChannelMessage::from_json(&message.to_json()).expect("re-encoded message decodes");
        assert_eq!(again, message);
    }
    if let Ok(content) = Content::from_json(text) {
        // The exact text, less the JSON whitespace around it.
        let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        assert_eq!(content.json(), trimmed, "content keeps the exact text");
        let _ = content.to_value();
    }
});
