//! Tutorial 2 · Broadcast Bus (sssn 0.0.1's `tutorials/02-broadcast.md`): fan-out, push
//! delivery with `subscribe`, late joiners catching up, and why a broadcast has no claims.
//!
//! ```text
//! cargo run --example tutorial_02_broadcast -- [--store URL]
//! ```
//!
//! Prints what the Python prints. In v1 the callbacks ran inside `write`; here each
//! subscription is a queue its consumer reads (a writer never waits for a subscriber), and
//! the consumers here take their message right after each write, in subscription order,
//! so the lines come out in v1's order.

use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use sssn::channel::{BroadcastChannel, ReadOptions, Subscription};
use sssn::{Error, ErrorKind, Result};
use sssn_examples::{Out, py, py_data, say};

/// Command-line options.
#[derive(Parser)]
#[command(about = "Tutorial 2: a broadcast bus with push subscribers, late joiners and no claims.")]
pub struct Args {
    /// Where the channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

/// One consumer: its subscription and the line it prints for each message.
struct Consumer {
    subscription: Subscription,
    label: &'static str,
    received: Vec<String>,
}

impl Consumer {
    /// Takes the next message (one was just written) and prints it.
    async fn handle(&mut self, out: &Out) -> Result<()> {
        let entry = tokio::time::timeout(Duration::from_secs(5), self.subscription.recv())
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "no delivery within 5 s"))?
            .map_err(|e| Error::new(ErrorKind::Internal, format!("subscription: {e}")))?;
        let data: Value = entry.message.data()?;
        self.received
            .push(data["type"].as_str().unwrap_or_default().to_owned());
        say!(out, "{} {}", self.label, py_data(&entry.message.content));
        Ok(())
    }
}

async fn publish(
    bus: &BroadcastChannel,
    data: Value,
    consumers: &mut [&mut Consumer],
    out: &Out,
) -> Result<()> {
    bus.write("service", &data).await?;
    for consumer in consumers {
        consumer.handle(out).await?;
    }
    Ok(())
}

/// Runs the tutorial, printing to `out`.
pub async fn run(args: Args, out: &Out) -> Result<()> {
    let store = sssn_examples::open_store(&args.store).await?;

    // Step 1 — create the bus.
    let bus = BroadcastChannel::new("events")
        .name("Event Bus")
        .store(store.clone())
        .build();
    bus.start().await?;

    // Step 2 — register subscribers.
    let mut a = Consumer {
        subscription: bus.subscribe("consumer-a").await?,
        label: "[A] received:",
        received: Vec::new(),
    };
    let mut b = Consumer {
        subscription: bus.subscribe("consumer-b").await?,
        label: "[B] received:",
        received: Vec::new(),
    };

    // Step 3 — publish events.
    let login = json!({"type": "user.login", "user": "alice"});
    publish(&bus, login, &mut [&mut a, &mut b], out).await?;
    let logout = json!({"type": "user.logout", "user": "bob"});
    publish(&bus, logout, &mut [&mut a, &mut b], out).await?;
    say!(out, "A received: {}", py(&json!(a.received).to_string()));
    say!(out, "B received: {}", py(&json!(b.received).to_string()));

    // Step 4 — a late joiner catches up with a shared read, then subscribes.
    let history = bus.read("carol", 100).await?;
    say!(out, "Carol sees {} events in history", history.len());
    let mut carol = Consumer {
        subscription: bus.subscribe("carol").await?,
        label: "[Carol] live:",
        received: Vec::new(),
    };
    let purchase = json!({"type": "user.purchase"});
    publish(&bus, purchase, &mut [&mut a, &mut b, &mut carol], out).await?;

    // Step 5 — unsubscribe: A hears nothing more, B and Carol still do.
    bus.unsubscribe("consumer-a");
    let reboot = json!({"type": "system.reboot"});
    publish(&bus, reboot, &mut [&mut b, &mut carol], out).await?;
    if let Ok(Ok(entry)) =
        tokio::time::timeout(Duration::from_millis(50), a.subscription.recv()).await
    {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "consumer A got {} after unsubscribing",
                entry.message.content
            ),
        ));
    }

    // Why exclusive reads are blocked. The typed handle has no `claim` (it would not
    // compile); the type-erased handle refuses at run time, as v1 did.
    let exclusive = ReadOptions {
        exclusive: true,
        ..ReadOptions::default()
    };
    match bus.erased().read_with("reader", exclusive).await {
        Err(e) => say!(out, "{}", e.message()),
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::Internal,
                "an exclusive read on a broadcast worked",
            ));
        }
    }
    bus.stop().await;

    // The complete program: three subscribers, four metrics.
    let telemetry = BroadcastChannel::new("telemetry")
        .name("Telemetry")
        .store(store)
        .build();
    telemetry.start().await?;
    let names = ["dashboard", "alerting", "archiver"];
    let mut subscribers = Vec::new();
    for name in names {
        subscribers.push((name, telemetry.subscribe(name).await?));
    }
    let metrics = ["cpu", "memory", "disk", "network"];
    for m in metrics {
        telemetry
            .write("monitor", &json!({"metric": m, "value": 42}))
            .await?;
    }
    let mut log: Vec<(&str, String)> = Vec::new();
    for (name, subscription) in &mut subscribers {
        for _ in metrics {
            let entry = subscription
                .recv()
                .await
                .map_err(|e| Error::new(ErrorKind::Internal, format!("subscription: {e}")))?;
            let data: Value = entry.message.data()?;
            log.push((name, data["metric"].as_str().unwrap_or_default().to_owned()));
        }
    }
    say!(out, "Total deliveries: {}", log.len());
    for name in names {
        for m in metrics {
            let count = log
                .iter()
                .filter(|(n, metric)| *n == name && metric == m)
                .count();
            if count != 1 {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("{name} got '{m}' {count} times"),
                ));
            }
        }
    }
    telemetry.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
