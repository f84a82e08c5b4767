//! `workqueue`: a work queue on the memory store. One producer writes N small JSON
//! messages one by one; then 3 consumers drain it, each claiming 10 at a time and acking
//! every batch (with the next claim in the same call, `ack_and_claim`). Figures: messages/s end to end (write + drain), and writes/s alone.
//!
//! Baseline: the same pattern on a raw `tokio::sync::mpsc` channel (capacity N, so sends
//! never wait, like appends to the store): the producer sends a clone of the same
//! `serde_json::Value` per message; 3 consumers share the receiver behind a mutex and take
//! up to 10 at a time with `recv_many`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::Value;
use sssn::channel::WorkQueueChannel;
use tokio::sync::{Mutex, mpsc};

use super::{Config, paired, record, secs};
use crate::report::{Better, Figure, Goal, Outcome};

/// Seconds spent writing and draining.
#[derive(Clone, Copy, Debug)]
struct Timing {
    write: f64,
    drain: f64,
}

const CONSUMERS: usize = 3;
const CLAIM: usize = 10;
/// Repetitions inside one run, so a run lasts long enough (≈ 0.1 s) to average out a
/// scheduler time slice taken by another process.
const REPS: usize = 5;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let n = cfg.size(20_000, 5_000);
    let values: Arc<Vec<Value>> = Arc::new((0..n).map(record).collect());
    let (ours, base) = paired(
        "workqueue",
        cfg.runs,
        || reps(values.clone(), true),
        || reps(values.clone(), false),
    )
    .await?;
    let e2e = |t: &[Timing]| -> Vec<f64> {
        t.iter()
            .map(|t| (n * REPS) as f64 / (t.write + t.drain))
            .collect()
    };
    let writes =
        |t: &[Timing]| -> Vec<f64> { t.iter().map(|t| (n * REPS) as f64 / t.write).collect() };
    let mpsc_what = "raw tokio::sync::mpsc, same pattern (3 consumers, recv_many 10)";
    Ok(vec![
        Figure::new("workqueue", "msgs/s", Better::Higher)
            .ours(e2e(&ours))
            .baseline(mpsc_what, e2e(&base))
            // Issue 2's floor, then issue 16's goal.
            .goal(Goal::RatioAtLeast(0.2))
            .goal(Goal::RatioAtLeast(0.5))
            .note(format!(
                "{n} small JSON messages written one by one, then drained by {CONSUMERS} consumers claiming {CLAIM} and acking each batch (memory store); {REPS} times per run"
            ))
            .into(),
        Figure::new("workqueue/writes", "msgs/s", Better::Higher)
            .ours(writes(&ours))
            .baseline("tokio mpsc send of the same serde_json::Value", writes(&base))
            .note("the write phase of the figure above alone")
            .into(),
    ])
}

/// `REPS` repetitions of ours (or the baseline), times summed.
async fn reps(values: Arc<Vec<Value>>, sssn: bool) -> anyhow::Result<Timing> {
    let mut sum = Timing {
        write: 0.0,
        drain: 0.0,
    };
    for _ in 0..REPS {
        let t = if sssn {
            ours(values.clone()).await?
        } else {
            baseline(values.clone()).await?
        };
        sum.write += t.write;
        sum.drain += t.drain;
    }
    Ok(sum)
}

async fn ours(values: Arc<Vec<Value>>) -> anyhow::Result<Timing> {
    let queue = WorkQueueChannel::new("bench-workqueue").build();
    queue.start().await?;
    let t = Instant::now();
    for v in values.iter() {
        queue.write("producer", v).await?;
    }
    let write = secs(t);
    let t = Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..CONSUMERS {
        let queue = queue.clone();
        let acked = acked.clone();
        tasks.spawn(async move {
            let me = format!("worker-{k}");
            let mut claimed = queue.claim(me.as_str(), CLAIM).await?;
            while !claimed.is_empty() {
                // Acked by the claimed items themselves, as a consumer would (no copies of
                // the ids: the baseline copies nothing either), with the next claim in the
                // same call, the loop `ack_and_claim` is for.
                let (settled, next) = queue.ack_and_claim(me.as_str(), &claimed, CLAIM).await?;
                acked.fetch_add(settled.done.len(), Ordering::Relaxed);
                claimed = next;
            }
            Ok::<_, sssn::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("consumer task")??;
    }
    let drain = secs(t);
    queue.stop().await;
    let acked = acked.load(Ordering::Relaxed);
    ensure!(
        acked == values.len(),
        "acked {acked} of {} messages",
        values.len()
    );
    Ok(Timing { write, drain })
}

async fn baseline(values: Arc<Vec<Value>>) -> anyhow::Result<Timing> {
    let (tx, rx) = mpsc::channel::<Value>(values.len());
    let t = Instant::now();
    for v in values.iter() {
        tx.send(v.clone()).await?;
    }
    let write = secs(t);
    drop(tx);
    let t = Instant::now();
    let rx = Arc::new(Mutex::new(rx));
    let taken = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONSUMERS {
        let rx = rx.clone();
        let taken = taken.clone();
        tasks.spawn(async move {
            let mut batch = Vec::with_capacity(CLAIM);
            loop {
                let n = rx.lock().await.recv_many(&mut batch, CLAIM).await;
                if n == 0 {
                    return;
                }
                // "Ack": the batch is consumed.
                taken.fetch_add(
                    std::hint::black_box(&mut batch).drain(..).count(),
                    Ordering::Relaxed,
                );
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("consumer task")?;
    }
    let drain = secs(t);
    let taken = taken.load(Ordering::Relaxed);
    ensure!(
        taken == values.len(),
        "took {taken} of {} messages",
        values.len()
    );
    Ok(Timing { write, drain })
}
