//! `sssn-nats-worker`: a work-queue worker on a JetStream store, one process of many.
//!
//! It claims batches from a work-queue channel, "processes" each message (prints a line,
//! sleeps `--work-ms`), and acknowledges it. Used by the multi-process test and handy to
//! watch competing consumers by hand. One line per event on stdout:
//!
//! ```text
//! CLAIMED <id> <attempt>
//! PROCESSED <id> <attempt>
//! ACKING <id> <attempt>       (the work is done; the ack is sent now)
//! ACKED <id> <attempt>        (or STALE <id> <attempt>: the lease ran out first)
//! ```
//!
//! Usage: `sssn-nats-worker --channel jobs --name w1 [--url nats://127.0.0.1:4222]
//! [--prefix sssn] [--lease-ms 1000] [--batch 5] [--work-ms 20] [--idle-exit-ms 0]`
//! (`--idle-exit-ms 0`: run until killed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sssn::channel::WorkQueueChannel;
use sssn_nats::{JetStreamOptions, JetStreamStore};

fn args() -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let Some(name) = key.strip_prefix("--") else {
            return Err(format!("unexpected argument {key:?}"));
        };
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

fn number(args: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, String> {
    args.get(name).map_or(Ok(default), |v| {
        v.parse().map_err(|e| format!("--{name}: {e}"))
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = args()?;
    let url = args
        .get("url")
        .cloned()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let channel = args.get("channel").ok_or("--channel is required")?.clone();
    let name = args.get("name").ok_or("--name is required")?.clone();
    let prefix = args
        .get("prefix")
        .cloned()
        .unwrap_or_else(|| "sssn".to_owned());
    let lease = Duration::from_millis(number(&args, "lease-ms", 1000)?);
    let batch = usize::try_from(number(&args, "batch", 5)?)?;
    let work = Duration::from_millis(number(&args, "work-ms", 20)?);
    let idle_exit = Duration::from_millis(number(&args, "idle-exit-ms", 0)?);

    let store =
        JetStreamStore::connect_with(&url, JetStreamOptions::default().prefix(prefix)).await?;
    let jobs = WorkQueueChannel::new(channel)
        .claim_timeout(lease)
        .store(Arc::new(store))
        .build();
    jobs.start().await?;
    let mut idle_since = Instant::now();
    loop {
        let claimed = match jobs.claim(name.as_str(), batch).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("claim failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            if !idle_exit.is_zero() && idle_since.elapsed() >= idle_exit {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        idle_since = Instant::now();
        for c in &claimed {
            println!("CLAIMED {} {}", c.message.id, c.attempt);
        }
        for c in claimed {
            println!("PROCESSED {} {}", c.message.id, c.attempt);
            tokio::time::sleep(work).await;
            println!("ACKING {} {}", c.message.id, c.attempt);
            match jobs.ack(name.as_str(), &c).await {
                Ok(settled) if settled.all_done() => {
                    println!("ACKED {} {}", c.message.id, c.attempt);
                }
                Ok(_) => println!("STALE {} {}", c.message.id, c.attempt),
                Err(e) => eprintln!("ack of {} failed: {e}", c.message.id),
            }
        }
    }
}
