//! Retention: by age (applied by maintenance) and by count (applied as the writes come),
//! on every kind, and changed while the channel runs.

use std::time::Duration;

use serde_json::json;

use super::{Harness, started, uid, write_n};
use crate::channel::{BroadcastChannel, PassthroughChannel};
use crate::message::Payload;

pub async fn retention_runs_on_every_kind(h: &impl Harness) {
    let ch = started(
        h,
        BroadcastChannel::new(uid("b"))
            .retention_max_count(3)
            .maintenance_interval(Duration::from_millis(200)),
    )
    .await;
    write_n(&ch, 5).await;
    h.advance(Duration::from_millis(700)).await;
    // Let the maintenance task run.
    for _ in 0..50 {
        if ch.stats().await.unwrap().stored == 3 {
            break;
        }
        h.advance(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ch.stats().await.unwrap().stored,
        3,
        "maintenance applied retention"
    );

    let aged = started(
        h,
        PassthroughChannel::new(uid("p")).retention_max_age(Duration::from_secs(1)),
    )
    .await;
    write_n(&aged, 2).await;
    // Past the 1 s age plus the coarsest time grain a store may keep (whole seconds).
    h.advance(Duration::from_millis(2500)).await;
    write_n(&aged, 1).await;
    aged.maintain().await.unwrap();
    assert_eq!(aged.stats().await.unwrap().stored, 1);
}

/// Count retention does not wait for maintenance: what is stored follows `max_count`, not
/// the write rate times the maintenance interval.
pub async fn count_retention_follows_the_writes(h: &impl Harness) {
    let ch = started(
        h,
        BroadcastChannel::new(uid("b"))
            .retention_max_count(50)
            .maintenance_interval(Duration::from_secs(3600)),
    )
    .await;
    let mut most = 0;
    for round in 0..20 {
        let batch = (0..10)
            .map(|i| Payload::Data(json!({"n": round * 10 + i})))
            .collect();
        ch.write_batch("writer", batch).await.unwrap();
        write_n(&ch, 1).await;
        most = most.max(ch.stats().await.unwrap().stored);
    }
    assert!(most <= 50 + 5 + 11, "stored {most} with max_count 50");
    let kept = ch.entries_after("r", 0, 1000).await.unwrap();
    assert!(kept.len() >= 50, "the newest 50 are kept ({})", kept.len());
    assert_eq!(
        kept.last().unwrap().seq,
        220,
        "the newest is the last written"
    );
}

pub async fn retention_changes_while_running(h: &impl Harness) {
    let ch = started(
        h,
        BroadcastChannel::new(uid("b")).maintenance_interval(Duration::from_millis(200)),
    )
    .await;
    assert_eq!(ch.retention(), (None, None));
    write_n(&ch, 5).await;
    ch.set_retention("admin", None, Some(2)).unwrap();
    assert_eq!(ch.retention(), (None, Some(2)));
    // The next write trims to the new count (count retention follows the writes).
    write_n(&ch, 1).await;
    assert_eq!(ch.stats().await.unwrap().stored, 2);
    // Maintenance applies a new age limit.
    ch.set_retention("admin", Some(Duration::from_millis(100)), None)
        .unwrap();
    h.advance(Duration::from_millis(1500)).await;
    for _ in 0..50 {
        if ch.stats().await.unwrap().stored == 0 {
            break;
        }
        h.advance(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ch.stats().await.unwrap().stored,
        0,
        "aged out by maintenance"
    );
    ch.set_retention("admin", None, None).unwrap();
    write_n(&ch, 3).await;
    h.advance(Duration::from_millis(1500)).await;
    assert_eq!(
        ch.stats().await.unwrap().stored,
        3,
        "no limits: nothing goes"
    );
}
