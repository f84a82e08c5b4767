//! Replacing a message by id ([`Log::replace`](sssn::store::Log::replace)) and removal by
//! sequence, on the message stream's one subject per id.
//!
//! A replace publishes the new version on the id's subject, expecting the version it
//! looked up as the subject's last (0: none), then deletes that old version by sequence.
//! A lookup by id reads the subject's last message, so it finds the old version until the
//! publish and the new one from then on, never nothing; a concurrent replace of the same
//! id (another process) makes the expectation fail, and the replace looks up again. A
//! scan may see both versions for the moment between the publish and the delete.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::future::join_all;
use sssn::store::{Entry, Seq};
use sssn::{ChannelMessage, Error, ErrorKind, Result};

use super::JetStreamChannel;

/// Replaces of one id retried while other writers replace it concurrently.
const REPLACE_ATTEMPTS: usize = 8;

impl JetStreamChannel {
    /// Stores `message` as the one version of its id (see the module docs).
    pub(super) async fn replace_by_id(&self, message: ChannelMessage) -> Result<Entry> {
        let subject = self.names.message(&message.id);
        let payload = Bytes::from(serde_json::to_vec(&message).map_err(|e| {
            Error::new(ErrorKind::InvalidMessage, format!("message encoding: {e}"))
        })?);
        let message = Arc::new(message);
        for _ in 0..REPLACE_ATTEMPTS {
            let old = self.by_id(&message.id).await?.map(|e| e.seq);
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .expected_last_subject_sequence(old.unwrap_or(0));
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
