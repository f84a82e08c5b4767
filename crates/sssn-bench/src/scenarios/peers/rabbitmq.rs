//! RabbitMQ: a durable classic queue made for each round and deleted after it; producers
//! publish persistent messages (delivery mode 2) on a channel in confirm mode and wait
//! for each message's confirmation (sent once the message is on disk); consumers consume
//! with manual acknowledgements and a prefetch of 10, take what has arrived (waiting for
//! the first), and acknowledge each batch with one `basic.ack` (multiple). Each producer
//! and consumer has its own connection. Address: `SSSN_BENCH_RABBITMQ`
//! (`[user:password@]host:port`), default `guest:guest@127.0.0.1:5672`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::amqprs::callbacks::ChannelCallback;
use ::amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, ConsumerMessage, QueueDeclareArguments, QueueDeleteArguments,
};
use ::amqprs::connection::{Connection, OpenConnectionArguments};
use ::amqprs::{
    Ack, BasicProperties, Cancel, CloseChannel, DELIVERY_MODE_PERSISTENT, Nack, Return,
};
use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Consumer, Index, Producer, Queue, Server, System, TAKE, host_port};

/// How long a take waits for a first delivery before it returns empty.
const WAIT: Duration = Duration::from_millis(100);

/// RabbitMQ.
pub(super) struct RabbitMq {
    args: OpenConnectionArguments,
    admin: Connection,
    channel: Channel,
    server: Server,
}

impl RabbitMq {
    /// Connects and checks that the broker answers.
    pub(super) async fn connect() -> anyhow::Result<Self> {
        let spec = std::env::var("SSSN_BENCH_RABBITMQ")
            .unwrap_or_else(|_| "guest:guest@127.0.0.1:5672".into());
        let (credentials, addr) = spec.rsplit_once('@').unwrap_or(("guest:guest", &spec));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = host_port(addr, 5672);
        let args = OpenConnectionArguments::new(&host, port, user, password);
        let admin = Connection::open(&args)
            .await
            .with_context(|| format!("RabbitMQ is not answering on {addr}"))?;
        let channel = admin.open_channel(None).await?;
        Ok(Self {
            args,
            admin,
            channel,
            server: Server::listening("RabbitMQ's beam.smp", &host, port),
        })
    }
}

#[async_trait]
impl System for RabbitMq {
    fn durability(&self) -> String {
        "fsync before confirm".to_owned()
    }

    async fn open(&self, round: usize) -> anyhow::Result<Box<dyn Queue>> {
        let name = format!("sssn-bench.peers.{}.{round}", std::process::id());
        let _ = self
            .channel
            .queue_delete(QueueDeleteArguments::new(&name))
            .await;
        self.channel
            .queue_declare(QueueDeclareArguments::durable_client_named(&name))
            .await?;
        Ok(Box::new(AmqpQueue {
            args: self.args.clone(),
            channel: self.channel.clone(),
            name,
            server: self.server.clone(),
            consumers: AtomicUsize::new(0),
        }))
    }

    async fn finish(&self) {
        let _ = self.admin.clone().close().await;
    }
}

struct AmqpQueue {
    args: OpenConnectionArguments,
    /// The admin channel, to delete the queue.
    channel: Channel,
    name: String,
    server: Server,
    consumers: AtomicUsize,
}

#[async_trait]
impl Queue for AmqpQueue {
    async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
        let connection = Connection::open(&self.args).await?;
        let channel = connection.open_channel(None).await?;
        let (tx, confirms) = mpsc::unbounded_channel();
        channel.register_callback(Confirms(tx)).await?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await?;
        Ok(Box::new(AmqpProducer {
            _connection: connection,
            channel,
            confirms,
            queue: self.name.clone(),
            published: 0,
        }))
    }

    async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
        let connection = Connection::open(&self.args).await?;
        let channel = connection.open_channel(None).await?;
        channel
            .basic_qos(BasicQosArguments::new(0, TAKE as u16, false))
            .await?;
        let tag = format!(
            "consumer-{}",
            self.consumers.fetch_add(1, Ordering::Relaxed)
        );
        let (_, deliveries) = channel
            .basic_consume_rx(
                BasicConsumeArguments::new(&self.name, &tag)
                    .manual_ack(true)
                    .finish(),
            )
            .await?;
        Ok(Box::new(AmqpConsumer {
            _connection: connection,
            channel,
            deliveries,
            last_tag: None,
        }))
    }

    fn server(&self) -> Server {
        self.server.clone()
    }

    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.channel
            .queue_delete(QueueDeleteArguments::new(&self.name))
            .await?;
        Ok(())
    }
}

/// A publisher confirmation: `Ok` for an ack, `Err` for a nack, with the delivery tag and
/// whether it covers every earlier tag too.
type Confirm = Result<(u64, bool), (u64, bool)>;

/// Forwards the channel's publisher confirmations to the producer.
struct Confirms(mpsc::UnboundedSender<Confirm>);

#[async_trait]
impl ChannelCallback for Confirms {
    async fn close(&mut self, _: &Channel, _: CloseChannel) -> Result<(), ::amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), ::amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, ::amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Ok((ack.delivery_tag(), ack.mutiple())));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send(Err((nack.delivery_tag(), nack.multiple())));
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

struct AmqpProducer {
    _connection: Connection,
    channel: Channel,
    confirms: mpsc::UnboundedReceiver<Confirm>,
    queue: String,
    /// Messages published on the channel, i.e. the delivery tag of the last one.
    published: u64,
}

#[async_trait]
impl Producer for AmqpProducer {
    async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(message)?;
        self.channel
            .basic_publish(
                BasicProperties::default()
                    .with_delivery_mode(DELIVERY_MODE_PERSISTENT)
                    .finish(),
                body,
                BasicPublishArguments::new("", &self.queue),
            )
            .await?;
        self.published += 1;
        let tag = self.published;
        loop {
            match self.confirms.recv().await {
                Some(Ok((t, multiple))) if t == tag || (multiple && t > tag) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err((t, multiple))) if t == tag || (multiple && t > tag) => {
                    bail!("the broker refused message {tag} (nack)")
                }
                Some(Err(_)) => {}
                None => bail!("the channel closed before message {tag} was confirmed"),
            }
        }
    }
}

struct AmqpConsumer {
    _connection: Connection,
    channel: Channel,
    deliveries: mpsc::UnboundedReceiver<ConsumerMessage>,
    last_tag: Option<u64>,
}

impl AmqpConsumer {
    fn index(&mut self, m: ConsumerMessage) -> anyhow::Result<u64> {
        let tag = m
            .deliver
            .context("a delivery without its method")?
            .delivery_tag();
        self.last_tag = Some(tag);
        Index::of(m.content.as_deref().unwrap_or_default())
    }
}

#[async_trait]
impl Consumer for AmqpConsumer {
    async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        self.last_tag = None;
        let first = match tokio::time::timeout(WAIT, self.deliveries.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => bail!("the consumer was cancelled"),
            Ok(Some(m)) => m,
        };
        let mut indexes = vec![self.index(first)?];
        while indexes.len() < max {
            match self.deliveries.try_recv() {
                Ok(m) => indexes.push(self.index(m)?),
                Err(_) => break,
            }
        }
        Ok(indexes)
    }

    async fn ack(&mut self) -> anyhow::Result<()> {
        let tag = self.last_tag.context("nothing taken to acknowledge")?;
        self.channel
            .basic_ack(BasicAckArguments::new(tag, true))
            .await?;
        ensure!(self.channel.is_open(), "the channel closed");
        Ok(())
    }

    fn waits(&self) -> bool {
        true
    }
}
