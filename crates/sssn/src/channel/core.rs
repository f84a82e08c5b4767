//! [`Core`]: the state every handle of one channel shares, and the checks every operation
//! makes (life cycle, authorisation, capabilities), written once for every kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hook_calls::Hooks;
use super::periodic::RawBuffer;
use super::subscription::SubscriberState;
use super::{ChannelState, Who};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Payload};
use crate::security::{Operation, Security};
use crate::store::{ChannelSpec, ChannelStorage, ClaimQueue, Entry, Log, ReadFilter, Store};
use crate::trace::journal::{self, HopKind};

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) claims: AtomicU64,
    pub(crate) acks: AtomicU64,
    pub(crate) nacks: AtomicU64,
}

/// Where a channel's storage comes from.
pub(crate) enum Backend {
    /// Nothing chosen yet: a network's store, else memory at the first start.
    Unset,
    /// Chosen by the builder or a network.
    Chosen(Arc<dyn Store>),
    /// Nothing was chosen by the first start, which opened a private memory store.
    Defaulted(Arc<dyn Store>),
}

impl Backend {
    pub(crate) fn store(&self) -> Option<&Arc<dyn Store>> {
        match self {
            Self::Unset => None,
            Self::Chosen(s) | Self::Defaulted(s) => Some(s),
        }
    }
}

/// Everything a channel is, shared by its handles.
pub(crate) struct Core {
    pub(crate) info: ChannelInfo,
    pub(crate) kind: ChannelKind,
    pub(crate) spec: ChannelSpec,
    pub(crate) retention: super::retention::Retention,
    /// Messages appended since count retention last ran (it runs as writes arrive).
    pub(crate) since_trim: AtomicUsize,
    pub(crate) maintenance_interval: Duration,
    pub(crate) registration_ttl: Duration,
    /// The backend: chosen by the builder or a network, or the memory default at start.
    pub(crate) backend: Mutex<Backend>,
    /// The opened storage; set once, by the first `start`.
    pub(crate) storage: OnceLock<ChannelStorage>,
    pub(crate) security: RwLock<Arc<dyn Security>>,
    pub(crate) hooks: Hooks,
    pub(crate) state: AtomicU8,
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
    pub(crate) cancel: Mutex<CancellationToken>,
    pub(crate) tasks: TaskTracker,
    pub(crate) counters: Counters,
    pub(crate) subscribers: Mutex<HashMap<String, Vec<Arc<SubscriberState>>>>,
    pub(crate) raw: Option<RawBuffer>,
    /// The registry index (discovery channels).
    pub(crate) registry: Option<super::registry::Registry>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a few field updates; a panic inside one cannot leave
    // them worse off than refusing service would, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The class name of a kind in messages (v1's names).
pub(crate) fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Passthrough => "PassthroughChannel",
        ChannelKind::Broadcast => "BroadcastChannel",
        ChannelKind::WorkQueue => "WorkQueueChannel",
        ChannelKind::Mailbox => "MailboxChannel",
        ChannelKind::Periodic => "PeriodicChannel",
        ChannelKind::Discovery => "DiscoveryChannel",
    }
}

impl Core {
    pub(crate) fn id(&self) -> &str {
        &self.info.id
    }

    pub(crate) fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn security(&self) -> Arc<dyn Security> {
        self.security
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The opened storage: every operation on stored data needs the channel started once
    /// (a channel never opens a store behind its owner's back).
    pub(crate) fn storage(&self) -> Result<&ChannelStorage> {
        self.storage.get().ok_or_else(|| {
            Error::new(
                ErrorKind::ShuttingDown,
                format!(
                    "Channel '{}' is not started (start it, or the network that owns it, first).",
                    self.id()
                ),
            )
        })
    }

    pub(crate) fn log(&self) -> Result<&Arc<dyn Log>> {
        Ok(&self.storage()?.log)
    }

    /// The claim queue, or the run-time refusal for kinds without claims (reachable only
    /// through the type-erased handle).
    pub(crate) fn claims(&self, what: &str) -> Result<&Arc<dyn ClaimQueue>> {
        if !self.kind.claims() {
            return Err(self.unsupported(what));
        }
        self.storage()?.claims.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!(
                    "channel '{}' has claims but its store opened none",
                    self.id()
                ),
            )
        })
    }

    pub(crate) fn require_shared_reads(&self) -> Result<()> {
        if self.kind.shared_reads() {
            Ok(())
        } else {
            Err(self.unsupported("shared reads"))
        }
    }

    pub(crate) fn unsupported(&self, what: &str) -> Error {
        let hint = match self.kind {
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
                kind_name(self.kind),
                self.id()
            ),
        )
    }

    /// Authorises `op` for `caller` under the channel's security: the one check of every
    /// operation, local or remote.
    pub(crate) fn authorize(&self, caller: &Who<'_>, op: Operation) -> Result<()> {
        let security = self.security();
        let allowed = match caller {
            Who::Local(id) => security.authorize_local(id, self.id(), op),
            Who::Principal(p) => security.authorize(p, self.id(), op),
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::denied(caller.id(), self.id(), op))
        }
    }

    pub(crate) fn error_hook(&self, phase: &str, error: &Error) {
        self.hooks.error(self.id(), phase, error);
    }

    pub(crate) fn check_accepting(&self) -> Result<()> {
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

    /// Which messages a reader sees: a mailbox shows each reader its own.
    pub(crate) fn read_filter(&self, reader: &str) -> ReadFilter {
        ReadFilter {
            recipient: (self.kind == ChannelKind::Mailbox).then(|| reader.to_owned()),
        }
    }

    /// A direct write must carry the writer's own `sender_id` (or none): nobody writes in
    /// another's name.
    pub(crate) fn check_sender(&self, sender: &str, payload: &Payload) -> Result<()> {
        match payload {
            Payload::Message(m) if !m.sender_id.is_empty() && m.sender_id != sender => {
                Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "'{sender}' cannot write a message whose sender_id is '{}' to channel '{}'.",
                        m.sender_id,
                        self.id()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Converts a payload into the message to store (`convert`, then `before_store`),
    /// enforcing the sender. `report`: a hook's panic or timeout also goes to `on_error`
    /// (a writer's call; the periodic loop reports every failure itself).
    pub(crate) async fn prepare(
        &self,
        sender: &str,
        payload: Payload,
        report: bool,
    ) -> Result<Option<ChannelMessage>> {
        if self.hooks.plain_writes() {
            return self.prepare_plain(sender, payload);
        }
        self.check_sender(sender, &payload)?;
        let Some(mut message) = self
            .hooks
            .convert(self.id(), sender, payload, report)
            .await?
        else {
            return Ok(None);
        };
        if message.sender_id.is_empty() {
            message.sender_id = sender.to_owned();
        }
        let Some(message) = self.hooks.before_store(self.id(), message, report).await? else {
            return Ok(None);
        };
        self.seal(sender, message).map(Some)
    }

    /// [`prepare`](Self::prepare) on a channel without conversion or `before_store` hooks
    /// ([`Hooks::plain_writes`]): a plain call, so a write does not build and move the
    /// futures of hook calls that would do nothing.
    pub(crate) fn prepare_plain(
        &self,
        sender: &str,
        payload: Payload,
    ) -> Result<Option<ChannelMessage>> {
        self.check_sender(sender, &payload)?;
        match super::hooks::default_convert(sender, payload)? {
            Some(message) => self.seal(sender, message).map(Some),
            None => Ok(None),
        }
    }

    /// The last step of preparing a message: the sender filled in, the message checked,
    /// and its trace context given.
    fn seal(&self, sender: &str, mut message: ChannelMessage) -> Result<ChannelMessage> {
        if message.sender_id.is_empty() {
            message.sender_id = sender.to_owned();
        }
        message.validate()?;
        // A write made while handling a message continues its trace (crate::trace).
        crate::trace::stamp(&mut message);
        Ok(message)
    }

    /// Appends converted messages and runs `on_message` for each.
    pub(crate) async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let entries = self.log()?.append(messages).await?;
        self.appended(&entries).await;
        Ok(entries)
    }

    /// [`append`](Self::append) of one message.
    pub(crate) async fn append_one(&self, message: ChannelMessage) -> Result<Entry> {
        let log = self.log()?;
        let entry = match log.append_one_now(message) {
            Ok(appended) => appended?,
            Err(message) => log.append_one(message).await?,
        };
        self.appended(std::slice::from_ref(&entry)).await;
        Ok(entry)
    }

    /// Stores `message` as the one version of its id ([`Log::replace`]) and runs
    /// `on_message` for it, as an append does.
    pub(crate) async fn replace(
        &self,
        message: ChannelMessage,
        ttl: Option<Duration>,
    ) -> Result<Entry> {
        let entry = self.log()?.replace(message, ttl).await?;
        self.appended(std::slice::from_ref(&entry)).await;
        Ok(entry)
    }

    /// What follows every stored write: counters, trace, journal, `on_message`, count
    /// retention.
    async fn appended(&self, entries: &[Entry]) {
        self.counters
            .writes
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        if crate::trace::subscriber_installed() {
            let first = entries.first();
            crate::trace::record_message(
                &tracing::Span::current(),
                first.map(|e| &*e.message),
                first.map(|e| e.seq),
                None,
                entries.len(),
            );
        }
        for e in entries {
            journal::record(
                HopKind::Write,
                self.id(),
                &e.message,
                &e.message.sender_id,
                Some(e.seq),
                None,
            );
        }
        if self.hooks.observes_messages() {
            for e in entries {
                self.hooks.on_message(self.id(), &e.message).await;
            }
        }
        self.trim_as_written(entries.len()).await;
    }

    /// Count retention as writes arrive: once a tenth of `max_count` (at least one) was
    /// appended since the last trim, trim to `max_count`. Stored messages then stay within
    /// `max_count` plus that slack whatever the write rate, at one store call per slack's
    /// worth of writes. The write already succeeded: a failed trim goes to `on_error`.
    async fn trim_as_written(&self, appended: usize) {
        let Some(max) = self.retention.max_count() else {
            return;
        };
        let slack = (max / 10).max(1);
        let since = self.since_trim.fetch_add(appended, Ordering::Relaxed) + appended;
        if since < slack {
            return;
        }
        self.since_trim.store(0, Ordering::Relaxed);
        let trimmed = match self.log() {
            Ok(log) => log.evict(None, Some(max)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = trimmed {
            self.error_hook("retention", &e);
        }
    }

    /// Opens the storage (at the first start) from the chosen backend, memory by default.
    pub(crate) async fn open_storage(&self) -> Result<()> {
        if self.storage.get().is_some() {
            return Ok(());
        }
        let backend = {
            let mut backend = lock(&self.backend);
            match &*backend {
                Backend::Chosen(store) | Backend::Defaulted(store) => store.clone(),
                Backend::Unset => {
                    let memory: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
                    *backend = Backend::Defaulted(memory.clone());
                    memory
                }
            }
        };
        let storage = backend.open_channel(&self.spec).await?;
        if let Some(raw) = &self.raw {
            raw.open(&backend, self.id()).await?;
        }
        // Only `start` opens, under the life-cycle lock: nobody raced us.
        let _ = self.storage.set(storage);
        Ok(())
    }
}
