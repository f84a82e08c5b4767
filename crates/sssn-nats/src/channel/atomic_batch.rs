//! Atomic batch appends (nats-server 2.12.1+, ADR-50): a batch of several messages is stored
//! whole or not at all, instead of message by message.
//!
//! Data flow: the channel's stream is given `allow_atomic` on open (a raw
//! `STREAM.UPDATE`, since async-nats 0.51 without its `server_2_12` feature does not know
//! the field; [`enable_atomic_publish`]). An append of several messages then publishes them
//! with `Nats-Batch-Id` / `Nats-Batch-Sequence` and, on the last, `Nats-Batch-Commit: 1`;
//! only that last one is a request, answered with one acknowledgement whose sequence is
//! the last message's (the others precede it without gaps). Each message still carries
//! `Nats-Expected-Last-Subject-Sequence: 0`, which the server checks for the whole batch
//! at commit: an id that is stored already fails the batch, the store then looks the ids
//! up, returns the stored entries and commits the rest again. Appends from callers also
//! carry the id as `Nats-Msg-Id` ([`Dedupe::Window`]): a batch naming an id the server
//! stored within its duplicate window, though removed since, is refused whole, and the
//! store then writes that chunk message by message, each publish answered on its own
//! (duplicates with the sequence of their first copy).
//!
//! Limits of the server: at most [`DEFAULT_MAX_MESSAGES`] messages per batch (the server
//! names its own limit in the refusal, which is used from then on), so a larger append is
//! written as consecutive atomic chunks; at most 50 batches in flight per stream (a
//! refusal with 429 is retried after a pause).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::future::join_all;
use serde::Deserialize;
use sssn::store::Entry;
use sssn::{ChannelMessage, Error, ErrorKind, Result};

use super::JetStreamChannel;
use super::log::Dedupe;

/// The server's default limit of messages in one atomic batch (2.12-2.15).
pub(super) const DEFAULT_MAX_MESSAGES: usize = 1000;

/// Commits of one chunk: the first, and retries after finding some ids stored already or
/// the server busy with other batches.
const COMMIT_ATTEMPTS: usize = 8;

/// "wrong last sequence": an id of the batch is stored already.
const WRONG_LAST_SEQUENCE: u64 = 10071;
/// "wrong last sequence" without a sequence: an id of the batch is being written by
/// another publish right now (or twice in the batch).
const WRONG_LAST_SEQUENCE_IN_PROCESS: u64 = 10164;
/// "atomic publish batch is too large: N".
const BATCH_TOO_LARGE: u64 = 10199;
/// "atomic publish too many inflight" (429).
const TOO_MANY_INFLIGHT: u64 = 10210;
/// "duplicate message id is in process": another publish of an id is being stored.
const DUPLICATE_IN_PROCESS: u64 = 10158;
/// "atomic publish batch contains duplicate message id": an id the server stored within
/// its duplicate window.
const SEEN_IN_WINDOW: u64 = 10201;

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// The commit's acknowledgement (a `PubAck` with the batch fields), or its error.
#[derive(Deserialize)]
struct CommitAck {
    error: Option<ApiError>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: usize,
}

/// How a commit of one chunk ended.
enum Commit {
    /// Stored: the sequence of the chunk's last message.
    Stored(u64),
    /// Nothing stored: some id is stored (or being stored) already.
    Duplicate,
    /// Nothing stored: some id was stored within the duplicate window.
    SeenInWindow,
    /// Nothing stored: the server takes at most this many messages per batch.
    TooLarge(usize),
    /// Nothing stored: the stream has too many batches in flight.
    Busy,
}

/// One message of the append, encoded once.
struct Outgoing {
    message: ChannelMessage,
    subject: String,
    payload: Bytes,
}

impl JetStreamChannel {
    /// Whether an append of several messages goes through an atomic batch now: the stream
    /// allows it and every server this connection has been on supports it.
    pub(super) fn appends_atomically(&self) -> bool {
        self.atomic_publish
            && self
                .store
                .server_version()
                .is_some_and(|v| v.supports_atomic_batch_appends())
    }

    /// Appends `messages` as atomic batches (see the module docs). The entries come back
    /// in input order; an id that is stored already (or repeated in `messages`) gets the
    /// stored entry, as on the message-by-message path.
    pub(super) async fn append_atomic(
        &self,
        messages: Vec<ChannelMessage>,
        dedupe: Dedupe,
    ) -> Result<Vec<Entry>> {
        // One publish per distinct id: the server would refuse a batch naming an id twice.
        let mut first_of: HashMap<String, usize> = HashMap::new();
        let mut slot_of = Vec::with_capacity(messages.len());
        let mut unique: Vec<Outgoing> = Vec::new();
        for message in messages {
            let next = unique.len();
            let slot = *first_of.entry(message.id.clone()).or_insert(next);
            slot_of.push(slot);
            if slot == next {
                let payload = Bytes::from(serde_json::to_vec(&message).map_err(|e| {
                    Error::new(ErrorKind::InvalidMessage, format!("message encoding: {e}"))
                })?);
                unique.push(Outgoing {
                    subject: self.names.message(&message.id),
                    message,
                    payload,
                });
            }
        }
        let mut stored: Vec<Option<Entry>> = vec![None; unique.len()];
        let mut max = self.atomic_batch_max.load(Ordering::Relaxed).max(1);
        let mut chunks: VecDeque<Vec<usize>> = (0..unique.len())
            .collect::<Vec<_>>()
            .chunks(max)
            .map(<[usize]>::to_vec)
            .collect();
        while let Some(chunk) = chunks.pop_front() {
            if chunk.len() > max {
                // The server named a smaller limit: split what is left accordingly.
                for piece in chunk.chunks(max).rev() {
                    chunks.push_front(piece.to_vec());
                }
                continue;
            }
            if let Some(limit) = self
                .store_chunk(&unique, chunk.clone(), &mut stored, dedupe)
                .await?
            {
                max = limit;
                self.atomic_batch_max.store(limit, Ordering::Relaxed);
                chunks.push_front(chunk);
            }
        }
        slot_of
            .into_iter()
            .map(|slot| {
                stored[slot].clone().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Store,
                        format!(
                            "append of '{}' on channel '{}' kept racing with other writes of it",
                            unique[slot].message.id, self.id
                        ),
                    )
                })
            })
            .collect()
    }

    /// Stores the messages `chunk` (indices into `unique`) as one atomic batch, filling
    /// `stored`. `Ok(Some(limit))`: nothing was stored, the server takes at most `limit`
    /// messages per batch.
    async fn store_chunk(
        &self,
        unique: &[Outgoing],
        mut chunk: Vec<usize>,
        stored: &mut [Option<Entry>],
        dedupe: Dedupe,
    ) -> Result<Option<usize>> {
        let mut pause = Duration::from_millis(20);
        for _ in 0..COMMIT_ATTEMPTS {
            if chunk.is_empty() {
                return Ok(None);
            }
            match self.commit(unique, &chunk, dedupe).await? {
                Commit::Stored(last) => {
                    self.head.fetch_max(last, Ordering::AcqRel);
                    let first = last + 1 - chunk.len() as u64;
                    for (offset, &i) in chunk.iter().enumerate() {
                        stored[i] = Some(Entry {
                            seq: first + offset as u64,
                            message: Arc::new(unique[i].message.clone()),
                        });
                    }
                    return Ok(None);
                }
                Commit::Duplicate => {
                    // Return what is stored; commit the rest again.
                    let found =
                        join_all(chunk.iter().map(|&i| self.by_id(&unique[i].message.id))).await;
                    let mut rest = Vec::with_capacity(chunk.len());
                    for (&i, entry) in chunk.iter().zip(found) {
                        match entry? {
                            Some(entry) => stored[i] = Some(entry),
                            None => rest.push(i),
                        }
                    }
                    if rest.len() == chunk.len() {
                        // Another publish of one of these ids is under way: let it land.
                        tokio::time::sleep(pause).await;
                        pause = pause.saturating_mul(2);
                    }
                    chunk = rest;
                }
                Commit::SeenInWindow => {
                    // Which ids the server remembers only it knows: ask it one by one.
                    let messages = chunk.iter().map(|&i| unique[i].message.clone()).collect();
                    let entries = self.append_each(messages, dedupe).await?;
                    for (&i, entry) in chunk.iter().zip(entries) {
                        stored[i] = Some(entry);
                    }
                    return Ok(None);
                }
                Commit::TooLarge(limit) if limit > 0 && limit < chunk.len() => {
                    return Ok(Some(limit));
                }
                Commit::TooLarge(limit) => {
                    return Err(Error::new(
                        ErrorKind::Store,
                        format!(
                            "JetStream refused an atomic batch of {} messages on channel '{}' as too large (server limit {limit})",
                            chunk.len(),
                            self.id
                        ),
                    ));
                }
                Commit::Busy => {
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
            }
        }
        if chunk.is_empty() {
            return Ok(None);
        }
        Err(Error::new(
            ErrorKind::Store,
            format!(
                "atomic append of {} messages on channel '{}' gave up after {COMMIT_ATTEMPTS} attempts (ids being written concurrently, or the stream kept too many batches in flight)",
                chunk.len(),
                self.id
            ),
        ))
    }

    /// Publishes `chunk` as one batch and reads the commit's acknowledgement.
    async fn commit(&self, unique: &[Outgoing], chunk: &[usize], dedupe: Dedupe) -> Result<Commit> {
        let batch_id = uuid::Uuid::new_v4().simple().to_string();
        let last = chunk.len();
        for (n, &i) in chunk.iter().enumerate() {
            let out = &unique[i];
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
            headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
            if let Some(id) = dedupe.msg_id(&out.message.id) {
                headers.insert("Nats-Msg-Id", id);
            }
            if n + 1 < last {
                // No reply subject: the server answers only the commit.
                self.store
                    .client
                    .publish_with_headers(out.subject.clone(), headers, out.payload.clone())
                    .await
                    .map_err(|e| self.err("batch publish", e))?;
                continue;
            }
            headers.insert("Nats-Batch-Commit", "1");
            let reply = tokio::time::timeout(
                self.timeout,
                self.store.client.request_with_headers(
                    out.subject.clone(),
                    headers,
                    out.payload.clone(),
                ),
            )
            .await
            .map_err(|_| self.timed_out("batch commit"))?
            .map_err(|e| self.err("batch commit", e))?;
            let ack: CommitAck = serde_json::from_slice(&reply.payload)
                .map_err(|e| self.err("batch commit acknowledgement", e))?;
            return Ok(match ack.error {
                None if ack.count == last && ack.seq >= last as u64 => Commit::Stored(ack.seq),
                None => {
                    return Err(Error::new(
                        ErrorKind::Store,
                        format!(
                            "JetStream acknowledged {} messages at sequence {} for an atomic batch of {last} on channel '{}'",
                            ack.count, ack.seq, self.id
                        ),
                    ));
                }
                Some(e) => match e.err_code {
                    WRONG_LAST_SEQUENCE | WRONG_LAST_SEQUENCE_IN_PROCESS | DUPLICATE_IN_PROCESS => {
                        Commit::Duplicate
                    }
                    SEEN_IN_WINDOW => Commit::SeenInWindow,
                    BATCH_TOO_LARGE => Commit::TooLarge(limit_in(&e.description)),
                    TOO_MANY_INFLIGHT => Commit::Busy,
                    code => {
                        return Err(Error::new(
                            ErrorKind::Store,
                            format!(
                                "JetStream refused an atomic batch of {last} messages on channel '{}' (nothing stored): {} (error code {code})",
                                self.id, e.description
                            ),
                        ));
                    }
                },
            });
        }
        unreachable!("commit of an empty chunk")
    }
}

/// The limit in "atomic publish batch is too large: 1000" (0 when it names none).
fn limit_in(description: &str) -> usize {
    description
        .rsplit(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Gives the stream `name` the `allow_atomic` option if it lacks it (streams created
/// before, or by a store on an older server, are updated on open). Works on the raw
/// configuration, so fields this client does not know survive the update. `Ok(false)`:
/// the server did not take it (the store then keeps publishing message by message).
pub(crate) async fn enable_atomic_publish(client: &async_nats::Client, name: &str) -> Result<bool> {
    let request = |subject: String, body: Bytes| async move {
        let reply = client
            .request(subject, body)
            .await
            .map_err(|e| Error::store(format!("JetStream request on stream '{name}' failed"), e))?;
        serde_json::from_slice::<serde_json::Value>(&reply.payload)
            .map_err(|e| Error::store(format!("JetStream reply on stream '{name}' unreadable"), e))
    };
    let info = request(format!("$JS.API.STREAM.INFO.{name}"), Bytes::new()).await?;
    if let Some(e) = info.get("error") {
        return Err(Error::new(
            ErrorKind::Store,
            format!("JetStream stream info of '{name}' failed: {e}"),
        ));
    }
    let mut config = info["config"].clone();
    if config["allow_atomic"].as_bool() == Some(true) {
        return Ok(true);
    }
    config["allow_atomic"] = serde_json::Value::Bool(true);
    let body = Bytes::from(serde_json::to_vec(&config).expect("a JSON value encodes"));
    let updated = request(format!("$JS.API.STREAM.UPDATE.{name}"), body).await?;
    match updated.get("error") {
        None => Ok(updated["config"]["allow_atomic"].as_bool() == Some(true)),
        Some(e) => {
            tracing::warn!(stream = name, error = %e, "allow_atomic refused: batches are written message by message");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::limit_in;

    #[test]
    fn reads_the_limit_of_a_too_large_refusal() {
        assert_eq!(limit_in("atomic publish batch is too large: 1000"), 1000);
        assert_eq!(limit_in("atomic publish batch is too large: 50 "), 50);
        assert_eq!(limit_in("atomic publish batch is too large"), 0);
    }
}
