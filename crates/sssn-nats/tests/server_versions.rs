//! What the store learns about its server, and the server behaviours its version
//! predicates stand for, checked on nats-server 2.9 and 2.15:
//!
//! * the version reported on connect, and the feature predicates it gives;
//! * connecting before the server is up (`retry_initial_connect`): the store is handed out
//!   at once, fails operations with a `Store` error while nothing answers, and works as
//!   soon as the server is up;
//! * per-message TTL (`Nats-TTL`, `supports_message_ttl`) is honoured from 2.11 on and
//!   silently ignored by 2.9;
//! * a discovery channel's registrations expire on the server from 2.11 on (`Nats-TTL` on
//!   a stream with `allow_msg_ttl`), and by the channel's purge on 2.9;
//! * `create_key_value` (`supports_kv`) works from 2.10 on and fails on 2.9 with
//!   async-nats 0.51;
//! * the two purge pitfalls of 2.9 the store avoids (see the crate README): a purge
//!   filtered by subject makes consumers skip to the end, and a purge with `keep` counts
//!   deleted messages; both are gone in 2.15 (`purges_without_2_9_pitfalls`, which the
//!   store's `remove` and `evict(max_count)` follow).

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use sssn::ErrorKind;
use sssn::channel::WorkQueueChannel;
use sssn_nats::{JetStreamOptions, JetStreamStore, ServerVersion};

use common::{PrivateServer, Release};

fn expected_minor(release: Release) -> u32 {
    match release {
        Release::V2_9 => 9,
        Release::V2_15 => 15,
    }
}

async fn version_and_features(release: Release) {
    let Some(ts) = common::store_of(release, "version_and_features").await else {
        return;
    };
    let v = ts.store.server_version().expect("known once connected");
    assert_eq!((v.major, v.minor), (2, expected_minor(release)), "{v}");
    let new = release == Release::V2_15;
    assert_eq!(v.supports_kv(), new);
    assert_eq!(v.supports_consumer_update(), new);
    assert_eq!(v.supports_message_ttl(), new);
    assert_eq!(v.supports_kv_ttl(), new);
    assert_eq!(v.supports_atomic_batch(), new);
    assert_eq!(v.supports_atomic_batch_appends(), new);
    assert_eq!(v.purges_without_2_9_pitfalls(), new);
    // Pinned: a rolling upgrade's oldest node.
    let pinned = JetStreamStore::connect_with(
        &ts.url,
        JetStreamOptions::default().assume_server_version(Some(ServerVersion::new(2, 9, 10))),
    )
    .await
    .unwrap();
    assert_eq!(pinned.server_version(), Some(ServerVersion::new(2, 9, 10)));
}

async fn connect_before_the_server_is_up(release: Release) {
    let test = format!(
        "connect_before_the_server_is_up (nats-server {})",
        release.label()
    );
    if let Err(reason) = release.binary() {
        return common::skip(&test, &reason);
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let started = Instant::now();
    let store = JetStreamStore::connect_with(
        &format!("nats://127.0.0.1:{port}?retry_connect=true&request_timeout=1s&prefix=early"),
        JetStreamOptions::default(),
    )
    .await
    .expect("handed out while no server answers");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!store.is_connected());
    assert_eq!(store.server_version(), None);
    let store = std::sync::Arc::new(store);
    let jobs = WorkQueueChannel::new("jobs").store(store.clone()).build();
    let err = jobs.start().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");

    let _server = PrivateServer::try_start_on(release, dir.path(), port).unwrap();
    assert!(
        store.wait_connected(Duration::from_secs(15)).await,
        "connected once the server is up"
    );
    let v = store.server_version().expect("known once connected");
    assert_eq!(v.minor, expected_minor(release), "{v}");
    jobs.start().await.expect("starts once the server answers");
    let id = jobs.write("p", &1).await.unwrap();
    assert_eq!(jobs.claim("w", 1).await.unwrap()[0].message.id, id);
}

/// Creates a stream by a raw API request (fields async-nats 0.51 leaves out without its
/// `server_2_11` feature): `Ok(())` or the server's error.
async fn create_raw(client: &async_nats::Client, config: serde_json::Value) -> Result<(), String> {
    let name = config["name"].as_str().unwrap().to_owned();
    let reply = client
        .request(
            format!("$JS.API.STREAM.CREATE.{name}"),
            serde_json::to_vec(&config).unwrap().into(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    match v.get("error") {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

async fn message_ttl_needs_2_11(release: Release) {
    let Some(ts) = common::store_of(release, "message_ttl_needs_2_11").await else {
        return;
    };
    let prefix = &ts.store.options().prefix;
    let name = format!("{prefix}_TTL");
    let client = ts.store.client().clone();
    let js = jetstream::new(client.clone());
    let created = create_raw(
        &client,
        serde_json::json!({
            "name": name, "subjects": [format!("{prefix}.ttl.>")], "storage": "file",
            "num_replicas": 1, "allow_msg_ttl": true, "allow_direct": true,
        }),
    )
    .await;
    // 2.9 ignores the unknown field and creates a plain stream.
    created.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-TTL", "1s");
    js.publish_with_headers(format!("{prefix}.ttl.a"), headers, "soon gone".into())
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = js.get_stream(&name).await.unwrap();
    let left = s.get_info().await.unwrap().state.messages;
    let v = ts.store.server_version().unwrap();
    if v.supports_message_ttl() {
        assert_eq!(left, 0, "{v}: the message expired after its TTL");
    } else {
        assert_eq!(left, 1, "{v}: Nats-TTL is ignored; the message stays");
    }
}

async fn discovery_expiry_on_the_server_from_2_11(release: Release) {
    use sssn::channel::DiscoveryChannel;
    use sssn::{ServiceDescriptor, ServiceMethod};

    let Some(ts) = common::store_of(release, "discovery_expiry_on_the_server_from_2_11").await
    else {
        return;
    };
    let v = ts.store.server_version().unwrap();
    let server_expires = v.supports_message_ttl();
    // Maintenance would purge too: keep it out of the way.
    let d = DiscoveryChannel::new("registry")
        .store(ts.store.clone())
        .maintenance_interval(Duration::from_secs(3600))
        .build();
    d.start().await.unwrap();
    let mut desc = ServiceDescriptor::new("resizer", "Resizer");
    desc.services.push(ServiceMethod::new("resize", "d"));
    for _ in 0..3 {
        d.register_system("svc", &desc, Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    d.register_system(
        "svc",
        &ServiceDescriptor::new("keeper", "K"),
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    assert_eq!(
        d.stats().await.unwrap().stored,
        2,
        "{v}: one version per id"
    );
    assert_eq!(d.find_systems("q", Some("resize")).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        d.find_systems("q", Some("resize"))
            .await
            .unwrap()
            .is_empty(),
        "{v}: expired"
    );
    let stored = d.stats().await.unwrap().stored;
    if server_expires {
        assert_eq!(
            stored, 1,
            "{v}: the server removed the expired record itself"
        );
    } else {
        assert_eq!(
            stored, 2,
            "{v}: Nats-TTL is not used; the record waits for the purge"
        );
    }
    d.maintain().await.unwrap();
    assert_eq!(d.stats().await.unwrap().stored, 1, "{v}: after the purge");
    assert!(d.get_system("q", "keeper").await.unwrap().is_some());
    d.stop().await;
}

async fn key_value_needs_2_10(release: Release) {
    let Some(ts) = common::store_of(release, "key_value_needs_2_10").await else {
        return;
    };
    let prefix = &ts.store.options().prefix;
    let js = jetstream::new(ts.store.client().clone());
    let bucket = format!("{prefix}_kv");
    let created = js
        .create_key_value(jetstream::kv::Config {
            bucket: bucket.clone(),
            ..Default::default()
        })
        .await;
    let v = ts.store.server_version().unwrap();
    assert_eq!(created.is_ok(), v.supports_kv(), "{v}: {:?}", created.err());
    if created.is_ok() {
        js.delete_key_value(&bucket).await.unwrap();
    }
}

async fn stream_with(js: &jetstream::Context, name: &str, subjects: &str) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn purge_pitfalls_of_2_9(release: Release) {
    let Some(ts) = common::store_of(release, "purge_pitfalls_of_2_9").await else {
        return;
    };
    let prefix = ts.store.options().prefix.clone();
    let js = jetstream::new(ts.store.client().clone());
    let v = ts.store.server_version().unwrap();

    // A consumer that has delivered messages 1 and 2, then a purge filtered by subject.
    let s = stream_with(&js, &format!("{prefix}_PS"), &format!("{prefix}.ps.*")).await;
    for i in 1..=5 {
        js.publish(format!("{prefix}.ps.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let c = s
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let fetch = |n: usize| {
        let c = c.clone();
        async move {
            let mut got = Vec::new();
            let mut batch = c
                .fetch()
                .max_messages(n)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .unwrap();
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(2), batch.next()).await
            {
                got.push(m.info().unwrap().stream_sequence);
            }
            got
        }
    };
    assert_eq!(fetch(2).await, [1, 2]);
    s.purge().filter(format!("{prefix}.ps.4")).await.unwrap();
    let got = fetch(10).await;
    // A purge with `keep` after a delete among the kept.
    let k = stream_with(&js, &format!("{prefix}_PK"), &format!("{prefix}.pk.*")).await;
    for i in 1..=6 {
        js.publish(format!("{prefix}.pk.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    k.delete_message(5).await.unwrap();
    k.purge().keep(3).await.unwrap();
    let kept = k.get_info().await.unwrap().state.messages;
    eprintln!(
        "nats-server {v}: after a subject purge a consumer at 2 got {got:?} (want [3, 5]); purge keep=3 after a delete kept {kept}"
    );
    // The predicate the store's purge paths ask says what this server does.
    assert_eq!(v.purges_without_2_9_pitfalls(), release == Release::V2_15);
    if release == Release::V2_15 {
        assert_eq!(got, [3, 5], "{v}: the subject purge leaves consumers alone");
        assert_eq!(kept, 3, "{v}: keep counts live messages");
    } else {
        assert_ne!(
            got,
            [3, 5],
            "{v}: the pitfall the store avoids is still there"
        );
        assert!(
            kept < 3,
            "{v}: keep counts the deleted message ({kept} kept)"
        );
    }
}

on_each_release!(
    version_and_features,
    connect_before_the_server_is_up,
    message_ttl_needs_2_11,
    discovery_expiry_on_the_server_from_2_11,
    key_value_needs_2_10,
    purge_pitfalls_of_2_9,
);
