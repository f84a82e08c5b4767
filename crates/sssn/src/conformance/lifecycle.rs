//! Life cycle: no writes before `start` or after `drain`, a drained channel starts again,
//! and a channel opened again finds what the store kept.

use serde_json::json;

use super::{Harness, LEASE, started, uid, write_n};
use crate::channel::{PassthroughChannel, WorkQueueChannel};
use crate::error::ErrorKind;
use crate::message::Payload;

pub async fn lifecycle_and_drain(h: &impl Harness) {
    let ch = PassthroughChannel::new(uid("p")).store(h.store()).build();
    let err = ch.write("w", &1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown);
    assert!(err.message().contains("not accepting writes"));
    assert_eq!(
        err.into_rejected(),
        Some(Payload::Data(json!(1))),
        "the data is handed back"
    );
    ch.start().await.unwrap();
    ch.start().await.unwrap(); // idempotent
    assert!(ch.is_accepting_writes());
    assert!(!ch.has_loop());
    ch.write("w", &1).await.unwrap();
    ch.drain(None).await.unwrap();
    assert_eq!(
        ch.write("w", &2).await.unwrap_err().kind(),
        ErrorKind::ShuttingDown
    );
    assert_eq!(
        ch.read("r", 10).await.unwrap().len(),
        1,
        "reads still work after drain"
    );
    ch.start().await.unwrap();
    ch.write("w", &3).await.unwrap();
    assert_eq!(
        ch.read("r", 10).await.unwrap().len(),
        1,
        "a drained channel can start again"
    );
    ch.stop().await;
    assert_eq!(ch.state(), crate::channel::ChannelState::Stopped);
}

pub async fn reopen_keeps_contents(h: &impl Harness) {
    let id = uid("p");
    let ch = started(
        h,
        WorkQueueChannel::new(id.clone()).claim_timeout(LEASE * 30),
    )
    .await;
    let ids = write_n(&ch, 3).await;
    ch.claim("w", 1).await.unwrap();
    assert!(ch.ack("w", &ids[..1]).await.unwrap().all_done());
    ch.stop().await;
    let again = started(h, WorkQueueChannel::new(id).claim_timeout(LEASE * 30)).await;
    let s = again.stats().await.unwrap();
    assert_eq!(s.stored, 2);
    assert_eq!(s.acknowledged, 1);
    let c = again.claim("w2", 10).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.message.id.clone()).collect::<Vec<_>>(),
        ids[1..]
    );
}
