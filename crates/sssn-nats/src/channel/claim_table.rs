//! [`ClaimTable`]: the claims this process holds, and the releases it made that the
//! server has not redelivered yet. Pure bookkeeping, no server calls.
//!
//! JetStream accepts a late `+ACK` from a former holder, so fencing cannot be left to the
//! server: a claim is recorded here when it is handed out ([`ClaimTable::hold`]), a settle
//! is allowed only for the ids [`ClaimTable::split`] finds live for the caller (the
//! policy's [`may_settle`](ClaimPolicy::may_settle)), and a claim whose lease lapsed is
//! taken out by [`ClaimTable::expire`]. The releases (nacks, lapsed leases) are kept for
//! the stats: the server counts such a delivery as ack-pending until it redelivers it.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::Subject;
use sssn::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::Seq;

/// A claim this process holds: what fencing needs to decide whether a settle is valid, and
/// what the server action needs.
#[derive(Clone)]
pub(super) struct Claim {
    pub(super) seq: Seq,
    pub(super) claimer: Arc<str>,
    pub(super) deadline_ms: u64,
    pub(super) attempt: u32,
    pub(super) reply: Subject,
    pub(super) message: Arc<ChannelMessage>,
    /// This handle's removal count when the claim was made (see
    /// [`remove_on_ack`](super::remove_on_ack)).
    pub(super) epoch: u64,
}

/// Claims known to this process.
#[derive(Default)]
pub(super) struct ClaimTable {
    by_id: HashMap<String, Claim>,
    /// Deliveries this process released (nack, expired lease) that the server still
    /// counts as ack-pending until it redelivers them; value: when to stop counting them.
    released: HashMap<Seq, u64>,
    /// Nacks with a delay made here; value: when the delay is over.
    delayed: HashMap<Seq, u64>,
}

impl ClaimTable {
    /// Records a delivery handed out to a claimer.
    pub(super) fn hold(&mut self, claim: Claim) {
        self.released.remove(&claim.seq);
        self.delayed.remove(&claim.seq);
        self.by_id.insert(claim.message.id.clone(), claim);
    }

    /// Splits `ids` into the live claims `claimer` may settle at `now` (the policy's
    /// fencing rule) and the stale rest. With `take`, live claims leave the table, so a
    /// concurrent settle of the same id is stale.
    pub(super) fn split(
        &mut self,
        claimer: &str,
        ids: &[&str],
        now: u64,
        take: bool,
    ) -> (Vec<(String, Claim)>, Vec<String>) {
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for &id in ids {
            let held = self
                .by_id
                .get(id)
                .filter(|c| ClaimPolicy::may_settle(&c.claimer, c.deadline_ms, claimer, now));
            match held {
                None => stale.push(id.to_owned()),
                Some(claim) if !take => live.push((id.to_owned(), claim.clone())),
                Some(_) => {
                    if let Some(claim) = self.by_id.remove(id) {
                        live.push((id.to_owned(), claim));
                    }
                }
            }
        }
        (live, stale)
    }

    /// Puts claims back after their settle failed on the way to the server.
    pub(super) fn restore(&mut self, claims: Vec<(String, Claim)>) {
        for (id, claim) in claims {
            self.by_id.entry(id).or_insert(claim);
        }
    }

    /// Records a release made here: claimable again from `due` (`None`: at once); the
    /// server counts it as ack-pending until it redelivers it, within a lease of `due`.
    pub(super) fn released(&mut self, seq: Seq, now: u64, due: Option<u64>, lease_ms: u64) {
        let from = due.unwrap_or(now);
        self.released.insert(seq, from.saturating_add(lease_ms));
        if let Some(due) = due {
            self.delayed.insert(seq, due);
        }
    }

    /// Moves the lease of `claim` (still held as `id`) to `deadline_ms`.
    pub(super) fn renew(&mut self, id: &str, claim: &Claim, deadline_ms: u64) {
        if let Some(held) = self.by_id.get_mut(id)
            && held.seq == claim.seq
            && held.claimer == claim.claimer
        {
            held.deadline_ms = deadline_ms;
        }
    }

    /// Takes out the claims whose lease ran out at `now` (released, as far as the server's
    /// ack-pending count goes, for a lease) and forgets releases that are over.
    pub(super) fn expire(&mut self, now: u64, lease_ms: u64) -> Vec<Claim> {
        let ids: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, c)| ClaimPolicy::lapsed(c.deadline_ms, now))
            .map(|(id, _)| id.clone())
            .collect();
        let lapsed: Vec<Claim> = ids.iter().filter_map(|id| self.by_id.remove(id)).collect();
        for claim in &lapsed {
            self.released
                .insert(claim.seq, now.saturating_add(lease_ms));
        }
        self.released.retain(|_, until| *until > now);
        self.delayed.retain(|_, due| *due > now);
        lapsed
    }

    /// Releases made here still pending on the server, and delayed nacks still waiting.
    pub(super) fn pending(&self, now: u64) -> (u64, u64) {
        (
            self.released.values().filter(|until| **until > now).count() as u64,
            self.delayed.values().filter(|due| **due > now).count() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, seq: Seq, claimer: &str, deadline_ms: u64) -> Claim {
        let mut message = ChannelMessage::with_data("p", &seq).expect("message");
        message.id = id.to_owned();
        Claim {
            seq,
            claimer: Arc::from(claimer),
            deadline_ms,
            attempt: 1,
            reply: Subject::from("reply"),
            message: Arc::new(message),
            epoch: 0,
        }
    }

    fn ids(live: &[(String, Claim)]) -> Vec<&str> {
        live.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn only_the_live_holder_settles() {
        let mut t = ClaimTable::default();
        t.hold(claim("a", 1, "w1", 100));
        t.hold(claim("b", 2, "w2", 100));
        t.hold(claim("c", 3, "w1", 50));
        let (live, stale) = t.split("w1", &["a", "b", "c", "zz"], 60, false);
        assert_eq!(ids(&live), ["a"]);
        assert_eq!(stale, ["b", "c", "zz"], "other holder, lapsed, unknown");
        // Without `take` nothing left the table; with it, a second settle is stale.
        let (live, _) = t.split("w1", &["a"], 60, true);
        assert_eq!(ids(&live), ["a"]);
        let (live, stale) = t.split("w1", &["a"], 60, true);
        assert!(live.is_empty());
        assert_eq!(stale, ["a"]);
    }

    #[test]
    fn a_failed_settle_puts_the_claim_back_and_renewal_needs_the_same_claim() {
        let mut t = ClaimTable::default();
        t.hold(claim("a", 1, "w1", 100));
        let (live, _) = t.split("w1", &["a"], 10, true);
        t.restore(live);
        let (live, _) = t.split("w1", &["a"], 10, false);
        assert_eq!(ids(&live), ["a"]);
        // A renewal of a claim that was replaced meanwhile (another delivery) does nothing.
        t.renew("a", &claim("a", 9, "w1", 100), 500);
        assert!(t.split("w1", &["a"], 200, false).0.is_empty());
        t.renew("a", &live[0].1, 500);
        assert_eq!(ids(&t.split("w1", &["a"], 200, false).0), ["a"]);
    }

    #[test]
    fn releases_count_until_redelivered_or_over() {
        let mut t = ClaimTable::default();
        t.hold(claim("a", 1, "w1", 100));
        t.hold(claim("b", 2, "w1", 1000));
        t.released(3, 10, None, 100);
        t.released(4, 10, Some(50), 100);
        assert_eq!(t.pending(20), (2, 1));
        let lapsed = t.expire(100, 100);
        assert_eq!(lapsed.iter().map(|c| c.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(t.pending(100), (3, 0), "the lapsed lease is a release too");
        // A redelivery handed out here ends the release.
        t.hold(claim("a", 1, "w2", 400));
        assert_eq!(t.pending(100), (2, 0));
        t.expire(160, 100);
        assert_eq!(t.pending(160), (0, 0));
    }
}
