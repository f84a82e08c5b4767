//! Leases of claims: an expired lease makes the message claimable again and fences the
//! late holder, `extend` keeps it, and a new claim timeout applies to the claims after it.

use std::time::Duration;

use super::{Harness, LEASE, assert_stale, ids_of, started, uid, write_n};
use crate::channel::WorkQueueChannel;

pub async fn lease_expiry_makes_claimable(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    h.advance(LEASE / 3).await;
    assert!(
        ch.claim("w2", 1).await.unwrap().is_empty(),
        "a live lease holds"
    );
    h.advance(LEASE).await;
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.id, ids[0]);
    assert_eq!(again[0].attempt, 2);
}

pub async fn ack_after_expiry_is_fenced(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    h.advance(LEASE + Duration::from_millis(300)).await;
    let settled = ch.ack("w1", &ids).await.unwrap();
    assert_eq!(settled.stale, ids, "a late ack is refused");
    assert!(settled.done.is_empty());
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "the message was not consumed by the late ack"
    );
    assert_stale(ch.ack("w1", &ids).await);
    assert_eq!(ch.ack("w2", &ids).await.unwrap().done.len(), 1);
}

pub async fn extend_keeps_the_lease(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 2)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    h.advance(LEASE * 3 / 2).await;
    assert_eq!(ch.extend("w1", &ids).await.unwrap().done.len(), 1);
    h.advance(LEASE).await;
    assert!(
        ch.claim("w2", 1).await.unwrap().is_empty(),
        "the extended lease still holds"
    );
    assert_eq!(ch.ack("w1", &ids).await.unwrap().done.len(), 1);
    assert_stale(ch.extend("w1", &ids).await);
}

/// Not in the macro's list: JetStream fixes the lease when a channel opens (it refuses
/// with `UnsupportedOperation`); memory and SQLite call this from their tests.
pub async fn claim_timeout_changes_while_running(h: &impl Harness) {
    let q = started(
        h,
        WorkQueueChannel::new(uid("q")).claim_timeout(Duration::from_secs(300)),
    )
    .await;
    let ids = write_n(&q, 2).await;
    let long = q.claim("w1", 1).await.unwrap();
    q.set_claim_timeout("admin", Duration::from_millis(200))
        .await
        .unwrap();
    let short = q.claim("w1", 1).await.unwrap();
    assert_eq!(short[0].message.id, ids[1]);
    assert!(
        short[0].lease_until_ms < long[0].lease_until_ms,
        "the new claim has the short lease"
    );
    h.advance(Duration::from_millis(600)).await;
    let again = q.claim("w2", 10).await.unwrap();
    assert_eq!(
        ids_of(&again.iter().map(|c| c.message.clone()).collect::<Vec<_>>()),
        vec![ids[1].clone()],
        "the short lease lapsed; the long one, given before the change, still holds"
    );
}
