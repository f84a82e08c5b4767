//! `shared-reads`: cursor readers catching up. A passthrough channel (memory store) holds
//! N messages; 5 new readers, concurrently, each read the whole channel from their own
//! cursor, `limit` 100 per read. The figure is messages read per second, all readers
//! together.
//!
//! Baseline: the same messages (`Arc<ChannelMessage>`) in a plain `Vec`, read by 5 tasks
//! by index, 100 at a time, each batch cloned into a new `Vec` as a read returns it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use sssn::channel::PassthroughChannel;
use sssn::{ChannelMessage, Payload};

use super::{Config, paired, progress, record, secs};
use crate::report::{Better, Figure, Outcome};

const READERS: usize = 5;
const LIMIT: usize = 100;
/// Repetitions inside one run (see `workqueue`): new readers each time.
const REPS: usize = 10;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let n = cfg.size(50_000, 10_000);
    let channel = PassthroughChannel::new("bench-shared-reads").build();
    channel.start().await?;
    for from in (0..n).step_by(1_000) {
        let batch = (from..(from + 1_000).min(n))
            .map(|i| Payload::Data(record(i)))
            .collect();
        channel.write_batch("producer", batch).await?;
    }
    let messages: Arc<Vec<Arc<ChannelMessage>>> = Arc::new(
        channel
            .entries_after("admin", 0, n)
            .await?
            .into_iter()
            .map(|e| e.message)
            .collect(),
    );
    ensure!(messages.len() == n, "stored {} of {n}", messages.len());
    progress("shared-reads", format_args!("{n} messages stored"));
    let mut round = 0;
    let (ours, base) = paired(
        "shared-reads",
        cfg.runs,
        || {
            round += 1;
            let (channel, round) = (channel.clone(), round);
            async move {
                let mut secs = 0.0;
                for rep in 0..REPS {
                    secs += ours(channel.clone(), round * REPS + rep, n).await?;
                }
                anyhow::Ok((n * READERS * REPS) as f64 / secs)
            }
        },
        || {
            let messages = messages.clone();
            async move {
                let mut secs = 0.0;
                for _ in 0..REPS {
                    secs += baseline(messages.clone()).await?;
                }
                anyhow::Ok((n * READERS * REPS) as f64 / secs)
            }
        },
    )
    .await?;
    channel.stop().await;
    Ok(vec![
        Figure::new("shared-reads", "msgs/s", Better::Higher)
            .ours(ours)
            .baseline(format!("{READERS} tasks reading a Vec by index, {LIMIT} at a time"), base)
            .note(format!(
                "{READERS} new cursor readers each read all {n} messages, limit {LIMIT} (passthrough channel, memory store); {REPS} times per run"
            ))
            .into(),
    ])
}

async fn ours(channel: PassthroughChannel, round: usize, n: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..READERS {
        let channel = channel.clone();
        tasks.spawn(async move {
            let me = format!("reader-{round}-{k}");
            let mut got = 0;
            loop {
                let batch = channel.read(me.as_str(), LIMIT).await?;
                if batch.is_empty() {
                    return Ok::<_, sssn::Error>(got);
                }
                got += batch.len();
            }
        });
    }
    let mut read = 0;
    while let Some(r) = tasks.join_next().await {
        read += r.context("reader task")??;
    }
    let elapsed = secs(t);
    ensure!(read == n * READERS, "read {read} of {}", n * READERS);
    Ok(elapsed)
}

async fn baseline(messages: Arc<Vec<Arc<ChannelMessage>>>) -> anyhow::Result<f64> {
    let n = messages.len();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..READERS {
        let messages = messages.clone();
        tasks.spawn(async move {
            let mut cursor = 0;
            let mut got = 0;
            loop {
                let end = (cursor + LIMIT).min(messages.len());
                let batch: Vec<Arc<ChannelMessage>> = messages[cursor..end].to_vec();
                if batch.is_empty() {
                    return got;
                }
                got += std::hint::black_box(batch).len();
                cursor = end;
            }
        });
    }
    let mut read = 0;
    while let Some(r) = tasks.join_next().await {
        read += r.context("reader task")?;
    }
    let elapsed = secs(t);
    ensure!(read == n * READERS, "read {read} of {}", n * READERS);
    Ok(elapsed)
}
