//! Acks that remove (`remove_on_ack`, the crate README's "Acks that remove"): new channel
//! streams with claims have interest retention and an ack is a `+ACK`; the acknowledged
//! message leaves the store also while other consumers (a shared reader, the feed) hold
//! it; streams created with limits retention (earlier versions, `remove_on_ack(false)`)
//! keep working and keep deleting; an ack of a message removed meanwhile is stale; a
//! log-only open of an interest stream is refused.

mod common;

use common::{Release, TestStore};

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::RetentionPolicy;
use sssn::ErrorKind;
use sssn::channel::{PassthroughChannel, WorkQueueChannel};
use sssn::store::{ChannelSpec, ClaimPolicy, Store};
use sssn_nats::JetStreamStore;

const LEASE: Duration = Duration::from_secs(30);

/// The test store's options with acks that remove on every server (the default takes them
/// only on 2.15+).
async fn interest_on(ts: &mut TestStore) {
    let options = ts.store.options().clone().remove_on_ack(true);
    ts.store = Arc::new(
        JetStreamStore::connect_with(&ts.url, options)
            .await
            .unwrap(),
    );
}

/// Work queue "q" on `store`, started.
async fn started_queue(store: Arc<JetStreamStore>) -> WorkQueueChannel {
    let q = WorkQueueChannel::new("q")
        .claim_timeout(LEASE)
        .store(store)
        .build();
    q.start().await.unwrap();
    q
}

/// The retention the server has for channel `id`'s stream.
async fn retention(ts: &TestStore, id: &str) -> RetentionPolicy {
    let js = async_nats::jetstream::new(ts.store.client().clone());
    let name = format!("{}_{id}", ts.store.options().prefix);
    let mut stream = js.get_stream(&name).await.expect("the channel's stream");
    stream.info().await.expect("stream info").config.retention
}

async fn acks_remove_on_interest_streams(release: Release) {
    let Some(mut ts) = common::store_of(release, "acks_remove_on_interest_streams").await else {
        return;
    };
    interest_on(&mut ts).await;
    let q = started_queue(ts.store.clone()).await;
    assert_eq!(retention(&ts, "q").await, RetentionPolicy::Interest);
    for i in 0..6 {
        q.write("p", &i).await.unwrap();
    }
    let claimed = q.claim("w", 6).await.unwrap();
    assert_eq!(claimed.len(), 6);
    let settled = q.ack("w", &claimed[..4]).await.unwrap();
    assert_eq!(settled.done.len(), 4);
    let s = q.stats().await.unwrap();
    assert_eq!((s.stored, s.in_flight, s.acknowledged), (2, 2, 4));
    let raw = ts
        .store
        .open_channel(&ChannelSpec::with_claims("q", ClaimPolicy::default()))
        .await
        .unwrap();
    assert!(raw.log.get(&claimed[0].message.id).await.unwrap().is_none());
    // Acked twice: stale, nothing counted again.
    assert_eq!(q.ack("w", &claimed[..1]).await.unwrap().stale.len(), 1);
    assert_eq!(q.ack("w", &claimed[4..]).await.unwrap().done.len(), 2);
    let s = q.stats().await.unwrap();
    assert_eq!((s.stored, s.backlog, s.acknowledged), (0, 0, 6));
}

/// A shared reader's consumer (and the feed's) holds the messages it has not read yet; an
/// ack removes them anyway.
async fn acks_remove_messages_other_consumers_hold(release: Release) {
    let Some(mut ts) = common::store_of(release, "acks_remove_messages_other_consumers_hold").await
    else {
        return;
    };
    interest_on(&mut ts).await;
    let ch = PassthroughChannel::new("p")
        .claim_timeout(LEASE)
        .store(ts.store.clone())
        .build();
    ch.start().await.unwrap();
    let raw = ts
        .store
        .open_channel(&ChannelSpec::with_claims("p", ClaimPolicy::default()))
        .await
        .unwrap();
    let _feed = raw.log.feed();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(ch.write("w", &i).await.unwrap());
        }
        ids
    };
    // The reader has read one: its consumer holds the other four.
    assert_eq!(ch.read("r", 1).await.unwrap().len(), 1);
    for round in 0..2 {
        let claimed = ch.claim("w", 2).await.unwrap();
        assert_eq!(claimed.len(), 2, "round {round}");
        assert_eq!(ch.ack("w", &claimed).await.unwrap().done.len(), 2);
    }
    let s = ch.stats().await.unwrap();
    assert_eq!(
        (s.stored, s.acknowledged),
        (1, 4),
        "acked messages left the store"
    );
    let left: Vec<String> = ch
        .read("r", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(left, ids[4..], "the reader sees only what was not consumed");
}

/// A channel stream with limits retention (made by an earlier version, or with
/// `remove_on_ack(false)`) keeps it and is acknowledged by deleting.
async fn limits_streams_keep_working(release: Release) {
    let Some(mut ts) = common::store_of(release, "limits_streams_keep_working").await else {
        return;
    };
    interest_on(&mut ts).await;
    let old =
        JetStreamStore::connect_with(&ts.url, ts.store.options().clone().remove_on_ack(false))
            .await
            .unwrap();
    let q = started_queue(Arc::new(old)).await;
    q.write("p", &1).await.unwrap();
    q.stop().await;
    assert_eq!(retention(&ts, "q").await, RetentionPolicy::Limits);
    let q = started_queue(ts.store.clone()).await;
    q.write("p", &2).await.unwrap();
    let claimed = q.claim("w", 5).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(q.ack("w", &claimed).await.unwrap().done.len(), 2);
    let s = q.stats().await.unwrap();
    assert_eq!((s.stored, s.acknowledged), (0, 2));
    assert_eq!(retention(&ts, "q").await, RetentionPolicy::Limits);
}

/// Left unset, `remove_on_ack` follows the server: interest retention on 2.15 (acks
/// remove), limits retention on 2.9, whose interest streams lost unacknowledged messages
/// in a crash (`server_crash.rs`).
async fn the_default_follows_the_server_version(release: Release) {
    let Some(ts) = common::store_of(release, "the_default_follows_the_server_version").await else {
        return;
    };
    assert_eq!(ts.store.options().remove_on_ack, None);
    let q = started_queue(ts.store.clone()).await;
    let want = match release {
        Release::V2_9 => RetentionPolicy::Limits,
        Release::V2_15 => RetentionPolicy::Interest,
    };
    assert_eq!(retention(&ts, "q").await, want);
    q.write("p", &1).await.unwrap();
    let claimed = q.claim("w", 5).await.unwrap();
    assert_eq!(q.ack("w", &claimed).await.unwrap().done.len(), 1);
    let s = q.stats().await.unwrap();
    assert_eq!((s.stored, s.acknowledged), (0, 1));
}

/// An ack of a message this handle removed since it was claimed is stale, as on the other
/// stores (the `+ACK` alone would not tell).
async fn ack_after_a_removal_is_stale(release: Release) {
    let Some(mut ts) = common::store_of(release, "ack_after_a_removal_is_stale").await else {
        return;
    };
    interest_on(&mut ts).await;
    let q = started_queue(ts.store.clone()).await;
    let a = q.write("p", &1).await.unwrap();
    let b = q.write("p", &2).await.unwrap();
    let claimed = q.claim("w", 2).await.unwrap();
    assert_eq!(
        q.remove("admin", std::slice::from_ref(&a)).await.unwrap(),
        1
    );
    let settled = q.ack("w", &claimed).await.unwrap();
    assert_eq!((settled.done, settled.stale), (vec![b], vec![a]));
    assert_eq!(q.stats().await.unwrap().stored, 0);
}

/// Without its claims consumer an interest stream would drop appends: a log-only open is
/// refused, from another process too, even before the consumer exists.
async fn a_log_only_open_of_an_interest_stream_is_refused(release: Release) {
    let Some(mut ts) =
        common::store_of(release, "a_log_only_open_of_an_interest_stream_is_refused").await
    else {
        return;
    };
    interest_on(&mut ts).await;
    ts.store
        .open_channel(&ChannelSpec::with_claims("q", ClaimPolicy::default()))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(ts.store.client().clone());
    let name = format!("{}_q", ts.store.options().prefix);
    js.get_stream(&name)
        .await
        .unwrap()
        .delete_consumer("claims")
        .await
        .unwrap();
    let err = ts
        .another()
        .await
        .open_channel(&ChannelSpec::log("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.message().contains("created with claims"), "{err}");
}

/// Why the claims consumer is recreated behind a holding consumer (`reconcile`): deleting
/// the only consumer of an interest stream drops every message no consumer needs; with a
/// holding consumer from the restart point, delete and recreate keep them.
async fn deleting_the_only_consumer_drops_messages(release: Release) {
    let Some(mut ts) = common::store_of(release, "deleting_the_only_consumer_drops_messages").await
    else {
        return;
    };
    interest_on(&mut ts).await;
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    let js = async_nats::jetstream::new(ts.store.client().clone());
    let prefix = ts.store.options().prefix.clone();
    let name = format!("{prefix}_raw");
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.raw.>")],
            retention: RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    let durable = |name: &str, start: u64| pull::Config {
        durable_name: Some(name.to_owned()),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: start,
        },
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    let publish = |n: u64| {
        let js = js.clone();
        let subject = format!("{prefix}.raw.{n}");
        async move {
            js.publish(subject, "x".into())
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    stream.create_consumer(durable("claims", 1)).await.unwrap();
    for n in 1..=3 {
        publish(n).await;
    }
    stream.delete_consumer("claims").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0, "dropped");
    stream.create_consumer(durable("claims", 4)).await.unwrap();
    for n in 4..=6 {
        publish(n).await;
    }
    stream
        .create_consumer(durable("claims-hold", 4))
        .await
        .unwrap();
    stream.delete_consumer("claims").await.unwrap();
    stream.create_consumer(durable("claims", 4)).await.unwrap();
    stream.delete_consumer("claims-hold").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 3, "kept");
}

on_each_release!(
    deleting_the_only_consumer_drops_messages,
    acks_remove_on_interest_streams,
    acks_remove_messages_other_consumers_hold,
    limits_streams_keep_working,
    the_default_follows_the_server_version,
    ack_after_a_removal_is_stale,
    a_log_only_open_of_an_interest_stream_is_refused,
);
