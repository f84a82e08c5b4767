//! The conformance suite: one set of test bodies that every [`Store`] must pass.
//!
//! A backend crate instantiates it in its tests with [`conformance_tests!`]:
//!
//! ```ignore
//! sssn::conformance_tests!(real_time, async { Some(MyHarness::new().await) });
//! ```
//!
//! Memory runs it with paused tokio time (`paused`); backends with real I/O threads or a
//! server (SQLite, NATS) run it in real time (`real_time`), so every duration here is short.
//! A harness factory that returns `None` (or `Err(reason)`, see [`Backend`]) skips the test
//! with one line on stderr naming the test and the reason (e.g. no NATS server).

#![allow(missing_docs, clippy::missing_panics_doc)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::channel::kind::{Kind, Typed};
use crate::channel::{
    BroadcastChannel, Channel, ChannelBuilder, MailboxChannel, PassthroughChannel, PeriodicChannel,
    RecvError, WorkQueueChannel, source_fn,
};
use crate::error::ErrorKind;
use crate::message::{ChannelMessage, Payload};
use crate::security::{AclSecurity, Role};
use crate::store::Store;

mod discovery;
pub use discovery::*;
mod mailbox_claims;
pub use mailbox_claims::*;

/// What a backend provides to run the suite.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
    /// Lets `d` pass (advance paused time, or sleep).
    async fn advance(&self, d: Duration);
    /// Whether the store has claims per recipient (mailboxes). A store without them must
    /// refuse a mailbox claim with `UnsupportedOperation` and still serve the mailbox's
    /// log; the mailbox-claim cases check exactly that on it.
    fn claims_per_recipient(&self) -> bool {
        true
    }
}

/// Harness for the memory store under paused time.
#[derive(Default)]
pub struct MemoryHarness {
    store: Arc<crate::store::MemoryStore>,
}

#[async_trait]
impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    async fn advance(&self, d: Duration) {
        tokio::time::advance(d).await;
    }
}

/// A harness whose time passes by sleeping (for real-I/O backends).
pub struct RealTimeHarness {
    store: Arc<dyn Store>,
}

impl RealTimeHarness {
    /// Wraps a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Harness for RealTimeHarness {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    async fn advance(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// What a harness factory returns: a harness, or why the backend is not available.
///
/// `Option<H>` (`None`: "backend not available") and `Result<H, String>` (`Err`: the
/// reason, printed as it is) both work.
pub trait Backend {
    /// The harness.
    type H: Harness;
    /// The harness, or the reason for skipping.
    fn into_harness(self) -> Result<Self::H, String>;
}

impl<H: Harness> Backend for Option<H> {
    type H = H;
    fn into_harness(self) -> Result<H, String> {
        self.ok_or_else(|| "backend not available".to_owned())
    }
}

impl<H: Harness> Backend for Result<H, String> {
    type H = H;
    fn into_harness(self) -> Result<H, String> {
        self
    }
}

/// Generates one `#[tokio::test]` per conformance test.
///
/// `$mode` is `paused` or `real_time`; `$make` is an expression of a future returning a
/// [`Backend`]: `Option<impl Harness>` or `Result<impl Harness, String>` (`None`/`Err`
/// skips, with one line on stderr: `SKIPPED <module>::<test>: <reason>`).
#[macro_export]
macro_rules! conformance_tests {
    ($mode:ident, $make:expr) => {
        $crate::conformance_tests!(@each $mode, $make;
            shared_reads_follow_the_cursor, read_after_id, independent_cursors,
            claims_do_not_hide_from_shared_readers, ack_consumes, ack_and_claim_takes_the_next_batch,
            claim_order_and_limit,
            acked_never_reappears, nack_releases_to_others, nack_by_non_holder_is_stale,
            lease_expiry_makes_claimable, ack_after_expiry_is_fenced, nack_with_delay,
            extend_keeps_the_lease, max_deliveries_dead_letters, reject_dead_letters,
            work_queue_refuses_shared_reads, broadcast_refuses_claims,
            broadcast_readers_see_everything, subscribe_and_unsubscribe,
            lagging_subscriber_catches_up, subscribers_are_told_of_removed_messages,
            subscribe_after_resumes, mailbox_delivers_every_addressed_message,
            evict_does_not_shift_cursors, remove_and_clear_keep_cursors_valid,
            retention_runs_on_every_kind, count_retention_follows_the_writes,
            duplicate_ids_are_idempotent, stats_reflect_state,
            discovery_registry, replace_keeps_one_version_per_id, replace_never_hides_the_id, discovery_checks_rights_and_life_cycle,
            discovery_index_follows_other_handles, discovery_refresh_never_hides_the_record,
            periodic_channel_pulls, security_on_every_operation,
            write_batch_and_entries_after, direct_writes_cannot_spoof, lifecycle_and_drain,
            reopen_keeps_contents, history_by_id_time_and_latest, history_respects_mailboxes_and_rights,
            clear_where_removes_only_matches, retention_changes_while_running,
            mailbox_claims_take_only_the_claimers_messages,
            mailbox_everyone_message_is_claimed_once_per_recipient,
            mailbox_claims_are_fenced_per_recipient,
            mailbox_lease_expiry_requeues_for_that_recipient,
            mailbox_dead_letters_per_recipient, mailbox_claim_stats,
            mailbox_claims_survive_reopen);
    };
    (@each paused, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $name() {
                match $crate::conformance::Backend::into_harness($make.await) {
                    Ok(h) => $crate::conformance::$name(&h).await,
                    // Written to stderr directly so `cargo test` shows it (print macros are captured).
                    Err(reason) => {
                        use ::std::io::Write as _;
                        let _ = writeln!(::std::io::stderr(), "SKIPPED {}::{}: {}", module_path!(), stringify!($name), reason);
                    }
                }
            }
        )*
    };
    (@each real_time, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                match $crate::conformance::Backend::into_harness($make.await) {
                    Ok(h) => $crate::conformance::$name(&h).await,
                    // Written to stderr directly so `cargo test` shows it (print macros are captured).
                    Err(reason) => {
                        use ::std::io::Write as _;
                        let _ = writeln!(::std::io::stderr(), "SKIPPED {}::{}: {}", module_path!(), stringify!($name), reason);
                    }
                }
            }
        )*
    };
}

pub(crate) fn uid(name: &str) -> String {
    format!(
        "{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub(crate) async fn started<K: Typed>(h: &impl Harness, b: ChannelBuilder<K>) -> Channel<K> {
    let ch = b.store(h.store()).build();
    ch.start().await.expect("start");
    ch
}

async fn write_n<K: Kind>(ch: &Channel<K>, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(ch.write("writer", &json!({"n": i})).await.expect("write"));
    }
    ids
}

fn ids_of(msgs: &[Arc<ChannelMessage>]) -> Vec<String> {
    msgs.iter().map(|m| m.id.clone()).collect()
}

const LEASE: Duration = Duration::from_millis(1000);

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

pub async fn claims_do_not_hide_from_shared_readers(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 3).await;
    let claimed = ch.claim("worker", 1).await.unwrap();
    assert_eq!(claimed[0].message.id, ids[0]);
    assert_eq!(ids_of(&ch.read("observer", 10).await.unwrap()), ids);
}

pub async fn ack_consumes(h: &impl Harness) {
    let ch = started(h, PassthroughChannel::new(uid("p")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 3).await;
    let claimed = ch.claim("worker", 2).await.unwrap();
    assert_eq!(
        ch.ack("worker", &claimed[1]).await.unwrap().done,
        vec![claimed[1].message.id.clone()]
    );
    assert_eq!(
        ids_of(&ch.read("r", 10).await.unwrap()),
        vec![ids[0].clone(), ids[2].clone()]
    );
}

pub async fn ack_and_claim_takes_the_next_batch(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 5).await;
    let claim_ids = |c: &[crate::store::Claimed]| -> Vec<String> {
        c.iter().map(|c| c.message.id.clone()).collect()
    };
    let first = ch.claim("w1", 2).await.unwrap();
    let (settled, next) = ch.ack_and_claim("w1", &first, 2).await.unwrap();
    assert_eq!(settled.done, ids[..2], "the batch is acknowledged");
    assert!(settled.stale.is_empty());
    assert_eq!(claim_ids(&next), ids[2..4], "and the next two are claimed");
    assert!(next.iter().all(|c| c.attempt == 1));
    // A stale id (already acknowledged) is reported; the rest is acknowledged and the
    // claim still happens.
    let again = [ids[0].clone(), ids[2].clone(), ids[3].clone()];
    let (settled, last) = ch.ack_and_claim("w1", &again, 10).await.unwrap();
    assert_eq!(settled.done, ids[2..4]);
    assert_eq!(settled.stale, ids[..1]);
    assert_eq!(claim_ids(&last), ids[4..], "at most what is there");
    // Fenced as an ack: another caller's claim stays, and it gets nothing more.
    let (settled, none) = ch.ack_and_claim("w2", &last, 10).await.unwrap();
    assert_eq!(settled.stale, ids[4..]);
    assert!(none.is_empty());
    // Limit 0 only acknowledges.
    let (settled, none) = ch.ack_and_claim("w1", &last, 0).await.unwrap();
    assert_eq!(settled.done, ids[4..]);
    assert!(none.is_empty());
    let s = ch.stats().await.unwrap();
    assert_eq!((s.stored, s.in_flight, s.acknowledged), (0, 0, 5));
}

pub async fn claim_order_and_limit(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 3).await;
    let a = ch.claim("w1", 2).await.unwrap();
    assert_eq!(
        a.iter().map(|c| c.message.id.clone()).collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(a.iter().all(|c| c.attempt == 1));
    let b = ch.claim("w2", 10).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].message.id, ids[2]);
    assert!(
        ch.claim("w1", 10).await.unwrap().is_empty(),
        "a holder never gets its items again"
    );
    assert!(ch.claim("w3", 0).await.unwrap().is_empty());
}

pub async fn acked_never_reappears(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 2).await;
    let claimed = ch.claim("w1", 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(ch.ack("w1", &ids[..1]).await.unwrap().all_done());
    h.advance(LEASE + Duration::from_millis(300)).await;
    ch.reclaim_expired().await.unwrap();
    let again = ch.claim("w2", 10).await.unwrap();
    assert_eq!(again.len(), 1, "only the unacknowledged item comes back");
    assert_eq!(again[0].message.id, ids[1]);
    assert_eq!(again[0].attempt, 2);
}

pub async fn nack_releases_to_others(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    assert_eq!(ch.nack("w1", &ids).await.unwrap().done.len(), 1);
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(again[0].message.id, ids[0]);
    assert_eq!(again[0].attempt, 2);
}

pub async fn nack_by_non_holder_is_stale(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    let settled = ch.nack("w2", &ids).await.unwrap();
    assert_eq!(settled.stale, ids, "the non-holder's nack is stale");
    let err = settled.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleClaim);
    assert!(
        ch.claim("w3", 1).await.unwrap().is_empty(),
        "the claim stays in place"
    );
    assert_eq!(
        ch.ack("w2", &ids)
            .await
            .unwrap()
            .into_result()
            .unwrap_err()
            .kind(),
        ErrorKind::StaleClaim
    );
    assert_eq!(ch.ack("w1", &ids).await.unwrap().done.len(), 1);
}

pub async fn lease_expiry_makes_claimable(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    h.advance(LEASE / 3).await;
    assert!(
        ch.claim("w2", 1).await.unwrap().is_empty(),
        "a live lease holds"
    );
    h.advance(LEASE).await;
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.id, ids[0]);
    assert_eq!(again[0].attempt, 2);
}

pub async fn ack_after_expiry_is_fenced(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    h.advance(LEASE + Duration::from_millis(300)).await;
    let settled = ch.ack("w1", &ids).await.unwrap();
    assert_eq!(settled.stale, ids, "a late ack is refused");
    assert!(settled.done.is_empty());
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "the message was not consumed by the late ack"
    );
    assert_eq!(
        ch.ack("w1", &ids)
            .await
            .unwrap()
            .into_result()
            .unwrap_err()
            .kind(),
        ErrorKind::StaleClaim
    );
    assert_eq!(ch.ack("w2", &ids).await.unwrap().done.len(), 1);
}

pub async fn nack_with_delay(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    let settled = ch.nack_after("w1", &ids, Duration::from_millis(800));
    assert!(settled.await.unwrap().all_done());
    assert!(
        ch.claim("w2", 1).await.unwrap().is_empty(),
        "not before the delay"
    );
    h.advance(Duration::from_millis(1300)).await;
    let again = ch.claim("w2", 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

pub async fn extend_keeps_the_lease(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 2)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w1", 1).await.unwrap();
    h.advance(LEASE * 3 / 2).await;
    assert_eq!(ch.extend("w1", &ids).await.unwrap().done.len(), 1);
    h.advance(LEASE).await;
    assert!(
        ch.claim("w2", 1).await.unwrap().is_empty(),
        "the extended lease still holds"
    );
    assert_eq!(ch.ack("w1", &ids).await.unwrap().done.len(), 1);
    assert_eq!(
        ch.extend("w1", &ids)
            .await
            .unwrap()
            .into_result()
            .unwrap_err()
            .kind(),
        ErrorKind::StaleClaim
    );
}

pub async fn max_deliveries_dead_letters(h: &impl Harness) {
    let ch = started(
        h,
        WorkQueueChannel::new(uid("q"))
            .claim_timeout(LEASE * 30)
            .max_deliveries(2),
    )
    .await;
    let ids = write_n(&ch, 2).await;
    for attempt in 1..=2 {
        let c = ch.claim("w", 1).await.unwrap();
        assert_eq!(c[0].message.id, ids[0]);
        assert_eq!(c[0].attempt, attempt);
        assert!(ch.nack("w", &ids[..1]).await.unwrap().all_done());
    }
    let next = ch.claim("w", 10).await.unwrap();
    assert_eq!(next.len(), 1, "the poison message is gone from the queue");
    assert_eq!(next[0].message.id, ids[1]);
    let dead = ch.dead_letters("admin", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, ids[0]);
    assert_eq!(dead[0].attempts, 2);
    assert!(
        dead[0].reason.contains("max_deliveries"),
        "{}",
        dead[0].reason
    );
    assert_eq!(ch.stats().await.unwrap().dead_lettered, 1);
    assert_eq!(ch.redrive("admin", &ids[..1]).await.unwrap(), 1);
    let back = ch.claim("w2", 10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].message.id, ids[0]);
    assert_eq!(back[0].attempt, 1, "redriven messages start over");
    assert!(ch.dead_letters("admin", 10).await.unwrap().is_empty());
}

pub async fn reject_dead_letters(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 1).await;
    ch.claim("w", 1).await.unwrap();
    let settled = ch.reject("w", &ids, "schema_reject").await.unwrap();
    assert_eq!(settled.done, ids);
    assert!(ch.claim("w", 1).await.unwrap().is_empty());
    let dead = ch.dead_letters("admin", 10).await.unwrap();
    assert_eq!(dead[0].reason, "schema_reject");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(
        dead[0].message.data::<serde_json::Value>().unwrap(),
        json!({"n": 0})
    );
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

/// Through the type-erased handle (the typed one has no `claim`: it does not compile).
pub async fn broadcast_refuses_claims(h: &impl Harness) {
    let ch: Channel = started(h, BroadcastChannel::new(uid("b"))).await.into();
    let ids = write_n(&ch, 1).await;
    let err = ch.claim("r", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
    assert!(err.message().contains("exclusive"), "{err}");
    assert_eq!(
        ch.ack("r", &ids).await.unwrap_err().kind(),
        ErrorKind::UnsupportedOperation
    );
    assert_eq!(
        ch.read("r", 10).await.unwrap().len(),
        1,
        "no reader can hide a message"
    );
}

pub async fn broadcast_readers_see_everything(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let ids = write_n(&ch, 2).await;
    assert_eq!(ids_of(&ch.read("a", 10).await.unwrap()), ids);
    assert_eq!(ids_of(&ch.read("b", 10).await.unwrap()), ids);
}

async fn recv(sub: &mut crate::channel::Subscription) -> crate::store::Entry {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("delivery in time")
        .expect("a message")
}

pub async fn subscribe_and_unsubscribe(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let mut a = ch.subscribe("a").await.unwrap();
    let mut b = ch.subscribe("b").await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(recv(&mut a).await.message.id, id);
    assert_eq!(recv(&mut b).await.message.id, id);
    ch.unsubscribe("a");
    ch.write("w", &2).await.unwrap();
    assert_eq!(a.recv().await.unwrap_err(), RecvError::Closed);
    assert_eq!(recv(&mut b).await.message.data::<i32>().unwrap(), 2);
}

pub async fn lagging_subscriber_catches_up(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b")).subscriber_capacity(4)).await;
    let mut sub = ch.subscribe("slow").await.unwrap();
    let ids = write_n(&ch, 20).await;
    // Give a backend with an asynchronous feed time to deliver.
    h.advance(Duration::from_millis(300)).await;
    let mut got = Vec::new();
    let mut lagged = 0;
    while got.len() < 20 {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("in time")
        {
            Ok(e) => got.push(e.message.id.clone()),
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        lagged > 0,
        "a subscriber 16 messages behind with capacity 4 is told it lagged"
    );
    assert_eq!(
        got, ids,
        "after the lag it catches up from the store, in order, no gaps"
    );
    let stats = ch.stats().await.unwrap();
    assert_eq!(stats.subscribers[0].queue_depth, 0);
}

/// What retention removed before a subscriber got it is reported as a gap, never skipped
/// silently.
pub async fn subscribers_are_told_of_removed_messages(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b")).subscriber_capacity(4)).await;
    let mut sub = ch.subscribe("slow").await.unwrap();
    write_n(&ch, 20).await;
    assert_eq!(ch.evict("admin", None, Some(5)).await.unwrap(), 15);
    h.advance(Duration::from_millis(300)).await;
    // Every sequence is delivered or inside a reported gap, once, in order.
    let mut next = 1;
    let mut lost = 0;
    while next <= 20 {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("in time")
        {
            Ok(e) => {
                assert_eq!(e.seq, next, "delivered in order");
                next += 1;
            }
            Err(RecvError::Gap { from, to }) => {
                assert_eq!(from, next, "a gap starts where delivery stopped");
                assert!(
                    to >= from && to <= 15,
                    "only removed messages are lost: {from}..={to}"
                );
                lost += to - from + 1;
                next = to + 1;
            }
            Err(RecvError::Lagged(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lost <= 15);
    // Resuming from a position whose successors are gone: the gap first, then the rest.
    let mut late = ch.subscribe_after("late", 3).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), late.recv())
        .await
        .expect("in time");
    assert_eq!(first.unwrap_err(), RecvError::Gap { from: 4, to: 15 });
    let second = tokio::time::timeout(Duration::from_secs(5), late.recv())
        .await
        .expect("in time");
    assert_eq!(second.unwrap().seq, 16);
}

pub async fn subscribe_after_resumes(h: &impl Harness) {
    let ch = started(h, BroadcastChannel::new(uid("b"))).await;
    let ids = write_n(&ch, 5).await;
    let entries = ch.entries_after("r", 0, 10).await.unwrap();
    let mut sub = ch.subscribe_after("r", entries[1].seq).await.unwrap();
    let more = write_n(&ch, 1).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(recv(&mut sub).await.message.id.clone());
    }
    let mut want = ids[2..].to_vec();
    want.extend(more);
    assert_eq!(got, want);
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

pub async fn retention_runs_on_every_kind(h: &impl Harness) {
    let ch = started(
        h,
        BroadcastChannel::new(uid("b"))
            .retention_max_count(3)
            .maintenance_interval(Duration::from_millis(200)),
    )
    .await;
    write_n(&ch, 5).await;
    h.advance(Duration::from_millis(700)).await;
    // Let the maintenance task run.
    for _ in 0..50 {
        if ch.stats().await.unwrap().stored == 3 {
            break;
        }
        h.advance(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ch.stats().await.unwrap().stored,
        3,
        "maintenance applied retention"
    );

    let aged = started(
        h,
        PassthroughChannel::new(uid("p")).retention_max_age(Duration::from_secs(1)),
    )
    .await;
    write_n(&aged, 2).await;
    // Past the 1 s age plus the coarsest time grain a store may keep (whole seconds).
    h.advance(Duration::from_millis(2500)).await;
    write_n(&aged, 1).await;
    aged.maintain().await.unwrap();
    assert_eq!(aged.stats().await.unwrap().stored, 1);
}

/// Count retention does not wait for maintenance: what is stored follows `max_count`, not
/// the write rate times the maintenance interval.
pub async fn count_retention_follows_the_writes(h: &impl Harness) {
    let ch = started(
        h,
        BroadcastChannel::new(uid("b"))
            .retention_max_count(50)
            .maintenance_interval(Duration::from_secs(3600)),
    )
    .await;
    let mut most = 0;
    for round in 0..20 {
        let batch = (0..10)
            .map(|i| Payload::Data(json!({"n": round * 10 + i})))
            .collect();
        ch.write_batch("writer", batch).await.unwrap();
        write_n(&ch, 1).await;
        most = most.max(ch.stats().await.unwrap().stored);
    }
    assert!(most <= 50 + 5 + 11, "stored {most} with max_count 50");
    let kept = ch.entries_after("r", 0, 1000).await.unwrap();
    assert!(kept.len() >= 50, "the newest 50 are kept ({})", kept.len());
    assert_eq!(
        kept.last().unwrap().seq,
        220,
        "the newest is the last written"
    );
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

pub async fn stats_reflect_state(h: &impl Harness) {
    let ch = started(h, WorkQueueChannel::new(uid("q")).claim_timeout(LEASE * 30)).await;
    let ids = write_n(&ch, 4).await;
    ch.claim("w", 2).await.unwrap();
    assert!(ch.ack("w", &ids[..1]).await.unwrap().all_done());
    let s = ch.stats().await.unwrap();
    assert_eq!(s.stored, 3);
    assert_eq!(s.backlog, 2);
    assert_eq!(s.in_flight, 1);
    assert_eq!(s.acknowledged, 1);
    assert!(s.oldest_unacked_age_secs.is_some());
    assert_eq!(s.head_seq, 4);

    let b = started(h, BroadcastChannel::new(uid("b"))).await;
    write_n(&b, 5).await;
    b.read("r", 2).await.unwrap();
    let s = b.stats().await.unwrap();
    let r = s.readers.iter().find(|r| r.reader == "r").unwrap();
    assert_eq!(r.lag, 3);
}

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

pub async fn security_on_every_operation(h: &impl Harness) {
    let acl = Arc::new(AclSecurity::default());
    acl.grant("reader", Role::Read);
    acl.grant("worker", Role::Write);
    acl.grant("boss", Role::Admin);
    let q = started(h, PassthroughChannel::new(uid("p")).security(acl.clone())).await;
    fn denied<T: std::fmt::Debug>(r: crate::Result<T>) {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::PermissionDenied);
    }
    assert_eq!(
        q.write("reader", &1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let id = q.write("worker", &1).await.unwrap();
    assert_eq!(
        q.read("nobody", 1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        q.subscribe("nobody").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(q.read("reader", 1).await.unwrap().len(), 1);
    assert_eq!(
        q.claim("reader", 1).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    q.claim("worker", 1).await.unwrap();
    denied(q.ack("reader", std::slice::from_ref(&id)).await);
    denied(q.nack("reader", std::slice::from_ref(&id)).await);
    denied(q.clear("worker").await);
    denied(q.evict("worker", None, Some(0)).await);
    denied(q.remove("worker", std::slice::from_ref(&id)).await);
    assert_eq!(q.ack("worker", &[id]).await.unwrap().done.len(), 1);
    assert_eq!(q.clear("boss").await.unwrap(), 0);
}

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

pub async fn retention_changes_while_running(h: &impl Harness) {
    let ch = started(
        h,
        BroadcastChannel::new(uid("b")).maintenance_interval(Duration::from_millis(200)),
    )
    .await;
    assert_eq!(ch.retention(), (None, None));
    write_n(&ch, 5).await;
    ch.set_retention("admin", None, Some(2)).unwrap();
    assert_eq!(ch.retention(), (None, Some(2)));
    // The next write trims to the new count (count retention follows the writes).
    write_n(&ch, 1).await;
    assert_eq!(ch.stats().await.unwrap().stored, 2);
    // Maintenance applies a new age limit.
    ch.set_retention("admin", Some(Duration::from_millis(100)), None)
        .unwrap();
    h.advance(Duration::from_millis(1500)).await;
    for _ in 0..50 {
        if ch.stats().await.unwrap().stored == 0 {
            break;
        }
        h.advance(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ch.stats().await.unwrap().stored,
        0,
        "aged out by maintenance"
    );
    ch.set_retention("admin", None, None).unwrap();
    write_n(&ch, 3).await;
    h.advance(Duration::from_millis(1500)).await;
    assert_eq!(
        ch.stats().await.unwrap().stored,
        3,
        "no limits: nothing goes"
    );
}

/// Not in the macro's list: JetStream fixes the lease when a channel opens (it refuses
/// with `UnsupportedOperation`); memory and SQLite call this from their tests.
pub async fn claim_timeout_changes_while_running(h: &impl Harness) {
    let q = started(
        h,
        WorkQueueChannel::new(uid("q")).claim_timeout(Duration::from_secs(300)),
    )
    .await;
    let ids = write_n(&q, 2).await;
    let long = q.claim("w1", 1).await.unwrap();
    q.set_claim_timeout("admin", Duration::from_millis(200))
        .await
        .unwrap();
    let short = q.claim("w1", 1).await.unwrap();
    assert_eq!(short[0].message.id, ids[1]);
    assert!(
        short[0].lease_until_ms < long[0].lease_until_ms,
        "the new claim has the short lease"
    );
    h.advance(Duration::from_millis(600)).await;
    let again = q.claim("w2", 10).await.unwrap();
    assert_eq!(
        ids_of(&again.iter().map(|c| c.message.clone()).collect::<Vec<_>>()),
        vec![ids[1].clone()],
        "the short lease lapsed; the long one, given before the change, still holds"
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
