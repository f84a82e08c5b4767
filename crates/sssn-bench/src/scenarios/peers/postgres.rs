//! PostgreSQL as a work queue: a table `(id bigserial primary key, body text)` made for
//! each round and dropped after it; producers `INSERT` one row per call (autocommit: the
//! call returns once the commit is flushed, with the server's default
//! `synchronous_commit = on`); consumers claim and acknowledge in one statement,
//! `DELETE … WHERE id IN (SELECT id … ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 10)
//! RETURNING body`, so their ack is part of the take. One connection per producer and
//! consumer. Connection string: `SSSN_BENCH_POSTGRES` (libpq form or URL), default
//! `host=127.0.0.1 port=5432 user=postgres dbname=postgres`.

use std::sync::{Arc, Mutex};

use anyhow::{Context, ensure};
use async_trait::async_trait;
use serde_json::Value;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::{Consumer, Index, Producer, Queue, Server, System, children, cmdline, is_loopback};

/// PostgreSQL.
pub(super) struct Postgres {
    config: Config,
    admin: Arc<Client>,
    /// The postmaster, when the server runs on this machine; else why not measured.
    postmaster: Result<u32, String>,
    durability: String,
}

async fn connect(config: &Config) -> anyhow::Result<Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped.
        let _ = connection.await;
    });
    Ok(client)
}

impl Postgres {
    /// Connects and checks that the server answers.
    pub(super) async fn connect() -> anyhow::Result<Self> {
        let url = std::env::var("SSSN_BENCH_POSTGRES")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into());
        let config: Config = url.parse().context("SSSN_BENCH_POSTGRES")?;
        let admin = connect(&config)
            .await
            .with_context(|| format!("PostgreSQL is not answering at '{url}'"))?;
        let setting = async |name: &str| -> anyhow::Result<String> {
            let row = admin.query_one(&format!("SHOW {name}"), &[]).await?;
            Ok(row.get::<_, String>(0))
        };
        let (fsync, commit, sync_method) = (
            setting("fsync").await?,
            setting("synchronous_commit").await?,
            setting("wal_sync_method").await?,
        );
        let durability = if fsync == "on" && commit != "off" {
            // How the WAL is flushed (`fdatasync` on Linux by default).
            format!("{sync_method} per commit")
        } else {
            format!("fsync = {fsync}, synchronous_commit = {commit}")
        };
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let postmaster = if is_loopback(&host) {
            super::listener_pid(port).ok_or_else(|| {
                format!("no process of this machine owns the socket listening on port {port}")
            })
        } else {
            Err(format!("PostgreSQL runs on {host}, not on this machine"))
        };
        Ok(Self {
            config,
            admin: Arc::new(admin),
            postmaster,
            durability,
        })
    }
}

#[async_trait]
impl System for Postgres {
    fn durability(&self) -> String {
        self.durability.clone()
    }

    async fn open(&self, round: usize) -> anyhow::Result<Box<dyn Queue>> {
        let table = format!("sssn_bench_peers_{}_{round}", std::process::id());
        self.admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; \
                 CREATE TABLE {table} (id bigserial PRIMARY KEY, body text NOT NULL)"
            ))
            .await?;
        Ok(Box::new(Table {
            config: self.config.clone(),
            admin: self.admin.clone(),
            table,
            postmaster: self.postmaster.clone(),
            backends: Mutex::new(Vec::new()),
        }))
    }
}

struct Table {
    config: Config,
    admin: Arc<Client>,
    table: String,
    postmaster: Result<u32, String>,
    /// The server processes of this round's connections.
    backends: Mutex<Vec<u32>>,
}

impl Table {
    /// A new connection, its backend's pid noted for the server's CPU time.
    async fn connection(&self) -> anyhow::Result<Client> {
        let client = connect(&self.config).await?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(u32::try_from(pid)?);
        Ok(client)
    }
}

#[async_trait]
impl Queue for Table {
    async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
        let client = self.connection().await?;
        let insert = client
            .prepare(&format!("INSERT INTO {} (body) VALUES ($1)", self.table))
            .await?;
        Ok(Box::new(TableProducer { client, insert }))
    }

    async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
        let client = self.connection().await?;
        let t = &self.table;
        let claim = client
            .prepare(&format!(
                "DELETE FROM {t} WHERE id IN \
                 (SELECT id FROM {t} ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $1) \
                 RETURNING body"
            ))
            .await?;
        Ok(Box::new(TableConsumer { client, claim }))
    }

    /// The postmaster, its background processes (WAL writer, checkpointer, background
    /// writer, autovacuum, …) and the backends of this round's connections; not the
    /// backends of other clients.
    fn server(&self) -> Server {
        let postmaster = match &self.postmaster {
            Ok(p) => *p,
            Err(why) => return Server::Unmeasured(why.clone()),
        };
        let mut pids = vec![postmaster];
        pids.extend(children(postmaster).into_iter().filter(|&pid| {
            // A client backend shows its client: `user db 127.0.0.1(port) state` or
            // `user db [local] state`.
            let cmd = cmdline(pid);
            !cmd.contains('(') && !cmd.contains("[local]")
        }));
        let backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        for &pid in backends.iter() {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        Server::Processes {
            what: format!(
                "PostgreSQL: the postmaster (pid {postmaster}), its background processes and the {} backends of this round's connections",
                backends.len()
            ),
            pids,
        }
    }

    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await?;
        Ok(())
    }
}

struct TableProducer {
    client: Client,
    insert: Statement,
}

#[async_trait]
impl Producer for TableProducer {
    async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_string(message)?;
        let rows = self.client.execute(&self.insert, &[&body]).await?;
        ensure!(rows == 1, "INSERT inserted {rows} rows");
        Ok(())
    }
}

struct TableConsumer {
    client: Client,
    claim: Statement,
}

#[async_trait]
impl Consumer for TableConsumer {
    async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        let limit = i64::try_from(max)?;
        let rows = self.client.query(&self.claim, &[&limit]).await?;
        rows.iter()
            .map(|r| Index::of(r.get::<_, &str>(0).as_bytes()))
            .collect()
    }

    /// Nothing to do: the `DELETE` that took the batch committed its removal.
    async fn ack(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
