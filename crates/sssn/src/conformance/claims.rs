//! Claims on the shared log (passthrough, work queue): order and limit, ack, nack (now or
//! after a delay), settling a batch and claiming the next in one call, fencing of a caller
//! who does not hold the claim, and the broadcast that refuses claims.

use std::time::Duration;

use super::{Harness, LEASE, assert_stale, ids_of, started, uid, write_n};
use crate::channel::{BroadcastChannel, Channel, PassthroughChannel, WorkQueueChannel};
use crate::error::ErrorKind;

pub async fn claims_do_not_hide_from_shared_readers(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 3).await;
    let claimed = ch.claim("worker", 1).await.unwrap();
    assert_eq!(claimed[0].message.id, ids[0]);
    assert_eq!(ids_of(&ch.read("observer", 10).await.unwrap()), ids);
}

pub async fn ack_consumes(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 3).await;
    let claimed = ch.claim("worker", 2).await.unwrap();
    assert_eq!(
        ch.ack("worker", &claimed[1]).await.unwrap().done,
        vec![claimed[1].message.id.clone()]
    );
    assert_eq!(
        ids_of(&ch.read("r", 10).await.unwrap()),
        vec![ids[0].clone(), ids[2].clone()]
    );
}

pub async fn ack_and_claim_takes_the_next_batch(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 5).await;
    let claim_ids = |c: &[crate::store::Claimed]| -> Vec<String> {
        c.iter().map(|c| c.message.id.clone()).collect()
    };
    let first = ch.claim("w1", 2).await.unwrap();
    let (settled, next) = ch.ack_and_claim("w1", &first, 2).await.unwrap();
    assert_eq!(settled.done, ids[..2], "the batch is acknowledged");
    assert!(settled.stale.is_empty());
    assert_eq!(claim_ids(&next), ids[2..4], "and the next two are claimed");
    assert!(next.iter().all(|c| c.attempt == 1));
    // A stale id (already acknowledged) is reported; the rest is acknowledged and the
    // claim still happens.
    let again = [ids[0].clone(), ids[2].clone(), ids[3].clone()];
    let (settled, last) = ch.ack_and_claim("w1", &again, 10).await.unwrap();
    assert_eq!(settled.done, ids[2..4]);
    assert_eq!(settled.stale, ids[..1]);
    assert_eq!(claim_ids(&last), ids[4..], "at most what is there");
    // Fenced as an ack: another caller's claim stays, and it gets nothing more.
    let (settled, none) = ch.ack_and_claim("w2", &last, 10).await.unwrap();
    assert_eq!(settled.stale, ids[4..]);
    assert!(none.is_empty());
    // Limit 0 only acknowledges.
    let (settled, none) = ch.ack_and_claim("w1", &last, 0).await.unwrap();
    assert_eq!(settled.done, ids[4..]);
    assert!(none.is_empty());
    let s = ch.stats().await.unwrap();
    assert_eq!((s.stored, s.in_flight, s.acknowledged), (0, 0, 5));
}

pub async fn claim_order_and_limit(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 3).await;
    let a = ch.claim("w1", 2).await.unwrap();
    assert_eq!(
        a.iter().map(|c| c.message.id.clone()).collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(a.iter().all(|c| c.attempt == 1));
    let b = ch.claim("w2", 10).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].message.id, ids[2]);
    assert!(
        ch.claim("w1", 10).await.unwrap().is_empty(),
        "a holder never gets its items again"
    );
    assert!(ch.claim("w3", 0).await.unwrap().is_empty());
}

pub async fn acked_never_reappears(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 2).await;
    let claimed = ch.claim("w1", 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(ch.ack("w1", &ids[..1]).await.unwrap().all_done());
    h.advance(LEASE + Duration::from_millis(300)).await;
    ch.reclaim_expired().await.unwrap();
    let again = ch.claim("w2", 10).await.unwrap();
    assert_eq!(again.len(), 1, "only the unacknowledged item comes back");
    assert_eq!(again[0].message.id, ids[1]);
    assert_eq!(again[0].attempt, 2);
}

pub async fn nack_releases_to_others(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    assert_eq!(ch.nack("w1", &ids).await.unwrap().done.len(), 1);
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(again[0].message.id, ids[0]);
    assert_eq!(again[0].attempt, 2);
}

pub async fn nack_by_non_holder_is_stale(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    let settled = ch.nack("w2", &ids).await.unwrap();
    assert_eq!(settled.stale, ids, "the non-holder's nack is stale");
    let err = settled.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleClaim);
    assert!(
        ch.claim("w3", 1).await.unwrap().is_empty(),
        "the claim stays in place"
    );
    assert_stale(ch.ack("w2", &ids).await);
    assert_eq!(ch.ack("w1", &ids).await.unwrap().done.len(), 1);
}

pub async fn nack_with_delay(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    let settled = ch.nack_after("w1", &ids, Duration::from_millis(800));
    assert!(settled.await.unwrap().all_done());
    assert!(
        ch.claim("w2", 1).await.unwrap().is_empty(),
        "not before the delay"
    );
    h.advance(Duration::from_millis(1300)).await;
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

/// Through the type-erased handle (the typed one has no `claim`: it does not compile).
pub async fn broadcast_refuses_claims(h: &impl Harness) {
    let ch: Channel = started(h, BroadcastChannel::new(uid("b"))).await.into();
    let ids = write_n(&ch, 1).await;
    let err = ch.claim("r", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
    assert!(err.message().contains("exclusive"), "{err}");
    assert_eq!(
        ch.ack("r", &ids).await.unwrap_err().kind(),
        ErrorKind::UnsupportedOperation
    );
    assert_eq!(
        ch.read("r", 10).await.unwrap().len(),
        1,
        "no reader can hide a message"
    );
}
