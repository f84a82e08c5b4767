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
//! for servers on this machine. Each adapter says which processes it counts
//! ([`Server`]). Per message = CPU time / N, reported as client and server parts.
//!
//! The pattern is written once, here ([`drive`]); a system is an adapter of four small
//! traits ([`System`] → [`Queue`] → [`Producer`] and [`Consumer`]), one file per system.
//! A system whose service does not answer is skipped with the reason.

mod jetstream;
mod postgres;
mod rabbitmq;
mod redis;
mod sssn;

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

pub use self::sssn::{SERVER_CHILD, server_child};
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

/// Where a system's server runs, for its CPU time.
#[derive(Clone, Debug)]
pub(crate) enum Server {
    /// In this process: its CPU time is the client's.
    InProcess,
    /// Processes of this machine, every thread counted.
    Processes {
        /// What they are, for the notes.
        what: String,
        /// Their pids.
        pids: Vec<u32>,
    },
    /// Not measured, and why.
    Unmeasured(String),
}

impl Server {
    /// The server's processes named `what` that own the listening socket on `port`, if
    /// `host` is this machine.
    pub(crate) fn listening(what: &str, host: &str, port: u16) -> Self {
        if !is_loopback(host) {
            return Self::Unmeasured(format!("{what} runs on {host}, not on this machine"));
        }
        match listener_pid(port) {
            Some(pid) => Self::Processes {
                what: format!("{what} (pid {pid}, every thread)"),
                pids: vec![pid],
            },
            None => Self::Unmeasured(format!(
                "no process of this machine owns the socket listening on port {port}"
            )),
        }
    }

    /// CPU time so far of each process (`None` in process or unmeasured).
    fn read(&self) -> Option<BTreeMap<u32, Duration>> {
        match self {
            Self::Processes { pids, .. } => {
                let cpu: BTreeMap<u32, Duration> = pids
                    .iter()
                    .filter_map(|&p| Some((p, process_cpu(p)?)))
                    .collect();
                (!cpu.is_empty()).then_some(cpu)
            }
            Self::InProcess | Self::Unmeasured(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::InProcess => "in process (counted as client)".to_owned(),
            Self::Processes { what, .. } => what.clone(),
            Self::Unmeasured(why) => format!("not measured: {why}"),
        }
    }
}

/// CPU used between two readings: per process, the difference; a process that appeared
/// in between counts whole.
fn server_delta(before: &BTreeMap<u32, Duration>, after: &BTreeMap<u32, Duration>) -> Duration {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or_default()))
        .sum()
}

/// Whether `host` names this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host` and `port` of `host:port` (IPv6 in brackets).
pub(crate) fn host_port(addr: &str, default_port: u16) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => match p.parse() {
            Ok(port) => (h.to_owned(), port),
            Err(_) => (addr.to_owned(), default_port),
        },
        _ => (addr.to_owned(), default_port),
    }
}

/// Run time so far of every living thread of process `pid`, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds); where that file is missing, user +
/// system time from `/proc/<pid>/stat` (10 ms ticks, ended threads included).
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    let mut ns = 0u64;
    let mut any = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(v) = s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                ns += v;
                any = true;
            }
        }
    }
    if any {
        return Some(Duration::from_nanos(ns));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f = stat_fields(&stat);
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Fields of a `/proc/<pid>/stat` line after the command name (field 3 first).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default()
}

/// The process owning a socket that listens on TCP `port` (IPv4 or IPv6).
pub(crate) fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (`ADDR:PORT` in hex), st field 3 (0A = LISTEN),
            // inode field 9.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening_here = *state == "0A"
                && local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port);
            if listening_here {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for pid in pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Every process of the machine.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The child processes of `parent`.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_fields(&s).get(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// The command line of `pid`, arguments separated by spaces.
pub(crate) fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The part of every message the consumers check: the index it was sent with.
#[derive(Deserialize)]
pub(crate) struct Index {
    id: u64,
}

impl Index {
    /// The index carried by message JSON `bytes` (a record as [`record`] makes it).
    pub(crate) fn of(bytes: &[u8]) -> anyhow::Result<u64> {
        Ok(serde_json::from_slice::<Self>(bytes)
            .context("decoding a message")?
            .id)
    }

    /// The index.
    pub(crate) fn get(&self) -> u64 {
        self.id
    }
}

/// One round of one system.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rate: f64,
    client_us: f64,
    server_us: Option<f64>,
    /// Consumer takes per message, and those of them that came back empty.
    takes: f64,
    empty: f64,
}

/// What the driver saw of a round.
struct Driven {
    /// From the first send to the last acknowledgement.
    elapsed: Duration,
    takes: usize,
    empty: usize,
}

/// Opens a fresh queue of `system`, runs the pattern with `n` messages, closes the queue.
async fn round(system: &dyn System, round: usize, n: usize) -> anyhow::Result<(Sample, Server)> {
    let queue = system.open(round).await.context("opening the queue")?;
    let mut producers = Vec::with_capacity(PRODUCERS);
    let mut consumers = Vec::with_capacity(CONSUMERS);
    let mut setup = async {
        for _ in 0..PRODUCERS {
            producers.push(queue.producer().await.context("connecting a producer")?);
        }
        for _ in 0..CONSUMERS {
            consumers.push(queue.consumer().await.context("connecting a consumer")?);
        }
        anyhow::Ok(())
    }
    .await;
    let server = queue.server();
    let mut outcome = Err(anyhow::anyhow!("not run"));
    let (mut client, mut server_cpu) = (Duration::ZERO, None);
    if setup.is_ok() {
        let server_before = server.read();
        let client_before = process_cpu_time();
        outcome = drive(producers, consumers, n).await;
        if let (Some(a), Some(b)) = (process_cpu_time(), client_before) {
            client = a.saturating_sub(b);
        }
        // Asked again: a server process started during the round (an autovacuum worker)
        // counts whole.
        if let (Some(b), Some(a)) = (server_before, queue.server().read()) {
            server_cpu = Some(server_delta(&b, &a));
        }
    } else {
        drop((producers, consumers));
    }
    let closed = queue.close().await.context("closing the queue");
    setup = setup.and(closed);
    let driven = outcome?;
    setup?;
    let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Ok((
        Sample {
            rate: n as f64 / driven.elapsed.as_secs_f64(),
            client_us: per_msg(client),
            server_us: server_cpu.map(per_msg),
            takes: driven.takes as f64 / n as f64,
            empty: driven.empty as f64 / n as f64,
        },
        server,
    ))
}

/// The pattern: producers and consumers at the same time until all `n` messages are
/// acknowledged, each exactly once.
async fn drive(
    producers: Vec<Box<dyn Producer>>,
    consumers: Vec<Box<dyn Consumer>>,
    n: usize,
) -> anyhow::Result<Driven> {
    let stop = CancellationToken::new();
    let takes = Arc::new(AtomicUsize::new(0));
    let empty = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let acked = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    let producer_count = producers.len();
    for (k, mut p) in producers.into_iter().enumerate() {
        tasks.spawn(async move {
            for i in (k..n).step_by(producer_count) {
                p.send(&record(i))
                    .await
                    .with_context(|| format!("producer {k}, message {i}"))?;
            }
            anyhow::Ok(())
        });
    }
    for (k, mut c) in consumers.into_iter().enumerate() {
        let (stop, seen, acked, last) = (stop.clone(), seen.clone(), acked.clone(), last.clone());
        let (takes, empty) = (takes.clone(), empty.clone());
        tasks.spawn(async move {
            let waits = c.waits();
            let combines = c.combines_ack_and_take();
            // How many the last take returned, not acknowledged yet.
            let mut held = 0;
            let count_acked = |held: usize| {
                let total = acked.fetch_add(held, Ordering::AcqRel) + held;
                if total == n {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    stop.cancel();
                }
            };
            loop {
                let taken = if held > 0 && combines {
                    let taken = c
                        .ack_and_take(TAKE)
                        .await
                        .with_context(|| format!("consumer {k}: ack and take"))?;
                    count_acked(std::mem::take(&mut held));
                    taken
                } else {
                    if held > 0 {
                        c.ack()
                            .await
                            .with_context(|| format!("consumer {k}: ack"))?;
                        count_acked(std::mem::take(&mut held));
                    }
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        r = c.take(TAKE) => r.with_context(|| format!("consumer {k}: take"))?,
                    }
                };
                takes.fetch_add(1, Ordering::Relaxed);
                if taken.is_empty() {
                    empty.fetch_add(1, Ordering::Relaxed);
                    if !waits {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            () = tokio::time::sleep(POLL) => {}
                        }
                    }
                    continue;
                }
                ensure!(
                    taken.len() <= TAKE,
                    "consumer {k} took {} messages, asked for at most {TAKE}",
                    taken.len()
                );
                for &i in &taken {
                    let slot = usize::try_from(i).ok().and_then(|i| seen.get(i));
                    let Some(slot) = slot else {
                        bail!("consumer {k} got message {i}, which was never sent");
                    };
                    ensure!(
                        !slot.swap(true, Ordering::Relaxed),
                        "message {i} was delivered twice"
                    );
                }
                held = taken.len();
            }
        });
    }
    // Generous: far slower than any system here, yet a lost message fails the round
    // instead of the whole scenario's deadline.
    let limit = Duration::from_secs(60).max(Duration::from_millis(n as u64 * 10));
    let joined = tokio::time::timeout(limit, async {
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(anyhow::anyhow!("task panicked: {e}")),
            }
        }
        Ok(())
    })
    .await;
    stop.cancel();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let done = acked.load(Ordering::Acquire);
    match joined {
        Ok(r) => r?,
        Err(_) => bail!(
            "stalled: {done} of {n} messages acknowledged after {} s",
            limit.as_secs()
        ),
    }
    ensure!(done == n, "{done} of {n} messages acknowledged");
    let last = last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .context("no last acknowledgement")?;
    Ok(Driven {
        elapsed: last - t,
        takes: takes.load(Ordering::Relaxed),
        empty: empty.load(Ordering::Relaxed),
    })
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

/// Median, min and max of some samples.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(samples: impl Iterator<Item = f64>) -> Option<Self> {
        let s: Vec<f64> = samples.collect();
        if s.is_empty() {
            return None;
        }
        Some(Self {
            median: median(&s),
            min: s.iter().copied().fold(f64::INFINITY, f64::min),
            max: s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

/// What the table shows of a measured row.
struct Measured {
    /// Medians of takes and empty takes per message.
    takes: f64,
    empty: f64,
    rate: Stat,
    client: Stat,
    server: Option<Stat>,
    total: Stat,
}

fn measured(e: &Entry) -> Option<Measured> {
    if !matches!(e.state, State::Running(_)) {
        return None;
    }
    let s = &e.samples;
    // A total only where every round measured the server (or it is in process).
    let in_process = matches!(e.server, Some(Server::InProcess));
    let server = if s.iter().all(|x| x.server_us.is_some()) {
        Stat::of(s.iter().filter_map(|x| x.server_us))
    } else {
        None
    };
    let total = if in_process {
        Stat::of(s.iter().map(|x| x.client_us))
    } else if server.is_some() {
        Stat::of(
            s.iter()
                .map(|x| x.client_us + x.server_us.unwrap_or_default()),
        )
    } else {
        None
    };
    Some(Measured {
        takes: median(&s.iter().map(|x| x.takes).collect::<Vec<_>>()),
        empty: median(&s.iter().map(|x| x.empty).collect::<Vec<_>>()),
        rate: Stat::of(s.iter().map(|x| x.rate))?,
        client: Stat::of(s.iter().map(|x| x.client_us))?,
        server,
        total: total.unwrap_or(Stat {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        }),
    })
}

/// The peer table, the JSON rows, and an outcome per skipped or failed system.
fn outcomes(entries: &[Entry], n: usize, runs: usize) -> Vec<Outcome> {
    let by_key = |key: &str| entries.iter().find(|e| e.row.key == key);
    let header = [
        "system",
        "durability",
        "msgs/s",
        "min–max",
        "client µs/msg",
        "server µs/msg",
        "total µs/msg",
        "vs",
        "ratio",
        "CPU ratio",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut json_rows = Vec::new();
    let mut out = Vec::new();
    let mut goals = Vec::new();
    let mut notes = Vec::new();
    for e in entries {
        let m = measured(e);
        let versus = e
            .row
            .versus
            .and_then(|(key, goal, text)| Some((by_key(key)?, goal, text)));
        let peer = versus.and_then(|(p, ..)| measured(p).map(|m| (p, m)));
        let ratio = match (&m, &peer) {
            (Some(m), Some((_, p))) => Some(m.rate.median / p.rate.median),
            _ => None,
        };
        let cpu_ratio = match (&m, &peer) {
            (Some(m), Some((_, p))) => {
                Some(p.total.median / m.total.median).filter(|r| r.is_finite())
            }
            _ => None,
        };
        let status = match &e.state {
            State::Running(_) => None,
            State::Skipped(why) => {
                out.push(Outcome::skipped(e.scenario(), why.clone()));
                Some("skipped")
            }
            State::Failed(why) => {
                out.push(Outcome::Failed {
                    scenario: e.scenario(),
                    error: why.clone(),
                });
                Some("FAILED")
            }
        };
        let num = |x: f64| {
            if x.is_finite() {
                format!("{x:.1}")
            } else {
                "–".to_owned()
            }
        };
        let mut row = vec![e.row.label.to_owned(), e.durability.clone()];
        match (&m, status) {
            (Some(m), _) => row.extend([
                human(m.rate.median),
                format!("{}–{}", human(m.rate.min), human(m.rate.max)),
                num(m.client.median),
                m.server.map_or_else(
                    || {
                        if matches!(e.server, Some(Server::InProcess)) {
                            "(in process)".to_owned()
                        } else {
                            "–".to_owned()
                        }
                    },
                    |s| num(s.median),
                ),
                num(m.total.median),
            ]),
            (None, status) => {
                row.push(status.unwrap_or("-").to_owned());
                row.extend(std::iter::repeat_n(String::new(), 4));
            }
        }
        row.push(versus.map_or_else(String::new, |(p, ..)| p.row.key.to_owned()));
        row.push(ratio.map_or_else(String::new, |r| format!("{r:.2}")));
        row.push(cpu_ratio.map_or_else(String::new, |r| format!("{r:.2}")));
        rows.push(row);

        let goal_met = ratio.zip(versus).map(|(r, (_, g, _))| r >= g);
        if let Some((p, _, text)) = versus {
            let verdict = match (ratio, goal_met) {
                (Some(r), Some(true)) => format!("{r:.2}×: met"),
                (Some(r), _) => format!("{r:.2}×: MISSED"),
                (None, _) if m.is_none() => "n/a (this row did not run)".to_owned(),
                (None, _) => format!("n/a ({} did not run)", p.row.label),
            };
            goals.push(format!("goal (#16) {text}: {verdict}"));
        }
        if let (Some(m), Some(server)) = (&m, &e.server) {
            notes.push(format!(
                "{}: server CPU = {}; consumer takes per message {:.2} (empty ones {:.2})",
                e.row.key,
                server.describe(),
                m.takes,
                m.empty
            ));
            json_rows.push(json!({
                "scenario": e.scenario(),
                "system": e.row.label,
                "durability": e.durability,
                "unit": "msgs/s",
                "median": m.rate.median,
                "min": m.rate.min,
                "max": m.rate.max,
                "runs": e.samples.len(),
                "messages": n,
                "client_us_per_msg": m.client.json(),
                "server_us_per_msg": m.server.map(|s| s.json()),
                "total_us_per_msg": m.total.median.is_finite().then(|| m.total.json()),
                "server_counted": server.describe(),
                "takes_per_msg": m.takes,
                "empty_takes_per_msg": m.empty,
                "compared_with": versus.map(|(p, ..)| p.scenario()),
                "ratio": ratio,
                "ratio_is": versus.map(|_| "ours / compared (msgs/s medians)"),
                "cpu_ratio": cpu_ratio,
                "cpu_ratio_is": versus.map(|_| "compared / ours (total µs/msg medians)"),
                "goal": versus.map(|(_, _, t)| t),
                "goal_met": goal_met,
            }));
        }
    }
    let mut text = format!(
        "peer table (issue 16): {n} messages, {PRODUCERS} producers (1 message per call, each confirmed), {CONSUMERS} consumers (take up to {TAKE}, ack each batch); median of {runs} rounds, interleaved\n\n"
    );
    text += &crate::report::grid(&header.map(str::to_owned), &rows, &[2, 3, 4, 5, 6, 8, 9]);
    text.push('\n');
    for g in &goals {
        let _ = writeln!(text, "{g}");
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "- ratio = msgs/s of the row / msgs/s of the row named under vs; CPU ratio = total µs/msg of that row / of this one (higher is better for both). sssn memory is compared with a raw tokio channel in the `workqueue` figure."
    );
    let _ = writeln!(
        text,
        "- client CPU = this benchmark process (CLOCK_PROCESS_CPUTIME_ID, every thread) over the round; server CPU = every thread of the processes below (/proc/PID/task/*/schedstat) over the same window; per message = CPU time / {n}."
    );
    for note in notes {
        let _ = writeln!(text, "- {note}");
    }
    out.insert(
        0,
        Outcome::Section(Section {
            scenario: "peers".to_owned(),
            text,
            rows: json_rows,
        }),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A queue in a `VecDeque`, to test the driver without a service.
    #[derive(Clone, Default)]
    struct Fake {
        items: Arc<Mutex<VecDeque<u64>>>,
        /// Deliver the first message twice.
        duplicate: bool,
    }

    #[async_trait]
    impl System for Fake {
        fn durability(&self) -> String {
            "none".to_owned()
        }
        async fn open(&self, _: usize) -> anyhow::Result<Box<dyn Queue>> {
            Ok(Box::new(self.clone()))
        }
    }

    #[async_trait]
    impl Queue for Fake {
        async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
            Ok(Box::new(self.clone()))
        }
        async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
            Ok(Box::new(self.clone()))
        }
        fn server(&self) -> Server {
            Server::InProcess
        }
        async fn close(self: Box<Self>) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[async_trait]
    impl Producer for Fake {
        async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
            let i = Index::of(&serde_json::to_vec(message)?)?;
            self.items.lock().unwrap().push_back(i);
            Ok(())
        }
    }

    #[async_trait]
    impl Consumer for Fake {
        async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
            let mut items = self.items.lock().unwrap();
            let n = max.min(items.len());
            let mut taken: Vec<u64> = items.drain(..n).collect();
            if self.duplicate && taken.first() == Some(&0) {
                taken.truncate(max - 1);
                taken.push(0);
            }
            Ok(taken)
        }
        async fn ack(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_driver_counts_every_message_once() {
        let (sample, server) = round(&Fake::default(), 1, 1_000).await.unwrap();
        assert!(sample.rate > 0.0);
        assert!(sample.server_us.is_none());
        assert!(matches!(server, Server::InProcess));
    }

    #[tokio::test]
    async fn a_message_delivered_twice_fails_the_round() {
        let fake = Fake {
            duplicate: true,
            ..Fake::default()
        };
        let e = round(&fake, 1, 100).await.unwrap_err();
        assert!(format!("{e:#}").contains("delivered twice"), "{e:#}");
    }

    #[test]
    fn the_table_compares_and_says_what_did_not_run() {
        let sample = |rate| Sample {
            rate,
            client_us: 10.0,
            server_us: Some(5.0),
            takes: 0.2,
            empty: 0.1,
        };
        let entry = |key: &str, state, samples: Vec<Sample>| Entry {
            row: ROWS.iter().find(|r| r.key == key).unwrap(),
            state,
            durability: "none".to_owned(),
            server: Some(Server::Processes {
                what: "test".to_owned(),
                pids: vec![1],
            }),
            samples,
        };
        let running = || State::Running(Box::new(Fake::default()));
        let entries = vec![
            entry("redis", running(), vec![sample(100.0), sample(300.0)]),
            entry("sssn-http-memory", running(), vec![sample(150.0)]),
            entry("jetstream", State::Skipped("not listening".into()), vec![]),
            entry("sssn-jetstream", running(), vec![sample(1.0)]),
        ];
        let out = outcomes(&entries, 10, 2);
        let Outcome::Section(s) = &out[0] else {
            panic!("no section first");
        };
        assert!(
            s.text
                .contains("remote (HTTP) client ≥ 1.0× Redis: 0.75×: MISSED")
        );
        assert!(s.text.contains("n/a (raw JetStream"));
        assert_eq!(s.rows.len(), 3);
        assert_eq!(s.rows[1]["ratio"], 0.75);
        assert_eq!(s.rows[1]["total_us_per_msg"]["median"], 15.0);
        assert!(out.iter().any(
            |o| matches!(o, Outcome::Skipped { scenario, .. } if scenario == "peers/jetstream")
        ));
    }

    #[test]
    fn server_cpu_is_the_sum_of_what_each_process_used() {
        let ms = Duration::from_millis;
        let before = BTreeMap::from([(1, ms(5)), (2, ms(3))]);
        let after = BTreeMap::from([(1, ms(8)), (3, ms(2))]);
        assert_eq!(server_delta(&before, &after), ms(5));
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("127.0.0.1:6379", 1), ("127.0.0.1".into(), 6379));
        assert_eq!(host_port("[::1]:4222", 1), ("[::1]".into(), 4222));
        assert_eq!(host_port("redis", 6379), ("redis".into(), 6379));
        assert!(is_loopback("localhost") && is_loopback("127.0.0.2") && is_loopback("[::1]"));
        assert!(!is_loopback("10.1.2.3") && !is_loopback("db.example"));
    }

    #[test]
    fn proc_meters_find_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
        let before = process_cpu(std::process::id()).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(t.elapsed());
        }
        assert!(process_cpu(std::process::id()).unwrap() > before);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(children(std::process::id()).contains(&child.id()));
        // Until the child has exec'd, its command line is still this test's.
        let t = Instant::now();
        while !cmdline(child.id()).starts_with("sleep 5") && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(cmdline(child.id()).starts_with("sleep 5"));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
