//! Quick start: a sensor writes a reading every tick; a monitor prints each one.
//!
//! ```text
//! cargo run --release --example quick_start -- [--duration SECS] [--store URL]
//! ```

use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde_json::json;
use sssn::channel::BroadcastChannel;
use sssn::store::Entry;
use sssn::{Error, ErrorKind, Network, Result, System, SystemContext, SystemSpec};
use sssn_examples::{Out, say};

/// Command-line options.
#[derive(Parser)]
#[command(about = "Quick start: a sensor writes a reading every tick; a monitor prints each one.")]
pub struct Args {
    /// How long it runs, in seconds.
    #[arg(long, default_value_t = 2.6, value_parser = sssn_examples::duration_secs)]
    pub duration: f64,
    /// Where channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

struct Sensor;

#[async_trait]
impl System for Sensor {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let readings = ctx.broadcast("sensor-data")?;
        readings.write(&json!({"temp": 22.4})).await?;
        Ok(())
    }
}

struct Monitor {
    seen: usize,
    out: Out,
}

#[async_trait]
impl System for Monitor {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("sensor-data").await
    }

    async fn on_message(&mut self, _: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        say!(self.out, "[Monitor] {}", entry.message.content);
        self.seen += 1;
        Ok(())
    }
}

/// Runs for `args.duration`; returns how many readings the monitor printed.
pub async fn run(args: Args, out: &Out) -> Result<usize> {
    let duration = Duration::from_secs_f64(args.duration);
    let mut net =
        Network::new("quick-start").with_store(sssn_examples::open_store(&args.store).await?);
    net.add_channel(
        BroadcastChannel::new("sensor-data")
            .name("Sensor Data")
            .build(),
    )?;
    net.add_system(
        SystemSpec::new("sensor")
            .tick_rate(2.0)
            .writes(["sensor-data"]),
        Sensor,
    )?;
    net.add_system(
        SystemSpec::new("monitor")
            .tick_rate(0.0)
            .reads(["sensor-data"]),
        Monitor {
            seen: 0,
            out: out.clone(),
        },
    )?;
    let mut stopped = net.run_for(duration).await?;
    let monitor: Monitor = stopped
        .take("monitor")
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the monitor did not come back"))?;
    Ok(monitor.seen)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
