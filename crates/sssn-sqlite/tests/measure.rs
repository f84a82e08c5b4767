//! Throughput and reopen figures for the closing notes of the SQLite store. Ignored by
//! default (they measure, they do not verify); run in release mode:
//!
//! ```text
//! cargo test --release -p sssn-sqlite --test measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Each prints its figure next to the baseline measured in the same run. The serious
//! benchmark suite lives in the bench crate.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sssn::ChannelKind;
use sssn::message::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::{ChannelSpec, ChannelStorage, Settle, Store};
use sssn_sqlite::{SqliteStore, Synchronous};

fn message(n: u64) -> ChannelMessage {
    let mut m = ChannelMessage::with_data(
        "bench",
        &serde_json::json!({"n": n, "payload": "x".repeat(120)}),
    )
    .unwrap();
    m.id = format!("m{n:012}");
    m
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(path: &Path, sync: Synchronous, kind: ChannelKind) -> (SqliteStore, ChannelStorage) {
    let store = sssn_sqlite::SqliteOptions::new()
        .synchronous(sync)
        .open(path)
        .unwrap();
    let mut spec = ChannelSpec::log("bench");
    if kind.claims() {
        spec.claims = Some(ClaimPolicy::with_lease(Duration::from_secs(60)));
    }
    let ch = store.open_channel(&spec).await.unwrap();
    (store, ch)
}

fn refs(ids: &[String]) -> Vec<&str> {
    ids.iter().map(String::as_str).collect()
}

/// How long each measurement runs.
const RUN: Duration = Duration::from_secs(3);

/// `writers` tasks append batches of `batch` messages for [`RUN`]; messages per second.
fn store_writes(sync: Synchronous, writers: u64, batch: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    runtime().block_on(async {
        let (_store, ch) = open(&path, sync, ChannelKind::Broadcast).await;
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let ch = ch.clone();
                tokio::spawn(async move {
                    let mut n = w << 40;
                    let first = n;
                    while start.elapsed() < RUN {
                        let msgs: Vec<_> = (n..n + batch).map(message).collect();
                        n += batch;
                        ch.log.append(msgs).await.unwrap();
                    }
                    n - first
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total as f64 / start.elapsed().as_secs_f64()
    })
}

/// The same rows, straight into the same schema with rusqlite, `batch` rows a commit,
/// for [`RUN`]; rows per second.
fn raw_writes(sync: Synchronous, batch: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.db");
    runtime().block_on(async {
        open(&path, sync, ChannelKind::Broadcast).await;
    });
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )
    .unwrap();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO messages (chan, seq, id, timestamp, sender_id, content, \
                     metadata, correlation_id, reply_to, recipient_id, stored_at, state) \
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, NULL, ?6, NULL)",
                )
                .unwrap();
            for _ in 0..batch {
                n += 1;
                let m = message(n);
                insert
                    .execute((
                        n as i64,
                        &m.id,
                        m.timestamp,
                        &m.sender_id,
                        m.content.json(),
                        n as i64,
                    ))
                    .unwrap();
            }
        }
        conn.execute(
            "UPDATE channels SET head = ?1, stored = ?1 WHERE chan = 1",
            [n as i64],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn runs(f: impl Fn() -> f64) -> (f64, Vec<f64>) {
    let all: Vec<f64> = (0..3).map(|_| f()).collect();
    (median(all.clone()), all)
}

#[test]
#[ignore = "measurement; run in release mode"]
fn durable_writes_from_8_writers_vs_raw_rusqlite() {
    for batch in [1, 10, 100] {
        let (store, all) = runs(|| store_writes(Synchronous::Full, 8, batch));
        println!(
            "store, synchronous=FULL, 8 writers x append({batch}): median {store:.0} msg/s {all:.0?}"
        );
        let (raw, all) = runs(|| raw_writes(Synchronous::Full, batch));
        println!(
            "raw rusqlite, synchronous=FULL, {batch} rows/commit: median {raw:.0} rows/s {all:.0?}; store/raw {:.2}",
            store / raw
        );
        let group = (8 * batch).min(512);
        let (raw8, all) = runs(|| raw_writes(Synchronous::Full, group));
        println!(
            "raw rusqlite, synchronous=FULL, {group} rows/commit (8 appends grouped): median {raw8:.0} rows/s {all:.0?}; store/raw {:.2}",
            store / raw8
        );
    }
}

#[test]
#[ignore = "measurement; run in release mode"]
fn writes_without_fsync_vs_raw_rusqlite() {
    // synchronous=NORMAL: what the layer itself costs when commits are cheap.
    for batch in [1, 100] {
        let (store, all) = runs(|| store_writes(Synchronous::Normal, 8, batch));
        println!(
            "store, synchronous=NORMAL, 8 writers x append({batch}): median {store:.0} msg/s {all:.0?}"
        );
        let group = (8 * batch).min(512);
        let (raw, all) = runs(|| raw_writes(Synchronous::Normal, group));
        println!(
            "raw rusqlite, synchronous=NORMAL, {group} rows/commit: median {raw:.0} rows/s {all:.0?}; store/raw {:.2}",
            store / raw
        );
    }
}

/// For [`RUN`], producers append batches of `batch` (keeping the backlog under 10,000)
/// while consumers claim up to `batch` and ack them all; acknowledged messages per second.
fn cycles(producers: u64, consumers: u64, batch: u64) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    runtime().block_on(async {
        let (_store, ch) = open(&path, Synchronous::Full, ChannelKind::WorkQueue).await;
        let written = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..producers {
            let (ch, written, acked) = (ch.clone(), written.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = p << 40;
                while start.elapsed() < RUN {
                    if written.load(Relaxed) > acked.load(Relaxed) + 10_000 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    let msgs: Vec<_> = (n..n + batch).map(message).collect();
                    n += batch;
                    ch.log.append(msgs).await.unwrap();
                    written.fetch_add(batch, Relaxed);
                }
            }));
        }
        for c in 0..consumers {
            let (ch, acked) = (ch.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let me = format!("c{c}");
                while start.elapsed() < RUN {
                    let got = ch
                        .claims
                        .as_ref()
                        .unwrap()
                        .claim(&me, batch as usize)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    let ids: Vec<String> = got.iter().map(|c| c.message.id.clone()).collect();
                    let queue = ch.claims.as_ref().unwrap();
                    let s = queue.settle(&me, &refs(&ids), Settle::Ack).await.unwrap();
                    assert!(s.stale.is_empty());
                    acked.fetch_add(ids.len() as u64, Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        acked.load(Relaxed) as f64 / start.elapsed().as_secs_f64()
    })
}

#[test]
#[ignore = "measurement; run in release mode"]
fn write_claim_ack_cycles() {
    for (p, c, batch) in [(1, 1, 1), (4, 4, 1), (4, 4, 50), (4, 4, 200)] {
        let (rate, all) = runs(|| cycles(p, c, batch));
        println!(
            "write->claim->ack, synchronous=FULL, {p} producers x append({batch}), {c} consumers x claim({batch})+ack: median {rate:.0} msg/s {all:.0?}"
        );
    }
}

#[test]
#[ignore = "measurement; run in release mode"]
fn reopen_a_channel_of_a_million_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let fill = Instant::now();
    runtime().block_on(async {
        let (_store, ch) = open(&path, Synchronous::Normal, ChannelKind::WorkQueue).await;
        for chunk in 0..1000u64 {
            ch.log
                .append((chunk * 1000..(chunk + 1) * 1000).map(message).collect())
                .await
                .unwrap();
        }
    });
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "filled 1,000,000 messages in {:.1} s; file {:.0} MiB",
        fill.elapsed().as_secs_f64(),
        size as f64 / (1 << 20) as f64
    );
    let mut times = Vec::new();
    for _ in 0..3 {
        runtime().block_on(async {
            let start = Instant::now();
            let (store, ch) = open(&path, Synchronous::Full, ChannelKind::WorkQueue).await;
            let opened = start.elapsed();
            let first = ch.claims.as_ref().unwrap().claim("w", 1).await.unwrap();
            let stats = ch.log.stats().await.unwrap();
            let ready = start.elapsed();
            assert_eq!(first.len(), 1);
            assert_eq!(stats.stored, 1_000_000);
            let nack = Settle::Nack { delay: None };
            let queue = ch.claims.as_ref().unwrap();
            let ids = [first[0].message.id.as_str()];
            assert!(queue.settle("w", &ids, nack).await.unwrap().all_done());
            drop(store);
            println!(
                "reopen: store + channel open {:.1} ms; + first claim and stats {:.1} ms",
                opened.as_secs_f64() * 1e3,
                ready.as_secs_f64() * 1e3
            );
            times.push(opened.as_secs_f64() * 1e3);
        });
    }
    println!("reopen median {:.1} ms", median(times));
}

/// Shared reads of 100 messages from random places for [`RUN`], through the read-only
/// connections (`range`) or through the writer thread (`read`, which also stores a
/// cursor), optionally while a writer appends one message at a time; rows per second.
fn reads(via_writer: bool, under_writes: bool) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    runtime().block_on(async {
        let (_store, ch) = open(&path, Synchronous::Full, ChannelKind::Broadcast).await;
        for chunk in 0..100u64 {
            ch.log
                .append((chunk * 1000..(chunk + 1) * 1000).map(message).collect())
                .await
                .unwrap();
        }
        let rows = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        if under_writes {
            let ch = ch.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 1 << 40;
                while start.elapsed() < RUN {
                    ch.log.append(vec![message(n)]).await.unwrap();
                    n += 1;
                }
            }));
        }
        for k in 0..4u64 {
            let (ch, rows) = (ch.clone(), rows.clone());
            tasks.push(tokio::spawn(async move {
                let reader = format!("r{k}");
                let mut x = k * 7919 + 1;
                while start.elapsed() < RUN {
                    x = (x * 48271) % 2_147_483_647;
                    let after = x % 99_900;
                    let got = if via_writer {
                        ch.log
                            .read(
                                &reader,
                                sssn::store::ReadFrom::AfterSeq(after),
                                100,
                                &Default::default(),
                            )
                            .await
                            .unwrap()
                    } else {
                        ch.log.range(after, 100).await.unwrap()
                    };
                    rows.fetch_add(got.len() as u64, Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        rows.load(Relaxed) as f64 / start.elapsed().as_secs_f64()
    })
}

#[test]
#[ignore = "measurement; run in release mode"]
fn reads_on_read_connections_vs_through_the_writer() {
    for under_writes in [false, true] {
        let load = if under_writes {
            "while a writer appends"
        } else {
            "idle"
        };
        let (pool, all) = runs(|| reads(false, under_writes));
        println!(
            "4 readers x range(100) on read connections, {load}: median {pool:.0} rows/s {all:.0?}"
        );
        let (writer, all) = runs(|| reads(true, under_writes));
        println!(
            "4 readers x read(100) through the writer, {load}: median {writer:.0} rows/s {all:.0?}"
        );
    }
}

#[test]
#[ignore = "measurement; run in release mode"]
fn file_size_under_a_steady_flow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steady.db");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    runtime().block_on(async {
        let (_store, ch) = open(&path, Synchronous::Full, ChannelKind::WorkQueue).await;
        // Keep a backlog of about 1,000: append 500, claim and ack the oldest 500.
        ch.log
            .append((0..500).map(message).collect())
            .await
            .unwrap();
        let mut n = 500;
        for round in 1..=2000u64 {
            ch.log
                .append((n..n + 500).map(message).collect())
                .await
                .unwrap();
            n += 500;
            let got = ch.claims.as_ref().unwrap().claim("w", 500).await.unwrap();
            let ids: Vec<String> = got.iter().map(|c| c.message.id.clone()).collect();
            let queue = ch.claims.as_ref().unwrap();
            let settled = queue.settle("w", &refs(&ids), Settle::Ack).await.unwrap();
            assert!(settled.all_done());
            if round % 400 == 0 {
                println!(
                    "{:>9} messages through, backlog {}: database {:.2} MiB, WAL {:.2} MiB",
                    round * 500,
                    ch.log.stats().await.unwrap().stored,
                    len(&path) as f64 / (1 << 20) as f64,
                    len(Path::new(&wal)) as f64 / (1 << 20) as f64
                );
            }
        }
    });
}
