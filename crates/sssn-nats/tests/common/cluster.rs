//! A three-node JetStream cluster: each node a `nats-server` process (own name, client
//! port, route port and store directory), routes to every node, on loopback or each in
//! its own network namespace. Nodes can be killed with SIGKILL and restarted on their
//! directory; the whole cluster is killed on drop.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};

use super::{Release, ServerProcess, free_port, listening};

/// Where a node listens.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Address it listens on (clients and routes).
    pub host: String,
    /// Network namespace to run it in (`None`: this one).
    pub netns: Option<String>,
}

pub struct Node {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub route_port: u16,
    pub dir: PathBuf,
    netns: Option<String>,
    process: Option<ServerProcess>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }
}

pub struct Cluster {
    pub release: Release,
    pub nodes: Vec<Node>,
    binary: PathBuf,
    routes: String,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes on 127.0.0.1, or why not (binary missing).
    pub fn try_start(release: Release) -> Result<Self, String> {
        let here = Placement {
            host: "127.0.0.1".into(),
            netns: None,
        };
        Self::try_start_on(release, [here.clone(), here.clone(), here])
    }

    /// Three nodes at `placements` (the ports are free ones of this namespace; in
    /// separate namespaces they are free anyway).
    pub fn try_start_on(release: Release, placements: [Placement; 3]) -> Result<Self, String> {
        let binary = release.binary()?;
        let tmp = tempfile::tempdir().expect("temporary directory");
        let mut nodes: Vec<Node> = placements
            .into_iter()
            .enumerate()
            .map(|(i, p)| Node {
                name: format!("n{}", i + 1),
                host: p.host,
                port: free_port(),
                route_port: free_port(),
                dir: tmp.path().join(format!("n{}", i + 1)),
                netns: p.netns,
                process: None,
            })
            .collect();
        let routes = nodes
            .iter()
            .map(|n| format!("nats://{}:{}", n.host, n.route_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            release,
            nodes: Vec::new(),
            binary,
            routes,
            _tmp: tmp,
        };
        for node in &mut nodes {
            cluster.spawn(node);
        }
        cluster.nodes = nodes;
        for i in 0..3 {
            cluster.wait_listening(i);
        }
        Ok(cluster)
    }

    fn spawn(&self, node: &mut Node) {
        std::fs::create_dir_all(&node.dir).expect("node directory");
        let args: Vec<String> = vec![
            "-n".into(),
            node.name.clone(),
            "-a".into(),
            node.host.clone(),
            "-p".into(),
            node.port.to_string(),
            "-js".into(),
            "-sd".into(),
            node.dir.to_string_lossy().into_owned(),
            "--cluster_name".into(),
            "sssn-test".into(),
            "--cluster".into(),
            format!("nats://{}:{}", node.host, node.route_port),
            "--routes".into(),
            self.routes.clone(),
        ];
        let log = node.dir.join("server.log");
        node.process = Some(ServerProcess::spawn(
            &self.binary,
            &args,
            &log,
            node.netns.as_deref(),
        ));
    }

    fn wait_listening(&self, i: usize) {
        let node = &self.nodes[i];
        if node.netns.is_some() {
            return; // not reachable from this namespace; `ready` checks from the client
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(&node.addr()) {
            assert!(
                Instant::now() < deadline,
                "node {} did not start: {}",
                node.name,
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.join("server.log")).unwrap_or_default()
    }

    /// `nats://h1:p1,h2:p2,h3:p3` (every node, running or not).
    pub fn servers(&self) -> String {
        format!(
            "nats://{}",
            self.nodes
                .iter()
                .map(Node::addr)
                .collect::<Vec<_>>()
                .join(",")
        )
    }

    /// The store URL with `query` (`replicas=3&prefix=…`).
    pub fn url(&self, query: &str) -> String {
        if query.is_empty() {
            self.servers()
        } else {
            format!("{}?{query}", self.servers())
        }
    }

    /// SIGKILL of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].process.take() {
            p.kill();
        }
    }

    /// Starts node `i` again on its ports and directory.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let mut node = std::mem::replace(
            &mut self.nodes[i],
            Node {
                name: String::new(),
                host: String::new(),
                port: 0,
                route_port: 0,
                dir: PathBuf::new(),
                netns: None,
                process: None,
            },
        );
        self.spawn(&mut node);
        self.nodes[i] = node;
        self.wait_listening(i);
    }

    /// Index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Waits until the cluster can place an R3 stream (every node joined, a meta leader
    /// elected): creates and deletes a probe stream. Panics after `timeout`.
    pub async fn ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let client = loop {
            match async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(2))
                .connect(self.nodes.iter().map(Node::addr).collect::<Vec<_>>())
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cluster not reachable: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let js = jetstream::new(client);
        let name = format!("READY{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        loop {
            let created = js
                .create_stream(stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("ready.{name}")],
                    num_replicas: 3,
                    storage: stream::StorageType::Memory,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cluster of nats-server {} not ready within {timeout:?}: {e}\n{}",
                        self.release.label(),
                        (0..3)
                            .map(|i| format!("--- {} ---\n{}", self.nodes[i].name, self.log(i)))
                            .collect::<String>()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let _ = js.delete_stream(&name).await;
    }
}

/// The current leader of `stream` and its replicas as the cluster reports them (through
/// any node `client` is connected to): `(leader, [(peer, current)])`.
pub async fn stream_leader(
    js: &jetstream::Context,
    stream: &str,
) -> Result<(String, Vec<(String, bool)>), String> {
    let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let info = s.info().await.map_err(|e| e.to_string())?;
    let cluster = info.cluster.clone().ok_or("no cluster info")?;
    let leader = cluster.leader.clone().ok_or("no leader")?;
    let replicas = cluster
        .replicas
        .iter()
        .map(|r| (r.name.clone(), r.current))
        .collect();
    Ok((leader, replicas))
}

/// One cluster of `release` per test process, shared by its tests (each under its own
/// prefix), ready for R3 streams; it lives until the process exits (the watchdogs stop
/// its nodes). Only for tests that do not kill nodes. `Err`: the binary is missing (a
/// reason to skip); a cluster that does not come up is a panic (a failure).
pub fn shared_cluster(release: Release) -> Result<&'static Cluster, String> {
    static CLUSTERS: [OnceLock<Result<Cluster, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let found = CLUSTERS[release as usize].get_or_init(|| {
        // A second cluster on fresh ports when the first does not elect a meta leader in
        // time (seen once on a machine loaded by parallel builds).
        for _attempt in 0..2 {
            let cluster = match Cluster::try_start(release) {
                Ok(c) => c,
                Err(reason) => return Err(reason),
            };
            let ready = std::thread::scope(|s| {
                s.spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(cluster.ready(Duration::from_secs(45)));
                })
                .join()
            });
            if ready.is_ok() {
                return Ok(cluster);
            }
        }
        // Remembered as a failure (not retried by every test); the panic message of the
        // first test says why.
        Err(FAILED.to_owned())
    });
    match found {
        Ok(c) => Ok(c),
        Err(reason) if reason == FAILED => {
            panic!(
                "the shared cluster of nats-server {} did not start",
                release.label()
            )
        }
        Err(reason) => Err(reason.clone()),
    }
}

const FAILED: &str = "the cluster did not become ready";
