//! Crash-test workload for `SqliteStore`, run (and killed with SIGKILL) by the crate's
//! `tests/crash.rs`.
//!
//! ```text
//! sssn-sqlite-crashtest DB LOGDIR RUN work    # runs until killed
//! sssn-sqlite-crashtest DB LOGDIR RUN drain   # consumes and reads everything, then exits
//! ```
//!
//! It opens DB and runs, on a work queue `jobs` (lease 300 ms, `max_deliveries` 3) and a
//! broadcast channel `events`: one producer (work mode only) writing `r{RUN}-q{n}` to
//! `jobs` and `r{RUN}-b{n}` to `events` (every message with `n % 7 == 3` is poison: its
//! consumers always nack it), two consumers claiming from `jobs`, and two shared readers
//! of `events`. After every store call that returned, the task appends what it was told
//! to its own log `LOGDIR/run{RUN}-{task}.log` and fsyncs it, so the checker knows what
//! was acknowledged even when the process dies at any instruction:
//!
//! ```text
//! W q|b ID        the producer's write returned Ok
//! C ID ATTEMPT    a consumer's claim returned the message
//! N ID ATTEMPT    its nack returned Ok (poison)
//! P ID ATTEMPT    the consumer processed it (before acking)
//! A ID ATTEMPT    its ack returned Ok
//! S ID ATTEMPT    its ack was refused as stale
//! R READER ID     a shared read of `events` returned the message
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sssn::message::ChannelMessage;
use sssn::{BroadcastChannel as Events, WorkQueueChannel as Jobs};
use sssn_sqlite::SqliteStore;

/// Messages with `n % POISON_EVERY == POISON_AT` are always nacked.
const POISON_EVERY: u64 = 7;
const POISON_AT: u64 = 3;

/// An append-only log, flushed to the disk after every record.
struct Log(File);

impl Log {
    fn open(dir: &Path, run: u64, task: &str) -> Result<Self, String> {
        let path = dir.join(format!("run{run}-{task}.log"));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map(Self)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn record(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.0.write_all(text.as_bytes()).expect("write log");
        self.0.sync_data().expect("fsync log");
    }
}

fn poison(n: u64) -> bool {
    n % POISON_EVERY == POISON_AT
}

async fn producer(jobs: Jobs, events: Events, mut log: Log, run: u64) {
    for n in 0.. {
        let mut job = ChannelMessage::with_data(
            "producer",
            &serde_json::json!({"n": n, "poison": poison(n)}),
        )
        .expect("content");
        job.id = format!("r{run}-q{n}");
        let id = jobs
            .write_message("producer", job)
            .await
            .expect("write job");
        log.record(&[format!("W q {id}")]);
        let mut event =
            ChannelMessage::with_data("producer", &serde_json::json!({"n": n})).expect("content");
        event.id = format!("r{run}-b{n}");
        let id = events
            .write_message("producer", event)
            .await
            .expect("write event");
        log.record(&[format!("W b {id}")]);
    }
}

async fn consumer(jobs: Jobs, name: String, mut log: Log, drain: bool) {
    loop {
        let claimed = jobs.claim(name.as_str(), 3).await.expect("claim");
        if claimed.is_empty() {
            if drain {
                let stats = jobs.stats().await.expect("stats");
                if stats.stored == 0 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        log.record(
            &claimed
                .iter()
                .map(|c| format!("C {} {}", c.message.id, c.attempt))
                .collect::<Vec<_>>(),
        );
        for c in &claimed {
            let id = c.message.id.clone();
            let is_poison = c.message.data::<serde_json::Value>().expect("json")["poison"]
                .as_bool()
                .expect("poison flag");
            if is_poison {
                let settled = jobs.nack(name.as_str(), &c).await.expect("nack");
                if settled.all_done() {
                    log.record(&[format!("N {id} {}", c.attempt)]);
                }
                continue;
            }
            log.record(&[format!("P {id} {}", c.attempt)]);
            let settled = jobs.ack(name.as_str(), &c).await.expect("ack");
            if settled.all_done() {
                log.record(&[format!("A {id} {}", c.attempt)]);
            } else {
                log.record(&[format!("S {id} {}", c.attempt)]);
            }
        }
    }
}

async fn reader(events: Events, name: String, mut log: Log, drain: bool) {
    loop {
        let got = events.read(name.as_str(), 8).await.expect("read");
        if got.is_empty() {
            if drain {
                let stats = events.stats().await.expect("stats");
                let caught_up = stats
                    .readers
                    .iter()
                    .any(|r| r.reader == name && r.cursor == stats.head_seq);
                if caught_up {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        log.record(
            &got.iter()
                .map(|m| format!("R {name} {}", m.id))
                .collect::<Vec<_>>(),
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, logs, run, mode] = args.as_slice() else {
        return Err("usage: sssn-sqlite-crashtest DB LOGDIR RUN work|drain".to_owned());
    };
    let logs = PathBuf::from(logs);
    let run: u64 = run.parse().map_err(|e| format!("RUN: {e}"))?;
    let drain = match mode.as_str() {
        "work" => false,
        "drain" => true,
        other => return Err(format!("unknown mode '{other}'")),
    };
    let store = Arc::new(SqliteStore::open(db).map_err(|e| e.to_string())?);
    let jobs = Jobs::new("jobs")
        .store(store.clone())
        .claim_timeout(Duration::from_millis(300))
        .max_deliveries(3)
        .build();
    let events = Events::new("events").store(store).build();
    jobs.start().await.map_err(|e| e.to_string())?;
    events.start().await.map_err(|e| e.to_string())?;

    let mut tasks = Vec::new();
    if !drain {
        let log = Log::open(&logs, run, "producer")?;
        tokio::spawn(producer(jobs.clone(), events.clone(), log, run));
    }
    for k in 0..2 {
        let name = format!("consumer-{k}");
        let log = Log::open(&logs, run, &name)?;
        tasks.push(tokio::spawn(consumer(jobs.clone(), name, log, drain)));
        let name = format!("reader-{k}");
        let log = Log::open(&logs, run, &name)?;
        tasks.push(tokio::spawn(reader(events.clone(), name, log, drain)));
    }
    for task in tasks {
        task.await.map_err(|e| format!("task failed: {e}"))?;
    }
    println!("drained");
    Ok(())
}
