//! `sssn-nats-worker`: a work-queue worker on a JetStream store, one process of many.
//!
//! It claims batches from a work-queue channel, "processes" each message (prints a line,
//! sleeps `--work-ms`; with `--results CHANNEL` it also publishes a result to that
//! broadcast channel, message id `r-<job id>`, so a redelivered job never yields a second
//! result), and acknowledges it. Used by the multi-process and cluster tests and handy to
//! watch competing consumers by hand. One line per event on stdout, each ending with the
//! time (Unix epoch milliseconds):
//!
//! ```text
//! CLAIMED <id> <attempt> <ms>
//! PROCESSED <id> <attempt> <ms>
//! ACKING <id> <attempt> <ms>   (the work is done; the ack is sent now)
//! ACKED <id> <attempt> <ms>    (or STALE <id> <attempt> <ms>: the lease ran out first,
//!                               or ACKFAIL <id> <attempt> <ms>: the ack got no answer)
//! ```
//!
//! Usage: `sssn-nats-worker --channel jobs --name w1 [--url nats://127.0.0.1:4222]
//! [--prefix sssn] [--lease-ms 1000] [--batch 5] [--work-ms 20] [--idle-exit-ms 0]
//! [--results CHANNEL]` (`--idle-exit-ms 0`: run until killed). `--url` is a store URL:
//! several servers and options work (`nats://h1:p1,h2:p2,h3:p3?replicas=3`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sssn::ChannelMessage;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
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

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Prints one event line (flushed at once: the tests read it while the worker runs).
fn event(kind: &str, id: &str, attempt: u32) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{kind} {id} {attempt} {}", now_ms());
    let _ = out.flush();
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

    let store = Arc::new(
        JetStreamStore::connect_with(&url, JetStreamOptions::default().prefix(prefix)).await?,
    );
    let jobs = WorkQueueChannel::new(channel)
        .claim_timeout(lease)
        .store(store.clone())
        .build();
    jobs.start().await?;
    let results = match args.get("results") {
        Some(id) => {
            let ch = BroadcastChannel::new(id.clone()).store(store).build();
            ch.start().await?;
            Some(ch)
        }
        None => None,
    };
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
            event("CLAIMED", &c.message.id, c.attempt);
        }
        for c in claimed {
            event("PROCESSED", &c.message.id, c.attempt);
            tokio::time::sleep(work).await;
            if let Some(results) = &results {
                let mut result = ChannelMessage::with_data(
                    name.as_str(),
                    &serde_json::json!({ "job": c.message.id, "worker": name, "attempt": c.attempt }),
                )?;
                result.id = format!("r-{}", c.message.id);
                // Until it is stored (the id makes retries idempotent), within the lease.
                let deadline = Instant::now() + lease;
                while let Err(e) = results.write_message(name.as_str(), result.clone()).await {
                    eprintln!("result of {} not stored yet: {e}", c.message.id);
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            event("ACKING", &c.message.id, c.attempt);
            match jobs.ack(name.as_str(), &c).await {
                Ok(settled) if settled.all_done() => event("ACKED", &c.message.id, c.attempt),
                Ok(_) => event("STALE", &c.message.id, c.attempt),
                Err(e) => {
                    event("ACKFAIL", &c.message.id, c.attempt);
                    eprintln!("ack of {} failed: {e}", c.message.id);
                }
            }
        }
    }
}
