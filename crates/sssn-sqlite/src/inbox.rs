//! Claims per recipient (mailboxes, `ClaimScope::PerRecipient`) in SQL.
//!
//! The messages of such a channel carry no claim state of their own (`state` is NULL, as
//! on a log-only channel). Each recipient that claims gets a row in `inboxes` (how far it
//! has examined the log, `scanned`) and one row in `inbox_claims` per message it took and
//! has not finished: 0 ready (released), 1 delayed (claimable from `due`), 2 in flight
//! (lease runs out at `due`), with its own attempt count. Messages it never took are found
//! after `scanned` through `messages_recipient` (its own, then those to everyone, merged by
//! sequence). An ack or dead letter removes the inbox row; a message addressed to the
//! recipient also leaves the log, one addressed to everyone stays for the others. The
//! decisions are the policy's, as on a shared queue.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use sssn::message::ChannelMessage;
use sssn::policy::{ClaimPolicy, ClaimScope, DeadReason};
use sssn::store::{ClaimStats, Claimed, Seq};

use crate::channel::ChanShared;
use crate::claim_rows::{self, ClaimRows, Held};
use crate::ops::{DELAYED, IN_FLIGHT, READY, entry_row, limit, msg_cols};
use crate::writer::{Txn, int};

type Db<T> = rusqlite::Result<T>;

const SCOPE: ClaimScope = ClaimScope::PerRecipient;

/// Claims up to `max` of the oldest messages `recipient` may claim, from its inbox.
pub(crate) fn claim(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    recipient: &str,
    max: usize,
    now: u64,
) -> Db<Vec<Claimed>> {
    claim_rows::maintain(&Inboxes, txn, ch, policy, now)?;
    if max == 0 {
        return Ok(Vec::new());
    }
    let conn = txn.conn;
    conn.prepare_cached("INSERT OR IGNORE INTO inboxes (chan, recipient) VALUES (?1, ?2)")?
        .execute((ch.chan, recipient))?;
    let scanned: Seq = conn
        .prepare_cached("SELECT scanned FROM inboxes WHERE chan = ?1 AND recipient = ?2")?
        .query_row((ch.chan, recipient), |r| r.get(0))?;
    // Candidates: released ones, and the oldest never taken (own, and to everyone).
    let released: Vec<(Seq, u32)> = conn
        .prepare_cached(
            "SELECT seq, attempts FROM inbox_claims \
             WHERE chan = ?1 AND recipient = ?2 AND state = 0 ORDER BY seq LIMIT ?3",
        )?
        .query_map((ch.chan, recipient, limit(max)), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Db<_>>()?;
    let mut fresh: Vec<Seq> = conn
        .prepare_cached(
            "SELECT seq FROM messages WHERE chan = ?1 AND recipient_id = ?2 \
             AND state IS NULL AND seq > ?3 ORDER BY seq LIMIT ?4",
        )?
        .query_map((ch.chan, recipient, int(scanned), limit(max)), |r| r.get(0))?
        .collect::<Db<_>>()?;
    fresh.extend(
        conn.prepare_cached(
            "SELECT seq FROM messages WHERE chan = ?1 AND recipient_id IS NULL \
             AND state IS NULL AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map((ch.chan, int(scanned), limit(max)), |r| r.get(0))?
        .collect::<Db<Vec<Seq>>>()?,
    );
    fresh.sort_unstable();
    let mut picked: Vec<(Seq, u32)> = released
        .into_iter()
        .chain(fresh.into_iter().map(|seq| (seq, 0)))
        .collect();
    picked.sort_unstable_by_key(|&(seq, _)| seq);
    picked.truncate(max);

    let deadline = policy.lease_deadline(now);
    let mut out = Vec::with_capacity(picked.len());
    let mut newest_fresh = None;
    for (seq, attempts) in picked {
        let entry = conn
            .prepare_cached(concat!(
                "SELECT seq, ",
                msg_cols!(),
                " FROM messages WHERE chan = ?1 AND seq = ?2"
            ))?
            .query_row((ch.chan, int(seq)), entry_row)?;
        if seq > scanned && attempts == 0 {
            newest_fresh = Some(seq);
        }
        conn.prepare_cached(
            "INSERT INTO inbox_claims (chan, recipient, seq, state, due, attempts) \
             VALUES (?1, ?2, ?3, 2, ?4, ?5) ON CONFLICT (chan, recipient, seq) \
             DO UPDATE SET state = 2, due = excluded.due, attempts = excluded.attempts",
        )?
        .execute((ch.chan, recipient, int(seq), int(deadline), attempts + 1))?;
        out.push(Claimed {
            seq,
            message: entry.message,
            attempt: attempts + 1,
            lease_until_ms: deadline,
        });
    }
    if let Some(seq) = newest_fresh {
        conn.prepare_cached("UPDATE inboxes SET scanned = ?3 WHERE chan = ?1 AND recipient = ?2")?
            .execute((ch.chan, recipient, int(seq)))?;
    }
    if !out.is_empty() {
        txn.due_at(ch, deadline);
    }
    Ok(out)
}

/// The claim state of a mailbox: one `inbox_claims` row per recipient and message it
/// took, a claim named by its recipient and sequence. Only the shared counters (the
/// acknowledged and dead-letter counts) are kept; the others are counted on demand
/// ([`stats`]).
pub(crate) struct Inboxes;

impl ClaimRows for Inboxes {
    type Key = (String, Seq);

    const EARLIEST_DUE_SQL: [&'static str; 2] = [
        "SELECT min(due) FROM inbox_claims WHERE chan = ?1 AND state = 1",
        "SELECT min(due) FROM inbox_claims WHERE chan = ?1 AND state = 2",
    ];

    fn make_due(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, now: u64) -> Db<()> {
        txn.conn
            .prepare_cached(
                "UPDATE inbox_claims SET state = 0, due = 0 \
                 WHERE chan = ?1 AND state = 1 AND due <= ?2",
            )?
            .execute((ch.chan, int(now)))?;
        Ok(())
    }

    fn expired(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        now: u64,
    ) -> Db<Vec<((String, Seq), u32)>> {
        txn.conn
            .prepare_cached(
                "SELECT recipient, seq, attempts FROM inbox_claims \
                 WHERE chan = ?1 AND state = 2 AND due <= ?2 ORDER BY due, seq",
            )?
            .query_map((ch.chan, int(now)), |r| {
                Ok(((r.get(0)?, r.get(1)?), r.get(2)?))
            })?
            .collect()
    }

    /// The claim in `recipient`'s own inbox: the inbox is the holder's, so fencing is the
    /// lease's life.
    fn held(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        id: &str,
        recipient: &str,
    ) -> Db<Option<Held<(String, Seq)>>> {
        txn.conn
            .prepare_cached(
                "SELECT c.seq, c.attempts, c.due FROM messages m JOIN inbox_claims c \
                 ON c.chan = m.chan AND c.recipient = ?3 AND c.seq = m.seq \
                 WHERE m.chan = ?1 AND m.id = ?2 AND c.state = 2",
            )?
            .query_row((ch.chan, id, recipient), |r| {
                Ok(Held {
                    key: (recipient.to_owned(), r.get(0)?),
                    attempts: r.get(1)?,
                    holder: recipient.to_owned(),
                    deadline: r.get(2)?,
                })
            })
            .optional()
    }

    fn ack(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, key: (String, Seq)) -> Db<()> {
        finish(txn, ch, &key.0, key.1)
    }

    fn requeue(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        (recipient, seq): (String, Seq),
        state: i64,
        due: u64,
    ) -> Db<()> {
        txn.conn
            .prepare_cached(
                "UPDATE inbox_claims SET state = ?4, due = ?5 \
                 WHERE chan = ?1 AND recipient = ?2 AND seq = ?3",
            )?
            .execute((ch.chan, recipient, int(seq), state, int(due)))?;
        Ok(())
    }

    fn extend(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        (recipient, seq): (String, Seq),
        deadline: u64,
    ) -> Db<()> {
        txn.conn
            .prepare_cached(
                "UPDATE inbox_claims SET due = ?4 \
                 WHERE chan = ?1 AND recipient = ?2 AND seq = ?3",
            )?
            .execute((ch.chan, recipient, int(seq), int(deadline)))?;
        Ok(())
    }

    /// The recipient gives the claim up as a dead letter (kept with the recipient's name).
    fn dead_letter(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        (recipient, seq): (String, Seq),
        attempts: u32,
        reason: &DeadReason,
        now: u64,
    ) -> Db<()> {
        txn.conn
            .prepare_cached(concat!(
                "INSERT INTO dead_letters (chan, seq, ",
                msg_cols!(),
                ", attempts, reason, dead_at, recipient) SELECT chan, seq, ",
                msg_cols!(),
                ", ?3, ?4, ?5, ?6 FROM messages WHERE chan = ?1 AND seq = ?2"
            ))?
            .execute((
                ch.chan,
                int(seq),
                attempts,
                reason.to_string(),
                int(now),
                &recipient,
            ))?;
        txn.counts(ch).dead += 1;
        finish(txn, ch, &recipient, seq)
    }
}

/// `recipient` is done with `seq`: its inbox forgets it, and a message addressed to it
/// leaves the log (one to everyone stays for the others).
fn finish(txn: &mut Txn<'_>, ch: &Arc<ChanShared>, recipient: &str, seq: Seq) -> Db<()> {
    txn.conn
        .prepare_cached("DELETE FROM inbox_claims WHERE chan = ?1 AND recipient = ?2 AND seq = ?3")?
        .execute((ch.chan, recipient, int(seq)))?;
    let addressed_to: Option<Option<String>> = txn
        .conn
        .prepare_cached("SELECT recipient_id FROM messages WHERE chan = ?1 AND seq = ?2")?
        .query_row((ch.chan, int(seq)), |r| r.get(0))
        .optional()?;
    if addressed_to.is_some_and(|to| SCOPE.ack_consumes(to.as_deref())) {
        let deleted = txn
            .conn
            .prepare_cached("DELETE FROM messages WHERE chan = ?1 AND seq = ?2")?
            .execute((ch.chan, int(seq)))?;
        if deleted == 1 {
            forget_everywhere(txn.conn, ch.chan, seq)?;
            let c = txn.counts(ch);
            c.stored = c.stored.saturating_sub(1);
        }
    }
    Ok(())
}

/// Drops every inbox's claim state on a message that left the log.
pub(crate) fn forget_everywhere(conn: &Connection, chan: i64, seq: Seq) -> Db<()> {
    conn.prepare_cached(
        "DELETE FROM inbox_claims INDEXED BY inbox_claims_seq WHERE chan = ?1 AND seq = ?2",
    )?
    .execute((chan, int(seq)))?;
    Ok(())
}

/// Puts a dead letter of `recipient`'s back in that inbox only: a message still stored
/// (addressed to everyone) is claimable there again with its attempts reset; one that left
/// the log is returned, addressed to `recipient`, for the caller to append.
pub(crate) fn redrive(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    recipient: &str,
    seq: Seq,
    mut message: ChannelMessage,
) -> Db<Option<ChannelMessage>> {
    let stored: Option<Seq> = txn
        .conn
        .prepare_cached("SELECT seq FROM messages WHERE chan = ?1 AND id = ?2")?
        .query_row((ch.chan, &message.id), |r| r.get(0))
        .optional()?;
    if stored == Some(seq) {
        txn.conn
            .prepare_cached(
                "INSERT INTO inbox_claims (chan, recipient, seq, state, due, attempts) \
                 VALUES (?1, ?2, ?3, 0, 0, 0) ON CONFLICT (chan, recipient, seq) \
                 DO UPDATE SET state = 0, due = 0, attempts = 0",
            )?
            .execute((ch.chan, recipient, int(seq)))?;
        return Ok(None);
    }
    message
        .recipient_id
        .get_or_insert_with(|| recipient.to_owned());
    Ok(Some(message))
}

/// The claim counts summed over every inbox (see `ClaimQueue::stats`). Counts each
/// inbox's unscanned messages: an admin view, not a hot path.
pub(crate) fn stats(
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    now: u64,
) -> Db<ClaimStats> {
    claim_rows::maintain(&Inboxes, txn, ch, policy, now)?;
    let conn = txn.conn;
    let by_state = |state: i64| -> Db<u64> {
        conn.prepare_cached(
            "SELECT count(*) FROM inbox_claims c JOIN messages m \
             ON m.chan = c.chan AND m.seq = c.seq WHERE c.chan = ?1 AND c.state = ?2",
        )?
        .query_row((ch.chan, state), |r| r.get(0))
    };
    let (ready, delayed, in_flight) = (by_state(READY)?, by_state(DELAYED)?, by_state(IN_FLIGHT)?);
    let unscanned: u64 = conn
        .prepare_cached(
            "SELECT count(*) FROM inboxes i JOIN messages m ON m.chan = i.chan \
             AND m.seq > i.scanned AND m.state IS NULL \
             AND (m.recipient_id = i.recipient OR m.recipient_id IS NULL) WHERE i.chan = ?1",
        )?
        .query_row([ch.chan], |r| r.get(0))?;
    let c = *txn.counts(ch);
    Ok(ClaimStats {
        backlog: ready + delayed + unscanned,
        delayed,
        in_flight,
        acknowledged: c.acknowledged,
        dead_lettered: c.dead,
    })
}
