//! Throughput of the JetStream store next to raw async-nats doing the same work on the
//! same server, in one run (medians of `--runs` runs):
//!
//! * work queue: write N, then 3 consumers claim 10 and ack, until all are consumed;
//!   raw: publish N (all, then await acks), 3 tasks fetch 10 from a shared durable pull
//!   consumer on a work-queue stream and ack each;
//! * broadcast fan-out to 10 readers: (a) push: 10 subscriptions, write N, until every
//!   subscriber got N; raw: 10 ordered consumers started before publishing N; (b) cursor
//!   reads: write N, then 10 readers `read(reader, 100)` to the end; raw: 10 ordered
//!   consumers from the start.
//!
//! `cargo run --release -p sssn-nats --example jetstream_bench -- [URL] [N] [RUNS]`
//! (`BENCH_PHASES=1` also prints the write and consume phases of the work queue;
//! `BENCH_ONLY=wq` runs only the work queue with plain acks). `URL` is a store URL, so a
//! cluster with replicated streams works: `nats://h1:p1,h2:p2,h3:p3?replicas=3` (the raw
//! baseline then uses the same servers and replicas).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde_json::json;
use sssn::Payload;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn_nats::{JetStreamOptions, JetStreamStore};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The servers and the `replicas` of a store URL, for the raw baseline.
fn raw_target(url: &str) -> (Vec<String>, usize) {
    let (list, query) = url.split_once('?').unwrap_or((url, ""));
    let servers = list.split(',').map(|s| s.trim().to_owned()).collect();
    let replicas = query
        .split('&')
        .find_map(|p| p.strip_prefix("replicas="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    (servers, replicas)
}

async fn raw_connect(url: &str) -> Res<(async_nats::Client, usize)> {
    let (servers, replicas) = raw_target(url);
    Ok((async_nats::connect(servers).await?, replicas))
}

fn prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bench-{tag}-{:x}", nanos & 0xffff_ffff)
}

async fn store(url: &str, tag: &str, durable_acks: bool) -> Res<Arc<JetStreamStore>> {
    let options = JetStreamOptions::default()
        .prefix(prefix(tag))
        .durable_acks(durable_acks);
    Ok(Arc::new(JetStreamStore::connect_with(url, options).await?))
}

fn payloads(n: usize) -> Vec<Payload> {
    (0..n)
        .map(|i| Payload::Data(json!({ "n": i, "pad": "0123456789abcdef0123456789abcdef" })))
        .collect()
}

async fn sssn_work_queue(url: &str, n: usize, durable_acks: bool) -> Res<f64> {
    let store = store(url, "wq", durable_acks).await?;
    let jobs = WorkQueueChannel::new("jobs")
        .claim_timeout(Duration::from_secs(30))
        .store(store.clone())
        .build();
    jobs.start().await?;
    let t = Instant::now();
    for chunk in payloads(n).chunks(500) {
        jobs.write_batch("producer", chunk.to_vec()).await?;
    }
    if std::env::var_os("BENCH_PHASES").is_some() {
        eprintln!("  sssn work queue: write {:?}", t.elapsed());
    }
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..3 {
        let jobs = jobs.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let (mut in_claim, mut in_ack) = (Duration::ZERO, Duration::ZERO);
            while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                let c0 = Instant::now();
                let claimed = jobs.claim(name.as_str(), 10).await?;
                in_claim += c0.elapsed();
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let a0 = Instant::now();
                let acked = jobs.ack(name.as_str(), &claimed).await?.into_result()?;
                in_ack += a0.elapsed();
                done.fetch_add(acked, std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<_, sssn::Error>((in_claim, in_ack))
        }));
    }
    let (mut in_claim, mut in_ack) = (Duration::ZERO, Duration::ZERO);
    for t in tasks {
        let (c, a) = t.await??;
        in_claim += c;
        in_ack += a;
    }
    if std::env::var_os("BENCH_PHASES").is_some() {
        eprintln!(
            "  sssn work queue: write + consume {:?} (summed over the 3 consumers: claim {in_claim:?}, ack {in_ack:?})",
            t.elapsed()
        );
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    store.delete_all().await?;
    Ok(rate)
}

async fn raw_work_queue(url: &str, n: usize) -> Res<f64> {
    let (client, replicas) = raw_connect(url).await?;
    let js = jetstream::new(client);
    let name = prefix("rawwq");
    let st = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: replicas,
            ..Default::default()
        })
        .await?;
    let consumer: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("claims".into()),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: -1,
            ..Default::default()
        })
        .await?;
    let t = Instant::now();
    let body = serde_json::to_vec(&json!({ "n": 0, "pad": "0123456789abcdef0123456789abcdef" }))?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut acks = Vec::with_capacity(chunk.len());
        for i in chunk {
            acks.push(
                js.publish(format!("{name}.m.{i}"), body.clone().into())
                    .await?,
            );
        }
        for a in acks {
            a.await?;
        }
    }
    if std::env::var_os("BENCH_PHASES").is_some() {
        eprintln!("  raw work queue: write {:?}", t.elapsed());
    }
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let consumer = consumer.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                let mut batch = consumer.fetch().max_messages(10).messages().await?;
                let mut got = 0;
                while let Some(m) = batch.next().await {
                    m?.ack().await?;
                    got += 1;
                }
                if got == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                done.fetch_add(got, std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<_, async_nats::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    if std::env::var_os("BENCH_PHASES").is_some() {
        eprintln!("  raw work queue: write + consume {:?}", t.elapsed());
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    js.delete_stream(&name).await?;
    Ok(rate)
}

async fn sssn_fanout_push(url: &str, n: usize) -> Res<f64> {
    let store = store(url, "fan", false).await?;
    let ch = BroadcastChannel::new("news")
        .subscriber_capacity(n + 16)
        .store(store.clone())
        .build();
    ch.start().await?;
    let mut readers = Vec::new();
    for r in 0..10 {
        let mut sub = ch.subscribe(format!("r{r}").as_str()).await?;
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                if sub.next().await.is_none() {
                    break;
                }
                got += 1;
            }
            got
        }));
    }
    let t = Instant::now();
    for chunk in payloads(n).chunks(500) {
        ch.write_batch("w", chunk.to_vec()).await?;
    }
    for r in readers {
        assert_eq!(r.await?, n);
    }
    let rate = (n * 10) as f64 / t.elapsed().as_secs_f64();
    store.delete_all().await?;
    Ok(rate)
}

async fn sssn_fanout_read(url: &str, n: usize) -> Res<f64> {
    let store = store(url, "fanr", false).await?;
    let ch = BroadcastChannel::new("news").store(store.clone()).build();
    ch.start().await?;
    let t = Instant::now();
    for chunk in payloads(n).chunks(500) {
        ch.write_batch("w", chunk.to_vec()).await?;
    }
    let mut readers = Vec::new();
    for r in 0..10 {
        let ch = ch.clone();
        readers.push(tokio::spawn(async move {
            let name = format!("r{r}");
            let mut got = 0;
            loop {
                let batch = ch.read(name.as_str(), 100).await?;
                if batch.is_empty() {
                    break;
                }
                got += batch.len();
            }
            Ok::<_, sssn::Error>(got)
        }));
    }
    for r in readers {
        assert_eq!(r.await??, n);
    }
    let rate = (n * 10) as f64 / t.elapsed().as_secs_f64();
    store.delete_all().await?;
    Ok(rate)
}

/// Raw: 10 ordered consumers; `live`: created before publishing, else after.
async fn raw_fanout(url: &str, n: usize, live: bool) -> Res<f64> {
    let (client, replicas) = raw_connect(url).await?;
    let js = jetstream::new(client);
    let name = prefix("rawfan");
    let st = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            num_replicas: replicas,
            ..Default::default()
        })
        .await?;
    let body = serde_json::to_vec(&json!({ "n": 0, "pad": "0123456789abcdef0123456789abcdef" }))?;
    let publish = |js: jetstream::Context, name: String, body: Vec<u8>| async move {
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let mut acks = Vec::with_capacity(chunk.len());
            for i in chunk {
                acks.push(
                    js.publish(format!("{name}.m.{i}"), body.clone().into())
                        .await?,
                );
            }
            for a in acks {
                a.await?;
            }
        }
        Ok::<_, async_nats::Error>(())
    };
    let t = Instant::now();
    if !live {
        publish(js.clone(), name.clone(), body.clone()).await?;
    }
    let mut readers = Vec::new();
    for _ in 0..10 {
        let c = st
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut msgs = c.messages().await?;
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                match msgs.next().await {
                    Some(Ok(_)) => got += 1,
                    _ => break,
                }
            }
            got
        }));
    }
    if live {
        publish(js.clone(), name.clone(), body.clone()).await?;
    }
    for r in readers {
        assert_eq!(r.await?, n);
    }
    let rate = (n * 10) as f64 / t.elapsed().as_secs_f64();
    js.delete_stream(&name).await?;
    Ok(rate)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let n: usize = args.get(1).map_or(Ok(5000), |s| s.parse())?;
    let runs: usize = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("work queue (write N, 3 x claim 10 + ack)", vec![], vec![]),
        ("work queue, durable_acks", vec![], vec![]),
        ("fan-out push, 10 subscribers", vec![], vec![]),
        ("fan-out cursor reads, 10 readers", vec![], vec![]),
    ];
    // `BENCH_ONLY=wq`: only the work queue with plain acks (quicker to iterate on).
    let only_wq = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "wq");
    if only_wq {
        rows.truncate(1);
    }
    for _ in 0..runs {
        let raw = raw_work_queue(&url, n).await?;
        rows[0].1.push(sssn_work_queue(&url, n, false).await?);
        rows[0].2.push(raw);
        if only_wq {
            continue;
        }
        rows[1].1.push(sssn_work_queue(&url, n, true).await?);
        rows[1].2.push(raw);
        rows[2].1.push(sssn_fanout_push(&url, n).await?);
        rows[2].2.push(raw_fanout(&url, n, true).await?);
        rows[3].1.push(sssn_fanout_read(&url, n).await?);
        rows[3].2.push(raw_fanout(&url, n, false).await?);
    }
    println!("N = {n}, {runs} runs, medians (messages/s; fan-out counts deliveries)");
    for (what, ours, raw) in rows {
        let (o, r) = (median(ours.clone()), median(raw.clone()));
        println!(
            "{what:44} sssn {o:>9.0}   raw {r:>9.0}   ratio {:.2}   runs sssn {ours:.0?} raw {raw:.0?}",
            o / r
        );
    }
    Ok(())
}
