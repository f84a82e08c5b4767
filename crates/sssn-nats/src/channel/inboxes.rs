//! Claims per recipient (mailboxes) on JetStream: not mapped yet.
//!
//! A mailbox opens here as its log (shared reads, subscriptions, history, retention all
//! work) with a claim queue that has no inboxes: `claim` and settling refuse with
//! [`ErrorKind::UnsupportedOperation`], while the read-only and maintenance parts answer
//! truthfully for a mailbox nobody can claim from (no stats, no dead letters, nothing to
//! reclaim). Why not yet: the message subjects carry the message id, not the recipient,
//! so a per-recipient consumer cannot filter by subject; it would walk every message of
//! the channel, and a redrive of a message addressed to everyone cannot be undone on a
//! consumer that acknowledged it (see the crate README, "Claims on mailboxes").

use std::time::Duration;

use async_trait::async_trait;
use sssn::store::{ClaimQueue, ClaimStats, Claimed, DeadLetter, Settle, Settled};
use sssn::{Error, ErrorKind, Result};

/// The claim queue of a mailbox on JetStream: no inboxes.
pub(super) struct NoInboxes {
    pub(super) channel: String,
}

impl NoInboxes {
    fn refused(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::UnsupportedOperation,
            format!(
                "{what} on mailbox '{}': the JetStream store has no claims per recipient \
                 yet (use the memory or SQLite store for claims on a mailbox, or shared \
                 reads and subscriptions here)",
                self.channel
            ),
        )
    }
}

#[async_trait]
impl ClaimQueue for NoInboxes {
    async fn claim(&self, _claimer: &str, _limit: usize) -> Result<Vec<Claimed>> {
        Err(self.refused("claim"))
    }

    async fn settle(&self, _claimer: &str, _ids: &[&str], how: Settle) -> Result<Settled> {
        Err(self.refused(how.name()))
    }

    async fn reclaim_expired(&self) -> Result<usize> {
        Ok(0)
    }

    async fn dead_letters(&self, _limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(Vec::new())
    }

    async fn redrive(&self, ids: &[&str]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        Err(self.refused("redrive"))
    }

    async fn stats(&self) -> Result<ClaimStats> {
        Ok(ClaimStats::default())
    }

    async fn set_lease(&self, _lease: Duration) -> Result<()> {
        Err(self.refused("a claim timeout change"))
    }
}
