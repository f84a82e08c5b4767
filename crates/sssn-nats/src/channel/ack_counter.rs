//! [`AckCounter`]: the count of acknowledged messages of a channel with claims, kept in
//! the store's state stream (one subject per channel, one message per subject).
//!
//! Data flow: an ack adds to a local tally and stores it before it returns
//! ([`AckCounter::add`]): the acks of one process that arrive while a write is under way
//! are folded into the next write (one write for a burst of acks). The write is a
//! compare-and-set on the subject's last sequence, so processes acking concurrently never
//! lose each other's counts, and carries a `Nats-Msg-Id` per batch, so a retried batch is
//! counted once. `stats` flushes first ([`AckCounter::total`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use bytes::Bytes;
use sssn::{Error, ErrorKind, Result};

use super::lock;

/// The acknowledged count of one channel (see the module docs).
pub(super) struct AckCounter {
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
    /// A counter stored on `subject` of the state stream.
    pub(super) fn new(js: jetstream::Context, state: stream::Stream, subject: String) -> Self {
        Self {
            js,
            state,
            subject,
            pending: Mutex::new(0),
            last: Mutex::new(None),
            retry: Mutex::new(None),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts `n` more acknowledged messages and stores the count before returning, so
    /// an ack that returned is counted even if this process is killed right after.
    /// Concurrent acks of this process share one write (whoever holds the write lock
    /// stores everything added so far). A failed write stays pending and is retried by
    /// the next ack or `stats`.
    pub(super) async fn add(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        *lock(&self.pending) += n;
        self.flush().await
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

    /// The stored count, after folding in this process's tally.
    pub(super) async fn total(&self) -> Result<u64> {
        self.flush().await?;
        Ok(self.stored().await?.1)
    }
}
