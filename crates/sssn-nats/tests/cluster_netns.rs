//! The cluster across "hosts": each node in its own network namespace, joined to a
//! client namespace by a veth pair on a bridge (10.213.K.0/24, K per test run), and a
//! partition that isolates the jobs stream's leader, made with iptables inside that
//! node's namespace (every packet in and out of its link dropped), then healed.
//!
//! The client is this test binary again, run inside the client namespace (`netns_driver`,
//! ignored in normal runs): it writes and consumes jobs before, during and after the
//! partition and reports. Passing means: no confirmed write lost, no acknowledged job
//! claimed again, the queue drained, the isolated node current again after the heal.
//! Needs root, `ip netns` and `iptables` (skipped with a reason otherwise); everything
//! it creates is deleted at the end, also when it fails.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use sssn::ChannelMessage;
use sssn::channel::WorkQueueChannel;
use sssn_nats::JetStreamStore;

use common::Release;
use common::cluster::{Cluster, Placement, stream_leader};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why this machine cannot run the test, if it cannot.
fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root (network namespaces and iptables)".into());
    }
    if Command::new("ip").args(["netns", "list"]).output().is_err() {
        return Some("`ip` (iproute2) not installed".into());
    }
    if Command::new("iptables").arg("--version").output().is_err() {
        return Some("iptables not installed (apt-get install iptables)".into());
    }
    None
}

/// The namespaces, bridge and links of one run; all deleted on drop.
struct Net {
    client: String,
    nodes: [String; 3],
    subnet: String,
}

impl Net {
    fn create(release: Release) -> Result<Self, String> {
        // K from the pid and the release: concurrent runs (other checkouts, the other
        // release) get other names and subnets.
        let k = std::process::id() % 100 * 2 + release as u32 + 20;
        let base = format!("sssnt{k}");
        let net = Self {
            client: format!("{base}-c"),
            nodes: [1, 2, 3].map(|i| format!("{base}-n{i}")),
            subnet: format!("10.213.{k}"),
        };
        net.delete(); // leftovers of a run with the same pid that was killed
        sh(&["ip", "netns", "add", &net.client])?;
        let c = net.client.as_str();
        sh(&["ip", "-n", c, "link", "set", "lo", "up"])?;
        sh(&["ip", "-n", c, "link", "add", "br0", "type", "bridge"])?;
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{}.10/24", net.subnet),
            "dev",
            "br0",
        ])?;
        sh(&["ip", "-n", c, "link", "set", "br0", "up"])?;
        for (i, ns) in net.nodes.iter().enumerate() {
            let port = format!("p{}", i + 1);
            sh(&["ip", "netns", "add", ns])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            sh(&[
                "ip", "-n", c, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ])?;
            sh(&["ip", "-n", c, "link", "set", &port, "master", "br0"])?;
            sh(&["ip", "-n", c, "link", "set", &port, "up"])?;
            let addr = format!("{}.{}/24", net.subnet, i + 1);
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    fn host(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    /// Drops every packet in and out of node `i`'s link.
    fn isolate(&self, i: usize) -> Result<(), String> {
        let ns = self.nodes[i].as_str();
        sh(&[
            "ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "eth0", "-j", "DROP",
        ])?;
        sh(&[
            "ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-o", "eth0", "-j", "DROP",
        ])
    }

    fn heal(&self, i: usize) -> Result<(), String> {
        sh(&["ip", "netns", "exec", &self.nodes[i], "iptables", "-F"])
    }

    fn delete(&self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.client)) {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.delete();
    }
}

async fn partition_isolating_the_leader(release: Release) {
    let test = format!(
        "partition_isolating_the_leader (nats-server {})",
        release.label()
    );
    if let Err(reason) = release.binary() {
        return common::skip(&test, &reason);
    }
    if let Some(reason) = unavailable() {
        return common::skip(&test, &reason);
    }
    let _one_at_a_time = SERIAL.lock().await;
    let net = Net::create(release).unwrap_or_else(|e| panic!("{test}: setting up namespaces: {e}"));
    let placements = [0, 1, 2].map(|i| Placement {
        host: net.host(i),
        netns: Some(net.nodes[i].clone()),
    });
    let cluster = Cluster::try_start_on(release, placements).unwrap();
    let prefix = common::fresh_prefix();
    let url = cluster.url(&format!(
        "replicas=3&prefix={prefix}&request_timeout=2s&ping_interval=1s&retry_connect=true"
    ));
    let mut driver = Command::new("ip")
        .args(["netns", "exec", &net.client])
        .arg(std::env::current_exe().unwrap())
        .args(["netns_driver", "--exact", "--ignored", "--nocapture"])
        .env("SSSN_NETNS_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut to_driver = driver.stdin.take().unwrap();
    let from_driver = BufReader::new(driver.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut isolated = None;
    let mut result = None;
    for line in from_driver.lines().map_while(Result::ok) {
        assert!(
            Instant::now() < deadline,
            "{test}: the driver takes too long"
        );
        if let Some(name) = line.strip_prefix("ISOLATE ") {
            let i = cluster.index_of(name.trim()).expect("a node name");
            net.isolate(i).unwrap();
            isolated = Some(i);
            writeln!(to_driver, "ISOLATED").unwrap();
        } else if line.starts_with("HEAL") {
            net.heal(isolated.expect("isolated first")).unwrap();
            writeln!(to_driver, "HEALED").unwrap();
        } else if let Some(r) = line.strip_prefix("RESULT ") {
            result = Some(r.to_owned());
        }
    }
    let status = driver.wait().unwrap();
    if let Some(i) = isolated {
        let _ = net.heal(i);
    }
    println!(
        "netns ({}): {}",
        release.label(),
        result.as_deref().unwrap_or("no result")
    );
    assert!(
        status.success() && result.is_some(),
        "{test}: the driver failed ({status}); node logs:\n{}",
        (0..3)
            .map(|i| cluster.log(i))
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    drop(cluster);
    drop(net);
}

/// Sends `line` to the test and waits for its answer.
fn ask(line: &str, answer: &str) {
    println!("{line}");
    std::io::stdout().flush().unwrap();
    let mut got = String::new();
    std::io::stdin().read_line(&mut got).unwrap();
    assert_eq!(got.trim(), answer);
}

/// Writes `n` jobs, each retried until confirmed (same message, so idempotent).
async fn write_jobs(jobs: &sssn::WorkQueueChannel, n: usize, confirmed: &mut Vec<String>) -> usize {
    let mut failures = 0;
    for i in 0..n {
        let m = ChannelMessage::with_data("ingestor", &serde_json::json!({ "n": i })).unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            match jobs.write_message("ingestor", m.clone()).await {
                Ok(id) => {
                    confirmed.push(id);
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "writes never recovered: {e}");
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    failures
}

/// What the consumer saw: acknowledged ids (the ack returned `Ok`) with the stream
/// sequence each was claimed at, ids whose ack failed (no reply, or an error reply: the
/// delete may or may not have been applied), and claims of an id after an `Ok` ack (must
/// stay empty): the id, the sequence it was acknowledged at and the one it came back at
/// (the same sequence: a removal that did not hold; another: the id stored twice).
#[derive(Default)]
struct Consumed {
    acked: HashMap<String, u64>,
    ack_unknown: HashSet<String>,
    again: Vec<(String, u64, u64)>,
    failures: usize,
}

impl Consumed {
    fn covers(&self, id: &str) -> bool {
        self.acked.contains_key(id) || self.ack_unknown.contains(id)
    }
}

/// Claims and acknowledges until every id of `want` was acknowledged or had an ack whose
/// outcome is unknown, and, with `drain`, until the queue is empty (an unknown ack that
/// was not applied comes back after the lease and is acknowledged then). Bounded.
async fn consume(jobs: &sssn::WorkQueueChannel, want: &[String], drain: bool, c: &mut Consumed) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_error = String::new();
    let (mut empty, mut stale) = (0, 0);
    loop {
        if want.iter().all(|id| c.covers(id)) {
            if !drain {
                return;
            }
            if jobs.stats().await.is_ok_and(|s| s.stored == 0) {
                return;
            }
        }
        if Instant::now() >= deadline {
            let stats = jobs.stats().await;
            panic!(
                "only {} of {} consumed in 60 s ({} acknowledged, {} with an unknown ack): \
                 {} failed calls (last: {last_error}), {empty} empty claims, {stale} stale acks; \
                 stats {stats:?}",
                want.iter().filter(|id| c.covers(id)).count(),
                want.len(),
                c.acked.len(),
                c.ack_unknown.len(),
                c.failures,
            );
        }
        let claimed = match jobs.claim("worker", 20).await {
            Ok(claimed) => claimed,
            Err(e) => {
                c.failures += 1;
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            empty += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        for job in &claimed {
            if let Some(&acked_at) = c.acked.get(&job.message.id) {
                c.again.push((job.message.id.clone(), acked_at, job.seq));
            }
        }
        // One by one: a stale or failed ack must not hide which ids were acknowledged.
        for job in claimed {
            let (id, seq) = (job.message.id.clone(), job.seq);
            match jobs.ack("worker", &job).await {
                Ok(settled) if settled.all_done() => {
                    c.ack_unknown.remove(&id);
                    c.acked.insert(id, seq);
                }
                Ok(_) => stale += 1,
                Err(e) => {
                    c.failures += 1;
                    last_error = e.to_string();
                    c.ack_unknown.insert(id);
                }
            }
        }
    }
}

/// The client half, run by `partition_isolating_the_leader` inside the client namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the client half of partition_isolating_the_leader, run by it inside a network namespace"]
async fn netns_driver() {
    let url = std::env::var("SSSN_NETNS_URL").expect("run by partition_isolating_the_leader");
    let store = Arc::new(JetStreamStore::connect(&url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let jobs = loop {
        let jobs = WorkQueueChannel::new("jobs")
            .claim_timeout(Duration::from_secs(3))
            .store(store.clone())
            .build();
        match jobs.start().await {
            Ok(()) => break jobs,
            Err(e) => {
                assert!(Instant::now() < deadline, "cluster not ready: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let js = jetstream::new(store.client().clone());
    let mut confirmed = Vec::new();
    let mut consumed = Consumed::default();
    let mut write_failures = write_jobs(&jobs, 100, &mut confirmed).await;
    consume(&jobs, &confirmed[..50], false, &mut consumed).await;

    let stream = store.stream_name("jobs");
    let (leader, _) = stream_leader(&js, &stream).await.unwrap();
    ask(&format!("ISOLATE {leader}"), "ISOLATED");
    let cut = Instant::now();
    let before = confirmed.len();
    write_failures += write_jobs(&jobs, 1, &mut confirmed).await;
    let first_write = cut.elapsed();
    write_failures += write_jobs(&jobs, 99, &mut confirmed).await;
    consume(&jobs, &confirmed[..150], false, &mut consumed).await;
    let during = confirmed.len() - before;
    let (new_leader, _) = stream_leader(&js, &stream).await.unwrap();
    assert_ne!(new_leader, leader, "the majority elected another leader");

    ask("HEAL", "HEALED");
    let healed = Instant::now();
    let caught_up = loop {
        if let Ok((_, replicas)) = stream_leader(&js, &stream).await
            && replicas.len() == 2
            && replicas.iter().all(|(_, current)| *current)
        {
            break healed.elapsed();
        }
        assert!(
            healed.elapsed() < Duration::from_secs(40),
            "the isolated node did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    write_failures += write_jobs(&jobs, 20, &mut confirmed).await;
    consume(&jobs, &confirmed, true, &mut consumed).await;

    // `consume` returned: every confirmed job was claimed and acknowledged (or its ack's
    // outcome is unknown), and the queue is empty. So no confirmed write was lost.
    assert!(
        consumed.again.is_empty(),
        "acknowledged jobs claimed again (id, sequence acknowledged, sequence claimed again): {:?}",
        consumed.again
    );
    // Right after the heal the rejoining node can force elections (it kept raising its
    // term while cut off), so a group may be without a leader for a few seconds: retry.
    let settling = Instant::now();
    let stats = loop {
        match jobs.stats().await {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    settling.elapsed() < Duration::from_secs(30),
                    "stats after the heal: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let settled = settling.elapsed();
    assert_eq!(stats.stored, 0, "{stats:?}");
    println!(
        "RESULT {} confirmed writes ({during} during the partition; {write_failures} failed attempts retried), \
         0 lost, {} acknowledged, {} with an ack that failed (consumed all the same), 0 acknowledged jobs \
         claimed again, {} failed claim/ack calls; \
         isolated {leader} (the stream leader), new leader {new_leader}, first write {first_write:?} after the cut; \
         isolated node current {caught_up:?} after the heal, stats answered after {settled:?} more",
        confirmed.len(),
        consumed.acked.len(),
        consumed.ack_unknown.len(),
        consumed.failures,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = store.delete_all().await {
        assert!(Instant::now() < deadline, "cleanup: {e}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

on_each_release!(partition_isolating_the_leader);
