//! [`JetStreamChannel`]: one channel's storage on JetStream, opened as a [`Log`] and, for
//! channels with claims, a [`ClaimQueue`] (both implemented on this one struct).
//!
//! What lives on the server, per channel (names in [`crate::names`]):
//!
//! * the message stream: one subject per message id, limits retention — the log;
//! * the state stream of the store (shared by its channels): reader cursors and the
//!   acknowledged counter, one message per subject;
//! * for channels with claims only: the durable `claims` consumer every claimer of every
//!   process pulls from, and the dead-letter stream `<stream>_DLQ`.
//!
//! Data flow, file by file:
//!
//! * [`log`]: appends publish to the message stream; range, retention, removal, stats,
//!   feed and head;
//! * [`atomic_batch`]: on 2.12.1+, an append of several messages is one atomic batch;
//! * [`cursors`]: shared reads fetch from a per-reader ephemeral consumer and store the
//!   cursor in the state stream;
//! * [`claims`]: claims fetch from the `claims` consumer; ack, nack, reject and extend go
//!   through one settle helper;
//! * [`claim_table`]: this process's claims (holder, lease deadline, ack subject), which
//!   settling is fenced against;
//! * [`dead_letters`]: messages that used their last delivery or were rejected move to
//!   the dead-letter stream; redrive moves them back;
//! * [`ack_counter`]: acks add to the acknowledged counter in the state stream;
//! * [`remove_on_ack`]: on interest-retention streams an ack is a `+ACK` that the server
//!   answers once it removed the message (no delete request);
//! * [`reconcile`]: after a server crash, messages left below the claims consumer's ack
//!   floor are deleted again or made claimable (on open, reconnect, `stats`);
//! * [`primitives`]: the server requests all of these are made of (fetch, ephemeral
//!   consumers, scans, deletes by sequence, purges, acknowledgements of deliveries);
//! * [`replace`]: a message replaced by id (discovery's registrations), removal by sequence;
//! * [`lookup`]: lookups of one message that see the writes confirmed before them (direct
//!   get on R1, the stream leader on replicated streams);
//! * [`crate::feed`]: a consumer from the head that forwards every committed append, from
//!   any process, to a tokio broadcast; started by the first [`Log::feed`].
//!
//! Every decision about claims (requeue or dead-letter, with which reason, may this caller
//! settle) is asked of the channel's [`ClaimPolicy`](sssn::policy::ClaimPolicy); this
//! module family only performs the mechanics.

mod ack_counter;
mod atomic_batch;
mod claim_table;
mod claims;
mod cursors;
mod dead_letters;
mod inboxes;
mod log;
mod lookup;
mod primitives;
mod reconcile;
mod remove_on_ack;
mod replace;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream;
use sssn::store::{ChannelSpec, ChannelStorage, ClaimQueue, ClaimScope, Entry, Log};
use sssn::{ChannelMessage, Error, ErrorKind, Result};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use self::claims::{CLAIMS_CONSUMER, ClaimSide};
use self::cursors::Reader;
use crate::names::ChannelNames;
use crate::store::StoreInner;

/// Largest batch asked of the server in one pull request.
const MAX_BATCH: usize = 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One channel's storage in a [`JetStreamStore`](crate::JetStreamStore).
pub(crate) struct JetStreamChannel {
    id: String,
    store: Arc<StoreInner>,
    names: ChannelNames,
    timeout: Duration,
    /// The message stream.
    stream: stream::Stream,
    /// Whether the stream expires messages by their `Nats-TTL` (see [`replace`]).
    server_ttl: bool,
    /// The store's state stream (cursors, counters).
    state: stream::Stream,
    /// The claim surface: `Some` exactly for channels opened with a claim policy.
    claims: Option<ClaimSide>,
    readers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Reader>>>>,
    /// Newest sequence seen by this handle (open, own appends, the feed, stream info).
    head: Arc<AtomicU64>,
    feed: broadcast::Sender<Entry>,
    /// The feed task, started by the first `feed()`.
    feed_task: Mutex<Option<JoinHandle<()>>>,
    /// One reconciliation at a time (see [`reconcile`]).
    reconciling: tokio::sync::Mutex<()>,
    /// The task that reconciles after every reconnect (channels with claims).
    reconcile_task: Mutex<Option<JoinHandle<()>>>,
    /// The stream has `allow_atomic` (set on open on 2.12.1+): batches are all or nothing
    /// (see [`atomic_batch`]).
    atomic_publish: bool,
    /// Most messages the server takes in one atomic batch (learnt from its refusals).
    atomic_batch_max: AtomicUsize,
    /// Removals (`evict`, `remove`, `clear`, `remove_seqs`) begun or ended by this handle:
    /// acks of claims made before one delete, to tell whether there was anything to
    /// consume (see [`remove_on_ack`]).
    removals: AtomicU64,
}

impl Drop for JetStreamChannel {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.feed_task).take() {
            task.abort();
        }
        if let Some(task) = lock(&self.reconcile_task).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few map operations; a panic inside one cannot leave
    // the maps inconsistent in a way that is worse than stopping, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decodes a stored message.
pub(crate) fn decode(payload: &[u8]) -> Result<ChannelMessage> {
    serde_json::from_slice(payload).map_err(|e| {
        Error::new(
            ErrorKind::InvalidMessage,
            format!("a stored message is not a valid sssn message: {e}"),
        )
    })
}

impl JetStreamChannel {
    /// Opens (creating what is missing) the channel's streams, and its claim surface when
    /// `spec` has claims.
    ///
    /// Capabilities are checked where that is cheap: opening without claims a channel
    /// whose stream has a `claims` consumer (it was created with claims) fails with
    /// [`ErrorKind::InvalidArgument`]. The other way round is not detected: a stream
    /// without a claims consumer is also what a first open that stopped half-way leaves,
    /// so opening it with claims creates the consumer (from the first stored message).
    pub(crate) async fn open(store: Arc<StoreInner>, spec: &ChannelSpec) -> Result<Self> {
        let names = ChannelNames::new(&store.options.prefix, &spec.id);
        let (stream, server_ttl) = replace::open_stream(
            &store,
            stream::Config {
                name: names.stream.clone(),
                subjects: vec![names.stream_subjects()],
                retention: remove_on_ack::retention_for_new(&store, spec),
                discard: stream::DiscardPolicy::Old,
                allow_direct: true,
                storage: store.storage(),
                num_replicas: store.options.replicas,
                description: Some(format!("sssn channel '{}'", spec.id)),
                ..Default::default()
            },
            spec.expiring,
        )
        .await?;
        let atomic_publish = match store.server_version() {
            Some(v) if v.supports_atomic_batch_appends() && store.options.atomic_batches => {
                atomic_batch::enable_atomic_publish(&store.client, &names.stream).await?
            }
            _ => false,
        };
        let state = store.state_stream().await?;
        // What the stream was created with, by this version or an earlier one.
        let retention = stream.cached_info().config.retention;
        let claims = match &spec.claims {
            Some(policy) if spec.claim_scope == ClaimScope::Shared => {
                let removes_on_ack = retention == stream::RetentionPolicy::Interest;
                Some(
                    ClaimSide::open(
                        &store,
                        &names,
                        &stream,
                        &state,
                        spec,
                        *policy,
                        removes_on_ack,
                    )
                    .await?,
                )
            }
            // Claims per recipient have no server side yet (`inboxes`): a log.
            _ => {
                remove_on_ack::refuse_without_claims(retention, &spec.id)?;
                refuse_claims_consumer(&stream, &spec.id).await?;
                None
            }
        };
        let info = stream.get_info().await.map_err(|e| {
            Error::store(format!("JetStream stream info of '{}' failed", spec.id), e)
        })?;
        let (feed, _) = broadcast::channel(spec.feed_capacity.max(1));
        let ch = Self {
            id: spec.id.clone(),
            timeout: store.options.request_timeout,
            store,
            names,
            stream,
            server_ttl,
            state,
            claims,
            readers: Mutex::new(HashMap::new()),
            head: Arc::new(AtomicU64::new(info.state.last_sequence)),
            feed,
            feed_task: Mutex::new(None),
            reconciling: tokio::sync::Mutex::new(()),
            reconcile_task: Mutex::new(None),
            atomic_publish,
            atomic_batch_max: AtomicUsize::new(atomic_batch::DEFAULT_MAX_MESSAGES),
            removals: AtomicU64::new(0),
        };
        if ch.claims.is_some() {
            // Whatever an earlier crash of the server left (see `reconcile`), before the
            // first claim.
            ch.reconcile().await?;
        }
        Ok(ch)
    }

    /// Starts the task that reconciles the claims after every reconnect (see
    /// [`reconcile`]); nothing for a channel without claims.
    pub(crate) fn watch_reconnects(self: &Arc<Self>) {
        if self.claims.is_none() {
            return;
        }
        let task = tokio::spawn(Self::reconcile_after_reconnects(
            Arc::downgrade(self),
            self.store.connections(),
        ));
        *lock(&self.reconcile_task) = Some(task);
    }

    /// The storage handed to a channel: the log, and the claim queue when the channel has
    /// claims. Fails when `spec` asks for other capabilities than this channel was opened
    /// with (the store keeps one handle per channel id).
    pub(crate) fn storage(self: &Arc<Self>, spec: &ChannelSpec) -> Result<ChannelStorage> {
        let has_claims = self.claims.is_some();
        let per_recipient = spec.claims.is_some() && spec.claim_scope == ClaimScope::PerRecipient;
        if per_recipient && !has_claims {
            return Ok(ChannelStorage {
                log: self.clone() as Arc<dyn Log>,
                claims: Some(Arc::new(inboxes::NoInboxes {
                    channel: self.id.clone(),
                })),
            });
        }
        if has_claims != spec.claims.is_some() || per_recipient {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "channel '{}' is open in this JetStream store {} claims and cannot be opened {} claims",
                    self.id,
                    if has_claims { "with" } else { "without" },
                    if has_claims { "without" } else { "with" },
                ),
            ));
        }
        Ok(ChannelStorage {
            log: self.clone() as Arc<dyn Log>,
            claims: has_claims.then(|| self.clone() as Arc<dyn ClaimQueue>),
        })
    }

    /// Runs a removal, counted in [`Self::removals`] before and after it.
    async fn removing<T>(&self, removal: impl std::future::Future<Output = T>) -> T {
        self.removals.fetch_add(1, Ordering::AcqRel);
        let out = removal.await;
        self.removals.fetch_add(1, Ordering::AcqRel);
        out
    }

    fn err(&self, what: &str, e: impl Into<BoxError>) -> Error {
        Error::store(
            format!("JetStream {what} on channel '{}' failed", self.id),
            e,
        )
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Store,
            format!(
                "JetStream {what} on channel '{}' got no answer within {:?} (NATS unreachable?)",
                self.id, self.timeout
            ),
        )
    }
}

/// Fails when the channel's stream has a `claims` consumer: the channel was created with
/// claims, and a log-only open would leave its claims and dead letters unreachable.
async fn refuse_claims_consumer(stream: &stream::Stream, id: &str) -> Result<()> {
    match stream.consumer_info(CLAIMS_CONSUMER).await {
        Ok(_) => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "channel '{id}' was created with claims (its JetStream stream has a '{CLAIMS_CONSUMER}' consumer) and cannot be opened without claims"
            ),
        )),
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::store(
            format!("JetStream consumer lookup of channel '{id}' failed"),
            e,
        )),
    }
}
