//! The claim queue of a memory channel: the shared queue (work queues) or an inbox per
//! recipient (mailboxes, `inbox.rs`), behind one [`ClaimQueue`].

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;

use super::{Lease, MemoryChannel, SlotState, State};
use crate::clock::{millis, now_millis};
use crate::error::Result;
use crate::message::ChannelMessage;
use crate::policy::{ClaimPolicy, ClaimScope, DeadReason, Release};
use crate::store::{ClaimQueue, ClaimStats, Claimed, DeadLetter, Log, Settle, Settled};

impl MemoryChannel {
    /// Claims up to `limit` for `claimer` in the locked state (see [`ClaimQueue::claim`]).
    fn claim_locked(
        &self,
        st: &mut State,
        policy: &ClaimPolicy,
        claimer: &str,
        limit: usize,
        now: u64,
    ) -> Vec<Claimed> {
        if self.scope == ClaimScope::PerRecipient {
            return st.inbox_claim(policy, claimer, limit, now);
        }
        let deadline = policy.lease_deadline(now);
        st.maintain(policy, now);
        let mut out = Vec::with_capacity(limit.min(st.ready.len() + st.fresh));
        // Made on the first claim only: an empty poll allocates nothing.
        let mut holder: Option<Arc<str>> = None;
        while out.len() < limit {
            let Some(seq) = st.next_claimable() else {
                break;
            };
            let Some(slot) = st.slot_mut(seq) else {
                continue;
            };
            slot.state = SlotState::InFlight;
            slot.attempts = slot.attempts.saturating_add(1);
            let claimed = Claimed {
                seq,
                message: slot.message.clone(),
                attempt: u32::from(slot.attempts),
                lease_until_ms: deadline,
            };
            let claimer = holder.get_or_insert_with(|| Arc::from(claimer)).clone();
            st.in_flight.insert(
                seq,
                Lease {
                    claimer,
                    deadline_ms: deadline,
                },
            );
            st.leases.push(Reverse((deadline, seq)));
            out.push(claimed);
        }
        out
    }

    /// Settles `ids` for `claimer` in the locked state (see [`ClaimQueue::settle`]).
    fn settle_locked(
        &self,
        st: &mut State,
        policy: &ClaimPolicy,
        claimer: &str,
        ids: &[&str],
        how: &Settle,
        now: u64,
    ) -> Settled {
        if self.scope == ClaimScope::PerRecipient {
            return st.inbox_settle(policy, claimer, ids, how, now);
        }
        let due = match how {
            Settle::Nack { delay } => ClaimPolicy::release_due(now, *delay),
            _ => None,
        };
        let mut out = Settled {
            done: Vec::with_capacity(ids.len()),
            stale: Vec::new(),
        };
        for &id in ids {
            let Some(seq) = st.live_claim(claimer, id, now) else {
                out.stale.push(id.to_owned());
                continue;
            };
            match how {
                Settle::Ack => {
                    if st.take(seq).is_some() {
                        st.acknowledged += 1;
                    }
                }
                Settle::Nack { .. } => st.release(policy, seq, due, Release::Nack, now),
                Settle::Reject { reason } => {
                    st.dead_letter(seq, &DeadReason::Rejected(reason.clone()), now);
                }
                Settle::Extend => {
                    let deadline = policy.lease_deadline(now);
                    if let Some(lease) = st.in_flight.get_mut(&seq) {
                        lease.deadline_ms = deadline;
                        st.leases.push(Reverse((deadline, seq)));
                    }
                }
            }
            out.done.push(id.to_owned());
        }
        st.compact_leases();
        out
    }
}

#[async_trait]
impl ClaimQueue for MemoryChannel {
    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>> {
        let policy = self.policy();
        let now = now_millis();
        let mut st = self.lock();
        Ok(self.claim_locked(&mut st, &policy, claimer, limit, now))
    }

    async fn settle(&self, claimer: &str, ids: &[&str], how: Settle) -> Result<Settled> {
        let policy = self.policy();
        let now = now_millis();
        let mut st = self.lock();
        Ok(self.settle_locked(&mut st, &policy, claimer, ids, &how, now))
    }

    /// Both under one lock: no other claimer runs in between, as in one transaction.
    async fn settle_and_claim(
        &self,
        claimer: &str,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        let policy = self.policy();
        let now = now_millis();
        let mut st = self.lock();
        let settled = self.settle_locked(&mut st, &policy, claimer, ids, &how, now);
        let claimed = self.claim_locked(&mut st, &policy, claimer, limit, now);
        Ok((settled, claimed))
    }

    async fn reclaim_expired(&self) -> Result<usize> {
        let policy = self.policy();
        let mut st = self.lock();
        Ok(match self.scope {
            ClaimScope::Shared => st.maintain(&policy, now_millis()),
            ClaimScope::PerRecipient => st.inboxes_maintain(&policy, now_millis()),
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(self.lock().dead.iter().take(limit).cloned().collect())
    }

    async fn redrive(&self, ids: &[&str]) -> Result<usize> {
        let (n, moved): (usize, Vec<ChannelMessage>) = {
            let mut st = self.lock();
            let (back, keep): (Vec<_>, Vec<_>) = st
                .dead
                .drain(..)
                .partition(|d| ids.contains(&d.message.id.as_str()));
            st.dead = keep.into();
            let n = back.len();
            let moved = back
                .into_iter()
                .filter_map(|d| match d.recipient.clone() {
                    // A recipient's dead letter goes back to that recipient's inbox only.
                    Some(recipient) => st.inbox_redrive(&recipient, d),
                    None => Some(d.message),
                })
                .collect();
            (n, moved)
        };
        self.append(moved).await?;
        Ok(n)
    }

    async fn set_lease(&self, lease: Duration) -> Result<()> {
        self.lease_ms.store(millis(lease), Ordering::Relaxed);
        Ok(())
    }

    async fn stats(&self) -> Result<ClaimStats> {
        let policy = self.policy();
        let mut st = self.lock();
        if self.scope == ClaimScope::PerRecipient {
            return Ok(st.inbox_stats(&policy, now_millis()));
        }
        st.maintain(&policy, now_millis());
        Ok(ClaimStats {
            backlog: (st.ready.len() + st.fresh + st.delayed_count) as u64,
            delayed: st.delayed_count as u64,
            in_flight: st.in_flight.len() as u64,
            acknowledged: st.acknowledged,
            dead_lettered: st.dead.len() as u64,
        })
    }
}
