//! History queries (by id, by arrival time, the newest N) on a read-only connection, in
//! parallel with writes. Each is a lookup or a walk on an index: the id index, or the
//! sequence index, where arrival time is found by binary search (messages arrive in
//! sequence order, so `stored_at` grows with `seq`).

use rusqlite::{Connection, OptionalExtension};
use sssn::store::{Entry, ReadFilter, Seq};

use crate::ops::{entry_row, limit, msg_cols};
use crate::writer::int;

type Db<T> = rusqlite::Result<T>;

/// The stored message with this id.
pub(crate) fn get(conn: &Connection, chan: i64, id: &str) -> Db<Option<Entry>> {
    conn.prepare_cached(concat!(
        "SELECT seq, ",
        msg_cols!(),
        " FROM messages WHERE chan = ?1 AND id = ?2"
    ))?
    .query_row((chan, id), entry_row)
    .optional()
}

/// The first stored message at or after `seq`: its sequence and arrival (epoch ms).
fn next_stored(conn: &Connection, chan: i64, seq: Seq) -> Db<Option<(Seq, u64)>> {
    conn.prepare_cached(
        "SELECT seq, stored_at FROM messages WHERE chan = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
    )?
    .query_row((chan, int(seq)), |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// The first sequence that arrived at or after `ms`, by binary search over sequences
/// (O(log n) index lookups); `None` when none did.
fn first_arrived_at_or_after(conn: &Connection, chan: i64, ms: u64) -> Db<Option<Seq>> {
    let Some((first, _)) = next_stored(conn, chan, 0)? else {
        return Ok(None);
    };
    let head: Seq = conn
        .prepare_cached("SELECT max(seq) FROM messages WHERE chan = ?1")?
        .query_row([chan], |r| r.get::<_, Option<Seq>>(0))?
        .unwrap_or(0);
    // The smallest `v` whose next stored message arrived at or after `ms` (or has none):
    // false below the answer, true from it on.
    let (mut lo, mut hi) = (first, head + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match next_stored(conn, chan, mid)? {
            // Every `v` up to `seq` has this same next message: all false.
            Some((seq, at)) if at < ms => lo = seq + 1,
            _ => hi = mid,
        }
    }
    Ok(next_stored(conn, chan, lo)?.map(|(seq, _)| seq))
}

/// Up to `max` messages passing `filter` that arrived between `start` and `end` (epoch
/// seconds, inclusive), in sequence order.
pub(crate) fn arrived_between(
    conn: &Connection,
    chan: i64,
    start: f64,
    end: f64,
    max: usize,
    filter: &ReadFilter,
) -> Db<Vec<Entry>> {
    let start_ms = (start * 1000.0).ceil().max(0.0) as u64;
    let end_ms = (end * 1000.0).floor();
    if max == 0 || end_ms < start_ms as f64 {
        return Ok(Vec::new());
    }
    let Some(from) = first_arrived_at_or_after(conn, chan, start_ms)? else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT seq, ",
        msg_cols!(),
        ", stored_at FROM messages WHERE chan = ?1 AND seq >= ?2 ORDER BY seq"
    ))?;
    let mut rows = stmt.query((chan, int(from)))?;
    let mut out = Vec::new();
    while out.len() < max
        && let Some(row) = rows.next()?
    {
        let at: u64 = row.get(9)?;
        if at as f64 > end_ms {
            break;
        }
        let entry = entry_row(row)?;
        if filter.matches(&entry.message) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The newest `max` messages passing `filter`, newest first.
pub(crate) fn latest(
    conn: &Connection,
    chan: i64,
    max: usize,
    filter: &ReadFilter,
) -> Db<Vec<Entry>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let Some(me) = &filter.recipient else {
        return conn
            .prepare_cached(concat!(
                "SELECT seq, ",
                msg_cols!(),
                " FROM messages WHERE chan = ?1 ORDER BY seq DESC LIMIT ?2"
            ))?
            .query_map((chan, limit(max)), entry_row)?
            .collect();
    };
    // A mailbox reader: its own messages and those addressed to nobody.
    conn.prepare_cached(concat!(
        "SELECT seq, ",
        msg_cols!(),
        " FROM messages WHERE chan = ?1 AND (recipient_id IS NULL OR recipient_id = ?2) \
         ORDER BY seq DESC LIMIT ?3"
    ))?
    .query_map((chan, me, limit(max)), entry_row)?
    .collect()
}
