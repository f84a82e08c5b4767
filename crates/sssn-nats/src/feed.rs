//! The push feed: a consumer from the channel's head, forwarding every committed append
//! (from this process or any other) to a tokio broadcast, in sequence order.
//!
//! The consumer is ephemeral (memory, no acks). It is read with pull requests that wait
//! up to [`POLL`] for new messages, each bounded by a timer, so a dead connection or a
//! server restart (which drops the consumer) is noticed within seconds; the consumer is
//! then recreated from the last sequence delivered. Subscribers that lag or see a gap
//! catch up from the store ([`sssn::Subscription`] does that), so the feed has to be
//! ordered and prompt, not complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream;
use futures::StreamExt;
use sssn::store::{Entry, Seq};
use tokio::sync::broadcast;

use crate::channel::decode;

/// How long one pull request waits for new messages.
const POLL: Duration = Duration::from_secs(1);
/// Messages per pull request.
const BATCH: usize = 512;

async fn consumer(stream: &stream::Stream, next: Seq) -> Result<PullConsumer, String> {
    stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next.max(1),
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())
}

/// Pulls one batch; returns the messages' sequences and contents in order, or an error
/// when the consumer must be recreated.
async fn pull_once(
    consumer: &PullConsumer,
    next: &mut Seq,
    head: &AtomicU64,
    tx: &broadcast::Sender<Entry>,
    channel: &str,
) -> Result<(), String> {
    let work = async {
        let mut batch = consumer
            .batch()
            .max_messages(BATCH)
            .expires(POLL)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| e.to_string())?;
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                continue;
            };
            if seq < *next {
                continue; // a redelivery after a recreate: already forwarded
            }
            *next = seq + 1;
            head.fetch_max(seq, Ordering::AcqRel);
            match decode(&m.payload) {
                // No receivers is fine: nobody is subscribed right now.
                Ok(message) => {
                    let _ = tx.send(Entry {
                        seq,
                        message: Arc::new(message),
                    });
                }
                Err(e) => {
                    tracing::warn!(%channel, seq, error = %e, "feed skips an undecodable message")
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(POLL * 3, work)
        .await
        .map_err(|_| "pull request got no answer".to_owned())?
}

pub(crate) async fn run(
    stream: stream::Stream,
    mut next: Seq,
    head: Arc<AtomicU64>,
    tx: broadcast::Sender<Entry>,
    channel: String,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match consumer(&stream, next).await {
            Ok(c) => loop {
                if let Err(e) = pull_once(&c, &mut next, &head, &tx, &channel).await {
                    tracing::debug!(%channel, error = %e, "feed consumer lost; recreating it");
                    break;
                }
                backoff = Duration::from_millis(50);
            },
            Err(e) => tracing::debug!(%channel, error = %e, "feed consumer could not be created"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
