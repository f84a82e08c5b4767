//! Every decision about claims, in one place.
//!
//! A store performs the mechanics of claims (take the oldest claimable message, hold it
//! for a lease, delete it on ack) atomically in its own engine; whenever the outcome is a
//! *decision* — does a released message go back in line or to the dead letters, why, may
//! this caller settle this claim, when does a lease or a delay end — it asks the channel's
//! [`ClaimPolicy`]. The rules therefore exist once, whatever the store:
//!
//! * a claim holds a message for [`lease`](ClaimPolicy::lease); a lease that runs out
//!   releases the message ([`Release::LeaseExpired`]), as a nack does ([`Release::Nack`]);
//! * a released message that has been delivered `max_deliveries` times becomes a dead
//!   letter with [`DeadReason::MaxDeliveries`]; otherwise it is claimable again, at once or
//!   after the nack's delay;
//! * a reject dead-letters at once with the caller's reason ([`DeadReason::Rejected`]);
//! * only the holder of a live (unexpired) claim may settle it ([`ClaimPolicy::may_settle`]):
//!   an ack, nack, reject or extend from anyone else, or after the lease ran out, is stale;
//! * on a channel whose claims are per recipient ([`ClaimScope::PerRecipient`], mailboxes)
//!   a claimer takes only the messages it may see ([`ClaimScope::may_claim`]) from its own
//!   inbox, and an ack consumes only what was addressed to it
//!   ([`ClaimScope::ack_consumes`]).

use std::fmt;
use std::time::Duration;

use crate::message::ChannelMessage;

/// How a channel with claims treats them: the lease length and the delivery limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// How long a claim holds a message before it can be claimed again.
    pub lease: Duration,
    /// Deliveries after which an unacknowledged message becomes a dead letter (`None`: no
    /// limit).
    pub max_deliveries: Option<u32>,
}

impl Default for ClaimPolicy {
    /// v1's defaults: a 300 s lease, no delivery limit.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(300),
            max_deliveries: None,
        }
    }
}

/// Whose claim state a claimer works in.
///
/// * [`Shared`](Self::Shared) (work queues, passthrough, periodic): one queue; every
///   claimer competes for every message, each message is delivered to one of them.
/// * [`PerRecipient`](Self::PerRecipient) (mailboxes): every recipient has its own inbox
///   of claim state (attempts, leases, delays, dead letters). A claimer claims, as the
///   recipient named by its id, only messages addressed to it or to everyone (empty
///   `recipient_id`); so a message addressed to everyone is claimable once *per recipient*,
///   and one recipient's claims, acks and dead letters never hide a message from another.
///   Several workers sharing one recipient identity compete for that recipient's messages,
///   as workers do on a work queue; fencing holds between them (only the live holder
///   settles, and the holder is that identity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClaimScope {
    /// One claim queue for every claimer.
    #[default]
    Shared,
    /// One inbox per recipient (the claimer's id).
    PerRecipient,
}

impl ClaimScope {
    /// Whether `claimer` may claim `message` at all: any message on a shared queue; per
    /// recipient, only one addressed to the claimer or to everyone (v1 let a mailbox claim
    /// take other recipients' messages, defect D9).
    pub fn may_claim(self, claimer: &str, message: &ChannelMessage) -> bool {
        match (self, &message.recipient_id) {
            (Self::PerRecipient, Some(to)) => to == claimer,
            _ => true,
        }
    }

    /// Whether acknowledging (or dead-lettering) a message addressed to `recipient_id`
    /// takes it out of the channel's log: always on a shared queue; per recipient only
    /// when it was addressed to one recipient. A message addressed to everyone stays stored (other recipients, present
    /// and future, still may claim it) and leaves by retention; the acknowledging
    /// recipient's inbox alone records it as done.
    pub fn ack_consumes(self, recipient_id: Option<&str>) -> bool {
        match self {
            Self::Shared => true,
            Self::PerRecipient => recipient_id.is_some(),
        }
    }
}

/// Why a claimed message went back without an ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Its holder nacked it.
    Nack,
    /// Its lease ran out.
    LeaseExpired,
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nack => "nack",
            Self::LeaseExpired => "lease expired",
        })
    }
}

/// Why a message became a dead letter. Rendered (`to_string`) into
/// [`DeadLetter::reason`](crate::store::DeadLetter::reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// It was released after its last allowed delivery.
    MaxDeliveries {
        /// The channel's limit.
        max: u32,
        /// How the last delivery ended.
        last: Release,
    },
    /// Its holder rejected it, with this reason.
    Rejected(String),
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxDeliveries { max, last } => {
                write!(f, "max_deliveries ({max}) exceeded; last: {last}")
            }
            Self::Rejected(reason) => f.write_str(reason),
        }
    }
}

/// What becomes of a released message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Back in line: claimable again (after the delay, if any).
    Requeue,
    /// Out of the channel, into its dead letters.
    DeadLetter(DeadReason),
}

impl ClaimPolicy {
    /// A policy with this lease and no delivery limit.
    pub fn with_lease(lease: Duration) -> Self {
        Self {
            lease,
            max_deliveries: None,
        }
    }

    /// The lease in milliseconds (saturating).
    pub fn lease_ms(&self) -> u64 {
        crate::clock::millis(self.lease)
    }

    /// When a lease taken (or renewed) at `now_ms` runs out.
    pub fn lease_deadline(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.lease_ms())
    }

    /// When a message nacked at `now_ms` with `delay` is claimable again: `None` when at
    /// once (no delay, or a zero one).
    pub fn release_due(now_ms: u64, delay: Option<Duration>) -> Option<u64> {
        delay
            .filter(|d| !d.is_zero())
            .map(|d| now_ms.saturating_add(crate::clock::millis(d)))
    }

    /// A claimed message that was delivered `attempts` times is released (`why`): back in
    /// line, or a dead letter once it used its last delivery.
    pub fn on_release(&self, attempts: u32, why: Release) -> Fate {
        match self.max_deliveries {
            Some(max) if attempts >= max => {
                Fate::DeadLetter(DeadReason::MaxDeliveries { max, last: why })
            }
            _ => Fate::Requeue,
        }
    }

    /// An engine that redelivers on its own (JetStream, after `ack_wait`) hands out
    /// delivery number `attempt`: may it be claimed, or did the previous delivery's lapsed
    /// lease use the last one? Equivalent to [`on_release`](Self::on_release) of the
    /// previous delivery with [`Release::LeaseExpired`].
    pub fn on_redelivery(&self, attempt: u32) -> Fate {
        self.on_release(attempt.saturating_sub(1), Release::LeaseExpired)
    }

    /// Whether `claimer` may settle (ack, nack, reject, extend) a claim held by `holder`
    /// until `deadline_ms`: only the holder, and only while the lease lives.
    pub fn may_settle(holder: &str, deadline_ms: u64, claimer: &str, now_ms: u64) -> bool {
        holder == claimer && deadline_ms > now_ms
    }

    /// Whether a lease with this deadline has run out at `now_ms`.
    pub fn lapsed(deadline_ms: u64, now_ms: u64) -> bool {
        deadline_ms <= now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_requeue_until_the_last_delivery() {
        let p = ClaimPolicy {
            lease: Duration::from_secs(1),
            max_deliveries: Some(3),
        };
        assert_eq!(p.on_release(1, Release::Nack), Fate::Requeue);
        assert_eq!(p.on_release(2, Release::LeaseExpired), Fate::Requeue);
        let Fate::DeadLetter(reason) = p.on_release(3, Release::Nack) else {
            panic!("the third release of a 3-delivery message dead-letters");
        };
        assert_eq!(
            reason.to_string(),
            "max_deliveries (3) exceeded; last: nack"
        );
        assert_eq!(
            p.on_redelivery(4),
            Fate::DeadLetter(DeadReason::MaxDeliveries {
                max: 3,
                last: Release::LeaseExpired
            })
        );
        assert_eq!(p.on_redelivery(3), Fate::Requeue);
        assert_eq!(
            ClaimPolicy::default().on_release(u32::MAX, Release::Nack),
            Fate::Requeue
        );
    }

    #[test]
    fn only_the_live_holder_settles() {
        assert!(ClaimPolicy::may_settle("w1", 100, "w1", 99));
        assert!(!ClaimPolicy::may_settle("w1", 100, "w1", 100), "lapsed");
        assert!(
            !ClaimPolicy::may_settle("w1", 100, "w2", 50),
            "not the holder"
        );
    }

    #[test]
    fn per_recipient_claims_take_only_what_the_claimer_may_see() {
        let mut m = ChannelMessage::new("s", crate::message::Content::data(&1).unwrap());
        assert!(ClaimScope::PerRecipient.may_claim("bob", &m), "to everyone");
        assert!(
            !ClaimScope::PerRecipient.ack_consumes(m.recipient_id.as_deref()),
            "stays for the others"
        );
        assert!(ClaimScope::Shared.ack_consumes(m.recipient_id.as_deref()));
        m.recipient_id = Some("alice".into());
        assert!(ClaimScope::PerRecipient.may_claim("alice", &m));
        assert!(!ClaimScope::PerRecipient.may_claim("bob", &m), "another's");
        assert!(
            ClaimScope::Shared.may_claim("bob", &m),
            "a work queue ignores recipients"
        );
        assert!(ClaimScope::PerRecipient.ack_consumes(m.recipient_id.as_deref()));
    }

    #[test]
    fn delays_and_deadlines() {
        let p = ClaimPolicy::with_lease(Duration::from_millis(250));
        assert_eq!(p.lease_deadline(1000), 1250);
        assert_eq!(ClaimPolicy::release_due(1000, None), None);
        assert_eq!(ClaimPolicy::release_due(1000, Some(Duration::ZERO)), None);
        assert_eq!(
            ClaimPolicy::release_due(1000, Some(Duration::from_millis(5))),
            Some(1005)
        );
        assert_eq!(
            DeadReason::Rejected("bad input".into()).to_string(),
            "bad input"
        );
    }
}
