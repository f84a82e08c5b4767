//! Many callers at once on a durable (`Synchronous::Full`) work queue: the writer commits
//! the next batches while the flusher syncs the last ones, so each transaction must start
//! from the writer's own last commit, not from what has been published. Sequences stay
//! unique and gapless, the feed announces them in order, every message is claimed once,
//! and the counters are right, also after reopening the file.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sssn::message::{ChannelMessage, Content};
use sssn::policy::ClaimPolicy;
use sssn::store::{ChannelSpec, Settle, Store};
use sssn_sqlite::SqliteStore;

const PRODUCERS: usize = 6;
const EACH: usize = 150;
const CONSUMERS: usize = 3;
const N: usize = PRODUCERS * EACH;

fn spec() -> ChannelSpec {
    let mut spec = ChannelSpec::with_claims(
        "jobs",
        ClaimPolicy {
            lease: Duration::from_secs(60),
            max_deliveries: None,
        },
    );
    spec.feed_capacity = 2 * N;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_and_consumers_see_one_consistent_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = SqliteStore::open(&path).unwrap();
    let storage = store.open_channel(&spec()).await.unwrap();
    let log = storage.log.clone();
    let queue = storage.claims.clone().unwrap();
    let mut feed = log.feed();

    let mut producers = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let log = log.clone();
        producers.spawn(async move {
            let mut seqs = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let content = Content::data(&(p * EACH + i)).unwrap();
                let entry = log
                    .append_one(ChannelMessage::new(format!("p{p}"), content))
                    .await
                    .unwrap();
                seqs.push(entry.seq);
            }
            seqs
        });
    }
    let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..CONSUMERS {
        let (queue, taken) = (queue.clone(), taken.clone());
        consumers.spawn(async move {
            let me = format!("c{c}");
            let mut held: Vec<String> = Vec::new();
            loop {
                let ids: Vec<&str> = held.iter().map(String::as_str).collect();
                let (settled, next) = queue
                    .settle_and_claim(&me, &ids, Settle::Ack, 10)
                    .await
                    .unwrap();
                assert_eq!(settled.done.len(), held.len(), "every ack lands");
                let all_taken = {
                    let mut t = taken.lock().unwrap();
                    t.extend(next.iter().map(|c| c.seq));
                    t.len() == N
                };
                if all_taken && next.is_empty() {
                    return;
                }
                held = next.iter().map(|c| c.message.id.clone()).collect();
                if held.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
    }

    let mut appended = Vec::new();
    while let Some(seqs) = producers.join_next().await {
        appended.extend(seqs.unwrap());
    }
    let all: BTreeSet<u64> = appended.iter().copied().collect();
    assert_eq!(all.len(), N, "each append got its own sequence");
    assert_eq!(all, (1..=N as u64).collect(), "no gaps");
    let mut announced = 0;
    for _ in 0..N {
        let entry = tokio::time::timeout(Duration::from_secs(10), feed.recv())
            .await
            .expect("the feed announces every append")
            .unwrap();
        assert_eq!(entry.seq, announced + 1, "announced in sequence order");
        announced = entry.seq;
    }

    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(r) = consumers.join_next().await {
            r.unwrap();
        }
    })
    .await
    .expect("the consumers drain the queue");
    let mut taken = taken.lock().unwrap().clone();
    taken.sort_unstable();
    assert_eq!(
        taken,
        (1..=N as u64).collect::<Vec<_>>(),
        "each claimed once"
    );

    let check = |log: &Arc<dyn sssn::store::Log>, queue: &Arc<dyn sssn::store::ClaimQueue>| {
        let (log, queue) = (log.clone(), queue.clone());
        async move {
            let stats = log.stats().await.unwrap();
            assert_eq!(stats.head_seq, N as u64);
            assert_eq!(stats.stored, 0);
            assert_eq!(log.head(), N as u64);
            let claims = queue.stats().await.unwrap();
            assert_eq!(claims.acknowledged, N as u64);
            assert_eq!((claims.backlog, claims.in_flight), (0, 0));
        }
    };
    check(&log, &queue).await;
    drop((log, queue, storage));
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let storage = store.open_channel(&spec()).await.unwrap();
    check(&storage.log, &storage.claims.clone().unwrap()).await;
}
