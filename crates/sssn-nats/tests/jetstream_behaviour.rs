//! Behaviour specific to a shared, multi-process store: what one process does is seen by
//! another connection to the same namespace (another "process"), fencing holds across
//! processes, a claim abandoned by a vanished process is dead-lettered by the next
//! claimer once it used its last delivery, cursors live on the server, and ids that are
//! not subject-safe work.

mod common;

use common::Release;

use std::sync::Arc;
use std::time::Duration;

use sssn::channel::{BroadcastChannel, PassthroughChannel, WorkQueueChannel};
use sssn::store::{ChannelSpec, Store};
use sssn::{ChannelKind, ChannelMessage, ErrorKind};

async fn feed_sees_appends_of_other_processes(release: Release) {
    let Some(ts) = common::store_of(release, "feed_sees_appends_of_other_processes").await else {
        return;
    };
    let here = BroadcastChannel::new("news")
        .store(ts.store.clone())
        .build();
    here.start().await.unwrap();
    let mut sub = here.subscribe("reader").await.unwrap();
    let there = BroadcastChannel::new("news")
        .store(Arc::new(ts.another().await))
        .build();
    there.start().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(there.write("remote", &i).await.unwrap());
    }
    for id in &ids {
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("pushed in time")
            .expect("a message");
        assert_eq!(&got.message.id, id, "in sequence order");
    }
    let spec = ChannelSpec::new("news", ChannelKind::Broadcast);
    let raw = ts.store.open_channel(&spec).await.unwrap();
    assert_eq!(raw.head(), 5, "head follows the other process's appends");
}

async fn claims_are_fenced_across_processes(release: Release) {
    let Some(ts) = common::store_of(release, "claims_are_fenced_across_processes").await else {
        return;
    };
    let a = WorkQueueChannel::new("q")
        .claim_timeout(Duration::from_secs(30))
        .store(ts.store.clone())
        .build();
    a.start().await.unwrap();
    let b = WorkQueueChannel::new("q")
        .claim_timeout(Duration::from_secs(30))
        .store(Arc::new(ts.another().await))
        .build();
    b.start().await.unwrap();
    let id = a.write("p", &1).await.unwrap();
    let claimed = a.claim("w", 1).await.unwrap();
    assert_eq!(claimed[0].message.id, id);
    assert!(
        b.claim("w", 1).await.unwrap().is_empty(),
        "held by the other process"
    );
    // Same claimer name, other process: it does not hold this claim.
    let ids = vec![id.clone()];
    assert_eq!(
        b.ack("w", &ids).await.unwrap_err().kind(),
        ErrorKind::StaleClaim
    );
    assert_eq!(
        b.nack("w", &ids).await.unwrap_err().kind(),
        ErrorKind::StaleClaim
    );
    assert_eq!(a.ack("w", &ids).await.unwrap(), 1);
    // The acknowledged count is folded in by the acking process in the background; its
    // own stats wait for that, other processes see it once it is done.
    assert_eq!(a.stats().await.unwrap().acknowledged, 1);
    let s = b.stats().await.unwrap();
    assert_eq!((s.stored, s.acknowledged), (0, 1));
}

async fn next_claimer_dead_letters_an_abandoned_last_delivery(release: Release) {
    let Some(ts) = common::store_of(
        release,
        "next_claimer_dead_letters_an_abandoned_last_delivery",
    )
    .await
    else {
        return;
    };
    let lease = Duration::from_secs(1);
    let gone = {
        let a = WorkQueueChannel::new("q")
            .claim_timeout(lease)
            .max_deliveries(1)
            .store(Arc::new(ts.another().await))
            .build();
        a.start().await.unwrap();
        let id = a.write("p", &"poison").await.unwrap();
        assert_eq!(a.claim("w1", 1).await.unwrap().len(), 1);
        a.stop().await;
        id
        // The process holding the claim vanishes here, its lease still running.
    };
    let b = WorkQueueChannel::new("q")
        .claim_timeout(lease)
        .max_deliveries(1)
        .store(ts.store.clone())
        .build();
    b.start().await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    assert!(
        b.claim("w2", 10).await.unwrap().is_empty(),
        "the second delivery would exceed max_deliveries"
    );
    let dead = b.dead_letters("admin", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, gone);
    assert_eq!(dead[0].attempts, 1);
    assert!(
        dead[0].reason.contains("max_deliveries"),
        "{}",
        dead[0].reason
    );
    let s = b.stats().await.unwrap();
    assert_eq!((s.stored, s.dead_lettered), (0, 1));
}

async fn cursors_live_on_the_server(release: Release) {
    let Some(ts) = common::store_of(release, "cursors_live_on_the_server").await else {
        return;
    };
    let a = BroadcastChannel::new("b").store(ts.store.clone()).build();
    a.start().await.unwrap();
    for i in 0..5 {
        a.write("w", &i).await.unwrap();
    }
    assert_eq!(a.read("r", 2).await.unwrap().len(), 2);
    let b = BroadcastChannel::new("b")
        .store(Arc::new(ts.another().await))
        .build();
    b.start().await.unwrap();
    let rest = b.read("r", 10).await.unwrap();
    assert_eq!(
        rest.len(),
        3,
        "another process continues from the stored cursor"
    );
    assert_eq!(rest[0].data::<i32>().unwrap(), 2);
    // And the first process sees that move (its cached position is re-checked).
    assert!(a.read("r", 10).await.unwrap().is_empty());
    let stats = a.stats().await.unwrap();
    assert_eq!(stats.readers[0].cursor, 5);
}

async fn ids_that_are_not_subject_safe(release: Release) {
    let Some(ts) = common::store_of(release, "ids_that_are_not_subject_safe").await else {
        return;
    };
    let ch = PassthroughChannel::new("odd ids: a.b*c>d")
        .store(ts.store.clone())
        .build();
    ch.start().await.unwrap();
    let odd = ["a.b", "x y", "*", ">", "a_2Eb", &"é".repeat(300)];
    for id in odd {
        let mut m = ChannelMessage::with_data("w", &id).unwrap();
        m.id = id.to_owned();
        assert_eq!(ch.write_message("w", m.clone()).await.unwrap(), id);
        assert_eq!(ch.write_message("w", m).await.unwrap(), id, "idempotent");
    }
    let all = ch.read("r", 100).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        odd,
        "each stored once, in order"
    );
    let after = ch.read_after("r2", "a.b", 100).await.unwrap();
    assert_eq!(after.len(), odd.len() - 1);
    assert_eq!(ch.remove("admin", &["*".to_owned()]).await.unwrap(), 1);
    assert_eq!(ch.stats().await.unwrap().stored, odd.len() as u64 - 1);
}

on_each_release!(
    feed_sees_appends_of_other_processes,
    claims_are_fenced_across_processes,
    next_claimer_dead_letters_an_abandoned_last_delivery,
    cursors_live_on_the_server,
    ids_that_are_not_subject_safe,
);
