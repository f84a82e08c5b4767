//! Quick start: a sensor writes a reading every tick; a monitor prints each one.
//!
//! ```text
//! cargo run --release --example quick_start
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sssn::channel::BroadcastChannel;
use sssn::store::Entry;
use sssn::{Network, Result, System, SystemContext, SystemSpec};

struct Sensor;

#[async_trait]
impl System for Sensor {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.write("sensor-data", &json!({"temp": 22.4})).await?;
        Ok(())
    }
}

struct Monitor {
    seen: Arc<AtomicUsize>,
}

#[async_trait]
impl System for Monitor {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("sensor-data").await
    }

    async fn on_message(&mut self, _: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        println!("[Monitor] {}", entry.message.content);
        self.seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Runs for `duration`; returns how many readings the monitor printed.
pub async fn run(duration: Duration) -> Result<usize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let mut net = Network::new("quick-start");
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
        Monitor { seen: seen.clone() },
    )?;
    net.run_for(duration).await?;
    Ok(seen.load(Ordering::SeqCst))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Duration::from_millis(2600)).await)
}
