//! Replacing a message by id ([`Log::replace`](sssn::store::Log::replace)) and removal by
//! sequence, on the message stream's one subject per id.
//!
//! A replace publishes the new version on the id's subject, expecting the version it
//! looked up as the subject's last (0: none), then deletes that old version by sequence.
//! A lookup by id reads the subject's last message, so it finds the old version until the
//! publish and the new one from then on, never nothing; a concurrent replace of the same
//! id (another process) makes the expectation fail, and the replace looks up again. A
//! scan may see both versions for the moment between the publish and the delete, or,
//! racing the delete, neither (seen on 2.15.1): the discovery index copes, because its
//! feed, subscribed before its load, brings the new version.
//!
//! On servers with per-message TTL (2.11+, `ServerVersion::supports_message_ttl`) a
//! channel opened as `expiring` (discovery) gets a stream with `allow_msg_ttl`, and each
//! new version is published with its TTL as `Nats-TTL`: the server removes a record
//! itself when its TTL runs out. (One message per subject, `max_msgs_per_subject = 1`,
//! would spare the delete, but on 2.15.1 a scan racing the server's swap misses the id
//! just as one racing a delete does, so it buys nothing and would split the path in two.)
//! Whether a stream allows TTLs is read from its own config when it opens, so a stream
//! created by the 2.9 path keeps that path after an upgrade.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures::future::join_all;
use sssn::store::{Entry, Seq};
use sssn::{ChannelMessage, Error, ErrorKind, Result};

use super::JetStreamChannel;
use crate::store::{StoreInner, get_or_create_stream, is_stream_not_found};

/// Replaces of one id retried while other writers replace it concurrently.
const REPLACE_ATTEMPTS: usize = 8;

/// The message stream of a channel: for an `expiring` channel on a server with
/// per-message TTL, created with one message per subject and `allow_msg_ttl`.
/// Also says whether the stream allows per-message TTLs.
pub(super) async fn open_stream(
    store: &StoreInner,
    config: stream::Config,
    expiring: bool,
) -> Result<(stream::Stream, bool)> {
    let server_ttl = store
        .server_version()
        .is_some_and(|v| v.supports_message_ttl());
    if !(expiring && server_ttl) {
        return Ok((get_or_create_stream(&store.js, config).await?, false));
    }
    let stream = get_or_create_expiring(store, config).await?;
    let name = stream.cached_info().config.name.clone();
    let info: Response<serde_json::Value> = store
        .js
        .request(format!("STREAM.INFO.{name}"), &serde_json::json!({}))
        .await
        .map_err(|e| Error::store(format!("JetStream stream info of '{name}' failed"), e))?;
    let allows_ttl = match info {
        Response::Ok(v) => v["config"]["allow_msg_ttl"].as_bool().unwrap_or(false),
        Response::Err { error } => {
            return Err(Error::store(
                format!("JetStream stream info of '{name}' failed"),
                error,
            ));
        }
    };
    Ok((stream, allows_ttl))
}

async fn get_or_create_expiring(
    store: &StoreInner,
    config: stream::Config,
) -> Result<stream::Stream> {
    let name = config.name.clone();
    match store.js.get_stream(&name).await {
        Ok(s) => return Ok(s),
        Err(e) if is_stream_not_found(&e) => {}
        Err(e) => {
            return Err(Error::store(
                format!("looking up JetStream stream '{name}' failed"),
                e,
            ));
        }
    }
    // async-nats 0.51 has `allow_msg_ttl` only behind its `server_2_11` feature, which
    // changes other requests too: the one field is added to the request here instead.
    let mut body = serde_json::to_value(config)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("stream config: {e}")))?;
    body["allow_msg_ttl"] = serde_json::Value::Bool(true);
    let created: std::result::Result<Response<serde_json::Value>, _> = store
        .js
        .request(format!("STREAM.CREATE.{name}"), &body)
        .await;
    // Refused: another process may have created it in between; if not, say why below.
    let refused = match created {
        Ok(Response::Err { error }) => format!(" ({error})"),
        Err(e) => format!(" ({e})"),
        Ok(Response::Ok(_)) => String::new(),
    };
    store.js.get_stream(&name).await.map_err(|e| {
        Error::store(
            format!("creating JetStream stream '{name}' failed{refused}"),
            e,
        )
    })
}

/// The `Nats-TTL` header value: whole seconds, at least one (the server's grain).
fn ttl_header(ttl: Duration) -> String {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    format!("{}s", secs.max(1))
}

impl JetStreamChannel {
    /// Stores `message` as the one version of its id (see the module docs).
    pub(super) async fn replace_by_id(
        &self,
        message: ChannelMessage,
        ttl: Option<Duration>,
    ) -> Result<Entry> {
        let subject = self.names.message(&message.id);
        let payload = Bytes::from(serde_json::to_vec(&message).map_err(|e| {
            Error::new(ErrorKind::InvalidMessage, format!("message encoding: {e}"))
        })?);
        let message = Arc::new(message);
        let ttl = ttl.filter(|_| self.server_ttl).map(ttl_header);
        for _ in 0..REPLACE_ATTEMPTS {
            let old = self.by_id(&message.id).await?.map(|e| e.seq);
            let mut publish = PublishMessage::build()
                .payload(payload.clone())
                .expected_last_subject_sequence(old.unwrap_or(0));
            if let Some(ttl) = &ttl {
                publish = publish.header("Nats-TTL", ttl.as_str());
            }
            let ack = self
                .store
                .js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| self.err("publish", e))?;
            match ack.await {
                Ok(a) => {
                    self.head.fetch_max(a.sequence, Ordering::AcqRel);
                    if let Some(old) = old {
                        self.delete_seq(&self.stream, old).await?;
                    }
                    return Ok(Entry {
                        seq: a.sequence,
                        message,
                    });
                }
                // Someone else stored a version since the lookup: look up again.
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(e) => return Err(self.err("publish acknowledgement", e)),
            }
        }
        Err(Error::new(
            ErrorKind::Store,
            format!(
                "replace of '{}' on channel '{}' kept racing with other writers",
                message.id, self.id
            ),
        ))
    }

    /// Deletes the messages at `seqs`; returns how many were stored.
    pub(super) async fn remove_by_seq(&self, seqs: &[Seq]) -> Result<usize> {
        let deleted = join_all(seqs.iter().map(|&seq| self.delete_seq(&self.stream, seq))).await;
        let mut n = 0;
        for d in deleted {
            n += usize::from(d?);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_header_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_header(Duration::from_millis(1)), "1s");
        assert_eq!(ttl_header(Duration::ZERO), "1s");
        assert_eq!(ttl_header(Duration::from_millis(1500)), "2s");
        assert_eq!(ttl_header(Duration::from_secs(3600)), "3600s");
    }
}
