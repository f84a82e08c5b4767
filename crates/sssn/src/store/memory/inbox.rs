//! Claims per recipient in the memory store (mailboxes, [`ClaimScope::PerRecipient`]).
//!
//! Every recipient that claims gets an [`Inbox`]: its own claim state over the one shared
//! log. An inbox walks the log forward once (`scanned`), taking only the messages its
//! recipient may see ([`ClaimScope::may_claim`]); what it took and has not finished sits in
//! its own ready set, delay heap and leases. A message addressed to everyone is therefore
//! claimed, acknowledged and dead-lettered independently by each recipient, and nothing one
//! inbox does changes another's. Removed messages (retention, a consuming ack, `remove`)
//! are dropped lazily, when an inbox next meets them.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;

use super::{SeqMap, State, compact_lease_heap};
use crate::message::ChannelMessage;
use crate::policy::{ClaimPolicy, ClaimScope, DeadReason, Fate, Release};
use crate::store::{ClaimStats, Claimed, DeadLetter, Seq, Settle, Settled};

const SCOPE: ClaimScope = ClaimScope::PerRecipient;

/// One recipient's claim state.
#[derive(Default)]
pub(super) struct Inbox {
    /// The log has been examined up to here for messages this inbox never took.
    scanned: Seq,
    /// Deliveries so far of each message this inbox took and has not finished.
    attempts: SeqMap<u32>,
    /// Released messages, claimable again.
    ready: BTreeSet<Seq>,
    /// Nacked with a delay: when each is due (the heap may hold stale entries).
    delayed_due: SeqMap<u64>,
    delays: BinaryHeap<Reverse<(u64, Seq)>>,
    /// Held by a claim: its lease deadline (the heap may hold stale entries).
    in_flight: SeqMap<u64>,
    leases: BinaryHeap<Reverse<(u64, Seq)>>,
}

impl Inbox {
    /// Forgets a message this inbox is done with (acknowledged, dead, or gone).
    fn forget(&mut self, seq: Seq) -> u32 {
        self.in_flight.remove(&seq);
        self.delayed_due.remove(&seq);
        self.ready.remove(&seq);
        self.attempts.remove(&seq).unwrap_or(0)
    }

    /// See [`compact_lease_heap`].
    fn compact_leases(&mut self) {
        compact_lease_heap(&mut self.leases, self.in_flight.len(), |seq| {
            self.in_flight.get(&seq).copied()
        });
    }
}

/// Runs `f` on `recipient`'s inbox (created on first use) alongside the rest of the state.
fn with_inbox<T>(
    st: &mut State,
    recipient: &str,
    f: impl FnOnce(&mut State, &mut Inbox) -> T,
) -> T {
    let mut inbox = st.inboxes.remove(recipient).unwrap_or_default();
    let out = f(st, &mut inbox);
    st.inboxes.insert(recipient.to_owned(), inbox);
    out
}

impl State {
    /// Claims up to `limit` messages from `recipient`'s inbox, oldest first.
    pub(super) fn inbox_claim(
        &mut self,
        policy: &ClaimPolicy,
        recipient: &str,
        limit: usize,
        now: u64,
    ) -> Vec<Claimed> {
        let deadline = policy.lease_deadline(now);
        with_inbox(self, recipient, |st, inbox| {
            st.inbox_maintain(inbox, recipient, policy, now);
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(seq) = st.inbox_next(inbox, recipient) else {
                    break;
                };
                let Some(message) = st.slot(seq).map(|s| s.message.clone()) else {
                    continue;
                };
                let attempt = inbox.attempts.entry(seq).or_insert(0);
                *attempt = attempt.saturating_add(1);
                let attempt = *attempt;
                inbox.in_flight.insert(seq, deadline);
                inbox.leases.push(Reverse((deadline, seq)));
                out.push(Claimed {
                    seq,
                    message,
                    attempt,
                    lease_until_ms: deadline,
                });
            }
            out
        })
    }

    /// Settles `recipient`'s claims on `ids`; the ids it holds no live claim on are stale.
    pub(super) fn inbox_settle(
        &mut self,
        policy: &ClaimPolicy,
        recipient: &str,
        ids: &[&str],
        how: &Settle,
        now: u64,
    ) -> Settled {
        let mut out = Settled::default();
        if !self.inboxes.contains_key(recipient) {
            out.stale = ids.iter().map(|&id| id.to_owned()).collect();
            return out;
        }
        let due = match how {
            Settle::Nack { delay } => ClaimPolicy::release_due(now, *delay),
            _ => None,
        };
        with_inbox(self, recipient, |st, inbox| {
            for &id in ids {
                let live = st.seq_of(id).filter(|seq| {
                    inbox.in_flight.get(seq).is_some_and(|&deadline| {
                        ClaimPolicy::may_settle(recipient, deadline, recipient, now)
                    })
                });
                let Some(seq) = live else {
                    out.stale.push(id.to_owned());
                    continue;
                };
                match how {
                    Settle::Ack => {
                        inbox.forget(seq);
                        let consumes = st
                            .slot(seq)
                            .is_some_and(|s| SCOPE.ack_consumes(s.message.recipient_id.as_deref()));
                        if consumes {
                            st.take(seq);
                        }
                        st.acknowledged += 1;
                    }
                    Settle::Nack { .. } => {
                        st.inbox_release(inbox, recipient, policy, seq, due, Release::Nack, now);
                    }
                    Settle::Reject { reason } => {
                        let reason = DeadReason::Rejected(reason.clone());
                        st.inbox_dead_letter(inbox, recipient, seq, &reason, now);
                    }
                    Settle::Extend => {
                        let deadline = policy.lease_deadline(now);
                        inbox.in_flight.insert(seq, deadline);
                        inbox.leases.push(Reverse((deadline, seq)));
                    }
                }
                out.done.push(id.to_owned());
            }
            inbox.compact_leases();
        });
        out
    }

    /// Moves due delays to ready and releases lapsed leases in every inbox; returns how
    /// many leases were released.
    pub(super) fn inboxes_maintain(&mut self, policy: &ClaimPolicy, now: u64) -> usize {
        let recipients: Vec<String> = self.inboxes.keys().cloned().collect();
        recipients
            .iter()
            .map(|r| {
                with_inbox(self, r, |st, inbox| {
                    st.inbox_maintain(inbox, r, policy, now)
                })
            })
            .sum()
    }

    /// The claim counts summed over every inbox (see [`ClaimQueue::stats`](crate::store::ClaimQueue::stats)).
    /// Walks the unscanned part of each inbox: an admin view, not a hot path.
    pub(super) fn inbox_stats(&mut self, policy: &ClaimPolicy, now: u64) -> ClaimStats {
        self.inboxes_maintain(policy, now);
        let (mut backlog, mut delayed, mut in_flight) = (0u64, 0u64, 0u64);
        for (recipient, inbox) in &self.inboxes {
            let live = |seq: &Seq| self.slot(*seq).is_some();
            in_flight += inbox.in_flight.keys().filter(|s| live(s)).count() as u64;
            let waiting_delay = inbox.delayed_due.keys().filter(|s| live(s)).count() as u64;
            delayed += waiting_delay;
            backlog += waiting_delay + inbox.ready.iter().filter(|s| live(s)).count() as u64;
            let from = (inbox.scanned + 1).max(self.base);
            backlog += (from..=self.head)
                .filter(|&seq| {
                    self.slot(seq)
                        .is_some_and(|s| SCOPE.may_claim(recipient, &s.message))
                })
                .count() as u64;
        }
        ClaimStats {
            backlog,
            delayed,
            in_flight,
            acknowledged: self.acknowledged,
            dead_lettered: self.dead.len() as u64,
        }
    }

    /// Puts a dead letter of `recipient`'s back in that inbox only. A message still stored
    /// (addressed to everyone) becomes claimable again there with its attempts reset; one
    /// that left the log is handed back, addressed to `recipient`, for the caller to append.
    pub(super) fn inbox_redrive(
        &mut self,
        recipient: &str,
        letter: DeadLetter,
    ) -> Option<ChannelMessage> {
        if self.seq_of(&letter.message.id) == Some(letter.seq) {
            with_inbox(self, recipient, |_, inbox| {
                inbox.forget(letter.seq);
                inbox.ready.insert(letter.seq);
            });
            return None;
        }
        let mut message = letter.message;
        message
            .recipient_id
            .get_or_insert_with(|| recipient.to_owned());
        Some(message)
    }

    fn inbox_maintain(
        &mut self,
        inbox: &mut Inbox,
        recipient: &str,
        policy: &ClaimPolicy,
        now: u64,
    ) -> usize {
        while let Some(&Reverse((due, seq))) = inbox.delays.peek() {
            if due > now {
                break;
            }
            inbox.delays.pop();
            if inbox.delayed_due.get(&seq) == Some(&due) {
                inbox.delayed_due.remove(&seq);
                inbox.ready.insert(seq);
            }
        }
        let mut reclaimed = 0;
        while let Some(&Reverse((deadline, seq))) = inbox.leases.peek() {
            if !ClaimPolicy::lapsed(deadline, now) {
                break;
            }
            inbox.leases.pop();
            // Heap entries go stale when a lease is settled or extended.
            if inbox.in_flight.get(&seq) == Some(&deadline) {
                self.inbox_release(
                    inbox,
                    recipient,
                    policy,
                    seq,
                    None,
                    Release::LeaseExpired,
                    now,
                );
                reclaimed += 1;
            }
        }
        reclaimed
    }

    /// The oldest message `recipient` may claim now: a released one, or one its inbox never
    /// took (the walk forward skips what it may not see).
    fn inbox_next(&self, inbox: &mut Inbox, recipient: &str) -> Option<Seq> {
        // Released messages that left the log meanwhile are forgotten here.
        while let Some(&seq) = inbox.ready.first() {
            if self.slot(seq).is_some() {
                break;
            }
            inbox.ready.pop_first();
            inbox.attempts.remove(&seq);
        }
        let mut fresh = (inbox.scanned + 1).max(self.base);
        while fresh <= self.head
            && !self
                .slot(fresh)
                .is_some_and(|s| SCOPE.may_claim(recipient, &s.message))
        {
            fresh += 1;
        }
        inbox.scanned = fresh - 1;
        match inbox.ready.first() {
            Some(&released) if released < fresh || fresh > self.head => inbox.ready.pop_first(),
            _ if fresh <= self.head => {
                inbox.scanned = fresh;
                Some(fresh)
            }
            _ => None,
        }
    }

    /// A claim of `recipient`'s ends without an ack: back in its line (from `due`), or a
    /// dead letter as the policy says.
    #[allow(clippy::too_many_arguments)]
    fn inbox_release(
        &mut self,
        inbox: &mut Inbox,
        recipient: &str,
        policy: &ClaimPolicy,
        seq: Seq,
        due: Option<u64>,
        why: Release,
        now: u64,
    ) {
        inbox.in_flight.remove(&seq);
        if self.slot(seq).is_none() {
            inbox.forget(seq);
            return;
        }
        let attempts = inbox.attempts.get(&seq).copied().unwrap_or(0);
        if let Fate::DeadLetter(reason) = policy.on_release(attempts, why) {
            self.inbox_dead_letter(inbox, recipient, seq, &reason, now);
            return;
        }
        match due {
            Some(due) if due > now => {
                inbox.delayed_due.insert(seq, due);
                inbox.delays.push(Reverse((due, seq)));
            }
            _ => {
                inbox.ready.insert(seq);
            }
        }
    }

    /// `recipient` gives a message up as a dead letter. One addressed to it leaves the log;
    /// one addressed to everyone stays there for the other recipients.
    fn inbox_dead_letter(
        &mut self,
        inbox: &mut Inbox,
        recipient: &str,
        seq: Seq,
        reason: &DeadReason,
        now: u64,
    ) {
        let attempts = inbox.forget(seq);
        let Some(message) = self.slot(seq).map(|s| s.message.clone()) else {
            return;
        };
        if SCOPE.ack_consumes(message.recipient_id.as_deref()) {
            self.take(seq);
        }
        self.dead.push_back(DeadLetter {
            seq,
            message: Arc::unwrap_or_clone(message),
            attempts,
            reason: reason.to_string(),
            dead_at_ms: now,
            recipient: Some(recipient.to_owned()),
        });
    }
}
