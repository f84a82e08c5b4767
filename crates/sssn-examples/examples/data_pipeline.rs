//! The founding example: a periodic ingestor feeds a work queue, three workers claim →
//! transform → publish to a broadcast channel, and a dashboard subscribes.
//!
//! ```text
//! cargo run --release --example data_pipeline -- [--duration SECS] [--period SECS] [--store URL]
//!     [--console 127.0.0.1:8080]
//! ```
//!
//! With `--console`, the network is served over HTTP with the web console at `/ui`: watch
//! records flow, click one in the live tail of `processed`, and see its path from the
//! ingestor through a worker to the dashboard with the time spent at each hop. The
//! channels keep the default open security: any non-empty token is accepted.

use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde::{Deserialize, Serialize};
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::store::Entry;
use sssn::{Error, ErrorKind, Network, Result, System, SystemContext, SystemSpec};

/// Command-line options.
#[derive(Parser)]
#[command(
    about = "The founding example: a periodic ingestor feeds a work queue, three workers claim, transform and publish to a broadcast channel, a dashboard subscribes."
)]
pub struct Args {
    /// How long the pipeline runs, in seconds.
    #[arg(long, default_value_t = 30.0, value_parser = sssn_examples::duration_secs)]
    pub duration: f64,
    /// Seconds between two ingest cycles (at least 0.01).
    #[arg(long, default_value_t = 5.0, value_parser = sssn_examples::period_secs)]
    pub period: f64,
    /// Where channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
    /// Serve the network and the web console (`/ui`) on this address while it runs.
    #[arg(long, value_name = "ADDR")]
    pub console: Option<String>,
}

/// A raw sensor record, as the ingestor queues it.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    sensor: String,
    value: f64,
}

/// A transformed record, as the workers publish it.
#[derive(Serialize, Deserialize)]
struct Processed {
    record_id: String,
    sensor: String,
    celsius: f64,
    fahrenheit: f64,
    processed_at: f64,
    worker: String,
}

/// Polls a (simulated) API once per tick, every `period`, and queues the raw records it
/// gets into `raw-records`. It runs `cycles` cycles, the first at start.
struct DataIngestor {
    cycles: u64,
}

#[async_trait]
impl System for DataIngestor {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        if self.cycles == 0 {
            return Ok(());
        }
        self.cycles -= 1;
        let queue = ctx.work_queue("raw-records")?;
        for i in 0..5 {
            let record = Record {
                id: uuid::Uuid::new_v4().to_string(),
                sensor: "s1".into(),
                value: 22.1 + f64::from(i) * 0.3,
            };
            queue.write(&record).await?;
        }
        println!("[Ingestor] queued 5 records");
        Ok(())
    }
}

/// Claims up to 3 records per tick, transforms them, publishes, acknowledges.
struct TransformWorker;

impl TransformWorker {
    async fn transform(ctx: &SystemContext, record: Record) -> Result<Processed> {
        tokio::time::sleep(Duration::from_millis(20)).await; // simulated work
        Ok(Processed {
            record_id: record.id,
            sensor: record.sensor,
            celsius: record.value,
            fahrenheit: record.value * 9.0 / 5.0 + 32.0,
            processed_at: sssn::clock::now_secs(),
            worker: ctx.id().to_owned(),
        })
    }
}

#[async_trait]
impl System for TransformWorker {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        // Claim as soon as work arrives, not only at the next tick.
        ctx.wake_on("raw-records").await
    }

    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let (queue, processed) = (ctx.work_queue("raw-records")?, ctx.broadcast("processed")?);
        for claimed in queue.claim(3).await? {
            let outcome = async {
                let record: Record = claimed.message.data()?;
                let record = Self::transform(ctx, record).await?;
                processed.write(&record).await
            };
            // A stale settle (the lease ran out mid-transform) becomes a step error: logged.
            match outcome.await {
                Ok(_) => {
                    queue.ack(&claimed).await?.into_result()?;
                }
                Err(e) => {
                    println!("[{}] transform error: {e}", ctx.id());
                    queue.nack(&claimed).await?.into_result()?;
                }
            }
        }
        Ok(())
    }
}

/// Prints every processed record as it arrives, and keeps their ids and trace ids.
#[derive(Default)]
struct Dashboard {
    received: Vec<String>,
    traces: Vec<String>,
}

#[async_trait]
impl System for Dashboard {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("processed").await
    }

    async fn on_message(&mut self, _: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        let p: Processed = entry.message.data()?;
        let status = if p.celsius > 23.0 {
            "🔴 HIGH"
        } else {
            "✅ OK "
        };
        println!(
            "[Dashboard] {status} | {} | {:.1}°C | worker={}",
            p.sensor, p.celsius, p.worker
        );
        self.received.push(p.record_id);
        // The trace the record started at the ingestor (sssn::trace carries it).
        let trace = sssn::trace::TraceContext::of(&entry.message);
        self.traces
            .push(trace.map(|t| t.trace_id.to_string()).unwrap_or_default());
        Ok(())
    }
}

/// What the dashboard saw.
pub struct Report {
    /// Record ids of every processed record the dashboard received, in arrival order.
    pub record_ids: Vec<String>,
    /// The trace id of each of those records, in the same order.
    pub trace_ids: Vec<String>,
}

/// Builds the pipeline, runs it for `args.duration`, and reports.
pub async fn run(args: Args) -> Result<Report> {
    let duration = Duration::from_secs_f64(args.duration);
    let cycles = (args.duration / args.period).ceil() as u64;

    let mut net =
        Network::new("pipeline").with_store(sssn_examples::open_store(&args.store).await?);
    net.add_channel(
        WorkQueueChannel::new("raw-records")
            .name("Raw Records")
            .claim_timeout(Duration::from_secs(30))
            .build(),
    )?;
    net.add_channel(
        BroadcastChannel::new("processed")
            .name("Processed Records")
            .build(),
    )?;
    net.add_system(
        SystemSpec::new("ingestor")
            .name("Data Ingestor")
            .tick_rate(1.0 / args.period)
            .writes(["raw-records"]),
        DataIngestor { cycles },
    )?;
    for i in 1..=3 {
        net.add_system(
            SystemSpec::new(format!("worker-{i}"))
                .tick_rate(5.0)
                .reads(["raw-records"])
                .writes(["processed"]),
            TransformWorker,
        )?;
    }
    net.add_system(
        SystemSpec::new("dashboard")
            .tick_rate(0.0)
            .reads(["processed"]),
        Dashboard::default(),
    )?;

    println!("Pipeline starting — runs for {} seconds...", args.duration);
    let running = net.start().await?;
    // The console is the ordinary HTTP server over the network's channels and systems;
    // the network owns the channels, so the server does not drain them.
    let console = match &args.console {
        Some(addr) => {
            let server = sssn_http::Server::builder()
                .network(&running)
                .serve_private(true)
                .drain_on_shutdown(false)
                .bind(addr.as_str())
                .await?;
            println!("Console: {}/ui/ (any non-empty token)", server.url());
            Some(server)
        }
        None => None,
    };
    tokio::time::sleep(duration).await;
    if let Some(server) = console {
        server.shutdown().await?;
    }
    let mut stopped = running.stop().await?;
    let dashboard: Dashboard = stopped
        .take("dashboard")
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the dashboard did not come back"))?;
    println!(
        "Dashboard received {} processed records.",
        dashboard.received.len()
    );
    Ok(Report {
        record_ids: dashboard.received,
        trace_ids: dashboard.traces,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse()).await)
}
