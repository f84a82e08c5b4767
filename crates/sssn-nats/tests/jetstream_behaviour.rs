//! Behaviour specific to a shared, multi-process store: what one process does is seen by
//! another connection to the same namespace (another "process"), fencing holds across
//! processes, a claim abandoned by a vanished process is dead-lettered by the next
//! claimer once it used its last delivery, cursors live on the server, and ids that are
//! not subject-safe work; a channel cannot be opened with other capabilities than it was
//! created with.

mod common;

use common::Release;

use std::sync::Arc;
use std::time::Duration;

use sssn::channel::{BroadcastChannel, PassthroughChannel, WorkQueueChannel};
use sssn::store::{ChannelSpec, ClaimPolicy, Store};
use sssn::{ChannelMessage, ErrorKind};

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
    let raw = ts
        .store
        .open_channel(&ChannelSpec::log("news"))
        .await
        .unwrap();
    assert_eq!(
        raw.log.head(),
        5,
        "head follows the other process's appends"
    );
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
    let settled = b.ack("w", &ids).await.unwrap();
    assert_eq!(settled.stale, ids);
    assert_eq!(
        settled.into_result().unwrap_err().kind(),
        ErrorKind::StaleClaim
    );
    assert_eq!(b.nack("w", &ids).await.unwrap().stale, ids);
    assert_eq!(a.ack("w", &ids).await.unwrap().done, ids);
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

async fn opening_with_other_capabilities_fails(release: Release) {
    let Some(ts) = common::store_of(release, "opening_with_other_capabilities_fails").await else {
        return;
    };
    let policy = ClaimPolicy::default();
    let queue = ts
        .store
        .open_channel(&ChannelSpec::with_claims("q", policy))
        .await
        .unwrap();
    assert!(queue.claims.is_some());
    let log = ts.store.open_channel(&ChannelSpec::log("b")).await.unwrap();
    assert!(
        log.claims.is_none(),
        "a broadcast's storage has no claim surface"
    );
    // The same store knows what it opened, both ways.
    for spec in [ChannelSpec::log("q"), ChannelSpec::with_claims("b", policy)] {
        let err = ts.store.open_channel(&spec).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
    // Another process sees the claims consumer on the server.
    let other = ts.another().await;
    let err = other
        .open_channel(&ChannelSpec::log("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.message().contains("created with claims"), "{err}");
    assert!(
        other
            .open_channel(&ChannelSpec::with_claims("q", policy))
            .await
            .unwrap()
            .claims
            .is_some()
    );
}

async fn head_starts_nothing_feed_starts_the_feed(release: Release) {
    let Some(ts) = common::store_of(release, "head_starts_nothing_feed_starts_the_feed").await
    else {
        return;
    };
    let storage = ts.store.open_channel(&ChannelSpec::log("h")).await.unwrap();
    let js = async_nats::jetstream::new(ts.store.client().clone());
    let mut stream = js.get_stream(ts.store.stream_name("h")).await.unwrap();
    let mut consumers = async || stream.info().await.unwrap().state.consumer_count;
    assert_eq!(storage.log.head(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(consumers().await, 0, "head() started no feed consumer");
    let _rx = storage.log.feed();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while consumers().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "feed() started the feed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A claim that finds nothing waits on the server (`claim_wait`) and gets a message
/// written meanwhile by another process, as soon as it is written; after the wait it
/// returns empty.
async fn an_empty_claim_waits_for_work(release: Release) {
    let Some(ts) = common::store_of(release, "an_empty_claim_waits_for_work").await else {
        return;
    };
    let waiting = sssn_nats::JetStreamStore::connect_with(
        &ts.url,
        ts.store
            .options()
            .clone()
            .claim_wait(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let claimer = WorkQueueChannel::new("q").store(Arc::new(waiting)).build();
    claimer.start().await.unwrap();
    let writer = WorkQueueChannel::new("q").store(ts.store.clone()).build();
    writer.start().await.unwrap();
    let started = std::time::Instant::now();
    let write = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        writer.write("p", &1).await.unwrap()
    });
    let claimed = claimer.claim("w", 5).await.unwrap();
    let took = started.elapsed();
    let id = write.await.unwrap();
    assert_eq!(claimed.len(), 1, "the message written during the wait");
    assert_eq!(claimed[0].message.id, id);
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(2500),
        "handed out when written, not at the end of the wait: {took:?}"
    );
    let started = std::time::Instant::now();
    assert!(claimer.claim("w", 5).await.unwrap().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "waited claim_wait"
    );
}

/// A write whose first copy was consumed and acknowledged already is not stored again:
/// the writer retries when the acknowledgement of its publish was lost, and a publish
/// held in a connection across a partition can reach the stream late. The server keeps
/// the id for its duplicate window (`Nats-Msg-Id`); the retry is answered with the id.
/// The same for an append of several messages (an atomic batch where the server has
/// them), and a message that is redriven from the dead letters does come back.
async fn a_retried_write_is_not_stored_again_once_consumed(release: Release) {
    let Some(ts) =
        common::store_of(release, "a_retried_write_is_not_stored_again_once_consumed").await
    else {
        return;
    };
    let q = WorkQueueChannel::new("q")
        .claim_timeout(Duration::from_secs(30))
        .store(ts.store.clone())
        .build();
    q.start().await.unwrap();
    let first = ChannelMessage::with_data("p", &1).unwrap();
    let id = q.write_message("p", first.clone()).await.unwrap();
    assert_eq!(q.claim("w", 5).await.unwrap().len(), 1);
    assert!(q.ack("w", &[id.as_str()]).await.unwrap().all_done());
    assert_eq!(q.write_message("p", first.clone()).await.unwrap(), id);
    assert!(q.claim("w", 5).await.unwrap().is_empty(), "stored again");

    let raw = ts
        .store
        .open_channel(&ChannelSpec::with_claims(
            "q",
            ClaimPolicy {
                lease: Duration::from_secs(30),
                max_deliveries: None,
            },
        ))
        .await
        .unwrap();
    let fresh = ChannelMessage::with_data("p", &2).unwrap();
    let entries = raw
        .log
        .append(vec![first.clone(), fresh.clone(), first.clone()])
        .await
        .unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.message.id.as_str()).collect();
    assert_eq!(
        ids,
        [first.id.as_str(), fresh.id.as_str(), first.id.as_str()]
    );
    let claimed = q.claim("w", 5).await.unwrap();
    let claimed_ids: Vec<&str> = claimed.iter().map(|c| c.message.id.as_str()).collect();
    assert_eq!(claimed_ids, [fresh.id.as_str()], "only the new message");

    assert!(
        q.reject("w", &[fresh.id.as_str()], "bad")
            .await
            .unwrap()
            .all_done()
    );
    assert_eq!(q.redrive("admin", &[fresh.id.as_str()]).await.unwrap(), 1);
    let back = q.claim("w", 5).await.unwrap();
    assert_eq!(
        back.len(),
        1,
        "a redriven message comes back within the window"
    );
    assert_eq!(back[0].message.id, fresh.id);
}

on_each_release!(
    a_retried_write_is_not_stored_again_once_consumed,
    an_empty_claim_waits_for_work,
    feed_sees_appends_of_other_processes,
    claims_are_fenced_across_processes,
    next_claimer_dead_letters_an_abandoned_last_delivery,
    cursors_live_on_the_server,
    ids_that_are_not_subject_safe,
    opening_with_other_capabilities_fails,
    head_starts_nothing_feed_starts_the_feed,
);
