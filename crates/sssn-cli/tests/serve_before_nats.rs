//! `sssn serve` with a NATS store starts while NATS is not reachable yet: it listens,
//! `/healthz` answers 503 `degraded` naming the channels that are not running, and once a
//! nats-server comes up on the configured port the channels start by themselves
//! (`/healthz` 200 `ok`) and serve writes.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server binary: 2.15 from `.ci/run`'s venv or `SSSN_NATS_SERVER_2_15`, else the
/// Debian 2.9 one.
fn nats_server() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/nats-server");
    [
        std::env::var_os("SSSN_NATS_SERVER_2_15").map(PathBuf::from),
        Some(venv),
        std::env::var_os("SSSN_NATS_SERVER_2_9").map(PathBuf::from),
        Some(PathBuf::from("/usr/sbin/nats-server")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.1: (status, body).
fn get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to sssn serve");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn serve_starts_before_nats_and_recovers() {
    let Some(binary) = nats_server() else {
        let reason = "no nats-server binary (run .ci/run, or set SSSN_NATS_SERVER_2_15)";
        assert!(
            std::env::var("SSSN_REQUIRE_NATS").is_err(),
            "serve_starts_before_nats_and_recovers: {reason} (SSSN_REQUIRE_NATS is set)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED serve_starts_before_nats_and_recovers: {reason}"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sssn.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:0"

[[channel]]
id = "jobs"
kind = "work_queue"
visibility = "public"
store = "nats://127.0.0.1:{port}?prefix=early&request_timeout=1s"
"#
        ),
    )
    .unwrap();

    let mut serve = Command::new(env!("CARGO_BIN_EXE_sssn"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let serve = Killed(serve);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let base = first
        .strip_prefix("sssn: listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("sssn serve did not start without NATS: {first:?}"))
        .to_owned();

    let (status, body) = get(&base, "/healthz");
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded", "{body}");
    assert_eq!(health["not_running"], serde_json::json!(["jobs"]), "{body}");

    let started = Instant::now();
    let _nats = Killed(
        Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    loop {
        let (status, body) = get(&base, "/healthz");
        if status == 200 {
            assert!(body.contains("\"ok\""), "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the channel did not start after NATS came up: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "serve_starts_before_nats_and_recovers: healthy {:?} after nats-server started",
        started.elapsed()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sssn"))
        .args(["write", "--url", &format!("{base}/channels/jobs")])
        .args(["--token", "producer", "42"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "write after recovery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(serve);
}
