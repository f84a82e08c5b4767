//! Dead letters: after `max_deliveries` or a `reject`, with the reason and the attempts,
//! and `redrive` back into the queue.

use serde_json::json;

use super::{Harness, LEASE, started, uid, write_n};
use crate::channel::WorkQueueChannel;

pub async fn max_deliveries_dead_letters(h: &impl Harness) {
    let ch = started(
        h,
        WorkQueueChannel::new(uid("q"))
            .claim_timeout(LEASE * 30)
            .max_deliveries(2),
    )
    .await;
    let ids = write_n(&ch, 2).await;
    for attempt in 1..=2 {
        let c = ch.claim("w", 1).await.unwrap();
        assert_eq!(c[0].message.id, ids[0]);
        assert_eq!(c[0].attempt, attempt);
        assert!(ch.nack("w", &ids[..1]).await.unwrap().all_done());
    }
    let next = ch.claim("w", 10).await.unwrap();
    assert_eq!(next.len(), 1, "the poison message is gone from the queue");
    assert_eq!(next[0].message.id, ids[1]);
    let dead = ch.dead_letters("admin", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, ids[0]);
    assert_eq!(dead[0].attempts, 2);
    assert!(
        dead[0].reason.contains("max_deliveries"),
        "{}",
        dead[0].reason
    );
    assert_eq!(ch.stats().await.unwrap().dead_lettered, 1);
    assert_eq!(ch.redrive("admin", &ids[..1]).await.unwrap(), 1);
    let back = ch.claim("w2", 10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].message.id, ids[0]);
    assert_eq!(back[0].attempt, 1, "redriven messages start over");
    assert!(ch.dead_letters("admin", 10).await.unwrap().is_empty());
}

pub async fn reject_dead_letters(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w", 1).await.unwrap();
    let settled = ch.reject("w", &ids, "schema_reject").await.unwrap();
    assert_eq!(settled.done, ids);
    assert!(ch.claim("w", 1).await.unwrap().is_empty());
    let dead = ch.dead_letters("admin", 10).await.unwrap();
    assert_eq!(dead[0].reason, "schema_reject");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(
        dead[0].message.data::<serde_json::Value>().unwrap(),
        json!({"n": 0})
    );
}
