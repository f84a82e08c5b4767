//! Shared helpers: a store on the shared server with a unique prefix (deleted on drop), and
//! a private `nats-server` on a free port with its own store directory.

#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sssn::conformance::Harness;
use sssn::store::Store;
use sssn_nats::{JetStreamOptions, JetStreamStore};

/// The shared server of the test machines.
pub const SHARED_URL: &str = "nats://127.0.0.1:4222";

/// A store on the shared server under a fresh prefix, or `None` (with a message) when no
/// server listens there.
pub async fn shared_store(test: &str) -> Option<TestStore> {
    if std::net::TcpStream::connect_timeout(
        &"127.0.0.1:4222".parse().expect("address"),
        Duration::from_millis(300),
    )
    .is_err()
    {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: NATS not reachable at 127.0.0.1:4222"
        );
        return None;
    }
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let store = JetStreamStore::connect_with(
        SHARED_URL,
        JetStreamOptions::default()
            .prefix(prefix)
            .request_timeout(Duration::from_secs(5)),
    )
    .await
    .expect("connect to the shared NATS server");
    Some(TestStore {
        store: Arc::new(store),
    })
}

/// A store that deletes every stream of its prefix when dropped.
pub struct TestStore {
    pub store: Arc<JetStreamStore>,
}

impl TestStore {
    /// A second, independent connection to the same namespace (another "process").
    pub async fn another(&self) -> JetStreamStore {
        JetStreamStore::connect_with(SHARED_URL, self.store.options().clone())
            .await
            .expect("second connection")
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let store = self.store.clone();
        let cleanup = async move {
            if let Err(e) = store.delete_all().await {
                eprintln!("cleanup of {:?} failed: {e}", store.options().prefix);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(cleanup));
            }
            _ => {
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(cleanup);
                })
                .join()
                .ok();
            }
        }
    }
}

#[async_trait]
impl Harness for TestStore {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    async fn advance(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A private `nats-server -js` on `port` with its store in `dir`; killed on drop.
pub struct PrivateServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

impl PrivateServer {
    /// Starts one, or `None` (with a message) when the binary is missing.
    pub fn start(test: &str, dir: &Path) -> Option<Self> {
        if !Path::new(NATS_SERVER).exists() {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {NATS_SERVER} not installed"
            );
            return None;
        }
        let mut s = Self {
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        s.spawn();
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        // Wait until it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    /// Kills the server with SIGKILL (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// Starts it again on the same port with the same store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}
