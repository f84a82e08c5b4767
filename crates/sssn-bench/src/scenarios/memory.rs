//! `memory`: bytes per stored small message. Each measurement runs in a child process
//! (this binary re-executed with the hidden `__memory-child` subcommand) on a
//! current-thread runtime: it reads its resident set size (RSS), stores N small JSON
//! messages, reads the RSS again, and prints the difference divided by N.
//!
//! Ours: N messages (200,000, and 1,000,000 for the work queue) written in batches of
//! 1,000 to a work queue (backlog, unclaimed) or a broadcast channel, memory store. Baseline: the same `serde_json::Values` pushed into a
//! plain `Vec` (ratio = baseline / ours; the goal is ours ≤ 400 bytes).
//!
//! Also: what stays in memory per message that passed through a work queue (written,
//! claimed and acknowledged in batches of 1,000, default `claim_timeout`); acknowledged
//! messages should leave memory, so this should be close to 0.

use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use sssn::Payload;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};

use super::{Config, label, progress, record};
use crate::machine::rss_bytes;
use crate::report::{Better, Figure, Goal, Outcome};

/// The hidden subcommand that runs one measurement.
pub const CHILD: &str = "__memory-child";

/// Indexes of the measurements in the plan below.
const WQ: usize = 0;
const BROADCAST: usize = 1;
const VEC: usize = 2;
const ACKED: usize = 3;
const WQ_LARGE: usize = 4;
const VEC_LARGE: usize = 5;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let n = cfg.size(200_000, 50_000);
    // A second, larger backlog: the per-message figure moves with where the store's
    // growable buffers are in their doubling.
    let large = cfg.size(1_000_000, 0);
    let mut plan = vec![
        ("work-queue", n),
        ("broadcast", n),
        ("vec", n),
        ("acked", n),
    ];
    if large > 0 {
        plan.extend([("work-queue", large), ("vec", large)]);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); plan.len()];
    for i in 0..cfg.runs {
        // Rotate the order so no kind always runs first.
        for j in 0..plan.len() {
            let k = (i + j) % plan.len();
            let (kind, count) = plan[k];
            let bytes = tokio::task::spawn_blocking(move || measure_in_child(kind, count))
                .await
                .context("child task")??;
            samples[k].push(bytes);
        }
        progress(
            "memory",
            format_args!(
                "run {}/{}: work queue {:.0}, broadcast {:.0}, Vec {:.0}, acknowledged {:.1} bytes/msg",
                i + 1,
                cfg.runs,
                samples[WQ][i],
                samples[BROADCAST][i],
                samples[VEC][i],
                samples[ACKED][i]
            ),
        );
    }
    let vec_what = "the same serde_json::Values in a plain Vec";
    let content = (0..n)
        .map(|i| sssn::Content::data(&record(i)).map(|c| c.json().len()))
        .sum::<sssn::Result<usize>>()? as f64
        / n as f64;
    let mut out: Vec<Outcome> = vec![
        Figure::new("memory", "bytes/msg", Better::Lower)
            .ours(samples[WQ].clone())
            .baseline(vec_what, samples[VEC].clone())
            .goal(Goal::AtMost(400.0))
            .note(format!(
                "RSS growth per message, {n} small JSON messages (stored content {content:.0} bytes each) in a work queue's backlog (memory store), measured in a child process"
            ))
            .into(),
        Figure::new("memory/broadcast", "bytes/msg", Better::Lower)
            .ours(samples[BROADCAST].clone())
            .baseline(vec_what, samples[VEC].clone())
            .note(format!("the same {n} messages in a broadcast channel"))
            .into(),
        Figure::new("memory/acked", "bytes/msg", Better::Lower)
            .ours(samples[ACKED].clone())
            .note(format!(
                "RSS growth per message after {n} messages passed through a work queue (written, claimed, acknowledged; default claim_timeout), i.e. what acknowledged messages leave behind"
            ))
            .into(),
    ];
    if large > 0 {
        out.push(
            Figure::new(
                format!("memory/{}", label(large)),
                "bytes/msg",
                Better::Lower,
            )
            .ours(samples[WQ_LARGE].clone())
            .baseline(vec_what, samples[VEC_LARGE].clone())
            .goal(Goal::AtMost(400.0))
            .note(format!("as `memory`, with {large} messages in the backlog"))
            .into(),
        );
    }
    Ok(out)
}

/// Re-executes this binary as a child that stores `n` messages of `kind`; bytes/msg.
fn measure_in_child(kind: &str, n: usize) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let out = Command::new(exe)
        .args([CHILD, kind, &n.to_string()])
        .output()
        .context("running the memory child")?;
    ensure!(
        out.status.success(),
        "memory child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).context("memory child output")?;
    v["bytes_per_msg"]
        .as_f64()
        .context("memory child output has no bytes_per_msg")
}

/// The child: stores `n` messages of `kind` and prints `{"bytes_per_msg": …}`.
pub fn child(args: &[String]) -> anyhow::Result<()> {
    let [kind, n] = args else {
        bail!("usage: {CHILD} KIND N");
    };
    let n: usize = n.parse().context("N")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bytes = rt.block_on(async {
        // Warm up everything a first write initialises (clock, id generator, …) on a
        // throwaway channel, so the difference counts only the messages.
        let warm = WorkQueueChannel::new("warm-up").build();
        warm.start().await?;
        warm.write("producer", &record(0)).await?;
        warm.stop().await;
        drop(warm);
        let mut kept_vec: Vec<Value> = Vec::new();
        let before = rss_bytes().context("reading RSS")?;
        let channel = match kind.as_str() {
            "work-queue" | "acked" => Some(WorkQueueChannel::new("memory").build().erased()),
            "broadcast" => Some(BroadcastChannel::new("memory").build().erased()),
            "vec" => None,
            other => bail!("unknown kind '{other}'"),
        };
        match &channel {
            Some(ch) => {
                ch.start().await?;
                for from in (0..n).step_by(1_000) {
                    let batch = (from..(from + 1_000).min(n))
                        .map(|i| Payload::Data(record(i)))
                        .collect();
                    ch.write_batch("producer", batch).await?;
                    if kind == "acked" {
                        let claimed = ch.claim("worker", 1_000).await?;
                        let ids: Vec<String> =
                            claimed.iter().map(|c| c.message.id.clone()).collect();
                        let settled = ch.ack("worker", &ids).await?;
                        ensure!(settled.all_done(), "stale acks: {:?}", settled.stale);
                    }
                }
                let stored = ch.stats().await?.stored;
                let expected = if kind == "acked" { 0 } else { n as u64 };
                ensure!(stored == expected, "stored {stored}, expected {expected}");
            }
            None => kept_vec.extend((0..n).map(record)),
        }
        let after = rss_bytes().context("reading RSS")?;
        std::hint::black_box((&channel, &kept_vec));
        anyhow::Ok(after.saturating_sub(before) as f64 / n as f64)
    })?;
    println!("{}", serde_json::json!({ "bytes_per_msg": bytes }));
    Ok(())
}
