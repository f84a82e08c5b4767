//! Dead letters: the channel's `<stream>_DLQ` stream, one subject per message id, each
//! message a [`DeadLetter`] (the original message, its attempts, the reason, the time).
//!
//! Data flow of a move ([`JetStreamChannel::dead_letter`]): store the dead letter, then
//! delete the message from the channel, then terminate the delivery on the claims
//! consumer — a crash in between leaves the message in both places, never in neither.
//! The dead letter's `Nats-Msg-Id` is the message id and sequence, so two processes moving
//! the same delivery (the holder after its lease ran out, the next claimer) store it once.
//! The reason is always a [`DeadReason`] rendered by the policy module, whoever moves it:
//! a nack or lapsed lease of the last delivery, a redelivery beyond the limit, a reject.
//! A redrive appends the messages back to the channel first, then deletes the dead
//! letters, for the same reason.

use async_nats::Subject;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::message::PublishMessage;
use futures::future::join_all;
use sssn::clock::now_millis;
use sssn::policy::DeadReason;
use sssn::store::{DeadLetter, Seq};
use sssn::{ChannelMessage, Error, ErrorKind, Result};

use super::claims::ClaimSide;
use super::log::Dedupe;
use super::{JetStreamChannel, lookup};

impl JetStreamChannel {
    /// Moves a claimed message (delivery `reply`, sequence `seq`, delivered `attempts`
    /// times) to the dead letters for `reason`. Only called on the claim path: channels
    /// with claims have a dead-letter stream.
    pub(super) async fn dead_letter(
        &self,
        seq: Seq,
        message: &ChannelMessage,
        attempts: u32,
        reason: &DeadReason,
        reply: &Subject,
    ) -> Result<()> {
        let letter = DeadLetter {
            seq,
            message: message.clone(),
            attempts,
            reason: reason.to_string(),
            dead_at_ms: now_millis(),
            recipient: None,
        };
        let payload = serde_json::to_vec(&letter)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("dead letter encoding: {e}")))?;
        // The message id plus its sequence: two processes moving the same delivery (the
        // holder after its lease ran out, the next claimer) store it once.
        let publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}@{seq}", message.id));
        self.store
            .js
            .send_publish(self.names.dead_letter(&message.id), publish)
            .await
            .map_err(|e| self.err("dead-letter publish", e))?
            .await
            .map_err(|e| self.err("dead-letter publish", e))?;
        self.delete_seq(&self.stream, seq).await?;
        self.settle_quietly(reply, AckKind::Term).await;
        Ok(())
    }

    /// Up to `limit` dead letters, oldest first.
    pub(super) async fn list_dead_letters(
        &self,
        side: &ClaimSide,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let msgs = self
            .scan(&side.dlq, DeliverPolicy::All, String::new(), false, limit)
            .await?;
        Ok(msgs
            .iter()
            .filter_map(|m| serde_json::from_slice::<DeadLetter>(&m.payload).ok())
            .collect())
    }

    /// Appends the dead letters of `ids` back to the channel (new sequences, attempts
    /// start over), then deletes them; returns how many were moved.
    pub(super) async fn redrive_dead_letters(
        &self,
        side: &ClaimSide,
        ids: &[&str],
    ) -> Result<usize> {
        let dlq = &side.dlq;
        let mut letters: Vec<(Seq, DeadLetter)> = Vec::new();
        for &id in ids {
            let subject = self.names.dead_letter(id);
            let mut from = 1;
            while let Some(m) = lookup::next_for_subject(dlq, subject.clone(), from)
                .await
                .map_err(|e| self.err("dead-letter lookup", e))?
            {
                from = m.sequence + 1;
                if let Ok(letter) = serde_json::from_slice::<DeadLetter>(&m.payload)
                    && letter.message.id == id
                {
                    letters.push((m.sequence, letter));
                }
            }
        }
        letters.sort_by_key(|(seq, _)| *seq);
        let dlq_seqs: Vec<Seq> = letters.iter().map(|(seq, _)| *seq).collect();
        let moved = letters.len();
        // Back in the channel first, then out of the dead letters: a crash in between
        // leaves a copy in both, never in neither.
        self.append_new(
            letters.into_iter().map(|(_, l)| l.message).collect(),
            Dedupe::Stored,
        )
        .await?;
        for r in join_all(dlq_seqs.iter().map(|seq| self.delete_seq(dlq, *seq))).await {
            r?;
        }
        Ok(moved)
    }
}
