//! History: a message by id, a time range, the latest N; what a mailbox reader may see,
//! and the rights it needs. No history call moves a cursor or claims.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Harness, LEASE, ids_of, started, uid, write_n};
use crate::channel::{MailboxChannel, PassthroughChannel, WorkQueueChannel};
use crate::error::ErrorKind;
use crate::message::ChannelMessage;
use crate::security::{AclSecurity, Role};

pub async fn history_by_id_time_and_latest(h: &impl Harness) {
    use crate::clock::now_secs;
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let gap = Duration::from_millis(300);
    let early = write_n(&ch, 2).await;
    h.advance(gap).await;
    let t1 = now_secs();
    h.advance(gap).await;
    let mid = write_n(&ch, 2).await;
    h.advance(gap).await;
    let t2 = now_secs();
    h.advance(gap).await;
    let late = write_n(&ch, 1).await;

    let range = |start, end, limit| ch.get_range("r", start, end, limit);
    assert_eq!(
        ids_of(&range(t1, t2, 10).await.unwrap()),
        mid,
        "oldest first"
    );
    let mut until_t2 = early.clone();
    until_t2.extend(mid.clone());
    assert_eq!(ids_of(&range(0.0, t2, 10).await.unwrap()), until_t2);
    assert_eq!(
        ids_of(&range(t1, t2 + 3600.0, 2).await.unwrap()),
        mid,
        "the limit counts from the start"
    );
    assert!(
        range(t2, t1, 10).await.unwrap().is_empty(),
        "start after end"
    );
    assert_eq!(
        ids_of(&ch.get_latest("r", 2).await.unwrap()),
        vec![late[0].clone(), mid[1].clone()],
        "newest first"
    );
    let mut all: Vec<String> = until_t2.iter().chain(&late).cloned().collect();
    all.reverse();
    assert_eq!(ids_of(&ch.get_latest("r", 100).await.unwrap()), all);
    let got = ch.get_message("r", &mid[0]).await.unwrap().expect("stored");
    assert_eq!(got.id, mid[0]);
    assert_eq!(got.data::<serde_json::Value>().unwrap(), json!({"n": 0}));
    assert!(ch.get_message("r", "no-such-id").await.unwrap().is_none());
    assert_eq!(
        ch.history("r", &crate::store::History::Id(mid[1].clone()))
            .await
            .unwrap()[0]
            .seq,
        ch.entries_after("r", 0, 100).await.unwrap()[3].seq,
        "entries carry their sequence"
    );

    // A removed message leaves every history view; nothing above moved a cursor.
    assert_eq!(ch.remove("admin", &[mid[0].clone()]).await.unwrap(), 1);
    assert!(ch.get_message("r", &mid[0]).await.unwrap().is_none());
    assert_eq!(
        ids_of(&range(t1, t2, 10).await.unwrap()),
        vec![mid[1].clone()]
    );
    assert_eq!(ch.get_latest("r", 100).await.unwrap().len(), 4);
    assert_eq!(
        ch.read("r", 100).await.unwrap().len(),
        4,
        "history moves no cursor"
    );

    // Work queues answer too, claimed messages included, and nothing is claimed by it.
    let q = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let jobs = write_n(&q, 2).await;
    q.claim("worker", 1).await.unwrap();
    let mut newest_first = jobs.clone();
    newest_first.reverse();
    assert_eq!(ids_of(&q.get_latest("r", 10).await.unwrap()), newest_first);
    assert_eq!(q.claim("worker", 10).await.unwrap().len(), 1);
}

pub async fn history_respects_mailboxes_and_rights(h: &impl Harness) {
    let ch = started(h, MailboxChannel::new(uid("m"))).await;
    let mut to = Vec::new();
    for (i, who) in ["alice", "bob", "alice", "bob"].iter().enumerate() {
        let m = ChannelMessage::with_data("writer", &i)
            .unwrap()
            .recipient(*who);
        to.push(ch.write_message("writer", m).await.unwrap());
    }
    let everyone = ch.write("writer", &"everyone").await.unwrap();
    assert_eq!(
        ids_of(&ch.get_latest("alice", 2).await.unwrap()),
        vec![everyone.clone(), to[2].clone()],
        "a reader's latest N counts only what it may see"
    );
    assert_eq!(
        ids_of(&ch.get_range("bob", 0.0, f64::MAX / 2.0, 10).await.unwrap()),
        vec![to[1].clone(), to[3].clone(), everyone.clone()]
    );
    assert!(
        ch.get_message("alice", &to[1]).await.unwrap().is_none(),
        "bob's message is not alice's to read"
    );
    assert!(ch.get_message("bob", &to[1]).await.unwrap().is_some());

    let acl = Arc::new(AclSecurity::default());
    acl.grant("reader", Role::Read);
    acl.grant("worker", Role::Write);
    let p = started(h, PassthroughChannel::new(uid("p")).security(acl)).await;
    let id = p.write("worker", &1).await.unwrap();
    assert_eq!(
        p.get_message("nobody", &id).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        p.get_range("nobody", 0.0, 1e10, 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        p.get_latest("nobody", 1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(p.get_latest("reader", 1).await.unwrap().len(), 1);
    let range = crate::store::History::Between {
        start: f64::NAN,
        end: 1.0,
        limit: 1,
    };
    assert_eq!(
        p.history("reader", &range).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
