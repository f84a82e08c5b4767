//! Throughput measurements (not assertions): run in release with
//! `cargo test -p sssn-http --release --test perf -- --ignored --nocapture`.
//!
//! Prints, for 3 runs and their median: requests/s of a bare axum handler returning 200
//! and of remote single writes (same client, 8 keep-alive connections), messages/s of
//! remote batch writes, and messages/s delivered over SSE to one remote subscriber.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sssn::channel::{BroadcastChannel, PassthroughChannel};
use sssn::security::Principal;
use sssn::{ChannelEndpoint, Payload};
use sssn_http::{RemoteChannel, Server};

const CONNECTIONS: usize = 8;
const WINDOW: Duration = Duration::from_secs(3);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time (user + system) this process has used, from /proc/self/stat (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ = 100 on Linux
}

/// CPU microseconds per unit over the last `drive` (whole process: client and server).
static CPU_PER_UNIT_NS: AtomicU64 = AtomicU64::new(0);

fn cpu_us_per_unit() -> f64 {
    CPU_PER_UNIT_NS.load(Ordering::Relaxed) as f64 / 1000.0
}

/// Runs `op` on `CONNECTIONS` tasks for `WINDOW`; returns units per second (op returns
/// how many units it did).
async fn drive<F, Fut>(op: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    // Warm up the connections.
    for _ in 0..CONNECTIONS {
        op().await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let cpu_start = cpu_time();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let op = op.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < WINDOW {
                let n = op().await;
                done.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let units = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    if let (Some(a), Some(b)) = (cpu_start, cpu_time()) {
        let ns = (b - a).as_nanos() / u128::from(units.max(1));
        CPU_PER_UNIT_NS.store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    units as f64 / elapsed.as_secs_f64()
}

async fn bare_axum(client: reqwest::Client) -> f64 {
    let app = axum::Router::new().route("/channels/bench", axum::routing::put(|| async { "" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/channels/bench");
    let body = json!({"kind": "event", "value": 42}).to_string();
    let rate = drive(move || {
        let client = client.clone();
        let url = url.clone();
        let body = body.clone();
        async move {
            let r = client.put(&url).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            1
        }
    })
    .await;
    server.abort();
    rate
}

async fn remote_writes(client: reqwest::Client, batch: usize) -> f64 {
    let ch = PassthroughChannel::new("bench").public().build();
    ch.start().await.unwrap();
    let server = Server::builder()
        .channel(ch)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let remote = RemoteChannel::connect(&server.channel_url("bench"), Some("writer"))
        .unwrap()
        .with_client(client);
    let me = Principal::local("writer");
    let rate = drive(move || {
        let remote = remote.clone();
        let me = me.clone();
        async move {
            let payloads: Vec<Payload> = (0..batch)
                .map(|i| Payload::Data(json!({"kind": "event", "value": i})))
                .collect();
            let ids = remote.write_batch(&me, payloads).await.unwrap();
            ids.len() as u64
        }
    })
    .await;
    server.shutdown().await.unwrap();
    rate
}

/// The same batches written to a local channel: the ceiling remote batches approach.
async fn local_batches(batch: usize) -> f64 {
    let ch = PassthroughChannel::new("bench").public().build();
    ch.start().await.unwrap();
    drive(move || {
        let ch = ch.clone();
        async move {
            let payloads: Vec<Payload> = (0..batch)
                .map(|i| Payload::Data(json!({"kind": "event", "value": i})))
                .collect();
            ch.write_batch("writer", payloads).await.unwrap().len() as u64
        }
    })
    .await
}

async fn sse_delivery(total: u64) -> f64 {
    let feed = BroadcastChannel::new("feed").public().build();
    feed.start().await.unwrap();
    let server = Server::builder()
        .channel(feed.clone())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let remote = RemoteChannel::connect(&server.channel_url("feed"), Some("dash")).unwrap();
    let mut sub = remote
        .subscribe(&Principal::local("dash"), None)
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let mut written = 0;
        while written < total {
            let batch: Vec<Payload> = (0..1000)
                .map(|i| Payload::Data(json!({"kind": "event", "value": written + i})))
                .collect();
            written += batch.len() as u64;
            feed.write_batch("sensor", batch).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let first = sub.recv().await.unwrap();
    assert_eq!(first.seq, 1);
    let start = Instant::now();
    let mut last = first.seq;
    while last < total {
        let e = sub.recv().await.unwrap();
        assert_eq!(e.seq, last + 1, "gap-free");
        last = e.seq;
    }
    let rate = (total - 1) as f64 / start.elapsed().as_secs_f64();
    writer.await.unwrap();
    server.shutdown().await.unwrap();
    rate
}

#[test]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
fn http_throughput() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = sssn_http::shared_client();
        let (mut bare, mut single, mut batch, mut sse) = (vec![], vec![], vec![], vec![]);
        let mut local = vec![];
        // SSSN_PERF=batch (or bare, single, sse; comma-separated) runs only those, for profiling.
        let only = std::env::var("SSSN_PERF").unwrap_or_default();
        let on = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
        for run in 1..=3 {
            let mut cpu = String::new();
            let b = if on("bare") { bare_axum(client.clone()).await } else { f64::NAN };
            cpu += &format!("bare {:.1}", cpu_us_per_unit());
            let s = if on("single") { remote_writes(client.clone(), 1).await } else { f64::NAN };
            cpu += &format!(", write {:.1}", cpu_us_per_unit());
            let m = if on("batch") { remote_writes(client.clone(), 1000).await } else { f64::NAN };
            cpu += &format!(", batched msg {:.2}", cpu_us_per_unit());
            let l = if on("batch") { local_batches(1000).await } else { f64::NAN };
            cpu += &format!(", local batched msg {:.2}", cpu_us_per_unit());
            let e = if on("sse") { sse_delivery(300_000).await } else { f64::NAN };
            println!(
                "run {run}: bare axum {b:.0} req/s | remote writes {s:.0} writes/s ({:.2}x) | batch writes {m:.0} msgs/s (local batches {l:.0}) | SSE {e:.0} msgs/s",
                s / b
            );
            println!("       CPU µs per unit (client + server, all threads): {cpu}");
            local.push(l);
            bare.push(b);
            single.push(s);
            batch.push(m);
            sse.push(e);
        }
        let (b, s) = (median(bare), median(single));
        println!(
            "median: bare axum {b:.0} req/s | remote writes {s:.0} writes/s ({:.2}x of bare; goal >= 0.3x and >= 30000) | batch writes {:.0} msgs/s (goal >= 300000; local batches {:.0}) | SSE {:.0} msgs/s (goal >= 100000)",
            s / b,
            median(batch),
            median(local),
            median(sse)
        );
    });
}
