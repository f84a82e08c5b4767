//! `peers`: the work-queue pattern of issue 16 on sssn and on the systems a user would
//! compare it with (Redis Streams, RabbitMQ, PostgreSQL, raw NATS JetStream), all in one
//! run, rounds interleaved.
//!
//! The pattern is the same for every system: N small JSON messages; 4 producers each send
//! one message per call and wait for the system's confirmation before the next; at the
//! same time 3 consumers take up to 10 messages per call and acknowledge each batch.
//! msgs/s = N / (time from the first send to the last acknowledgement). Every message
//! carries its index; the driver checks that each one is consumed exactly once.
//!
//! CPU: the client's is this process's CPU time over the round
//! (`CLOCK_PROCESS_CPUTIME_ID`, every thread); the server's is the run time of every
//! thread of the server processes (`/proc/<pid>/task/*/schedstat`) over the same window,
//! for servers on this machine. Each adapter says which processes it counts (`Server`,
//! `processes.rs`). Per message = CPU time / N, reported as client and server parts.
//!
//! The pattern is written once, in `drive.rs`; a system is an adapter of four small
//! traits (`System` → `Queue` → `Producer` and `Consumer`), one file per system;
//! `table.rs` makes the rounds into the table.
//! A system whose service does not answer is skipped with the reason.

mod jetstream;
mod postgres;
mod rabbitmq;
mod redis;
mod sssn;

mod drive;
mod processes;
mod table;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) use self::drive::Index;
use self::drive::{Sample, round};
pub(crate) use self::processes::*;
pub use self::sssn::{SERVER_CHILD, server_child};
use self::table::outcomes;
use super::{Config, progress, record};
use crate::machine::process_cpu_time;
use crate::report::{Outcome, Section, human, median};

/// Producers, each sending one message per call and waiting for its confirmation.
pub(crate) const PRODUCERS: usize = 4;
/// Consumers, each taking up to [`TAKE`] per call and acknowledging each batch.
pub(crate) const CONSUMERS: usize = 3;
/// Most messages a consumer takes per call.
pub(crate) const TAKE: usize = 10;
/// How long a consumer whose system cannot wait for messages sleeps after an empty take.
const POLL: Duration = Duration::from_millis(1);
/// Messages of the unrecorded warm-up round of each system.
const WARM_UP: usize = 200;
/// Longest wait for a service to answer at start.
const CONNECT: Duration = Duration::from_secs(10);

/// One system under test: opens a fresh, empty queue for each round.
#[async_trait]
pub(crate) trait System: Send + Sync {
    /// What a confirmed message survives, in words (read from the server where it can be).
    fn durability(&self) -> String;
    /// A fresh, empty queue (a new stream, table, queue or channel).
    async fn open(&self, round: usize) -> anyhow::Result<Box<dyn Queue>>;
    /// Removes what the system left on its server, at the end of the scenario.
    async fn finish(&self) {}
}

/// One round's queue.
#[async_trait]
pub(crate) trait Queue: Send + Sync {
    /// A producer with its own connection (where the system has connections).
    async fn producer(&self) -> anyhow::Result<Box<dyn Producer>>;
    /// A consumer with its own connection.
    async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>>;
    /// The processes whose CPU time is the server's (read at the start and at the end).
    fn server(&self) -> Server;
    /// Deletes the queue (and stops what serves it).
    async fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// Sends messages.
#[async_trait]
pub(crate) trait Producer: Send {
    /// Sends one message and waits until the system has confirmed it.
    async fn send(&mut self, message: &Value) -> anyhow::Result<()>;
}

/// Takes and acknowledges messages.
#[async_trait]
pub(crate) trait Consumer: Send {
    /// Takes up to `max` messages and returns the index each carries; empty when none is
    /// there. A consumer that [`waits`](Self::waits) may wait briefly for a first message.
    async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>>;
    /// Acknowledges every message of the last [`take`](Self::take).
    async fn ack(&mut self) -> anyhow::Result<()>;
    /// Acknowledges every message of the last take, then takes up to `max` more, in one
    /// call (sssn's settle-and-claim). Only called when
    /// [`combines_ack_and_take`](Self::combines_ack_and_take) says so; by default, the two
    /// calls.
    async fn ack_and_take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        self.ack().await?;
        self.take(max).await
    }
    /// Whether the system has one call for "acknowledge these, take the next batch" (for
    /// PostgreSQL the take is the acknowledgement already).
    fn combines_ack_and_take(&self) -> bool {
        false
    }
    /// Whether `take` waits on the server for a message; otherwise the driver sleeps
    /// [`POLL`] after an empty take.
    fn waits(&self) -> bool {
        false
    }
}

/// A row of the peer table: a system, and the system it is compared with.
struct Row {
    key: &'static str,
    label: &'static str,
    /// The row it is compared with and the goal of issue 16 (ratio of msgs/s).
    versus: Option<(&'static str, f64, &'static str)>,
}

/// The rows, in the order.
const ROWS: &[Row] = &[
    Row {
        key: "sssn-memory",
        label: "sssn memory, in process",
        versus: None,
    },
    Row {
        key: "redis",
        label: "Redis Streams (XADD / XREADGROUP / XACK)",
        versus: None,
    },
    Row {
        key: "sssn-http-memory",
        label: "sssn over HTTP, memory store",
        versus: Some(("redis", 1.0, "remote (HTTP) client ≥ 1.0× Redis")),
    },
    Row {
        key: "sssn-stream-memory",
        label: "sssn over the stream transport (WebSocket), memory store",
        versus: Some(("redis", 1.0, "remote (stream) client ≥ 1.0× Redis")),
    },
    Row {
        key: "postgres",
        label: "PostgreSQL (INSERT / DELETE … SKIP LOCKED … RETURNING)",
        versus: None,
    },
    Row {
        key: "sssn-http-sqlite",
        label: "sssn over HTTP, SQLite store",
        versus: Some(("postgres", 1.2, "SQLite (FULL) over HTTP ≥ 1.2× PostgreSQL")),
    },
    Row {
        key: "sssn-stream-sqlite",
        label: "sssn over the stream transport (WebSocket), SQLite store",
        versus: Some((
            "postgres",
            1.2,
            "SQLite (FULL) over the stream ≥ 1.2× PostgreSQL",
        )),
    },
    Row {
        key: "sssn-sqlite",
        label: "sssn SQLite, in process (FULL)",
        versus: Some((
            "postgres",
            1.2,
            "SQLite (FULL) in process ≥ 1.2× PostgreSQL",
        )),
    },
    Row {
        key: "rabbitmq",
        label: "RabbitMQ (durable, persistent, confirms)",
        versus: None,
    },
    Row {
        key: "jetstream",
        label: "raw JetStream (work-queue stream, pull consumer)",
        versus: None,
    },
    Row {
        key: "sssn-jetstream",
        label: "sssn on its JetStream store",
        versus: Some(("jetstream", 0.7, "JetStream store ≥ 0.7× raw JetStream")),
    },
];

async fn connect(key: &str) -> anyhow::Result<Box<dyn System>> {
    Ok(match key {
        "sssn-memory" => Box::new(sssn::Sssn::memory()),
        "sssn-sqlite" => Box::new(sssn::Sssn::sqlite()?),
        "sssn-http-memory" => Box::new(sssn::Sssn::http_memory()),
        "sssn-stream-memory" => Box::new(sssn::Sssn::stream_memory()),
        "sssn-http-sqlite" => Box::new(sssn::Sssn::http_sqlite()?),
        "sssn-stream-sqlite" => Box::new(sssn::Sssn::stream_sqlite()?),
        "sssn-jetstream" => Box::new(sssn::Sssn::jetstream(&super::nats::nats_addr()).await?),
        "redis" => Box::new(redis::Redis::connect().await?),
        "postgres" => Box::new(postgres::Postgres::connect().await?),
        "rabbitmq" => Box::new(rabbitmq::RabbitMq::connect().await?),
        "jetstream" => Box::new(jetstream::JetStream::connect(&super::nats::nats_addr()).await?),
        other => bail!("unknown peer '{other}'"),
    })
}

/// What became of a row.
enum State {
    Running(Box<dyn System>),
    Skipped(String),
    Failed(String),
}

struct Entry {
    row: &'static Row,
    state: State,
    durability: String,
    server: Option<Server>,
    samples: Vec<Sample>,
}

impl Entry {
    fn scenario(&self) -> String {
        format!("peers/{}", self.row.key)
    }

    fn fail(&mut self, what: &str, e: &anyhow::Error) {
        progress(
            "peers",
            format_args!("{} {what} failed: {e:#}", self.row.key),
        );
        self.state = State::Failed(format!("{what}: {e:#}"));
    }
}

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let n = cfg.size(20_000, 2_000);
    // `SSSN_BENCH_PEERS=redis,sssn-http-memory`: only these rows (to profile one pair).
    let only: Option<Vec<String>> = std::env::var("SSSN_BENCH_PEERS")
        .ok()
        .map(|v| v.split(',').map(|k| k.trim().to_owned()).collect());
    if let Some(keys) = &only
        && let Some(bad) = keys.iter().find(|k| !ROWS.iter().any(|r| r.key == *k))
    {
        let known: Vec<&str> = ROWS.iter().map(|r| r.key).collect();
        bail!(
            "SSSN_BENCH_PEERS names '{bad}'; the rows are {}",
            known.join(", ")
        );
    }
    let mut entries = Vec::new();
    for row in ROWS {
        if only
            .as_ref()
            .is_some_and(|k| !k.iter().any(|k| k == row.key))
        {
            continue;
        }
        let state = match tokio::time::timeout(CONNECT, connect(row.key)).await {
            Ok(Ok(system)) => State::Running(system),
            Ok(Err(e)) => State::Skipped(format!("{e:#}")),
            Err(_) => State::Skipped(format!("no answer within {} s", CONNECT.as_secs())),
        };
        if let State::Skipped(why) = &state {
            progress("peers", format_args!("{} skipped: {why}", row.key));
        }
        let durability = match &state {
            State::Running(s) => s.durability(),
            _ => String::new(),
        };
        entries.push(Entry {
            row,
            state,
            durability,
            server: None,
            samples: Vec::new(),
        });
    }
    // An unrecorded short round of each: warms connections and caches, and checks the
    // pattern works end to end before anything is measured.
    for e in &mut entries {
        if let State::Running(system) = &e.state {
            let r = round(system.as_ref(), 0, WARM_UP).await;
            if let Err(err) = r {
                e.fail("warm-up round", &err);
            }
        }
    }
    for r in 0..cfg.runs {
        // Rotated, so no system always runs first or right after the same one.
        let len = entries.len();
        let mut line = String::new();
        for j in 0..len {
            let e = &mut entries[(j + r) % len];
            let State::Running(system) = &e.state else {
                continue;
            };
            match round(system.as_ref(), r + 1, n).await {
                Ok((s, server)) => {
                    let _ = write!(
                        line,
                        "; {} {} msgs/s {:.1}+{} µs/msg",
                        e.row.key,
                        human(s.rate),
                        s.client_us,
                        s.server_us
                            .map_or_else(|| "–".to_owned(), |u| format!("{u:.1}"))
                    );
                    e.samples.push(s);
                    e.server = Some(server);
                }
                Err(err) => e.fail(&format!("round {}", r + 1), &err),
            }
        }
        progress("peers", format_args!("round {}/{}{line}", r + 1, cfg.runs,));
    }
    for e in &entries {
        if let State::Running(system) = &e.state {
            system.finish().await;
        }
    }
    Ok(outcomes(&entries, n, cfg.runs))
}
