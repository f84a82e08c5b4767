//! The server requests every other part of the channel is made of: pulls bounded by the
//! request timeout, short-lived consumers and scans, deletes by sequence, purges,
//! acknowledgements of deliveries, lookups by id, conditional publishes, stream info.
//!
//! Nothing here decides anything or keeps state beyond the head (stream info raises it):
//! the log, the cursors, the claims and the dead letters call these and interpret the
//! results.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::{self, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream;
use async_nats::jetstream::{self, AckKind, ErrorCode};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use sssn::store::{Entry, Seq};
use sssn::{Error, Result};

use super::{JetStreamChannel, MAX_BATCH, decode, lookup};

/// How long a read on a replicated stream waits for a replica to apply the writes this
/// handle knows were confirmed (see [`JetStreamChannel::fetch_caught_up`]).
const REPLICA_LAG: Duration = Duration::from_millis(500);

/// First pause before a pull is sent again after "no responders" (503).
const NOT_READY_PAUSE: Duration = Duration::from_millis(20);

/// Whether a pull failed with 503 "no responders": on a replicated stream a consumer that
/// was just created (or moved) may not listen yet on the server that answers the pull
/// (seen on a three-node 2.15.1 cluster, about one run of the conformance suite in six).
/// Nothing was delivered, so the pull is sent again (until the request timeout).
fn is_no_responders(e: &(dyn std::error::Error + 'static)) -> bool {
    e.to_string()
        .starts_with("error while processing messages from the stream: 503")
}

#[derive(Deserialize)]
struct DeleteReply {
    #[serde(default)]
    success: bool,
}

impl JetStreamChannel {
    /// Pulls up to `n` messages that are available now (no waiting for new ones). Bounded
    /// by the request timeout.
    pub(super) async fn fetch(
        &self,
        consumer: &PullConsumer,
        n: usize,
    ) -> Result<Vec<jetstream::Message>> {
        let pull = || consumer.fetch().max_messages(n).messages();
        tokio::time::timeout(self.timeout, self.pull(pull, n))
            .await
            .map_err(|_| self.timed_out("fetch"))?
    }

    /// Pulls up to `n` messages, waiting up to `wait` for them (the server holds the pull
    /// until `n` arrived or `wait` passed). Bounded by the request timeout on top.
    pub(super) async fn fetch_waiting(
        &self,
        consumer: &PullConsumer,
        n: usize,
        wait: Duration,
    ) -> Result<Vec<jetstream::Message>> {
        let pull = || consumer.batch().max_messages(n).expires(wait).messages();
        tokio::time::timeout(self.timeout + wait, self.pull(pull, n))
            .await
            .map_err(|_| self.timed_out("fetch"))?
    }

    /// Runs one pull request (`start` sends it) and reads until the server ends it, so no
    /// message it sends is dropped. A pull answered "no responders" before anything
    /// arrived (a consumer not yet listening on a replicated stream) is sent again.
    async fn pull<F, Fut>(&self, start: F, n: usize) -> Result<Vec<jetstream::Message>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<pull::Batch, pull::BatchError>>,
    {
        let mut pause = NOT_READY_PAUSE;
        loop {
            let mut batch = start().await.map_err(|e| self.err("fetch", e))?;
            let mut out = Vec::with_capacity(n.min(MAX_BATCH));
            let mut failed = None;
            while let Some(m) = batch.next().await {
                match m {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => return Ok(out),
                Some(e) if out.is_empty() && is_no_responders(&*e) => {
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
                Some(e) => return Err(self.err("fetch", e)),
            }
        }
    }

    /// Like [`Self::fetch`] on a consumer that delivers in sequence order from after
    /// `position`, but on a replicated stream it also waits (up to [`REPLICA_LAG`]) for
    /// the messages up to the newest sequence this handle knows of: the consumer may sit
    /// on a replica that applies a confirmed write a moment later, and a read must see
    /// the writes confirmed before it.
    pub(super) async fn fetch_caught_up(
        &self,
        consumer: &PullConsumer,
        want: usize,
        position: Seq,
    ) -> Result<Vec<jetstream::Message>> {
        let mut msgs = self.fetch(consumer, want).await?;
        if self.stream.cached_info().config.num_replicas <= 1 {
            return Ok(msgs);
        }
        let deadline = tokio::time::Instant::now() + REPLICA_LAG;
        loop {
            let last = msgs
                .last()
                .and_then(|m| m.info().ok().map(|i| i.stream_sequence))
                .unwrap_or(position);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if msgs.len() >= want || last >= self.head.load(Ordering::Acquire) || left.is_zero() {
                return Ok(msgs);
            }
            let next = self.fetch_waiting(consumer, 1, left).await?;
            if next.is_empty() {
                return Ok(msgs);
            }
            msgs.extend(next);
            if msgs.len() < want {
                msgs.extend(self.fetch(consumer, want - msgs.len()).await?);
            }
        }
    }

    /// A short-lived consumer that reads `stream` without acknowledgements.
    pub(super) async fn ephemeral(
        &self,
        stream: &stream::Stream,
        deliver_policy: DeliverPolicy,
        filter_subject: String,
        headers_only: bool,
        inactive: Duration,
    ) -> Result<PullConsumer> {
        stream
            .create_consumer(pull::Config {
                deliver_policy,
                ack_policy: consumer::AckPolicy::None,
                filter_subject,
                headers_only,
                inactive_threshold: inactive,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| self.err("consumer creation", e))
    }

    /// Deletes a consumer in the background (the server would also drop it when idle).
    pub(super) fn discard(stream: &stream::Stream, consumer: PullConsumer) {
        let stream = stream.clone();
        let name = consumer.cached_info().name.clone();
        tokio::spawn(async move {
            let _ = stream.delete_consumer(&name).await;
        });
    }

    /// Reads `stream` from `policy` on: up to `limit` messages.
    /// The headers of up to `n` messages of the channel's stream from sequence `first`.
    pub(super) async fn oldest_headers(
        &self,
        first: Seq,
        n: u64,
    ) -> Result<Vec<jetstream::Message>> {
        let policy = DeliverPolicy::ByStartSequence {
            start_sequence: first,
        };
        let limit = usize::try_from(n).unwrap_or(usize::MAX);
        self.scan(&self.stream, policy, String::new(), true, limit)
            .await
    }

    pub(super) async fn scan(
        &self,
        stream: &stream::Stream,
        policy: DeliverPolicy,
        filter_subject: String,
        headers_only: bool,
        limit: usize,
    ) -> Result<Vec<jetstream::Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let consumer = self
            .ephemeral(
                stream,
                policy,
                filter_subject,
                headers_only,
                Duration::from_secs(30),
            )
            .await?;
        let mut out = Vec::new();
        let start = match policy {
            DeliverPolicy::ByStartSequence { start_sequence } => start_sequence.saturating_sub(1),
            DeliverPolicy::All => 0,
            // From a time: where that is is unknown here; only what is there now.
            _ => Seq::MAX,
        };
        let outcome = async {
            while out.len() < limit {
                let want = (limit - out.len()).min(MAX_BATCH);
                let position = out
                    .last()
                    .and_then(|m: &jetstream::Message| m.info().ok().map(|i| i.stream_sequence))
                    .unwrap_or(start);
                let got = if stream.cached_info().config.name == self.names.stream {
                    self.fetch_caught_up(&consumer, want, position).await?
                } else {
                    self.fetch(&consumer, want).await?
                };
                let n = got.len();
                out.extend(got);
                if n < want {
                    break;
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        Self::discard(stream, consumer);
        outcome.map(|()| out)
    }

    /// Deletes message `seq`; `Ok(false)` when it was already gone. With `durable_acks`, a
    /// secure erase (the server's default): it overwrites the record in the block file at
    /// once, so the delete survives a server crash, at ~10x the cost. Otherwise
    /// `no_erase`: the delete lives in the server's memory until its index is written, and
    /// on 2.9.10 messages deleted in the last seconds before a SIGKILL came back.
    pub(super) async fn delete_seq(&self, stream: &stream::Stream, seq: Seq) -> Result<bool> {
        self.delete_seq_erasing(stream, seq, self.store.options.durable_acks)
            .await
    }

    /// Deletes message `seq`, as a secure erase when `erase` (see [`Self::delete_seq`]).
    pub(super) async fn delete_seq_erasing(
        &self,
        stream: &stream::Stream,
        seq: Seq,
        erase: bool,
    ) -> Result<bool> {
        let subject = format!("STREAM.MSG.DELETE.{}", stream.cached_info().config.name);
        let payload = if erase {
            serde_json::json!({ "seq": seq })
        } else {
            serde_json::json!({ "seq": seq, "no_erase": true })
        };
        let reply: Response<DeleteReply> = self
            .store
            .js
            .request(subject, &payload)
            .await
            .map_err(|e| self.err("message delete", e))?;
        match reply {
            Response::Ok(r) => Ok(r.success),
            Response::Err { error }
                if error.error_code() == ErrorCode::NO_MESSAGE_FOUND
                    || error.error_code() == ErrorCode::SEQUENCE_NOT_FOUND
                    // A sequence deleted already: "no message found" under this code.
                    || error.error_code() == ErrorCode::STREAM_MESSAGE_DELETE_FAILED
                        && error.to_string().contains("no message found") =>
            {
                Ok(false)
            }
            Response::Err { error } => Err(self.err("message delete", error)),
        }
    }

    async fn purge_with(
        &self,
        purge: impl std::future::IntoFuture<
            Output = std::result::Result<stream::PurgeResponse, stream::PurgeError>,
        >,
    ) -> Result<u64> {
        purge
            .await
            .map(|r| r.purged)
            .map_err(|e| self.err("purge", e))
    }

    /// Removes every message of the channel.
    pub(super) async fn purge_all(&self) -> Result<u64> {
        self.purge_with(self.stream.purge()).await
    }

    /// Removes every message with a sequence below `seq`.
    ///
    /// On an interest stream, where purges are not safe (2.9), by deleting each: a 2.9
    /// purge clears every consumer's pending deliveries, also those above the purge, and
    /// an interest stream then removes the messages of claims still in flight at the next
    /// interest check (`batch_writes.rs` `removals_leave_consumers_alone` lost them).
    pub(super) async fn purge_below(&self, seq: Seq) -> Result<u64> {
        let interest =
            self.stream.cached_info().config.retention == stream::RetentionPolicy::Interest;
        if !interest || self.purges_are_safe() {
            return self.purge_with(self.stream.purge().sequence(seq)).await;
        }
        let first = self.stream_info().await?.state.first_sequence;
        if first >= seq {
            return Ok(0);
        }
        let below = self.oldest_headers(first, seq - first).await?;
        let seqs: Vec<Seq> = below
            .iter()
            .filter_map(|m| m.info().ok().map(|i| i.stream_sequence))
            .filter(|s| *s < seq)
            .collect();
        let mut removed = 0;
        for chunk in seqs.chunks(MAX_BATCH) {
            let deleted =
                futures::future::join_all(chunk.iter().map(|&s| self.delete_seq(&self.stream, s)))
                    .await;
            for d in deleted {
                removed += u64::from(d?);
            }
        }
        Ok(removed)
    }

    /// Removes all but the newest `n` messages. Only where
    /// [`purges_without_2_9_pitfalls`](crate::ServerVersion::purges_without_2_9_pitfalls):
    /// 2.9 counts deleted messages among the kept.
    pub(super) async fn purge_keeping(&self, n: u64) -> Result<u64> {
        self.purge_with(self.stream.purge().keep(n)).await
    }

    /// Removes the messages on `subject`. Only where
    /// [`purges_without_2_9_pitfalls`](crate::ServerVersion::purges_without_2_9_pitfalls):
    /// on 2.9 it makes every consumer of the stream skip to its end.
    pub(super) async fn purge_subject(&self, subject: String) -> Result<u64> {
        self.purge_with(self.stream.purge().filter(subject)).await
    }

    /// Whether purges by subject and with `keep` are safe on every server this connection
    /// has been on (see [`crate::ServerVersion::purges_without_2_9_pitfalls`]).
    pub(super) fn purges_are_safe(&self) -> bool {
        self.store
            .server_version()
            .is_some_and(|v| v.purges_without_2_9_pitfalls())
    }

    /// Sends an acknowledgement of `kind` for a delivery and waits for the server to
    /// confirm it processed it (so a following fetch sees its effect).
    pub(super) async fn settle_delivery(&self, reply: &Subject, kind: AckKind) -> Result<()> {
        self.store
            .client
            .request(reply.clone(), kind.into())
            .await
            .map(|_| ())
            .map_err(|e| self.err("acknowledgement", e))
    }

    /// Sends an acknowledgement without waiting (used where the message is already deleted,
    /// so the acknowledgement only tidies the consumer's pending list).
    pub(super) async fn settle_quietly(&self, reply: &Subject, kind: AckKind) {
        if let Err(e) = self.store.client.publish(reply.clone(), kind.into()).await {
            tracing::debug!(channel = %self.id, error = %e, "acknowledgement not sent");
        }
    }

    /// Looks up the stored message with id `id`.
    pub(super) async fn by_id(&self, id: &str) -> Result<Option<Entry>> {
        match lookup::last_for_subject(&self.stream, self.names.message(id))
            .await
            .map_err(|e| self.err("lookup by id", e))?
        {
            Some(m) => Ok(Some(Entry {
                seq: m.sequence,
                message: Arc::new(decode(&m.payload)?),
            })),
            None => Ok(None),
        }
    }

    /// Publishes a message on `subject` only if nothing is stored on it yet and, with
    /// `msg_id`, only if no message with that id was stored within the stream's duplicate
    /// window (even if removed since).
    pub(super) async fn publish_new(
        &self,
        subject: String,
        payload: Bytes,
        msg_id: Option<&str>,
    ) -> Result<jetstream::context::PublishAckFuture> {
        // One subject per id and "no message on this subject yet": the server refuses a
        // second copy of a stored id, atomically, for as long as it is stored.
        let mut publish = PublishMessage::build()
            .payload(payload)
            .expected_last_subject_sequence(0);
        if let Some(id) = msg_id {
            publish = publish.message_id(id);
        }
        self.store
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|e| self.err("publish", e))
    }

    /// The message stream's info; raises the head to its last sequence.
    pub(super) async fn stream_info(&self) -> Result<stream::Info> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| self.err("stream info", e))?;
        self.head
            .fetch_max(info.state.last_sequence, Ordering::AcqRel);
        Ok(info)
    }
}
