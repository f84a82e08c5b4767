//! The data pipeline split across processes: the work queue and the broadcast channel live
//! on a server; the ingestor writes through HTTP; three workers and the dashboard are
//! systems of another network that reach both channels as remote clients (claims, acks,
//! writes and SSE subscriptions over HTTP).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::store::Entry;
use sssn::{ChannelClient, Network, Result, System, SystemContext, SystemSpec};
use sssn_http::ConnectRemote;

#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    value: f64,
}

#[derive(Serialize, Deserialize)]
struct Processed {
    record_id: String,
    fahrenheit: f64,
    worker: String,
}

/// Connects the two remote channels into a system's client.
fn connect(ctx: &SystemContext, server: &str) -> Result<()> {
    for id in ["raw-records", "processed"] {
        ctx.client().connect_remote(id, server, None)?;
    }
    Ok(())
}

struct Worker {
    server: String,
}

#[async_trait]
impl System for Worker {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        connect(ctx, &self.server)?;
        ctx.wake_on("raw-records").await
    }

    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let (queue, out) = (ctx.work_queue("raw-records")?, ctx.broadcast("processed")?);
        for claimed in queue.claim(3).await? {
            let record: Record = claimed.message.data()?;
            let processed = Processed {
                record_id: record.id,
                fahrenheit: record.value * 9.0 / 5.0 + 32.0,
                worker: ctx.id().to_owned(),
            };
            out.write(&processed).await?;
            queue.ack(&claimed).await?.into_result()?;
        }
        Ok(())
    }
}

struct Dashboard {
    server: String,
    received: Arc<Mutex<Vec<(String, String, String)>>>,
}

#[async_trait]
impl System for Dashboard {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        connect(ctx, &self.server)?;
        ctx.subscribe("processed").await
    }

    async fn on_message(&mut self, _: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        let p: Processed = entry.message.data()?;
        self.received.lock().unwrap().push((
            p.record_id,
            p.worker,
            entry.message.sender_id.clone(),
        ));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_with_remote_workers_and_dashboard() {
    let queue = common::started(
        WorkQueueChannel::new("raw-records")
            .public()
            .claim_timeout(Duration::from_secs(30)),
    )
    .await;
    let processed = common::started(BroadcastChannel::new("processed").public()).await;
    let h = common::serve(vec![queue.clone(), processed]).await;
    let server = h.server.url();

    let received = Arc::new(Mutex::new(Vec::new()));
    let mut edge = Network::new("edge");
    for i in 1..=3 {
        edge.add_system(
            SystemSpec::new(format!("worker-{i}")).tick_rate(5.0),
            Worker {
                server: server.clone(),
            },
        )
        .unwrap();
    }
    edge.add_system(
        SystemSpec::new("dashboard").tick_rate(0.0),
        Dashboard {
            server: server.clone(),
            received: received.clone(),
        },
    )
    .unwrap();
    let running = edge.start().await.unwrap();

    // The ingestor is a remote client too: 6 cycles of 5 records.
    let ingestor = ChannelClient::new("ingestor");
    ingestor
        .connect_remote("raw-records", &h.server.channel_url("raw-records"), None)
        .unwrap();
    let mut ids = HashSet::new();
    for cycle in 0..6 {
        for i in 0..5 {
            let record = Record {
                id: format!("r{cycle}-{i}"),
                value: 22.1 + f64::from(i) * 0.3,
            };
            ids.insert(record.id.clone());
            let queue = ingestor.work_queue("raw-records").unwrap();
            queue.write(&record).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bounded wait for the dashboard (a broken pipeline fails instead of hanging).
    for _ in 0..400 {
        if received.lock().unwrap().len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await.unwrap();

    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 30, "every record reached the dashboard once");
    let record_ids: HashSet<String> = got.iter().map(|(r, _, _)| r.clone()).collect();
    assert_eq!(record_ids, ids, "each record processed exactly once");
    for (_, worker, sender) in &got {
        assert_eq!(
            worker, sender,
            "the worker's id is the sender on the server"
        );
        assert!(worker.starts_with("worker-"));
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.acks, 30);
    assert_eq!(stats.backlog + stats.in_flight, 0, "the queue is empty");
}
