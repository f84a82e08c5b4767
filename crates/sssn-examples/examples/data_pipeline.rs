//! The founding example: a periodic ingestor feeds a work queue, three workers claim →
//! transform → publish to a broadcast channel, and a dashboard subscribes.
//!
//! ```text
//! cargo run --release --example data_pipeline -- [--duration SECS] [--period SECS] [--store URL]
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde::{Deserialize, Serialize};
use sssn::channel::{BroadcastChannel, PeriodicChannel, WorkQueueChannel, source_fn};
use sssn::store::Entry;
use sssn::{Channel, Network, Result, System, SystemContext, SystemSpec};

/// Command-line options.
#[derive(Parser)]
pub struct Args {
    /// How long the pipeline runs, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Seconds between two ingest cycles.
    #[arg(long, default_value_t = 5.0)]
    pub period: f64,
    /// Where channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
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

/// The ingestor: a periodic channel whose pull queues 5 records into `raw-records`. It
/// keeps nothing itself. It runs ⌈duration / period⌉ cycles, the first at start.
fn data_ingestor(queue: Channel, period: Duration, cycles: u64) -> Channel {
    let mut done = 0;
    let source = source_fn(move || {
        let queue = queue.clone();
        done += 1;
        let pull = done <= cycles;
        async move {
            if pull {
                for i in 0..5 {
                    let record = Record {
                        id: uuid::Uuid::new_v4().to_string(),
                        sensor: "s1".into(),
                        value: 22.1 + f64::from(i) * 0.3,
                    };
                    queue.write("ingestor", &record).await?;
                }
                println!("[Ingestor] queued 5 records");
            }
            Ok(Vec::new())
        }
    });
    PeriodicChannel::new("ingestor", source)
        .name("Data Ingestor")
        .period(period)
        .build()
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
        for claimed in ctx.claim("raw-records", 3).await? {
            let id = claimed.message.id.clone();
            let outcome = async {
                let record: Record = claimed.message.data()?;
                let processed = Self::transform(ctx, record).await?;
                ctx.write("processed", &processed).await
            };
            match outcome.await {
                Ok(_) => {
                    ctx.ack("raw-records", &[id]).await?;
                }
                Err(e) => {
                    println!("[{}] transform error: {e}", ctx.id());
                    ctx.nack("raw-records", &[id]).await?;
                }
            }
        }
        Ok(())
    }
}

/// Prints every processed record as it arrives.
struct Dashboard {
    received: Arc<Mutex<Vec<String>>>,
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
        self.received
            .lock()
            .expect("dashboard lock")
            .push(p.record_id);
        Ok(())
    }
}

/// What the dashboard saw.
pub struct Report {
    /// Record ids of every processed record the dashboard received, in arrival order.
    pub record_ids: Vec<String>,
}

/// Builds the pipeline, runs it for `args.duration`, and reports.
pub async fn run(args: Args) -> Result<Report> {
    let duration = Duration::from_secs_f64(args.duration);
    let period = Duration::from_secs_f64(args.period);
    let cycles = (args.duration / args.period).ceil() as u64;

    let mut net =
        Network::new("pipeline").with_store(sssn_examples::open_store(&args.store).await?);
    let queue = net.add_channel(
        WorkQueueChannel::new("raw-records")
            .claim_timeout(Duration::from_secs(30))
            .build(),
    )?;
    net.add_channel(BroadcastChannel::new("processed").build())?;
    net.add_channel(data_ingestor(queue, period, cycles))?;
    for i in 1..=3 {
        net.add_system(
            SystemSpec::new(format!("worker-{i}"))
                .tick_rate(5.0)
                .reads(["raw-records"])
                .writes(["processed"]),
            TransformWorker,
        )?;
    }
    let received = Arc::new(Mutex::new(Vec::new()));
    net.add_system(
        SystemSpec::new("dashboard")
            .tick_rate(0.0)
            .reads(["processed"]),
        Dashboard {
            received: received.clone(),
        },
    )?;

    println!("Pipeline starting — runs for {} seconds...", args.duration);
    net.run_for(duration).await?;
    let record_ids = received.lock().expect("dashboard lock").clone();
    println!("Dashboard received {} processed records.", record_ids.len());
    Ok(Report { record_ids })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse()).await)
}
