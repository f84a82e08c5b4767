//! Service discovery: a temperature service registers itself and its feed; a consumer
//! finds the feed by visibility and name, connects, and prints readings.
//!
//! ```text
//! cargo run --release --example discovery
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sssn::channel::{BroadcastChannel, DiscoveryChannel};
use sssn::descriptor::ServiceMethod;
use sssn::{Channel, Network, Result, System, SystemContext, SystemSpec, Visibility};

/// Owns the public `temperature-feed` and announces itself.
struct TemperatureService {
    feed: Channel,
}

#[async_trait]
impl System for TemperatureService {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let registry = ctx.local_channel("registry")?.discovery()?;
        registry
            .register_channel(&self.feed.info(), Some(Duration::from_secs(300)))
            .await?;
        ctx.announce("registry", Some(Duration::from_secs(300)))
            .await?;
        println!("[temp-svc] registered with discovery");
        Ok(())
    }

    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.write(
            "temperature-feed",
            &json!({"celsius": 22.4, "ts": sssn::clock::now_secs()}),
        )
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
    readings: Arc<AtomicUsize>,
}

#[async_trait]
impl System for DataConsumer {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let Some(feed) = &self.connected else {
            let registry = ctx.local_channel("registry")?.discovery()?;
            let found = registry.find_channels(Some(Visibility::Public)).await?;
            match found
                .into_iter()
                .find(|c| c.name.to_lowercase().contains("temperature"))
            {
                Some(info) => {
                    if let Some(channel) = self.lookup.get(&info.id) {
                        ctx.client().connect(info.id.clone(), channel.clone());
                        println!("[Consumer] connected to '{}' ({})", info.name, info.id);
                        for system in registry.find_systems(Some("temperature")).await? {
                            println!(
                                "[Consumer] Found: {} ({})",
                                system.system_name, system.system_id
                            );
                        }
                        self.connected = Some(info.id);
                    }
                }
                None => println!("[Consumer] no temperature channels found yet, retrying..."),
            }
            return Ok(());
        };
        for message in ctx.read(feed, 10).await? {
            let reading: Value = message.data()?;
            println!("[Consumer] temp={}°C", reading["celsius"]);
            self.readings.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Runs the demo for `duration`; returns how many readings the consumer printed.
pub async fn run(duration: Duration) -> Result<usize> {
    let readings = Arc::new(AtomicUsize::new(0));
    let mut net = Network::new("discovery-demo");
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
        TemperatureService { feed: feed.clone() },
    )?;
    net.add_system(
        SystemSpec::new("consumer")
            .tick_rate(2.0)
            .reads(["registry"]),
        DataConsumer {
            lookup: HashMap::from([(feed.id().to_owned(), feed)]),
            connected: None,
            readings: readings.clone(),
        },
    )?;
    net.run_for(duration).await?;
    Ok(readings.load(Ordering::SeqCst))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Duration::from_secs(5)).await)
}
