//! Stats: stored, backlog, in flight, acknowledged, the head sequence, each reader's lag.

use super::{Harness, LEASE, started, uid, write_n};
use crate::channel::{BroadcastChannel, WorkQueueChannel};

pub async fn stats_reflect_state(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 4).await;
    ch.claim("w", 2).await.unwrap();
    assert!(ch.ack("w", &ids[..1]).await.unwrap().all_done());
    let s = ch.stats().await.unwrap();
    assert_eq!(s.stored, 3);
    assert_eq!(s.backlog, 2);
    assert_eq!(s.in_flight, 1);
    assert_eq!(s.acknowledged, 1);
    assert!(s.oldest_unacked_age_secs.is_some());
    assert_eq!(s.head_seq, 4);

    let b = started(h, BroadcastChannel::new(uid("b"))).await;
    write_n(&b, 5).await;
    b.read("r", 2).await.unwrap();
    let s = b.stats().await.unwrap();
    let r = s.readers.iter().find(|r| r.reader == "r").unwrap();
    assert_eq!(r.lag, 3);
}
