//! Crash test with real processes: `sssn-sqlite-crashtest` (a producer, two consumers of a
//! work queue with `max_deliveries`, two shared readers of a broadcast channel, all on
//! one SQLite file) is killed with SIGKILL at random moments and restarted on the same
//! file, then run once more to drain everything. The checker compares what each task
//! recorded as acknowledged (see the binary's docs) with what the file holds.
//!
//! `SSSN_CRASH_KILLS` sets the number of kills (default 24); `SSSN_CRASH_SEED` replays a
//! run (the seed is printed).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sssn::policy::ClaimPolicy;
use sssn::store::{ChannelSpec, Store};
use sssn_sqlite::SqliteStore;

const BIN: &str = env!("CARGO_BIN_EXE_sssn-sqlite-crashtest");
const MAX_DELIVERIES: u32 = 3;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// Every complete line of every log of `task` (a killed process may leave half a line).
fn lines(dir: &Path, task: &str, runs: u64) -> Vec<String> {
    let mut out = Vec::new();
    for run in 0..=runs {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("run{run}-{task}.log"))) else {
            continue;
        };
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        out.extend(
            complete
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    out
}

/// `r{run}-q{n}` → n.
fn number(id: &str) -> u64 {
    id.rsplit(['q', 'b'])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad id {id}"))
}

fn is_poison(id: &str) -> bool {
    number(id) % 7 == 3
}

#[test]
fn killed_at_random_moments_nothing_acknowledged_is_lost() {
    let kills = env_u64("SSSN_CRASH_KILLS").unwrap_or(24);
    let seed = env_u64("SSSN_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("crash test: {kills} kills, SSSN_CRASH_SEED={seed}");
    let mut rng = seed | 1;
    let mut random = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let started = Instant::now();

    for run in 0..kills {
        let mut child = Command::new(BIN)
            .arg(&db)
            .arg(&logs)
            .arg(run.to_string())
            .arg("work")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn crashtest");
        // Mostly mid-flow, sometimes while still opening the file.
        let wait = if random(8) == 0 {
            random(30)
        } else {
            60 + random(500)
        };
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "run {run} ended on its own ({status}) instead of being killed"
        );
    }
    let mut drain = Command::new(BIN)
        .arg(&db)
        .arg(&logs)
        .arg(kills.to_string())
        .arg("drain")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run drain");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = drain.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            drain.kill().unwrap();
            drain.wait().unwrap();
            panic!("the drain run did not consume and read everything within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut drain.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "drain run failed: {stderr}");
    println!(
        "{kills} kills and the drain run took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // ----- what the processes were told -----
    let producer = lines(&logs, "producer", kills);
    let written_jobs: Vec<&str> = producer
        .iter()
        .filter_map(|l| l.strip_prefix("W q "))
        .collect();
    let written_events: Vec<&str> = producer
        .iter()
        .filter_map(|l| l.strip_prefix("W b "))
        .collect();
    let consumers: Vec<String> = (0..2)
        .flat_map(|k| lines(&logs, &format!("consumer-{k}"), kills))
        .collect();
    let mut claims: HashMap<(String, u32), usize> = HashMap::new();
    let mut processed: HashSet<String> = HashSet::new();
    let mut acked: HashMap<String, u32> = HashMap::new();
    let mut nacks = 0;
    for line in &consumers {
        let parts: Vec<&str> = line.split(' ').collect();
        let [tag, id, attempt] = parts[..] else {
            panic!("bad consumer line {line:?}");
        };
        let attempt: u32 = attempt.parse().unwrap();
        match tag {
            "C" => *claims.entry((id.to_owned(), attempt)).or_default() += 1,
            "P" => {
                processed.insert(id.to_owned());
            }
            "A" => {
                assert!(
                    acked.insert(id.to_owned(), attempt).is_none(),
                    "{id} acknowledged twice"
                );
            }
            "N" => nacks += 1,
            "S" => {}
            _ => panic!("bad consumer line {line:?}"),
        }
    }

    // ----- what the file holds -----
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dead, job_stats, events, event_stats) = runtime.block_on(async {
        let store = SqliteStore::open(&db).expect("open after the crashes");
        let jobs = store
            .open_channel(&ChannelSpec::with_claims("jobs", ClaimPolicy::default()))
            .await
            .unwrap();
        let events = store
            .open_channel(&ChannelSpec::log("events"))
            .await
            .unwrap();
        let queue = jobs.claims.as_ref().unwrap();
        (
            queue.dead_letters(usize::MAX).await.unwrap(),
            jobs.log.stats().await.unwrap(),
            events.log.range(0, usize::MAX).await.unwrap(),
            events.log.stats().await.unwrap(),
        )
    });

    // ----- work queue -----
    assert_eq!(job_stats.stored, 0, "the drain run consumed everything");
    let dead_ids: HashMap<&str, &sssn::store::DeadLetter> =
        dead.iter().map(|d| (d.message.id.as_str(), d)).collect();
    assert_eq!(dead_ids.len(), dead.len(), "no message dead-lettered twice");
    for d in &dead {
        assert_eq!(d.attempts, MAX_DELIVERIES, "{}: {d:?}", d.message.id);
        assert!(d.reason.contains("max_deliveries"), "{d:?}");
        assert!(
            !acked.contains_key(&d.message.id),
            "{} was acknowledged and yet dead-lettered",
            d.message.id
        );
    }
    for id in &written_jobs {
        if is_poison(id) {
            assert!(
                dead_ids.contains_key(id),
                "poison {id} is not a dead letter"
            );
        } else {
            assert!(
                processed.contains(*id) || dead_ids.contains_key(id),
                "acknowledged write {id} was never processed and is not stored"
            );
        }
    }
    // Messages written but killed before the producer logged them are fine, but every
    // message that was ever claimed must have ended processed or dead.
    for (id, _) in claims.keys() {
        assert!(
            processed.contains(id) || dead_ids.contains_key(id.as_str()),
            "{id} was delivered but neither processed nor dead-lettered"
        );
    }
    for ((id, attempt), n) in &claims {
        assert_eq!(*n, 1, "{id} attempt {attempt} delivered {n} times");
        if let Some(acked_at) = acked.get(id) {
            assert!(
                attempt <= acked_at,
                "{id} was delivered again (attempt {attempt}) after its ack at attempt {acked_at}"
            );
        }
    }
    let poison_dead = dead.iter().filter(|d| is_poison(&d.message.id)).count();

    // ----- broadcast -----
    let order: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.message.id.as_str(), i))
        .collect();
    for id in &written_events {
        assert!(order.contains_key(id), "acknowledged event {id} is missing");
    }
    let mut reader_report = Vec::new();
    for k in 0..2 {
        let name = format!("reader-{k}");
        let got = lines(&logs, &name, kills);
        let mut last: Option<usize> = None;
        let mut gaps = 0;
        for line in &got {
            let id = line
                .strip_prefix(&format!("R {name} "))
                .unwrap_or_else(|| panic!("bad reader line {line:?}"));
            let at = *order
                .get(id)
                .unwrap_or_else(|| panic!("{name} read {id}, which is not stored"));
            let expected = last.map_or(0, |l| l + 1);
            assert!(
                at >= expected,
                "{name}'s cursor moved backwards: read {id} (position {at}) after position {last:?}"
            );
            if at > expected {
                gaps += 1;
            }
            last = Some(at);
        }
        if last != Some(events.len() - 1) {
            // The newest events were read by a run killed before it logged them.
            gaps += 1;
        }
        // A kill between a committed read and its log line loses at most that batch.
        assert!(
            gaps as u64 <= kills,
            "{name}: {gaps} gaps for {kills} kills"
        );
        let cursor = event_stats
            .cursors
            .iter()
            .find(|(r, _)| *r == name)
            .map(|(_, c)| *c);
        assert_eq!(cursor, Some(event_stats.head_seq), "{name}'s stored cursor");
        reader_report.push(format!(
            "{name}: {} messages read in order, {gaps} unlogged batch(es)",
            got.len()
        ));
    }

    println!(
        "checked: {} acknowledged job writes, {} acknowledged event writes, {} deliveries \
         ({} processed, {} acks, {} nacks), {} dead letters ({} poison, {} after crashes), \
         {} stored events; {}",
        written_jobs.len(),
        written_events.len(),
        claims.len(),
        processed.len(),
        acked.len(),
        nacks,
        dead.len(),
        poison_dead,
        dead.len() - poison_dead,
        events.len(),
        reader_report.join("; ")
    );
    assert!(
        written_jobs.len() > 100 && acked.len() > 50,
        "the runs made progress"
    );
}
