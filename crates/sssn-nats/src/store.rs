//! [`JetStreamStore`]: the connection, its options, and the channels it has opened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::ServerAddr;

use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use futures::StreamExt;
use sssn::store::{ChannelSpec, ChannelStorage, Store};
use sssn::{Error, ErrorKind, Result};
use tokio::sync::{Mutex, OnceCell};

use crate::channel::JetStreamChannel;
use crate::names;
use crate::url::MAX_REPLICAS;
use crate::version::ServerVersion;

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
    /// Replicas of every stream this store creates, and of the claims consumers (which
    /// follow their stream): 1 on a single server, 3 (or 5) in a cluster. 1-5. Streams that
    /// exist already keep the replica count they were created with. The short-lived
    /// consumers of shared reads, scans and the push feed are always R1 in memory: they are
    /// recreated when their server goes away.
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
    /// Connect in the background: [`JetStreamStore::connect_with`] returns at once even
    /// when no server answers yet, and the client keeps trying (backoff up to 4 s, without
    /// end). Until it is connected every operation fails with [`ErrorKind::Store`] after
    /// `request_timeout`; [`JetStreamStore::is_connected`] tells. Off by default:
    /// connecting fails at once when no server answers.
    pub retry_initial_connect: bool,
    /// Use the features of this server version instead of the one the server reports
    /// (see [`ServerVersion`]). For a cluster in the middle of a rolling upgrade: set it to
    /// the oldest node's version, so nothing an old node lacks is used.
    pub assume_server_version: Option<ServerVersion>,
    /// How often the client pings its server. Two unanswered pings end the connection and
    /// the client moves to another server of the list (or cluster): a server that is cut
    /// off without closing the connection (a network partition) is left after about twice
    /// this. Default 10 s (the NATS client's own default is 60 s).
    pub ping_interval: Duration,
    /// How long a claim that finds nothing claimable waits on the server for work (a pull
    /// with `expires`) before it returns empty: the next message is handed out as soon
    /// as it is written, without a poll loop of empty claims. Zero: return at once.
    /// Default 50 ms; at most `request_timeout`.
    pub claim_wait: Duration,
    /// Write an append of several messages as one atomic batch where the server can
    /// (nats-server 2.12.1+; see the crate README, "Server versions"): all or nothing, and
    /// on file storage synced to disk at the commit, which costs a disk sync per batch
    /// (measured 10-19 ms per batch here, against well under 1 ms for a batch written
    /// message by message, which the server syncs on its own schedule). Default `true`;
    /// `false` keeps the message-by-message path everywhere.
    pub atomic_batches: bool,
    /// Create the message streams of new channels with claims (on one replica, without
    /// `durable_acks`) with interest retention, so that the server removes a message when
    /// the claims consumer acknowledges it: an ack is one `+ACK` instead of a delete
    /// request and a `+ACK` (see the crate README, "Acks that remove"). Streams that exist
    /// keep the retention they were created with, and the store follows it.
    ///
    /// `None` (the default): where the server keeps an interest stream's messages through
    /// a crash ([`ServerVersion::interest_streams_survive_crashes`], 2.15+); limits
    /// retention (acknowledged by deleting) on older servers, because 2.9.10 lost
    /// unacknowledged messages of such streams after a SIGKILL. `Some(true)`: on every
    /// server (accepting that loss on 2.9); `Some(false)`: never.
    pub remove_on_ack: Option<bool>,
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
            retry_initial_connect: false,
            assume_server_version: None,
            ping_interval: Duration::from_secs(10),
            claim_wait: Duration::from_millis(50),
            atomic_batches: true,
            remove_on_ack: None,
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

    /// Sets the replica count of new streams (0 counts as 1; more than 5 is refused on
    /// connect).
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

    /// Sets whether connecting waits for a server in the background (see
    /// [`JetStreamOptions::retry_initial_connect`]).
    #[must_use]
    pub fn retry_initial_connect(mut self, retry: bool) -> Self {
        self.retry_initial_connect = retry;
        self
    }

    /// Sets how often the client pings its server (see
    /// [`JetStreamOptions::ping_interval`]).
    #[must_use]
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets how long an empty claim waits for work (see [`JetStreamOptions::claim_wait`]).
    #[must_use]
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Sets whether appends of several messages are atomic batches where the server can
    /// (see [`JetStreamOptions::atomic_batches`]).
    #[must_use]
    pub fn atomic_batches(mut self, atomic: bool) -> Self {
        self.atomic_batches = atomic;
        self
    }

    /// Sets whether new channel streams with claims remove a message on its ack, on every
    /// server (`true`) or never (`false`), instead of where the server is known to keep
    /// such streams through a crash (the default; see [`JetStreamOptions::remove_on_ack`]).
    #[must_use]
    pub fn remove_on_ack(mut self, remove: bool) -> Self {
        self.remove_on_ack = Some(remove);
        self
    }

    /// Pins the server features to those of `version` (see
    /// [`JetStreamOptions::assume_server_version`]).
    #[must_use]
    pub fn assume_server_version(mut self, version: Option<ServerVersion>) -> Self {
        self.assume_server_version = version;
        self
    }
}

pub(crate) struct StoreInner {
    pub(crate) url: String,
    pub(crate) servers: Vec<ServerAddr>,
    pub(crate) options: JetStreamOptions,
    /// The lowest server version seen on this connection (see [`StoreInner::server_version`]).
    version: std::sync::Mutex<Option<ServerVersion>>,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    state: OnceCell<stream::Stream>,
    channels: Mutex<HashMap<String, Arc<JetStreamChannel>>>,
    /// Counts the connections made (the first and every reconnect): channels with claims
    /// reconcile after each (a restarted server may have undone deletes).
    connected: tokio::sync::watch::Sender<u64>,
}

impl StoreInner {
    /// The version whose features this store may use: the assumed one, else the lowest
    /// version of every server this connection has been on (a reconnect can land on
    /// another node of a cluster); `None` until the first connection.
    pub(crate) fn server_version(&self) -> Option<ServerVersion> {
        if let Some(v) = self.options.assume_server_version {
            return Some(v);
        }
        let seen = self
            .client
            .try_server_info()
            .and_then(|info| info.version.parse::<ServerVersion>().ok());
        let mut lowest = self.version.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = seen {
            *lowest = Some(lowest.map_or(v, |l| l.min(v)));
        }
        *lowest
    }

    /// A receiver that changes at every (re)connection.
    pub(crate) fn connections(&self) -> tokio::sync::watch::Receiver<u64> {
        self.connected.subscribe()
    }

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
    /// Connects to the server(s) of the store URL `url` with the default options and those
    /// of its query:
    /// `nats://HOST:PORT[,HOST:PORT…][?replicas=3&prefix=NAME&…]` (see the crate docs
    /// for every option).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, JetStreamOptions::default()).await
    }

    /// Connects with `options`, overridden by the options in `url`'s query. Fails at once
    /// when no server answers, unless [`JetStreamOptions::retry_initial_connect`]; once
    /// connected, the client reconnects by itself after a connection loss (to any server
    /// of the list, or of the cluster).
    pub async fn connect_with(url: &str, options: JetStreamOptions) -> Result<Self> {
        let (servers, options) = crate::url::parse(url, options)?;
        names::validate_prefix(&options.prefix)?;
        if !(1..=MAX_REPLICAS).contains(&options.replicas) {
            return Err(invalid(format!(
                "replicas {}: a JetStream stream has 1 to {MAX_REPLICAS}",
                options.replicas
            )));
        }
        let mut connect = async_nats::ConnectOptions::new()
            .name(&options.connection_name)
            .request_timeout(Some(options.request_timeout))
            .connection_timeout(options.request_timeout)
            .ping_interval(options.ping_interval);
        if options.retry_initial_connect {
            connect = connect.retry_on_initial_connect();
        }
        let (connected, _) = tokio::sync::watch::channel(0u64);
        let on_connect = connected.clone();
        connect = connect.event_callback(move |event| {
            if matches!(event, async_nats::Event::Connected) {
                on_connect.send_modify(|n| *n += 1);
            }
            std::future::ready(())
        });
        let client = connect
            .connect(servers.clone())
            .await
            .map_err(|e| Error::store(format!("cannot connect to NATS at {url}"), e))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self {
            inner: Arc::new(StoreInner {
                url: url.to_owned(),
                servers,
                options,
                version: std::sync::Mutex::new(None),
                client,
                js,
                state: OnceCell::new(),
                channels: Mutex::new(HashMap::new()),
                connected,
            }),
        })
    }

    /// The options in force (those of the URL's query included).
    pub fn options(&self) -> &JetStreamOptions {
        &self.inner.options
    }

    /// The servers of the URL, in order (the client also learns the other nodes of a
    /// cluster from the server it is connected to).
    pub fn servers(&self) -> Vec<String> {
        self.inner
            .servers
            .iter()
            .map(|s| s.as_url_str().to_owned())
            .collect()
    }

    /// Whether the client is connected to a server right now.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Waits until the client is connected, at most `timeout`; `true` when it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The nats-server version whose features this store uses (see [`ServerVersion`] for
    /// what each enables): [`JetStreamOptions::assume_server_version`] if set, else the
    /// lowest version reported by the servers this connection has been on. `None` while
    /// it has never been connected.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.inner.server_version()
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
        ch.watch_reconnects();
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
