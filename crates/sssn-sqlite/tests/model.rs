//! `SqliteStore` against the reference: random histories of every store operation run on
//! the memory store and on SQLite side by side, with paused time (leases, delays and
//! retention are deterministic), and every answer, stats snapshot and feed delivery must
//! be equal. Now and then the SQLite store is closed and reopened from its file in the
//! middle of a history, which checks that everything the memory store keeps in memory
//! (cursors, claims and their deadlines, delays, attempts, dead letters, counters, head)
//! is restored exactly.

use std::sync::Arc;
use std::time::Duration;

use sssn::ChannelKind;
use sssn::message::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::{
    ChannelSpec, ChannelStorage, ClaimQueue, Entry, Log, MemoryStore, ReadFilter, ReadFrom, Settle,
    Store,
};
use sssn_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use tokio::sync::broadcast;

/// SplitMix64: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Sides {
    memory: Arc<dyn Log>,
    sqlite: Arc<dyn Log>,
    /// The claim queues, on channels with claims.
    queues: Option<(Arc<dyn ClaimQueue>, Arc<dyn ClaimQueue>)>,
    memory_feed: broadcast::Receiver<Entry>,
    sqlite_feed: broadcast::Receiver<Entry>,
    store: Option<SqliteStore>,
}

fn open_sqlite(path: &std::path::Path) -> SqliteStore {
    SqliteOptions::new()
        .synchronous(Synchronous::Normal)
        .open(path)
        .expect("open")
}

fn drain(rx: &mut broadcast::Receiver<Entry>) -> Vec<Entry> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

/// Compares two outcomes; errors compare by kind.
macro_rules! same {
    ($ctx:expr, $m:expr, $s:expr) => {{
        let (m, s) = ($m, $s);
        match (&m, &s) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", $ctx),
            (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "{}: {a} / {b}", $ctx),
            _ => panic!("{}: memory {:?} but sqlite {:?}", $ctx, m, s),
        }
    }};
}

/// Both claim queues, or none (a log-only channel has no claim surface in either store).
fn pair(
    memory: &ChannelStorage,
    sqlite: &ChannelStorage,
) -> Option<(Arc<dyn ClaimQueue>, Arc<dyn ClaimQueue>)> {
    match (&memory.claims, &sqlite.claims) {
        (Some(m), Some(q)) => Some((m.clone(), q.clone())),
        (None, None) => None,
        _ => panic!("the stores disagree on whether the channel has claims"),
    }
}

async fn history(seed: u64, kind: ChannelKind, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    let mut spec = ChannelSpec::log(format!("c-{seed}"));
    if kind.claims() {
        spec.claims = Some(ClaimPolicy {
            lease: Duration::from_millis(1000),
            max_deliveries: Some(3),
        });
    }
    spec.feed_capacity = 1 << 16;
    let memory = MemoryStore::new().open_channel(&spec).await.unwrap();
    let store = open_sqlite(&path);
    let sqlite = store.open_channel(&spec).await.unwrap();
    let queues = pair(&memory, &sqlite);
    assert_eq!(
        queues.is_some(),
        kind.claims(),
        "a claim queue exactly with claims"
    );
    let (memory_log, sqlite_log) = (memory.log.clone(), sqlite.log.clone());
    // Nothing but `Sides` may hold the SQLite channel: reopening needs the file closed.
    drop((memory, sqlite));
    let mut s = Sides {
        memory_feed: memory_log.feed(),
        sqlite_feed: sqlite_log.feed(),
        memory: memory_log,
        sqlite: sqlite_log,
        queues,
        store: Some(store),
    };
    let mut rng = Rng(seed);
    let mut known: Vec<String> = Vec::new();
    let mut next_id = 0u64;
    let mut marks: Vec<f64> = Vec::new();
    let readers = ["r1", "r2", "alice"];
    let claimers = ["w1", "w2"];
    let recipients = [None, Some("alice"), Some("bob")];
    for step in 0..steps {
        let op = rng.below(100);
        let ctx = format!("seed {seed} kind {kind:?} step {step} op {op}");
        let ids = |rng: &mut Rng, known: &[String]| -> Vec<String> {
            let n = 1 + rng.below(2);
            (0..n)
                .map(|_| {
                    if known.is_empty() || rng.chance(10) {
                        "unknown".to_owned()
                    } else {
                        rng.pick(known).clone()
                    }
                })
                .collect()
        };
        match op {
            0..=19 => {
                let n = 1 + rng.below(3);
                let mut batch = Vec::new();
                for _ in 0..n {
                    let mut m =
                        ChannelMessage::with_data("w", &serde_json::json!({"n": next_id})).unwrap();
                    if !known.is_empty() && rng.chance(15) {
                        m.id = rng.pick(&known).clone();
                    } else {
                        m.id = format!("m{next_id}");
                        next_id += 1;
                        known.push(m.id.clone());
                    }
                    if let Some(to) = rng.pick(&recipients) {
                        m = m.recipient(*to);
                    }
                    if rng.chance(30) {
                        m = m.meta("k", rng.below(5)).correlation_id("c");
                    }
                    batch.push(m);
                }
                same!(
                    ctx,
                    s.memory.append(batch.clone()).await,
                    s.sqlite.append(batch).await
                );
            }
            20..=31 => {
                let reader = *rng.pick(&readers);
                let from = match rng.below(10) {
                    0..=6 => ReadFrom::Cursor,
                    7 | 8 => ReadFrom::AfterSeq(rng.below(s.memory.head() + 3)),
                    _ => ReadFrom::AfterId(if known.is_empty() || rng.chance(20) {
                        "unknown".to_owned()
                    } else {
                        rng.pick(&known).clone()
                    }),
                };
                let limit = rng.below(5) as usize;
                let filter = ReadFilter {
                    recipient: (kind == ChannelKind::Mailbox).then(|| reader.to_owned()),
                };
                same!(
                    ctx,
                    s.memory.read(reader, from.clone(), limit, &filter).await,
                    s.sqlite.read(reader, from, limit, &filter).await
                );
            }
            32..=35 => {
                let after = rng.below(s.memory.head() + 2);
                let limit = rng.below(6) as usize;
                same!(
                    ctx,
                    s.memory.range(after, limit).await,
                    s.sqlite.range(after, limit).await
                );
            }
            36..=47 => {
                let who = *rng.pick(&claimers);
                let limit = rng.below(4) as usize;
                if let Some((m, q)) = &s.queues {
                    same!(ctx, m.claim(who, limit).await, q.claim(who, limit).await);
                }
            }
            48..=55 => {
                let who = *rng.pick(&claimers);
                let ids = ids(&mut rng, &known);
                settle(&ctx, &s, who, &ids, Settle::Ack).await;
            }
            56..=61 => {
                let who = *rng.pick(&claimers);
                let ids = ids(&mut rng, &known);
                let delay = match rng.below(3) {
                    0 => None,
                    1 => Some(Duration::ZERO),
                    _ => Some(Duration::from_millis(100 + rng.below(1900))),
                };
                settle(&ctx, &s, who, &ids, Settle::Nack { delay }).await;
            }
            62..=63 => {
                let who = *rng.pick(&claimers);
                let ids = ids(&mut rng, &known);
                let how = Settle::Reject {
                    reason: "bad".into(),
                };
                settle(&ctx, &s, who, &ids, how).await;
            }
            64..=66 => {
                let who = *rng.pick(&claimers);
                let ids = ids(&mut rng, &known);
                settle(&ctx, &s, who, &ids, Settle::Extend).await;
            }
            67..=68 => {
                if let Some((m, q)) = &s.queues {
                    same!(ctx, m.reclaim_expired().await, q.reclaim_expired().await);
                }
            }
            69..=78 => {
                if rng.chance(25) {
                    // A quiet gap: everything stored so far is over 2 s older than
                    // anything stored later, a clean cut for age-based eviction.
                    marks.push(sssn::clock::now_secs());
                    tokio::time::advance(Duration::from_millis(2000 + rng.below(500))).await;
                } else {
                    tokio::time::advance(Duration::from_millis(rng.below(1500))).await;
                }
            }
            79..=80 => {
                let limit = rng.below(10) as usize;
                if let Some((m, q)) = &s.queues {
                    same!(
                        ctx,
                        m.dead_letters(limit).await,
                        q.dead_letters(limit).await
                    );
                }
            }
            81 => {
                let ids = ids(&mut rng, &known);
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                if let Some((m, q)) = &s.queues {
                    same!(ctx, m.redrive(&ids).await, q.redrive(&ids).await);
                }
            }
            82..=83 => {
                // Cut one second into a quiet gap, so that how finely a store keeps arrival
                // times (milliseconds, whole seconds) does not matter.
                let before = (!marks.is_empty() && rng.chance(60)).then(|| *rng.pick(&marks) + 1.0);
                let max = rng.chance(50).then(|| rng.below(8) as usize);
                same!(
                    ctx,
                    s.memory.evict(before, max).await,
                    s.sqlite.evict(before, max).await
                );
            }
            84..=85 => {
                let ids = ids(&mut rng, &known);
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                same!(
                    ctx,
                    s.memory.remove(&ids).await,
                    s.sqlite.remove(&ids).await
                );
            }
            86 => {
                if rng.chance(30) {
                    same!(ctx, s.memory.clear().await, s.sqlite.clear().await);
                }
            }
            87..=95 => {
                stats(&ctx, &s).await;
            }
            _ => {
                // Close the file and open it again: nothing may change.
                drop(std::mem::replace(&mut s.sqlite, s.memory.clone()));
                let memory_queue = s.queues.take().map(|(m, _)| m);
                drop(s.store.take());
                let store = open_sqlite(&path);
                let ChannelStorage { log, claims } = store.open_channel(&spec).await.unwrap();
                s.queues = memory_queue.zip(claims);
                s.sqlite = log;
                s.sqlite_feed = s.sqlite.feed();
                s.store = Some(store);
                assert_eq!(s.memory.head(), s.sqlite.head(), "{ctx}: head after reopen");
            }
        }
        assert_eq!(s.memory.head(), s.sqlite.head(), "{ctx}: head");
        assert_eq!(
            drain(&mut s.memory_feed),
            drain(&mut s.sqlite_feed),
            "{ctx}: feed"
        );
    }
    stats("final stats", &s).await;
}

/// Settles on both sides (on channels with claims).
async fn settle(ctx: &str, s: &Sides, who: &str, ids: &[String], how: Settle) {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    if let Some((m, q)) = &s.queues {
        same!(
            ctx,
            m.settle(who, &ids, how.clone()).await,
            q.settle(who, &ids, how).await
        );
    }
}

/// Compares the log's and the claim queue's snapshots.
async fn stats(ctx: &str, s: &Sides) {
    same!(ctx, s.memory.stats().await, s.sqlite.stats().await);
    if let Some((m, q)) = &s.queues {
        same!(ctx, m.stats().await, q.stats().await);
    }
}

#[tokio::test(start_paused = true)]
async fn work_queue_histories_match_the_memory_store() {
    for seed in 0..12 {
        history(seed, ChannelKind::WorkQueue, 400).await;
    }
}

#[tokio::test(start_paused = true)]
async fn passthrough_histories_match_the_memory_store() {
    for seed in 100..106 {
        history(seed, ChannelKind::Passthrough, 400).await;
    }
}

#[tokio::test(start_paused = true)]
async fn mailbox_histories_match_the_memory_store() {
    for seed in 200..206 {
        history(seed, ChannelKind::Mailbox, 400).await;
    }
}
