//! Runs `sssn serve` on a temporary config and drives it with the client commands.

use std::io::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const SECRET: &str = "cli-test-secret-that-is-32-bytes-long";

fn sssn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sssn"));
    c.env("SSSN_TEST_SECRET", SECRET)
        .env_remove("SSSN_URL")
        .env_remove("SSSN_TOKEN")
        .env_remove("SSSN_JWT_SECRET")
        .env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    sssn().args(args).output().expect("sssn runs")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "sssn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

struct Served {
    child: Child,
    url: String,
    stdout: mpsc::Receiver<String>,
}

fn serve(config: &Path) -> Served {
    let mut child = sssn()
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server prints where it listens");
    let url = first
        .strip_prefix("sssn: listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    Served {
        child,
        url,
        stdout: rx,
    }
}

impl Served {
    /// SIGTERM, then the exit status and the remaining output.
    fn terminate(mut self) -> (bool, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let rest: Vec<String> = self.stdout.try_iter().collect();
        (exit.success(), rest.join("\n"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn serve_then_write_read_claim_ack_nack_tail_stats_info() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let config = dir.path().join("sssn.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:0"

[security]
kind = "jwt"
secret_env = "SSSN_TEST_SECRET"

[[channel]]
id = "jobs"
kind = "work_queue"
visibility = "public"
claim_timeout = "30s"
store = "sqlite:{}"

[[channel]]
id = "events"
kind = "broadcast"
visibility = "public"
"#,
            db.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let server = serve(&config);
    let jobs = format!("{}/channels/jobs", server.url);
    let events = format!("{}/channels/events", server.url);

    let writer = ok(&[
        "token",
        "--config",
        cfg,
        "--subject",
        "worker",
        "--role",
        "write",
    ]);
    let writer = writer.trim();
    let reader = ok(&[
        "token",
        "--config",
        cfg,
        "--subject",
        "dash",
        "--role",
        "read",
        "--channels",
        "events",
    ]);
    let reader = reader.trim();

    // write, batch write
    let id1 = ok(&["write", "--url", &jobs, "--token", writer, r#"{"n": 1}"#]);
    let id1 = id1.trim().to_owned();
    let ids = ok(&[
        "write", "--url", &jobs, "--token", writer, "--batch", "[2, 3]",
    ]);
    let ids: Vec<String> = lines(&ids).into_iter().map(str::to_owned).collect();
    assert_eq!(ids.len(), 2);

    // claim two, ack one, nack one; a second ack is a stale claim
    let claimed = ok(&["claim", "--url", &jobs, "--token", writer, "--limit", "2"]);
    let claims: Vec<Value> = lines(&claimed)
        .into_iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0]["message"]["id"], id1.as_str());
    assert_eq!(claims[0]["message"]["sender_id"], "worker");
    assert_eq!(claims[0]["message"]["content"]["data"]["n"], 1);
    assert_eq!(claims[0]["attempt"], 1);
    assert!(claims[0]["lease_until_ms"].as_u64().unwrap() > 0);
    assert_eq!(
        ok(&["ack", "--url", &jobs, "--token", writer, &id1]).trim(),
        "1"
    );
    assert_eq!(
        ok(&["nack", "--url", &jobs, "--token", writer, &ids[0]]).trim(),
        "1"
    );
    let again = run(&["ack", "--url", &jobs, "--token", writer, &id1]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("stale_claim"));

    // the reader token cannot write, and is scoped to events
    let denied = run(&["write", "--url", &jobs, "--token", reader, "1"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission_denied"));

    // events: write, read from the cursor, tail from the start
    for n in ["\"a\"", "\"b\""] {
        ok(&["write", "--url", &events, "--token", writer, n]);
    }
    let read = ok(&["read", "--url", &events, "--token", reader, "--limit", "10"]);
    let read: Vec<Value> = lines(&read)
        .into_iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(read.len(), 2);
    assert_eq!(read[1]["content"]["data"], "b");
    let tail = ok(&[
        "tail", "--url", &events, "--token", reader, "--after", "0", "--count", "2",
    ]);
    let tail: Vec<Value> = lines(&tail)
        .into_iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tail[0]["seq"], 1);
    assert_eq!(tail[1]["seq"], 2);
    assert_eq!(tail[1]["message"]["content"]["data"], "b");

    let stats: Value =
        serde_json::from_str(&ok(&["stats", "--url", &jobs, "--token", writer])).unwrap();
    assert_eq!(stats["kind"], "work_queue");
    assert_eq!(stats["acks"], 1);
    assert_eq!(stats["state"], "running");
    assert!(stats["store"].as_str().unwrap().starts_with("sqlite:"));
    let info: Value =
        serde_json::from_str(&ok(&["info", "--url", &events, "--token", reader])).unwrap();
    assert_eq!(info["id"], "events");

    let (clean, out) = server.terminate();
    assert!(clean, "SIGTERM exits cleanly");
    assert!(out.contains("drained 2 channels"), "{out}");

    // The work queue is on SQLite: what was not acknowledged is still there.
    let server = serve(&config);
    let jobs = format!("{}/channels/jobs", server.url);
    let claimed = ok(&["claim", "--url", &jobs, "--token", writer, "--limit", "10"]);
    let mut left: Vec<String> = lines(&claimed)
        .into_iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    left.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(left, expected);
    let (clean, _) = server.terminate();
    assert!(clean);
}

#[test]
fn bad_configs_and_arguments_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[[channel]]\nid = \"x\"\nkind = \"nope\"\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown channel kind"));
    let out = run(&["token", "--subject", "x"]);
    assert!(!out.status.success());
    let out = run(&[
        "token",
        "--subject",
        "x",
        "--role",
        "god",
        "--secret",
        SECRET,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown role"));
    let out = run(&[
        "read",
        "--url",
        "http://127.0.0.1:9/nothing-here",
        "--token",
        "t",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not name a channel"));
}

#[test]
fn a_nats_backed_channel_keeps_its_messages_across_restarts() {
    if std::net::TcpStream::connect("127.0.0.1:4222").is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no NATS server at 127.0.0.1:4222"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sssn.toml");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("cli{}-{nanos}", std::process::id());
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
store = "nats://127.0.0.1:4222?prefix={prefix}"
"#
        ),
    )
    .unwrap();
    let server = serve(&config);
    let jobs = format!("{}/channels/jobs", server.url);
    let ids = ok(&[
        "write", "--url", &jobs, "--token", "producer", "--batch", "[1, 2]",
    ]);
    let ids: Vec<&str> = lines(&ids);
    assert_eq!(ids.len(), 2);
    let stats: Value =
        serde_json::from_str(&ok(&["stats", "--url", &jobs, "--token", "x"])).unwrap();
    assert!(
        stats["store"].as_str().unwrap().starts_with("nats://"),
        "{stats}"
    );
    let (clean, _) = server.terminate();
    assert!(clean);

    let server = serve(&config);
    let jobs = format!("{}/channels/jobs", server.url);
    let claimed = ok(&[
        "claim", "--url", &jobs, "--token", "worker", "--limit", "10",
    ]);
    let got: Vec<String> = lines(&claimed)
        .into_iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got, ids);
    assert_eq!(
        ok(&["ack", "--url", &jobs, "--token", "worker", &got[0], &got[1]]).trim(),
        "2"
    );
    let (clean, _) = server.terminate();
    assert!(clean);
}
