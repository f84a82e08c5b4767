//! Acks that remove: a channel with claims whose message stream has **interest retention**,
//! so that the server removes a message when the claims consumer acknowledges it. An ack
//! is then one `+ACK` (sent as a request: the server answers after it removed the
//! message) instead of a `$JS.API.STREAM.MSG.DELETE` request and its reply, then a `+ACK`.
//!
//! The server removes an acknowledged message only when no other consumer of the stream
//! still needs it: a consumer without acks (a shared reader, the feed, a scan) holds the
//! messages it has not delivered yet. So after the `+ACK`s of one settle, one stream info
//! tells whether the claims consumer is the stream's only consumer: then every message
//! acknowledged is gone (a consumer that held one and was deleted in between removed it
//! on its way out: the server cleans up an interest stream when one of its consumers
//! goes). Otherwise the acknowledged messages are deleted as on a limits stream (a message
//! the server removed already counts as deleted), and the next acks of this handle go
//! the deleting way (delete, then `+ACK`) until [`RECHECK`] has passed.
//!
//! Where the removing way is not taken, and why (each falls back to the deleting way):
//!
//! * `durable_acks`: the server's removal on ack is a plain delete, never a secure erase;
//! * replicated streams: a clustered consumer answers the `+ACK` before the removal is
//!   replicated and applied, so `ack` could return with the message still stored; new
//!   replicated streams get limits retention;
//! * claims made before a removal by this handle (`evict`, `remove`, `clear`,
//!   `remove_seqs`): the delete tells whether the message was still there to consume (a
//!   stale ack), a `+ACK` does not.
//!
//! What an interest stream asks of the rest of the store: it drops an append when the
//! stream has no consumer at all, so it is created only with its claims consumer (a
//! log-only open of it is refused), and the claims consumer is recreated behind a holding
//! consumer ([`JetStreamChannel::with_holding_consumer`]). Streams created by earlier
//! versions have limits retention (2.9 cannot change a stream's retention) and keep the
//! deleting way.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{self, DeliverPolicy, pull};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::RetentionPolicy;
use futures::future::join_all;
use serde::Deserialize;
use sssn::clock::now_millis;
use sssn::store::{ChannelSpec, ClaimScope, Seq};
use sssn::{Error, ErrorKind, Result};

use super::claim_table::Claim;
use super::claims::ClaimSide;
use super::{JetStreamChannel, lock};
use crate::store::StoreInner;
use crate::version::ServerVersion;

/// How long acks go the deleting way after another consumer was seen on the stream.
const RECHECK: Duration = Duration::from_secs(1);

/// Name of the consumer that holds the messages while the claims consumer is recreated.
const HOLDING_CONSUMER: &str = "claims-hold";

/// The retention of a channel stream this store creates: interest for a channel with
/// (shared) claims where acks may remove (see the module docs), limits otherwise.
pub(super) fn retention_for_new(store: &StoreInner, spec: &ChannelSpec) -> RetentionPolicy {
    let o = &store.options;
    let shared_claims = spec.claims.is_some() && spec.claim_scope == ClaimScope::Shared;
    // Unset: only where the server keeps the messages of an interest stream through a
    // crash (an unknown version counts as an old one).
    let wanted = o.remove_on_ack.unwrap_or_else(|| {
        store
            .server_version()
            .is_some_and(ServerVersion::interest_streams_survive_crashes)
    });
    if shared_claims && wanted && !o.durable_acks && o.replicas == 1 {
        RetentionPolicy::Interest
    } else {
        RetentionPolicy::Limits
    }
}

#[derive(Deserialize)]
struct ConsumerNames {
    total: usize,
}

/// What this handle knows of the stream's consumers.
#[derive(Default)]
pub(super) struct ConsumerWatch {
    /// When another consumer than the claims consumer was last seen (epoch ms; 0: never).
    others_seen_ms: AtomicU64,
    /// Tickets of the settles waiting for a count: a settle takes one once its `+ACK`s
    /// were answered, so a count asked for after the ticket was taken serves it.
    tickets: AtomicU64,
    /// The newest ticket the last count served, and that count.
    last: Mutex<(u64, usize)>,
    /// One count at a time: the settles waiting meanwhile share the next one.
    counting: tokio::sync::Mutex<()>,
}

impl JetStreamChannel {
    /// Whether the acks of this settle go the removing way.
    pub(super) fn acks_remove(&self, side: &ClaimSide) -> bool {
        side.removes_on_ack
            && !self.store.options.durable_acks
            && self.stream.cached_info().config.num_replicas <= 1
            && now_millis().saturating_sub(side.consumers.others_seen_ms.load(Ordering::Acquire))
                >= RECHECK.as_millis() as u64
    }

    /// Acknowledges `live` claims the removing way. Returns each claim's outcome (as
    /// [`Self::ack_deleting`] does), whether the removal of all of them is confirmed, and
    /// whether the acknowledged counter stored them (written while the removal is
    /// confirmed: both only follow the `+ACK`s).
    pub(super) async fn ack_removing(
        &self,
        side: &ClaimSide,
        live: &[(String, Claim)],
    ) -> (Vec<Result<bool>>, Result<()>, Result<()>) {
        let epoch = self.removals.load(Ordering::Acquire);
        // The server handles a consumer's acks one after the other in the order they
        // arrive, and these all leave on one connection: the answer to the last `+ACK`
        // confirms every one before it, so only the last is a request.
        let last = live.iter().rposition(|(_, claim)| claim.epoch == epoch);
        let acks = async {
            let mut sent = Vec::with_capacity(live.len());
            for (i, (_, claim)) in live.iter().enumerate() {
                if claim.epoch == epoch && Some(i) != last {
                    sent.push(self.send_ack(claim).await);
                } else {
                    sent.push(Ok(()));
                }
            }
            let confirmed = match last {
                Some(i) => self.settle_delivery(&live[i].1.reply, AckKind::Ack).await,
                None => Ok(()),
            };
            (sent, confirmed)
        };
        // Claims made before a removal by this handle: the delete tells whether the
        // message was still there to consume.
        let deleting = join_all(
            live.iter()
                .filter(|(_, claim)| claim.epoch != epoch)
                .map(|(_, claim)| self.ack_deleting(claim)),
        );
        let ((sent, confirmed), deleted) = tokio::join!(acks, deleting);
        let mut deleted = deleted.into_iter();
        let outcomes: Vec<Result<(bool, bool)>> = live
            .iter()
            .zip(sent)
            .map(|((_, claim), sent)| {
                if claim.epoch != epoch {
                    let deleted = deleted.next().unwrap_or(Ok(false));
                    return deleted.map(|d| (d, false));
                }
                match (sent, &confirmed) {
                    (Ok(()), Ok(())) => Ok((true, true)),
                    (Err(e), _) => Err(e),
                    (Ok(()), Err(e)) => Err(Error::new(ErrorKind::Store, e.to_string())),
                }
            })
            .collect();
        let acked: Vec<Seq> = live
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Ok((true, true))))
            .map(|((_, claim), _)| claim.seq)
            .collect();
        let outcomes: Vec<Result<bool>> = outcomes
            .into_iter()
            .map(|o| o.map(|(done, _)| done))
            .collect();
        let done = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        let confirm = async {
            if acked.is_empty() {
                Ok(())
            } else {
                self.confirm_removed(side, &acked).await
            }
        };
        let (confirmed, counted) = tokio::join!(confirm, side.acked.add(done as u64));
        (outcomes, confirmed, counted)
    }

    /// Makes sure the messages at `seqs`, acknowledged on the claims consumer, are no
    /// longer stored: nothing to do when the claims consumer is the stream's only one,
    /// else deletes them.
    async fn confirm_removed(&self, side: &ClaimSide, seqs: &[Seq]) -> Result<()> {
        if self.consumer_count_after_acks(&side.consumers).await? <= 1 {
            return Ok(());
        }
        side.consumers
            .others_seen_ms
            .store(now_millis(), Ordering::Release);
        for deleted in join_all(seqs.iter().map(|&seq| self.delete_seq(&self.stream, seq))).await {
            // Removed already (by the server, or a concurrent delete): as good.
            deleted?;
        }
        Ok(())
    }

    /// The stream's consumer count, asked for after the caller's `+ACK`s were answered;
    /// settles of this handle waiting at the same time share one request.
    async fn consumer_count_after_acks(&self, watch: &ConsumerWatch) -> Result<usize> {
        let ticket = watch.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        let _one = watch.counting.lock().await;
        let (served, count) = *lock(&watch.last);
        if served >= ticket {
            return Ok(count);
        }
        // Every ticket taken so far was taken before this request leaves.
        let serves = watch.tickets.load(Ordering::Acquire);
        let count = self.consumer_count().await?;
        *lock(&watch.last) = (serves, count);
        Ok(count)
    }

    /// Sends the `+ACK` of a claim without waiting for an answer.
    async fn send_ack(&self, claim: &Claim) -> Result<()> {
        self.store
            .client
            .publish(claim.reply.clone(), AckKind::Ack.into())
            .await
            .map_err(|e| self.err("acknowledgement", e))
    }

    /// How many consumers the message stream has (the names listing: a smaller answer
    /// than the stream info).
    async fn consumer_count(&self) -> Result<usize> {
        let subject = format!("CONSUMER.NAMES.{}", self.names.stream);
        let reply: Response<ConsumerNames> = self
            .store
            .js
            .request(subject, &serde_json::json!({ "offset": 0 }))
            .await
            .map_err(|e| self.err("consumer listing", e))?;
        match reply {
            Response::Ok(names) => Ok(names.total),
            Response::Err { error } => Err(self.err("consumer listing", error)),
        }
    }

    /// Runs `work` (which deletes and recreates the claims consumer) while a holding
    /// consumer keeps the messages from `start` on: an interest stream drops the messages
    /// no consumer needs when a consumer is deleted, and every append while it has none.
    /// On a limits stream, just `work`.
    pub(super) async fn with_holding_consumer<F, Fut>(&self, start: Seq, work: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        if self.stream.cached_info().config.retention != RetentionPolicy::Interest {
            return work().await;
        }
        // One left by a recreation that failed holds from an older start: kept as it is.
        self.stream
            .get_or_create_consumer::<pull::Config>(
                HOLDING_CONSUMER,
                pull::Config {
                    durable_name: Some(HOLDING_CONSUMER.to_owned()),
                    description: Some(
                        "sssn: holds the messages while the claims consumer is recreated".into(),
                    ),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    ack_policy: consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err("holding consumer creation", e))?;
        let outcome = work().await;
        // Deleted only once the claims consumer holds the messages again; left in place
        // (for the next recreation) when that failed.
        if outcome.is_ok() {
            self.stream
                .delete_consumer(HOLDING_CONSUMER)
                .await
                .map_err(|e| self.err("holding consumer deletion", e))?;
        }
        outcome
    }
}

/// Refuses a log-only open of an interest stream: it was created for claims, and without
/// its claims consumer it would drop appends.
pub(super) fn refuse_without_claims(retention: RetentionPolicy, id: &str) -> Result<()> {
    if retention == RetentionPolicy::Interest {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "channel '{id}' was created with claims (its JetStream stream removes messages on ack) and cannot be opened without claims"
            ),
        ));
    }
    Ok(())
}
