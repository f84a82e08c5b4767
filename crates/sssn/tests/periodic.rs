//! Periodic channels: the pull loop, backpressure with the data handed back, and drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sssn::channel::{PeriodicChannel, source_fn};
use sssn::{ErrorKind, Payload};

#[tokio::test(start_paused = true)]
async fn drain_ends_even_when_the_source_never_runs_dry() {
    let pulls = Arc::new(AtomicUsize::new(0));
    let p = pulls.clone();
    let source = source_fn(move || {
        p.fetch_add(1, Ordering::SeqCst);
        async { Ok((0..5).map(|i| Payload::Data(json!(i))).collect()) }
    });
    let ch = PeriodicChannel::new("endless", source)
        .period(Duration::from_millis(100))
        .build();
    ch.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    ch.write("outside", &"last").await.unwrap();
    ch.drain(None).await.unwrap();
    let pulled = pulls.load(Ordering::SeqCst);
    assert!(pulled >= 4, "pulled at 0, 100, 200, 300 ms: {pulled}");
    let stored = ch.stats().await.unwrap().stored as usize;
    assert_eq!(
        stored,
        pulled * 5 + 1,
        "everything buffered before the drain was stored"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pulls.load(Ordering::SeqCst),
        pulled,
        "no pulls after the drain"
    );
    assert_eq!(
        ch.write("outside", &1).await.unwrap_err().kind(),
        ErrorKind::ShuttingDown
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_raw_buffer_refuses_writes_and_hands_the_data_back() {
    let source = source_fn(|| async { Ok(Vec::new()) });
    let ch = PeriodicChannel::new("small", source)
        .period(Duration::from_secs(3600))
        .max_raw_buffer_size(2)
        .build();
    ch.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await; // the first (empty) pull is done
    ch.write("w", &1).await.unwrap();
    ch.write("w", &2).await.unwrap();
    let err = ch.write("w", &3).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backpressure);
    assert!(err.message().contains("raw buffer full (2 items)"), "{err}");
    assert_eq!(err.into_rejected(), Some(Payload::Data(json!(3))));
    assert_eq!(ch.stats().await.unwrap().raw_buffered, 2);
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_pulls_do_not_stop_the_loop() {
    let calls = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let (c, e) = (calls.clone(), errors.clone());
    let source = source_fn(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Err(sssn::Error::new(ErrorKind::Remote, "upstream down")),
                1 => panic!("bad parser"),
                _ => Ok(vec![Payload::Data(json!(n))]),
            }
        }
    });
    let ch = PeriodicChannel::new("flaky", source)
        .period(Duration::from_millis(100))
        .on_error(move |phase, _| {
            assert_eq!(phase, "pull");
            e.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    ch.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(errors.load(Ordering::SeqCst), 2, "both failures reported");
    assert_eq!(
        ch.read("r", 10).await.unwrap()[0].data::<usize>().unwrap(),
        2,
        "the loop went on"
    );
    ch.stop().await;
}

/// A periodic channel without a source (what `sssn serve` builds from a config) converts
/// what is written once per period, not only at drain.
#[tokio::test(start_paused = true)]
async fn a_sourceless_channel_converts_writes_every_period() {
    let ch = PeriodicChannel::buffered("written")
        .period(Duration::from_millis(100))
        .build();
    ch.start().await.unwrap();
    ch.write("outside", &7).await.unwrap();
    assert_eq!(ch.stats().await.unwrap().raw_buffered, 1, "buffered first");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stats = ch.stats().await.unwrap();
    assert_eq!(
        (stats.raw_buffered, stats.stored),
        (0, 1),
        "converted by the next cycle"
    );
    assert_eq!(ch.read("r", 10).await.unwrap()[0].data::<i32>().unwrap(), 7);
    ch.stop().await;
}
