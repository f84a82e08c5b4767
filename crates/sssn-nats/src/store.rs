//! [`JetStreamStore`]: the connection, its options, and the channels it has opened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use futures::StreamExt;
use sssn::store::{ChannelSpec, ChannelStorage, Store};
use sssn::{Error, ErrorKind, Result};
use tokio::sync::{Mutex, OnceCell};

use crate::channel::JetStreamChannel;
use crate::names;

/// Where the server keeps the streams this store creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// On disk: messages survive a server restart (the default).
    #[default]
    File,
    /// In memory: faster, lost when the server stops.
    Memory,
}

/// Options of a [`JetStreamStore`].
///
/// ```
/// use std::time::Duration;
/// use sssn_nats::{JetStreamOptions, StorageKind};
///
/// let options = JetStreamOptions::default()
///     .prefix("tenant-a")
///     .replicas(3)
///     .storage(StorageKind::File)
///     .request_timeout(Duration::from_secs(2));
/// assert_eq!(options.prefix, "tenant-a");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// Namespace of everything this store creates: streams are named `<prefix>_…`,
    /// subjects start with `<prefix>.`. Stores with the same prefix on the same server
    /// share their channels; different prefixes isolate tenants or tests. 1-32 letters,
    /// digits or `-`. Default `sssn`.
    pub prefix: String,
    /// Replicas of every stream (1 on a single server; 3 or 5 in a cluster).
    pub replicas: usize,
    /// Disk or memory streams.
    pub storage: StorageKind,
    /// Bound of every request to the server (publish acknowledgement, API call, fetch).
    /// While the connection is down, operations fail with [`ErrorKind::Store`] after at
    /// most this long instead of waiting forever.
    pub request_timeout: Duration,
    /// Connection name shown by the server's monitoring.
    pub connection_name: String,
    /// Make acknowledgements (and every other delete) survive a crash of the server: a
    /// delete is then a secure erase, written to the stream's file at once. Off by
    /// default: a plain delete is about 10x cheaper, but on server 2.9 one made in the last
    /// seconds before the server is killed (SIGKILL, power loss) can be undone when it
    /// restarts, so that work is delivered again (at-least-once). Appends are durable
    /// either way.
    pub durable_acks: bool,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        Self {
            prefix: "sssn".to_owned(),
            replicas: 1,
            storage: StorageKind::File,
            request_timeout: Duration::from_secs(5),
            connection_name: "sssn".to_owned(),
            durable_acks: false,
        }
    }
}

impl JetStreamOptions {
    /// Sets the namespace prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the replica count of new streams.
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// Sets the storage of new streams.
    #[must_use]
    pub fn storage(mut self, storage: StorageKind) -> Self {
        self.storage = storage;
        self
    }

    /// Sets the bound of every server request.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets whether deletes survive a server crash (see [`JetStreamOptions::durable_acks`]).
    #[must_use]
    pub fn durable_acks(mut self, durable: bool) -> Self {
        self.durable_acks = durable;
        self
    }

    /// Sets the connection name.
    #[must_use]
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }
}

pub(crate) struct StoreInner {
    pub(crate) url: String,
    pub(crate) options: JetStreamOptions,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    state: OnceCell<stream::Stream>,
    channels: Mutex<HashMap<String, Arc<JetStreamChannel>>>,
}

impl StoreInner {
    pub(crate) fn storage(&self) -> stream::StorageType {
        match self.options.storage {
            StorageKind::File => stream::StorageType::File,
            StorageKind::Memory => stream::StorageType::Memory,
        }
    }

    /// The per-store stream of cursors and counters (one message per subject).
    pub(crate) async fn state_stream(&self) -> Result<stream::Stream> {
        self.state
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: names::state_stream(&self.options.prefix),
                    subjects: vec![names::state_subjects(&self.options.prefix)],
                    max_messages_per_subject: 1,
                    discard: stream::DiscardPolicy::Old,
                    allow_direct: true,
                    storage: self.storage(),
                    num_replicas: self.options.replicas,
                    description: Some("sssn: reader cursors and channel counters".into()),
                    ..Default::default()
                };
                get_or_create_stream(&self.js, config).await
            })
            .await
            .cloned()
    }
}

/// Gets a stream, creating it with `config` when it does not exist.
pub(crate) async fn get_or_create_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(s) => Ok(s),
        Err(e) if is_stream_not_found(&e) => {
            match js.create_stream(config).await {
                Ok(s) => Ok(s),
                // Another process created it in between.
                Err(_) => js.get_stream(&name).await.map_err(|e| {
                    Error::store(format!("creating JetStream stream '{name}' failed"), e)
                }),
            }
        }
        Err(e) => Err(Error::store(
            format!("looking up JetStream stream '{name}' failed"),
            e,
        )),
    }
}

pub(crate) fn is_stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(err)
        if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// A [`Store`] on NATS JetStream: the same channels, with the same semantics, shared by
/// systems in many processes on many machines. See the crate docs for the mapping.
///
/// ```no_run
/// # async fn demo() -> sssn::Result<()> {
/// use std::sync::Arc;
/// use sssn::channel::WorkQueueChannel;
/// use sssn_nats::JetStreamStore;
///
/// let store = Arc::new(JetStreamStore::connect("nats://127.0.0.1:4222").await?);
/// let jobs = WorkQueueChannel::new("jobs").store(store).build();
/// jobs.start().await?;
/// jobs.write("producer", &42).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JetStreamStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.options.prefix)
            .finish_non_exhaustive()
    }
}

impl JetStreamStore {
    /// Connects to the server(s) at `url` (`nats://host:port`, several separated by
    /// commas) with the default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, JetStreamOptions::default()).await
    }

    /// Connects with `options`. Fails at once when no server answers; once connected,
    /// the client reconnects by itself after a connection loss.
    pub async fn connect_with(url: &str, options: JetStreamOptions) -> Result<Self> {
        names::validate_prefix(&options.prefix)?;
        let client = async_nats::ConnectOptions::new()
            .name(&options.connection_name)
            .request_timeout(Some(options.request_timeout))
            .connection_timeout(options.request_timeout)
            .connect(url)
            .await
            .map_err(|e| Error::store(format!("cannot connect to NATS at {url}"), e))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self {
            inner: Arc::new(StoreInner {
                url: url.to_owned(),
                options,
                client,
                js,
                state: OnceCell::new(),
                channels: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &JetStreamOptions {
        &self.inner.options
    }

    /// The underlying NATS client (shared by every channel of this store).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// Name of the stream that holds channel `channel_id`'s messages.
    pub fn stream_name(&self, channel_id: &str) -> String {
        names::stream_name(&self.inner.options.prefix, channel_id)
    }

    /// Deletes every stream of this store's prefix (every channel, dead letter, cursor
    /// and counter), and forgets the channels opened through this handle. Returns how many
    /// streams were deleted. Meant for tests and tenant removal.
    pub async fn delete_all(&self) -> Result<usize> {
        self.inner.channels.lock().await.clear();
        let prefix = format!("{}_", self.inner.options.prefix);
        let mut names = self.inner.js.stream_names();
        let mut ours = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|e| Error::store("listing JetStream streams failed", e))?;
            if name.starts_with(&prefix) {
                ours.push(name);
            }
        }
        let mut deleted = 0;
        for name in ours {
            match self.inner.js.delete_stream(&name).await {
                Ok(_) => deleted += 1,
                Err(e) => {
                    return Err(Error::store(
                        format!("deleting JetStream stream '{name}' failed"),
                        e,
                    ));
                }
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl Store for JetStreamStore {
    async fn open_channel(&self, spec: &ChannelSpec) -> Result<ChannelStorage> {
        let mut channels = self.inner.channels.lock().await;
        if let Some(ch) = channels.get(&spec.id) {
            return ch.storage(spec);
        }
        let ch = Arc::new(JetStreamChannel::open(self.inner.clone(), spec).await?);
        channels.insert(spec.id.clone(), ch.clone());
        ch.storage(spec)
    }

    fn describe(&self) -> String {
        format!("{} (prefix {})", self.inner.url, self.inner.options.prefix)
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<JetStreamStore>();
        assert_send_sync::<JetStreamOptions>();
    }

    #[tokio::test]
    async fn unreachable_server_is_a_store_error() {
        let err = JetStreamStore::connect_with(
            "nats://127.0.0.1:1",
            JetStreamOptions::default().request_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(err.message().contains("cannot connect"), "{err}");
    }

    #[tokio::test]
    async fn bad_prefix_is_refused_before_connecting() {
        let err = JetStreamStore::connect_with(
            "nats://127.0.0.1:1",
            JetStreamOptions::default().prefix("a.b"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
