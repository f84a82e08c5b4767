//! The pipeline on a three-node JetStream cluster (loopback, R3 streams and claims
//! consumer) while nodes die. An ingestor (this test) writes jobs at a steady pace, three
//! `sssn-nats-worker` processes claim them, publish a result each (`r-<job id>`) to a
//! broadcast channel and acknowledge, and a dashboard (this test) follows the results
//! through a push subscription. Mid-run, one of two faults:
//!
//! * `node_killed_and_restarted`: SIGKILL of a node that does not lead the jobs stream,
//!   restarted on its directory 3 s later;
//! * `stream_leader_killed`: SIGKILL of the jobs stream's leader (found through the stream
//!   info's `cluster.leader`), restarted 5 s later.
//!
//! Passing means: no confirmed write is lost (every job whose write returned `Ok` gets its
//! result); no job is claimed again after an acknowledgement that got its reply (`ACKED`;
//! acks that failed, `ACKFAIL`, are counted apart); the dashboard sees every result; the
//! restarted node catches up. The figures (confirmed writes, write retries, redeliveries,
//! time to recover) are printed. Each test starts its own cluster; they run one at a time.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;
use sssn::ChannelMessage;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn_nats::JetStreamStore;

use common::Release;
use common::cluster::{Cluster, stream_leader};
use common::worker::{Worker, parse};

/// Jobs written over the run.
const JOBS: usize = 300;
/// Pause between two writes of the ingestor (about 6 s of writing).
const PACE: Duration = Duration::from_millis(20);
const LEASE: Duration = Duration::from_secs(2);
/// The fault strikes once this many jobs are confirmed.
const FAULT_AFTER: usize = 80;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    NodeRestart,
    LeaderKill,
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// What the ingestor did: confirmed job ids with their confirmation time (epoch ms), and
/// how many write attempts failed (each retried with the same message, so idempotent).
#[derive(Default)]
struct Ingested {
    confirmed: Vec<(String, u128)>,
    failed_attempts: usize,
}

async fn ingest(jobs: sssn::WorkQueueChannel, log: Arc<Mutex<Ingested>>) {
    for n in 0..JOBS {
        let message = ChannelMessage::with_data("ingestor", &json!({ "n": n })).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match jobs.write_message("ingestor", message.clone()).await {
                Ok(id) => {
                    log.lock().unwrap().confirmed.push((id, now_ms()));
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "writes never recovered: {e}");
                    log.lock().unwrap().failed_attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn wait_confirmed(log: &Mutex<Ingested>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.lock().unwrap().confirmed.len() < n {
        assert!(Instant::now() < deadline, "the ingestor stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the stream has a leader other than `not` and every replica is current.
async fn wait_healthy(js: &jetstream::Context, stream: &str, not: Option<&str>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let state = stream_leader(js, stream).await;
        if let Ok((leader, replicas)) = &state
            && Some(leader.as_str()) != not
            && replicas.len() == 2
            && replicas.iter().all(|(_, current)| *current)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stream {stream} not healthy within {within:?}: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pipeline_under_fault(release: Release, fault: Fault) {
    let test = format!("cluster_faults {fault:?} (nats-server {})", release.label());
    let _one_at_a_time = SERIAL.lock().await;
    let mut cluster = match Cluster::try_start(release) {
        Ok(c) => c,
        Err(reason) => return common::skip(&test, &reason),
    };
    cluster.ready(Duration::from_secs(30)).await;
    let prefix = common::fresh_prefix();
    let url = cluster.url(&format!("replicas=3&prefix={prefix}&request_timeout=2s"));
    let store = Arc::new(JetStreamStore::connect(&url).await.unwrap());
    let js = jetstream::new(store.client().clone());
    let jobs = WorkQueueChannel::new("jobs")
        .claim_timeout(LEASE)
        .store(store.clone())
        .build();
    jobs.start().await.unwrap();
    let results = BroadcastChannel::new("results")
        .store(store.clone())
        .build();
    results.start().await.unwrap();
    let mut dashboard = results.subscribe("dashboard").await.unwrap();
    let pushed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let pushed_seqs: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (seen, seqs) = (pushed.clone(), pushed_seqs.clone());
    let follow = tokio::spawn(async move {
        while let Some(entry) = dashboard.next().await {
            seen.lock().unwrap().insert(entry.message.id.clone());
            seqs.lock().unwrap().push(entry.seq);
        }
    });

    let lease = LEASE.as_millis().to_string();
    let mut workers: Vec<Worker> = (1..=3)
        .map(|i| {
            Worker::spawn(
                &url,
                &format!("w{i}"),
                &prefix,
                "jobs",
                &[
                    "--lease-ms",
                    &lease,
                    "--batch",
                    "5",
                    "--work-ms",
                    "2",
                    "--results",
                    "results",
                ],
            )
        })
        .collect();

    let log: Arc<Mutex<Ingested>> = Arc::default();
    let ingestor = tokio::spawn(ingest(jobs.clone(), log.clone()));
    wait_confirmed(&log, FAULT_AFTER).await;

    let stream = store.stream_name("jobs");
    let (leader, _) = stream_leader(&js, &stream)
        .await
        .expect("jobs stream leader");
    let victim = match fault {
        Fault::LeaderKill => cluster.index_of(&leader).expect("leader is a node"),
        Fault::NodeRestart => (0..3)
            .find(|&i| cluster.nodes[i].name != leader)
            .expect("a follower"),
    };
    let victim_name = cluster.nodes[victim].name.clone();
    let killed_ms = now_ms();
    let killed_at = Instant::now();
    cluster.kill(victim);
    let mut new_leader_after = None;
    if fault == Fault::LeaderKill {
        wait_healthy_leader(&js, &stream, &victim_name).await;
        new_leader_after = Some(killed_at.elapsed());
    }
    tokio::time::sleep(match fault {
        Fault::NodeRestart => Duration::from_secs(3),
        Fault::LeaderKill => Duration::from_secs(5),
    })
    .await;
    cluster.restart(victim);
    let restarted_at = Instant::now();

    ingestor.await.expect("the ingestor finished");
    let confirmed: Vec<(String, u128)> = log.lock().unwrap().confirmed.clone();
    let failed_attempts = log.lock().unwrap().failed_attempts;
    let want: HashSet<String> = confirmed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(want.len(), JOBS, "every job was confirmed once");

    // Every confirmed job gets its result; the queue drains.
    let want_results: HashSet<String> = want.iter().map(|id| format!("r-{id}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delivered: HashSet<String> = HashSet::new();
    loop {
        match results.read("audit", 1000).await {
            Ok(batch) => delivered.extend(batch.iter().map(|m| m.id.clone())),
            Err(e) => eprintln!("audit read: {e}"),
        }
        let drained = jobs.stats().await.is_ok_and(|s| s.stored == 0);
        if drained && want_results.is_subset(&delivered) {
            break;
        }
        if Instant::now() >= deadline {
            let missing: Vec<_> = want_results.difference(&delivered).take(5).collect();
            let s = jobs.stats().await;
            panic!(
                "{test}: {} confirmed jobs without a result after 60 s (e.g. {missing:?}); jobs: {s:?}",
                want_results.difference(&delivered).count()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_healthy(&js, &stream, None, Duration::from_secs(30)).await;
    let caught_up = restarted_at.elapsed();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !want_results.is_subset(&pushed.lock().unwrap()) {
        if Instant::now() >= deadline {
            let seqs = pushed_seqs.lock().unwrap().clone();
            let gaps: Vec<(u64, u64)> = seqs
                .windows(2)
                .filter(|w| w[1] != w[0] + 1)
                .map(|w| (w[0], w[1]))
                .collect();
            let all = results.stats().await.map(|s| s.head_seq);
            panic!(
                "{test}: the dashboard's subscription missed {} results; it got {} entries, \
                 last seq {:?}, jumps {gaps:?}; the stream's head {all:?}",
                want_results.difference(&pushed.lock().unwrap()).count(),
                seqs.len(),
                seqs.last(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follow.abort();

    let mut lines = Vec::new();
    for w in &mut workers {
        lines.extend(w.kill());
    }
    // Per job: when it was claimed, acked (with a reply), or its ack failed.
    let mut claimed: HashMap<&str, Vec<u128>> = HashMap::new();
    let mut acked: HashMap<&str, u128> = HashMap::new();
    let mut ack_failed: HashSet<&str> = HashSet::new();
    for line in &lines {
        let Some((event, id, _, at)) = parse(line) else {
            continue;
        };
        match event {
            "CLAIMED" => claimed.entry(id).or_default().push(at),
            "ACKED" => {
                let first = acked.entry(id).or_insert(at);
                *first = (*first).min(at);
            }
            "ACKFAIL" => {
                ack_failed.insert(id);
            }
            _ => {}
        }
    }
    let mut redelivered_acked = Vec::new();
    let mut redelivered_after_failed_ack = 0;
    for (id, times) in &claimed {
        let Some(&acked_at) = acked.get(id) else {
            continue;
        };
        if times.iter().any(|&t| t > acked_at) {
            if ack_failed.contains(id) {
                redelivered_after_failed_ack += 1;
            } else {
                redelivered_acked.push(*id);
            }
        }
    }
    let claims: usize = claimed.values().map(Vec::len).sum();
    let redeliveries = claims - claimed.len();
    // Recovery: the first confirmed write and the first acknowledgement after the kill.
    let first_write = confirmed
        .iter()
        .map(|(_, at)| *at)
        .filter(|&at| at > killed_ms)
        .min();
    let first_ack = acked.values().copied().filter(|&at| at > killed_ms).min();
    let since = |at: Option<u128>| at.map(|at| Duration::from_millis((at - killed_ms) as u64));
    println!(
        "cluster ({}, R3, {fault:?}, killed {victim_name}{}): {} confirmed writes, {} failed write attempts (retried), \
         0 lost; {} results delivered and pushed; {claims} claims, {redeliveries} redeliveries, \
         {} acked-then-redelivered, {} ack(s) without reply ({redelivered_after_failed_ack} redelivered); \
         new leader after {:?}, first write after {:?}, first ack after {:?}; restarted node current {:?} after its restart",
        release.label(),
        if victim_name == leader {
            ", the stream leader"
        } else {
            ""
        },
        confirmed.len(),
        failed_attempts,
        delivered.len(),
        redelivered_acked.len(),
        ack_failed.len(),
        new_leader_after,
        since(first_write),
        since(first_ack),
        caught_up,
    );
    assert!(
        redelivered_acked.is_empty(),
        "{test}: jobs claimed again after an acknowledgement that got its reply: {redelivered_acked:?}"
    );
    let stats = jobs.stats().await.unwrap();
    assert_eq!(stats.stored, 0, "{stats:?}");
    store.delete_all().await.unwrap();
}

/// Waits until the stream reports a leader other than `old`.
async fn wait_healthy_leader(js: &jetstream::Context, stream: &str, old: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((leader, _)) = stream_leader(js, stream).await
            && leader != old
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader for {stream} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn node_killed_and_restarted(release: Release) {
    pipeline_under_fault(release, Fault::NodeRestart).await;
}

async fn stream_leader_killed(release: Release) {
    pipeline_under_fault(release, Fault::LeaderKill).await;
}

on_each_release!(node_killed_and_restarted, stream_leader_killed);
