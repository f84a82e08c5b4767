//! [`JetStreamChannel`]: one channel's storage on JetStream (the `ChannelStore` mapping).
//!
//! Data flow: appends publish to the channel's stream on a subject per message id; shared
//! reads fetch from a per-reader ephemeral consumer and store the cursor in the state
//! stream; claims fetch from the channel's durable `claims` consumer and are remembered
//! locally (holder, lease deadline, ack subject) so that settling is fenced; the feed is an
//! ordered consumer that forwards every committed append to a tokio broadcast.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::{self, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use async_nats::jetstream::{self, AckKind, ErrorCode};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use sssn::clock::now_millis;
use sssn::store::{
    ChannelSpec, ChannelStore, Claimed, DeadLetter, Entry, ReadFilter, ReadFrom, Seq, Settled,
    StoreStats,
};
use sssn::{ChannelMessage, Error, ErrorKind, Result};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::feed;
use crate::names::ChannelNames;
use crate::store::{StoreInner, get_or_create_stream, invalid};

/// Name of the durable consumer every claimer of a channel shares.
const CLAIMS_CONSUMER: &str = "claims";
/// Largest batch asked of the server in one pull request.
const MAX_BATCH: usize = 1024;
/// How long an idle per-reader consumer lives on the server.
const READER_IDLE: Duration = Duration::from_secs(300);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A claim this process holds: what fencing needs to decide whether a settle is valid.
#[derive(Clone)]
struct Claim {
    seq: Seq,
    claimer: Arc<str>,
    deadline_ms: u64,
    attempt: u32,
    reply: Subject,
    message: Arc<ChannelMessage>,
}

/// Claims known to this process.
#[derive(Default)]
struct Claims {
    by_id: HashMap<String, Claim>,
    /// Deliveries this process released (nack, expired lease) that the server still
    /// counts as ack-pending until it redelivers them; value: when to stop counting them.
    released: HashMap<Seq, u64>,
    /// Nacks with a delay made here; value: when the delay is over.
    delayed: HashMap<Seq, u64>,
}

/// A reader's position, cached between reads.
#[derive(Default)]
struct Reader {
    loaded: bool,
    /// The stored cursor and the state-stream sequence of its record (0: none yet).
    cursor: Seq,
    rev: u64,
    /// An ephemeral consumer whose next message is the one after `position`.
    consumer: Option<PullConsumer>,
    position: Seq,
    /// Set when storing the cursor failed on the way: the server may or may not hold the
    /// new cursor, so the next read from the cursor starts here again (at least once).
    rewind: Option<Seq>,
}

#[derive(Serialize, Deserialize)]
struct CursorRecord {
    reader: String,
    seq: Seq,
}

#[derive(Deserialize)]
struct DeleteReply {
    #[serde(default)]
    success: bool,
}

/// How long acks are gathered before their count is stored: one write for a burst of
/// acks instead of a read and a write after every ack call.
const ACK_COUNT_DELAY: Duration = Duration::from_millis(20);

/// The count of acknowledged messages, kept in the state stream. Acks add to a local
/// tally that is folded into the stored count in the background (compare-and-set on the
/// subject's last sequence) at most every [`ACK_COUNT_DELAY`], so acks do not wait for
/// it; `stats` flushes first.
struct AckCounter {
    js: jetstream::Context,
    state: stream::Stream,
    subject: String,
    pending: Mutex<u64>,
    /// The stored count as of this process's last write or read: (subject sequence,
    /// count). The next write tries it first and reads the stored count only when another
    /// process wrote in between (the compare-and-set fails).
    last: Mutex<Option<(u64, u64)>>,
    /// A batch whose publish failed: retried first, with the same id.
    retry: Mutex<Option<(String, u64)>>,
    lock: tokio::sync::Mutex<()>,
    flushing: AtomicBool,
}

/// An id unique to this process run (for `Nats-Msg-Id` deduplication of retries).
fn unique_id(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{what}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl AckCounter {
    fn add(self: &Arc<Self>, n: u64) {
        if n == 0 {
            return;
        }
        *lock(&self.pending) += n;
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ACK_COUNT_DELAY).await;
                if let Err(e) = me.flush().await {
                    tracing::warn!(error = %e, "storing the acknowledged count failed; retried on the next ack or stats");
                }
                me.flushing.store(false, Ordering::Release);
                let left = *lock(&me.pending) + lock(&me.retry).as_ref().map_or(0, |r| r.1);
                if left == 0 || me.flushing.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        });
    }

    async fn stored(&self) -> Result<(u64, u64)> {
        match self.state.direct_get_last_for_subject(&self.subject).await {
            Ok(m) => {
                let n = std::str::from_utf8(&m.payload)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                *lock(&self.last) = Some((m.sequence, n));
                Ok((m.sequence, n))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                *lock(&self.last) = Some((0, 0));
                Ok((0, 0))
            }
            Err(e) => Err(Error::store("reading the acknowledged count failed", e)),
        }
    }

    /// Folds the local tally into the stored count. Each batch carries its own
    /// `Nats-Msg-Id`, reused when the batch is retried, so a batch whose publish reached
    /// the server but whose acknowledgement was lost is not counted twice.
    async fn flush(&self) -> Result<()> {
        let _guard = self.lock.lock().await;
        loop {
            let batch = lock(&self.retry).take().or_else(|| {
                let n = std::mem::take(&mut *lock(&self.pending));
                (n > 0).then(|| (unique_id("acked"), n))
            });
            let Some((id, n)) = batch else {
                return Ok(());
            };
            if let Err(e) = self.apply(&id, n).await {
                *lock(&self.retry) = Some((id, n));
                return Err(e);
            }
        }
    }

    async fn apply(&self, id: &str, n: u64) -> Result<()> {
        let mut known = lock(&self.last).take();
        for _ in 0..50 {
            let (rev, total) = match known.take() {
                Some(known) => known,
                None => self.stored().await?,
            };
            let publish = PublishMessage::build()
                .payload(Bytes::from((total + n).to_string()))
                .message_id(id)
                .expected_last_subject_sequence(rev);
            let ack = self
                .js
                .send_publish(self.subject.clone(), publish)
                .await
                .map_err(|e| Error::store("storing the acknowledged count failed", e))?;
            match ack.await {
                Ok(a) => {
                    // A duplicate (retried batch already stored) does not say what the
                    // count is now: read it next time.
                    if !a.duplicate {
                        *lock(&self.last) = Some((a.sequence, total + n));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(Error::store("storing the acknowledged count failed", e)),
            }
        }
        Err(Error::new(
            ErrorKind::Store,
            "storing the acknowledged count kept conflicting with other processes",
        ))
    }

    async fn total(&self) -> Result<u64> {
        self.flush().await?;
        Ok(self.stored().await?.1)
    }
}

/// One channel's storage in a [`JetStreamStore`](crate::JetStreamStore).
pub(crate) struct JetStreamChannel {
    id: String,
    store: Arc<StoreInner>,
    names: ChannelNames,
    lease_ms: u64,
    max_deliveries: Option<u32>,
    timeout: Duration,
    stream: stream::Stream,
    state: stream::Stream,
    dlq: Option<stream::Stream>,
    claims_consumer: Option<PullConsumer>,
    claims: Mutex<Claims>,
    readers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Reader>>>>,
    head: Arc<AtomicU64>,
    feed: broadcast::Sender<Entry>,
    feed_task: Mutex<Option<JoinHandle<()>>>,
    acked: Arc<AckCounter>,
}

impl Drop for JetStreamChannel {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.feed_task).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few map operations; a panic inside one cannot leave
    // the maps inconsistent in a way that is worse than stopping, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn decode(payload: &[u8]) -> Result<ChannelMessage> {
    serde_json::from_slice(payload).map_err(|e| {
        Error::new(
            ErrorKind::InvalidMessage,
            format!("a stored message is not a valid sssn message: {e}"),
        )
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl JetStreamChannel {
    pub(crate) async fn open(store: Arc<StoreInner>, spec: &ChannelSpec) -> Result<Self> {
        let names = ChannelNames::new(&store.options.prefix, &spec.id);
        let stream = get_or_create_stream(
            &store.js,
            stream::Config {
                name: names.stream.clone(),
                subjects: vec![names.stream_subjects()],
                retention: stream::RetentionPolicy::Limits,
                discard: stream::DiscardPolicy::Old,
                allow_direct: true,
                storage: store.storage(),
                num_replicas: store.options.replicas,
                description: Some(format!("sssn channel '{}'", spec.id)),
                ..Default::default()
            },
        )
        .await?;
        let state = store.state_stream().await?;
        let (dlq, claims_consumer) = if spec.kind.claims() {
            let dlq = get_or_create_stream(
                &store.js,
                stream::Config {
                    name: names.dlq.clone(),
                    subjects: vec![names.dlq_subjects()],
                    allow_direct: true,
                    storage: store.storage(),
                    num_replicas: store.options.replicas,
                    description: Some(format!("sssn dead letters of channel '{}'", spec.id)),
                    ..Default::default()
                },
            )
            .await?;
            let consumer = claims_consumer(&stream, spec).await?;
            (Some(dlq), Some(consumer))
        } else {
            (None, None)
        };
        let info = stream.get_info().await.map_err(|e| {
            Error::store(format!("JetStream stream info of '{}' failed", spec.id), e)
        })?;
        let (feed, _) = broadcast::channel(spec.feed_capacity.max(1));
        let acked = Arc::new(AckCounter {
            js: store.js.clone(),
            state: state.clone(),
            subject: names.acked(),
            pending: Mutex::new(0),
            last: Mutex::new(None),
            retry: Mutex::new(None),
            lock: tokio::sync::Mutex::new(()),
            flushing: AtomicBool::new(false),
        });
        Ok(Self {
            id: spec.id.clone(),
            timeout: store.options.request_timeout,
            store,
            names,
            lease_ms: millis(spec.claim_timeout),
            max_deliveries: spec.max_deliveries,
            stream,
            state,
            dlq,
            claims_consumer,
            claims: Mutex::new(Claims::default()),
            readers: Mutex::new(HashMap::new()),
            head: Arc::new(AtomicU64::new(info.state.last_sequence)),
            feed,
            feed_task: Mutex::new(None),
            acked,
        })
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

    fn require_claims(&self) -> Result<&PullConsumer> {
        self.claims_consumer.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::UnsupportedOperation,
                "this channel kind has no claims",
            )
        })
    }

    // ----- server primitives --------------------------------------------------------------

    /// Pulls up to `n` messages that are available now (no waiting for new ones). Bounded
    /// by the request timeout.
    async fn fetch(&self, consumer: &PullConsumer, n: usize) -> Result<Vec<jetstream::Message>> {
        let work = async {
            let mut batch = consumer
                .fetch()
                .max_messages(n)
                .messages()
                .await
                .map_err(|e| self.err("fetch", e))?;
            let mut out = Vec::with_capacity(n.min(MAX_BATCH));
            // Read until the server ends the request, so no message it sends is dropped.
            while let Some(m) = batch.next().await {
                out.push(m.map_err(|e| self.err("fetch", e))?);
            }
            Ok(out)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| self.timed_out("fetch"))?
    }

    /// A short-lived consumer that reads `stream` without acknowledgements.
    async fn ephemeral(
        &self,
        stream: &stream::Stream,
        deliver_policy: DeliverPolicy,
        filter_subject: String,
        headers_only: bool,
        inactive: Duration,
    ) -> Result<PullConsumer> {
        stream
            .create_consumer(pull::Config {
                deliver_policy,
                ack_policy: consumer::AckPolicy::None,
                filter_subject,
                headers_only,
                inactive_threshold: inactive,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| self.err("consumer creation", e))
    }

    /// Deletes a consumer in the background (the server would also drop it when idle).
    fn discard(stream: &stream::Stream, consumer: PullConsumer) {
        let stream = stream.clone();
        let name = consumer.cached_info().name.clone();
        tokio::spawn(async move {
            let _ = stream.delete_consumer(&name).await;
        });
    }

    /// Reads `stream` from `policy` on: up to `limit` messages.
    async fn scan(
        &self,
        stream: &stream::Stream,
        policy: DeliverPolicy,
        filter_subject: String,
        headers_only: bool,
        limit: usize,
    ) -> Result<Vec<jetstream::Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let consumer = self
            .ephemeral(
                stream,
                policy,
                filter_subject,
                headers_only,
                Duration::from_secs(30),
            )
            .await?;
        let mut out = Vec::new();
        let outcome = async {
            while out.len() < limit {
                let want = (limit - out.len()).min(MAX_BATCH);
                let got = self.fetch(&consumer, want).await?;
                let n = got.len();
                out.extend(got);
                if n < want {
                    break;
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        Self::discard(stream, consumer);
        outcome.map(|()| out)
    }

    /// Deletes message `seq`; `Ok(false)` when it was already gone. With `durable_acks`, a
    /// secure erase (the server's default): it overwrites the record in the block file at
    /// once, so the delete survives a server crash, at ~10x the cost. Otherwise
    /// `no_erase`: the delete lives in the server's memory until its index is written, and
    /// on 2.9.10 messages deleted in the last seconds before a SIGKILL came back.
    async fn delete_seq(&self, stream: &stream::Stream, seq: Seq) -> Result<bool> {
        let subject = format!("STREAM.MSG.DELETE.{}", stream.cached_info().config.name);
        let payload = if self.store.options.durable_acks {
            serde_json::json!({ "seq": seq })
        } else {
            serde_json::json!({ "seq": seq, "no_erase": true })
        };
        let reply: Response<DeleteReply> = self
            .store
            .js
            .request(subject, &payload)
            .await
            .map_err(|e| self.err("message delete", e))?;
        match reply {
            Response::Ok(r) => Ok(r.success),
            Response::Err { error }
                if error.error_code() == ErrorCode::NO_MESSAGE_FOUND
                    || error.error_code() == ErrorCode::SEQUENCE_NOT_FOUND =>
            {
                Ok(false)
            }
            Response::Err { error } => Err(self.err("message delete", error)),
        }
    }

    /// Sends an acknowledgement of `kind` for a delivery and waits for the server to
    /// confirm it processed it (so a following fetch sees its effect).
    async fn settle_delivery(&self, reply: &Subject, kind: AckKind) -> Result<()> {
        self.store
            .client
            .request(reply.clone(), kind.into())
            .await
            .map(|_| ())
            .map_err(|e| self.err("acknowledgement", e))
    }

    /// Sends an acknowledgement without waiting (used where the message is already deleted,
    /// so the acknowledgement only tidies the consumer's pending list).
    async fn settle_quietly(&self, reply: &Subject, kind: AckKind) {
        if let Err(e) = self.store.client.publish(reply.clone(), kind.into()).await {
            tracing::debug!(channel = %self.id, error = %e, "acknowledgement not sent");
        }
    }

    /// Looks up the stored message with id `id`.
    async fn by_id(&self, id: &str) -> Result<Option<Entry>> {
        match self
            .stream
            .direct_get_last_for_subject(self.names.message(id))
            .await
        {
            Ok(m) => Ok(Some(Entry {
                seq: m.sequence,
                message: Arc::new(decode(&m.payload)?),
            })),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("lookup by id", e)),
        }
    }

    async fn publish_new(
        &self,
        subject: String,
        payload: Bytes,
    ) -> Result<jetstream::context::PublishAckFuture> {
        // One subject per id and "no message on this subject yet": the server refuses a
        // second copy of a stored id, atomically, for as long as it is stored.
        let publish = PublishMessage::build()
            .payload(payload)
            .expected_last_subject_sequence(0);
        self.store
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|e| self.err("publish", e))
    }

    // ----- dead letters -------------------------------------------------------------------

    /// Moves a claimed message to the dead letters: stored in the dead-letter stream first,
    /// then deleted from the channel, then terminated on the consumer.
    async fn dead_letter(
        &self,
        seq: Seq,
        message: &ChannelMessage,
        attempts: u32,
        reason: String,
        reply: Option<&Subject>,
    ) -> Result<()> {
        if self.dlq.is_none() {
            return Err(Error::new(
                ErrorKind::Internal,
                "dead letter on a channel without a dead-letter stream",
            ));
        }
        let letter = DeadLetter {
            seq,
            message: message.clone(),
            attempts,
            reason,
            dead_at_ms: now_millis(),
        };
        let payload = serde_json::to_vec(&letter)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("dead letter encoding: {e}")))?;
        // The message id plus its sequence: two processes moving the same delivery (the
        // holder after its lease ran out, the next claimer) store it once.
        let publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}@{seq}", message.id));
        self.store
            .js
            .send_publish(self.names.dead_letter(&message.id), publish)
            .await
            .map_err(|e| self.err("dead-letter publish", e))?
            .await
            .map_err(|e| self.err("dead-letter publish", e))?;
        self.delete_seq(&self.stream, seq).await?;
        if let Some(reply) = reply {
            self.settle_quietly(reply, AckKind::Term).await;
        }
        Ok(())
    }

    /// Forgets claims whose lease ran out, dead-lettering those that used their last
    /// delivery. Returns how many there were.
    async fn reclaim_local(&self) -> Result<usize> {
        let now = now_millis();
        let expired: Vec<Claim> = {
            let mut c = lock(&self.claims);
            let ids: Vec<String> = c
                .by_id
                .iter()
                .filter(|(_, claim)| claim.deadline_ms <= now)
                .map(|(id, _)| id.clone())
                .collect();
            let expired: Vec<Claim> = ids.iter().filter_map(|id| c.by_id.remove(id)).collect();
            for claim in &expired {
                c.released
                    .insert(claim.seq, now.saturating_add(self.lease_ms));
            }
            c.released.retain(|_, until| *until > now);
            c.delayed.retain(|_, due| *due > now);
            expired
        };
        let n = expired.len();
        if let Some(max) = self.max_deliveries {
            let last: Vec<_> = expired.iter().filter(|c| c.attempt >= max).collect();
            let moved = join_all(last.iter().map(|c| {
                self.dead_letter(
                    c.seq,
                    &c.message,
                    c.attempt,
                    format!("max_deliveries ({max}) exceeded; last: lease expired"),
                    Some(&c.reply),
                )
            }))
            .await;
            for r in moved {
                r?;
            }
        }
        Ok(n)
    }

    /// Splits `ids` into the caller's live claims and the rest (stale). With `take`, live
    /// claims are removed from the table, so a concurrent settle of the same id is stale.
    fn live(
        &self,
        claimer: &str,
        ids: &[String],
        take: bool,
    ) -> (Vec<(String, Claim)>, Vec<String>) {
        let now = now_millis();
        let mut c = lock(&self.claims);
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for id in ids {
            let ok = c
                .by_id
                .get(id.as_str())
                .is_some_and(|claim| &*claim.claimer == claimer && claim.deadline_ms > now);
            if !ok {
                stale.push(id.clone());
            } else if take {
                if let Some(claim) = c.by_id.remove(id.as_str()) {
                    live.push((id.clone(), claim));
                }
            } else if let Some(claim) = c.by_id.get(id.as_str()) {
                live.push((id.clone(), claim.clone()));
            }
        }
        (live, stale)
    }

    /// Puts claims back after a settle failed on the way to the server.
    fn restore(&self, claims: Vec<(String, Claim)>) {
        let mut c = lock(&self.claims);
        for (id, claim) in claims {
            c.by_id.entry(id).or_insert(claim);
        }
    }

    fn ensure_feed(&self) {
        let mut task = lock(&self.feed_task);
        if task.is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(channel = %self.id, "feed() outside a tokio runtime: no push feed");
            return;
        };
        *task = Some(runtime.spawn(feed::run(
            self.stream.clone(),
            self.head.load(Ordering::Acquire) + 1,
            self.head.clone(),
            self.feed.clone(),
            self.id.clone(),
        )));
    }

    // ----- reader cursors -----------------------------------------------------------------

    fn reader(&self, reader: &str) -> Arc<tokio::sync::Mutex<Reader>> {
        lock(&self.readers)
            .entry(reader.to_owned())
            .or_default()
            .clone()
    }

    async fn load_cursor(&self, reader: &str) -> Result<(Seq, u64)> {
        match self
            .state
            .direct_get_last_for_subject(self.names.cursor(reader))
            .await
        {
            Ok(m) => {
                let record: CursorRecord = serde_json::from_slice(&m.payload).map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("stored cursor of '{reader}': {e}"),
                    )
                })?;
                Ok((record.seq, m.sequence))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok((0, 0)),
            Err(e) => Err(self.err("cursor lookup", e)),
        }
    }

    /// Stores `reader`'s cursor if nobody moved it since revision `rev`; `Ok(None)` when
    /// somebody did.
    async fn store_cursor(&self, reader: &str, seq: Seq, rev: u64) -> Result<Option<u64>> {
        let payload = serde_json::to_vec(&CursorRecord {
            reader: reader.to_owned(),
            seq,
        })
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cursor encoding: {e}")))?;
        let publish = PublishMessage::build()
            .payload(payload.into())
            .expected_last_subject_sequence(rev);
        let ack = self
            .store
            .js
            .send_publish(self.names.cursor(reader), publish)
            .await
            .map_err(|e| self.err("cursor store", e))?;
        match ack.await {
            Ok(a) => Ok(Some(a.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(self.err("cursor store", e)),
        }
    }

    async fn cursors(&self) -> Result<Vec<(String, Seq)>> {
        let msgs = self
            .scan(
                &self.state,
                DeliverPolicy::LastPerSubject,
                self.names.cursors(),
                false,
                usize::MAX,
            )
            .await?;
        let mut out: Vec<(String, Seq)> = msgs
            .iter()
            .filter_map(|m| serde_json::from_slice::<CursorRecord>(&m.payload).ok())
            .map(|r| (r.reader, r.seq))
            .collect();
        out.sort();
        Ok(out)
    }

    /// One attempt of a shared read; `Ok(None)` when another process moved the cursor
    /// concurrently (the caller retries from the new cursor).
    async fn read_once(
        &self,
        r: &mut Reader,
        reader: &str,
        from: &ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Option<Vec<Entry>>> {
        if !r.loaded {
            (r.cursor, r.rev) = self.load_cursor(reader).await?;
            r.loaded = true;
        }
        let start = match from {
            ReadFrom::Cursor => r.rewind.map_or(r.cursor, |at| at.min(r.cursor)),
            ReadFrom::AfterSeq(seq) => *seq,
            ReadFrom::AfterId(id) => {
                self.by_id(id)
                    .await?
                    .ok_or_else(|| {
                        invalid(format!(
                            "'after' names message '{id}', which is not in the channel"
                        ))
                    })?
                    .seq
            }
        };
        let mut out = Vec::new();
        let mut last = start;
        if limit > 0 {
            if r.consumer.is_none() || r.position != start {
                if let Some(old) = r.consumer.take() {
                    Self::discard(&self.stream, old);
                }
                let consumer = self
                    .ephemeral(
                        &self.stream,
                        DeliverPolicy::ByStartSequence {
                            start_sequence: start + 1,
                        },
                        String::new(),
                        false,
                        READER_IDLE,
                    )
                    .await?;
                r.consumer = Some(consumer);
                r.position = start;
            }
            let Some(consumer) = r.consumer.clone() else {
                return Err(Error::new(ErrorKind::Internal, "reader consumer vanished"));
            };
            while out.len() < limit {
                let want = (limit - out.len()).min(MAX_BATCH);
                let msgs = match self.fetch(&consumer, want).await {
                    Ok(m) => m,
                    Err(e) => {
                        // The consumer's position is unknown now: start over from the cursor.
                        r.consumer = None;
                        return Err(e);
                    }
                };
                let n = msgs.len();
                for m in msgs {
                    let Ok(info) = m.info() else { continue };
                    let seq = info.stream_sequence;
                    r.position = seq;
                    last = seq;
                    match decode(&m.payload) {
                        Ok(message) if filter.matches(&message) => out.push(Entry {
                            seq,
                            message: Arc::new(message),
                        }),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(channel = %self.id, seq, error = %e, "skipping an undecodable message");
                        }
                    }
                }
                if n < want {
                    break;
                }
            }
        }
        if r.rev != 0 && last == r.cursor && r.rewind.is_none() {
            return Ok(Some(out));
        }
        match self.store_cursor(reader, last, r.rev).await {
            Ok(Some(rev)) => {
                r.cursor = last;
                r.rev = rev;
                r.rewind = None;
                Ok(Some(out))
            }
            Ok(None) => {
                r.loaded = false;
                r.consumer = None;
                Ok(None)
            }
            Err(e) => {
                r.consumer = None;
                r.loaded = false;
                r.rewind = Some(r.rewind.map_or(r.cursor, |at| at.min(r.cursor)));
                Err(e)
            }
        }
    }

    async fn purge_with(
        &self,
        purge: impl std::future::IntoFuture<
            Output = std::result::Result<stream::PurgeResponse, stream::PurgeError>,
        >,
    ) -> Result<u64> {
        purge
            .await
            .map(|r| r.purged)
            .map_err(|e| self.err("purge", e))
    }

    /// Removes every message with a sequence below `seq`.
    async fn purge_below(&self, seq: Seq) -> Result<u64> {
        self.purge_with(self.stream.purge().sequence(seq)).await
    }

    async fn stream_info(&self) -> Result<stream::Info> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| self.err("stream info", e))?;
        self.head
            .fetch_max(info.state.last_sequence, Ordering::AcqRel);
        Ok(info)
    }
}

async fn claims_consumer(stream: &stream::Stream, spec: &ChannelSpec) -> Result<PullConsumer> {
    let config = pull::Config {
        durable_name: Some(CLAIMS_CONSUMER.to_owned()),
        description: Some("sssn claims: every claimer of the channel pulls from it".into()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: spec.claim_timeout,
        // Deliveries are limited by the store, not the server: the delivery that would
        // exceed `max_deliveries` must stay redeliverable until someone moved it to the
        // dead letters (a server-side limit would strand it if that process died).
        max_deliver: -1,
        max_ack_pending: -1,
        ..Default::default()
    };
    let fail = |e: BoxError| {
        Error::store(
            format!("JetStream claims consumer of channel '{}' failed", spec.id),
            e,
        )
    };
    let consumer: PullConsumer = stream
        .get_or_create_consumer(CLAIMS_CONSUMER, config.clone())
        .await
        .map_err(|e| fail(e.into()))?;
    if consumer.cached_info().config.ack_wait != spec.claim_timeout {
        // On 2.9 a create with the durable's name updates its editable fields.
        match stream.create_consumer(config).await {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(
                channel = %spec.id, error = %e,
                "the claims consumer has another ack_wait than this claim_timeout and could not be updated"
            ),
        }
    }
    Ok(consumer)
}

#[async_trait]
impl ChannelStore for JetStreamChannel {
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        // Publish everything first, then collect the acknowledgements: one round trip for
        // the batch. The server stores them in publish order.
        let mut sent = Vec::with_capacity(messages.len());
        for message in messages {
            let subject = self.names.message(&message.id);
            let payload = Bytes::from(serde_json::to_vec(&message).map_err(|e| {
                Error::new(ErrorKind::InvalidMessage, format!("message encoding: {e}"))
            })?);
            let ack = self.publish_new(subject.clone(), payload.clone()).await?;
            sent.push((message, subject, payload, ack));
        }
        let mut out = Vec::with_capacity(sent.len());
        for (message, subject, payload, ack) in sent {
            let mut ack = Some(ack);
            let mut entry = None;
            for _ in 0..5 {
                let Some(pending) = ack.take() else { break };
                match pending.await {
                    Ok(a) => {
                        self.head.fetch_max(a.sequence, Ordering::AcqRel);
                        entry = Some(Entry {
                            seq: a.sequence,
                            message: Arc::new(message.clone()),
                        });
                        break;
                    }
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                        // The id is stored already: return the stored entry.
                        match self.by_id(&message.id).await? {
                            Some(existing) => {
                                entry = Some(existing);
                                break;
                            }
                            // Removed in between: store it after all.
                            None => {
                                ack =
                                    Some(self.publish_new(subject.clone(), payload.clone()).await?)
                            }
                        }
                    }
                    Err(e) => return Err(self.err("publish acknowledgement", e)),
                }
            }
            out.push(entry.ok_or_else(|| {
                Error::new(
                    ErrorKind::Store,
                    format!(
                        "append of '{}' on channel '{}' kept racing with its removal",
                        message.id, self.id
                    ),
                )
            })?);
        }
        Ok(out)
    }

    async fn read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let slot = self.reader(reader);
        let mut r = slot.lock().await;
        for _ in 0..10 {
            if let Some(out) = self.read_once(&mut r, reader, &from, limit, filter).await? {
                return Ok(out);
            }
        }
        Err(Error::new(
            ErrorKind::Store,
            format!(
                "the cursor of '{reader}' on channel '{}' keeps being moved by another process",
                self.id
            ),
        ))
    }

    async fn range(&self, after: Seq, limit: usize) -> Result<Vec<Entry>> {
        let msgs = self
            .scan(
                &self.stream,
                DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                String::new(),
                false,
                limit,
            )
            .await?;
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let Ok(info) = m.info() else { continue };
            let seq = info.stream_sequence;
            match decode(&m.payload) {
                Ok(message) => out.push(Entry {
                    seq,
                    message: Arc::new(message),
                }),
                Err(e) => {
                    tracing::warn!(channel = %self.id, seq, error = %e, "skipping an undecodable message")
                }
            }
        }
        Ok(out)
    }

    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>> {
        let consumer = self.require_claims()?;
        self.reclaim_local().await?;
        let claimer: Arc<str> = Arc::from(claimer);
        let mut out = Vec::new();
        while out.len() < limit {
            let want = (limit - out.len()).min(MAX_BATCH);
            // The lease starts before the request leaves, so it never outlives the server's
            // ack_wait, which starts at delivery.
            let sent_at = now_millis();
            let msgs = self.fetch(consumer, want).await?;
            let n = msgs.len();
            for m in msgs {
                let Ok(info) = m.info() else { continue };
                let (seq, attempt) = (
                    info.stream_sequence,
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                );
                let Some(reply) = m.reply.clone() else {
                    continue;
                };
                let message = match decode(&m.payload) {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::warn!(channel = %self.id, seq, error = %e, "terminating an undecodable message");
                        self.settle_quietly(&reply, AckKind::Term).await;
                        continue;
                    }
                };
                if let Some(max) = self.max_deliveries
                    && attempt > max
                {
                    // This delivery would exceed the limit: dead-letter instead of claiming.
                    self.dead_letter(
                        seq,
                        &message,
                        attempt - 1,
                        format!("max_deliveries ({max}) exceeded; last: lease expired"),
                        Some(&reply),
                    )
                    .await?;
                    continue;
                }
                let message = Arc::new(message);
                let deadline_ms = sent_at.saturating_add(self.lease_ms);
                {
                    let mut c = lock(&self.claims);
                    c.released.remove(&seq);
                    c.delayed.remove(&seq);
                    c.by_id.insert(
                        message.id.clone(),
                        Claim {
                            seq,
                            claimer: claimer.clone(),
                            deadline_ms,
                            attempt,
                            reply,
                            message: message.clone(),
                        },
                    );
                }
                out.push(Claimed {
                    seq,
                    message,
                    attempt,
                    lease_until_ms: deadline_ms,
                });
            }
            if n < want {
                break;
            }
        }
        Ok(out)
    }

    async fn ack(&self, claimer: &str, ids: &[String]) -> Result<Settled> {
        self.require_claims()?;
        let (live, mut stale) = self.live(claimer, ids, true);
        // Delete first: once the delete is confirmed the work is consumed for every
        // process; the acknowledgement after it only tidies the consumer.
        let deleted = join_all(
            live.iter()
                .map(|(_, c)| self.delete_seq(&self.stream, c.seq)),
        )
        .await;
        let mut done = Vec::with_capacity(live.len());
        let mut failed = Vec::new();
        let mut error = None;
        for ((id, claim), outcome) in live.into_iter().zip(deleted) {
            match outcome {
                Ok(true) => {
                    self.settle_quietly(&claim.reply, AckKind::Ack).await;
                    done.push(id);
                }
                Ok(false) => {
                    // Removed meanwhile (evict, remove, clear): there is nothing to consume.
                    self.settle_quietly(&claim.reply, AckKind::Ack).await;
                    stale.push(id);
                }
                Err(e) => {
                    error.get_or_insert(e);
                    failed.push((id, claim));
                }
            }
        }
        self.acked.add(done.len() as u64);
        self.restore(failed);
        match error {
            Some(e) => Err(e),
            None => Ok(Settled { done, stale }),
        }
    }

    async fn nack(
        &self,
        claimer: &str,
        ids: &[String],
        delay: Option<Duration>,
    ) -> Result<Settled> {
        self.require_claims()?;
        let (live, stale) = self.live(claimer, ids, true);
        let max = self.max_deliveries;
        let outcomes = join_all(live.iter().map(|(_, c)| async move {
            match max {
                Some(max) if c.attempt >= max => {
                    self.dead_letter(
                        c.seq,
                        &c.message,
                        c.attempt,
                        format!("max_deliveries ({max}) exceeded; last: nack"),
                        Some(&c.reply),
                    )
                    .await
                }
                _ => {
                    let kind = AckKind::Nak(delay.filter(|d| !d.is_zero()));
                    self.settle_delivery(&c.reply, kind).await
                }
            }
        }))
        .await;
        let now = now_millis();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut error = None;
        {
            let mut c = lock(&self.claims);
            for ((id, claim), outcome) in live.into_iter().zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        let due = now.saturating_add(delay.map_or(0, millis));
                        c.released
                            .insert(claim.seq, due.saturating_add(self.lease_ms));
                        if delay.is_some_and(|d| !d.is_zero()) {
                            c.delayed.insert(claim.seq, due);
                        }
                        done.push(id);
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                        failed.push((id, claim));
                    }
                }
            }
        }
        self.restore(failed);
        match error {
            Some(e) => Err(e),
            None => Ok(Settled { done, stale }),
        }
    }

    async fn reject(&self, claimer: &str, ids: &[String], reason: &str) -> Result<Settled> {
        self.require_claims()?;
        let (live, stale) = self.live(claimer, ids, true);
        let outcomes = join_all(live.iter().map(|(_, c)| {
            self.dead_letter(
                c.seq,
                &c.message,
                c.attempt,
                reason.to_owned(),
                Some(&c.reply),
            )
        }))
        .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut error = None;
        for ((id, claim), outcome) in live.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => done.push(id),
                Err(e) => {
                    error.get_or_insert(e);
                    failed.push((id, claim));
                }
            }
        }
        self.restore(failed);
        match error {
            Some(e) => Err(e),
            None => Ok(Settled { done, stale }),
        }
    }

    async fn extend(&self, claimer: &str, ids: &[String]) -> Result<Settled> {
        self.require_claims()?;
        let (live, stale) = self.live(claimer, ids, false);
        let sent_at = now_millis();
        let outcomes = join_all(
            live.iter()
                .map(|(_, c)| self.settle_delivery(&c.reply, AckKind::Progress)),
        )
        .await;
        let mut done = Vec::new();
        let mut error = None;
        {
            let mut c = lock(&self.claims);
            for ((id, claim), outcome) in live.into_iter().zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        if let Some(held) = c.by_id.get_mut(&id)
                            && held.seq == claim.seq
                            && held.claimer == claim.claimer
                        {
                            held.deadline_ms = sent_at.saturating_add(self.lease_ms);
                        }
                        done.push(id);
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(Settled { done, stale }),
        }
    }

    async fn reclaim_expired(&self) -> Result<usize> {
        if self.claims_consumer.is_none() {
            return Ok(0);
        }
        self.reclaim_local().await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let Some(dlq) = &self.dlq else {
            return Ok(Vec::new());
        };
        let msgs = self
            .scan(dlq, DeliverPolicy::All, String::new(), false, limit)
            .await?;
        Ok(msgs
            .iter()
            .filter_map(|m| serde_json::from_slice::<DeadLetter>(&m.payload).ok())
            .collect())
    }

    async fn redrive(&self, ids: &[String]) -> Result<usize> {
        let Some(dlq) = &self.dlq else {
            return Ok(0);
        };
        let mut letters: Vec<(Seq, DeadLetter)> = Vec::new();
        for id in ids {
            let subject = self.names.dead_letter(id);
            let mut from = 1;
            loop {
                match dlq
                    .direct_get_next_for_subject(subject.clone(), Some(from))
                    .await
                {
                    Ok(m) => {
                        from = m.sequence + 1;
                        if let Ok(letter) = serde_json::from_slice::<DeadLetter>(&m.payload)
                            && letter.message.id == *id
                        {
                            letters.push((m.sequence, letter));
                        }
                    }
                    Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                    Err(e) => return Err(self.err("dead-letter lookup", e)),
                }
            }
        }
        letters.sort_by_key(|(seq, _)| *seq);
        let dlq_seqs: Vec<Seq> = letters.iter().map(|(seq, _)| *seq).collect();
        let moved = letters.len();
        // Back in the channel first, then out of the dead letters: a crash in between
        // leaves a copy in both, never in neither.
        self.append(letters.into_iter().map(|(_, l)| l.message).collect())
            .await?;
        for r in join_all(dlq_seqs.iter().map(|seq| self.delete_seq(dlq, *seq))).await {
            r?;
        }
        Ok(moved)
    }

    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        let mut removed = 0u64;
        if let Some(before) = before {
            let info = self.stream_info().await?;
            if info.state.messages > 0 {
                let nanos = (before * 1e9) as i128;
                let start_time = async_nats::datetime::from_nanos(nanos)
                    .map_err(|e| invalid(format!("evict: 'before' out of range: {e}")))?;
                // The first message that arrived at or after `before`; everything below it
                // goes. None: every message stored when `info` was taken is older.
                let first_kept = self
                    .scan(
                        &self.stream,
                        DeliverPolicy::ByStartTime { start_time },
                        String::new(),
                        true,
                        1,
                    )
                    .await?
                    .first()
                    .and_then(|m| m.info().ok().map(|i| i.stream_sequence))
                    .unwrap_or(info.state.last_sequence + 1);
                if first_kept > info.state.first_sequence {
                    removed += self.purge_below(first_kept).await?;
                }
            }
        }
        if let Some(max) = max_count {
            let info = self.stream_info().await?;
            let stored = info.state.messages;
            if stored > max as u64 {
                let excess = stored - max as u64;
                let (first, last) = (info.state.first_sequence, info.state.last_sequence);
                let first_kept = if last + 1 - first == stored {
                    // No holes: the boundary is plain arithmetic.
                    first + excess
                } else {
                    // Holes (acked or removed messages): walk the oldest `excess` sequences.
                    // (The server's purge-with-keep counts holes as messages on 2.9.)
                    let oldest = self
                        .scan(
                            &self.stream,
                            DeliverPolicy::ByStartSequence {
                                start_sequence: first,
                            },
                            String::new(),
                            true,
                            usize::try_from(excess).unwrap_or(usize::MAX),
                        )
                        .await?;
                    oldest
                        .last()
                        .and_then(|m| m.info().ok().map(|i| i.stream_sequence + 1))
                        .unwrap_or(first)
                };
                removed += self.purge_below(first_kept).await?;
            }
        }
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn remove(&self, ids: &[String]) -> Result<usize> {
        // Look up, then delete by sequence. Never a purge filtered by subject: on server
        // 2.9.10 such a purge makes every consumer of the stream skip to its end.
        let removed = join_all(ids.iter().map(|id| async move {
            match self.by_id(id).await? {
                Some(entry) => self.delete_seq(&self.stream, entry.seq).await,
                None => Ok(false),
            }
        }))
        .await;
        let mut n = 0;
        for r in removed {
            n += usize::from(r?);
        }
        Ok(n)
    }

    async fn clear(&self) -> Result<usize> {
        let purged = self.purge_with(self.stream.purge()).await?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    async fn stats(&self) -> Result<StoreStats> {
        if self.claims_consumer.is_some() {
            self.reclaim_local().await?;
        }
        let consumer_info = async {
            match &self.claims_consumer {
                Some(c) => c
                    .get_info()
                    .await
                    .map(Some)
                    .map_err(|e| self.err("consumer info", e)),
                None => Ok(None),
            }
        };
        let dlq_count = async {
            match &self.dlq {
                Some(d) => d
                    .get_info()
                    .await
                    .map(|i| i.state.messages)
                    .map_err(|e| self.err("dead-letter stream info", e)),
                None => Ok(0),
            }
        };
        let (info, consumer_info, dlq_count, acknowledged, cursors) = tokio::join!(
            self.stream_info(),
            consumer_info,
            dlq_count,
            self.acked.total(),
            self.cursors()
        );
        let (info, consumer_info) = (info?, consumer_info?);
        let stored = info.state.messages;
        let oldest_unacked = if stored > 0 {
            match self
                .stream
                .direct_get_next_for_subject(
                    self.names.stream_subjects(),
                    Some(info.state.first_sequence),
                )
                .await
            {
                Ok(m) => decode(&m.payload).ok().map(|m| m.timestamp),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => None,
                Err(e) => return Err(self.err("oldest message lookup", e)),
            }
        } else {
            None
        };
        let now = now_millis();
        let (released, delayed) = {
            let c = lock(&self.claims);
            (
                c.released.values().filter(|until| **until > now).count() as u64,
                c.delayed.values().filter(|due| **due > now).count() as u64,
            )
        };
        let (in_flight, backlog) = match consumer_info {
            Some(ci) => {
                // Ack-pending on the server = held + released-but-not-yet-redelivered.
                let in_flight = (ci.num_ack_pending as u64)
                    .saturating_sub(released)
                    .min(stored);
                (in_flight, stored - in_flight)
            }
            None => (0, 0),
        };
        Ok(StoreStats {
            stored,
            backlog,
            delayed: delayed.min(backlog),
            in_flight,
            acknowledged: acknowledged?,
            dead_lettered: dlq_count?,
            oldest_unacked,
            head_seq: info.state.last_sequence,
            cursors: cursors?,
        })
    }

    fn feed(&self) -> broadcast::Receiver<Entry> {
        let rx = self.feed.subscribe();
        self.ensure_feed();
        rx
    }

    fn head(&self) -> Seq {
        self.ensure_feed();
        self.head.load(Ordering::Acquire)
    }
}
