//! `sqlite`: the durable store (`sssn-sqlite`, WAL, `synchronous = FULL`, files in the
//! system's temporary directory).
//!
//! * **8 writers**: 8 tasks write small JSON messages to one work queue concurrently, each
//!   waiting for its write to be durable before the next; once one message per call
//!   (group commit can put at most 8 in one commit), once 100 per call (`write_batch`).
//!   Baseline: a raw rusqlite loop on one thread inserting the same rows (messages built
//!   the same way, same table layout and indexes, same pragmas) in transactions of the
//!   largest size the group commit can form: 8 rows, or 800 rows.
//! * **cycle**: 8 writers (one message per call) and, at the same time, 3 consumers
//!   claiming 10 and acking each batch; messages/s until all are acknowledged. Reference:
//!   the same cycle on the memory store.
//! * **restart**: a work queue file holding 1,000,000 messages (filled through the store
//!   in batches of 1,000) is opened again; the figure is the time from `SqliteStore::open`
//!   to the first claim served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rusqlite::Connection;
use sssn::channel::WorkQueueChannel;
use sssn::store::Store;
use sssn::{ChannelMessage, Payload};
use sssn_sqlite::SqliteStore;

use super::{Config, label, paired, progress, record, secs};
use crate::report::{Better, Figure, Goal, Outcome};

const WRITERS: usize = 8;
const CONSUMERS: usize = 3;
const CLAIM: usize = 10;

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let tmp = tempfile::Builder::new()
        .prefix("sssn-bench-sqlite")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = tmp.path().to_owned();
    let mut out = Vec::new();
    let files = AtomicUsize::new(0);
    let next_file = |dir: &Path| {
        dir.join(format!(
            "bench-{}.db",
            files.fetch_add(1, Ordering::Relaxed)
        ))
    };

    for (per_call, total) in [(1, cfg.size(4_000, 800)), (100, cfg.size(80_000, 16_000))] {
        let rows_per_txn = WRITERS * per_call;
        let (ours, base) = paired(
            "sqlite",
            cfg.runs,
            || writers(next_file(&dir), total, per_call),
            || raw_inserts(next_file(&dir), total, rows_per_txn),
        )
        .await?;
        let name = if per_call == 1 {
            "sqlite/8-writers".to_owned()
        } else {
            format!("sqlite/8-writers-batch{per_call}")
        };
        out.push(
            Figure::new(name, "msgs/s", Better::Higher)
                .ours(ours)
                .baseline(
                    format!("raw rusqlite, same rows, {rows_per_txn} rows per transaction, FULL"),
                    base,
                )
                .goal(Goal::AtLeast(100_000.0))
                .goal(Goal::RatioAtLeast(0.3))
                .note(format!(
                    "{WRITERS} concurrent writers, {per_call} message(s) per call, {total} messages, synchronous=FULL"
                ))
                .into(),
        );
    }

    let n = cfg.size(8_000, 1_600);
    let (ours, base) = paired(
        "sqlite",
        cfg.runs,
        || {
            let path = next_file(&dir);
            async move {
                let store = Arc::new(SqliteStore::open(&path)?);
                cycle(Some(store), n).await
            }
        },
        || cycle(None, n),
    )
    .await?;
    out.push(
        Figure::new("sqlite/cycle", "msgs/s", Better::Higher)
            .ours(ours)
            .baseline("the same cycle on the memory store", base)
            .goal(Goal::AtLeast(20_000.0))
            .note(format!(
                "{WRITERS} writers (1 message per call) while {CONSUMERS} consumers claim {CLAIM} and ack, {n} messages, until all are acknowledged"
            ))
            .into(),
    );

    let size = cfg.size(1_000_000, 100_000);
    let path = next_file(&dir);
    progress(
        "sqlite",
        format_args!("filling a channel with {size} messages…"),
    );
    let t = Instant::now();
    fill(&path, size).await?;
    progress(
        "sqlite",
        format_args!("…done in {:.1} s", t.elapsed().as_secs_f64()),
    );
    let mut restarts = Vec::new();
    for i in 0..cfg.runs {
        restarts.push(restart(&path, size).await?);
        progress(
            "sqlite",
            format_args!("restart {}/{}: {:.3} s", i + 1, cfg.runs, restarts[i]),
        );
    }
    out.push(
        Figure::new(
            format!("sqlite/restart-{}", label(size)),
            "s",
            Better::Lower,
        )
        .ours(restarts)
        .goal(Goal::AtMost(2.0))
        .note(format!(
            "SqliteStore::open + channel start + first claim on a file holding {size} messages"
        ))
        .into(),
    );
    drop(tmp);
    Ok(out)
}

fn queue(store: Arc<dyn Store>) -> WorkQueueChannel {
    WorkQueueChannel::new("jobs")
        .claim_timeout(Duration::from_secs(60))
        .store(store)
        .build()
}

/// 8 writers, `per_call` messages per call, `total` in all; msgs/s.
async fn writers(path: PathBuf, total: usize, per_call: usize) -> anyhow::Result<f64> {
    let store = Arc::new(SqliteStore::open(&path)?);
    let q = queue(store);
    q.start().await?;
    let per_writer = total / WRITERS;
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let q = q.clone();
        tasks.spawn(async move {
            let me = format!("writer-{w}");
            let mut i = 0;
            while i < per_writer {
                let n = per_call.min(per_writer - i);
                if n == 1 {
                    q.write(me.as_str(), &record(i)).await?;
                } else {
                    let batch = (i..i + n).map(|j| Payload::Data(record(j))).collect();
                    q.write_batch(me.as_str(), batch).await?;
                }
                i += n;
            }
            Ok::<_, sssn::Error>(i)
        });
    }
    let mut written = 0;
    while let Some(r) = tasks.join_next().await {
        written += r.context("writer task")??;
    }
    let elapsed = secs(t);
    q.stop().await;
    drop(q);
    let _ = std::fs::remove_file(&path);
    ensure!(written == per_writer * WRITERS, "wrote {written}");
    Ok(written as f64 / elapsed)
}

/// The raw loop: the same rows into the same table layout, `per_txn` rows per
/// transaction, on one thread; rows/s.
async fn raw_inserts(path: PathBuf, total: usize, per_txn: usize) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.execute_batch(MESSAGES_TABLE)?;
        let t = Instant::now();
        let mut seq = 0i64;
        while (seq as usize) < total {
            let n = per_txn.min(total - seq as usize);
            let txn = conn.transaction()?;
            {
                let mut insert = txn.prepare_cached(
                    "INSERT INTO messages (chan, seq, id, timestamp, sender_id, content, metadata, \
                     correlation_id, reply_to, recipient_id, stored_at, state) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                     ON CONFLICT (chan, id) DO NOTHING",
                )?;
                for _ in 0..n {
                    seq += 1;
                    let m = ChannelMessage::with_data("writer", &record(seq as usize))?;
                    insert.execute((
                        1i64,
                        seq,
                        &m.id,
                        m.timestamp,
                        &m.sender_id,
                        m.content.json(),
                        None::<String>,
                        &m.correlation_id,
                        &m.reply_to,
                        &m.recipient_id,
                        sssn::clock::now_millis() as i64,
                        0i64,
                    ))?;
                }
            }
            txn.commit()?;
        }
        let elapsed = secs(t);
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        anyhow::Ok(total as f64 / elapsed)
    })
    .await
    .context("raw insert thread")?
}

/// The layout of sssn-sqlite's `messages` table and its indexes.
const MESSAGES_TABLE: &str = "
CREATE TABLE messages (
    chan INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, timestamp REAL NOT NULL,
    sender_id TEXT NOT NULL, content TEXT NOT NULL, metadata TEXT, correlation_id TEXT,
    reply_to TEXT, recipient_id TEXT, stored_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, state INTEGER, due INTEGER NOT NULL DEFAULT 0,
    claimer TEXT
);
CREATE UNIQUE INDEX messages_seq ON messages (chan, seq);
CREATE UNIQUE INDEX messages_id ON messages (chan, id);
CREATE INDEX messages_claimable ON messages (chan, state, due, seq) WHERE state IS NOT NULL;
";

/// Writers and consumers at the same time until `n` messages are acknowledged; msgs/s.
/// `store: None` runs on the memory store.
async fn cycle(store: Option<Arc<SqliteStore>>, n: usize) -> anyhow::Result<f64> {
    let q = match store {
        Some(s) => queue(s),
        None => WorkQueueChannel::new("jobs").build(),
    };
    q.start().await?;
    let per_writer = n / WRITERS;
    let n = per_writer * WRITERS;
    let acked = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let q = q.clone();
        tasks.spawn(async move {
            let me = format!("writer-{w}");
            for i in 0..per_writer {
                q.write(me.as_str(), &record(i)).await?;
            }
            Ok::<_, sssn::Error>(())
        });
    }
    for c in 0..CONSUMERS {
        let q = q.clone();
        let acked = acked.clone();
        tasks.spawn(async move {
            let me = format!("consumer-{c}");
            while acked.load(Ordering::Relaxed) < n {
                let claimed = q.claim(me.as_str(), CLAIM).await?;
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let ids: Vec<String> = claimed.iter().map(|c| c.message.id.clone()).collect();
                acked.fetch_add(
                    q.ack(me.as_str(), &ids).await?.done.len(),
                    Ordering::Relaxed,
                );
            }
            Ok::<_, sssn::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("cycle task")??;
    }
    let elapsed = secs(t);
    q.stop().await;
    ensure!(acked.load(Ordering::Relaxed) == n, "acked {acked:?} of {n}");
    Ok(n as f64 / elapsed)
}

/// Fills a fresh file with `size` messages in one work queue.
async fn fill(path: &Path, size: usize) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(path)?);
    let q = queue(store);
    q.start().await?;
    let mut done = 0;
    while done < size {
        let n = 1_000.min(size - done);
        let batch = (done..done + n).map(|i| Payload::Data(record(i))).collect();
        q.write_batch("producer", batch).await?;
        done += n;
        if done.is_multiple_of(200_000) {
            progress("sqlite", format_args!("{done} messages written"));
        }
    }
    q.stop().await;
    Ok(())
}

/// Opens the filled file again and serves one claim; seconds. The claim is released
/// afterwards so every restart sees the same state.
async fn restart(path: &Path, size: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    let store = Arc::new(SqliteStore::open(path)?);
    let q = queue(store);
    q.start().await?;
    let claimed = q.claim("restarter", 1).await?;
    let elapsed = secs(t);
    ensure!(claimed.len() == 1, "nothing to claim after the restart");
    q.nack("restarter", &claimed[0]).await?.into_result()?;
    let stored = q.stats().await?.stored;
    ensure!(
        stored == size as u64,
        "{stored} of {size} messages after the restart"
    );
    q.stop().await;
    Ok(elapsed)
}
