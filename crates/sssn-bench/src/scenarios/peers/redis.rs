//! Redis Streams: producers `XADD` one entry per call (the reply is the confirmation);
//! consumers of one consumer group `XREADGROUP … COUNT 10 BLOCK 100 … >` and `XACK` each
//! batch. Each producer and consumer has its own connection (a blocking read holds its
//! connection). Address: `SSSN_BENCH_REDIS` (`host:port`), default 127.0.0.1:6379.

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, Value as RedisValue, cmd};
use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use serde_json::Value;

use super::{Consumer, Index, Producer, Queue, Server, System, host_port};

const GROUP: &str = "workers";
/// How long a read waits on the server for an entry, ms.
const BLOCK_MS: usize = 100;
/// The entry's one field.
const FIELD: &str = "m";

/// Redis Streams.
pub(super) struct Redis {
    client: Client,
    server: Server,
    durability: String,
}

impl Redis {
    /// Connects to Redis and checks that it answers.
    pub(super) async fn connect() -> anyhow::Result<Self> {
        let addr = std::env::var("SSSN_BENCH_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into());
        let client = Client::open(format!("redis://{addr}/"))?;
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("Redis is not answering on {addr}"))?;
        let pong: String = cmd("PING").query_async(&mut con).await?;
        ensure!(pong == "PONG", "Redis answered PING with {pong}");
        let config = |key: &'static str| {
            let mut con = con.clone();
            async move {
                let kv: Vec<String> = cmd("CONFIG")
                    .arg("GET")
                    .arg(key)
                    .query_async(&mut con)
                    .await
                    .unwrap_or_default();
                kv.get(1).cloned().unwrap_or_default()
            }
        };
        let (aof, save, fsync) = (
            config("appendonly").await,
            config("save").await,
            config("appendfsync").await,
        );
        let durability = match (aof.as_str(), save.is_empty()) {
            ("no", true) => "none".to_owned(),
            ("no", false) => format!("snapshots only (save {save})"),
            _ => format!("append-only file, appendfsync {fsync}"),
        };
        let (host, port) = host_port(&addr, 6379);
        Ok(Self {
            client,
            server: Server::listening("redis-server", &host, port),
            durability,
        })
    }
}

#[async_trait]
impl System for Redis {
    fn durability(&self) -> String {
        self.durability.clone()
    }

    async fn open(&self, round: usize) -> anyhow::Result<Box<dyn Queue>> {
        let key = format!("sssn-bench:peers:{}:{round}", std::process::id());
        let mut con = self.client.get_multiplexed_async_connection().await?;
        let _: () = cmd("DEL").arg(&key).query_async(&mut con).await?;
        let _: () = cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(GROUP)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await?;
        Ok(Box::new(Stream {
            client: self.client.clone(),
            con,
            key,
            server: self.server.clone(),
            consumers: std::sync::atomic::AtomicUsize::new(0),
        }))
    }
}

struct Stream {
    client: Client,
    con: MultiplexedConnection,
    key: String,
    server: Server,
    consumers: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Queue for Stream {
    async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
        Ok(Box::new(StreamProducer {
            con: self.client.get_multiplexed_async_connection().await?,
            key: self.key.clone(),
        }))
    }

    async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
        let k = self
            .consumers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(StreamConsumer {
            con: self.client.get_multiplexed_async_connection().await?,
            key: self.key.clone(),
            name: format!("consumer-{k}"),
            taken: Vec::new(),
        }))
    }

    fn server(&self) -> Server {
        self.server.clone()
    }

    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        let mut con = self.con;
        let _: () = cmd("DEL").arg(&self.key).query_async(&mut con).await?;
        Ok(())
    }
}

struct StreamProducer {
    con: MultiplexedConnection,
    key: String,
}

#[async_trait]
impl Producer for StreamProducer {
    async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(message)?;
        let _id: String = cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg(FIELD)
            .arg(body)
            .query_async(&mut self.con)
            .await?;
        Ok(())
    }
}

struct StreamConsumer {
    con: MultiplexedConnection,
    key: String,
    name: String,
    taken: Vec<Vec<u8>>,
}

#[async_trait]
impl Consumer for StreamConsumer {
    async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
        let reply: RedisValue = cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut self.con)
            .await?;
        self.taken.clear();
        let mut indexes = Vec::new();
        for (id, body) in entries(reply)? {
            indexes.push(Index::of(&body)?);
            self.taken.push(id);
        }
        Ok(indexes)
    }

    async fn ack(&mut self) -> anyhow::Result<()> {
        let done: usize = cmd("XACK")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&self.taken)
            .query_async(&mut self.con)
            .await?;
        ensure!(
            done == self.taken.len(),
            "XACK acknowledged {done} of {}",
            self.taken.len()
        );
        Ok(())
    }

    fn waits(&self) -> bool {
        true
    }
}

/// The (id, field value) pairs of an `XREADGROUP` reply for one stream: nil, or
/// `[[key, [[id, [field, value, …]], …]]]` (a map of key → entries in RESP3).
fn entries(reply: RedisValue) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let streams = match reply {
        RedisValue::Nil => return Ok(Vec::new()),
        RedisValue::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                RedisValue::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        RedisValue::Map(kv) => kv.into_iter().map(|(_, v)| v).collect(),
        other => bail!("unexpected XREADGROUP reply {other:?}"),
    };
    let mut out = Vec::new();
    for stream in streams {
        let RedisValue::Array(items) = stream else {
            bail!("unexpected XREADGROUP entries {stream:?}");
        };
        for item in items {
            let RedisValue::Array(mut pair) = item else {
                bail!("unexpected XREADGROUP entry {item:?}");
            };
            let (Some(fields), Some(RedisValue::BulkString(id))) = (pair.pop(), pair.pop()) else {
                bail!("an XREADGROUP entry without id and fields");
            };
            let body = match fields {
                RedisValue::Array(mut f) if f.len() == 2 => f.pop(),
                RedisValue::Map(mut f) if f.len() == 1 => f.pop().map(|(_, v)| v),
                _ => None,
            };
            let Some(RedisValue::BulkString(body)) = body else {
                bail!("an XREADGROUP entry without its field '{FIELD}'");
            };
            out.push((id, body));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RedisValue {
        RedisValue::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xreadgroup_replies() {
        assert!(entries(RedisValue::Nil).unwrap().is_empty());
        let reply = RedisValue::Array(vec![RedisValue::Array(vec![
            bulk("key"),
            RedisValue::Array(vec![
                RedisValue::Array(vec![
                    bulk("1-0"),
                    RedisValue::Array(vec![bulk(FIELD), bulk(r#"{"id":7}"#)]),
                ]),
                RedisValue::Array(vec![
                    bulk("1-1"),
                    RedisValue::Array(vec![bulk(FIELD), bulk(r#"{"id":8}"#)]),
                ]),
            ]),
        ])]);
        let got = entries(reply).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, b"1-1");
        assert_eq!(Index::of(&got[0].1).unwrap(), 7);
    }
}
