//! The channel's [`ClaimQueue`] on its durable `claims` consumer (and its dead-letter
//! stream), for channels opened with a [`ClaimPolicy`].
//!
//! Data flow: a claim fetches deliveries from the `claims` consumer (shared by every
//! claimer of every process; its `ack_wait` is the policy's lease) and records each in
//! this process's [claim table](super::claim_table) (holder, lease deadline, attempt, ack
//! subject). Settling goes through one
//! helper, [`JetStreamChannel::settle_claims`]: it splits the ids into the caller's live
//! claims and stale ones with [`ClaimPolicy::may_settle`], performs the server action of
//! each live claim (ack: delete, then `+ACK`, or on an interest stream the `+ACK` alone,
//! see [`remove_on_ack`](super::remove_on_ack); nack: `-NAK`, or a dead letter when the
//! policy says so; reject: a dead letter; extend: `+WPI`), restores the claims whose
//! server action failed, and builds the [`Settled`]. Lapsed leases of this process's
//! claims are dropped from the table (and dead-lettered when the policy says so) by
//! [`JetStreamChannel::reclaim_local`]; the server redelivers them by itself after
//! `ack_wait`, and a claim that receives a redelivery beyond the limit dead-letters it
//! ([`ClaimPolicy::on_redelivery`]).
//!
//! Every decision is the policy's; this file only maps them onto the server.

use std::sync::{Arc, Mutex};

use async_nats::jetstream::consumer::{self, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, stream};
use async_trait::async_trait;
use futures::future::join_all;
use sssn::clock::now_millis;
use sssn::policy::{ClaimPolicy, DeadReason, Fate, Release};
use sssn::store::{ChannelSpec, ClaimQueue, ClaimStats, Claimed, DeadLetter, Settle, Settled};
use sssn::{Error, ErrorKind, Result};

use super::ack_counter::AckCounter;
use super::claim_table::{Claim, ClaimTable};
use super::remove_on_ack::ConsumerWatch;
use super::{BoxError, JetStreamChannel, MAX_BATCH, decode, lock};
use crate::names::ChannelNames;
use crate::store::{StoreInner, get_or_create_stream};

/// Name of the durable consumer every claimer of a channel shares.
pub(super) const CLAIMS_CONSUMER: &str = "claims";

/// What a channel with claims has on top of its log.
pub(super) struct ClaimSide {
    pub(super) policy: ClaimPolicy,
    /// The durable consumer every claimer pulls from.
    pub(super) consumer: PullConsumer,
    /// The dead-letter stream.
    pub(super) dlq: stream::Stream,
    table: Mutex<ClaimTable>,
    pub(super) acked: AckCounter,
    /// The stream has interest retention: the server removes a message on its ack (see
    /// [`remove_on_ack`](super::remove_on_ack)).
    pub(super) removes_on_ack: bool,
    pub(super) consumers: ConsumerWatch,
}

impl ClaimSide {
    /// Opens (creating what is missing) the dead-letter stream and the claims consumer.
    pub(super) async fn open(
        store: &StoreInner,
        names: &ChannelNames,
        stream: &stream::Stream,
        state: &stream::Stream,
        spec: &ChannelSpec,
        policy: ClaimPolicy,
        removes_on_ack: bool,
    ) -> Result<Self> {
        let dlq = get_or_create_stream(
            &store.js,
            stream::Config {
                name: names.dlq.clone(),
                subjects: vec![names.dlq_subjects()],
                allow_direct: true,
                storage: store.storage(),
                num_replicas: store.options.replicas,
                description: Some(format!("sssn dead letters of channel '{}'", spec.id)),
                ..Default::default()
            },
        )
        .await?;
        let consumer = claims_consumer(stream, &spec.id, &policy).await?;
        Ok(Self {
            policy,
            consumer,
            dlq,
            table: Mutex::default(),
            acked: AckCounter::new(store.js.clone(), state.clone(), names.acked()),
            removes_on_ack,
            consumers: ConsumerWatch::default(),
        })
    }
}

/// Gets or creates the channel's claims consumer; its `ack_wait` is the policy's lease.
async fn claims_consumer(
    stream: &stream::Stream,
    id: &str,
    policy: &ClaimPolicy,
) -> Result<PullConsumer> {
    let config = claims_config(policy, DeliverPolicy::All);
    let fail = |e: BoxError| {
        Error::store(
            format!("JetStream claims consumer of channel '{id}' failed"),
            e,
        )
    };
    let consumer: PullConsumer = stream
        .get_or_create_consumer(CLAIMS_CONSUMER, config.clone())
        .await
        .map_err(|e| fail(e.into()))?;
    if consumer.cached_info().config.ack_wait != policy.lease {
        // On 2.9 a create with the durable's name updates its editable fields.
        match stream.create_consumer(config).await {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(
                channel = %id, error = %e,
                "the claims consumer has another ack_wait than this claim_timeout and could not be updated"
            ),
        }
    }
    Ok(consumer)
}

/// The configuration of the claims consumer, delivering from `deliver_policy` on.
pub(super) fn claims_config(policy: &ClaimPolicy, deliver_policy: DeliverPolicy) -> pull::Config {
    pull::Config {
        durable_name: Some(CLAIMS_CONSUMER.to_owned()),
        description: Some("sssn claims: every claimer of the channel pulls from it".into()),
        deliver_policy,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: policy.lease,
        // Deliveries are limited by the store, not the server: the delivery that would
        // exceed `max_deliveries` must stay redeliverable until someone moved it to the
        // dead letters (a server-side limit would strand it if that process died).
        max_deliver: -1,
        max_ack_pending: -1,
        ..Default::default()
    }
}

impl JetStreamChannel {
    /// The claim surface. The store hands out the claim queue only for channels opened
    /// with claims, so this fails only on a broken invariant.
    pub(super) fn claim_side(&self) -> Result<&ClaimSide> {
        self.claims.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("channel '{}' was opened without claims", self.id),
            )
        })
    }

    /// The one path of ack, nack, reject and extend (see the module docs).
    async fn settle_claims(&self, claimer: &str, ids: &[&str], how: &Settle) -> Result<Settled> {
        let side = self.claim_side()?;
        // An extend leaves the claim in the table: its holder goes on holding it.
        let take = !matches!(how, Settle::Extend);
        let (live, mut stale) = lock(&side.table).split(claimer, ids, now_millis(), take);
        // A renewed lease starts before the request leaves, so it never outlives the
        // server's, which restarts when the server gets the request.
        let sent_at = now_millis();
        let removing = matches!(how, Settle::Ack) && self.acks_remove(side);
        let (outcomes, confirmed, counted) = if removing {
            let (outcomes, confirmed, counted) = self.ack_removing(side, &live).await;
            (outcomes, confirmed, Some(counted))
        } else {
            let outcomes = join_all(
                live.iter()
                    .map(|(_, claim)| self.settle_on_server(side, claim, how)),
            )
            .await;
            (outcomes, Ok(()), None)
        };
        let now = now_millis();
        let mut done = Vec::with_capacity(live.len());
        let mut failed = Vec::new();
        let mut error = None;
        {
            let mut table = lock(&side.table);
            for ((id, claim), outcome) in live.into_iter().zip(outcomes) {
                match outcome {
                    Ok(true) => {
                        match how {
                            Settle::Nack { delay } => table.released(
                                claim.seq,
                                now,
                                ClaimPolicy::release_due(now, *delay),
                                side.policy.lease_ms(),
                            ),
                            Settle::Extend => {
                                table.renew(&id, &claim, side.policy.lease_deadline(sent_at));
                            }
                            Settle::Ack | Settle::Reject { .. } => {}
                        }
                        done.push(id);
                    }
                    // Removed meanwhile (evict, remove, clear): there was nothing to consume.
                    Ok(false) => stale.push(id),
                    Err(e) => {
                        error.get_or_insert(e);
                        if take {
                            failed.push((id, claim));
                        }
                    }
                }
            }
            table.restore(failed);
        }
        if let Err(e) = confirmed {
            // Acknowledged on the consumer (so never delivered again) but not known to be
            // removed: the outcome is unknown, as for a lost reply.
            error.get_or_insert(e);
        }
        let counted = match counted {
            Some(counted) => counted,
            None if matches!(how, Settle::Ack) => side.acked.add(done.len() as u64).await,
            None => Ok(()),
        };
        if let Err(e) = counted {
            // The messages are consumed, but an ack that returned must be counted: report
            // the outcome as unknown (the count stays pending, stored by the next ack or
            // `stats`).
            error.get_or_insert(e);
        }
        match error {
            Some(e) => Err(e),
            None => Ok(Settled { done, stale }),
        }
    }

    /// The server action of settling one live claim `how`; `Ok(false)` when the message
    /// was no longer stored (an ack found nothing to consume).
    async fn settle_on_server(
        &self,
        side: &ClaimSide,
        claim: &Claim,
        how: &Settle,
    ) -> Result<bool> {
        match how {
            Settle::Ack => self.ack_deleting(claim).await,
            Settle::Nack { delay } => {
                match side.policy.on_release(claim.attempt, Release::Nack) {
                    Fate::DeadLetter(reason) => self.dead_letter_claim(claim, &reason).await?,
                    Fate::Requeue => {
                        let kind = AckKind::Nak(delay.filter(|d| !d.is_zero()));
                        self.settle_delivery(&claim.reply, kind).await?;
                    }
                }
                Ok(true)
            }
            Settle::Reject { reason } => {
                self.dead_letter_claim(claim, &DeadReason::Rejected(reason.clone()))
                    .await?;
                Ok(true)
            }
            Settle::Extend => {
                self.settle_delivery(&claim.reply, AckKind::Progress)
                    .await?;
                Ok(true)
            }
        }
    }

    /// Acknowledges a claim the deleting way; `Ok(false)` when the message was no longer
    /// stored. Delete first: once the delete is confirmed the work is consumed for every
    /// process; the acknowledgement after it only tidies the consumer.
    pub(super) async fn ack_deleting(&self, claim: &Claim) -> Result<bool> {
        let deleted = self.delete_seq(&self.stream, claim.seq).await?;
        self.settle_quietly(&claim.reply, AckKind::Ack).await;
        Ok(deleted)
    }

    /// Moves the message of a claim held here to the dead letters.
    async fn dead_letter_claim(&self, claim: &Claim, reason: &DeadReason) -> Result<()> {
        self.dead_letter(
            claim.seq,
            &claim.message,
            claim.attempt,
            reason,
            &claim.reply,
        )
        .await
    }

    /// Forgets this process's claims whose lease ran out, dead-lettering those the policy
    /// says used their last delivery. Returns how many lapsed.
    pub(super) async fn reclaim_local(&self) -> Result<usize> {
        let side = self.claim_side()?;
        let lapsed = lock(&side.table).expire(now_millis(), side.policy.lease_ms());
        let dead: Vec<(&Claim, DeadReason)> = lapsed
            .iter()
            .filter_map(
                |c| match side.policy.on_release(c.attempt, Release::LeaseExpired) {
                    Fate::DeadLetter(reason) => Some((c, reason)),
                    Fate::Requeue => None,
                },
            )
            .collect();
        let moved = join_all(
            dead.iter()
                .map(|(claim, reason)| self.dead_letter_claim(claim, reason)),
        )
        .await;
        for r in moved {
            r?;
        }
        Ok(lapsed.len())
    }
}

#[async_trait]
impl ClaimQueue for JetStreamChannel {
    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>> {
        let side = self.claim_side()?;
        self.reclaim_local().await?;
        let claimer: Arc<str> = Arc::from(claimer);
        let mut out = Vec::new();
        let wait = self
            .store
            .options
            .claim_wait
            .min(self.store.options.request_timeout);
        let mut waited = wait.is_zero();
        while out.len() < limit {
            let want = (limit - out.len()).min(MAX_BATCH);
            // The lease starts before the request leaves, so it never outlives the server's
            // ack_wait, which starts at delivery.
            let sent_at = now_millis();
            // A removal by this handle from now on makes the claims' acks delete (see
            // `remove_on_ack`).
            let epoch = self.removals.load(std::sync::atomic::Ordering::Acquire);
            let mut msgs = self.fetch(&side.consumer, want).await?;
            if msgs.is_empty() && out.is_empty() && !waited {
                // Nothing now: wait on the server for the next message (and on a replica
                // that has not applied a confirmed write yet), then take what else is there.
                waited = true;
                msgs = self.fetch_waiting(&side.consumer, 1, wait).await?;
                if !msgs.is_empty() && want > 1 {
                    msgs.extend(self.fetch(&side.consumer, want - 1).await?);
                }
            }
            let n = msgs.len();
            for m in msgs {
                let Ok(info) = m.info() else { continue };
                let (seq, attempt) = (
                    info.stream_sequence,
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                );
                let Some(reply) = m.reply.clone() else {
                    continue;
                };
                let message = match decode(&m.payload) {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::warn!(channel = %self.id, seq, error = %e, "terminating an undecodable message");
                        self.settle_quietly(&reply, AckKind::Term).await;
                        continue;
                    }
                };
                if let Fate::DeadLetter(reason) = side.policy.on_redelivery(attempt) {
                    // The server redelivered after the previous holder's lease lapsed, and
                    // that was the last delivery: dead-letter instead of claiming.
                    let attempts = attempt.saturating_sub(1);
                    self.dead_letter(seq, &message, attempts, &reason, &reply)
                        .await?;
                    continue;
                }
                let message = Arc::new(message);
                let deadline_ms = side.policy.lease_deadline(sent_at);
                lock(&side.table).hold(Claim {
                    seq,
                    claimer: claimer.clone(),
                    deadline_ms,
                    attempt,
                    reply,
                    message: message.clone(),
                    epoch,
                });
                out.push(Claimed {
                    seq,
                    message,
                    attempt,
                    lease_until_ms: deadline_ms,
                });
            }
            if n < want {
                break;
            }
        }
        Ok(out)
    }

    async fn settle(&self, claimer: &str, ids: &[&str], how: Settle) -> Result<Settled> {
        self.settle_claims(claimer, ids, &how).await
    }

    async fn reclaim_expired(&self) -> Result<usize> {
        self.reclaim_local().await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.list_dead_letters(self.claim_side()?, limit).await
    }

    async fn redrive(&self, ids: &[&str]) -> Result<usize> {
        self.redrive_dead_letters(self.claim_side()?, ids).await
    }

    async fn stats(&self) -> Result<ClaimStats> {
        let side = self.claim_side()?;
        self.reclaim_local().await?;
        let consumer_info = async {
            side.consumer
                .get_info()
                .await
                .map_err(|e| self.err("consumer info", e))
        };
        let dead_lettered = async {
            side.dlq
                .get_info()
                .await
                .map(|i| i.state.messages)
                .map_err(|e| self.err("dead-letter stream info", e))
        };
        let (info, consumer_info, dead_lettered, acknowledged) = tokio::join!(
            self.stream_info(),
            consumer_info,
            dead_lettered,
            side.acked.total()
        );
        let (mut info, mut consumer_info) = (info?, consumer_info?);
        if info.state.messages > 0
            && info.state.first_sequence <= consumer_info.ack_floor.stream_sequence
        {
            // Stored below the ack floor: left by a server crash, and no claim can serve
            // it. Reconcile, then count again.
            self.reconcile().await?;
            info = self.stream_info().await?;
            consumer_info = side
                .consumer
                .get_info()
                .await
                .map_err(|e| self.err("consumer info", e))?;
        }
        let stored = info.state.messages;
        let (released, delayed) = lock(&side.table).pending(now_millis());
        // Ack-pending on the server = held + released-but-not-yet-redelivered.
        let in_flight = (consumer_info.num_ack_pending as u64)
            .saturating_sub(released)
            .min(stored);
        let backlog = stored - in_flight;
        Ok(ClaimStats {
            backlog,
            delayed: delayed.min(backlog),
            in_flight,
            acknowledged: acknowledged?,
            dead_lettered: dead_lettered?,
        })
    }
}
