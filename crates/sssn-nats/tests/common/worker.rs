//! `sssn-nats-worker` processes driven by a test: spawned with their arguments, their
//! event lines collected while they run, killed with SIGKILL on request or on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct Worker {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// A worker named `name` on the work queue `channel` of the store `url`/`prefix`, with
    /// further arguments `extra` (`--lease-ms`, `--batch`, `--work-ms`, `--results`). Its
    /// stderr (failed claims and acks) goes to `<name>-<test pid>.log` in
    /// `SSSN_WORKER_STDERR_DIR` when that is set, for tracing a failed run; else nowhere.
    pub fn spawn(url: &str, name: &str, prefix: &str, channel: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sssn-nats-worker"))
            .args(["--url", url, "--prefix", prefix])
            .args(["--channel", channel, "--name", name])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("SSSN_WORKER_STDERR_DIR") {
                Some(d) => Stdio::from(
                    std::fs::File::create(
                        std::path::Path::new(&d).join(format!("{name}-{}.log", std::process::id())),
                    )
                    .unwrap(),
                ),
                None => Stdio::null(),
            })
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// How many lines of `kind` it printed so far.
    pub fn count(&self, kind: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(kind))
            .count()
    }

    /// Its lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGKILL; returns every line it printed.
    pub fn kill(&mut self) -> Vec<String> {
        self.child.kill().ok();
        self.child.wait().ok();
        if let Some(r) = self.reader.take() {
            r.join().ok();
        }
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// One event line: `(event, id, attempt, epoch ms)`.
pub fn parse(line: &str) -> Option<(&str, &str, u32, u128)> {
    let mut parts = line.split_whitespace();
    Some((
        parts.next()?,
        parts.next()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}
