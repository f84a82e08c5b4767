//! Tutorial 4 · Multi-System (sssn 0.0.1's `tutorials/04-multi-system.md`): an ingester,
//! a refiner and a monitor wired by explicit channel dependencies, run in process or
//! published over HTTP.
//!
//! ```text
//! cargo run --example tutorial_04_multi_system -- [--duration SECS] [--threshold °C] [--store URL]
//! cargo run --example tutorial_04_multi_system -- --publish 127.0.0.1:8000
//! curl -H 'Authorization: Bearer me' 'http://127.0.0.1:8000/channels/refined-records?limit=10'
//! ```
//!
//! The monitor prints `[ALERT] High temperature: 22.4°C` for a record above
//! `--threshold` (30 °C as in the Python, where the ingester's 22.4 °C never alerts, so
//! the Python prints nothing; `--threshold 20` shows alerts). The umbrella system of the
//! Python is the `Network`: `add_subsystem(refiner, channels=["raw-records"])` becomes the
//! refiner's `SystemSpec` naming the channels it reads and writes, and the tick rates are
//! those of the tutorial's step 5 (5, 10 and 2 per second). With `--publish` the public
//! `refined-records` is served over HTTP in v1's routes (step 4) until Ctrl-C or
//! `--duration`; the private `raw-records` is not.

use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde_json::{Value, json};
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::network::StoppedNetwork;
use sssn::{Error, ErrorKind, Network, Result, System, SystemContext, SystemSpec};
use sssn_examples::{Out, say};
use sssn_http::Publish;

/// Command-line options.
#[derive(Parser)]
#[command(
    about = "Tutorial 4: an ingester, a refiner and a monitor wired by explicit channels; --publish serves refined-records over HTTP."
)]
pub struct Args {
    /// How long it runs, in seconds (default 3; with --publish, until Ctrl-C).
    #[arg(long, value_parser = sssn_examples::duration_secs)]
    pub duration: Option<f64>,
    /// The monitor alerts on records above this temperature, in °C.
    #[arg(long, default_value_t = 30.0)]
    pub threshold: f64,
    /// Serve the public channel (refined-records) over HTTP on this address, e.g.
    /// 127.0.0.1:8000.
    #[arg(long, value_name = "HOST:PORT")]
    pub publish: Option<String>,
    /// Where channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

/// Produces a raw record every tick.
#[derive(Default)]
struct Ingester {
    written: usize,
}

#[async_trait]
impl System for Ingester {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        // Simulate receiving data from an external source.
        let record = json!({"sensor": "temp-01", "value": 22.4, "ts": sssn::clock::now_secs()});
        ctx.work_queue("raw-records")?.write(&record).await?;
        self.written += 1;
        Ok(())
    }
}

/// Claims raw records, enriches them, publishes them to the refined channel.
#[derive(Default)]
struct Refiner {
    refined: usize,
}

#[async_trait]
impl System for Refiner {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let raw = ctx.work_queue("raw-records")?;
        let refined = ctx.broadcast("refined-records")?;
        for claim in raw.claim(5).await? {
            let mut data: Value = claim.message.data()?;
            if let Some(record) = data.as_object_mut() {
                record.insert("unit".into(), json!("celsius"));
                record.insert("system_id".into(), json!(ctx.id()));
            }
            refined.write(&data).await?;
            let _ = raw.ack(&[claim.message.id.as_str()]).await?;
            self.refined += 1;
        }
        Ok(())
    }
}

/// Observes refined records and reports anomalies.
struct Monitor {
    threshold: f64,
    seen: usize,
    alerts: usize,
    out: Out,
}

#[async_trait]
impl System for Monitor {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        for msg in ctx.broadcast("refined-records")?.read(20).await? {
            let data: Value = msg.data()?;
            self.seen += 1;
            let temp = data.get("value").cloned().unwrap_or(json!(0));
            if temp.as_f64().unwrap_or(0.0) > self.threshold {
                say!(self.out, "[ALERT] High temperature: {temp}°C");
                self.alerts += 1;
            }
        }
        Ok(())
    }
}

/// What the run did.
#[derive(Debug)]
pub struct Report {
    /// Raw records written by the ingester.
    pub ingested: usize,
    /// Records refined.
    pub refined: usize,
    /// Refined records the monitor read.
    pub monitored: usize,
    /// Alerts printed.
    pub alerts: usize,
}

fn pipeline(
    args: &Args,
    out: &Out,
    store: std::sync::Arc<dyn sssn::store::Store>,
) -> Result<Network> {
    let mut net = Network::new("pipeline").with_store(store);
    net.add_channel(
        WorkQueueChannel::new("raw-records")
            .name("Raw Records")
            .claim_timeout(Duration::from_secs(30))
            .build(),
    )?;
    net.add_channel(
        BroadcastChannel::new("refined-records")
            .name("Refined Records")
            .public() // step 4: expose over HTTP
            .build(),
    )?;
    net.add_system(
        SystemSpec::new("ingester")
            .name("Ingester")
            .tick_rate(5.0)
            .writes(["raw-records"]),
        Ingester::default(),
    )?;
    net.add_system(
        SystemSpec::new("refiner")
            .name("Refiner")
            .tick_rate(10.0)
            .reads(["raw-records"])
            .writes(["refined-records"]),
        Refiner::default(),
    )?;
    net.add_system(
        SystemSpec::new("monitor")
            .name("Monitor")
            .tick_rate(2.0)
            .reads(["refined-records"]),
        Monitor {
            threshold: args.threshold,
            seen: 0,
            alerts: 0,
            out: out.clone(),
        },
    )?;
    Ok(net)
}

/// Runs the pipeline (published when `args.publish` is set), printing to `out`.
pub async fn run(args: Args, out: &Out) -> Result<Report> {
    let store = sssn_examples::open_store(&args.store).await?;
    let net = pipeline(&args, out, store)?;
    let mut stopped: StoppedNetwork = match &args.publish {
        None => {
            let secs = args.duration.unwrap_or(3.0);
            net.run_for(Duration::from_secs_f64(secs)).await?
        }
        Some(addr) => {
            let published = net.publish(addr.as_str()).await?;
            say!(
                out,
                "Serving refined-records on {}",
                published.server().channel_url("refined-records")
            );
            match args.duration {
                Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            published.stop().await?
        }
    };
    let missing =
        |who: &str| Error::new(ErrorKind::Internal, format!("the {who} did not come back"));
    let ingester: Ingester = stopped
        .take("ingester")
        .ok_or_else(|| missing("ingester"))?;
    let refiner: Refiner = stopped.take("refiner").ok_or_else(|| missing("refiner"))?;
    let monitor: Monitor = stopped.take("monitor").ok_or_else(|| missing("monitor"))?;
    Ok(Report {
        ingested: ingester.written,
        refined: refiner.refined,
        monitored: monitor.seen,
        alerts: monitor.alerts,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
