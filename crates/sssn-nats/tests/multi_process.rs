//! Three worker processes share one work queue; one is killed (SIGKILL) while it holds
//! claims. Every message is processed and acknowledged exactly once; a message is
//! processed twice only after its lease expired (the second processing is a redelivery,
//! attempt >= 2, of a claim the killed worker never acknowledged). When the kill lands
//! while the killed worker's ack is on its way (after `ACKING`, before `ACKED`), that ack
//! may have reached the server: the message is then consumed without an `ACKED` line, and
//! counts as acknowledged by the killed worker.

mod common;

use common::Release;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::worker::{Worker, parse};

use serde_json::json;
use sssn::Payload;
use sssn::channel::WorkQueueChannel;

const MESSAGES: usize = 120;
const LEASE: Duration = Duration::from_secs(1);

async fn three_workers_one_killed_mid_claim(release: Release) {
    let Some(ts) = common::store_of(release, "three_workers_one_killed_mid_claim").await else {
        return;
    };
    let prefix = ts.store.options().prefix.clone();
    let jobs = WorkQueueChannel::new("jobs")
        .claim_timeout(LEASE)
        .store(ts.store.clone())
        .build();
    jobs.start().await.unwrap();
    let ids: HashSet<String> = jobs
        .write_batch(
            "producer",
            (0..MESSAGES)
                .map(|i| Payload::Data(json!({ "n": i })))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids.len(), MESSAGES);

    let mut workers: Vec<Worker> = (0..3)
        .map(|i| {
            Worker::spawn(
                &ts.url,
                &format!("w{i}"),
                &prefix,
                "jobs",
                &[
                    "--lease-ms",
                    &LEASE.as_millis().to_string(),
                    "--batch",
                    "4",
                    "--work-ms",
                    "30",
                ],
            )
        })
        .collect();

    // Kill w0 right after it reports processing its third message: it then holds claims
    // it has not acknowledged (the rest of its batch, and the message it is working on).
    let deadline = Instant::now() + Duration::from_secs(30);
    while workers[0].count("PROCESSED") < 3 {
        assert!(Instant::now() < deadline, "w0 never got to work");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed = workers[0].kill();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = jobs.stats().await.unwrap();
        if s.stored == 0 && s.in_flight == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all: Vec<(usize, String)> = killed.into_iter().map(|l| (0, l)).collect();
    for (i, w) in workers.iter_mut().enumerate().skip(1) {
        all.extend(w.kill().into_iter().map(|l| (i, l)));
    }

    let mut acked: HashMap<&str, usize> = HashMap::new();
    let mut processed: HashMap<&str, Vec<(usize, u32)>> = HashMap::new();
    let mut claimed_by_killed: HashSet<&str> = HashSet::new();
    let mut acked_by_killed: HashSet<&str> = HashSet::new();
    let mut stale: HashSet<(usize, &str)> = HashSet::new();
    for (worker, line) in &all {
        let Some((event, id, attempt, _)) = parse(line) else {
            continue;
        };
        match event {
            "ACKED" => {
                *acked.entry(id).or_default() += 1;
                if *worker == 0 {
                    acked_by_killed.insert(id);
                }
            }
            "PROCESSED" => processed.entry(id).or_default().push((*worker, attempt)),
            "STALE" => {
                stale.insert((*worker, id));
            }
            "CLAIMED" if *worker == 0 => {
                claimed_by_killed.insert(id);
            }
            _ => {}
        }
    }

    let last_of_killed = all.iter().rev().find(|(w, _)| *w == 0).map(|(_, l)| l);
    let ack_in_flight = last_of_killed
        .and_then(|l| parse(l))
        .filter(|(event, _, _, _)| *event == "ACKING")
        .map(|(_, id, _, _)| id);
    let mut consumed_by_last_ack = false;
    if let Some(id) = ack_in_flight
        && !acked.contains_key(id)
    {
        consumed_by_last_ack = true;
        // The queue drained without anybody acknowledging it: the killed worker's ack
        // reached the server, so nobody else may have got it.
        assert!(
            processed[id].iter().all(|&(worker, _)| worker == 0),
            "{id} was consumed by the killed worker's last ack, yet redelivered: {:?}",
            processed[id]
        );
        acked.insert(id, 1);
        acked_by_killed.insert(id);
    }
    for id in &ids {
        assert_eq!(
            acked.get(id.as_str()).copied().unwrap_or(0),
            1,
            "message {id} must be acknowledged exactly once; processed by (worker, attempt) {:?}; the killed worker's last line: {last_of_killed:?}",
            processed.get(id.as_str())
        );
    }
    let orphaned: Vec<&&str> = claimed_by_killed.difference(&acked_by_killed).collect();
    assert!(
        !orphaned.is_empty(),
        "the killed worker held unacknowledged claims"
    );
    for id in &orphaned {
        let redelivered = processed[**id]
            .iter()
            .any(|&(worker, attempt)| worker != 0 && attempt >= 2);
        assert!(
            redelivered,
            "{id}, claimed by the killed worker, was redelivered after its lease"
        );
    }
    let mut duplicates = 0;
    for (id, runs) in &processed {
        if runs.len() > 1 {
            duplicates += runs.len() - 1;
            let first = runs[0];
            assert!(
                first.0 == 0 || stale.contains(&(first.0, id)),
                "{id}: only work whose claim was lost (killed worker, expired lease) is redone: {runs:?}"
            );
            assert!(
                runs[1..].iter().all(|&(_, attempt)| attempt >= 2),
                "{id} was processed again without a lease expiry: {runs:?}"
            );
        }
    }
    println!(
        "multi-process: {MESSAGES} messages, 3 workers, w0 killed holding {} unacknowledged claim(s); {duplicates} duplicate processing(s), all after a lease expiry{}",
        orphaned.len(),
        if consumed_by_last_ack {
            "; w0 was killed during an ack that reached the server"
        } else {
            ""
        }
    );
}

on_each_release!(three_workers_one_killed_mid_claim);
