//! Recovery after a server crash: a private nats-server (own port, own store directory) is
//! killed with SIGKILL under a running work queue — a producer in this process, workers
//! in `sssn-nats-worker` processes — and restarted on the same directory; then a worker is
//! killed with SIGKILL too and replaced by a new process.
//!
//! Passing means: nothing is stranded (every written message is acknowledged, and
//! afterwards `stats` reports nothing stored and no backlog, so no backlog that `claim`
//! cannot serve), and the `acknowledged` counter equals the acks that returned, plus at
//! most the acks whose outcome the killed worker never learned. Printed: how many
//! messages the reconciliation found below the ack floor (through `stats` after the run),
//! and how many acknowledged messages were delivered again, and the stream's and claims
//! consumer's state before the kill and after the restart. Deletes are `no_erase` (the
//! default), the mode in which 2.9 undoes recent deletes in a crash. On 2.9 and 2.15, with
//! the default retention (limits on 2.9, interest on 2.15) and with limits retention.

mod common;

use common::Release;
use common::worker::{Worker, parse};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::RetentionPolicy;
use sssn::ChannelMessage;
use sssn::channel::WorkQueueChannel;
use sssn_nats::{JetStreamOptions, JetStreamStore};

/// Messages written in the run.
const TOTAL: usize = 1200;
const CHANNEL: &str = "jobs";
const WORKER_ARGS: &[&str] = &["--lease-ms", "2000", "--batch", "10", "--work-ms", "0"];

fn acked_count(workers: &[Worker]) -> usize {
    workers.iter().map(|w| w.count("ACKED")).sum()
}

/// Waits until the workers have acknowledged `n` messages, at most `timeout`.
async fn until_acked(workers: &[Worker], n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while acked_count(workers) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ids whose ack a worker sent without learning the outcome (its lines end before the
/// answer, or the ack failed).
fn unanswered_acks(lines: &[String]) -> HashSet<String> {
    let mut out = HashSet::new();
    for (kind, id, _, _) in lines.iter().filter_map(|l| parse(l)) {
        match kind {
            "ACKING" | "ACKFAIL" => {
                out.insert(id.to_owned());
            }
            "ACKED" | "STALE" => {
                out.remove(id);
            }
            _ => {}
        }
    }
    out
}

/// The stream's and the claims consumer's state as the server reports them (retried
/// while the server is not ready).
async fn recovered_state(js: &async_nats::jetstream::Context, stream: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = async {
            let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
            let st = s.info().await.map_err(|e| e.to_string())?.state.clone();
            let c = s.consumer_info("claims").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(format!(
                "stream first {} last {} messages {}; claims delivered {} ack floor {}",
                st.first_sequence,
                st.last_sequence,
                st.messages,
                c.delivered.stream_sequence,
                c.ack_floor.stream_sequence
            ))
        }
        .await;
        match state {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => return format!("unknown ({e})"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Default options: limits retention on 2.9 (acks delete), interest retention on 2.15
/// (acks remove; the claims consumer is recreated behind the holding consumer).
/// `SSSN_CRASH_REMOVE_ON_ACK=true` forces interest streams on 2.9 too: that is how the
/// 2.9.10 loss in the crate README ("Acks that remove") was reproduced (7 runs of 52
/// lost messages); `false` forces limits streams.
async fn server_crash_strands_nothing(release: Release) {
    let forced = std::env::var("SSSN_CRASH_REMOVE_ON_ACK")
        .ok()
        .map(|v| v == "true" || v == "1");
    crash_under_work_queue(release, "server_crash_strands_nothing", forced).await;
}

/// Limits retention on both servers: acks delete.
async fn server_crash_strands_nothing_deleting_on_ack(release: Release) {
    crash_under_work_queue(
        release,
        "server_crash_strands_nothing_deleting_on_ack",
        Some(false),
    )
    .await;
}

async fn crash_under_work_queue(release: Release, test: &str, remove_on_ack: Option<bool>) {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut server) = common::private_server(release, test, dir.path()) else {
        return;
    };
    let url = server.url();
    let prefix = common::fresh_prefix();
    let mut options = JetStreamOptions::default()
        .prefix(prefix.clone())
        .request_timeout(Duration::from_secs(2));
    options.remove_on_ack = remove_on_ack;
    let store = Arc::new(
        JetStreamStore::connect_with(&url, options.clone())
            .await
            .unwrap(),
    );
    let jobs = WorkQueueChannel::new(CHANNEL)
        .claim_timeout(Duration::from_secs(2))
        .store(store.clone())
        .build();
    jobs.start().await.unwrap();
    let js = async_nats::jetstream::new(store.client().clone());
    let retention = js
        .get_stream(store.stream_name(CHANNEL))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .retention;
    let interest = remove_on_ack.unwrap_or(release == Release::V2_15);
    let want = if interest {
        RetentionPolicy::Interest
    } else {
        RetentionPolicy::Limits
    };
    assert_eq!(retention, want, "the stream's retention");

    // The producer writes steadily; a write that fails (server down) is retried with the
    // same id, so every message is stored exactly once.
    // Each id written, with when its write returned (ms since the start).
    let started = Instant::now();
    let written = Arc::new(Mutex::new(HashMap::new()));
    let producer = {
        let jobs = jobs.clone();
        let written = written.clone();
        tokio::spawn(async move {
            for i in 0..TOTAL {
                let m = ChannelMessage::with_data("producer", &i).unwrap();
                loop {
                    match jobs.write_message("producer", m.clone()).await {
                        Ok(id) => {
                            let at = started.elapsed().as_millis();
                            written.lock().unwrap().insert(id, at);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                if i % 20 == 19 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
    };
    let mut workers: Vec<Worker> = (1..=2)
        .map(|k| Worker::spawn(&url, &format!("w{k}"), &prefix, CHANNEL, WORKER_ARGS))
        .collect();

    until_acked(&workers, 300, Duration::from_secs(20)).await;
    let before = recovered_state(&js, &store.stream_name(CHANNEL)).await;
    eprintln!("before the kill: {before}");
    let killed_at = started.elapsed().as_millis();
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let restarted_at = started.elapsed().as_millis();
    // What the server recovered: a stream whose last sequence is below what the claims
    // consumer had delivered lost its tail (or its last sequence) in the crash.
    let recovered = recovered_state(&js, &store.stream_name(CHANNEL)).await;
    eprintln!(
        "after the restart ({} ms): {recovered}",
        started.elapsed().as_millis()
    );
    let at_restart = acked_count(&workers);
    until_acked(&workers, at_restart + 200, Duration::from_secs(20)).await;
    // An sssn process killed right after its acks: its count must not drift.
    workers[0].kill();
    workers.push(Worker::spawn(&url, "w3", &prefix, CHANNEL, WORKER_ARGS));

    producer.await.unwrap();
    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), TOTAL);
    // Done when every written message was acknowledged, or its ack was sent by the killed
    // worker without an answer (then it is consumed or delivered again after the lease).
    let deadline = Instant::now() + Duration::from_secs(40);
    let missing = loop {
        let lines: Vec<String> = workers.iter().flat_map(Worker::lines).collect();
        let acked: HashSet<&str> = lines
            .iter()
            .filter_map(|l| parse(l).filter(|p| p.0 == "ACKED").map(|p| p.1))
            .collect();
        // The acks whose outcome their worker never learned: the killed worker's last
        // ones, and any that failed (at the server's crash): consumed, or delivered again.
        let unanswered: HashSet<String> = workers
            .iter()
            .flat_map(|w| unanswered_acks(&w.lines()))
            .collect();
        let missing: Vec<String> = written
            .keys()
            .filter(|id| !acked.contains(id.as_str()) && !unanswered.contains(id.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A fresh connection (another sssn process) reports what is left: nothing.
    let observer = Arc::new(JetStreamStore::connect_with(&url, options).await.unwrap());
    let view = WorkQueueChannel::new(CHANNEL)
        .claim_timeout(Duration::from_secs(2))
        .store(observer)
        .build();
    view.start().await.unwrap();
    let mut stats = view.stats().await.unwrap();
    let settle = Instant::now() + Duration::from_secs(5);
    while stats.in_flight > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = view.stats().await.unwrap();
    }
    let lines: Vec<Vec<String>> = workers.iter_mut().map(Worker::kill).collect();

    // Redeliveries of acknowledged messages: a delivery of an id after an ACKED line for
    // it (in any process).
    let mut first_ack: HashMap<String, u128> = HashMap::new();
    let mut claims = Vec::new();
    let (mut confirmed, mut unknown) = (0u64, 0u64);
    for worker in &lines {
        for (kind, id, _, at) in worker.iter().filter_map(|l| parse(l)) {
            match kind {
                "ACKED" => {
                    confirmed += 1;
                    let t = first_ack.entry(id.to_owned()).or_insert(at);
                    *t = (*t).min(at);
                }
                "CLAIMED" => claims.push((id.to_owned(), at)),
                _ => {}
            }
        }
        unknown += unanswered_acks(worker).len() as u64;
    }
    let redelivered_acked = claims
        .iter()
        .filter(|(id, at)| first_ack.get(id).is_some_and(|t| t < at))
        .count();
    eprintln!(
        "nats-server {} (interest retention {interest}): written {TOTAL}, acks confirmed {confirmed}, acks of unknown outcome {unknown}, \
         acknowledged counter {}, redeliveries of acknowledged messages {redelivered_acked}, \
         stranded (stored after the run) {}, backlog {}",
        release.label(),
        stats.acknowledged,
        stats.stored,
        stats.backlog,
    );
    // What happened to each missing message: when its write returned (against the
    // server's kill and restart), and every worker's line about it.
    for id in &missing {
        let events: Vec<&String> = lines
            .iter()
            .flatten()
            .filter(|l| l.contains(id.as_str()))
            .collect();
        eprintln!(
            "missing {id}: written at {} ms (server killed at {killed_at} ms, restarted at {restarted_at} ms); worker lines: {events:?}",
            written[id]
        );
    }
    assert!(
        missing.is_empty(),
        "written messages never acknowledged: {missing:?}"
    );
    assert_eq!(stats.stored, 0, "stranded messages: {stats:?}");
    assert_eq!(stats.backlog, 0, "{stats:?}");
    assert!(
        view.claim("observer", 10).await.unwrap().is_empty(),
        "nothing left to claim"
    );
    assert!(
        stats.acknowledged >= confirmed && stats.acknowledged <= confirmed + unknown,
        "the acknowledged counter drifted: {} for {confirmed} confirmed acks and {unknown} of unknown outcome",
        stats.acknowledged
    );
    view.stop().await;
    jobs.stop().await;
    let _ = store.delete_all().await;
}

on_each_release!(
    server_crash_strands_nothing,
    server_crash_strands_nothing_deleting_on_ack
);
