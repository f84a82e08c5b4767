//! The SQL of every channel operation, run by the writer thread inside a batch
//! transaction ([`Txn`]) or, for pure reads, on a read-only connection.
//!
//! These are the mechanics of the store contract (`sssn::store::{Log, ClaimQueue}`) in
//! SQL; every decision about claims — requeue or dead-letter, the reason, who may settle —
//! is asked of the channel's `sssn::policy::ClaimPolicy`, never made here. Every statement
//! is a lookup or a range walk on an index (see `schema`), never a scan of the channel's
//! history. The outer `Result` is the database's (a failure rolls the batch back); the
//! inner one is the caller's outcome.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row};
use sssn::message::{ChannelMessage, Content};
use sssn::policy::{ClaimPolicy, ClaimScope, DeadReason};
use sssn::store::{
    ClaimStats, Claimed, DeadLetter, Entry, LogStats, ReadFilter, ReadFrom, Seq, Settle, Settled,
};
use sssn::{Error, ErrorKind, Result};

use crate::channel::{ChanShared, Counts};
use crate::claim_rows::{self, ClaimRows, Held};
use crate::inbox::Inboxes;
use crate::writer::{Txn, int};

/// `messages.state` of a message waiting to be claimed.
pub(crate) const READY: i64 = 0;
/// `messages.state` of a message nacked with a delay (claimable from `due`).
pub(crate) const DELAYED: i64 = 1;
/// `messages.state` of a claimed message (lease runs out at `due`).
pub(crate) const IN_FLIGHT: i64 = 2;

/// The message columns, in the order [`message_at`] decodes them.
macro_rules! msg_cols {
    () => {
        "id, timestamp, sender_id, content, metadata, correlation_id, reply_to, recipient_id"
    };
}
pub(crate) use msg_cols;

type Db<T> = rusqlite::Result<T>;

fn decode_failure(col: usize, e: Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

/// Decodes the message whose columns ([`msg_cols`]) start at column `at`.
fn message_at(row: &Row<'_>, at: usize) -> Db<ChannelMessage> {
    let content: String = row.get(at + 3)?;
    let content = Content::from_json(content).map_err(|e| decode_failure(at + 3, e))?;
    let metadata = match row.get_ref(at + 4)?.as_str_or_null()? {
        None => serde_json::Map::new(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            decode_failure(
                at + 4,
                Error::new(ErrorKind::Store, format!("stored metadata: {e}")),
            )
        })?,
    };
    Ok(ChannelMessage {
        id: row.get(at)?,
        timestamp: row.get(at + 1)?,
        sender_id: row.get(at + 2)?,
        content,
        metadata,
        correlation_id: row.get(at + 5)?,
        reply_to: row.get(at + 6)?,
        recipient_id: row.get(at + 7)?,
    })
}

pub(crate) fn entry_row(row: &Row<'_>) -> Db<Entry> {
    Ok(Entry {
        seq: row.get(0)?,
        message: Arc::new(message_at(row, 1)?),
    })
}

pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adjusts the counters for a message leaving the log from `state`.
fn removed(c: &mut Counts, state: Option<i64>) {
    dec(&mut c.stored, 1);
    match state {
        Some(READY) => dec(&mut c.ready, 1),
        Some(DELAYED) => dec(&mut c.delayed, 1),
        Some(IN_FLIGHT) => dec(&mut c.in_flight, 1),
        _ => {}
    }
}

/// Counters never go below zero; in tests a miscount is a bug worth stopping for.
fn dec(counter: &mut u64, n: u64) {
    debug_assert!(*counter >= n, "counter {counter} < {n}");
    *counter = counter.saturating_sub(n);
}

// ----- opening ------------------------------------------------------------------------

/// What `channels` knows about a channel.
pub(crate) struct ChannelRow {
    pub(crate) chan: i64,
    pub(crate) claims: bool,
    pub(crate) scope: ClaimScope,
    pub(crate) head: u64,
    pub(crate) counts: Counts,
}

fn scope_code(scope: ClaimScope) -> i64 {
    match scope {
        ClaimScope::Shared => 0,
        ClaimScope::PerRecipient => 1,
    }
}

/// Finds the channel `name`, creating it (with or without claims, shared or per
/// recipient) if it does not exist. A log-only channel opened with claims per recipient
/// gains them (its messages carry no claim state either way, and its inboxes start
/// empty): how a mailbox stored before mailboxes had claims opens. The `kind` column
/// describes the capabilities for people reading the file (`log`, `log+claims`, or
/// `log+inboxes`); files written before kept the kind's name there.
pub(crate) fn open_channel(
    conn: &Connection,
    name: &str,
    claims: bool,
    scope: ClaimScope,
) -> Db<ChannelRow> {
    let kind = match (claims, scope) {
        (false, _) => "log",
        (true, ClaimScope::Shared) => "log+claims",
        (true, ClaimScope::PerRecipient) => "log+inboxes",
    };
    let found = conn
        .prepare_cached(
            "SELECT chan, claims, head, stored, ready, delayed, in_flight, acknowledged, \
             dead, claim_scope FROM channels WHERE name = ?1",
        )?
        .query_row([name], |r| {
            Ok(ChannelRow {
                chan: r.get(0)?,
                claims: r.get(1)?,
                scope: if r.get::<_, i64>(9)? == 1 {
                    ClaimScope::PerRecipient
                } else {
                    ClaimScope::Shared
                },
                head: r.get(2)?,
                counts: Counts {
                    stored: r.get(3)?,
                    ready: r.get(4)?,
                    delayed: r.get(5)?,
                    in_flight: r.get(6)?,
                    acknowledged: r.get(7)?,
                    dead: r.get(8)?,
                },
            })
        })
        .optional()?;
    if let Some(mut row) = found {
        if !row.claims && claims && scope == ClaimScope::PerRecipient {
            conn.prepare_cached(
                "UPDATE channels SET claims = 1, claim_scope = 1, kind = ?2 WHERE chan = ?1",
            )?
            .execute((row.chan, kind))?;
            row.claims = true;
            row.scope = scope;
        }
        return Ok(row);
    }
    conn.prepare_cached(
        "INSERT INTO channels (name, kind, claims, claim_scope) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute((name, kind, claims, scope_code(scope)))?;
    Ok(ChannelRow {
        chan: conn.last_insert_rowid(),
        claims,
        scope,
        head: 0,
        counts: Counts::default(),
    })
}

// ----- appends ------------------------------------------------------------------------

/// Appends `messages` in order; a message whose id is stored returns the stored entry.
pub(crate) fn append(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    messages: &[Arc<ChannelMessage>],
    now: u64,
) -> Db<Vec<Entry>> {
    let mut out = Vec::with_capacity(messages.len());
    let state = ch.shared_claims().then_some(READY);
    for message in messages {
        let seq = txn.head(ch) + 1;
        let metadata = if message.metadata.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&message.metadata)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            )
        };
        let inserted = txn
            .conn
            .prepare_cached(
                "INSERT INTO messages (chan, seq, id, timestamp, sender_id, content, metadata, \
                 correlation_id, reply_to, recipient_id, stored_at, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (chan, id) DO NOTHING",
            )?
            .execute((
                ch.chan,
                int(seq),
                &message.id,
                message.timestamp,
                &message.sender_id,
                message.content.json(),
                metadata,
                &message.correlation_id,
                &message.reply_to,
                &message.recipient_id,
                int(now),
                state,
            ))?;
        if inserted == 1 {
            let c = txn.counts(ch);
            c.stored += 1;
            if ch.shared_claims() {
                c.ready += 1;
            }
            let entry = Entry {
                seq,
                message: message.clone(),
            };
            txn.appended(ch, entry.clone());
            out.push(entry);
        } else {
            // A retried write: hand back what is stored under that id.
            let existing = txn
                .conn
                .prepare_cached(concat!(
                    "SELECT seq, ",
                    msg_cols!(),
                    " FROM messages WHERE chan = ?1 AND id = ?2"
                ))?
                .query_row((ch.chan, &message.id), entry_row)?;
            out.push(existing);
        }
    }
    Ok(out)
}

// ----- shared reads -------------------------------------------------------------------

/// Shared read from `from`; stores the reader's cursor at the last sequence examined.
pub(crate) fn read(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    reader: &str,
    from: &ReadFrom,
    max: usize,
    filter: &ReadFilter,
) -> Db<Result<Vec<Entry>>> {
    let conn = txn.conn;
    let old: Option<u64> = conn
        .prepare_cached("SELECT seq FROM cursors WHERE chan = ?1 AND reader = ?2")?
        .query_row((ch.chan, reader), |r| r.get(0))
        .optional()?;
    let start = match from {
        ReadFrom::Cursor => old.unwrap_or(0),
        ReadFrom::AfterSeq(seq) => *seq,
        ReadFrom::AfterId(id) => {
            let seq: Option<u64> = conn
                .prepare_cached("SELECT seq FROM messages WHERE chan = ?1 AND id = ?2")?
                .query_row((ch.chan, id), |r| r.get(0))
                .optional()?;
            match seq {
                Some(seq) => seq,
                None => {
                    return Ok(Err(Error::new(
                        ErrorKind::InvalidArgument,
                        format!("'after' names message '{id}', which is not in the channel"),
                    )));
                }
            }
        }
    };
    let mut out = Vec::new();
    let mut cursor = start;
    if max > 0 {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT seq, ",
            msg_cols!(),
            " FROM messages WHERE chan = ?1 AND seq > ?2 ORDER BY seq"
        ))?;
        let mut rows = stmt.query((ch.chan, int(start)))?;
        while let Some(row) = rows.next()? {
            let entry = entry_row(row)?;
            cursor = entry.seq;
            if filter.matches(&entry.message) {
                out.push(entry);
                if out.len() == max {
                    break;
                }
            }
        }
        // Like the memory store, a read that runs out of messages has examined every
        // sequence up to the head (removed ones included), unless nothing is stored.
        let head = txn.head(ch);
        if out.len() < max && start < head && txn.counts(ch).stored > 0 {
            cursor = head;
        }
    }
    if old != Some(cursor) {
        conn.prepare_cached(
            "INSERT INTO cursors (chan, reader, seq) VALUES (?1, ?2, ?3) \
             ON CONFLICT (chan, reader) DO UPDATE SET seq = excluded.seq",
        )?
        .execute((ch.chan, reader, int(cursor)))?;
    }
    Ok(Ok(out))
}

/// Up to `max` stored messages after `after`, touching no cursor (read connection).
pub(crate) fn range(conn: &Connection, chan: i64, after: Seq, max: usize) -> Db<Vec<Entry>> {
    conn.prepare_cached(concat!(
        "SELECT seq, ",
        msg_cols!(),
        " FROM messages WHERE chan = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?
    .query_map((chan, int(after), limit(max)), entry_row)?
    .collect()
}

// ----- claims -------------------------------------------------------------------------

/// Expired leases, oldest deadline first.
pub(crate) const EXPIRED_SQL: &str = "SELECT rowid, attempts FROM messages \
     WHERE chan = ?1 AND state = 2 AND due <= ?2 ORDER BY due, seq";

/// Claims the oldest ready messages.
pub(crate) const CLAIM_SQL: &str = concat!(
    "UPDATE messages SET state = 2, attempts = attempts + 1, due = ?3, claimer = ?4 \
     WHERE rowid IN (SELECT rowid FROM messages WHERE chan = ?1 AND state = 0 \
     ORDER BY due, seq LIMIT ?2) RETURNING seq, attempts, ",
    msg_cols!()
);

/// Delayed messages that are due become ready; expired leases are released (the policy
/// requeues or dead-letters them). Returns how many leases were released.
pub(crate) fn maintain(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    now: u64,
) -> Db<usize> {
    if ch.per_recipient() {
        claim_rows::maintain(&Inboxes, txn, ch, policy, now)
    } else {
        claim_rows::maintain(&SharedQueue, txn, ch, policy, now)
    }
}

/// Settles claims `how` (ack, nack, reject, extend): ids the policy lets `claimer` settle
/// are acted on, the rest are stale.
pub(crate) fn settle(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    claimer: &str,
    ids: &[String],
    how: &Settle,
    now: u64,
) -> Db<Settled> {
    if ch.per_recipient() {
        claim_rows::settle(&Inboxes, txn, ch, policy, claimer, ids, how, now)
    } else {
        claim_rows::settle(&SharedQueue, txn, ch, policy, claimer, ids, how, now)
    }
}

/// The claim state of a shared queue: in the `messages` rows (`state`, `due`, `attempts`,
/// `claimer`), a claim named by its row.
struct SharedQueue;

impl ClaimRows for SharedQueue {
    type Key = i64;

    // Two lookups at the start of `messages_claimable` ranges.
    const EARLIEST_DUE_SQL: [&'static str; 2] = [
        "SELECT min(due) FROM messages WHERE chan = ?1 AND state = 1",
        "SELECT min(due) FROM messages WHERE chan = ?1 AND state = 2",
    ];

    fn make_due(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, now: u64) -> Db<()> {
        let due = txn
            .conn
            .prepare_cached(
                "UPDATE messages SET state = 0, due = 0 \
                 WHERE chan = ?1 AND state = 1 AND due <= ?2",
            )?
            .execute((ch.chan, int(now)))? as u64;
        if due > 0 {
            let c = txn.counts(ch);
            dec(&mut c.delayed, due);
            c.ready += due;
        }
        Ok(())
    }

    fn expired(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, now: u64) -> Db<Vec<(i64, u32)>> {
        // Oldest deadline first, as the memory store's lease heap.
        txn.conn
            .prepare_cached(EXPIRED_SQL)?
            .query_map((ch.chan, int(now)), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    fn held(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        id: &str,
        _claimer: &str,
    ) -> Db<Option<Held<i64>>> {
        txn.conn
            .prepare_cached(
                "SELECT rowid, attempts, claimer, due FROM messages \
                 WHERE chan = ?1 AND id = ?2 AND state = 2",
            )?
            .query_row((ch.chan, id), |r| {
                Ok(Held {
                    key: r.get(0)?,
                    attempts: r.get(1)?,
                    holder: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    deadline: r.get(3)?,
                })
            })
            .optional()
    }

    fn ack(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, rowid: i64) -> Db<()> {
        txn.conn
            .prepare_cached("DELETE FROM messages WHERE rowid = ?1")?
            .execute([rowid])?;
        removed(txn.counts(ch), Some(IN_FLIGHT));
        Ok(())
    }

    fn requeue(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        rowid: i64,
        state: i64,
        due: u64,
    ) -> Db<()> {
        txn.conn
            .prepare_cached(
                "UPDATE messages SET state = ?2, due = ?3, claimer = NULL WHERE rowid = ?1",
            )?
            .execute((rowid, state, int(due)))?;
        let c = txn.counts(ch);
        dec(&mut c.in_flight, 1);
        if state == DELAYED {
            c.delayed += 1;
        } else {
            c.ready += 1;
        }
        Ok(())
    }

    fn extend(&self, txn: &mut Txn<'_>, _: &Arc<ChanShared>, rowid: i64, deadline: u64) -> Db<()> {
        txn.conn
            .prepare_cached("UPDATE messages SET due = ?2 WHERE rowid = ?1")?
            .execute((rowid, int(deadline)))?;
        Ok(())
    }

    /// Moves the message to the dead letters, with the attempts its row counts.
    fn dead_letter(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        rowid: i64,
        _attempts: u32,
        reason: &DeadReason,
        now: u64,
    ) -> Db<()> {
        txn.conn
            .prepare_cached(concat!(
                "INSERT INTO dead_letters (chan, seq, ",
                msg_cols!(),
                ", attempts, reason, dead_at) SELECT chan, seq, ",
                msg_cols!(),
                ", attempts, ?2, ?3 FROM messages WHERE rowid = ?1"
            ))?
            .execute((rowid, reason.to_string(), int(now)))?;
        let state: Option<i64> = txn
            .conn
            .prepare_cached("DELETE FROM messages WHERE rowid = ?1 RETURNING state")?
            .query_row([rowid], |r| r.get(0))?;
        let c = txn.counts(ch);
        removed(c, state);
        c.dead += 1;
        Ok(())
    }
}

/// Claims up to `max` of the oldest claimable messages for `claimer`.
pub(crate) fn claim(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    claimer: &str,
    max: usize,
    now: u64,
) -> Db<Vec<Claimed>> {
    if ch.per_recipient() {
        return crate::inbox::claim(txn, ch, policy, claimer, max, now);
    }
    maintain(txn, ch, policy, now)?;
    if max == 0 {
        return Ok(Vec::new());
    }
    let deadline = policy.lease_deadline(now);
    let mut claimed = txn
        .conn
        .prepare_cached(CLAIM_SQL)?
        .query_map((ch.chan, limit(max), int(deadline), claimer), |r| {
            Ok(Claimed {
                seq: r.get(0)?,
                attempt: r.get(1)?,
                message: Arc::new(message_at(r, 2)?),
                lease_until_ms: deadline,
            })
        })?
        .collect::<Db<Vec<_>>>()?;
    // RETURNING gives no order.
    claimed.sort_unstable_by_key(|c| c.seq);
    if !claimed.is_empty() {
        txn.due_at(ch, deadline);
    }
    let c = txn.counts(ch);
    dec(&mut c.ready, claimed.len() as u64);
    c.in_flight += claimed.len() as u64;
    Ok(claimed)
}

// ----- dead letters -------------------------------------------------------------------

/// Up to `max` dead letters, oldest first (read connection).
pub(crate) fn dead_letters(conn: &Connection, chan: i64, max: usize) -> Db<Vec<DeadLetter>> {
    conn.prepare_cached(concat!(
        "SELECT seq, ",
        msg_cols!(),
        ", attempts, reason, dead_at, recipient FROM dead_letters WHERE chan = ?1 \
         ORDER BY n LIMIT ?2"
    ))?
    .query_map((chan, limit(max)), |r| {
        Ok(DeadLetter {
            seq: r.get(0)?,
            message: message_at(r, 1)?,
            attempts: r.get(9)?,
            reason: r.get(10)?,
            dead_at_ms: r.get(11)?,
            recipient: r.get(12)?,
        })
    })?
    .collect()
}

/// Appends the dead letters with these ids back as new messages; returns how many.
pub(crate) fn redrive(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    ids: &[String],
    now: u64,
) -> Db<usize> {
    let wanted: HashSet<&String> = ids.iter().collect();
    type Found = (i64, Seq, Option<String>, ChannelMessage);
    let mut found: Vec<Found> = Vec::new();
    for id in wanted {
        let mut stmt = txn.conn.prepare_cached(concat!(
            "SELECT n, seq, recipient, ",
            msg_cols!(),
            " FROM dead_letters WHERE chan = ?1 AND id = ?2"
        ))?;
        let rows = stmt.query_map((ch.chan, id), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, message_at(r, 3)?))
        })?;
        for row in rows {
            found.push(row?);
        }
    }
    // In dead-letter order, as the memory store.
    found.sort_unstable_by_key(|(n, ..)| *n);
    for (n, ..) in &found {
        txn.conn
            .prepare_cached("DELETE FROM dead_letters WHERE n = ?1")?
            .execute([n])?;
    }
    dec(&mut txn.counts(ch).dead, found.len() as u64);
    let moved = found.len();
    let mut messages: Vec<Arc<ChannelMessage>> = Vec::with_capacity(moved);
    for (_, seq, recipient, message) in found {
        // A recipient's dead letter goes back to that recipient's inbox only.
        let back = match recipient {
            Some(recipient) => crate::inbox::redrive(txn, ch, &recipient, seq, message)?,
            None => Some(message),
        };
        messages.extend(back.map(Arc::new));
    }
    append(txn, ch, &messages, now)?;
    Ok(moved)
}

// ----- removal ------------------------------------------------------------------------

/// Deletes rows by rowid; returns how many.
fn delete_rows(txn: &mut Txn<'_>, ch: &Arc<ChanShared>, rowids: &[i64]) -> Db<usize> {
    for rowid in rowids {
        let state: (Option<i64>, Seq) = txn
            .conn
            .prepare_cached("DELETE FROM messages WHERE rowid = ?1 RETURNING state, seq")?
            .query_row([rowid], |r| Ok((r.get(0)?, r.get::<_, Seq>(1)?)))?;
        let (state, seq) = state;
        if ch.per_recipient() {
            crate::inbox::forget_everywhere(txn.conn, ch.chan, seq)?;
        }
        removed(txn.counts(ch), state);
    }
    Ok(rowids.len())
}

/// Removes messages that arrived before `before` (epoch s), then all but the newest
/// `max_count`.
pub(crate) fn evict(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    before: Option<f64>,
    max_count: Option<usize>,
) -> Db<usize> {
    let mut removed_total = 0;
    if let Some(before) = before {
        let before_ms = (before * 1000.0) as u64;
        // From the oldest, up to the first message that is not old enough.
        let mut old = Vec::new();
        {
            let mut stmt = txn.conn.prepare_cached(
                "SELECT rowid, stored_at FROM messages WHERE chan = ?1 ORDER BY seq",
            )?;
            let mut rows = stmt.query([ch.chan])?;
            while let Some(row) = rows.next()? {
                let stored_at: u64 = row.get(1)?;
                if stored_at >= before_ms {
                    break;
                }
                old.push(row.get::<_, i64>(0)?);
            }
        }
        removed_total += delete_rows(txn, ch, &old)?;
    }
    if let Some(max) = max_count {
        let stored = txn.counts(ch).stored;
        let excess = stored.saturating_sub(max as u64);
        if excess > 0 {
            let oldest: Vec<i64> = txn
                .conn
                .prepare_cached("SELECT rowid FROM messages WHERE chan = ?1 ORDER BY seq LIMIT ?2")?
                .query_map((ch.chan, int(excess)), |r| r.get(0))?
                .collect::<Db<_>>()?;
            removed_total += delete_rows(txn, ch, &oldest)?;
        }
    }
    Ok(removed_total)
}

/// Removes messages by id; returns how many were stored.
pub(crate) fn remove(txn: &mut Txn<'_>, ch: &Arc<ChanShared>, ids: &[String]) -> Db<usize> {
    let mut n = 0;
    for id in ids {
        let state: Option<(Option<i64>, Seq)> = txn
            .conn
            .prepare_cached(
                "DELETE FROM messages WHERE chan = ?1 AND id = ?2 RETURNING state, seq",
            )?
            .query_row((ch.chan, id), |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((state, seq)) = state {
            if ch.per_recipient() {
                crate::inbox::forget_everywhere(txn.conn, ch.chan, seq)?;
            }
            removed(txn.counts(ch), state);
            n += 1;
        }
    }
    Ok(n)
}

/// Removes the messages stored at `seqs`; returns how many were stored.
pub(crate) fn remove_seqs(txn: &mut Txn<'_>, ch: &Arc<ChanShared>, seqs: &[Seq]) -> Db<usize> {
    let mut n = 0;
    for &seq in seqs {
        let state: Option<Option<i64>> = txn
            .conn
            .prepare_cached("DELETE FROM messages WHERE chan = ?1 AND seq = ?2 RETURNING state")?
            .query_row((ch.chan, int(seq)), |r| r.get(0))
            .optional()?;
        if let Some(state) = state {
            removed(txn.counts(ch), state);
            n += 1;
        }
    }
    Ok(n)
}

/// Removes every message; cursors, head, dead letters and the ack count stay.
pub(crate) fn clear(txn: &mut Txn<'_>, ch: &Arc<ChanShared>) -> Db<usize> {
    let n = txn
        .conn
        .prepare_cached("DELETE FROM messages WHERE chan = ?1")?
        .execute([ch.chan])?;
    txn.conn
        .prepare_cached("DELETE FROM inbox_claims WHERE chan = ?1")?
        .execute([ch.chan])?;
    let c = txn.counts(ch);
    c.stored = 0;
    c.ready = 0;
    c.delayed = 0;
    c.in_flight = 0;
    Ok(n)
}

// ----- stats --------------------------------------------------------------------------

/// A snapshot of the log.
pub(crate) fn log_stats(txn: &mut Txn<'_>, ch: &Arc<ChanShared>) -> Db<LogStats> {
    let conn = txn.conn;
    let oldest: Option<f64> = conn
        .prepare_cached("SELECT timestamp FROM messages WHERE chan = ?1 ORDER BY seq LIMIT 1")?
        .query_row([ch.chan], |r| r.get(0))
        .optional()?;
    let mut cursors: Vec<(String, Seq)> = conn
        .prepare_cached("SELECT reader, seq FROM cursors WHERE chan = ?1")?
        .query_map([ch.chan], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Db<_>>()?;
    cursors.sort();
    let head = txn.head(ch);
    let stored = txn.counts(ch).stored;
    Ok(LogStats {
        stored,
        oldest,
        head_seq: head,
        cursors,
    })
}

/// A snapshot of the claims, after due delays and expired leases are applied.
pub(crate) fn claim_stats(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    now: u64,
) -> Db<ClaimStats> {
    if ch.per_recipient() {
        return crate::inbox::stats(txn, ch, policy, now);
    }
    maintain(txn, ch, policy, now)?;
    let c = *txn.counts(ch);
    Ok(ClaimStats {
        backlog: c.ready + c.delayed,
        delayed: c.delayed,
        in_flight: c.in_flight,
        acknowledged: c.acknowledged,
        dead_lettered: c.dead,
    })
}
