//! Writes and removals that use what newer nats-servers offer, on 2.9 and 2.15:
//!
//! * an append of several messages is an atomic batch on 2.12.1+ (stream option
//!   `allow_atomic`, set on open also on streams created earlier): a batch that fails
//!   part-way stores nothing on 2.15, while 2.9 stores the messages it accepted;
//! * a batch larger than the server's limit of 1000 messages per atomic batch is written
//!   in atomic chunks, in order, with sequences as the acknowledgements say; ids stored
//!   before or repeated in the batch get their stored entry on both paths;
//! * `remove` (a purge by subject on 2.15) and `evict(max_count)` (a purge with `keep`)
//!   leave the stream's consumers alone and count only stored messages, on both servers.

mod common;

use std::time::{Duration, Instant};

use common::Release;
use sssn::ChannelMessage;
use sssn::store::{ChannelSpec, ClaimPolicy, Log, Store};
use sssn_nats::{JetStreamStore, ServerVersion};

fn message(n: usize) -> ChannelMessage {
    ChannelMessage::with_data("writer", &serde_json::json!({ "n": n })).unwrap()
}

/// Sends a raw JetStream API request; the reply as JSON.
async fn api(
    store: &JetStreamStore,
    subject: String,
    body: serde_json::Value,
) -> serde_json::Value {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let reply = store.client().request(subject, body.into()).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// The stream's configuration as the server reports it (fields async-nats leaves out
/// included).
async fn raw_config(store: &JetStreamStore, stream: &str) -> serde_json::Value {
    let info = api(
        store,
        format!("$JS.API.STREAM.INFO.{stream}"),
        serde_json::Value::Null,
    )
    .await;
    info["config"].clone()
}

async fn stored(log: &dyn Log) -> u64 {
    log.stats().await.unwrap().stored
}

async fn a_batch_that_fails_part_way(release: Release) {
    let Some(ts) = common::store_of(release, "a_batch_that_fails_part_way").await else {
        return;
    };
    let log = ts
        .store
        .open_channel(&ChannelSpec::log("events"))
        .await
        .unwrap()
        .log;
    let name = ts.store.stream_name("events");
    let atomic = ts
        .store
        .server_version()
        .unwrap()
        .supports_atomic_batch_appends();
    let mut config = raw_config(&ts.store, &name).await;
    assert_eq!(
        config["allow_atomic"].as_bool().unwrap_or(false),
        atomic,
        "allow_atomic is set on open exactly where the server has atomic batches"
    );
    // A message limit the middle message of the batch exceeds.
    config["max_msg_size"] = 2000.into();
    let updated = api(&ts.store, format!("$JS.API.STREAM.UPDATE.{name}"), config).await;
    assert!(updated.get("error").is_none(), "{updated}");

    let big = ChannelMessage::with_data("writer", &"x".repeat(5000)).unwrap();
    let batch = vec![message(1), big, message(3)];
    let err = log.append(batch.clone()).await.unwrap_err();
    assert_eq!(err.kind(), sssn::ErrorKind::Store, "{err}");
    let left = stored(log.as_ref()).await;
    if atomic {
        assert_eq!(left, 0, "all or nothing: {err}");
    } else {
        // Message by message: the server stored each message it accepted.
        assert_eq!(left, 2, "2.9 keeps the accepted messages: {err}");
    }
    // Without the oversized message the same write goes through, idempotently.
    let again = log
        .append(vec![batch[0].clone(), batch[2].clone()])
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(stored(log.as_ref()).await, 2);
    assert_eq!(
        (again[0].message.id.as_str(), again[1].message.id.as_str()),
        (batch[0].id.as_str(), batch[2].id.as_str())
    );
}

async fn atomic_batches_can_be_switched_off(release: Release) {
    let Some(ts) = common::store_of(release, "atomic_batches_can_be_switched_off").await else {
        return;
    };
    let off = JetStreamStore::connect(&format!(
        "{}?prefix={}&atomic_batches=false",
        ts.url,
        ts.store.options().prefix
    ))
    .await
    .unwrap();
    let log = off
        .open_channel(&ChannelSpec::log("plain"))
        .await
        .unwrap()
        .log;
    let name = off.stream_name("plain");
    let mut config = raw_config(&off, &name).await;
    assert_ne!(config["allow_atomic"], true, "the stream is left as it is");
    config["max_msg_size"] = 2000.into();
    let updated = api(&off, format!("$JS.API.STREAM.UPDATE.{name}"), config).await;
    assert!(updated.get("error").is_none(), "{updated}");
    let big = ChannelMessage::with_data("writer", &"x".repeat(5000)).unwrap();
    log.append(vec![message(1), big, message(3)])
        .await
        .unwrap_err();
    // Message by message, the call returns at the first refused message while the third
    // may still be on its way to the disk: wait for it, never for more than 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut n = stored(log.as_ref()).await;
    while n < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        n = stored(log.as_ref()).await;
    }
    assert_eq!(n, 2, "message by message on every server");
}

async fn a_large_batch_with_duplicates(release: Release) {
    let Some(ts) = common::store_of(release, "a_large_batch_with_duplicates").await else {
        return;
    };
    let log = ts
        .store
        .open_channel(&ChannelSpec::log("bulk"))
        .await
        .unwrap()
        .log;
    let before = log.append(vec![message(0)]).await.unwrap().remove(0);
    // 2500 new messages: three atomic chunks on 2.15; plus an id stored before and an id
    // repeated within the batch.
    let mut batch: Vec<ChannelMessage> = (1..=2500).map(message).collect();
    batch.insert(1200, (*before.message).clone());
    let repeated = batch[10].clone();
    batch.push(repeated.clone());
    let started = Instant::now();
    let entries = log.append(batch.clone()).await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "nats-server {}: append of {} messages (2500 new) in {took:?}",
        ts.store.server_version().unwrap(),
        batch.len()
    );
    assert_eq!(entries.len(), batch.len());
    for (entry, sent) in entries.iter().zip(&batch) {
        assert_eq!(entry.message.id, sent.id, "entries in input order");
    }
    assert_eq!(
        entries[1200].seq, before.seq,
        "the stored entry of an old id"
    );
    assert_eq!(
        entries.last().unwrap().seq,
        entries[10].seq,
        "a repeated id gets the entry of its first copy"
    );
    let new: Vec<u64> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1200 && *i != batch.len() - 1)
        .map(|(_, e)| e.seq)
        .collect();
    let want: Vec<u64> = (2..=2501).collect();
    assert_eq!(new, want, "new messages get consecutive sequences in order");
    assert_eq!(stored(log.as_ref()).await, 2501);
    // What is stored is what the entries say.
    let back = log.range(0, 3000).await.unwrap();
    assert_eq!(back.len(), 2501);
    for e in &entries {
        let found = &back[usize::try_from(e.seq).unwrap() - 1];
        assert_eq!((found.seq, &found.message.id), (e.seq, &e.message.id));
    }
    // The whole batch again: every id is stored, nothing is added.
    let again = log.append(batch.clone()).await.unwrap();
    assert_eq!(
        again.iter().map(|e| e.seq).collect::<Vec<_>>(),
        entries.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert_eq!(stored(log.as_ref()).await, 2501);
}

/// The same appends on one server, atomically and (pinned to 2.9.10) message by message:
/// 4 of 500 one after the other, then 100 of 20 at once; prints the times.
async fn atomic_and_message_by_message_times(release: Release) {
    let Some(ts) = common::store_of(release, "atomic_and_message_by_message_times").await else {
        return;
    };
    let pinned = JetStreamStore::connect_with(
        &ts.url,
        ts.store
            .options()
            .clone()
            .assume_server_version(Some(ServerVersion::new(2, 9, 10))),
    )
    .await
    .unwrap();
    let mut times = Vec::new();
    for (label, store) in [("default", &*ts.store), ("pinned to 2.9.10", &pinned)] {
        let id = format!("timing-{}", times.len());
        let log = store
            .open_channel(&ChannelSpec::log(&id))
            .await
            .unwrap()
            .log;
        let mut took = Vec::new();
        for round in 0..4 {
            let batch: Vec<ChannelMessage> = (0..500).map(|n| message(round * 500 + n)).collect();
            let started = Instant::now();
            log.append(batch).await.unwrap();
            took.push(started.elapsed());
        }
        assert_eq!(stored(log.as_ref()).await, 2000);
        let total: Duration = took.iter().sum();
        times.push(total);
        // Then 100 appends of 20 at once.
        let started = Instant::now();
        let appends = (0..100).map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let batch: Vec<ChannelMessage> =
                    (0..20).map(|n| message(10_000 + task * 20 + n)).collect();
                log.append(batch).await
            })
        });
        for done in futures::future::join_all(appends).await {
            assert_eq!(done.unwrap().unwrap().len(), 20);
        }
        let concurrent = started.elapsed();
        assert_eq!(stored(log.as_ref()).await, 4000);
        eprintln!(
            "nats-server {} ({label}): 4 appends of 500 in {total:?} ({took:?}); 100 concurrent appends of 20 in {concurrent:?}",
            ts.store.server_version().unwrap()
        );
    }
}

/// More concurrent batches than the server keeps in flight per stream (50): every append
/// gets its entries; with atomic batches each batch's messages are consecutive (message
/// by message, concurrent batches interleave).
async fn many_concurrent_batches(release: Release) {
    let Some(ts) = common::store_of(release, "many_concurrent_batches").await else {
        return;
    };
    let log = ts
        .store
        .open_channel(&ChannelSpec::log("busy"))
        .await
        .unwrap()
        .log;
    let atomic = ts
        .store
        .server_version()
        .unwrap()
        .supports_atomic_batch_appends();
    let started = Instant::now();
    let appends = (0..120).map(|task| {
        let log = log.clone();
        tokio::spawn(async move {
            let batch: Vec<ChannelMessage> = (0..20).map(|n| message(task * 20 + n)).collect();
            log.append(batch).await
        })
    });
    let mut seqs = Vec::new();
    for done in futures::future::join_all(appends).await {
        let entries = done.unwrap().unwrap();
        assert_eq!(entries.len(), 20);
        let first = entries[0].seq;
        if atomic {
            assert!(
                entries
                    .iter()
                    .enumerate()
                    .all(|(i, e)| e.seq == first + i as u64),
                "a batch's messages are stored together, in order"
            );
        }
        seqs.extend(entries.iter().map(|e| e.seq));
    }
    eprintln!(
        "nats-server {}: 120 concurrent appends of 20 in {:?}",
        ts.store.server_version().unwrap(),
        started.elapsed()
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=2400).collect::<Vec<u64>>());
    assert_eq!(stored(log.as_ref()).await, 2400);
}

async fn existing_streams_get_atomic_batches_on_open(release: Release) {
    let Some(ts) = common::store_of(release, "existing_streams_get_atomic_batches_on_open").await
    else {
        return;
    };
    // A stream created the way a store on 2.9 creates it.
    let old = JetStreamStore::connect_with(
        &ts.url,
        ts.store
            .options()
            .clone()
            .assume_server_version(Some(ServerVersion::new(2, 9, 10))),
    )
    .await
    .unwrap();
    let name = old.stream_name("legacy");
    let log = old
        .open_channel(&ChannelSpec::log("legacy"))
        .await
        .unwrap()
        .log;
    log.append(vec![message(1), message(2)]).await.unwrap();
    assert_ne!(raw_config(&old, &name).await["allow_atomic"], true);
    // Opened by a store that uses the server's features.
    let log = ts
        .store
        .open_channel(&ChannelSpec::log("legacy"))
        .await
        .unwrap()
        .log;
    let atomic = ts
        .store
        .server_version()
        .unwrap()
        .supports_atomic_batch_appends();
    assert_eq!(
        raw_config(&ts.store, &name).await["allow_atomic"] == true,
        atomic
    );
    let more = log.append(vec![message(3), message(4)]).await.unwrap();
    assert_eq!((more[0].seq, more[1].seq), (3, 4));
    assert_eq!(stored(log.as_ref()).await, 4);
}

async fn removals_leave_consumers_alone(release: Release) {
    let Some(ts) = common::store_of(release, "removals_leave_consumers_alone").await else {
        return;
    };
    let storage = ts
        .store
        .open_channel(&ChannelSpec::with_claims(
            "jobs",
            ClaimPolicy {
                lease: Duration::from_secs(30),
                ..ClaimPolicy::default()
            },
        ))
        .await
        .unwrap();
    let (log, queue) = (storage.log, storage.claims.unwrap());
    let entries = log.append((1..=6).map(message).collect()).await.unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.message.id.as_str()).collect();
    // A shared reader and the claims consumer have passed 1 and 2.
    let read = log
        .read("r", sssn::store::ReadFrom::Cursor, 2, &Default::default())
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    let claimed = queue.claim("w", 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Remove the 4th: the others after the consumers' positions are still delivered.
    assert_eq!(log.remove(&[ids[3], "no-such-id"]).await.unwrap(), 1);
    assert_eq!(log.remove(&[ids[3]]).await.unwrap(), 0, "removed once");
    let read = log
        .read("r", sssn::store::ReadFrom::Cursor, 10, &Default::default())
        .await
        .unwrap();
    let seqs = |es: &[sssn::store::Entry]| es.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&read),
        [3, 5, 6],
        "the reader skips only the removed message"
    );
    let claimed = queue.claim("w", 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [3, 5, 6],
        "the claims consumer skips only the removed message"
    );
    // Evict by count after the removal left a hole among the newest: counts what is stored.
    assert_eq!(stored(log.as_ref()).await, 5);
    assert_eq!(log.evict(None, Some(3)).await.unwrap(), 2);
    assert_eq!(stored(log.as_ref()).await, 3);
    let left = log.range(0, 10).await.unwrap();
    assert_eq!(seqs(&left), [3, 5, 6], "the newest three remain");
    assert_eq!(log.evict(None, Some(3)).await.unwrap(), 0);
    let later = log.append(vec![message(7)]).await.unwrap();
    let read = log
        .read("r", sssn::store::ReadFrom::Cursor, 10, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        seqs(&read),
        [later[0].seq],
        "the reader goes on after the purges"
    );
}

on_each_release!(
    a_batch_that_fails_part_way,
    atomic_batches_can_be_switched_off,
    a_large_batch_with_duplicates,
    atomic_and_message_by_message_times,
    many_concurrent_batches,
    existing_streams_get_atomic_batches_on_open,
    removals_leave_consumers_alone,
);
