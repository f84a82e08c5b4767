//! `systems`: what the system runtime costs.
//!
//! * **CPU of idle systems**: a network of 1,000 systems ticking at 10/s with empty steps
//!   runs for a while; the figure is the process's CPU time (all threads,
//!   `CLOCK_PROCESS_CPUTIME_ID`) over the wall time of a measurement window, as % of
//!   one core. Reference (not a goal): 1,000 bare tokio tasks each ticking a
//!   `tokio::time::interval` of 100 ms, measured the same way.
//! * **Pipeline latency**: the data pipeline of the example (ingestor → work queue →
//!   3 workers ticking at 5/s and woken by new work (`wake_on`), claiming up to 3, 20 ms of
//!   simulated work each → broadcast → dashboard subscriber), with every record stamped
//!   along the way. Figures, p50 and p99 of each run: ingest → dashboard minus the
//!   simulated work the record waited for (its own 20 ms, and that of the records its
//!   worker claimed with it and processed before it), and, for context, ingest →
//!   dashboard with everything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::ensure;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sssn::channel::{BroadcastChannel, PeriodicChannel, WorkQueueChannel, source_fn};
use sssn::store::Entry;
use sssn::{Network, System, SystemContext, SystemSpec};

use super::{Config, progress};
use crate::machine::process_cpu_time;
use crate::report::{Better, Figure, Goal, Outcome, percentile};

const SYSTEMS: usize = 1_000;
const TICK_RATE: f64 = 10.0;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let window = Duration::from_secs_f64(if cfg.quick { 1.0 } else { 2.0 });
    ensure!(
        process_cpu_time().is_some(),
        "cannot read this process's CPU time from /proc"
    );
    let (mut ours, mut base, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..cfg.runs {
        let (a, b);
        if i % 2 == 0 {
            a = idle_systems_cpu(window).await?;
            b = bare_intervals_cpu(window).await?;
        } else {
            b = bare_intervals_cpu(window).await?;
            a = idle_systems_cpu(window).await?;
        }
        progress(
            "systems",
            format_args!(
                "run {}/{}: {SYSTEMS} systems {:.2}% of a core ({:.0} steps/s), bare intervals {:.2}%",
                i + 1,
                cfg.runs,
                a.0,
                a.1,
                b
            ),
        );
        ours.push(a.0);
        rates.push(a.1);
        base.push(b);
    }
    let rate = crate::report::median(&rates);
    let mut out: Vec<Outcome> = vec![
        Figure::new("systems/cpu-1000", "% of a core", Better::Lower)
            .ours(ours)
            .baseline(
                format!("{SYSTEMS} bare tokio tasks ticking a 100 ms interval"),
                base,
            )
            .goal(Goal::AtMost(5.0))
            .note(format!(
                "{SYSTEMS} systems with empty steps at {TICK_RATE}/s, CPU over a {:.0} s window; they achieved {rate:.0} steps/s (expected {:.0})",
                window.as_secs_f64(),
                SYSTEMS as f64 * TICK_RATE
            ))
            .into(),
    ];
    out.extend(pipeline(cfg).await?);
    Ok(out)
}

struct Idle;

#[async_trait]
impl System for Idle {}

/// % of one core used while 1,000 empty systems tick, and the steps/s they achieved.
async fn idle_systems_cpu(window: Duration) -> anyhow::Result<(f64, f64)> {
    let mut net = Network::new("bench-idle");
    for i in 0..SYSTEMS {
        net.add_system(SystemSpec::new(format!("s{i}")).tick_rate(TICK_RATE), Idle)?;
    }
    let running = net.start().await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // past start-up
    let steps = |r: &sssn::network::RunningNetwork| -> u64 {
        r.systems()
            .iter()
            .map(sssn::system::SystemHandle::steps)
            .sum()
    };
    let (s0, c0, t0) = (steps(&running), cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let (s1, c1, wall) = (steps(&running), cpu(), t0.elapsed());
    running.stop().await?;
    Ok((
        (c1 - c0) / wall.as_secs_f64() * 100.0,
        (s1 - s0) as f64 / wall.as_secs_f64(),
    ))
}

/// % of one core used while 1,000 bare tokio tasks tick a 100 ms interval.
async fn bare_intervals_cpu(window: Duration) -> anyhow::Result<f64> {
    let stop = tokio_util::sync::CancellationToken::new();
    let ticks = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SYSTEMS {
        let stop = stop.clone();
        let ticks = ticks.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / TICK_RATE));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => { ticks.fetch_add(1, Ordering::Relaxed); }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c0, t0) = (cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, wall) = (cpu(), t0.elapsed());
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok((c1 - c0) / wall.as_secs_f64() * 100.0)
}

fn cpu() -> f64 {
    process_cpu_time().map_or(f64::NAN, |d| d.as_secs_f64())
}

// ----- pipeline latency ----------------------------------------------------------------

/// Nanoseconds since the first call, on a monotonic clock shared by every task.
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    sensor: String,
    value: f64,
    ingested_ns: u64,
}

#[derive(Serialize, Deserialize)]
struct Processed {
    record_id: String,
    celsius: f64,
    fahrenheit: f64,
    worker: String,
    ingested_ns: u64,
    /// Simulated work this record waited for: its own, and that of the records claimed
    /// with it and processed before it.
    work_ns: u64,
}

/// One delivered record: (ingest → dashboard − simulated work, ingest → dashboard), ns.
type Sample = (u64, u64);

struct Worker;

#[async_trait]
impl System for Worker {
    async fn setup(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        // As in the example: claim as soon as work arrives, not only at the next tick.
        ctx.wake_on("raw-records").await
    }

    async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        let mut work_ns = 0;
        let (queue, out) = (ctx.work_queue("raw-records")?, ctx.broadcast("processed")?);
        for claimed in queue.claim(3).await? {
            let record: Record = claimed.message.data()?;
            let t = now_ns();
            tokio::time::sleep(Duration::from_millis(20)).await; // simulated work
            work_ns += now_ns() - t;
            let processed = Processed {
                record_id: record.id,
                celsius: record.value,
                fahrenheit: record.value * 9.0 / 5.0 + 32.0,
                worker: ctx.id().to_owned(),
                ingested_ns: record.ingested_ns,
                work_ns,
            };
            out.write(&processed).await?;
            queue.ack(&claimed).await?.into_result()?;
        }
        Ok(())
    }
}

struct Dashboard {
    samples: Arc<Mutex<Vec<Sample>>>,
}

#[async_trait]
impl System for Dashboard {
    async fn setup(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        ctx.subscribe("processed").await
    }

    async fn on_message(
        &mut self,
        _: &mut SystemContext,
        _: &str,
        entry: Entry,
    ) -> sssn::Result<()> {
        let now = now_ns();
        let p: Processed = entry.message.data()?;
        let all = now.saturating_sub(p.ingested_ns);
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((all.saturating_sub(p.work_ns), all));
        Ok(())
    }
}

/// Runs the pipeline once for `duration`; the samples of every delivered record and how
/// many records were ingested.
async fn pipeline_once(duration: Duration, period: Duration) -> anyhow::Result<(Vec<Sample>, u64)> {
    let mut net = Network::new("bench-pipeline");
    let queue = net.add_channel(
        WorkQueueChannel::new("raw-records")
            .claim_timeout(Duration::from_secs(30))
            .build(),
    )?;
    net.add_channel(BroadcastChannel::new("processed").build())?;
    let ingested = Arc::new(AtomicU64::new(0));
    let counter = ingested.clone();
    let source = source_fn(move || {
        let queue = queue.clone();
        let counter = counter.clone();
        async move {
            for i in 0..5 {
                let record = Record {
                    id: uuid::Uuid::new_v4().to_string(),
                    sensor: "s1".into(),
                    value: 22.1 + f64::from(i) * 0.3,
                    ingested_ns: now_ns(),
                };
                queue.write("ingestor", &record).await?;
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Vec::new())
        }
    });
    net.add_channel(
        PeriodicChannel::new("ingestor", source)
            .period(period)
            .build(),
    )?;
    for i in 1..=3 {
        net.add_system(
            SystemSpec::new(format!("worker-{i}"))
                .tick_rate(5.0)
                .reads(["raw-records"])
                .writes(["processed"]),
            Worker,
        )?;
    }
    let samples = Arc::new(Mutex::new(Vec::new()));
    net.add_system(
        SystemSpec::new("dashboard")
            .tick_rate(0.0)
            .reads(["processed"]),
        Dashboard {
            samples: samples.clone(),
        },
    )?;
    net.run_for(duration).await?;
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((samples, ingested.load(Ordering::Relaxed)))
}

async fn pipeline(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let duration = Duration::from_secs_f64(if cfg.quick { 1.5 } else { 3.0 });
    let period = Duration::from_millis(250);
    let ms = |ns: u64| ns as f64 / 1e6;
    let (mut net50, mut net99, mut all50, mut all99) = (vec![], vec![], vec![], vec![]);
    let mut delivered = 0;
    let mut ingested = 0;
    for i in 0..cfg.runs {
        let (samples, n) = pipeline_once(duration, period).await?;
        ensure!(!samples.is_empty(), "the dashboard received nothing");
        let net: Vec<f64> = samples.iter().map(|s| ms(s.0)).collect();
        let all: Vec<f64> = samples.iter().map(|s| ms(s.1)).collect();
        net50.push(percentile(&net, 0.5));
        net99.push(percentile(&net, 0.99));
        all50.push(percentile(&all, 0.5));
        all99.push(percentile(&all, 0.99));
        delivered += samples.len();
        ingested += n;
        progress(
            "systems",
            format_args!(
                "pipeline run {}/{}: {} records, ingest→dashboard minus simulated work p50 {:.3} ms p99 {:.3} ms; with it p50 {:.1} ms p99 {:.1} ms",
                i + 1,
                cfg.runs,
                samples.len(),
                net50[i],
                net99[i],
                all50[i],
                all99[i]
            ),
        );
    }
    let setup = format!(
        "{:.1} s runs, 5 records every {} ms, 3 workers claiming up to 3; {delivered} of {ingested} ingested records reached the dashboard before the network stopped",
        duration.as_secs_f64(),
        period.as_millis()
    );
    Ok(vec![
        Figure::new("systems/pipeline-p50", "ms", Better::Lower)
            .ours(net50)
            .goal(Goal::AtMost(1.0))
            .note(format!(
                "ingest → dashboard latency minus the simulated work the record waited for (its own 20 ms and that of records processed before it by the same worker), p50 per run. {setup}"
            ))
            .into(),
        Figure::new("systems/pipeline-p99", "ms", Better::Lower)
            .ours(net99)
            .goal(Goal::AtMost(1.0))
            .note("as above, p99 per run")
            .into(),
        Figure::new("systems/pipeline-all-p50", "ms", Better::Lower)
            .ours(all50)
            .note("ingest → dashboard with the simulated work included, p50 per run")
            .into(),
        Figure::new("systems/pipeline-all-p99", "ms", Better::Lower)
            .ours(all99)
            .note("as above, p99 per run")
            .into(),
    ])
}
