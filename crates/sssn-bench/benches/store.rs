//! Criterion micro-benchmarks of the innermost functions: memory-store append, claim and
//! ack of one message, and JSON encode/decode of a [`ChannelMessage`].
//!
//! ```text
//! cargo bench -p sssn-bench --bench store
//! ```
//!
//! The store operations are async but the memory store never suspends, so each
//! measurement drives `iters` calls inside one `block_on` of a current-thread runtime.

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use sssn::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::{ChannelSpec, ChannelStorage, MemoryStore, Settle, Store};
use sssn_bench::scenarios::record;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn message(i: usize) -> ChannelMessage {
    ChannelMessage::with_data("producer", &record(i)).expect("message")
}

/// A fresh work-queue channel store on a fresh memory store.
async fn queue(rt_id: usize) -> ChannelStorage {
    let spec = ChannelSpec::with_claims(format!("bench-{rt_id}"), ClaimPolicy::default());
    MemoryStore::new()
        .open_channel(&spec)
        .await
        .expect("open channel")
}

/// A queue holding `n` messages; their ids.
async fn filled(n: usize) -> (ChannelStorage, Vec<String>) {
    let q = queue(n).await;
    let messages: Vec<ChannelMessage> = (0..n).map(message).collect();
    let ids = messages.iter().map(|m| m.id.clone()).collect();
    q.log.append(messages).await.expect("append");
    (q, ids)
}

fn store(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("memory_store");

    g.bench_function("append_1", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let q = queue(0).await;
                let messages: Vec<ChannelMessage> = (0..iters as usize).map(message).collect();
                let t = Instant::now();
                for m in messages {
                    std::hint::black_box(q.log.append(vec![m]).await.expect("append"));
                }
                t.elapsed()
            })
        });
    });

    g.bench_function("claim_1", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (q, _) = filled(iters as usize).await;
                let queue = q.claims.as_ref().expect("claims");
                let t = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(queue.claim("worker", 1).await.expect("claim"));
                }
                t.elapsed()
            })
        });
    });

    g.bench_function("ack_1", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (q, ids) = filled(iters as usize).await;
                let queue = q.claims.as_ref().expect("claims");
                let claimed = queue.claim("worker", iters as usize).await.expect("claim");
                assert_eq!(claimed.len(), iters as usize);
                let t = Instant::now();
                for id in &ids {
                    let s = queue
                        .settle("worker", &[id.as_str()], Settle::Ack)
                        .await
                        .expect("ack");
                    let _ = std::hint::black_box(s);
                }
                let elapsed = t.elapsed();
                assert_eq!(q.log.stats().await.expect("stats").stored, 0);
                elapsed
            })
        });
    });
    g.finish();
}

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel_message_json");
    let m = message(7);
    let text = m.to_json();
    g.bench_function("encode", |b| b.iter(|| std::hint::black_box(&m).to_json()));
    g.bench_function("decode", |b| {
        b.iter(|| ChannelMessage::from_json(std::hint::black_box(&text)).expect("decode"));
    });
    g.finish();
}

criterion_group!(benches, store, json);
criterion_main!(benches);
