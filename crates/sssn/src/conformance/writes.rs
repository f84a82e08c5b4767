//! What a write stores: a batch in order with rising sequences, a retried message once,
//! and the caller as sender (a message naming someone else is refused, a blank sender is
//! filled in).

use serde_json::json;

use super::{Harness, started, uid};
use crate::channel::{BroadcastChannel, PassthroughChannel, PeriodicChannel};
use crate::error::ErrorKind;
use crate::message::{ChannelMessage, Payload};

pub async fn write_batch_and_entries_after(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let ids = ch
        .write_batch("w", (0..5).map(|i| Payload::Data(json!(i))).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 5);
    let entries = ch.entries_after("r", 0, 100).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.message.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    let tail = ch.entries_after("r", entries[2].seq, 100).await.unwrap();
    assert_eq!(tail.len(), 2);
}

pub async fn duplicate_ids_are_idempotent(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let m = ChannelMessage::with_data("w", &1).unwrap();
    let a = ch.write_message("w", m.clone()).await.unwrap();
    let b = ch.write_message("w", m.clone()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(
        ch.read("r", 10).await.unwrap().len(),
        1,
        "a retried write is stored once"
    );
}

pub async fn direct_writes_cannot_spoof(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let forged = ChannelMessage::with_data("admin", &1).unwrap();
    let err = ch.write_message("mallory", forged).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let mut blank = ChannelMessage::with_data("", &1).unwrap();
    blank.sender_id.clear();
    ch.write_message("alice", blank).await.unwrap();
    assert_eq!(ch.read("r", 1).await.unwrap()[0].sender_id, "alice");
    // A periodic channel refuses it when it is written, not later in its loop.
    let periodic = started(h, PeriodicChannel::buffered(uid("per"))).await;
    let forged = ChannelMessage::with_data("admin", &1).unwrap();
    let err = periodic
        .write_message("mallory", forged.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.into_rejected(), Some(Payload::Message(forged)));
    assert_eq!(periodic.stats().await.unwrap().raw_buffered, 0);
}
