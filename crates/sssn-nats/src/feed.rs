//! The push feed: an ordered consumer from the channel's head, forwarding every committed
//! append (from this process or any other) to a tokio broadcast, in sequence order.
//!
//! The ordered consumer recreates itself after a gap or missed heartbeats (a reconnect, a
//! server restart) from the last sequence it delivered; if it gives up, this task starts a
//! new one from there after a short back-off. Subscribers that lag or see a gap catch up
//! from the store ([`sssn::Subscription`] does that), so the feed only has to be ordered,
//! not complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream;
use futures::StreamExt;
use sssn::store::{Entry, Seq};
use tokio::sync::broadcast;

use crate::channel::decode;

pub(crate) async fn run(
    stream: stream::Stream,
    mut next: Seq,
    head: Arc<AtomicU64>,
    tx: broadcast::Sender<Entry>,
    channel: String,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let config = pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next.max(1),
            },
            ..Default::default()
        };
        match stream.create_consumer(config).await {
            Ok(consumer) => match consumer.messages().await {
                Ok(mut messages) => {
                    while let Some(m) = messages.next().await {
                        let m = match m {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(%channel, error = %e, "feed consumer failed; restarting it");
                                break;
                            }
                        };
                        backoff = Duration::from_millis(100);
                        let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                            continue;
                        };
                        next = seq + 1;
                        head.fetch_max(seq, Ordering::AcqRel);
                        match decode(&m.payload) {
                            Ok(message) => {
                                // No receivers is fine: nobody is subscribed right now.
                                let _ = tx.send(Entry {
                                    seq,
                                    message: Arc::new(message),
                                });
                            }
                            Err(e) => {
                                tracing::warn!(%channel, seq, error = %e, "feed skips an undecodable message");
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(%channel, error = %e, "feed consumer could not start"),
            },
            Err(e) => tracing::warn!(%channel, error = %e, "feed consumer could not be created"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
