//! Subscriptions (the live feed): unsubscribe, a lagging subscriber that catches up from
//! the store, gaps for what retention removed, and resuming after a sequence.

use std::time::Duration;

use super::{Harness, recv, started, uid, write_n};
use crate::channel::{BroadcastChannel, RecvError};

pub async fn subscribe_and_unsubscribe(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let mut a = ch.subscribe("a").await.unwrap();
    let mut b = ch.subscribe("b").await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(recv(&mut a).await.message.id, id);
    assert_eq!(recv(&mut b).await.message.id, id);
    ch.unsubscribe("a");
    ch.write("w", &2).await.unwrap();
    assert_eq!(a.recv().await.unwrap_err(), RecvError::Closed);
    assert_eq!(recv(&mut b).await.message.data::<i32>().unwrap(), 2);
}

pub async fn lagging_subscriber_catches_up(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b")).subscriber_capacity(4)).await;
    let mut sub = ch.subscribe("slow").await.unwrap();
    let ids = write_n(&ch, 20).await;
    // Give a backend with an asynchronous feed time to deliver.
    h.advance(Duration::from_millis(300)).await;
    let mut got = Vec::new();
    let mut lagged = 0;
    while got.len() < 20 {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("in time")
        {
            Ok(e) => got.push(e.message.id.clone()),
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        lagged > 0,
        "a subscriber 16 messages behind with capacity 4 is told it lagged"
    );
    assert_eq!(
        got, ids,
        "after the lag it catches up from the store, in order, no gaps"
    );
    let stats = ch.stats().await.unwrap();
    assert_eq!(stats.subscribers[0].queue_depth, 0);
}

/// What retention removed before a subscriber got it is reported as a gap, never skipped
/// silently.
pub async fn subscribers_are_told_of_removed_messages(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b")).subscriber_capacity(4)).await;
    let mut sub = ch.subscribe("slow").await.unwrap();
    write_n(&ch, 20).await;
    assert_eq!(ch.evict("admin", None, Some(5)).await.unwrap(), 15);
    h.advance(Duration::from_millis(300)).await;
    // Every sequence is delivered or inside a reported gap, once, in order.
    let mut next = 1;
    let mut lost = 0;
    while next <= 20 {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("in time")
        {
            Ok(e) => {
                assert_eq!(e.seq, next, "delivered in order");
                next += 1;
            }
            Err(RecvError::Gap { from, to }) => {
                assert_eq!(from, next, "a gap starts where delivery stopped");
                assert!(
                    to >= from && to <= 15,
                    "only removed messages are lost: {from}..={to}"
                );
                lost += to - from + 1;
                next = to + 1;
            }
            Err(RecvError::Lagged(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lost <= 15);
    // Resuming from a position whose successors are gone: the gap first, then the rest.
    let mut late = ch.subscribe_after("late", 3).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), late.recv())
        .await
        .expect("in time");
    assert_eq!(first.unwrap_err(), RecvError::Gap { from: 4, to: 15 });
    let second = tokio::time::timeout(Duration::from_secs(5), late.recv())
        .await
        .expect("in time");
    assert_eq!(second.unwrap().seq, 16);
}

pub async fn subscribe_after_resumes(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let ids = write_n(&ch, 5).await;
    let entries = ch.entries_after("r", 0, 10).await.unwrap();
    let mut sub = ch.subscribe_after("r", entries[1].seq).await.unwrap();
    let more = write_n(&ch, 1).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(recv(&mut sub).await.message.id.clone());
    }
    let mut want = ids[2..].to_vec();
    want.extend(more);
    assert_eq!(got, want);
}
