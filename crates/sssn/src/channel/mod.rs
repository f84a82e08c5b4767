//! Channels: named, typed, secured, persistent message stores.
//!
//! A [`Channel`] is a cheap, cloneable handle. Its kind ([`ChannelKind`]) fixes what its
//! operations mean; its [`Store`](crate::store::Store) keeps the data; its
//! [`Security`](crate::security::Security) authorises every operation.
//!
//! Build one from its kind:
//!
//! ```
//! # async fn demo() -> sssn::Result<()> {
//! use std::time::Duration;
//! use sssn::channel::{BroadcastChannel, WorkQueueChannel};
//!
//! let jobs = WorkQueueChannel::new("jobs").claim_timeout(Duration::from_secs(30)).build();
//! jobs.start().await?;
//! jobs.write("producer", &serde_json::json!({"n": 1})).await?;
//! let claimed = jobs.claim("worker-1", 10).await?;
//! jobs.ack("worker-1", &[claimed[0].message.id.clone()]).await?;
//!
//! let feed = BroadcastChannel::new("feed").build();
//! feed.start().await?;
//! let mut sub = feed.subscribe("dashboard").await?;
//! feed.write("sensor", &22.4).await?;
//! let got = sub.recv().await.unwrap();
//! assert_eq!(got.message.data::<f64>()?, 22.4);
//! # Ok(()) }
//! ```
//!
//! Data flows: a write is authorised, converted into a message (the `convert` hook), appended
//! to the store, then observed by `on_message` and pushed to subscribers through the store's
//! feed. Background maintenance (retention, lease reclaim, discovery TTL) runs on every kind
//! once the channel is started.

mod broadcast;
mod builder;
mod hooks;
mod mailbox;
mod passthrough;
mod periodic;
mod stats;
mod subscription;
mod work_queue;

pub mod discovery;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use broadcast::BroadcastChannel;
pub use builder::{ChannelBuilder, validate_id};
pub use discovery::{ChannelRegistration, DiscoveryChannel, SystemRegistration};
pub use hooks::{ConvertFn, ErrorFn, MessageFn, default_convert};
pub use mailbox::MailboxChannel;
pub use passthrough::PassthroughChannel;
pub use periodic::{PeriodicChannel, PeriodicSourceChannel, Source, source_fn};
pub use stats::{ChannelStats, ReaderStats, SubscriberStats};
pub use subscription::{RecvError, Subscription};
pub use work_queue::WorkQueueChannel;

use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Content, Payload};
use crate::security::{OpenSecurity, Operation, Principal, Security};
use crate::store::{
    ChannelStore, Claimed, DeadLetter, Entry, MemoryStore, ReadFilter, ReadFrom, Seq, Store,
};
use hooks::Hooks;
use periodic::RawBuffer;
use subscription::SubscriberState;

/// Who is calling: a system id (in process) or an authenticated [`Principal`] (remote).
pub trait Caller {
    /// The caller as a principal.
    fn principal(&self) -> Cow<'_, Principal>;
}

impl Caller for str {
    fn principal(&self) -> Cow<'_, Principal> {
        Cow::Owned(Principal::local(self))
    }
}
impl Caller for String {
    fn principal(&self) -> Cow<'_, Principal> {
        Cow::Owned(Principal::local(self.as_str()))
    }
}
impl Caller for Principal {
    fn principal(&self) -> Cow<'_, Principal> {
        Cow::Borrowed(self)
    }
}
impl<T: Caller + ?Sized> Caller for &T {
    fn principal(&self) -> Cow<'_, Principal> {
        (**self).principal()
    }
}

/// Where a channel is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// Built, not started: reads work, writes are refused.
    Created,
    /// Accepting writes; background loops running.
    Running,
    /// `drain` in progress: writes refused, buffered items being processed.
    Draining,
    /// Stopped: writes refused, loops ended.
    Stopped,
}

impl ChannelState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Draining,
            _ => Self::Stopped,
        }
    }
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    reads: AtomicU64,
    claims: AtomicU64,
    acks: AtomicU64,
    nacks: AtomicU64,
}

pub(crate) struct Inner {
    info: ChannelInfo,
    kind: ChannelKind,
    spec: crate::store::ChannelSpec,
    retention_max_age: Option<Duration>,
    retention_max_count: Option<usize>,
    maintenance_interval: Duration,
    registration_ttl: Duration,
    backend: Mutex<Option<Arc<dyn Store>>>,
    store: OnceCell<Arc<dyn ChannelStore>>,
    security: RwLock<Arc<dyn Security>>,
    hooks: Hooks,
    state: AtomicU8,
    lifecycle: tokio::sync::Mutex<()>,
    cancel: Mutex<CancellationToken>,
    tasks: TaskTracker,
    counters: Counters,
    subscribers: Mutex<HashMap<String, Vec<Arc<SubscriberState>>>>,
    raw: Option<RawBuffer>,
}

/// A channel handle. Clones share the same channel.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.info.id)
            .field("kind", &self.inner.kind)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Options of [`Channel::read_with`], v1's `read(reader, limit, exclusive, after)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// At most this many messages (v1 default 10).
    pub limit: usize,
    /// Claim instead of a shared read.
    pub exclusive: bool,
    /// Start after the message with this id (shared reads; moves the cursor).
    pub after: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            limit: 10,
            exclusive: false,
            after: None,
        }
    }
}

impl Channel {
    fn from_builder(mut b: ChannelBuilder) -> Self {
        let source = b.source.take();
        let raw = (b.kind == ChannelKind::Periodic)
            .then(|| RawBuffer::new(b.max_raw_buffer_size, source));
        let inner = Inner {
            info: b.info(),
            kind: b.kind,
            spec: b.spec(),
            retention_max_age: b.retention_max_age,
            retention_max_count: b.retention_max_count,
            maintenance_interval: b.maintenance_interval,
            registration_ttl: b.registration_ttl,
            backend: Mutex::new(b.store),
            store: OnceCell::new(),
            security: RwLock::new(b.security.unwrap_or_else(|| Arc::new(OpenSecurity))),
            hooks: b.hooks,
            state: AtomicU8::new(0),
            lifecycle: tokio::sync::Mutex::new(()),
            cancel: Mutex::new(CancellationToken::new()),
            tasks: TaskTracker::new(),
            counters: Counters::default(),
            subscribers: Mutex::new(HashMap::new()),
            raw,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Channel id.
    pub fn id(&self) -> &str {
        &self.inner.info.id
    }

    /// Channel kind.
    pub fn kind(&self) -> ChannelKind {
        self.inner.kind
    }

    /// Identity snapshot (v1 `ChannelInfo`).
    pub fn info(&self) -> ChannelInfo {
        self.inner.info.clone()
    }

    /// Whether two handles refer to the same channel.
    pub fn same_channel(&self, other: &Channel) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Life-cycle state.
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.inner.state.load(Ordering::Acquire))
    }

    /// Whether writes are accepted now.
    pub fn is_accepting_writes(&self) -> bool {
        self.state() == ChannelState::Running
    }

    /// Whether the channel has a pull loop (periodic channels).
    pub fn has_loop(&self) -> bool {
        self.inner.raw.as_ref().is_some_and(RawBuffer::has_source)
    }

    /// Replaces the security policy; takes effect on the next operation.
    pub fn set_security(&self, security: Arc<dyn Security>) {
        *self
            .inner
            .security
            .write()
            .unwrap_or_else(|e| e.into_inner()) = security;
    }

    /// The security policy.
    pub fn security(&self) -> Arc<dyn Security> {
        self.inner
            .security
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the storage backend if none was chosen; fails once the store is open.
    pub fn set_store_if_unset(&self, store: Arc<dyn Store>) -> Result<()> {
        if self.inner.store.initialized() {
            return Ok(());
        }
        let mut backend = self.inner.backend.lock().unwrap_or_else(|e| e.into_inner());
        if backend.is_none() {
            *backend = Some(store);
        }
        Ok(())
    }

    /// A description of the storage backend (`memory`, `sqlite:…`, …).
    pub fn store_description(&self) -> String {
        self.inner
            .backend
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or_else(|| "memory".to_owned(), |s| s.describe())
    }

    /// The opened storage (opening it on first use).
    pub(crate) async fn store(&self) -> Result<&Arc<dyn ChannelStore>> {
        self.inner
            .store
            .get_or_try_init(|| async {
                let backend = self
                    .inner
                    .backend
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(|| Arc::new(MemoryStore::new()))
                    .clone();
                backend.open_channel(&self.inner.spec).await
            })
            .await
    }

    pub(crate) fn authorize(&self, caller: &Principal, op: Operation) -> Result<()> {
        if self.security().authorize(caller, self.id(), op) {
            return Ok(());
        }
        let verb = match op {
            Operation::Read => "read from",
            Operation::Write => "write to",
            Operation::Subscribe => "subscribe to",
            Operation::Claim => "claim from",
            Operation::Ack => "acknowledge on",
            Operation::Nack => "nack on",
            Operation::Admin => "administer",
        };
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "'{}' is not authorised to {verb} channel '{}'.",
                caller.id,
                self.id()
            ),
        ))
    }

    fn unsupported(&self, what: &str) -> Error {
        let hint = match self.inner.kind {
            ChannelKind::Broadcast => {
                " Use subscribe() for push delivery or a shared read for cursor-based polling."
            }
            ChannelKind::WorkQueue => " Use claim() (an exclusive read) to take work items.",
            _ => "",
        };
        Error::new(
            ErrorKind::UnsupportedOperation,
            format!(
                "{} channel '{}' does not support {what}.{hint}",
                kind_name(self.inner.kind),
                self.id()
            ),
        )
    }

    fn require_claims(&self, what: &str) -> Result<()> {
        if self.inner.kind.claims() {
            Ok(())
        } else {
            Err(self.unsupported(what))
        }
    }

    fn error_hook(&self, phase: &str, error: &Error) {
        self.inner.hooks.error(self.id(), phase, error);
    }

    // ----- writes -------------------------------------------------------------------

    fn check_accepting(&self) -> Result<()> {
        match self.state() {
            ChannelState::Running => Ok(()),
            ChannelState::Created => Err(Error::new(
                ErrorKind::ShuttingDown,
                format!(
                    "Channel '{}' is not accepting writes (not started).",
                    self.id()
                ),
            )),
            _ => Err(Error::new(
                ErrorKind::ShuttingDown,
                format!(
                    "Channel '{}' is not accepting writes (shutting down).",
                    self.id()
                ),
            )),
        }
    }

    /// Writes raw data (stored as `{"data": data}` by the default conversion). Returns the
    /// message id, or on a periodic channel the id of the buffered item.
    pub async fn write<T: Serialize + ?Sized>(
        &self,
        caller: impl Caller,
        data: &T,
    ) -> Result<String> {
        let to_value = || {
            serde_json::to_value(data)
                .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("data: {e}")))
        };
        if self.inner.hooks.convert.is_some()
            || self.inner.raw.is_some()
            || !self.is_accepting_writes()
        {
            return self.write_payload(caller, Payload::Data(to_value()?)).await;
        }
        // Fast path (default conversion): serialise straight into `{"data": …}`.
        self.write_payload(caller, Payload::Content(Content::data(data)?))
            .await
    }

    /// Writes content as is (typed content).
    pub async fn write_content(&self, caller: impl Caller, content: Content) -> Result<String> {
        self.write_payload(caller, Payload::Content(content)).await
    }

    /// Direct write of a complete message. Its `sender_id` must be the caller's id (an
    /// empty one is filled in): nobody can write in another's name.
    pub async fn write_message(
        &self,
        caller: impl Caller,
        message: ChannelMessage,
    ) -> Result<String> {
        self.write_payload(caller, Payload::Message(message)).await
    }

    /// Writes one payload (see [`Payload`]).
    pub async fn write_payload(&self, caller: impl Caller, payload: Payload) -> Result<String> {
        let mut ids = self.write_batch(caller, vec![payload]).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Writes several payloads in one store append. Returns one id per payload (`""` where
    /// the conversion dropped the item). All or nothing: a bad payload fails the batch.
    pub async fn write_batch(
        &self,
        caller: impl Caller,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>> {
        let caller = caller.principal();
        if let Err(e) = self.check_accepting() {
            return Err(match payloads.into_iter().next() {
                Some(p) => e.with_rejected(p),
                None => e,
            });
        }
        self.authorize(&caller, Operation::Write)?;
        if let Some(raw) = &self.inner.raw {
            return raw.push(self.id(), &caller.id, payloads);
        }
        let mut messages = Vec::with_capacity(payloads.len());
        let mut slots = Vec::with_capacity(payloads.len());
        for payload in payloads {
            match self.prepare(&caller.id, payload)? {
                Some(m) => {
                    slots.push(Some(messages.len()));
                    messages.push(m);
                }
                None => slots.push(None),
            }
        }
        let entries = self.append(messages).await?;
        Ok(slots
            .into_iter()
            .map(|s| s.map_or_else(String::new, |i| entries[i].message.id.clone()))
            .collect())
    }

    /// Converts a payload into the message to store, enforcing the sender.
    fn prepare(&self, sender: &str, payload: Payload) -> Result<Option<ChannelMessage>> {
        let direct = matches!(payload, Payload::Message(_));
        let Some(mut message) = self.inner.hooks.convert(sender, payload)? else {
            return Ok(None);
        };
        message.validate()?;
        if message.sender_id.is_empty() {
            message.sender_id = sender.to_owned();
        } else if message.sender_id != sender && direct {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "'{sender}' cannot write a message whose sender_id is '{}' to channel '{}'.",
                    message.sender_id,
                    self.id()
                ),
            ));
        }
        Ok(Some(message))
    }

    /// Appends converted messages and runs `on_message` for each.
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let n = messages.len() as u64;
        let entries = self.store().await?.append(messages).await?;
        self.inner.counters.writes.fetch_add(n, Ordering::Relaxed);
        if let Some(f) = &self.inner.hooks.on_message {
            for e in &entries {
                f(&e.message);
            }
        }
        Ok(entries)
    }

    // ----- shared reads -------------------------------------------------------------

    /// Shared read of up to `limit` messages from the caller's cursor, which advances.
    pub async fn read(
        &self,
        caller: impl Caller,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_from(caller, ReadFrom::Cursor, limit).await
    }

    /// Shared read starting after the message `after` (moves the caller's cursor there).
    pub async fn read_after(
        &self,
        caller: impl Caller,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_from(caller, ReadFrom::AfterId(after.to_owned()), limit)
            .await
    }

    /// v1's `read(reader, limit, exclusive, after)`: a shared read, or a claim when
    /// `exclusive` (claims are returned as plain messages).
    pub async fn read_with(
        &self,
        caller: impl Caller,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        if options.exclusive {
            let claimed = self.claim(caller, options.limit).await?;
            return Ok(claimed.into_iter().map(|c| c.message).collect());
        }
        let from = options.after.map_or(ReadFrom::Cursor, ReadFrom::AfterId);
        self.read_from(caller, from, options.limit).await
    }

    async fn read_from(
        &self,
        caller: impl Caller,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        if !self.inner.kind.shared_reads() {
            return Err(self.unsupported("shared reads"));
        }
        let caller = caller.principal();
        self.authorize(&caller, Operation::Read)?;
        let entries = self
            .store()
            .await?
            .read(&caller.id, from, limit, &self.read_filter(&caller.id))
            .await?;
        self.inner
            .counters
            .reads
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(entries.into_iter().map(|e| e.message).collect())
    }

    fn read_filter(&self, reader: &str) -> ReadFilter {
        ReadFilter {
            recipient: (self.inner.kind == ChannelKind::Mailbox).then(|| reader.to_owned()),
        }
    }

    /// Up to `limit` messages after sequence `after`, with their sequences, without moving
    /// any cursor (catch-up, browsing). Needs read rights.
    pub async fn entries_after(
        &self,
        caller: impl Caller,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let caller = caller.principal();
        self.authorize(&caller, Operation::Read)?;
        let filter = self.read_filter(&caller.id);
        let mut out = self.store().await?.range(after, limit).await?;
        out.retain(|e| filter.matches(&e.message));
        Ok(out)
    }

    // ----- claims -------------------------------------------------------------------

    /// Claims up to `limit` of the oldest claimable messages for the lease
    /// (`claim_timeout`). Each carries its delivery attempt number.
    pub async fn claim(&self, caller: impl Caller, limit: usize) -> Result<Vec<Claimed>> {
        self.require_claims("claims (exclusive reads)")?;
        let caller = caller.principal();
        self.authorize(&caller, Operation::Claim)?;
        let claimed = self.store().await?.claim(&caller.id, limit).await?;
        self.inner
            .counters
            .claims
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        Ok(claimed)
    }

    fn settled(&self, what: &str, settled: crate::store::Settled) -> Result<usize> {
        if settled.stale.is_empty() {
            return Ok(settled.done.len());
        }
        Err(Error::new(
            ErrorKind::StaleClaim,
            format!(
                "{what} refused on channel '{}' for {:?}: no live claim held by the caller (expired, reclaimed, already settled or unknown); {} other(s) settled",
                self.id(),
                settled.stale,
                settled.done.len()
            ),
        ))
    }

    /// Acknowledges claimed messages: they are consumed and leave the store. Fenced: ids
    /// without a live claim by the caller fail with [`ErrorKind::StaleClaim`] (the others
    /// are still acknowledged).
    pub async fn ack(&self, caller: impl Caller, ids: &[String]) -> Result<usize> {
        self.require_claims("acknowledgements")?;
        let caller = caller.principal();
        self.authorize(&caller, Operation::Ack)?;
        let s = self.store().await?.ack(&caller.id, ids).await?;
        self.inner
            .counters
            .acks
            .fetch_add(s.done.len() as u64, Ordering::Relaxed);
        self.settled("ack", s)
    }

    /// Releases claimed messages for anyone to claim again now.
    pub async fn nack(&self, caller: impl Caller, ids: &[String]) -> Result<usize> {
        self.nack_inner(caller, ids, None).await
    }

    /// Releases claimed messages, claimable again after `delay`.
    pub async fn nack_after(
        &self,
        caller: impl Caller,
        ids: &[String],
        delay: Duration,
    ) -> Result<usize> {
        self.nack_inner(caller, ids, Some(delay)).await
    }

    async fn nack_inner(
        &self,
        caller: impl Caller,
        ids: &[String],
        delay: Option<Duration>,
    ) -> Result<usize> {
        self.require_claims("nacks")?;
        let caller = caller.principal();
        self.authorize(&caller, Operation::Nack)?;
        let s = self.store().await?.nack(&caller.id, ids, delay).await?;
        self.inner
            .counters
            .nacks
            .fetch_add(s.done.len() as u64, Ordering::Relaxed);
        self.settled("nack", s)
    }

    /// Sends claimed messages straight to the dead letters (a fatal failure) with `reason`.
    pub async fn reject(&self, caller: impl Caller, ids: &[String], reason: &str) -> Result<usize> {
        self.require_claims("reject")?;
        let caller = caller.principal();
        self.authorize(&caller, Operation::Nack)?;
        let s = self.store().await?.reject(&caller.id, ids, reason).await?;
        self.settled("reject", s)
    }

    /// Renews the lease of claimed messages for a full `claim_timeout` from now.
    pub async fn extend(&self, caller: impl Caller, ids: &[String]) -> Result<usize> {
        self.require_claims("lease extension")?;
        let caller = caller.principal();
        self.authorize(&caller, Operation::Nack)?;
        let s = self.store().await?.extend(&caller.id, ids).await?;
        self.settled("extend", s)
    }

    /// Makes messages whose lease ran out claimable again now (maintenance does this too).
    pub async fn reclaim_expired(&self) -> Result<usize> {
        self.store().await?.reclaim_expired().await
    }

    /// Dead letters, oldest first (admin).
    pub async fn dead_letters(&self, caller: impl Caller, limit: usize) -> Result<Vec<DeadLetter>> {
        self.authorize(&caller.principal(), Operation::Admin)?;
        self.store().await?.dead_letters(limit).await
    }

    /// Puts dead letters back in the channel as new messages (admin).
    pub async fn redrive(&self, caller: impl Caller, ids: &[String]) -> Result<usize> {
        self.authorize(&caller.principal(), Operation::Admin)?;
        self.store().await?.redrive(ids).await
    }

    // ----- host operations ------------------------------------------------------------

    /// Removes every message (admin). Cursors stay valid.
    pub async fn clear(&self, caller: impl Caller) -> Result<usize> {
        self.authorize(&caller.principal(), Operation::Admin)?;
        self.store().await?.clear().await
    }

    /// Removes messages stored before `before` (epoch seconds), then all but the newest
    /// `max_count` (admin).
    pub async fn evict(
        &self,
        caller: impl Caller,
        before: Option<f64>,
        max_count: Option<usize>,
    ) -> Result<usize> {
        self.authorize(&caller.principal(), Operation::Admin)?;
        self.store().await?.evict(before, max_count).await
    }

    /// Removes messages by id (admin).
    pub async fn remove(&self, caller: impl Caller, ids: &[String]) -> Result<usize> {
        self.authorize(&caller.principal(), Operation::Admin)?;
        self.store().await?.remove(ids).await
    }

    // ----- push ---------------------------------------------------------------------

    /// Subscribes to every new message from now on. On a mailbox only messages for the
    /// caller (or for everyone) are delivered.
    pub async fn subscribe(&self, caller: impl Caller) -> Result<Subscription> {
        self.subscribe_inner(caller, None).await
    }

    /// Subscribes starting after sequence `after` (resume, e.g. SSE `Last-Event-ID`).
    pub async fn subscribe_after(&self, caller: impl Caller, after: Seq) -> Result<Subscription> {
        self.subscribe_inner(caller, Some(after)).await
    }

    async fn subscribe_inner(
        &self,
        caller: impl Caller,
        after: Option<Seq>,
    ) -> Result<Subscription> {
        let caller = caller.principal();
        self.authorize(&caller, Operation::Subscribe)?;
        let store = self.store().await?.clone();
        let parent = self
            .inner
            .cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let state = Arc::new(SubscriberState::new(
            caller.id.clone(),
            parent.child_token(),
        ));
        {
            let mut subs = self
                .inner
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let list = subs.entry(caller.id.clone()).or_default();
            list.retain(|s| !s.is_closed());
            list.push(state.clone());
        }
        Ok(Subscription::new(
            self.id().to_owned(),
            store,
            self.read_filter(&caller.id),
            state,
            after,
        ))
    }

    /// Ends every subscription of `caller` on this channel.
    pub fn unsubscribe(&self, caller: impl Caller) {
        let caller = caller.principal();
        if let Some(list) = self
            .inner
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&caller.id)
        {
            for s in list {
                s.close();
            }
        }
    }

    // ----- life cycle ---------------------------------------------------------------

    /// Opens the store, starts accepting writes and starts the background loops
    /// (maintenance on every kind; the pull loop on periodic channels). Idempotent.
    pub async fn start(&self) -> Result<()> {
        let _guard = self.inner.lifecycle.lock().await;
        if self.state() == ChannelState::Running {
            return Ok(());
        }
        self.store().await?;
        let cancel = CancellationToken::new();
        *self.inner.cancel.lock().unwrap_or_else(|e| e.into_inner()) = cancel.clone();
        self.inner.tasks.reopen();
        self.inner.state.store(1, Ordering::Release);
        let this = self.clone();
        let token = cancel.clone();
        self.inner
            .tasks
            .spawn(async move { this.maintenance_loop(token).await });
        if self.has_loop() {
            let this = self.clone();
            self.inner
                .tasks
                .spawn(async move { this.pull_loop(cancel).await });
        }
        Ok(())
    }

    /// Stops at once: refuses writes, ends the loops and subscriptions. Buffered raw items
    /// of a periodic channel that were not processed yet are reported through `on_error`.
    pub async fn stop(&self) {
        let _guard = self.inner.lifecycle.lock().await;
        self.shutdown().await;
    }

    /// Refuses new writes, processes what is buffered (periodic channels) for up to
    /// `timeout` (forever with `None`), then stops.
    pub async fn drain(&self, timeout: Option<Duration>) -> Result<()> {
        let _guard = self.inner.lifecycle.lock().await;
        if self.state() != ChannelState::Running {
            self.inner.state.store(3, Ordering::Release);
            return Ok(());
        }
        self.inner.state.store(2, Ordering::Release);
        // End the loops first, so no new pull refills the buffer while it drains.
        self.stop_tasks().await;
        let mut outcome = Ok(());
        if let Some(raw) = &self.inner.raw {
            // Checked between batches only: a batch taken from the buffer is always stored.
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            while !raw.is_empty() {
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    outcome = Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "[{}] drain() timed out; {} raw buffer items abandoned.",
                            self.id(),
                            raw.len()
                        ),
                    ));
                    break;
                }
                self.process_buffer().await;
            }
        }
        self.shutdown().await;
        outcome
    }

    /// Cancels the background loops and waits for them to end.
    async fn stop_tasks(&self) {
        self.inner
            .cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    async fn shutdown(&self) {
        self.inner.state.store(3, Ordering::Release);
        self.stop_tasks().await;
        if let Some(raw) = &self.inner.raw {
            let left = raw.len();
            if left > 0 {
                self.error_hook(
                    "stop",
                    &Error::new(
                        ErrorKind::ShuttingDown,
                        format!("{left} raw buffer items were not processed"),
                    ),
                );
            }
        }
    }

    /// One maintenance pass: retention, lease reclaim, discovery TTL expiry.
    pub async fn maintain(&self) -> Result<()> {
        let store = self.store().await?;
        if self.inner.retention_max_age.is_some() || self.inner.retention_max_count.is_some() {
            let before = self
                .inner
                .retention_max_age
                .map(|age| crate::clock::now_secs() - age.as_secs_f64());
            store.evict(before, self.inner.retention_max_count).await?;
        }
        if self.inner.kind.claims() {
            store.reclaim_expired().await?;
        }
        if self.inner.kind == ChannelKind::Discovery {
            discovery::purge_expired(self).await?;
        }
        Ok(())
    }

    async fn maintenance_loop(self, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.inner.maintenance_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate; maintenance starts one interval in
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(e) = self.maintain().await {
                self.error_hook("maintain", &e);
            }
        }
    }

    // ----- stats --------------------------------------------------------------------

    /// A snapshot of the channel's counters and storage state.
    pub async fn stats(&self) -> Result<ChannelStats> {
        let store = self.store().await?.stats().await?;
        let c = &self.inner.counters;
        let subscribers = {
            let subs = self
                .inner
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut out: Vec<SubscriberStats> = subs
                .values()
                .flatten()
                .filter(|s| !s.is_closed())
                .map(|s| {
                    let position = s.position.load(Ordering::Relaxed);
                    SubscriberStats {
                        reader: s.reader.clone(),
                        position,
                        queue_depth: store.head_seq.saturating_sub(position),
                    }
                })
                .collect();
            out.sort_by(|a, b| a.reader.cmp(&b.reader));
            out
        };
        let now = crate::clock::now_secs();
        Ok(ChannelStats {
            id: self.id().to_owned(),
            kind: self.inner.kind,
            state: self.state(),
            store: self.store_description(),
            stored: store.stored,
            backlog: store.backlog,
            delayed: store.delayed,
            in_flight: store.in_flight,
            acknowledged: store.acknowledged,
            dead_lettered: store.dead_lettered,
            oldest_unacked_age_secs: store.oldest_unacked.map(|t| (now - t).max(0.0)),
            head_seq: store.head_seq,
            writes: c.writes.load(Ordering::Relaxed),
            reads: c.reads.load(Ordering::Relaxed),
            claims: c.claims.load(Ordering::Relaxed),
            acks: c.acks.load(Ordering::Relaxed),
            nacks: c.nacks.load(Ordering::Relaxed),
            raw_buffered: self.inner.raw.as_ref().map_or(0, |r| r.len() as u64),
            readers: store
                .cursors
                .into_iter()
                .map(|(reader, cursor)| ReaderStats {
                    lag: store.head_seq.saturating_sub(cursor),
                    reader,
                    cursor,
                })
                .collect(),
            subscribers,
        })
    }
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Passthrough => "PassthroughChannel",
        ChannelKind::Broadcast => "BroadcastChannel",
        ChannelKind::WorkQueue => "WorkQueueChannel",
        ChannelKind::Mailbox => "MailboxChannel",
        ChannelKind::Periodic => "PeriodicChannel",
        ChannelKind::Discovery => "DiscoveryChannel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Channel>();
        assert_send_sync::<Subscription>();
    }
}
