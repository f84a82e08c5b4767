//! Claims — exclusive, leased reads settled by ack, nack, reject or extend — and dead
//! letters, on kinds that have them. The rules (requeue or dead-letter, fencing) live in
//! [`ClaimPolicy`](crate::policy::ClaimPolicy); the store applies them atomically.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::kind::{Claims, Kind};
use super::{Caller, Channel, Who};
use crate::error::Result;
use crate::message::ChannelMessage;
use crate::security::Operation;
use crate::store::{Claimed, DeadLetter, Entry, Settle, Settled};
use crate::trace::{
    self,
    journal::{self, HopKind},
};
use tracing::Instrument;

/// What names the messages to settle: ids (`&[String]`, `&[&str]`, `&str`) or the claimed
/// items themselves (`&[Claimed]`, `&Claimed`), so `queue.ack("w", &claimed)` needs no
/// copying of ids.
pub trait MessageIds {
    /// The ids, borrowed.
    fn message_ids(&self) -> Vec<&str>;
}

/// One thing that names a message.
pub trait MessageId {
    /// The message id.
    fn message_id(&self) -> &str;
}

impl MessageId for str {
    fn message_id(&self) -> &str {
        self
    }
}
impl MessageId for String {
    fn message_id(&self) -> &str {
        self
    }
}
impl MessageId for ChannelMessage {
    fn message_id(&self) -> &str {
        &self.id
    }
}
impl MessageId for Arc<ChannelMessage> {
    fn message_id(&self) -> &str {
        &self.id
    }
}
impl MessageId for Claimed {
    fn message_id(&self) -> &str {
        &self.message.id
    }
}
impl MessageId for Entry {
    fn message_id(&self) -> &str {
        &self.message.id
    }
}
impl<T: MessageId + ?Sized> MessageId for &T {
    fn message_id(&self) -> &str {
        (**self).message_id()
    }
}

impl<T: MessageId> MessageIds for [T] {
    fn message_ids(&self) -> Vec<&str> {
        self.iter().map(MessageId::message_id).collect()
    }
}
impl<T: MessageId, const N: usize> MessageIds for [T; N] {
    fn message_ids(&self) -> Vec<&str> {
        self.iter().map(MessageId::message_id).collect()
    }
}
impl<T: MessageId> MessageIds for Vec<T> {
    fn message_ids(&self) -> Vec<&str> {
        self.iter().map(MessageId::message_id).collect()
    }
}
impl MessageIds for str {
    fn message_ids(&self) -> Vec<&str> {
        vec![self]
    }
}
impl MessageIds for String {
    fn message_ids(&self) -> Vec<&str> {
        vec![self.as_str()]
    }
}
impl MessageIds for Claimed {
    fn message_ids(&self) -> Vec<&str> {
        vec![self.message.id.as_str()]
    }
}
impl<T: MessageIds + ?Sized> MessageIds for &T {
    fn message_ids(&self) -> Vec<&str> {
        (**self).message_ids()
    }
}

impl<K: Claims> Channel<K> {
    /// Claims up to `limit` of the oldest claimable messages for the lease
    /// (`claim_timeout`). Each carries its delivery attempt number.
    pub async fn claim(&self, caller: impl Caller, limit: usize) -> Result<Vec<Claimed>> {
        self.claim_any(caller, limit).await
    }

    /// Acknowledges claimed messages: they are consumed and leave the store. Fenced: ids
    /// without a live claim by the caller are reported in [`Settled::stale`] (the others
    /// are still acknowledged).
    pub async fn ack(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
    ) -> Result<Settled> {
        self.settle_any(caller, &ids.message_ids(), Settle::Ack)
            .await
    }

    /// Acknowledges claimed messages and claims up to `limit` more, in one call: the loop
    /// of a consumer that finishes a batch and takes the next. Stores that can do both in
    /// one transaction do (SQLite: one durable commit instead of two). The ack is fenced
    /// as [`ack`](Self::ack)'s.
    pub async fn ack_and_claim(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        self.settle_and_claim_any(caller, &ids.message_ids(), Settle::Ack, limit)
            .await
    }

    /// Releases claimed messages for anyone to claim again now.
    pub async fn nack(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
    ) -> Result<Settled> {
        self.settle_any(caller, &ids.message_ids(), Settle::Nack { delay: None })
            .await
    }

    /// Releases claimed messages, claimable again after `delay`.
    pub async fn nack_after(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
        delay: Duration,
    ) -> Result<Settled> {
        let how = Settle::Nack { delay: Some(delay) };
        self.settle_any(caller, &ids.message_ids(), how).await
    }

    /// Sends claimed messages straight to the dead letters (a fatal failure) with `reason`.
    pub async fn reject(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
        reason: &str,
    ) -> Result<Settled> {
        let how = Settle::Reject {
            reason: reason.to_owned(),
        };
        self.settle_any(caller, &ids.message_ids(), how).await
    }

    /// Renews the lease of claimed messages for a full `claim_timeout` from now.
    pub async fn extend(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
    ) -> Result<Settled> {
        self.settle_any(caller, &ids.message_ids(), Settle::Extend)
            .await
    }

    /// Changes `claim_timeout` on a running channel (admin): claims and extensions from now
    /// on get the new lease; leases already given keep their deadline. Memory and SQLite
    /// allow it; JetStream refuses (`UnsupportedOperation`): the lease is the shared
    /// consumer's `ack_wait`, fixed when the channel opens.
    pub async fn set_claim_timeout(&self, caller: impl Caller, timeout: Duration) -> Result<()> {
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        self.core
            .claims("a claim timeout change")?
            .set_lease(timeout)
            .await
    }

    /// Makes messages whose lease ran out claimable again now (maintenance does this too).
    pub async fn reclaim_expired(&self) -> Result<usize> {
        self.core.claims("lease reclaim")?.reclaim_expired().await
    }

    /// Dead letters, oldest first (admin).
    pub async fn dead_letters(&self, caller: impl Caller, limit: usize) -> Result<Vec<DeadLetter>> {
        self.dead_letters_any(caller, limit).await
    }

    /// Puts dead letters back in the channel as new messages (admin).
    pub async fn redrive(
        &self,
        caller: impl Caller,
        ids: &(impl MessageIds + ?Sized),
    ) -> Result<usize> {
        self.redrive_any(caller, &ids.message_ids()).await
    }
}

/// The operation name of a settle on its span.
fn what_op(hop: Option<HopKind>) -> &'static str {
    match hop {
        Some(HopKind::Ack) => "ack",
        Some(HopKind::Nack) => "nack",
        Some(HopKind::Reject) => "reject",
        _ => "extend",
    }
}

impl<K: Kind> Channel<K> {
    pub(crate) async fn claim_any(
        &self,
        caller: impl Caller,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        let core = &self.core;
        let span = trace::channel_span("claim", self.id(), core.kind.as_str());
        let queue = core.claims("claims (exclusive reads)")?;
        let caller = Who::of(&caller);
        core.authorize(&caller, Operation::Claim)?;
        let claimed = queue
            .claim(caller.id(), limit)
            .instrument(span.clone())
            .await?;
        core.counters
            .claims
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        let first = claimed.first();
        trace::record_message(
            &span,
            first.map(|c| &*c.message),
            first.map(|c| c.seq),
            first.map(|c| c.attempt),
            claimed.len(),
        );
        self.note_claims(&claimed, caller.id());
        Ok(claimed)
    }

    /// Trace bookkeeping of a claim: this task now handles these messages (its writes
    /// continue their traces), and the journal records the hops.
    fn note_claims(&self, claimed: &[Claimed], caller: &str) {
        trace::note_claimed(claimed);
        for c in claimed {
            journal::record(
                HopKind::Claim,
                self.id(),
                &c.message,
                caller,
                Some(c.seq),
                Some(c.attempt),
            );
        }
    }

    /// Trace bookkeeping of a settle (none for an extend, which moves nothing).
    fn note_settles(&self, hop: Option<HopKind>, ids: &[&str], settled: &Settled, caller: &str) {
        if let Some(hop) = hop {
            trace::note_settled(ids);
            journal::record_settled(hop, self.id(), &settled.done, caller);
        }
    }

    /// Settles claims `how`: the one path of ack, nack, reject and extend.
    pub(crate) async fn settle_any(
        &self,
        caller: impl Caller,
        ids: &[&str],
        how: Settle,
    ) -> Result<Settled> {
        let core = &self.core;
        let (what, op) = settle_operation(&how);
        let queue = core.claims(what)?;
        let caller = Who::of(&caller);
        core.authorize(&caller, op)?;
        let counter = settle_counter(core, &how);
        let hop = settle_hop(&how);
        let span = trace::channel_span(what_op(hop), self.id(), core.kind.as_str());
        let settled = queue
            .settle(caller.id(), ids, how)
            .instrument(span.clone())
            .await?;
        if let Some(counter) = counter {
            counter.fetch_add(settled.done.len() as u64, Ordering::Relaxed);
        }
        if !span.is_disabled() {
            span.record("count", settled.done.len());
            if let Some(id) = ids.first() {
                span.record("message_id", *id);
            }
        }
        self.note_settles(hop, ids, &settled, caller.id());
        Ok(settled)
    }

    /// Settles claims `how`, then claims up to `limit` for the same caller (one store call).
    pub(crate) async fn settle_and_claim_any(
        &self,
        caller: impl Caller,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        let core = &self.core;
        let (what, op) = settle_operation(&how);
        let queue = core.claims(what)?;
        let caller = Who::of(&caller);
        core.authorize(&caller, op)?;
        core.authorize(&caller, Operation::Claim)?;
        let counter = settle_counter(core, &how);
        let hop = settle_hop(&how);
        let span = trace::channel_span(what_op(hop), self.id(), core.kind.as_str());
        let (settled, claimed) = queue
            .settle_and_claim(caller.id(), ids, how, limit)
            .instrument(span)
            .await?;
        if let Some(counter) = counter {
            counter.fetch_add(settled.done.len() as u64, Ordering::Relaxed);
        }
        core.counters
            .claims
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        self.note_settles(hop, ids, &settled, caller.id());
        self.note_claims(&claimed, caller.id());
        Ok((settled, claimed))
    }

    pub(crate) async fn dead_letters_any(
        &self,
        caller: impl Caller,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let queue = self.core.claims("dead letters")?;
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        queue.dead_letters(limit).await
    }

    pub(crate) async fn redrive_any(&self, caller: impl Caller, ids: &[&str]) -> Result<usize> {
        let queue = self.core.claims("redrive")?;
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        queue.redrive(ids).await
    }
}

/// What a settlement is called in errors, and the operation it needs.
fn settle_operation(how: &Settle) -> (&'static str, Operation) {
    match how {
        Settle::Ack => ("acknowledgements", Operation::Ack),
        Settle::Nack { .. } => ("nacks", Operation::Nack),
        Settle::Reject { .. } => ("reject", Operation::Nack),
        Settle::Extend => ("lease extension", Operation::Nack),
    }
}

/// The channel counter a settlement adds to.
/// The hop a settle leaves in the trace journal (an extend moves nothing).
fn settle_hop(how: &Settle) -> Option<HopKind> {
    match how {
        Settle::Ack => Some(HopKind::Ack),
        Settle::Nack { .. } => Some(HopKind::Nack),
        Settle::Reject { .. } => Some(HopKind::Reject),
        Settle::Extend => None,
    }
}

fn settle_counter<'c>(
    core: &'c super::core::Core,
    how: &Settle,
) -> Option<&'c std::sync::atomic::AtomicU64> {
    match how {
        Settle::Ack => Some(&core.counters.acks),
        Settle::Nack { .. } => Some(&core.counters.nacks),
        _ => None,
    }
}
