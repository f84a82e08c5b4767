//! Lookups of one stored message (last on a subject, next on a subject from a sequence)
//! that see every write confirmed before them.
//!
//! A direct get (`allow_direct`) may be answered by any replica, and a follower applies a
//! committed write a moment after the leader confirmed it: on a replicated stream a lookup
//! right after a write could miss it. So an R1 stream is read by direct get (its one
//! server has every write), a replicated one through the stream leader
//! (`$JS.API.STREAM.MSG.GET`), which confirms a publish only after applying it.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{
    self, DirectGetErrorKind, LastRawMessageErrorKind, RawMessageErrorKind,
};

use super::BoxError;

/// Whether lookups on `stream` must go to its leader (it has replicas).
fn replicated(stream: &stream::Stream) -> bool {
    stream.cached_info().config.num_replicas > 1
}

/// The last message stored on `subject`, or `None`.
pub(super) async fn last_for_subject(
    stream: &stream::Stream,
    subject: String,
) -> Result<Option<StreamMessage>, BoxError> {
    if replicated(stream) {
        return match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    match stream.direct_get_last_for_subject(subject).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The first message at or after sequence `from` on `subject` (wildcards allowed), or
/// `None`.
pub(super) async fn next_for_subject(
    stream: &stream::Stream,
    subject: String,
    from: u64,
) -> Result<Option<StreamMessage>, BoxError> {
    if replicated(stream) {
        let get = stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject);
        return match get.send().await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    match stream
        .direct_get_next_for_subject(subject, Some(from))
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
