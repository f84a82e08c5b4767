//! `nats`: channels on NATS JetStream (`sssn-nats`, file storage) against raw
//! async-nats on the same server (127.0.0.1:4222, or `host:port` from the
//! `SSSN_BENCH_NATS` environment variable; skipped when nothing listens there).
//!
//! * **work queue**: one producer writes N small JSON messages one by one (each write
//!   waits for the server's publish acknowledgement), then 3 consumers claim 10 and ack
//!   each batch until the queue is empty; messages/s end to end. Baseline: a raw loop on
//!   a work-queue stream: publish the same message JSON one by one with `Nats-Msg-Id`
//!   (awaiting each acknowledgement), then 3 tasks `fetch` 10 from one durable pull
//!   consumer and `ack` each message.
//! * **broadcast**: 10 subscribers on a broadcast channel while one producer writes N
//!   messages one by one; deliveries/s until every subscriber has every message.
//!   Baseline: 10 raw ordered pull consumers on a stream while the same messages are
//!   published one by one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use sssn::ChannelMessage;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::store::Store;
use sssn_nats::{JetStreamOptions, JetStreamStore};

use super::{Config, paired, record, secs};
use crate::report::{Better, Figure, Goal, Outcome};

/// Where the scenario expects NATS unless `SSSN_BENCH_NATS` says otherwise.
pub const NATS_ADDR: &str = "127.0.0.1:4222";

const CONSUMERS: usize = 3;
const CLAIM: usize = 10;
const SUBSCRIBERS: usize = 10;

struct Setup {
    store: Arc<JetStreamStore>,
    js: jetstream::Context,
    /// Unique per process, so runs never meet other users of the server.
    tag: String,
    round: AtomicUsize,
}

impl Setup {
    fn next(&self) -> usize {
        self.round.fetch_add(1, Ordering::Relaxed)
    }
}

/// The NATS address: `SSSN_BENCH_NATS`, or [`NATS_ADDR`].
pub fn nats_addr() -> String {
    std::env::var("SSSN_BENCH_NATS").unwrap_or_else(|_| NATS_ADDR.to_owned())
}

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let addr = nats_addr();
    if tokio::net::TcpStream::connect(&addr).await.is_err() {
        return Ok(vec![Outcome::skipped(
            "nats",
            format!("NATS is not listening on {addr}"),
        )]);
    }
    let url = format!("nats://{addr}");
    let tag = format!("bench{}", std::process::id());
    let store = Arc::new(
        JetStreamStore::connect_with(&url, JetStreamOptions::default().prefix(tag.clone())).await?,
    );
    let client = async_nats::connect(&url).await?;
    let s = Arc::new(Setup {
        store,
        js: jetstream::new(client),
        tag,
        round: AtomicUsize::new(0),
    });
    let outcome = measure(cfg, s.clone()).await;
    // Leave nothing behind on the shared server, whatever happened.
    let _ = s.store.delete_all().await;
    outcome
}

async fn measure(cfg: Config, s: Arc<Setup>) -> anyhow::Result<Vec<Outcome>> {
    let n = cfg.size(5_000, 1_000);
    let (ours, base) = paired(
        "nats",
        cfg.runs,
        || work_queue(s.clone(), n),
        || raw_work_queue(s.clone(), n),
    )
    .await?;
    let mut out: Vec<Outcome> = vec![
        Figure::new("nats/workqueue", "msgs/s", Better::Higher)
            .ours(ours)
            .baseline(
                "raw async-nats: publish awaiting each ack, then 3 tasks fetch 10 + ack from a durable pull consumer",
                base,
            )
            .goal(Goal::RatioAtLeast(0.5))
            .note(format!(
                "{n} messages written one by one, then drained by {CONSUMERS} consumers claiming {CLAIM} and acking each batch (JetStream, file storage)"
            ))
            .into(),
    ];
    let n = cfg.size(5_000, 1_000);
    let (ours, base) = paired(
        "nats",
        cfg.runs,
        || broadcast(s.clone(), n),
        || raw_broadcast(s.clone(), n),
    )
    .await?;
    out.push(
        Figure::new("nats/broadcast", "deliveries/s", Better::Higher)
            .ours(ours)
            .baseline(
                format!("{SUBSCRIBERS} raw ordered pull consumers, publish awaiting each ack"),
                base,
            )
            .goal(Goal::RatioAtLeast(0.5))
            .note(format!(
                "{SUBSCRIBERS} subscribers, {n} messages written one by one; every subscriber gets every message"
            ))
            .into(),
    );
    Ok(out)
}

fn message_json(i: usize) -> anyhow::Result<(String, Bytes)> {
    let m = ChannelMessage::with_data("producer", &record(i))?;
    Ok((m.id.clone(), Bytes::from(m.to_json())))
}

async fn work_queue(s: Arc<Setup>, n: usize) -> anyhow::Result<f64> {
    let store: Arc<dyn Store> = s.store.clone();
    let queue = WorkQueueChannel::new(format!("wq-{}", s.next()))
        .claim_timeout(Duration::from_secs(60))
        .store(store)
        .build();
    queue.start().await?;
    let t = Instant::now();
    for i in 0..n {
        queue.write("producer", &record(i)).await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..CONSUMERS {
        let queue = queue.clone();
        tasks.spawn(async move {
            let me = format!("worker-{k}");
            let mut acked = 0;
            loop {
                let claimed = queue.claim(me.as_str(), CLAIM).await?;
                if claimed.is_empty() {
                    return Ok::<_, sssn::Error>(acked);
                }
                let ids: Vec<String> = claimed.iter().map(|c| c.message.id.clone()).collect();
                acked += queue.ack(me.as_str(), &ids).await?.done.len();
            }
        });
    }
    let mut acked = 0;
    while let Some(r) = tasks.join_next().await {
        acked += r.context("consumer task")??;
    }
    let elapsed = secs(t);
    queue.stop().await;
    ensure!(acked == n, "acked {acked} of {n}");
    Ok(n as f64 / elapsed)
}

async fn raw_work_queue(s: Arc<Setup>, n: usize) -> anyhow::Result<f64> {
    let name = format!("{}_RAWWQ_{}", s.tag, s.next());
    let subject = format!("{name}.jobs");
    let stream =
        s.js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("claims".to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let t = Instant::now();
    for i in 0..n {
        let (id, payload) = message_json(i)?;
        s.js.send_publish(
            subject.clone(),
            jetstream::message::PublishMessage::build()
                .payload(payload)
                .message_id(id),
        )
        .await?
        .await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONSUMERS {
        let consumer = consumer.clone();
        tasks.spawn(async move {
            let mut acked = 0;
            loop {
                let mut batch = consumer.fetch().max_messages(CLAIM).messages().await?;
                let mut got = 0;
                while let Some(m) = batch.next().await {
                    let m = m.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
                    m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                    got += 1;
                }
                if got == 0 {
                    return anyhow::Ok(acked);
                }
                acked += got;
            }
        });
    }
    let mut acked = 0;
    while let Some(r) = tasks.join_next().await {
        acked += r.context("consumer task")??;
    }
    let elapsed = secs(t);
    let _ = s.js.delete_stream(&name).await;
    ensure!(acked == n, "acked {acked} of {n}");
    Ok(n as f64 / elapsed)
}

async fn broadcast(s: Arc<Setup>, n: usize) -> anyhow::Result<f64> {
    let store: Arc<dyn Store> = s.store.clone();
    let feed = BroadcastChannel::new(format!("bc-{}", s.next()))
        .store(store)
        .build();
    feed.start().await?;
    let mut tasks = super::count_deliveries(&feed, SUBSCRIBERS, n).await?;
    let t = Instant::now();
    for i in 0..n {
        feed.write("producer", &record(i)).await?;
    }
    let mut delivered = 0;
    while let Some(r) = tasks.join_next().await {
        delivered += r.context("subscriber task")?;
    }
    let elapsed = secs(t);
    feed.stop().await;
    ensure!(
        delivered == n * SUBSCRIBERS,
        "delivered {delivered} of {}",
        n * SUBSCRIBERS
    );
    Ok(delivered as f64 / elapsed)
}

async fn raw_broadcast(s: Arc<Setup>, n: usize) -> anyhow::Result<f64> {
    let name = format!("{}_RAWBC_{}", s.tag, s.next());
    let subject = format!("{name}.feed");
    let stream =
        s.js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SUBSCRIBERS {
        let reader = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut messages = reader.messages().await?;
        tasks.spawn(async move {
            let mut got = 0;
            while got < n {
                match messages.next().await {
                    Some(Ok(m)) => {
                        std::hint::black_box(
                            ChannelMessage::from_json(
                                std::str::from_utf8(&m.payload).unwrap_or_default(),
                            )
                            .ok(),
                        );
                        got += 1;
                    }
                    _ => break,
                }
            }
            got
        });
    }
    let t = Instant::now();
    for i in 0..n {
        let (id, payload) = message_json(i)?;
        s.js.send_publish(
            subject.clone(),
            jetstream::message::PublishMessage::build()
                .payload(payload)
                .message_id(id),
        )
        .await?
        .await?;
    }
    let mut delivered = 0;
    while let Some(r) = tasks.join_next().await {
        delivered += r.context("reader task")?;
    }
    let elapsed = secs(t);
    let _ = s.js.delete_stream(&name).await;
    ensure!(
        delivered == n * SUBSCRIBERS,
        "delivered {delivered} of {}",
        n * SUBSCRIBERS
    );
    Ok(delivered as f64 / elapsed)
}
