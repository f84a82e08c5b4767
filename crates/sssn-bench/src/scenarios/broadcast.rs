//! `broadcast`: fan-out. A broadcast channel (memory store, default subscriber capacity)
//! with 10 subscribers; one producer writes N small JSON messages one by one; the figure
//! is deliveries/s (10 × N over the time until the last subscriber has every message).
//! Subscribers that fall behind the feed catch up from the store, so every message is
//! delivered.
//!
//! Baseline: a raw `tokio::sync::broadcast` channel with 10 receivers and capacity N (so
//! no receiver lags and loses messages); the producer sends `Arc::new(value.clone())`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::Value;
use sssn::channel::BroadcastChannel;
use tokio::sync::broadcast;

use super::{Config, paired, record, secs};
use crate::report::{Better, Figure, Goal, Outcome};

const SUBSCRIBERS: usize = 10;
/// Repetitions inside one run (see `workqueue`).
const REPS: usize = 5;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let n = cfg.size(20_000, 5_000);
    let values: Arc<Vec<Value>> = Arc::new((0..n).map(record).collect());
    let (ours, base) = paired(
        "broadcast",
        cfg.runs,
        || reps(values.clone(), true),
        || reps(values.clone(), false),
    )
    .await?;
    Ok(vec![
        Figure::new("broadcast", "deliveries/s", Better::Higher)
            .ours(ours)
            .baseline(
                format!("raw tokio::sync::broadcast, {SUBSCRIBERS} receivers, capacity {n}"),
                base,
            )
            // Issue 16's goal.
            .goal(Goal::RatioAtLeast(0.6))
            .note(format!(
                "{SUBSCRIBERS} subscribers, {n} messages written one by one; every subscriber gets every message; {REPS} times per run"
            ))
            .into(),
    ])
}

/// `REPS` repetitions; deliveries over the summed time.
async fn reps(values: Arc<Vec<Value>>, sssn: bool) -> anyhow::Result<f64> {
    let (mut delivered, mut secs) = (0, 0.0);
    for _ in 0..REPS {
        let (d, s) = if sssn {
            ours(values.clone()).await?
        } else {
            baseline(values.clone()).await?
        };
        delivered += d;
        secs += s;
    }
    Ok(delivered as f64 / secs)
}

async fn ours(values: Arc<Vec<Value>>) -> anyhow::Result<(usize, f64)> {
    let n = values.len();
    let feed = BroadcastChannel::new("bench-broadcast").build();
    feed.start().await?;
    let mut tasks = super::count_deliveries(&feed, SUBSCRIBERS, n).await?;
    let t = Instant::now();
    for v in values.iter() {
        feed.write("producer", v).await?;
    }
    let mut delivered = 0;
    while let Some(r) = tasks.join_next().await {
        delivered += r.context("subscriber task")?;
    }
    let elapsed = secs(t);
    feed.stop().await;
    ensure!(
        delivered == n * SUBSCRIBERS,
        "delivered {delivered} of {}",
        n * SUBSCRIBERS
    );
    Ok((delivered, elapsed))
}

async fn baseline(values: Arc<Vec<Value>>) -> anyhow::Result<(usize, f64)> {
    let n = values.len();
    let (tx, _) = broadcast::channel::<Arc<Value>>(n);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SUBSCRIBERS {
        let mut rx = tx.subscribe();
        tasks.spawn(async move {
            let mut got = 0;
            while got < n {
                match rx.recv().await {
                    Ok(v) => {
                        std::hint::black_box(v);
                        got += 1;
                    }
                    Err(_) => break,
                }
            }
            got
        });
    }
    let t = Instant::now();
    for v in values.iter() {
        tx.send(Arc::new(v.clone()))
            .map_err(|_| anyhow::anyhow!("no receivers"))?;
    }
    let mut delivered = 0;
    while let Some(r) = tasks.join_next().await {
        delivered += r.context("receiver task")?;
    }
    let elapsed = secs(t);
    ensure!(
        delivered == n * SUBSCRIBERS,
        "delivered {delivered} of {}",
        n * SUBSCRIBERS
    );
    Ok((delivered, elapsed))
}
