//! The behaviours the sssn 0.0.1 test suite asserts (behavioural spec §12), one test each,
//! numbered as in the spec. Where v1 was defective the test asserts the fixed behaviour
//! and says so (`adapted: Dn`).
//!
//! Where each of the 89 lives:
//!
//! | behaviours | test |
//! |---|---|
//! | 1–55, 61–89 | here, `v1_NN_…` |
//! | 56 (`publish`) | `crates/sssn-http/tests/publish.rs`, `v1_56_publish_serves_the_public_channels_and_lists_them_in_discovery` |
//! | 57–60 (HTTP under JWT) | `crates/sssn-http/tests/v1_http.rs`, `v1_57_…` to `v1_60_…` |
//!
//! 53–55 are also covered in depth by `tests/system.rs` and `tests/standalone.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sssn::channel::ChannelState;
use sssn::channel::{BroadcastChannel, PassthroughChannel, ReadOptions, WorkQueueChannel};
use sssn::network::Network;
use sssn::security::{
    AclSecurity, JwtSecurity, OpenSecurity, Operation, Principal, Role, Security,
};
use sssn::system::{System, SystemContext, SystemSpec, SystemState};
use sssn::{ChannelInfo, ChannelMessage, Content, ErrorKind, GenericContent, Visibility};

const SECRET: &str = "a-v1-checklist-secret-of-32-bytes!!";
const DAY: Duration = Duration::from_secs(86_400);

fn info(visibility: Visibility) -> ChannelInfo {
    ChannelInfo {
        id: "c".into(),
        name: "C".into(),
        description: String::new(),
        visibility,
        period: 1.0,
        kind: None,
    }
}

// ----- tests/core/test_channel.py ---------------------------------------------------------

#[test]
fn v1_01_generic_content_default_is_null() {
    assert_eq!(Content::default().data_as::<Option<i32>>().unwrap(), None);
    assert_eq!(
        GenericContent::<serde_json::Value>::default().data,
        serde_json::Value::Null
    );
}

#[test]
fn v1_02_generic_content_keeps_a_mapping() {
    let c = Content::data(&json!({"a": 1, "b": [2]})).unwrap();
    assert_eq!(
        c.data_as::<serde_json::Value>().unwrap(),
        json!({"a": 1, "b": [2]})
    );
}

#[test]
fn v1_03_content_keeps_unknown_fields() {
    let c = Content::from_json(r#"{"foo":"bar","baz":2}"#).unwrap();
    let v = c.to_value();
    assert_eq!(v["foo"], "bar");
    assert_eq!(v["baz"], 2);
}

#[test]
fn v1_04_message_routing_fields_default_to_none() {
    let m = ChannelMessage::new("s", Content::default());
    assert!(!m.id.is_empty() && m.timestamp > 0.0 && m.sender_id == "s");
    assert_eq!(
        (m.correlation_id, m.reply_to, m.recipient_id),
        (None, None, None)
    );
}

#[test]
fn v1_05_message_keeps_routing_fields_and_metadata() {
    let m = ChannelMessage::new("s", Content::default())
        .correlation_id("c1")
        .reply_to("replies")
        .recipient("bob")
        .meta("k", "v");
    let back = ChannelMessage::from_json(&m.to_json()).unwrap();
    assert_eq!(back.correlation_id.as_deref(), Some("c1"));
    assert_eq!(back.reply_to.as_deref(), Some("replies"));
    assert_eq!(back.recipient_id.as_deref(), Some("bob"));
    assert_eq!(back.metadata["k"], "v");
}

/// Adapted: immutability is by type. A reader gets an `Arc<ChannelMessage>` shared with
/// the store, which gives no `&mut` (assigning to a field does not compile), and no
/// exclusive access while the store holds it; changing it means taking a copy
/// (`Arc::make_mut`), which leaves the stored message as it was.
#[tokio::test]
async fn v1_06_stored_messages_are_immutable() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    let mut got: Arc<ChannelMessage> = ch.read("r", 1).await.unwrap().remove(0);
    let again = ch.read("r2", 1).await.unwrap().remove(0);
    assert!(
        Arc::ptr_eq(&got, &again),
        "readers share the stored message"
    );
    drop(again);
    assert!(
        Arc::get_mut(&mut got).is_none(),
        "no reader can change the stored message in place"
    );
    Arc::make_mut(&mut got).sender_id = "changed".into();
    let stored = ch.read("r3", 1).await.unwrap().remove(0);
    assert_eq!(stored.sender_id, "w", "the stored message is unchanged");
    assert_eq!(stored.id, got.id);
    assert!(!Arc::ptr_eq(&stored, &got));
}

#[test]
fn v1_07_channel_info_keeps_fields() {
    let i = info(Visibility::Private);
    assert_eq!(
        (i.id.as_str(), i.visibility, i.period),
        ("c", Visibility::Private, 1.0)
    );
}

#[test]
fn v1_08_channel_info_public() {
    assert_eq!(info(Visibility::Public).visibility, Visibility::Public);
}

#[test]
fn v1_09_channel_info_serialises_visibility_as_string() {
    let v = serde_json::to_value(info(Visibility::Private)).unwrap();
    assert_eq!(v["id"], "c");
    assert_eq!(v["visibility"], "private");
}

// ----- tests/core/test_message_store.py: a channel pre-loaded with m1, m2, m3 -------------

async fn loaded() -> (PassthroughChannel, Vec<String>) {
    let ch = PassthroughChannel::new("store")
        .claim_timeout(Duration::from_secs(60))
        .build();
    ch.start().await.unwrap();
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(ch.write("w", &format!("m{i}")).await.unwrap());
    }
    (ch, ids)
}

fn ids(msgs: &[Arc<ChannelMessage>]) -> Vec<String> {
    msgs.iter().map(|m| m.id.clone()).collect()
}

#[tokio::test]
async fn v1_10_shared_read_in_order() {
    let (ch, m) = loaded().await;
    assert_eq!(ids(&ch.read("r", 10).await.unwrap()), m);
}

#[tokio::test]
async fn v1_11_shared_read_limit() {
    let (ch, m) = loaded().await;
    assert_eq!(ids(&ch.read("r", 2).await.unwrap()), m[..2]);
}

#[tokio::test]
async fn v1_12_cursor_advances() {
    let (ch, m) = loaded().await;
    ch.read("r", 2).await.unwrap();
    assert_eq!(ids(&ch.read("r", 10).await.unwrap()), m[2..]);
}

#[tokio::test]
async fn v1_13_read_after() {
    let (ch, m) = loaded().await;
    assert_eq!(ids(&ch.read_after("r", &m[0], 10).await.unwrap()), m[1..]);
}

/// Adapted (D17): a claim no longer hides the message from shared readers.
#[tokio::test]
async fn v1_14_claims_and_shared_reads() {
    let (ch, m) = loaded().await;
    assert_eq!(ch.claim("other", 1).await.unwrap()[0].message.id, m[0]);
    assert_eq!(ids(&ch.read("r", 10).await.unwrap()), m);
}

/// Adapted (D13): acknowledging needs a claim; an acknowledged message is consumed.
#[tokio::test]
async fn v1_15_acknowledged_message_hidden_from_shared_reads() {
    let (ch, m) = loaded().await;
    ch.claim("w", 2).await.unwrap();
    assert!(ch.ack("w", &[m[1].clone()]).await.unwrap().all_done());
    assert_eq!(
        ids(&ch.read("r", 10).await.unwrap()),
        vec![m[0].clone(), m[2].clone()]
    );
}

#[tokio::test]
async fn v1_16_independent_cursors() {
    let (ch, _) = loaded().await;
    ch.read("reader-a", 2).await.unwrap();
    assert_eq!(ch.read("reader-b", 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn v1_17_exclusive_read_claims() {
    let (ch, m) = loaded().await;
    let c = ch.claim("worker-1", 2).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.message.id.clone()).collect::<Vec<_>>(),
        m[..2]
    );
    assert_eq!(ch.stats().await.unwrap().in_flight, 2);
    // The claims are recorded as worker-1's: another worker cannot settle them (renewing
    // a lease leaves the claim as it is), worker-1 can.
    let other = ch.extend("worker-2", &m[..2]).await.unwrap();
    assert_eq!(
        (other.done.len(), other.stale.clone()),
        (0, m[..2].to_vec())
    );
    let holder = ch.extend("worker-1", &m[..2]).await.unwrap();
    assert_eq!(holder.done, m[..2].to_vec());
    assert!(holder.stale.is_empty());
}

#[tokio::test]
async fn v1_18_second_worker_gets_the_rest() {
    let (ch, m) = loaded().await;
    ch.claim("worker-1", 2).await.unwrap();
    let c = ch.claim("worker-2", 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].message.id, m[2]);
}

#[tokio::test]
async fn v1_19_acknowledged_not_claimed_again() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    assert!(ch.ack("w", &[m[0].clone()]).await.unwrap().all_done());
    let c = ch.claim("w2", 10).await.unwrap();
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|c| c.message.id != m[0]));
}

#[tokio::test]
async fn v1_20_ack_drops_the_claim() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    assert!(ch.ack("w", &[m[0].clone()]).await.unwrap().all_done());
    let s = ch.stats().await.unwrap();
    assert_eq!((s.in_flight, s.acknowledged), (0, 1));
}

#[tokio::test]
async fn v1_21_acknowledged_never_returned() {
    let (ch, m) = loaded().await;
    ch.claim("w", 3).await.unwrap();
    assert!(ch.ack("w", &m).await.unwrap().all_done());
    assert!(ch.claim("w2", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn v1_22_nack_by_claimer_drops_the_claim() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    assert!(ch.nack("w", &[m[0].clone()]).await.unwrap().all_done());
    assert_eq!(ch.stats().await.unwrap().in_flight, 0);
}

#[tokio::test]
async fn v1_23_nacked_claimable_by_another() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    assert!(ch.nack("w", &[m[0].clone()]).await.unwrap().all_done());
    assert_eq!(ch.claim("w2", 1).await.unwrap()[0].message.id, m[0]);
}

/// Adapted (fenced claims): the non-holder's nack is refused with `StaleClaim`.
#[tokio::test]
async fn v1_24_nack_by_other_reader_keeps_the_claim() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    assert_eq!(
        ch.nack("x", &[m[0].clone()])
            .await
            .unwrap()
            .into_result()
            .unwrap_err()
            .kind(),
        ErrorKind::StaleClaim
    );
    assert_eq!(ch.stats().await.unwrap().in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn v1_25_old_claim_is_reclaimed() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(ch.reclaim_expired().await.unwrap(), 1);
    assert_eq!(ch.claim("w2", 1).await.unwrap()[0].message.id, m[0]);
}

#[tokio::test(start_paused = true)]
async fn v1_26_fresh_claim_is_kept() {
    let (ch, m) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(ch.reclaim_expired().await.unwrap(), 0);
    // Still held by "w": nobody else gets m1, and "w" can still settle it.
    assert_eq!(ch.stats().await.unwrap().in_flight, 1);
    let next = ch.claim("w2", 10).await.unwrap();
    assert_eq!(
        next.iter()
            .map(|c| c.message.id.clone())
            .collect::<Vec<_>>(),
        m[1..]
    );
    assert_eq!(ch.ack("w", &m[..1]).await.unwrap().done, m[..1].to_vec());
}

#[tokio::test]
async fn v1_27_subscriber_gets_the_message() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    let mut sub = ch.subscribe("s").await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().message.id, id);
}

/// Adapted (D22): subscribers are independent queues read by their consumers. A
/// consumer that panics on a message, or one that stops reading, affects neither the
/// writer nor the other subscribers.
#[tokio::test]
async fn v1_28_one_subscriber_failing_does_not_stop_others() {
    let ch = BroadcastChannel::new("b").subscriber_capacity(4).build();
    ch.start().await.unwrap();
    let mut panicking = ch.subscribe("panicking").await.unwrap();
    let _stalled = ch.subscribe("stalled").await.unwrap(); // never reads
    let mut ok = ch.subscribe("ok").await.unwrap();
    let consumer = tokio::spawn(async move {
        let entry = panicking.recv().await.unwrap();
        panic!("subscriber failed on {}", entry.message.id);
    });
    let first = ch.write("w", &0).await.unwrap();
    let failure = consumer.await.unwrap_err();
    assert!(failure.is_panic());
    // Writes go on, past the stalled subscriber's queue, without waiting for anyone.
    let mut ids = vec![first];
    for i in 1..20 {
        let write = tokio::time::timeout(Duration::from_secs(1), ch.write("w", &i));
        ids.push(write.await.expect("a writer never waits").unwrap());
    }
    let mut got = Vec::new();
    while got.len() < ids.len() {
        match ok.recv().await {
            Ok(entry) => got.push(entry.message.id.clone()),
            // A queue of 4 lags behind 20 writes and catches up from the store.
            Err(sssn::channel::RecvError::Lagged(_)) => {}
            Err(e) => panic!("the healthy subscriber failed: {e}"),
        }
    }
    assert_eq!(got, ids, "every message, once, in order");
}

#[tokio::test]
async fn v1_29_clear_empties_everything() {
    let (ch, _) = loaded().await;
    ch.claim("w", 1).await.unwrap();
    assert_eq!(ch.clear("admin").await.unwrap(), 3);
    let s = ch.stats().await.unwrap();
    assert_eq!((s.stored, s.in_flight), (0, 0));
}

/// `clear(predicate)` is `clear_where`: only the matching message goes, the rest keep their order.
#[tokio::test]
async fn v1_30_clear_predicate_removes_matching_keeps_order() {
    let (ch, m) = loaded().await;
    let removed = ch.clear_where("admin", |msg| msg.id == m[1]).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        ids(&ch.read("r", 10).await.unwrap()),
        vec![m[0].clone(), m[2].clone()]
    );
}

/// Adapted (D39): age is measured from when the channel stored the message.
#[tokio::test(start_paused = true)]
async fn v1_31_evict_before() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    ch.write("w", &"old").await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    ch.write("w", &"new").await.unwrap();
    let removed = ch
        .evict("admin", Some(sssn::clock::now_secs() - 1.0), None)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        ch.read("r", 10).await.unwrap()[0].data::<String>().unwrap(),
        "new"
    );
}

#[tokio::test]
async fn v1_32_evict_max_count_keeps_newest() {
    let (ch, m) = loaded().await;
    ch.evict("admin", None, Some(2)).await.unwrap();
    assert_eq!(ids(&ch.read("r", 10).await.unwrap()), m[1..]);
}

#[tokio::test]
async fn v1_33_remove_ids() {
    let (ch, m) = loaded().await;
    ch.remove("admin", &[m[0].clone(), m[2].clone()])
        .await
        .unwrap();
    assert_eq!(ids(&ch.read("r", 10).await.unwrap()), vec![m[1].clone()]);
}

// ----- tests/core/test_security.py ---------------------------------------------------------

fn p(id: &str) -> Principal {
    Principal::local(id)
}

#[test]
fn v1_34_open_authenticates_token_to_itself() {
    assert_eq!(OpenSecurity.authenticate("sys-1").unwrap().id, "sys-1");
}

#[test]
fn v1_35_open_allows_everything() {
    for op in [Operation::Read, Operation::Write, Operation::Admin] {
        assert!(OpenSecurity.authorize(&p("x"), "c", op));
    }
}

#[test]
fn v1_36_open_token_is_the_id() {
    assert_eq!(
        OpenSecurity
            .generate_token("sys", Role::Read, None, DAY)
            .unwrap(),
        "sys"
    );
}

fn acl_can(acl: &AclSecurity, id: &str) -> [bool; 3] {
    [Operation::Read, Operation::Write, Operation::Admin].map(|op| acl.authorize(&p(id), "c", op))
}

#[test]
fn v1_37_acl_read_grant() {
    let acl = AclSecurity::default();
    acl.grant("s", Role::Read);
    assert_eq!(acl_can(&acl, "s"), [true, false, false]);
}

#[test]
fn v1_38_acl_write_grant() {
    let acl = AclSecurity::default();
    acl.grant("s", Role::Write);
    assert_eq!(acl_can(&acl, "s"), [true, true, false]);
}

#[test]
fn v1_39_acl_admin_grant() {
    let acl = AclSecurity::default();
    acl.grant("s", Role::Admin);
    assert_eq!(acl_can(&acl, "s"), [true, true, true]);
}

#[test]
fn v1_40_acl_revoke() {
    let acl = AclSecurity::default();
    acl.grant("s", Role::Admin);
    acl.revoke("s");
    assert_eq!(acl_can(&acl, "s"), [false, false, false]);
}

#[test]
fn v1_41_acl_unknown_id() {
    assert_eq!(
        acl_can(&AclSecurity::default(), "nobody"),
        [false, false, false]
    );
}

#[test]
fn v1_42_acl_unknown_role() {
    let err = AclSecurity::default()
        .grant_named("s", "superuser")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn v1_43_acl_constructor_lists() {
    let acl = AclSecurity::new(&["r"], &["w"], &["a"]);
    assert_eq!(acl_can(&acl, "r"), [true, false, false]);
    assert_eq!(acl_can(&acl, "w"), [true, true, false]);
    assert_eq!(acl_can(&acl, "a"), [true, true, true]);
}

#[test]
fn v1_44_acl_generate_token_grants() {
    let acl = AclSecurity::default();
    assert_eq!(
        acl.generate_token("s", Role::Write, None, DAY).unwrap(),
        "s"
    );
    assert_eq!(acl_can(&acl, "s"), [true, true, false]);
}

#[test]
fn v1_45_jwt_round_trip() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    let t = jwt.generate_token("sys", Role::Read, None, DAY).unwrap();
    assert_eq!(jwt.authenticate(&t).unwrap().id, "sys");
}

#[test]
fn v1_46_jwt_garbage_is_refused() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    assert_eq!(
        jwt.authenticate("not.a.jwt").unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
}

#[test]
fn v1_47_jwt_in_process_callers_are_trusted() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    for op in [Operation::Read, Operation::Write, Operation::Admin] {
        assert!(jwt.authorize(&p("anyone"), "c", op));
    }
}

fn scoped(jwt: &JwtSecurity, role: Role, channels: &[&str]) -> Principal {
    let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
    let t = jwt
        .generate_token("sys", role, Some(&channels), DAY)
        .unwrap();
    jwt.authenticate(&t).unwrap()
}

#[test]
fn v1_48_jwt_scoped_read() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    let who = scoped(&jwt, Role::Read, &["ch-1"]);
    assert!(jwt.authorize(&who, "ch-1", Operation::Read));
    assert_eq!(who.id, "sys");
}

#[test]
fn v1_49_jwt_scope_refuses_other_channels() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    assert!(!jwt.authorize(
        &scoped(&jwt, Role::Write, &["ch-1"]),
        "ch-2",
        Operation::Write
    ));
}

#[test]
fn v1_50_jwt_read_role_cannot_write() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    assert!(!jwt.authorize(
        &scoped(&jwt, Role::Read, &["ch-1"]),
        "ch-1",
        Operation::Write
    ));
}

#[test]
fn v1_51_jwt_unscoped_admin() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    let t = jwt.generate_token("root", Role::Admin, None, DAY).unwrap();
    assert!(jwt.authorize(&jwt.authenticate(&t).unwrap(), "any", Operation::Admin));
}

#[test]
fn v1_52_jwt_expired_refused() {
    let jwt = JwtSecurity::new(SECRET).unwrap();
    let t = jwt
        .generate_token("s", Role::Read, None, Duration::ZERO)
        .unwrap();
    assert_eq!(
        jwt.authenticate(&t).unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
}

// ----- tests/core/test_system.py (53–55 here; 56 needs HTTP: crates/sssn-http) -----------

/// Records what a system sees and does.
#[derive(Default)]
struct Probe {
    setups: u32,
    steps: u32,
    seen: Vec<String>,
    denied: Option<ErrorKind>,
    stop_after: Option<u32>,
}

#[async_trait::async_trait]
impl System for Probe {
    async fn setup(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        self.setups += 1;
        self.seen = ctx.channel_ids();
        self.denied = ctx.channel("denied").err().map(|e| e.kind());
        Ok(())
    }
    async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        self.steps += 1;
        if self.stop_after == Some(self.steps) {
            ctx.stop();
        }
        Ok(())
    }
}

/// v1's `add_subsystem(child, channels=["allowed"])` is the child's declared wiring.
#[tokio::test(start_paused = true)]
async fn v1_53_wiring_connects_only_the_declared_channels() {
    let mut net = Network::new("parent");
    net.add_channel(PassthroughChannel::new("allowed").build())
        .unwrap();
    net.add_channel(PassthroughChannel::new("denied").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("child").reads(["allowed"]),
        Probe {
            stop_after: Some(1),
            ..Probe::default()
        },
    )
    .unwrap();
    let mut stopped = net.run_for(Duration::from_millis(10)).await.unwrap();
    let child: Probe = stopped.take("child").unwrap();
    assert_eq!(child.seen, ["allowed"]);
    assert_eq!(child.denied, Some(ErrorKind::NotConnected));
}

/// v1's `launch()`: setup once, the subsystem takes exactly one step (it stops itself) on
/// its wired channel, the parent's channel runs, and can then be drained.
#[tokio::test(start_paused = true)]
async fn v1_54_launch_runs_setup_once_and_steps() {
    let mut net = Network::new("parent");
    let owned = net
        .add_channel(PassthroughChannel::new("allowed").build())
        .unwrap();
    let child = net
        .add_system(
            SystemSpec::new("child").tick_rate(100.0).reads(["allowed"]),
            Probe {
                stop_after: Some(1),
                ..Probe::default()
            },
        )
        .unwrap();
    let running = net.start().await.unwrap();
    assert_eq!(child.finished().await, SystemState::Stopped);
    assert_eq!(owned.state(), ChannelState::Running);
    let mut stopped = running.stop().await.unwrap(); // stops, then drains the channels
    let probe: Probe = stopped.take("child").unwrap();
    assert_eq!((probe.setups, probe.steps), (1, 1));
    assert_eq!(probe.seen, ["allowed"]);
    assert_eq!(owned.state(), ChannelState::Stopped);
    owned.drain(None).await.unwrap();
}

/// v1's `run(tick_rate=1000)` with a pause on step 1. Adapted (spec §5.4): a pause is
/// real, so no steps happen while paused; after resume it steps again and ends STOPPED
/// with at least 3 steps.
#[tokio::test(start_paused = true)]
async fn v1_55_run_pause_resume_stop() {
    let ch = PassthroughChannel::new("c").build();
    ch.start().await.unwrap();
    // The handle exists only once spawned: the probe gets it through a cell.
    let cell: Arc<std::sync::Mutex<Option<sssn::system::SystemHandle>>> = Arc::default();
    struct Pauser {
        cell: Arc<std::sync::Mutex<Option<sssn::system::SystemHandle>>>,
        steps: u32,
    }
    #[async_trait::async_trait]
    impl System for Pauser {
        async fn step(&mut self, _: &mut SystemContext) -> sssn::Result<()> {
            self.steps += 1;
            if self.steps == 1
                && let Some(h) = self.cell.lock().unwrap().as_ref()
            {
                h.pause();
            }
            Ok(())
        }
    }
    let running = sssn::system::spawn(
        SystemSpec::new("s").tick_rate(1000.0),
        Pauser {
            cell: cell.clone(),
            steps: 0,
        },
        [ch],
    )
    .await
    .unwrap();
    let h = running.handle().clone();
    *cell.lock().unwrap() = Some(h.clone());
    assert_eq!(
        h.wait_for(|s| s == SystemState::Paused).await,
        SystemState::Paused
    );
    let paused_at = h.steps();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.steps(), paused_at, "no steps while paused");
    h.resume();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(h.state(), SystemState::Running);
    let pauser = running.stop().await.unwrap();
    assert_eq!(h.state(), SystemState::Stopped);
    assert!(pauser.steps >= 3, "{} steps", pauser.steps);
}

// ----- tests/channels/test_broadcast.py -----------------------------------------------------

#[tokio::test]
async fn v1_61_broadcast_refuses_exclusive_reads() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    let opts = ReadOptions {
        exclusive: true,
        ..ReadOptions::default()
    };
    let err = ch.read_with("r", opts).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
    assert!(err.message().contains("exclusive"));
}

#[tokio::test]
async fn v1_62_broadcast_mapping_readable_with_sender() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    ch.write("writer", &json!({"k": 1})).await.unwrap();
    let m = ch.read("r", 10).await.unwrap();
    assert_eq!(m[0].sender_id, "writer");
    assert_eq!(m[0].data::<serde_json::Value>().unwrap(), json!({"k": 1}));
}

#[tokio::test]
async fn v1_63_two_readers_see_both() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    ch.write("w", &2).await.unwrap();
    assert_eq!(ch.read("a", 10).await.unwrap().len(), 2);
    assert_eq!(ch.read("b", 10).await.unwrap().len(), 2);
}

/// v1 called both subscribers inside `write`. Here the message is in both subscribers'
/// queues when `write` returns: each `recv` is ready at once, without waiting.
#[tokio::test]
async fn v1_64_two_subscribers_receive() {
    use futures::FutureExt as _;
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    let (mut a, mut b) = (
        ch.subscribe("a").await.unwrap(),
        ch.subscribe("b").await.unwrap(),
    );
    assert!(
        a.recv().now_or_never().is_none(),
        "nothing before the write"
    );
    let id = ch.write("w", &1).await.unwrap();
    for sub in [&mut a, &mut b] {
        let entry = sub
            .recv()
            .now_or_never()
            .expect("delivered before write returned")
            .unwrap();
        assert_eq!(vec![entry.message.id.clone()], vec![id.clone()]);
    }
}

#[tokio::test]
async fn v1_65_unsubscribe_stops_delivery() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    let mut a = ch.subscribe("a").await.unwrap();
    ch.unsubscribe("a");
    ch.write("w", &1).await.unwrap();
    assert!(a.recv().await.is_err());
}

// ----- tests/channels/test_passthrough.py ---------------------------------------------------

#[tokio::test]
async fn v1_66_start_sets_flags_without_loop() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    assert!(ch.is_accepting_writes());
    assert_eq!(ch.state(), sssn::channel::ChannelState::Running);
    assert!(!ch.has_loop());
}

#[tokio::test]
async fn v1_67_write_mapping_reads_back_as_generic_content() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let id = ch
        .write("w", &json!({"note": "Hello, SSSN!"}))
        .await
        .unwrap();
    assert!(!id.is_empty());
    let m = ch.read("r", 10).await.unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].content.get::<GenericContent>().unwrap().data,
        json!({"note": "Hello, SSSN!"})
    );
}

#[tokio::test]
async fn v1_68_returned_id_is_the_stored_id() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(ch.read("r", 1).await.unwrap()[0].id, id);
}

#[tokio::test]
async fn v1_69_direct_write_keeps_the_message() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let m = ChannelMessage::with_data("w", &1).unwrap();
    assert_eq!(ch.write_message("w", m.clone()).await.unwrap(), m.id);
    assert_eq!(*ch.read("r", 1).await.unwrap()[0], m);
}

/// Adapted: in Rust a direct write takes a `ChannelMessage` by type; what v1 rejected at
/// run time (a non-message) cannot be passed. Malformed messages are still refused.
#[tokio::test]
async fn v1_70_direct_write_rejects_malformed_messages() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let mut m = ChannelMessage::with_data("w", &1).unwrap();
    m.id.clear();
    assert_eq!(
        ch.write_message("w", m).await.unwrap_err().kind(),
        ErrorKind::InvalidMessage
    );
}

#[tokio::test]
async fn v1_71_not_accepting_writes() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    ch.drain(None).await.unwrap();
    let err = ch.write("w", &1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown);
    assert!(err.message().contains("not accepting writes"));
}

#[tokio::test]
async fn v1_72_two_writes_two_messages() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    ch.write("w", &2).await.unwrap();
    assert_eq!(ch.read("r", 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn v1_73_cursor_advances() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    ch.write("w", &2).await.unwrap();
    assert_eq!(ch.read("r", 1).await.unwrap().len(), 1);
    assert_eq!(ch.read("r", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn v1_74_empty_acl_refuses_read() {
    let ch = PassthroughChannel::new("p")
        .security(Arc::new(AclSecurity::default()))
        .build();
    ch.start().await.unwrap();
    assert_eq!(
        ch.read("unknown", 1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[tokio::test]
async fn v1_75_subscriber_receives_written_id() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let mut sub = ch.subscribe("s").await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().message.id, id);
}

#[tokio::test]
async fn v1_76_unsubscribed_gets_nothing() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let mut sub = ch.subscribe("s").await.unwrap();
    ch.unsubscribe("s");
    ch.write("w", &1).await.unwrap();
    assert!(sub.recv().await.is_err());
}

#[tokio::test]
async fn v1_77_empty_acl_refuses_subscribe() {
    let ch = PassthroughChannel::new("p")
        .security(Arc::new(AclSecurity::default()))
        .build();
    ch.start().await.unwrap();
    assert_eq!(
        ch.subscribe("unknown").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

/// Through the channel's write path: a written message is stored as it is, every field.
#[tokio::test]
async fn v1_78_convert_keeps_a_message() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let m = ChannelMessage::with_data("me", &1)
        .unwrap()
        .correlation_id("corr")
        .reply_to("replies")
        .meta("k", "v");
    let id = ch
        .write_payload("me", sssn::Payload::Message(m.clone()))
        .await
        .unwrap();
    assert_eq!(id, m.id);
    let stored = ch.read("r", 10).await.unwrap().remove(0);
    assert_eq!(stored.to_json(), m.to_json(), "stored as given");
}

/// Through the channel's write path: a content becomes the message's content, unchanged.
#[tokio::test]
async fn v1_79_convert_wraps_content() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    let c = Content::from_json(r#"{"celsius":2.5,"unit":"C"}"#).unwrap();
    let id = ch.write_content("me", c.clone()).await.unwrap();
    let stored = ch.read("r", 10).await.unwrap().remove(0);
    assert_eq!(stored.id, id);
    assert_eq!(stored.content.json(), c.json());
    assert_eq!(stored.sender_id, "me");
}

/// Through the channel's write path: plain data is wrapped as `{"data": …}`.
#[tokio::test]
async fn v1_80_convert_wraps_data_in_generic_content() {
    let ch = PassthroughChannel::new("p").build();
    ch.start().await.unwrap();
    ch.write("me", &json!([1, 2])).await.unwrap();
    let stored = ch.read("r", 10).await.unwrap().remove(0);
    assert_eq!(stored.content.json(), r#"{"data":[1,2]}"#);
    assert_eq!(stored.data::<Vec<i32>>().unwrap(), vec![1, 2]);
    let generic: GenericContent = stored.content.get().unwrap();
    assert_eq!(generic.data, json!([1, 2]));
}

// ----- tests/channels/test_work_queue.py (claim_timeout 300) -------------------------------

async fn queue(n: usize) -> (WorkQueueChannel, Vec<String>) {
    let ch = WorkQueueChannel::new("q")
        .claim_timeout(Duration::from_secs(300))
        .build();
    ch.start().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(ch.write("w", &i).await.unwrap());
    }
    (ch, ids)
}

#[tokio::test]
async fn v1_81_claim_two_of_three() {
    let (ch, m) = queue(3).await;
    let c = ch.claim("w1", 2).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.message.id.clone()).collect::<Vec<_>>(),
        m[..2]
    );
}

#[tokio::test]
async fn v1_82_shared_read_refused() {
    let (ch, _) = queue(1).await;
    // The typed handle has no `read` (it does not compile); the erased one refuses it.
    let err = ch.erased().read("r", 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
    assert!(err.message().contains("exclusive"));
}

#[tokio::test]
async fn v1_83_default_read_refused() {
    let (ch, _) = queue(1).await;
    assert_eq!(
        ch.read_with("r", ReadOptions::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UnsupportedOperation
    );
}

#[tokio::test]
async fn v1_84_second_worker_gets_the_third() {
    let (ch, _) = queue(3).await;
    ch.claim("w1", 2).await.unwrap();
    assert_eq!(ch.claim("w2", 10).await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn v1_85_acked_item_never_reappears() {
    let (ch, m) = queue(2).await;
    ch.claim("w1", 2).await.unwrap();
    assert!(ch.ack("w1", &[m[0].clone()]).await.unwrap().all_done());
    tokio::time::advance(Duration::from_secs(301)).await;
    ch.reclaim_expired().await.unwrap();
    let c = ch.claim("w2", 10).await.unwrap();
    assert_eq!(
        c.iter().map(|c| c.message.id.clone()).collect::<Vec<_>>(),
        vec![m[1].clone()]
    );
}

#[tokio::test]
async fn v1_86_nacked_item_goes_to_another_worker() {
    let (ch, m) = queue(1).await;
    ch.claim("w1", 1).await.unwrap();
    assert!(ch.nack("w1", &m).await.unwrap().all_done());
    assert_eq!(ch.claim("w2", 1).await.unwrap()[0].message.id, m[0]);
}

/// Adapted (fenced claims): the non-holder's nack settles nothing and reports the id as
/// stale (`StaleClaim` as an error); the claim stays w1's.
#[tokio::test]
async fn v1_87_nack_by_non_holder_leaves_claim() {
    let (ch, m) = queue(1).await;
    ch.claim("w1", 1).await.unwrap();
    let settled = ch.nack("w2", &m).await.unwrap();
    assert!(settled.done.is_empty());
    assert_eq!(settled.stale, m);
    assert_eq!(
        settled.into_result().unwrap_err().kind(),
        ErrorKind::StaleClaim
    );
    assert!(ch.claim("w3", 1).await.unwrap().is_empty());
    assert_eq!(ch.ack("w1", &m).await.unwrap().done, m, "still w1's");
}

/// Adapted: the lease is fixed when the channel opens its store (it is JetStream's
/// `ack_wait`), so instead of lowering `claim_timeout` at run time, a 1 s lease runs out.
#[tokio::test(start_paused = true)]
async fn v1_88_lazy_reclaim_on_next_claim() {
    let ch = WorkQueueChannel::new("q")
        .claim_timeout(Duration::from_secs(1))
        .build();
    ch.start().await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    ch.claim("w1", 1).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(ch.claim("w2", 1).await.unwrap()[0].message.id, id);
}

#[tokio::test(start_paused = true)]
async fn v1_89_maintenance_removes_expired_claims() {
    let ch = WorkQueueChannel::new("q")
        .claim_timeout(Duration::from_secs(1))
        .build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    ch.claim("w1", 1).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    ch.maintain().await.unwrap();
    let s = ch.stats().await.unwrap();
    assert_eq!((s.in_flight, s.backlog), (0, 1));
}
