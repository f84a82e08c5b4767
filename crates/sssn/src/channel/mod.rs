//! Channels: named, typed, secured, persistent message stores.
//!
//! A channel handle is a [`Channel<K>`]: cheap to clone, typed by its kind `K` (see
//! [`kind`]), so each handle offers exactly its kind's operations. Build one from its kind
//! (each in its own file, with its builder and its semantics):
//!
//! | kind | handle | what it offers |
//! |---|---|---|
//! | [`PassthroughChannel`] | `Channel<Passthrough>` | shared reads, claims, subscriptions |
//! | [`BroadcastChannel`] | `Channel<Broadcast>` | shared reads, subscriptions; no claims |
//! | [`WorkQueueChannel`] | `Channel<WorkQueue>` | claims; no shared reads, no subscriptions |
//! | [`MailboxChannel`] | `Channel<Mailbox>` | shared reads and subscriptions, per recipient |
//! | [`PeriodicChannel`] | `Channel<Periodic>` | a pull loop, plus what a passthrough offers |
//! | [`DiscoveryChannel`] | `Channel<Discovery>` | registrations with a TTL, and queries |
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
//! let settled = jobs.ack("worker-1", &claimed).await?;
//! assert_eq!(settled.done.len(), 1);
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
//! [`Channel`] (that is, `Channel<Any>`) is the type-erased handle that a `Network`, the
//! HTTP server and the CLI hold: every typed handle converts into it (`Channel::from`),
//! and back with a check ([`Channel::typed`]). On it, an operation the kind lacks fails at
//! run time with [`crate::ErrorKind::UnsupportedOperation`].
//!
//! Data flows: a write is authorised, converted into a message (the `convert` hook),
//! filtered or changed by `before_store`, appended to the store, then observed by
//! `on_message` and pushed to subscribers through the store's feed (hooks:
//! [`ChannelHooks`]). Claims are settled through the store's claim queue, whose decisions
//! (requeue or dead-letter, fencing) come from [`ClaimPolicy`](crate::policy::ClaimPolicy).
//! A channel opens its store when it is first started, and runs background maintenance
//! (retention, lease reclaim, discovery TTL) while it runs.

mod admin;
mod broadcast;
mod builder;
mod claim;
mod core;
mod history;
mod hook_calls;
mod hooks;
pub mod kind;
mod lifecycle;
mod mailbox;
mod passthrough;
mod periodic;
mod read;
mod registry;
mod retention;
mod stats;
mod subscription;
mod work_queue;
mod write;

pub mod discovery;

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use broadcast::BroadcastChannel;
pub use builder::{ChannelBuilder, validate_id};
pub use claim::MessageIds;
pub use discovery::{ChannelRegistration, DiscoveryChannel, SystemRegistration};
pub use hooks::{
    AsyncConvertFn, BeforeStoreFn, ChannelHooks, ConvertFn, ErrorFn, MessageFn, ProcessReport,
    default_convert,
};
pub use kind::{Any, Kind};
pub use mailbox::MailboxChannel;
pub use passthrough::PassthroughChannel;
pub use periodic::{PeriodicChannel, PeriodicSourceChannel, Source, source_fn};
pub use stats::{ChannelStats, ReaderStats, SubscriberStats};
pub use subscription::{RecvError, Subscription};
pub use work_queue::WorkQueueChannel;

use self::core::{Backend, Core, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelKind};
use crate::security::{OpenSecurity, Principal, Security};
use crate::store::Store;
use periodic::RawBuffer;

/// Who is calling: a system id (in process) or an authenticated [`Principal`] (remote).
pub trait Caller {
    /// The caller as a principal.
    fn principal(&self) -> Cow<'_, Principal>;

    /// The caller's id when it is identified in process by its id alone (`&str`,
    /// `String`): operations then borrow it instead of building a principal per call.
    fn local_id(&self) -> Option<&str> {
        None
    }
}

impl Caller for str {
    fn principal(&self) -> Cow<'_, Principal> {
        Cow::Owned(Principal::local(self))
    }
    fn local_id(&self) -> Option<&str> {
        Some(self)
    }
}
impl Caller for String {
    fn principal(&self) -> Cow<'_, Principal> {
        Cow::Owned(Principal::local(self.as_str()))
    }
    fn local_id(&self) -> Option<&str> {
        Some(self)
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
    fn local_id(&self) -> Option<&str> {
        (**self).local_id()
    }
}

/// A caller as one operation sees it: an in-process id borrowed, else its principal.
pub(crate) enum Who<'a> {
    Local(&'a str),
    Principal(Cow<'a, Principal>),
}

impl<'a> Who<'a> {
    pub(crate) fn of<C: Caller + ?Sized>(caller: &'a C) -> Self {
        match caller.local_id() {
            Some(id) => Self::Local(id),
            None => Self::Principal(caller.principal()),
        }
    }

    /// The caller's id: the sender, reader or claimer id.
    pub(crate) fn id(&self) -> &str {
        match self {
            Self::Local(id) => id,
            Self::Principal(p) => &p.id,
        }
    }
}

/// Where a channel is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// Built, not started: nothing is stored yet, every operation is refused.
    Created,
    /// Accepting writes; background loops running.
    Running,
    /// `drain` in progress: writes refused, buffered items being processed.
    Draining,
    /// Stopped: writes refused, loops ended; stored data can still be read.
    Stopped,
}

impl ChannelState {
    /// The value `Core::state` holds for this state (the inverse of `from_u8`).
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Self::Created => 0,
            Self::Running => 1,
            Self::Draining => 2,
            Self::Stopped => 3,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Draining,
            _ => Self::Stopped,
        }
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

/// A channel handle of kind `K` ([`Any`] by default: the type-erased handle). Clones
/// share the same channel.
pub struct Channel<K: Kind = Any> {
    pub(crate) core: Arc<Core>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Kind> Clone for Channel<K> {
    fn clone(&self) -> Self {
        Self::wrap(self.core.clone())
    }
}

impl<K: Kind> std::fmt::Debug for Channel<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.core.info.id)
            .field("kind", &self.core.kind)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl<K: Kind> Channel<K> {
    fn wrap(core: Arc<Core>) -> Self {
        Self {
            core,
            kind: PhantomData,
        }
    }

    pub(crate) fn from_builder(mut b: ChannelBuilder<K>) -> Self {
        let source = b.source.take();
        let raw = (b.kind == ChannelKind::Periodic).then(|| {
            RawBuffer::new(
                b.max_raw_buffer_size.unwrap_or(builder::DEFAULT_RAW_BUFFER),
                b.max_workers.unwrap_or(builder::DEFAULT_MAX_WORKERS),
                source,
            )
        });
        let core = Core {
            info: b.info(),
            kind: b.kind,
            spec: b.spec(),
            retention: retention::Retention::new(b.retention_max_age, b.retention_max_count),
            since_trim: Default::default(),
            maintenance_interval: b.maintenance_interval,
            registration_ttl: b.registration_ttl.unwrap_or(builder::DEFAULT_TTL),
            backend: Mutex::new(b.store.map_or(Backend::Unset, Backend::Chosen)),
            storage: OnceLock::new(),
            security: RwLock::new(b.security.unwrap_or_else(|| Arc::new(OpenSecurity))),
            hooks: b.hooks,
            state: AtomicU8::new(0),
            lifecycle: tokio::sync::Mutex::new(()),
            cancel: Mutex::new(CancellationToken::new()),
            tasks: TaskTracker::new(),
            counters: Default::default(),
            subscribers: Mutex::new(Default::default()),
            raw,
            registry: (b.kind == ChannelKind::Discovery).then(Default::default),
        };
        Self::wrap(Arc::new(core))
    }

    /// Channel id.
    pub fn id(&self) -> &str {
        self.core.id()
    }

    /// Channel kind.
    pub fn kind(&self) -> ChannelKind {
        self.core.kind
    }

    /// Identity snapshot (v1 `ChannelInfo`), without an authorisation check: the owner's
    /// view. Callers acting for someone else use [`info_for`](Self::info_for).
    pub fn info(&self) -> ChannelInfo {
        self.core.info.clone()
    }

    /// Whether two handles (of any kinds) refer to the same channel.
    pub fn same_channel<L: Kind>(&self, other: &Channel<L>) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    /// The type-erased handle of this channel.
    pub fn erased(&self) -> Channel {
        Channel::wrap(self.core.clone())
    }

    /// Life-cycle state.
    pub fn state(&self) -> ChannelState {
        self.core.state()
    }

    /// Whether writes are accepted now.
    pub fn is_accepting_writes(&self) -> bool {
        self.state() == ChannelState::Running
    }

    /// Whether the channel has a pull loop: every periodic channel (it pulls its source,
    /// if any, and converts what was written, once per period).
    pub fn has_loop(&self) -> bool {
        self.core.raw.is_some()
    }

    /// Replaces the security policy; takes effect on the next operation.
    pub fn set_security(&self, security: Arc<dyn Security>) {
        *self
            .core
            .security
            .write()
            .unwrap_or_else(|e| e.into_inner()) = security;
    }

    /// The security policy.
    pub fn security(&self) -> Arc<dyn Security> {
        self.core.security()
    }

    /// Sets the storage backend if none was chosen. Fails when the channel was already
    /// started on its default memory store: the data it holds there would otherwise be
    /// silently left behind.
    pub fn set_store_if_unset(&self, store: Arc<dyn Store>) -> Result<()> {
        let mut backend = lock(&self.core.backend);
        match &*backend {
            Backend::Unset => {
                *backend = Backend::Chosen(store);
                Ok(())
            }
            Backend::Chosen(_) => Ok(()),
            Backend::Defaulted(memory) if Arc::ptr_eq(memory, &store) => Ok(()),
            Backend::Defaulted(_) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "channel '{}' was started before on its default memory store; it cannot move to {} (give it the store before starting it)",
                    self.id(),
                    store.describe()
                ),
            )),
        }
    }

    /// A description of the storage backend (`memory`, `sqlite:…`, …).
    pub fn store_description(&self) -> String {
        lock(&self.core.backend)
            .store()
            .map_or_else(|| "memory".to_owned(), |s| s.describe())
    }
}

impl Channel {
    /// The typed handle of kind `K`; fails unless the channel is of that kind.
    pub fn typed<K: Kind>(&self) -> Result<Channel<K>> {
        match K::KIND {
            Some(kind) if kind != self.core.kind => Err(Error::new(
                ErrorKind::UnsupportedOperation,
                format!(
                    "channel '{}' is a {} channel, not a {} channel",
                    self.id(),
                    self.core.kind.as_str(),
                    kind.as_str()
                ),
            )),
            _ => Ok(Channel::wrap(self.core.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Channel>();
        assert_send_sync::<WorkQueueChannel>();
        assert_send_sync::<BroadcastChannel>();
        assert_send_sync::<Subscription>();
    }

    #[test]
    fn typed_conversion_checks_the_kind() {
        let queue: Channel = WorkQueueChannel::new("q").build().into();
        assert!(queue.typed::<kind::WorkQueue>().is_ok());
        assert!(queue.typed::<Any>().is_ok());
        let err = queue.typed::<kind::Broadcast>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
        assert_eq!(
            err.message(),
            "channel 'q' is a work_queue channel, not a broadcast channel"
        );
    }
}
