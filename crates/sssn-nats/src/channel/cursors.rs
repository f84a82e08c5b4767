//! Shared reads and the reader cursors behind them.
//!
//! A reader's cursor lives in the store's state stream (subject per reader, one message
//! per subject), so every process continues from the same place. Data flow of a read:
//! load the cursor once per process (then trust the cached one and its subject sequence),
//! position a per-reader ephemeral consumer after the start point (kept between reads
//! while the position matches), fetch, then store the new cursor with a compare-and-set on
//! the subject sequence. When another process moved the cursor in between, the read is
//! retried from the stored cursor; when storing it failed, the next read from the cursor
//! starts at the old one again (at least once, never skipped).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use serde::{Deserialize, Serialize};
use sssn::store::{Entry, ReadFilter, ReadFrom, Seq};
use sssn::{Error, ErrorKind, Result};

use super::{JetStreamChannel, MAX_BATCH, decode, lock, lookup};
use crate::store::invalid;

/// How long an idle per-reader consumer lives on the server.
const READER_IDLE: Duration = Duration::from_secs(300);
/// Reads retried after another process moved the cursor before giving up.
const READ_ATTEMPTS: usize = 10;

/// A reader's position, cached between reads.
#[derive(Default)]
pub(super) struct Reader {
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

/// A cursor as stored in the state stream.
#[derive(Serialize, Deserialize)]
struct CursorRecord {
    reader: String,
    seq: Seq,
}

impl JetStreamChannel {
    /// A shared read (see the module docs): up to `limit` messages after `from` that pass
    /// `filter`; stores the cursor at the last message examined.
    pub(super) async fn shared_read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let slot = self.reader(reader);
        let mut r = slot.lock().await;
        for _ in 0..READ_ATTEMPTS {
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

    /// Every reader's stored cursor, sorted by reader.
    pub(super) async fn cursors(&self) -> Result<Vec<(String, Seq)>> {
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

    fn reader(&self, reader: &str) -> Arc<tokio::sync::Mutex<Reader>> {
        lock(&self.readers)
            .entry(reader.to_owned())
            .or_default()
            .clone()
    }

    async fn load_cursor(&self, reader: &str) -> Result<(Seq, u64)> {
        match lookup::last_for_subject(&self.state, self.names.cursor(reader))
            .await
            .map_err(|e| self.err("cursor lookup", e))?
        {
            Some(m) => {
                let record: CursorRecord = serde_json::from_slice(&m.payload).map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("stored cursor of '{reader}': {e}"),
                    )
                })?;
                Ok((record.seq, m.sequence))
            }
            None => Ok((0, 0)),
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
                let msgs = match self.fetch_caught_up(&consumer, want, r.position).await {
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
}
