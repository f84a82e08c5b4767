//! The conformance suite: one set of test bodies that every [`Store`] must pass.
//!
//! A backend crate instantiates it in its tests with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! sssn::conformance_tests!(real_time, async { Some(MyHarness::new().await) });
//! ```
//!
//! Memory runs it with paused tokio time (`paused`); backends with real I/O threads or a
//! server (SQLite, NATS) run it in real time (`real_time`), so every duration here is short.
//! A harness factory that returns `None` (or `Err(reason)`, see [`Backend`]) skips the test
//! with one line on stderr naming the test and the reason (e.g. no NATS server).
//!
//! This file holds the harness, the macro and the helpers the cases share; the cases live
//! in one file per capability (all re-exported here, so a case is
//! `sssn::conformance::<name>` wherever it is written):
//!
//! | file | cases |
//! |---|---|
//! | `conformance/reads.rs` | shared reads: a cursor per reader, mailbox readers, the work queue's refusal |
//! | `conformance/writes.rs` | batches, retried ids, the sender a write may name |
//! | `conformance/claims.rs` | claim, ack, nack, ack-and-claim, fencing, the broadcast's refusal |
//! | `conformance/leases.rs` | lease expiry, `extend`, the claim timeout changed while running |
//! | `conformance/dead_letters.rs` | `max_deliveries`, `reject`, `redrive` |
//! | `conformance/mailbox_claims.rs` | claims per recipient on mailboxes |
//! | `conformance/subscriptions.rs` | the live feed: lag, gaps, resume |
//! | `conformance/removal.rs` | `evict`, `remove`, `clear`, `clear_where` keep cursors valid |
//! | `conformance/retention.rs` | retention by age and count, changed while running |
//! | `conformance/history.rs` | by id, time range, latest N; mailboxes and rights |
//! | `conformance/discovery.rs` | discovery channels and what they ask of a store (`replace`) |
//! | `conformance/security.rs` | rights on every operation |
//! | `conformance/stats.rs` | what `stats` reports |
//! | `conformance/periodic.rs` | the pull loop and buffered writes |
//! | `conformance/lifecycle.rs` | start, drain, stop, reopen |

#![allow(missing_docs, clippy::missing_panics_doc)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::channel::kind::{Kind, Typed};
use crate::channel::{Channel, ChannelBuilder};
use crate::message::ChannelMessage;
use crate::store::Store;

mod claims;
pub use claims::*;
mod dead_letters;
pub use dead_letters::*;
mod discovery;
pub use discovery::*;
mod history;
pub use history::*;
mod leases;
pub use leases::*;
mod lifecycle;
pub use lifecycle::*;
mod mailbox_claims;
pub use mailbox_claims::*;
mod periodic;
pub use periodic::*;
mod reads;
pub use reads::*;
mod removal;
pub use removal::*;
mod retention;
pub use retention::*;
mod security;
pub use security::*;
mod stats;
pub use stats::*;
mod subscriptions;
pub use subscriptions::*;
mod writes;
pub use writes::*;

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
            mailbox_ack_and_claim_stays_in_the_callers_inbox,
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

/// Asserts that a settle went through but found no live claim of the caller's: as a
/// result, it is the `StaleClaim` error.
#[track_caller]
fn assert_stale(settled: crate::error::Result<crate::store::Settled>) {
    let err = settled.expect("settle").into_result().unwrap_err();
    assert_eq!(err.kind(), crate::error::ErrorKind::StaleClaim, "{err}");
}

async fn recv(sub: &mut crate::channel::Subscription) -> crate::store::Entry {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("delivery in time")
        .expect("a message")
}
