//! v1 parity points that are not store behaviours: the claim timeout changed on a running
//! memory channel, two subscriptions under one id, a network's public channels.

use std::time::Duration;

use sssn::channel::{BroadcastChannel, PassthroughChannel, WorkQueueChannel};
use sssn::conformance::MemoryHarness;
use sssn::{ErrorKind, Network};

#[tokio::test(start_paused = true)]
async fn claim_timeout_changes_while_running_on_memory() {
    sssn::conformance::claim_timeout_changes_while_running(&MemoryHarness::default()).await;
}

#[tokio::test(start_paused = true)]
async fn a_claim_timeout_change_needs_admin_and_a_started_channel() {
    let acl = std::sync::Arc::new(sssn::security::AclSecurity::default());
    acl.grant("worker", sssn::security::Role::Write);
    let q = WorkQueueChannel::new("q").security(acl).build();
    let err = q
        .set_claim_timeout("boss", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let open = WorkQueueChannel::new("q2").build();
    let err = open
        .set_claim_timeout("boss", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown, "not started");
    assert_eq!(
        q.set_retention("worker", None, Some(1)).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

/// v1 replaced the first subscription of an id with the second; sssn keeps both, because
/// one identity often runs several consumers at once (two dashboards on one token, an
/// event stream whose dropped connection is not noticed yet when the client reconnects),
/// and replacing would silently end one of them. `unsubscribe` ends them all.
#[tokio::test]
async fn two_subscriptions_under_one_id_both_deliver_and_unsubscribe_ends_both() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    let mut first = ch.subscribe("dash").await.unwrap();
    let mut second = ch.subscribe("dash").await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(first.recv().await.unwrap().message.id, id);
    assert_eq!(second.recv().await.unwrap().message.id, id);
    ch.unsubscribe("dash");
    ch.write("w", &2).await.unwrap();
    assert!(first.recv().await.is_err(), "ended");
    assert!(second.recv().await.is_err(), "ended");
}

#[tokio::test]
async fn public_channels_are_the_owned_public_ones() {
    let mut net = Network::new("n");
    net.add_channel(PassthroughChannel::new("private").build())
        .unwrap();
    net.add_channel(BroadcastChannel::new("out").public().build())
        .unwrap();
    let mut sub = net.subnetwork("sub", &[] as &[&str]).unwrap();
    sub.add_channel(BroadcastChannel::new("inner").public().build())
        .unwrap();
    net.add_network(sub).unwrap();
    let ids: Vec<String> = net
        .public_channels()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    assert_eq!(ids, ["out"]);
    let running = net.start().await.unwrap();
    let mut ids: Vec<String> = running
        .public_channels()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["inner", "out"],
        "the running tree's, sub-networks included"
    );
    running.stop().await.unwrap();
}
