//! Claims on mailboxes: every recipient claims from its own inbox, only messages
//! addressed to it or to everyone (`ClaimScope::PerRecipient`). Run by every store.

use std::time::Duration;

use super::{Harness, LEASE, assert_stale, started, uid};
use crate::channel::{MailboxChannel, ReadOptions};
use crate::error::ErrorKind;
use crate::message::ChannelMessage;

/// Writes one message addressed to `to` (`None`: to everyone); returns its id.
async fn send(ch: &MailboxChannel, to: Option<&str>, n: u32) -> String {
    let mut m = ChannelMessage::with_data("writer", &n).unwrap();
    m.recipient_id = to.map(str::to_owned);
    ch.write_message("writer", m).await.unwrap()
}

fn ids(claimed: &[crate::store::Claimed]) -> Vec<String> {
    claimed.iter().map(|c| c.message.id.clone()).collect()
}

/// A mailbox with claims on `h`'s store, or `None` when the store has no claims per
/// recipient: then it checks that claiming is refused cleanly while the mailbox's log,
/// stats and maintenance still work.
async fn mailbox(
    h: &impl Harness,
    b: crate::channel::ChannelBuilder<crate::channel::kind::Mailbox>,
) -> Option<MailboxChannel> {
    let ch = started(h, b).await;
    if h.claims_per_recipient() {
        return Some(ch);
    }
    let id = send(&ch, Some("alice"), 1).await;
    let err = ch.claim("alice", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation, "{err}");
    let err = ch.ack("alice", &id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation, "{err}");
    assert_eq!(ch.read("alice", 10).await.unwrap().len(), 1);
    let s = ch.stats().await.unwrap();
    assert_eq!((s.stored, s.in_flight, s.dead_lettered), (1, 0, 0));
    assert!(ch.dead_letters("admin", 10).await.unwrap().is_empty());
    assert_eq!(ch.reclaim_expired().await.unwrap(), 0);
    None
}

pub async fn mailbox_claims_take_only_the_claimers_messages(h: &impl Harness) {
    let Some(ch) = mailbox(h, MailboxChannel::new(uid("m")).claim_timeout(LEASE * 30)).await else {
        return;
    };
    let a1 = send(&ch, Some("alice"), 1).await;
    let b1 = send(&ch, Some("bob"), 2).await;
    let all = send(&ch, None, 3).await;
    let a2 = send(&ch, Some("alice"), 4).await;
    let b2 = send(&ch, Some("bob"), 5).await;

    let alice = ch.claim("alice", 10).await.unwrap();
    assert_eq!(
        ids(&alice),
        [a1, all.clone(), a2],
        "her own and everyone's, in order"
    );
    assert!(alice.iter().all(|c| c.attempt == 1));
    let bob = ch.claim("bob", 1).await.unwrap();
    assert_eq!(
        ids(&bob),
        vec![b1.clone()],
        "another's claims hide nothing from bob"
    );
    let bob = ch.claim("bob", 10).await.unwrap();
    assert_eq!(ids(&bob), [all.clone(), b2]);
    let carol = ch.claim("carol", 10).await.unwrap();
    assert_eq!(
        ids(&carol),
        vec![all.clone()],
        "a third recipient gets only the one to everyone"
    );
    assert!(ch.claim("alice", 10).await.unwrap().is_empty(), "all held");
    // Shared reads still see each recipient's messages while they are claimed.
    assert_eq!(ch.read("bob", 10).await.unwrap().len(), 3);
    assert_eq!(
        ch.entries_after("bob", 0, 10).await.unwrap()[0].message.id,
        b1
    );
    // v1's exclusive read is a claim for the caller.
    let exclusive = ReadOptions {
        exclusive: true,
        ..ReadOptions::default()
    };
    let dave = ch.read_with("dave", exclusive).await.unwrap();
    assert_eq!(dave.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), [all]);
}

pub async fn mailbox_everyone_message_is_claimed_once_per_recipient(h: &impl Harness) {
    let Some(ch) = mailbox(h, MailboxChannel::new(uid("m")).claim_timeout(LEASE * 30)).await else {
        return;
    };
    let all = send(&ch, None, 1).await;
    let a1 = send(&ch, Some("alice"), 2).await;
    assert_eq!(
        ids(&ch.claim("alice", 10).await.unwrap()),
        [all.clone(), a1.clone()]
    );
    assert_eq!(ids(&ch.claim("bob", 10).await.unwrap()), vec![all.clone()]);

    // Alice's acks consume her own message and finish the shared one for her alone.
    assert!(ch.ack("alice", &[&all, &a1]).await.unwrap().all_done());
    assert!(
        ch.claim("alice", 10).await.unwrap().is_empty(),
        "acked never reappears"
    );
    assert_eq!(
        ch.stats().await.unwrap().stored,
        1,
        "the one to everyone stays stored"
    );
    // Bob's claim on it is untouched: he releases it and takes it again.
    assert!(ch.nack("bob", &all).await.unwrap().all_done());
    let again = ch.claim("bob", 10).await.unwrap();
    assert_eq!(ids(&again), vec![all.clone()]);
    assert_eq!(again[0].attempt, 2, "attempts are counted per recipient");
    assert!(ch.ack("bob", &all).await.unwrap().all_done());
    assert!(ch.claim("bob", 10).await.unwrap().is_empty());
    // A recipient that never claimed still has it to take.
    assert_eq!(ids(&ch.claim("carol", 10).await.unwrap()), [all]);
    assert_eq!(ch.stats().await.unwrap().acknowledged, 3);
}

pub async fn mailbox_claims_are_fenced_per_recipient(h: &impl Harness) {
    let Some(ch) = mailbox(h, MailboxChannel::new(uid("m")).claim_timeout(LEASE * 30)).await else {
        return;
    };
    let a1 = send(&ch, Some("alice"), 1).await;
    let all = send(&ch, None, 2).await;
    ch.claim("alice", 10).await.unwrap();
    for how in ["ack", "nack", "reject", "extend"] {
        let settled = match how {
            "ack" => ch.ack("bob", &[&a1, &all]).await,
            "nack" => ch.nack("bob", &[&a1, &all]).await,
            "reject" => ch.reject("bob", &[&a1, &all], "not mine").await,
            _ => ch.extend("bob", &[&a1, &all]).await,
        }
        .unwrap();
        assert_eq!(
            settled.stale,
            [a1.clone(), all.clone()],
            "{how} by another recipient"
        );
        assert!(settled.done.is_empty());
    }
    assert_stale(ch.ack("bob", &a1).await);
    // Bob's own claim on the shared message does not let him settle alice's.
    assert_eq!(ids(&ch.claim("bob", 10).await.unwrap()), vec![all.clone()]);
    assert!(ch.ack("bob", &all).await.unwrap().all_done());
    let s = ch.stats().await.unwrap();
    assert_eq!(s.in_flight, 2, "alice still holds both");
    assert!(ch.ack("alice", &[&a1, &all]).await.unwrap().all_done());
    assert!(ch.dead_letters("admin", 10).await.unwrap().is_empty());
}

/// `ack_and_claim` on a mailbox: the ack is fenced per recipient and the next batch
/// comes from the caller's own inbox only.
pub async fn mailbox_ack_and_claim_stays_in_the_callers_inbox(h: &impl Harness) {
    let Some(ch) = mailbox(h, MailboxChannel::new(uid("m")).claim_timeout(LEASE * 30)).await else {
        return;
    };
    let a1 = send(&ch, Some("alice"), 1).await;
    let b1 = send(&ch, Some("bob"), 2).await;
    let all = send(&ch, None, 3).await;
    let a2 = send(&ch, Some("alice"), 4).await;
    let first = ch.claim("alice", 1).await.unwrap();
    assert_eq!(ids(&first), vec![a1.clone()]);
    let (settled, next) = ch.ack_and_claim("alice", &first, 10).await.unwrap();
    assert_eq!(settled.done, vec![a1.clone()]);
    assert_eq!(
        ids(&next),
        [all.clone(), a2.clone()],
        "alice's and everyone's"
    );
    let (settled, bobs) = ch.ack_and_claim("bob", &next, 10).await.unwrap();
    assert_eq!(settled.stale, [all.clone(), a2.clone()], "alice's claims");
    assert_eq!(ids(&bobs), [b1.clone(), all.clone()], "bob's own inbox");
    let (settled, none) = ch.ack_and_claim("alice", &next, 10).await.unwrap();
    assert!(settled.all_done());
    assert!(none.is_empty(), "alice's inbox is empty: {none:?}");
    let (settled, none) = ch.ack_and_claim("bob", &bobs, 10).await.unwrap();
    assert!(settled.all_done());
    assert!(none.is_empty());
    let s = ch.stats().await.unwrap();
    assert_eq!((s.in_flight, s.backlog), (0, 0));
}

pub async fn mailbox_lease_expiry_requeues_for_that_recipient(h: &impl Harness) {
    let Some(ch) = mailbox(h, MailboxChannel::new(uid("m")).claim_timeout(LEASE)).await else {
        return;
    };
    let all = send(&ch, None, 1).await;
    ch.claim("alice", 1).await.unwrap();
    h.advance(LEASE / 2).await;
    ch.claim("bob", 1).await.unwrap();
    h.advance(LEASE * 7 / 10).await;
    // Alice's lease ran out, bob's has not.
    let alice = ch.claim("alice", 1).await.unwrap();
    assert_eq!(ids(&alice), vec![all.clone()]);
    assert_eq!(alice[0].attempt, 2);
    assert!(
        ch.claim("bob", 1).await.unwrap().is_empty(),
        "bob's lease holds"
    );
    assert!(ch.ack("bob", &all).await.unwrap().all_done());
    h.advance(LEASE + Duration::from_millis(300)).await;
    let late = ch.ack("alice", &all).await.unwrap();
    assert_eq!(late.stale, vec![all.clone()], "a late ack is fenced");
    let alice = ch.claim("alice", 1).await.unwrap();
    assert_eq!(alice[0].attempt, 3);
    assert!(ch.claim("bob", 1).await.unwrap().is_empty(), "done for bob");
}

pub async fn mailbox_dead_letters_per_recipient(h: &impl Harness) {
    let Some(ch) = mailbox(
        h,
        MailboxChannel::new(uid("m"))
            .claim_timeout(LEASE * 30)
            .max_deliveries(2),
    )
    .await
    else {
        return;
    };
    let all = send(&ch, None, 1).await;
    let b1 = send(&ch, Some("bob"), 2).await;
    for attempt in 1..=2 {
        let c = ch.claim("alice", 10).await.unwrap();
        assert_eq!(ids(&c), vec![all.clone()]);
        assert_eq!(c[0].attempt, attempt);
        assert!(ch.nack("alice", &all).await.unwrap().all_done());
    }
    assert!(
        ch.claim("alice", 10).await.unwrap().is_empty(),
        "dead for alice"
    );
    let bob = ch.claim("bob", 10).await.unwrap();
    assert_eq!(ids(&bob), [all.clone(), b1.clone()], "alive for bob");
    assert_eq!(bob[0].attempt, 1);
    assert!(ch.reject("bob", &b1, "bad input").await.unwrap().all_done());

    let dead = ch.dead_letters("admin", 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    let alice_dead = dead.iter().find(|d| d.message.id == all).unwrap();
    assert_eq!(alice_dead.recipient.as_deref(), Some("alice"));
    assert_eq!(alice_dead.attempts, 2);
    assert!(
        alice_dead.reason.contains("max_deliveries"),
        "{}",
        alice_dead.reason
    );
    let bob_dead = dead.iter().find(|d| d.message.id == b1).unwrap();
    assert_eq!(bob_dead.recipient.as_deref(), Some("bob"));
    assert_eq!(bob_dead.reason, "bad input");
    let s = ch.stats().await.unwrap();
    assert_eq!(s.dead_lettered, 2);
    assert_eq!(
        s.stored, 1,
        "bob's own message left; the one to everyone stays"
    );

    // Redrive gives each dead letter back to its recipient only, attempts reset.
    assert_eq!(ch.redrive("admin", &[&all, &b1]).await.unwrap(), 2);
    assert!(ch.dead_letters("admin", 10).await.unwrap().is_empty());
    let alice = ch.claim("alice", 10).await.unwrap();
    assert_eq!(ids(&alice), vec![all.clone()]);
    assert_eq!(alice[0].attempt, 1, "redriven messages start over");
    let bob = ch.claim("bob", 10).await.unwrap();
    assert_eq!(
        ids(&bob),
        vec![b1.clone()],
        "bob's still holds the one to everyone"
    );
    assert_eq!(bob[0].attempt, 1);
    assert_eq!(ids(&ch.claim("carol", 10).await.unwrap()), [all]);
}

pub async fn mailbox_claim_stats(h: &impl Harness) {
    let Some(ch) = mailbox(h, MailboxChannel::new(uid("m")).claim_timeout(LEASE * 30)).await else {
        return;
    };
    let a1 = send(&ch, Some("alice"), 1).await;
    send(&ch, Some("bob"), 2).await;
    let all = send(&ch, None, 3).await;
    let s = ch.stats().await.unwrap();
    assert_eq!(
        (s.stored, s.backlog, s.in_flight),
        (3, 0, 0),
        "no inbox yet"
    );

    assert_eq!(ids(&ch.claim("alice", 1).await.unwrap()), vec![a1.clone()]);
    let s = ch.stats().await.unwrap();
    assert_eq!(
        (s.backlog, s.in_flight),
        (1, 1),
        "alice: one to take, one held"
    );
    assert_eq!(ch.claim("bob", 10).await.unwrap().len(), 2);
    let s = ch.stats().await.unwrap();
    assert_eq!((s.backlog, s.in_flight), (1, 3));
    assert!(ch.ack("alice", &a1).await.unwrap().all_done());
    assert!(ch.ack("bob", &all).await.unwrap().all_done());
    let s = ch.stats().await.unwrap();
    assert_eq!(
        (s.stored, s.backlog, s.in_flight, s.acknowledged),
        (2, 1, 1, 2),
        "alice's left; the one to everyone waits for alice"
    );
    ch.claim("alice", 10).await.unwrap();
    assert!(
        ch.nack_after("alice", &all, LEASE * 10)
            .await
            .unwrap()
            .all_done()
    );
    let s = ch.stats().await.unwrap();
    assert_eq!((s.backlog, s.delayed, s.in_flight), (1, 1, 1));
}

pub async fn mailbox_claims_survive_reopen(h: &impl Harness) {
    let id = uid("m");
    let Some(ch) = mailbox(h, MailboxChannel::new(id.clone()).claim_timeout(LEASE * 30)).await
    else {
        return;
    };
    let all = send(&ch, None, 1).await;
    let a1 = send(&ch, Some("alice"), 2).await;
    let b1 = send(&ch, Some("bob"), 3).await;
    ch.claim("alice", 10).await.unwrap();
    assert!(ch.ack("alice", &[&all, &a1]).await.unwrap().all_done());
    let bob = ch.claim("bob", 1).await.unwrap();
    assert_eq!(ids(&bob), vec![all.clone()]);
    assert!(ch.nack("bob", &all).await.unwrap().all_done());
    ch.stop().await;

    let again = started(h, MailboxChannel::new(id).claim_timeout(LEASE * 30)).await;
    let s = again.stats().await.unwrap();
    assert_eq!((s.stored, s.acknowledged), (2, 2));
    assert!(
        again.claim("alice", 10).await.unwrap().is_empty(),
        "alice is done"
    );
    let bob = again.claim("bob", 10).await.unwrap();
    assert_eq!(ids(&bob), [all, b1]);
    assert_eq!(bob[0].attempt, 2, "bob's attempts survive");
    assert_eq!(bob[1].attempt, 1);
    assert!(again.ack("bob", &bob).await.unwrap().all_done());
}
