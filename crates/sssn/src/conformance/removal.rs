//! Removal by an admin (`evict`, `remove`, `clear`, `clear_where`): what is left keeps its
//! order and every reader's cursor stays valid.

use std::sync::Arc;

use super::{Harness, ids_of, started, uid, write_n};
use crate::channel::{BroadcastChannel, PassthroughChannel};
use crate::error::ErrorKind;
use crate::message::ChannelMessage;
use crate::security::{AclSecurity, Role};

pub async fn evict_does_not_shift_cursors(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let ids = write_n(&ch, 5).await;
    assert_eq!(ch.read("r", 2).await.unwrap().len(), 2);
    assert_eq!(ch.evict("admin", None, Some(2)).await.unwrap(), 3);
    let new = write_n(&ch, 3).await;
    let got = ids_of(&ch.read("r", 10).await.unwrap());
    let mut want = ids[3..].to_vec();
    want.extend(new);
    assert_eq!(got, want, "the reader loses nothing written after eviction");
}

pub async fn remove_and_clear_keep_cursors_valid(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let ids = write_n(&ch, 3).await;
    assert_eq!(ch.read("r", 1).await.unwrap().len(), 1);
    assert_eq!(ch.remove("admin", &[ids[1].clone()]).await.unwrap(), 1);
    assert_eq!(
        ids_of(&ch.read("r", 10).await.unwrap()),
        vec![ids[2].clone()]
    );
    ch.clear("admin").await.unwrap();
    assert_eq!(ch.stats().await.unwrap().stored, 0);
    let new = write_n(&ch, 1).await;
    assert_eq!(ids_of(&ch.read("r", 10).await.unwrap()), new);
    assert_eq!(ids_of(&ch.read("fresh", 10).await.unwrap()), new);
}

pub async fn clear_where_removes_only_matches(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p"))).await;
    let ids = write_n(&ch, 5).await;
    assert_eq!(ch.read("r", 1).await.unwrap().len(), 1);
    let odd = |m: &ChannelMessage| {
        m.data::<serde_json::Value>().unwrap()["n"]
            .as_u64()
            .is_some_and(|n| n % 2 == 1)
    };
    assert_eq!(ch.clear_where("admin", odd).await.unwrap(), 2);
    assert_eq!(
        ids_of(&ch.read("r", 10).await.unwrap()),
        vec![ids[2].clone(), ids[4].clone()],
        "the rest keep their order; the cursor still works"
    );
    assert_eq!(
        ids_of(&ch.read("fresh", 10).await.unwrap()),
        vec![ids[0].clone(), ids[2].clone(), ids[4].clone()]
    );
    assert_eq!(ch.clear_where("admin", |_| false).await.unwrap(), 0);
    assert_eq!(ch.stats().await.unwrap().stored, 3);

    let acl = Arc::new(AclSecurity::default());
    acl.grant("worker", Role::Write);
    let guarded = started(h, PassthroughChannel::new(uid("p")).security(acl)).await;
    guarded.write("worker", &1).await.unwrap();
    assert_eq!(
        guarded
            .clear_where("worker", |_| true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied,
        "admin only"
    );
    assert_eq!(guarded.stats().await.unwrap().stored, 1);
}
