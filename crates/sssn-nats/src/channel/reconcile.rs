//! Reconciliation of a channel's message stream with its claims consumer, for what a
//! crash of the server leaves behind.
//!
//! A nats-server killed with SIGKILL can come back with deletes undone (a `no_erase`
//! delete lives in the server's memory until the block's index is written) while the
//! claims consumer's ack floor survived. Such a message is stored *below the ack floor*:
//! the consumer never delivers it again, `stored` counts it, and `claim` cannot serve it.
//! The store therefore reconciles on open, after every reconnect, and whenever `stats`
//! finds a stored message at or below the floor.
//!
//! The evidence that tells an acknowledged message from one that was never settled:
//!
//! * **The ack floor itself.** The store sends `+ACK` only after the server confirmed the
//!   delete (on an interest stream the `+ACK` is the removal itself), and `+TERM` only after the dead letter was stored and the message deleted. A
//!   sequence at or below the floor was therefore acknowledged, dead-lettered, or not
//!   stored when the consumer passed it (removed, evicted): its delete is redone, as a
//!   secure erase so that it survives the next crash.
//! * **Except a message that arrived after the floor last moved** (the server's arrival
//!   time against the floor's `last_active`, when the server reports it). It cannot have
//!   been settled before the floor passed it: a server that lost the stream's tail but not
//!   the consumer's state reuses sequences the consumer has already passed. Such messages
//!   are made claimable: the consumer is recreated from the first of them.
//! * **A consumer ahead of its stream** (delivered beyond the last stored sequence) is the
//!   same loss seen before new appends reuse the sequences: the consumer is recreated from
//!   the first sequence it has not settled, so the next appends are delivered.
//!
//! Recreating the consumer forgets its delivery state: deliveries in flight are delivered
//! again (their holders can still acknowledge them: the delete is what consumes), and
//! attempts start again at 1.

use async_nats::jetstream::consumer::DeliverPolicy;
use sssn::Result;
use sssn::store::Seq;

use super::JetStreamChannel;
use super::claims::{CLAIMS_CONSUMER, claims_config};

/// Stored messages below the floor looked at per pass (the rest in the next pass).
const PASS: usize = 10_000;

/// What one reconciliation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// Messages below the ack floor deleted again (they were settled before the crash).
    pub(crate) deleted: usize,
    /// Messages below the ack floor made claimable (stored after the floor passed them).
    pub(crate) requeued: usize,
    /// Whether the claims consumer was recreated.
    pub(crate) consumer_recreated: bool,
}

impl JetStreamChannel {
    /// Brings the stream and the claims consumer back into agreement (see the module
    /// docs). Cheap when they agree: one consumer info and one stream info.
    pub(crate) async fn reconcile(&self) -> Result<Reconciled> {
        self.claim_side()?;
        let mut done = Reconciled::default();
        let _one_at_a_time = self.reconciling.lock().await;
        loop {
            let info = self
                .stream
                .consumer_info(CLAIMS_CONSUMER)
                .await
                .map_err(|e| self.err("claims consumer info", e))?;
            let stream = self.stream_info().await?.state;
            let floor = info.ack_floor.stream_sequence;
            let mut restart_at: Option<Seq> = None;
            if info.delivered.stream_sequence > stream.last_sequence {
                restart_at = Some(floor.min(stream.last_sequence) + 1);
            }
            let below = stream.messages > 0 && stream.first_sequence <= floor;
            let mut full_pass = false;
            if below {
                let want = usize::try_from(floor + 1 - stream.first_sequence)
                    .unwrap_or(usize::MAX)
                    .min(PASS);
                full_pass = want == PASS;
                let stored = self
                    .scan(
                        &self.stream,
                        DeliverPolicy::ByStartSequence {
                            start_sequence: stream.first_sequence,
                        },
                        String::new(),
                        true,
                        want,
                    )
                    .await?;
                let floor_moved = info.ack_floor.last_active;
                let mut settled = Vec::new();
                for m in &stored {
                    let Ok(meta) = m.info() else { continue };
                    let seq = meta.stream_sequence;
                    if seq > floor {
                        break;
                    }
                    match floor_moved {
                        Some(t) if meta.published > t => {
                            restart_at = Some(restart_at.map_or(seq, |r| r.min(seq)));
                            done.requeued += 1;
                        }
                        _ => settled.push(seq),
                    }
                }
                for seq in settled {
                    if restart_at.is_some_and(|r| seq >= r) {
                        // Delivered again by the recreated consumer: it must not be lost.
                        // Only a message the floor passed before it arrived lands here.
                        continue;
                    }
                    if self.delete_seq_erasing(&self.stream, seq, true).await? {
                        done.deleted += 1;
                    }
                }
            }
            if let Some(start) = restart_at {
                self.recreate_claims_consumer(start).await?;
                done.consumer_recreated = true;
            }
            if done.deleted + done.requeued > 0 || done.consumer_recreated {
                tracing::warn!(
                    channel = %self.id,
                    deleted = done.deleted,
                    requeued = done.requeued,
                    consumer_recreated = done.consumer_recreated,
                    "reconciled the stream with its claims consumer after a server crash"
                );
            }
            if !full_pass || restart_at.is_some() {
                return Ok(done);
            }
        }
    }

    /// Replaces the claims consumer by one that delivers from `start` on.
    async fn recreate_claims_consumer(&self, start: Seq) -> Result<()> {
        let side = self.claim_side()?;
        let config = claims_config(
            &side.policy,
            DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
        );
        self.with_holding_consumer(start, || async {
            let _ = self.stream.delete_consumer(CLAIMS_CONSUMER).await;
            self.stream
                .create_consumer(config)
                .await
                .map_err(|e| self.err("claims consumer re-creation", e))?;
            Ok(())
        })
        .await
    }

    /// Reconciles again each time the client reconnects (a server restart may have undone
    /// deletes), retrying with backoff while the server is not ready yet.
    pub(crate) async fn reconcile_after_reconnects(
        me: std::sync::Weak<Self>,
        mut connected: tokio::sync::watch::Receiver<u64>,
    ) {
        while connected.changed().await.is_ok() {
            let mut delay = std::time::Duration::from_millis(100);
            loop {
                let Some(ch) = me.upgrade() else { return };
                match ch.reconcile().await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(channel = %ch.id, error = %e, "reconciliation after a reconnect failed; retried");
                    }
                }
                drop(ch);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
                if connected.has_changed().unwrap_or(false) {
                    break;
                }
            }
        }
    }
}
