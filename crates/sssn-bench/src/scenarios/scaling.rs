//! `scaling`: does claim + ack stay flat as history grows? A work queue (memory store,
//! default `claim_timeout`) first has H messages pass through it (written in batches of
//! 1,000, claimed and acked); then M fresh messages are written (not timed) and drained
//! by one consumer claiming 10 and acking each batch. The figure is the drain time per
//! message, in µs.
//!
//! Baseline: the same measurement on a fresh queue with no history. The ratio is
//! cost at 0 / cost at H (1.0 = flat; the issue asks for ≥ 1 / 1.5).

use std::time::Instant;

use anyhow::ensure;
use sssn::Payload;
use sssn::channel::WorkQueueChannel;

use super::{Config, label, progress, record};
use crate::report::{Better, Figure, Goal, Outcome};

const BATCH: usize = 1_000;
const CLAIM: usize = 10;
/// Measurements averaged in one run (see `workqueue`).
const REPS: usize = 3;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let histories: &[usize] = if cfg.quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let m = cfg.size(10_000, 2_000);
    let mut out = Vec::new();
    for &h in histories {
        // Refilling small histories each run keeps them at H; the largest one is filled
        // once (each run adds only M to it).
        let reuse = h >= 1_000_000;
        let mut kept: Option<WorkQueueChannel> = None;
        if reuse {
            progress("scaling", format_args!("passing {h} messages through…"));
            let t = Instant::now();
            kept = Some(queue_with_history(h).await?);
            progress(
                "scaling",
                format_args!("…done in {:.1} s", t.elapsed().as_secs_f64()),
            );
        }
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for i in 0..cfg.runs {
            let (mut a, mut b) = (0.0, 0.0);
            for rep in 0..REPS {
                let fresh = queue_with_history(0).await?;
                let aged = match &kept {
                    Some(q) => q.clone(),
                    None => queue_with_history(h).await?,
                };
                if (i + rep) % 2 == 0 {
                    b += claim_ack_cost(&fresh, m).await?;
                    a += claim_ack_cost(&aged, m).await?;
                } else {
                    a += claim_ack_cost(&aged, m).await?;
                    b += claim_ack_cost(&fresh, m).await?;
                }
                fresh.stop().await;
                if !reuse {
                    aged.stop().await;
                }
            }
            ours.push(a / REPS as f64);
            base.push(b / REPS as f64);
            progress(
                "scaling",
                format_args!(
                    "history {h}, run {}/{}: {:.3} µs/msg (empty queue {:.3})",
                    i + 1,
                    cfg.runs,
                    ours[i],
                    base[i]
                ),
            );
        }
        if let Some(q) = kept {
            q.stop().await;
        }
        let mut fig = Figure::new(format!("scaling/{}", label(h)), "µs/msg", Better::Lower)
            .ours(ours)
            .baseline("same queue with no history", base)
            .note(format!(
                "claim {CLAIM} + ack per batch, {m} messages, after {h} messages passed through; mean of {REPS} per run"
            ));
        if h >= 1_000_000 {
            fig = fig.goal(Goal::RatioAtLeast(1.0 / 1.5));
        }
        out.push(fig.into());
    }
    Ok(out)
}

fn payloads(from: usize, n: usize) -> Vec<Payload> {
    (from..from + n).map(|i| Payload::Data(record(i))).collect()
}

/// A started work queue through which `history` messages have passed (written, claimed,
/// acknowledged).
async fn queue_with_history(history: usize) -> anyhow::Result<WorkQueueChannel> {
    let queue = WorkQueueChannel::new("bench-scaling").build();
    queue.start().await?;
    let mut done = 0;
    while done < history {
        let n = BATCH.min(history - done);
        queue.write_batch("producer", payloads(done, n)).await?;
        let claimed = queue.claim("drainer", n).await?;
        let ids: Vec<String> = claimed.iter().map(|c| c.message.id.clone()).collect();
        let acked = queue.ack("drainer", &ids).await?.done.len();
        ensure!(acked == n, "history: acked {acked} of {n}");
        done += n;
    }
    Ok(queue)
}

/// Writes `m` messages (not timed), then times claim 10 + ack until drained; µs per message.
async fn claim_ack_cost(queue: &WorkQueueChannel, m: usize) -> anyhow::Result<f64> {
    let mut written = 0;
    while written < m {
        let n = BATCH.min(m - written);
        queue.write_batch("producer", payloads(written, n)).await?;
        written += n;
    }
    let t = Instant::now();
    let mut acked = 0;
    loop {
        let claimed = queue.claim("worker", CLAIM).await?;
        if claimed.is_empty() {
            break;
        }
        let ids: Vec<String> = claimed.iter().map(|c| c.message.id.clone()).collect();
        acked += queue.ack("worker", &ids).await?.done.len();
    }
    let elapsed = t.elapsed();
    ensure!(acked == m, "acked {acked} of {m}");
    Ok(elapsed.as_secs_f64() * 1e6 / m as f64)
}
