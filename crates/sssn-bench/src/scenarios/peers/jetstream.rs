//! Raw NATS JetStream (async-nats): a work-queue-retention stream (file storage) made for
//! each round and deleted after it, with one durable pull consumer (explicit acks);
//! producers publish one message per call and wait for the stream's acknowledgement;
//! consumers `fetch` up to 10 (answered at once, empty when nothing is there) and ack
//! each message. One NATS connection for all, as a NATS application has. Address:
//! `SSSN_BENCH_NATS` (`host:port`), default 127.0.0.1:4222, as the `nats` scenario.

use std::time::Duration;

use ::async_nats::jetstream::{self, Message, consumer, stream};
use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;

use super::{Consumer, Index, Producer, Queue, Server, System, host_port};

/// Raw JetStream.
pub(super) struct JetStream {
    js: jetstream::Context,
    server: Server,
}

impl JetStream {
    /// Connects and checks that JetStream answers.
    pub(super) async fn connect(addr: &str) -> anyhow::Result<Self> {
        tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("NATS is not listening on {addr}"))?;
        let client = async_nats::connect(format!("nats://{addr}")).await?;
        // The account's JetStream information: answered only where JetStream is on.
        let info = client
            .request("$JS.API.INFO", bytes::Bytes::new())
            .await
            .with_context(|| format!("JetStream is not enabled on {addr}"))?;
        let info: Value = serde_json::from_slice(&info.payload).context("$JS.API.INFO")?;
        if let Some(e) = info.get("error") {
            bail!("JetStream is not available on {addr}: {e}");
        }
        let js = jetstream::new(client);
        let (host, port) = host_port(addr, 4222);
        Ok(Self {
            js,
            server: Server::listening("nats-server", &host, port),
        })
    }
}

#[async_trait]
impl System for JetStream {
    fn durability(&self) -> String {
        "written, not fsynced (file storage)".to_owned()
    }

    async fn open(&self, round: usize) -> anyhow::Result<Box<dyn Queue>> {
        let name = format!("PEERS{}_{round}", std::process::id());
        let subject = format!("{name}.jobs");
        let _ = self.js.delete_stream(&name).await;
        let stream = self
            .js
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("workers".to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            })
            .await?;
        Ok(Box::new(WorkStream {
            js: self.js.clone(),
            name,
            subject,
            consumer,
            server: self.server.clone(),
        }))
    }
}

struct WorkStream {
    js: jetstream::Context,
    name: String,
    subject: String,
    consumer: consumer::PullConsumer,
    server: Server,
}

#[async_trait]
impl Queue for WorkStream {
    async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
        Ok(Box::new(StreamProducer {
            js: self.js.clone(),
            subject: self.subject.clone(),
        }))
    }

    async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
        Ok(Box::new(StreamConsumer {
            consumer: self.consumer.clone(),
            taken: Vec::new(),
        }))
    }

    fn server(&self) -> Server {
        self.server.clone()
    }

    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.js.delete_stream(&self.name).await?;
        Ok(())
    }
}

struct StreamProducer {
    js: jetstream::Context,
    subject: String,
}

#[async_trait]
impl Producer for StreamProducer {
    async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(message)?;
        self.js
            .publish(self.subject.clone(), body.into())
            .await?
            .await?;
        Ok(())
    }
}

struct StreamConsumer {
    consumer: consumer::PullConsumer,
    taken: Vec<Message>,
}

#[async_trait]
impl Consumer for StreamConsumer {
    async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        self.taken.clear();
        let mut batch = self.consumer.fetch().max_messages(max).messages().await?;
        let mut indexes = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
            indexes.push(Index::of(&m.payload)?);
            self.taken.push(m);
        }
        Ok(indexes)
    }

    async fn ack(&mut self) -> anyhow::Result<()> {
        for m in self.taken.drain(..) {
            m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        }
        Ok(())
    }
}
