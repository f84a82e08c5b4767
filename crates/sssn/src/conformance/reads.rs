//! Shared reads: every reader has its own cursor over the log, a mailbox reader sees only
//! what is addressed to it or to everyone, and a work queue refuses shared reads.

use serde_json::json;

use super::{Harness, ids_of, recv, started, uid, write_n};
use crate::channel::{
    BroadcastChannel, Channel, MailboxChannel, PassthroughChannel, WorkQueueChannel,
};
use crate::error::ErrorKind;
use crate::message::ChannelMessage;

pub async fn shared_reads_follow_the_cursor(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let ids = write_n(&ch, 3).await;
    let first = ch.read("r", 2).await.unwrap();
    assert_eq!(ids_of(&first), ids[..2]);
    assert_eq!(
        first[0].data::<serde_json::Value>().unwrap(),
        json!({"n": 0})
    );
    assert_eq!(first[0].sender_id, "writer");
    let rest = ch.read("r", 10).await.unwrap();
    assert_eq!(ids_of(&rest), ids[2..]);
    assert!(ch.read("r", 10).await.unwrap().is_empty());
    assert!(
        ch.read("other", 0).await.unwrap().is_empty(),
        "limit 0 returns nothing"
    );
    assert_eq!(ch.read("other", 10).await.unwrap().len(), 3);
}

pub async fn read_after_id(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let ids = write_n(&ch, 3).await;
    let got = ch.read_after("r", &ids[0], 10).await.unwrap();
    assert_eq!(ids_of(&got), ids[1..]);
    let err = ch.read_after("r", "no-such-id", 10).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidArgument,
        "unknown 'after' is an error, not a replay"
    );
}

pub async fn independent_cursors(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    write_n(&ch, 3).await;
    assert_eq!(ch.read("a", 2).await.unwrap().len(), 2);
    assert_eq!(ch.read("b", 10).await.unwrap().len(), 3);
    assert_eq!(ch.read("a", 10).await.unwrap().len(), 1);
}

pub async fn broadcast_readers_see_everything(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let ids = write_n(&ch, 2).await;
    assert_eq!(ids_of(&ch.read("a", 10).await.unwrap()), ids);
    assert_eq!(ids_of(&ch.read("b", 10).await.unwrap()), ids);
}

/// Through the type-erased handle (the typed one has no `read`: it does not compile).
pub async fn work_queue_refuses_shared_reads(h: &impl Harness) {
    let ch: Channel = started(h, WorkQueueChannel::new(uid("q"))).await.into();
    write_n(&ch, 1).await;
    let err = ch.read("r", 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
    assert!(err.message().contains("claim"), "{err}");
    let err = ch.read_with("r", Default::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
    let opts = crate::channel::ReadOptions {
        exclusive: true,
        ..Default::default()
    };
    assert_eq!(ch.read_with("r", opts).await.unwrap().len(), 1);
}

pub async fn mailbox_delivers_every_addressed_message(h: &impl Harness) {
    let ch = started(h, MailboxChannel::new(uid("m"))).await;
    let mut alice_sub = ch.subscribe("alice").await.unwrap();
    for i in 0..10 {
        let to = if i % 2 == 0 { "alice" } else { "bob" };
        let m = ChannelMessage::with_data("writer", &i)
            .unwrap()
            .recipient(to);
        ch.write_message("writer", m).await.unwrap();
    }
    ch.write("writer", &"everyone").await.unwrap();
    let mut alice = Vec::new();
    loop {
        let got = ch.read("alice", 2).await.unwrap();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 2);
        alice.extend(got);
    }
    assert_eq!(
        alice.len(),
        6,
        "5 addressed to alice + 1 to everyone, none skipped"
    );
    assert!(
        alice
            .iter()
            .all(|m| m.recipient_id.as_deref() != Some("bob"))
    );
    assert_eq!(ch.read("bob", 100).await.unwrap().len(), 6);
    for _ in 0..6 {
        let e = recv(&mut alice_sub).await;
        assert_ne!(
            e.message.recipient_id.as_deref(),
            Some("bob"),
            "no privacy leak to subscribers"
        );
    }
}
