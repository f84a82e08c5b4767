//! `systems`: what the system runtime costs.
//!
//! * **CPU of idle systems**: a network of 1,000 systems ticking at 10/s with empty steps
//!   runs for a while; the figure is the process's CPU time (all threads,
//!   `CLOCK_PROCESS_CPUTIME_ID`) over the wall time of a measurement window, as % of
//!   one core. Reference (not a goal): 1,000 bare tokio tasks each ticking a
//!   `tokio::time::interval` of 100 ms, measured the same way.
//! * **Pipeline latency**: the data pipeline of the examples (ingestor → work queue →
//!   3 workers ticking at 5/s, claiming up to 3, 20 ms of simulated work each → broadcast
//!   → dashboard subscriber), with every record stamped along the way. Figures, p50 and
//!   p99 of each run: ingest → dashboard minus the measured simulated work (this includes
//!   waiting for a worker's next tick, up to 200 ms at 5/s), and the runtime's own share:
//!   claim → dashboard minus the simulated work (publish, ack, push delivery, task hops).

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
    claimed_ns: u64,
    work_ns: u64,
}

/// One delivered record: (ingest → dashboard − work, claim → dashboard − work), ns.
type Sample = (u64, u64);

struct Worker;

#[async_trait]
impl System for Worker {
    async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        for claimed in ctx.claim("raw-records", 3).await? {
            let claimed_ns = now_ns();
            let id = claimed.message.id.clone();
            let record: Record = claimed.message.data()?;
            let t = now_ns();
            tokio::time::sleep(Duration::from_millis(20)).await; // simulated work
            let work_ns = now_ns() - t;
            let processed = Processed {
                record_id: record.id,
                celsius: record.value,
                fahrenheit: record.value * 9.0 / 5.0 + 32.0,
                worker: ctx.id().to_owned(),
                ingested_ns: record.ingested_ns,
                claimed_ns,
                work_ns,
            };
            ctx.write("processed", &processed).await?;
            ctx.ack("raw-records", &[id]).await?;
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
        let total = now.saturating_sub(p.ingested_ns).saturating_sub(p.work_ns);
        let own = now.saturating_sub(p.claimed_ns).saturating_sub(p.work_ns);
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((total, own));
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
    let (mut total50, mut total99, mut own50, mut own99) = (vec![], vec![], vec![], vec![]);
    let mut delivered = 0;
    let mut ingested = 0;
    for i in 0..cfg.runs {
        let (samples, n) = pipeline_once(duration, period).await?;
        ensure!(!samples.is_empty(), "the dashboard received nothing");
        let total: Vec<f64> = samples.iter().map(|s| ms(s.0)).collect();
        let own: Vec<f64> = samples.iter().map(|s| ms(s.1)).collect();
        total50.push(percentile(&total, 0.5));
        total99.push(percentile(&total, 0.99));
        own50.push(percentile(&own, 0.5));
        own99.push(percentile(&own, 0.99));
        delivered += samples.len();
        ingested += n;
        progress(
            "systems",
            format_args!(
                "pipeline run {}/{}: {} records, ingest→dashboard−work p50 {:.2} ms p99 {:.2} ms; claim→dashboard−work p50 {:.3} ms p99 {:.3} ms",
                i + 1,
                cfg.runs,
                samples.len(),
                total50[i],
                total99[i],
                own50[i],
                own99[i]
            ),
        );
    }
    let setup = format!(
        "{:.1} s runs, 5 records every {} ms, workers at 5 ticks/s claiming 3; {delivered} of {ingested} ingested records reached the dashboard before the network stopped",
        duration.as_secs_f64(),
        period.as_millis()
    );
    Ok(vec![
        Figure::new("systems/pipeline-p50", "ms", Better::Lower)
            .ours(total50)
            .goal(Goal::AtMost(1.0))
            .note(format!(
                "ingest → dashboard latency minus the measured 20 ms simulated work, p50 per run; includes the wait for a worker's next tick. {setup}"
            ))
            .into(),
        Figure::new("systems/pipeline-p99", "ms", Better::Lower)
            .ours(total99)
            .goal(Goal::AtMost(1.0))
            .note("as above, p99 per run")
            .into(),
        Figure::new("systems/pipeline-hop-p50", "ms", Better::Lower)
            .ours(own50)
            .goal(Goal::AtMost(1.0))
            .note("claim → dashboard minus the simulated work (decode, publish to the broadcast channel, ack, push to the dashboard's task), p50 per run")
            .into(),
        Figure::new("systems/pipeline-hop-p99", "ms", Better::Lower)
            .ours(own99)
            .goal(Goal::AtMost(1.0))
            .note("as above, p99 per run")
            .into(),
    ])
}
