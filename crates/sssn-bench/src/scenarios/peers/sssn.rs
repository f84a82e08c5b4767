//! The sssn rows of the peer table: a work queue on the memory store and on SQLite in this
//! process, the same two behind an `sssn-http` server in a child process (reached with
//! `RemoteChannel`, one HTTP request per call), the same two again over the stream
//! transport (WebSocket frames on one connection), and a work queue on `JetStreamStore`.
//!
//! Every call into the sssn API made by the peer scenario is in this file, so that a
//! change of that API touches nothing else. All four go through
//! [`ChannelEndpoint`], the interface a local `Channel` and a `RemoteChannel` share:
//! `write_batch` of one payload, `claim`, `ack`.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::sssn::channel::WorkQueueChannel;
use ::sssn::security::Principal;
use ::sssn::store::{Claimed, Settle, Settled, Store};
use ::sssn::{Channel, ChannelEndpoint, Payload};
use ::sssn_http::{RemoteChannel, Server as HttpServer, Transport};
use ::sssn_nats::{JetStreamOptions, JetStreamStore};
use ::sssn_sqlite::SqliteStore;
use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use serde_json::Value;

use super::{Consumer, Index, Producer, Queue, Server, System, host_port};

/// The hidden subcommand that runs the HTTP server of the `sssn over HTTP` rows.
pub const SERVER_CHILD: &str = "__peers-server";

/// The channel's lease: far longer than a round, so nothing is delivered twice.
const LEASE: Duration = Duration::from_secs(60);

enum Kind {
    Memory,
    Sqlite(tempfile::TempDir),
    HttpMemory,
    HttpSqlite(tempfile::TempDir),
    StreamMemory,
    StreamSqlite(tempfile::TempDir),
    JetStream {
        store: Arc<JetStreamStore>,
        server: Server,
    },
}

/// One of the sssn rows.
pub(super) struct Sssn {
    kind: Kind,
}

fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("sssn-bench-peers")
        .tempdir()
        .context("creating a temporary directory")
}

impl Sssn {
    /// A work queue on the memory store, in this process.
    pub(super) fn memory() -> Self {
        Self { kind: Kind::Memory }
    }

    /// A work queue on `SqliteStore` (`synchronous = FULL`, a new file per round in a
    /// temporary directory), in this process.
    pub(super) fn sqlite() -> anyhow::Result<Self> {
        Ok(Self {
            kind: Kind::Sqlite(temp_dir()?),
        })
    }

    /// A memory-store work queue served by `sssn-http` in a child process.
    pub(super) fn http_memory() -> Self {
        Self {
            kind: Kind::HttpMemory,
        }
    }

    /// A memory-store work queue served by `sssn-http` in a child process, reached over
    /// the stream transport.
    pub(super) fn stream_memory() -> Self {
        Self {
            kind: Kind::StreamMemory,
        }
    }

    /// A SQLite-store work queue served by `sssn-http` in a child process, reached over
    /// the stream transport.
    pub(super) fn stream_sqlite() -> anyhow::Result<Self> {
        Ok(Self {
            kind: Kind::StreamSqlite(temp_dir()?),
        })
    }

    /// A SQLite-store work queue served by `sssn-http` in a child process.
    pub(super) fn http_sqlite() -> anyhow::Result<Self> {
        Ok(Self {
            kind: Kind::HttpSqlite(temp_dir()?),
        })
    }

    /// A work queue on `JetStreamStore` (NATS at `addr`, `host:port`).
    pub(super) async fn jetstream(addr: &str) -> anyhow::Result<Self> {
        tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("NATS is not listening on {addr}"))?;
        let prefix = format!("peers{}", std::process::id());
        let store = JetStreamStore::connect_with(
            &format!("nats://{addr}"),
            // Acks remove where the server keeps interest streams through a crash (the
            // default: 2.15+), and delete on older servers.
            JetStreamOptions::default().prefix(prefix),
        )
        .await
        .with_context(|| format!("JetStream on {addr}"))?;
        let (host, port) = host_port(addr, 4222);
        Ok(Self {
            kind: Kind::JetStream {
                store: Arc::new(store),
                server: Server::listening("nats-server", &host, port),
            },
        })
    }
}

fn queue(name: String, store: Option<Arc<dyn Store>>) -> Channel {
    let builder = WorkQueueChannel::new(name).claim_timeout(LEASE);
    match store {
        Some(s) => builder.store(s).build().erased(),
        None => builder.build().erased(),
    }
}

#[async_trait]
impl System for Sssn {
    fn durability(&self) -> String {
        match &self.kind {
            Kind::Memory | Kind::HttpMemory | Kind::StreamMemory => "none".to_owned(),
            Kind::Sqlite(_) | Kind::HttpSqlite(_) | Kind::StreamSqlite(_) => {
                "fdatasync per group commit (synchronous = FULL)".to_owned()
            }
            Kind::JetStream { .. } => "written, not fsynced (file storage)".to_owned(),
        }
    }

    async fn open(&self, round: usize) -> anyhow::Result<Box<dyn Queue>> {
        let name = format!("peers-{round}");
        let local = |channel: Channel, server: Server, file: Option<PathBuf>| SssnQueue {
            endpoint: Arc::new(channel.clone()),
            channel: Some(channel),
            child: None,
            server,
            file,
            roles: AtomicUsize::new(0),
        };
        let q = match &self.kind {
            Kind::Memory => {
                let channel = queue(name, None);
                channel.start().await?;
                local(channel, Server::InProcess, None)
            }
            Kind::Sqlite(dir) => {
                let path = dir.path().join(format!("{name}.db"));
                let store = Arc::new(SqliteStore::open(&path)?);
                let channel = queue(name, Some(store));
                channel.start().await?;
                local(channel, Server::InProcess, Some(path))
            }
            Kind::JetStream { store, server } => {
                let store: Arc<dyn Store> = store.clone();
                let channel = queue(name, Some(store));
                channel.start().await?;
                local(channel, server.clone(), None)
            }
            Kind::HttpMemory | Kind::HttpSqlite(_) | Kind::StreamMemory | Kind::StreamSqlite(_) => {
                let (args, file) = match &self.kind {
                    Kind::HttpSqlite(dir) | Kind::StreamSqlite(dir) => {
                        let path = dir.path().join(format!("{name}.db"));
                        (
                            vec!["sqlite".to_owned(), path.display().to_string()],
                            Some(path),
                        )
                    }
                    _ => (vec!["memory".to_owned()], None),
                };
                let (child, url) = ServerChild::spawn(args).await?;
                let pid = child.child.id();
                let transport = match &self.kind {
                    Kind::StreamMemory | Kind::StreamSqlite(_) => Transport::Stream,
                    _ => Transport::Http,
                };
                SssnQueue {
                    endpoint: Arc::new(RemoteChannel::connect(&url, None)?.transport(transport)),
                    channel: None,
                    child: Some(child),
                    server: Server::Processes {
                        what: format!(
                            "the sssn-http server in a child process (pid {pid}, every thread)"
                        ),
                        pids: vec![pid],
                    },
                    file,
                    roles: AtomicUsize::new(0),
                }
            }
        };
        Ok(Box::new(q))
    }

    async fn finish(&self) {
        if let Kind::JetStream { store, .. } = &self.kind {
            // Leave nothing behind on the shared server.
            let _ = store.delete_all().await;
        }
    }
}

struct SssnQueue {
    endpoint: Arc<dyn ChannelEndpoint>,
    /// The local channel, to stop at the end.
    channel: Option<Channel>,
    /// The server process, for the HTTP rows.
    child: Option<ServerChild>,
    server: Server,
    /// The SQLite file, removed at the end.
    file: Option<PathBuf>,
    roles: AtomicUsize,
}

impl SssnQueue {
    fn principal(&self, role: &str) -> Principal {
        Principal::local(format!(
            "{role}-{}",
            self.roles.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

#[async_trait]
impl Queue for SssnQueue {
    async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
        Ok(Box::new(SssnProducer {
            endpoint: self.endpoint.clone(),
            me: self.principal("producer"),
        }))
    }

    async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
        Ok(Box::new(SssnConsumer {
            endpoint: self.endpoint.clone(),
            me: self.principal("consumer"),
            taken: Vec::new(),
        }))
    }

    fn server(&self) -> Server {
        self.server.clone()
    }

    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        let Self {
            endpoint,
            channel,
            child,
            file,
            ..
        } = *self;
        drop(endpoint);
        if let Some(channel) = channel {
            channel.stop().await;
        }
        if let Some(child) = child {
            child.stop().await?;
        }
        if let Some(path) = file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        Ok(())
    }
}

struct SssnProducer {
    endpoint: Arc<dyn ChannelEndpoint>,
    me: Principal,
}

#[async_trait]
impl Producer for SssnProducer {
    async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        // A write returns once the store holds the message (durably, on SQLite).
        let ids = self
            .endpoint
            .write_batch(&self.me, vec![Payload::Data(message.clone())])
            .await?;
        ensure!(ids.len() == 1, "{} ids for one message", ids.len());
        Ok(())
    }
}

struct SssnConsumer {
    endpoint: Arc<dyn ChannelEndpoint>,
    me: Principal,
    taken: Vec<String>,
}

impl SssnConsumer {
    /// Keeps the ids of `claimed` for the next acknowledgement; returns their indexes.
    fn hold(&mut self, claimed: &[Claimed]) -> anyhow::Result<Vec<u64>> {
        self.taken = claimed.iter().map(|c| c.message.id.clone()).collect();
        claimed
            .iter()
            .map(|c| Ok(c.message.data::<Index>()?.get()))
            .collect()
    }

    fn check_acked(&self, settled: &Settled) -> anyhow::Result<()> {
        let done = settled.done.len();
        ensure!(
            done == self.taken.len(),
            "acknowledged {done} of {} claimed",
            self.taken.len()
        );
        Ok(())
    }
}

#[async_trait]
impl Consumer for SssnConsumer {
    async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        let claimed = self.endpoint.claim(&self.me, max).await?;
        self.hold(&claimed)
    }

    async fn ack(&mut self) -> anyhow::Result<()> {
        let ids: Vec<&str> = self.taken.iter().map(String::as_str).collect();
        let settled = self.endpoint.settle(&self.me, &ids, Settle::Ack).await?;
        self.check_acked(&settled)
    }

    async fn ack_and_take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        let ids: Vec<&str> = self.taken.iter().map(String::as_str).collect();
        let (settled, claimed) = self
            .endpoint
            .settle_and_claim(&self.me, &ids, Settle::Ack, max)
            .await?;
        self.check_acked(&settled)?;
        self.hold(&claimed)
    }

    fn combines_ack_and_take(&self) -> bool {
        // SSSN_BENCH_SEPARATE_ACK=1 measures the two calls instead (what the combined call
        // saves).
        std::env::var_os("SSSN_BENCH_SEPARATE_ACK").is_none_or(|v| v.is_empty() || v == "0")
    }
}

/// The `sssn-http` server of one round, in a child process (this binary re-executed with
/// [`SERVER_CHILD`]), so that its CPU time is measured apart from the client's.
struct ServerChild {
    child: Child,
}

impl ServerChild {
    /// Starts the child; returns it and the queue's URL it printed.
    async fn spawn(args: Vec<String>) -> anyhow::Result<(Self, String)> {
        tokio::task::spawn_blocking(move || {
            let exe = std::env::current_exe().context("locating the benchmark binary")?;
            let mut child = Command::new(exe)
                .arg(SERVER_CHILD)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting the HTTP server child")?;
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                BufReader::new(out).read_line(&mut line)?;
            }
            let child = Self { child };
            ensure!(
                line.starts_with("http://"),
                "the HTTP server child printed no URL"
            );
            Ok((child, line.trim().to_owned()))
        })
        .await
        .context("HTTP server child")?
    }

    /// Closes the child's standard input (it shuts down then) and waits for it to exit.
    async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Some(status) = self.child.try_wait()? {
                    ensure!(
                        status.success(),
                        "the HTTP server child ended with {status}"
                    );
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            bail!("the HTTP server child did not stop within 10 s");
        })
        .await
        .context("HTTP server child")?
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        // Only if it is still running (an error path): never leave it behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child: serves one public work queue `jobs` (memory store, or `sqlite PATH`) on
/// 127.0.0.1 at a free port, prints the queue's URL, and serves until its standard input
/// closes.
pub fn server_child(args: &[String]) -> anyhow::Result<()> {
    let store: Option<Arc<dyn Store>> = match args {
        [kind] if kind == "memory" => None,
        [kind, path] if kind == "sqlite" => Some(Arc::new(SqliteStore::open(path)?)),
        _ => bail!("usage: {SERVER_CHILD} memory | {SERVER_CHILD} sqlite PATH"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let builder = WorkQueueChannel::new("jobs").public().claim_timeout(LEASE);
        let channel = match store {
            Some(s) => builder.store(s).build(),
            None => builder.build(),
        };
        channel.start().await?;
        let server = HttpServer::builder()
            .channel(channel.clone())
            .bind("127.0.0.1:0")
            .await?;
        println!("{}", server.channel_url("jobs"));
        let (closed, wait) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = closed.send(());
        });
        let _ = wait.await;
        server.shutdown().await?;
        channel.stop().await;
        anyhow::Ok(())
    })
}
