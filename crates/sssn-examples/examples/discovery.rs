//! Service discovery (sssn 0.0.1's `examples/discovery.md`): a temperature service
//! registers itself and its feed; a consumer finds the feed by visibility and name,
//! connects, and prints readings; the systems offering "temperature" are found by
//! capability.
//!
//! Prints what the Python prints. The Python's `announce` passed a mapping to
//! `register_system` (D5); here the system registers its typed descriptor.
//!
//! ```text
//! cargo run --release --example discovery -- [--duration SECS] [--store URL]
//! ```

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde_json::{Value, json};
use sssn::channel::{BroadcastChannel, DiscoveryChannel};
use sssn::descriptor::ServiceMethod;
use sssn::{
    BroadcastChannel as Feed, Channel, Error, ErrorKind, Network, Result, System, SystemContext,
    SystemSpec, Visibility,
};
use sssn_examples::{Out, py, say};

/// Command-line options.
#[derive(Parser)]
#[command(
    about = "Service discovery: a service registers itself and its feed; a consumer finds the feed and reads it."
)]
pub struct Args {
    /// How long the demo runs, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = sssn_examples::duration_secs)]
    pub duration: f64,
    /// Where channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

/// Owns the public `temperature-feed` and announces itself.
struct TemperatureService {
    feed: Feed,
    out: Out,
}

#[async_trait]
impl System for TemperatureService {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let registry = ctx.local_channel("registry")?.discovery()?;
        registry
            .register_channel(ctx.id(), &self.feed.info(), Some(Duration::from_secs(300)))
            .await?;
        ctx.announce("registry", Some(Duration::from_secs(300)))
            .await?;
        say!(self.out, "[{}] registered with discovery", ctx.id());
        Ok(())
    }

    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.broadcast("temperature-feed")?
            .write(&json!({"celsius": 22.4, "ts": sssn::clock::now_secs()}))
            .await?;
        Ok(())
    }

    fn services(&self) -> Vec<ServiceMethod> {
        vec![ServiceMethod::new(
            "temperature",
            "current temperature in °C",
        )]
    }
}

/// Looks the feed up in discovery, then prints what it reads.
struct DataConsumer {
    /// How this demo turns a discovered id into a connection (a remote deployment would
    /// connect by URL instead).
    lookup: HashMap<String, Channel>,
    connected: Option<String>,
    readings: usize,
    out: Out,
}

#[async_trait]
impl System for DataConsumer {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        if self.connected.is_none() {
            self.discover_and_connect(ctx).await?;
        }
        let Some(feed) = &self.connected else {
            return Ok(());
        };
        for message in ctx.broadcast(feed)?.read(20).await? {
            let reading: Value = message.data()?;
            say!(self.out, "[Consumer] temp={}°C", reading["celsius"]);
            self.readings += 1;
        }
        Ok(())
    }
}

impl DataConsumer {
    async fn discover_and_connect(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let registry = ctx.local_channel("registry")?.discovery()?;
        let found = registry
            .find_channels(ctx.id(), Some(Visibility::Public))
            .await?;
        let temp_channels: Vec<_> = found
            .into_iter()
            .filter(|c| c.name.to_lowercase().contains("temperature"))
            .collect();
        if temp_channels.is_empty() {
            say!(
                self.out,
                "[Consumer] no temperature channels found yet, retrying..."
            );
            return Ok(());
        }
        for info in temp_channels {
            if let Some(channel) = self.lookup.get(&info.id) {
                ctx.client().connect(info.id.clone(), channel.clone());
                say!(
                    self.out,
                    "[Consumer] connected to '{}' ({})",
                    info.name,
                    info.id
                );
                self.connected = Some(info.id);
            }
        }
        // Finding systems by capability.
        for system in registry.find_systems(ctx.id(), Some("temperature")).await? {
            say!(
                self.out,
                "Found: {} ({})",
                system.system_name,
                system.system_id
            );
            let names: Vec<&str> = system.services.iter().map(|s| s.name.as_str()).collect();
            say!(
                self.out,
                "  services: {}",
                py(&serde_json::to_string(&names).unwrap_or_default())
            );
        }
        Ok(())
    }
}

/// Runs the demo for `args.duration`; returns how many readings the consumer printed.
pub async fn run(args: Args, out: &Out) -> Result<usize> {
    let duration = Duration::from_secs_f64(args.duration);
    let mut net =
        Network::new("discovery-demo").with_store(sssn_examples::open_store(&args.store).await?);
    net.add_channel(DiscoveryChannel::new("registry").build())?;
    let feed = net.add_channel(
        BroadcastChannel::new("temperature-feed")
            .name("Temperature Feed")
            .public()
            .build(),
    )?;
    net.add_system(
        SystemSpec::new("temp-svc")
            .name("Temperature Service")
            .tick_rate(2.0)
            .writes(["temperature-feed", "registry"]),
        TemperatureService {
            feed: feed.clone(),
            out: out.clone(),
        },
    )?;
    net.add_system(
        SystemSpec::new("consumer")
            .tick_rate(2.0)
            .reads(["registry"]),
        DataConsumer {
            lookup: HashMap::from([(feed.id().to_owned(), feed.erased())]),
            connected: None,
            readings: 0,
            out: out.clone(),
        },
    )?;
    let mut stopped = net.run_for(duration).await?;
    let consumer: DataConsumer = stopped
        .take("consumer")
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the consumer did not come back"))?;
    Ok(consumer.readings)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
