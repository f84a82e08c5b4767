//! The channel's [`Log`] on its message stream: append, shared reads (in
//! [`cursors`](super::cursors)), range, retention and removal, stats, feed and head.
//!
//! Data flow: an append publishes each message on the subject of its id with "nothing
//! stored on this subject yet", so the server refuses a second copy of a stored id and the
//! stored entry is returned instead; the sequence in the publish acknowledgement is the
//! entry's; on 2.12.1+ a batch of several is one atomic batch ([`atomic_batch`](super::atomic_batch)).
//! Removals: on servers with the 2.9 purge pitfalls (see the README), deletes by sequence
//! or purges below a sequence, never purges by subject or with `keep`; on servers past
//! them ([`ServerVersion::purges_without_2_9_pitfalls`](crate::ServerVersion)), a purge
//! of the id's subject and a purge keeping the newest. The feed task (`crate::feed`) is started by
//! the first [`Log::feed`] and forwards every committed append, from any process; `head`
//! only reads the newest sequence this handle has seen.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use sssn::store::{Entry, Log, LogStats, ReadFilter, ReadFrom, Seq};
use sssn::{ChannelMessage, Error, ErrorKind, Result};
use tokio::sync::broadcast;

use super::{JetStreamChannel, decode, lock, lookup};
use crate::feed;
use crate::store::invalid;

/// Publishes of one id retried while it is being removed concurrently.
const APPEND_ATTEMPTS: usize = 5;

/// Which earlier copies of an id keep an append of it from being stored again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dedupe {
    /// A copy stored now, or one the server stored within its duplicate window and
    /// that was removed since (the id is the `Nats-Msg-Id`). An append is retried when
    /// its acknowledgement was lost, and a publish can reach the stream late (held in a
    /// connection across a partition): either may come after the first copy was
    /// consumed and acknowledged, and must not bring the message back.
    Window,
    /// Only a copy stored now: the message comes back on purpose (a redrive).
    Stored,
}

impl Dedupe {
    /// The `Nats-Msg-Id` a publish of `id` carries, if any.
    pub(super) fn msg_id(self, id: &str) -> Option<&str> {
        (self == Dedupe::Window).then_some(id)
    }
}

impl JetStreamChannel {
    /// Starts the feed task once (it runs until the channel is dropped).
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

    /// The first sequence to keep so that nothing stored before `before` (epoch seconds,
    /// server arrival time) remains, or `None` when nothing is that old.
    async fn first_at_or_after(&self, before: f64) -> Result<Option<Seq>> {
        let info = self.stream_info().await?;
        if info.state.messages == 0 {
            return Ok(None);
        }
        let nanos = (before * 1e9) as i128;
        let start_time = async_nats::datetime::from_nanos(nanos)
            .map_err(|e| invalid(format!("evict: 'before' out of range: {e}")))?;
        // The first message that arrived at or after `before`; everything below it goes.
        // None: every message stored when `info` was taken is older.
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
        Ok((first_kept > info.state.first_sequence).then_some(first_kept))
    }

    /// The first sequence to keep so that at most `max` messages remain, or `None` when
    /// there are no more than that.
    async fn first_of_newest(&self, max: usize) -> Result<Option<Seq>> {
        let info = self.stream_info().await?;
        let stored = info.state.messages;
        if stored <= max as u64 {
            return Ok(None);
        }
        let excess = stored - max as u64;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if last + 1 - first == stored {
            // No holes: the boundary is plain arithmetic.
            return Ok(Some(first + excess));
        }
        // Holes (acked or removed messages): walk the oldest `excess` sequences. (The
        // server's purge-with-keep counts holes as messages on 2.9.)
        let oldest = self.oldest_headers(first, excess).await?;
        Ok(Some(
            oldest
                .last()
                .and_then(|m| m.info().ok().map(|i| i.stream_sequence + 1))
                .unwrap_or(first),
        ))
    }
}

/// How many sequences `latest` looks at in its first window, times the limit; the window
/// doubles while holes or a mailbox filter leave it short.
const LATEST_WINDOW: u64 = 1;

impl JetStreamChannel {
    /// Decodes scanned messages with their arrival time, skipping undecodable ones.
    fn decoded(
        &self,
        msgs: Vec<async_nats::jetstream::Message>,
    ) -> Vec<(Entry, async_nats::datetime::DateTime)> {
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let Ok(info) = m.info() else { continue };
            let (seq, published) = (info.stream_sequence, info.published);
            match decode(&m.payload) {
                Ok(message) => out.push((
                    Entry {
                        seq,
                        message: Arc::new(message),
                    },
                    published,
                )),
                Err(e) => {
                    tracing::warn!(channel = %self.id, seq, error = %e, "skipping an undecodable message")
                }
            }
        }
        out
    }
}

impl JetStreamChannel {
    /// Appends message by message (servers before 2.12, and single messages): everything
    /// is published first, then the acknowledgements are collected, one round trip for
    /// the batch. The server stores them in publish order, each on its own: when one
    /// fails, the others may be stored.
    pub(super) async fn append_each(
        &self,
        messages: Vec<ChannelMessage>,
        dedupe: Dedupe,
    ) -> Result<Vec<Entry>> {
        let mut sent = Vec::with_capacity(messages.len());
        for message in messages {
            let subject = self.names.message(&message.id);
            let payload = Bytes::from(serde_json::to_vec(&message).map_err(|e| {
                Error::new(ErrorKind::InvalidMessage, format!("message encoding: {e}"))
            })?);
            let msg_id = dedupe.msg_id(&message.id);
            let ack = self
                .publish_new(subject.clone(), payload.clone(), msg_id)
                .await?;
            sent.push((message, subject, payload, ack));
        }
        let mut out = Vec::with_capacity(sent.len());
        for (message, subject, payload, ack) in sent {
            let mut ack = Some(ack);
            let mut entry = None;
            for _ in 0..APPEND_ATTEMPTS {
                let Some(pending) = ack.take() else { break };
                match pending.await {
                    Ok(a) => {
                        // A duplicate answers with the sequence of the first copy, which
                        // may be removed by now: that is where the message was stored.
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
                                let msg_id = dedupe.msg_id(&message.id);
                                ack = Some(
                                    self.publish_new(subject.clone(), payload.clone(), msg_id)
                                        .await?,
                                )
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
}

impl JetStreamChannel {
    /// Appends messages whose ids have no copy yet (as `dedupe` counts copies): atomically
    /// where the server can, else message by message.
    pub(super) async fn append_new(
        &self,
        messages: Vec<ChannelMessage>,
        dedupe: Dedupe,
    ) -> Result<Vec<Entry>> {
        if messages.len() > 1 && self.appends_atomically() {
            self.append_atomic(messages, dedupe).await
        } else {
            self.append_each(messages, dedupe).await
        }
    }

    /// Removes by age and count (see [`Log::evict`]).
    async fn evict_now(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        let mut removed = 0u64;
        if let Some(before) = before
            && let Some(first_kept) = self.first_at_or_after(before).await?
        {
            removed += self.purge_below(first_kept).await?;
        }
        if let Some(max) = max_count {
            if self.purges_are_safe() {
                removed += self.purge_keeping(max as u64).await?;
            } else if let Some(first_kept) = self.first_of_newest(max).await? {
                removed += self.purge_below(first_kept).await?;
            }
        }
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    /// Removes messages by id (see [`Log::remove`]).
    async fn remove_now(&self, ids: &[&str]) -> Result<usize> {
        // Where purges are safe, one purge of the id's subject. Otherwise (and for secure
        // erases, which only a delete does) look up, then delete by sequence: on 2.9.10 a
        // purge filtered by subject makes every consumer of the stream skip to its end.
        let by_subject = self.purges_are_safe() && !self.store.options.durable_acks;
        let removed = join_all(ids.iter().map(|id| async move {
            if by_subject {
                return Ok(self.purge_subject(self.names.message(id)).await? > 0);
            }
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
}

#[async_trait]
impl Log for JetStreamChannel {
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        self.append_new(messages, Dedupe::Window).await
    }

    async fn read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        self.shared_read(reader, from, limit, filter).await
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

    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        self.removing(self.evict_now(before, max_count)).await
    }

    async fn remove(&self, ids: &[&str]) -> Result<usize> {
        self.removing(self.remove_now(ids)).await
    }

    async fn replace(
        &self,
        message: ChannelMessage,
        ttl: Option<std::time::Duration>,
    ) -> Result<Entry> {
        self.replace_by_id(message, ttl).await
    }

    async fn remove_seqs(&self, seqs: &[Seq]) -> Result<usize> {
        self.removing(self.remove_by_seq(seqs)).await
    }

    async fn clear(&self) -> Result<usize> {
        let purged = self.removing(self.purge_all()).await?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    async fn stats(&self) -> Result<LogStats> {
        // Settle this process's lapsed leases first (a last delivery becomes a dead letter),
        // so `stored` agrees with the claim stats taken next.
        if self.claims.is_some() {
            self.reclaim_local().await?;
        }
        let (info, cursors) = tokio::join!(self.stream_info(), self.cursors());
        let info = info?;
        let oldest = if info.state.messages > 0 {
            lookup::next_for_subject(
                &self.stream,
                self.names.stream_subjects(),
                info.state.first_sequence,
            )
            .await
            .map_err(|e| self.err("oldest message lookup", e))?
            .and_then(|m| decode(&m.payload).ok().map(|m| m.timestamp))
        } else {
            None
        };
        Ok(LogStats {
            stored: info.state.messages,
            oldest,
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
        self.head.load(Ordering::Acquire)
    }

    async fn get(&self, id: &str) -> Result<Option<Entry>> {
        self.by_id(id).await
    }

    async fn arrived_between(
        &self,
        start: f64,
        end: f64,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        // Clamped to what the server's clock can name (years 1970 to 5138).
        let time = |secs: f64| {
            async_nats::datetime::from_nanos((secs.clamp(0.0, 1e11) * 1e9) as i128)
                .map_err(|e| invalid(format!("history: time out of range: {e}")))
        };
        let (start_time, end_time) = (time(start)?, time(end)?);
        let mut out = Vec::new();
        if limit == 0 || end < start {
            return Ok(out);
        }
        // The server finds the first message at `start` (its arrival index); pages then
        // follow by sequence until `end` or the limit.
        let mut from = DeliverPolicy::ByStartTime { start_time };
        loop {
            let want = limit - out.len();
            let page = self
                .scan(&self.stream, from, String::new(), false, want)
                .await?;
            let short = page.len() < want;
            let mut next = None;
            for (entry, published) in self.decoded(page) {
                if published > end_time {
                    return Ok(out);
                }
                next = Some(entry.seq + 1);
                if filter.matches(&entry.message) {
                    out.push(entry);
                }
            }
            match next {
                Some(start_sequence) if !short && out.len() < limit => {
                    from = DeliverPolicy::ByStartSequence { start_sequence };
                }
                _ => return Ok(out),
            }
        }
    }

    async fn latest(&self, limit: usize, filter: &ReadFilter) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let info = self.stream_info().await?;
        if info.state.messages == 0 {
            return Ok(out);
        }
        let first = info.state.first_sequence;
        // Windows of sequences walked backwards from the newest: [low, high].
        let mut high = info.state.last_sequence;
        let mut width = (limit as u64).saturating_mul(LATEST_WINDOW).max(1);
        while out.len() < limit && high >= first {
            let low = high.saturating_sub(width - 1).max(first);
            let page = self
                .scan(
                    &self.stream,
                    DeliverPolicy::ByStartSequence {
                        start_sequence: low,
                    },
                    String::new(),
                    false,
                    usize::try_from(high - low + 1).unwrap_or(usize::MAX),
                )
                .await?;
            let mut window: Vec<Entry> = self
                .decoded(page)
                .into_iter()
                .map(|(e, _)| e)
                .filter(|e| e.seq <= high && filter.matches(&e.message))
                .collect();
            window.reverse();
            out.extend(window.into_iter().take(limit - out.len()));
            if low == first {
                break;
            }
            high = low - 1;
            width = width.saturating_mul(2);
        }
        Ok(out)
    }
}
