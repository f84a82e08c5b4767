//! Periodic channels: the pull loop stores what its source returns, and a write is
//! buffered until the loop stores it (under the id the write returned).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Harness, started, uid};
use crate::channel::{PeriodicChannel, source_fn};
use crate::message::Payload;

pub async fn periodic_channel_pulls(h: &impl Harness) {
    let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = counter.clone();
    let source = source_fn(move || {
        let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok(vec![Payload::Data(json!({"pull": n}))]) }
    });
    let ch = started(
        h,
        PeriodicChannel::new(uid("per"), source).period(Duration::from_millis(500)),
    )
    .await;
    assert!(ch.has_loop());
    h.advance(Duration::from_millis(1200)).await;
    for _ in 0..50 {
        if ch.stats().await.unwrap().stored >= 3 {
            break;
        }
        h.advance(Duration::from_millis(50)).await;
    }
    let got = ch.read("r", 10).await.unwrap();
    assert!(got.len() >= 3, "pulled at 0, 0.5 and 1.0 s: {}", got.len());
    assert_eq!(
        got[0].data::<serde_json::Value>().unwrap(),
        json!({"pull": 0})
    );
    let item = ch.write("ext", &"buffered").await.unwrap();
    assert_eq!(
        ch.stats().await.unwrap().raw_buffered,
        1,
        "buffered, not stored yet"
    );
    ch.drain(Some(Duration::from_secs(5))).await.unwrap();
    let rest = ch.read("r", 100).await.unwrap();
    let stored = rest
        .iter()
        .find(|m| m.data::<String>().ok().as_deref() == Some("buffered"))
        .expect("the buffered write was stored");
    assert_eq!(
        stored.id, item,
        "the id a buffered write returns is the stored message's"
    );
    assert_eq!(stored.sender_id, "ext");
    assert_eq!(ch.stats().await.unwrap().raw_buffered, 0);
}
