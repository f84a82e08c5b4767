//! Deterministic, injective names for streams and subject tokens.
//!
//! JetStream stream names and subject tokens cannot contain `.`, `*`, `>`, whitespace or
//! path separators, while channel ids, message ids and reader ids are free text. Every such
//! id is escaped into `[A-Za-z0-9_-]`: letters, digits and `-` stay as they are, `_` becomes
//! `__`, every other byte becomes `_` + two upper-case hex digits. The escape is
//! injective, and an escaped token never contains `_` followed by a character outside
//! `[0-9A-F_]`, which keeps the suffixes used below (`_DLQ`, `__STATE`, `_H…`) from ever
//! colliding with an escaped id. Tokens that would grow past [`MAX_TOKEN`] bytes are
//! replaced by `_H` + the SHA-256 of the id in hex (ids that long are rare; a collision
//! would need a SHA-256 collision).

use ring::digest::{SHA256, digest};
use sssn::{Error, ErrorKind, Result};

/// Longest escaped token kept verbatim; longer ones are hashed. Stream names become
/// directory names on the server, so they must stay well under 255 bytes.
pub(crate) const MAX_TOKEN: usize = 160;

/// Escapes `id` into a token of `[A-Za-z0-9_-]` (see the module docs).
pub(crate) fn token(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => out.push(b as char),
            b'_' => out.push_str("__"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('_');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
        if out.len() > MAX_TOKEN {
            return hashed(id);
        }
    }
    out
}

fn hashed(id: &str) -> String {
    let d = digest(&SHA256, id.as_bytes());
    let mut out = String::from("_H");
    for b in d.as_ref() {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Checks a store prefix: 1-32 letters, digits or `-` (no `_`, so that the streams of
/// two prefixes never share a name prefix).
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty()
        || prefix.len() > 32
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid JetStream store prefix {prefix:?}: 1-32 letters, digits or '-'"),
        ));
    }
    Ok(())
}

/// Name of the stream holding the messages of channel `channel_id` in the namespace
/// `prefix`: `<prefix>_<escaped id>`.
pub fn stream_name(prefix: &str, channel_id: &str) -> String {
    format!("{prefix}_{}", token(channel_id))
}

/// Name of the per-store stream holding reader cursors and counters: `<prefix>__STATE`.
pub(crate) fn state_stream(prefix: &str) -> String {
    format!("{prefix}__STATE")
}

/// Every name and subject one channel uses.
#[derive(Clone, Debug)]
pub(crate) struct ChannelNames {
    /// The channel's message stream.
    pub(crate) stream: String,
    /// Its dead-letter stream.
    pub(crate) dlq: String,
    /// `<prefix>.<token>`: root of the message and dead-letter subjects.
    root: String,
    /// Root of this channel's subjects in the state stream.
    state_root: String,
}

impl ChannelNames {
    pub(crate) fn new(prefix: &str, channel_id: &str) -> Self {
        let t = token(channel_id);
        Self {
            stream: format!("{prefix}_{t}"),
            dlq: format!("{prefix}_{t}_DLQ"),
            root: format!("{prefix}.{t}"),
            state_root: format!("{prefix}._state.{t}"),
        }
    }

    /// Subjects of the message stream.
    pub(crate) fn stream_subjects(&self) -> String {
        format!("{}.m.*", self.root)
    }

    /// Subjects of the dead-letter stream.
    pub(crate) fn dlq_subjects(&self) -> String {
        format!("{}.dlq.*", self.root)
    }

    /// The subject of message `id`: one subject per id, so a lookup by id is a
    /// last-by-subject direct get and a duplicate append is refused by the server.
    pub(crate) fn message(&self, id: &str) -> String {
        format!("{}.m.{}", self.root, token(id))
    }

    /// The subject of the dead letters of message `id`.
    pub(crate) fn dead_letter(&self, id: &str) -> String {
        format!("{}.dlq.{}", self.root, token(id))
    }

    /// The subject holding the cursor of `reader`.
    pub(crate) fn cursor(&self, reader: &str) -> String {
        format!("{}.c.{}", self.state_root, token(reader))
    }

    /// Filter matching every cursor subject of this channel.
    pub(crate) fn cursors(&self) -> String {
        format!("{}.c.*", self.state_root)
    }

    /// The subject holding the count of acknowledged messages.
    pub(crate) fn acked(&self) -> String {
        format!("{}.acked", self.state_root)
    }
}

/// Subjects of the per-store state stream.
pub(crate) fn state_subjects(prefix: &str) -> String {
    format!("{prefix}._state.>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_safe_and_injective() {
        let ids = [
            "a", "a_", "a__", "_a", "a.b", "a b", "a*b", "a>b", "a_2Eb", "a_DLQ", "a-b", "Ä", "_",
            "__", "x_STATE", "", "a/b", "\t",
        ];
        let mut seen = HashSet::new();
        for id in ids {
            let t = token(id);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{id:?} -> {t:?}"
            );
            assert!(seen.insert(t.clone()), "collision on {id:?} -> {t}");
        }
        assert_eq!(token("a.b"), "a_2Eb");
        assert_eq!(token("a_2Eb"), "a__2Eb");
        assert_eq!(token("uuid-0190-abc"), "uuid-0190-abc");
    }

    #[test]
    fn derived_names_never_collide() {
        // A DLQ or state stream name is never the stream name of another channel.
        let channels = ["a", "a_DLQ", "a_", "_STATE", "DLQ", "a__DLQ"];
        let mut names = HashSet::new();
        for c in channels {
            let n = ChannelNames::new("p", c);
            assert!(names.insert(n.stream.clone()), "{}", n.stream);
            assert!(names.insert(n.dlq.clone()), "{}", n.dlq);
        }
        assert!(names.insert(state_stream("p")));
    }

    #[test]
    fn long_ids_are_hashed_deterministically() {
        let long = "é".repeat(300);
        let t = token(&long);
        assert!(t.starts_with("_H"));
        assert_eq!(t.len(), 2 + 64);
        assert_eq!(t, token(&long));
        assert_ne!(t, token(&"é".repeat(301)));
        assert!(token(&"a".repeat(MAX_TOKEN)).len() == MAX_TOKEN);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(validate_prefix("sssn").is_ok());
        assert!(validate_prefix("t-0a1b").is_ok());
        assert!(validate_prefix("a_b").is_err());
        assert!(validate_prefix("a.b").is_err());
        assert!(validate_prefix("").is_err());
    }
}
