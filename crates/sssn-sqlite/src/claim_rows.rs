//! The claim steps a shared queue and a mailbox's inboxes have in common.
//!
//! A shared queue keeps its claim state in the `messages` rows themselves; a mailbox keeps
//! one row per recipient and message in `inbox_claims` (see `inbox`). The steps on those
//! rows are the same: delays come due and lapsed leases are released (`maintain`), a
//! release goes back in line or becomes a dead letter as the policy decides (`release`),
//! and a settle checks each id's claim and acts on it (`settle`). They are written once
//! here, over [`ClaimRows`], the row mechanics each side provides.

use std::sync::Arc;

use rusqlite::Connection;
use sssn::policy::{ClaimPolicy, DeadReason, Fate, Release};
use sssn::store::{Settle, Settled};

use crate::channel::ChanShared;
use crate::ops::{DELAYED, READY};
use crate::writer::Txn;

type Db<T> = rusqlite::Result<T>;

/// A live claim as stored.
pub(crate) struct Held<K> {
    /// Its row.
    pub(crate) key: K,
    /// Deliveries so far, this one included.
    pub(crate) attempts: u32,
    /// Who holds it.
    pub(crate) holder: String,
    /// When its lease runs out (epoch ms).
    pub(crate) deadline: u64,
}

/// The rows one kind of claim state lives in, and what each step does to them.
pub(crate) trait ClaimRows {
    /// Names one claim's row.
    type Key;

    /// The two lookups of the earliest due time: of delayed claims, of leases.
    const EARLIEST_DUE_SQL: [&'static str; 2];

    /// Delayed claims whose time has come become ready.
    fn make_due(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, now: u64) -> Db<()>;

    /// The claims whose lease ran out, with their attempts, oldest deadline first.
    fn expired(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        now: u64,
    ) -> Db<Vec<(Self::Key, u32)>>;

    /// The live claim on the message `id` that `claimer` could settle, if any.
    fn held(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        id: &str,
        claimer: &str,
    ) -> Db<Option<Held<Self::Key>>>;

    /// The claim is done: its message is consumed.
    fn ack(&self, txn: &mut Txn<'_>, ch: &Arc<ChanShared>, key: Self::Key) -> Db<()>;

    /// The claim goes back in line, `READY` or `DELAYED` until `due`.
    fn requeue(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        key: Self::Key,
        state: i64,
        due: u64,
    ) -> Db<()>;

    /// The claim's lease now runs out at `deadline`.
    fn extend(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        key: Self::Key,
        deadline: u64,
    ) -> Db<()>;

    /// The claim's message becomes a dead letter.
    fn dead_letter(
        &self,
        txn: &mut Txn<'_>,
        ch: &Arc<ChanShared>,
        key: Self::Key,
        attempts: u32,
        reason: &DeadReason,
        now: u64,
    ) -> Db<()>;
}

/// Delayed claims that are due become ready; lapsed leases are released (the policy
/// requeues or dead-letters them). Returns how many leases were released.
pub(crate) fn maintain<R: ClaimRows>(
    rows: &R,
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    now: u64,
) -> Db<usize> {
    if now < txn.next_due(ch) {
        return Ok(0);
    }
    rows.make_due(txn, ch, now)?;
    let expired = rows.expired(txn, ch, now)?;
    let released = expired.len();
    for (key, attempts) in expired {
        release(
            rows,
            txn,
            ch,
            policy,
            key,
            attempts,
            None,
            Release::LeaseExpired,
            now,
        )?;
    }
    let next = earliest_due(txn.conn, ch.chan, R::EARLIEST_DUE_SQL)?;
    txn.set_next_due(ch, next);
    Ok(released)
}

/// When the next delayed claim comes due or the next lease runs out (`u64::MAX` when
/// none will).
fn earliest_due(conn: &Connection, chan: i64, sql: [&str; 2]) -> Db<u64> {
    let mut earliest = u64::MAX;
    for sql in sql {
        let due: Option<u64> = conn.prepare_cached(sql)?.query_row([chan], |r| r.get(0))?;
        earliest = earliest.min(due.unwrap_or(u64::MAX));
    }
    Ok(earliest)
}

/// Releases a claim: back in line (claimable from `due`) or, as the policy decides, a
/// dead letter.
#[allow(clippy::too_many_arguments)]
fn release<R: ClaimRows>(
    rows: &R,
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    key: R::Key,
    attempts: u32,
    due: Option<u64>,
    why: Release,
    now: u64,
) -> Db<()> {
    if let Fate::DeadLetter(reason) = policy.on_release(attempts, why) {
        return rows.dead_letter(txn, ch, key, attempts, &reason, now);
    }
    let (state, due) = match due {
        Some(due) if due > now => (DELAYED, due),
        _ => (READY, 0),
    };
    if state == DELAYED {
        txn.due_at(ch, due);
    }
    rows.requeue(txn, ch, key, state, due)
}

/// Settles claims `how` (ack, nack, reject, extend): ids the policy lets `claimer` settle
/// are acted on, the rest are stale.
#[allow(clippy::too_many_arguments)]
pub(crate) fn settle<R: ClaimRows>(
    rows: &R,
    txn: &mut Txn<'_>,
    ch: &Arc<ChanShared>,
    policy: &ClaimPolicy,
    claimer: &str,
    ids: &[String],
    how: &Settle,
    now: u64,
) -> Db<Settled> {
    let mut out = Settled::default();
    for id in ids {
        let held = rows
            .held(txn, ch, id, claimer)?
            .filter(|h| ClaimPolicy::may_settle(&h.holder, h.deadline, claimer, now));
        let Some(held) = held else {
            out.stale.push(id.clone());
            continue;
        };
        match how {
            Settle::Ack => {
                rows.ack(txn, ch, held.key)?;
                txn.counts(ch).acknowledged += 1;
            }
            Settle::Nack { delay } => {
                let due = ClaimPolicy::release_due(now, *delay);
                release(
                    rows,
                    txn,
                    ch,
                    policy,
                    held.key,
                    held.attempts,
                    due,
                    Release::Nack,
                    now,
                )?;
            }
            Settle::Reject { reason } => {
                let reason = DeadReason::Rejected(reason.clone());
                rows.dead_letter(txn, ch, held.key, held.attempts, &reason, now)?;
            }
            Settle::Extend => rows.extend(txn, ch, held.key, policy.lease_deadline(now))?,
        }
        out.done.push(id.clone());
    }
    Ok(out)
}
