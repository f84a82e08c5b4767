//! The scenarios. Each measures one hot path of sssn and its baseline back to back,
//! `runs` times, alternating which goes first, and returns figures.

pub mod broadcast;
pub mod http;
pub mod memory;
pub mod nats;
pub mod peers;
pub mod scaling;
pub mod shared_reads;
pub mod sqlite;
pub mod systems;
pub mod workqueue;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::report::Outcome;

/// Every scenario, in the order they run.
pub const ALL: &[&str] = &[
    "workqueue",
    "scaling",
    "broadcast",
    "shared-reads",
    "memory",
    "sqlite",
    "http",
    "nats",
    "systems",
    "peers",
];

/// How big and how often.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Smaller sizes and fewer runs, for CI.
    pub quick: bool,
    /// Runs of each measurement and of its baseline.
    pub runs: usize,
}

impl Config {
    /// `full` normally, `quick` with `--quick`.
    pub fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

/// Longest a scenario may take before it is reported as failed (so a hang never stalls a
/// run, e.g. in CI). Default sizes take well under a minute each.
pub fn deadline(cfg: Config) -> Duration {
    Duration::from_secs(if cfg.quick { 300 } else { 900 })
}

/// Runs scenario `name`.
pub async fn run(name: &str, cfg: Config) -> Vec<Outcome> {
    match tokio::time::timeout(deadline(cfg), run_inner(name, cfg)).await {
        Ok(outcomes) => outcomes,
        Err(_) => vec![Outcome::Failed {
            scenario: name.to_owned(),
            error: format!("did not finish within {} s", deadline(cfg).as_secs()),
        }],
    }
}

async fn run_inner(name: &str, cfg: Config) -> Vec<Outcome> {
    let result = match name {
        "workqueue" => workqueue::run(cfg).await,
        "scaling" => scaling::run(cfg).await,
        "broadcast" => broadcast::run(cfg).await,
        "shared-reads" => shared_reads::run(cfg).await,
        "memory" => memory::run(cfg).await,
        "sqlite" => sqlite::run(cfg).await,
        "http" => http::run(cfg).await,
        "nats" => nats::run(cfg).await,
        "systems" => systems::run(cfg).await,
        "peers" => peers::run(cfg).await,
        other => Err(anyhow::anyhow!("unknown scenario '{other}'")),
    };
    result.unwrap_or_else(|e| {
        vec![Outcome::Failed {
            scenario: name.to_owned(),
            error: format!("{e:#}"),
        }]
    })
}

/// The small JSON message every scenario writes: a sensor reading such as
/// `{"id":12345,"sensor":"s1","value":22.4}` (about 40 bytes; 49 as stored content
/// `{"data":…}`).
pub fn record(i: usize) -> Value {
    // Tenths, so the value prints as written (22.4, not 22.400000000000002).
    json!({"id": i, "sensor": "s1", "value": (221 + 3 * (i % 10)) as f64 / 10.0})
}

/// Progress of a long scenario, on stderr.
pub fn progress(scenario: &str, what: impl std::fmt::Display) {
    eprintln!("[{scenario}] {what}");
}

/// Runs `ours` and `baseline` `runs` times each, back to back, alternating which goes
/// first; returns their samples.
pub async fn paired<T, A, B, FA, FB>(
    scenario: &str,
    runs: usize,
    mut ours: A,
    mut baseline: B,
) -> anyhow::Result<(Vec<T>, Vec<T>)>
where
    T: std::fmt::Debug,
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = anyhow::Result<T>>,
    FB: Future<Output = anyhow::Result<T>>,
{
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        if i % 2 == 0 {
            a.push(ours().await?);
            b.push(baseline().await?);
        } else {
            b.push(baseline().await?);
            a.push(ours().await?);
        }
        progress(
            scenario,
            format_args!(
                "run {}/{runs}: ours {:.3?}, baseline {:.3?}",
                i + 1,
                a[i],
                b[i]
            ),
        );
    }
    Ok((a, b))
}

/// A count for a figure name: `10k`, `1M`.
pub fn label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Seconds since `t`.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Subscribes `subscribers` readers to `feed`; each task counts deliveries until it has
/// seen `n` messages (or its subscription closes) and returns the count.
pub async fn count_deliveries(
    feed: &sssn::BroadcastChannel,
    subscribers: usize,
    n: usize,
) -> anyhow::Result<tokio::task::JoinSet<usize>> {
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..subscribers {
        let mut sub = feed.subscribe(format!("sub-{k}")).await?;
        tasks.spawn(async move {
            let mut got = 0;
            while got < n && sub.next().await.is_some() {
                got += 1;
            }
            got
        });
    }
    Ok(tasks)
}
