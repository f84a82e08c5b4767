//! [`ChannelEndpoint`]: the one complete operation surface of a channel, implemented by
//! the local [`Channel`] and by remote clients (`sssn_http::RemoteChannel`), with the same
//! authorisation and error kinds on both paths.

use std::sync::Arc;

use async_trait::async_trait;

use crate::channel::{Channel, ChannelStats, ReadOptions, Subscription};
use crate::error::Result;
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Payload};
use crate::security::Principal;
use crate::store::{Claimed, DeadLetter, Entry, History, Seq, Settle, Settled};

/// A connected channel, local or remote. Every call names the caller; a remote endpoint
/// authenticates with its own token instead, and the server derives the identity from it
/// and authorises through the channel, exactly as a local call is authorised.
#[async_trait]
pub trait ChannelEndpoint: Send + Sync + 'static {
    /// The channel id.
    fn channel_id(&self) -> &str;
    /// The channel kind, when known without asking (a remote endpoint learns it from its
    /// first `info` answer, or from how it was connected).
    fn kind(&self) -> Option<ChannelKind>;
    /// Whether calls cross the network.
    fn is_remote(&self) -> bool;

    /// Identity snapshot (read rights).
    async fn info(&self, caller: &Principal) -> Result<ChannelInfo>;
    /// Health snapshot (read rights).
    async fn stats(&self, caller: &Principal) -> Result<ChannelStats>;

    /// Writes payloads; one id per payload.
    async fn write_batch(&self, caller: &Principal, payloads: Vec<Payload>) -> Result<Vec<String>>;
    /// v1 read: shared, or a claim when `exclusive`.
    async fn read(
        &self,
        caller: &Principal,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>>;

    /// Claims with attempt numbers and leases.
    async fn claim(&self, caller: &Principal, limit: usize) -> Result<Vec<Claimed>>;
    /// Settles claims (ack, nack, reject, extend); stale ids are reported, not failed.
    async fn settle(&self, caller: &Principal, ids: &[&str], how: Settle) -> Result<Settled>;
    /// Settles claims, then claims up to `limit` more: one call (one round trip, and on
    /// stores that can, one transaction) for a consumer's "done with these, next batch".
    /// The default makes the two calls in turn.
    async fn settle_and_claim(
        &self,
        caller: &Principal,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        let settled = self.settle(caller, ids, how).await?;
        let claimed = self.claim(caller, limit).await?;
        Ok((settled, claimed))
    }
    /// Dead letters, oldest first (admin).
    async fn dead_letters(&self, caller: &Principal, limit: usize) -> Result<Vec<DeadLetter>>;
    /// Puts dead letters back as new messages (admin).
    async fn redrive(&self, caller: &Principal, ids: &[&str]) -> Result<usize>;

    /// Push subscription (from now, or after a sequence).
    async fn subscribe(&self, caller: &Principal, after: Option<Seq>) -> Result<Subscription>;
    /// Ends the caller's subscriptions.
    async fn unsubscribe(&self, caller: &Principal);

    /// Removes every message (admin).
    async fn clear(&self, caller: &Principal) -> Result<usize>;
    /// Removes messages stored before `before` (epoch seconds), then all but the newest
    /// `max_count` (admin).
    async fn evict(
        &self,
        caller: &Principal,
        before: Option<f64>,
        max_count: Option<usize>,
    ) -> Result<usize>;
    /// Removes messages by id (admin).
    async fn remove(&self, caller: &Principal, ids: &[&str]) -> Result<usize>;

    /// A history query: stored messages by id, by arrival time, or the newest N (read
    /// rights; no cursor moves). Endpoints that cannot answer one say so.
    async fn history(&self, caller: &Principal, query: &History) -> Result<Vec<Entry>> {
        let _ = (caller, query);
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedOperation,
            format!(
                "channel '{}': this endpoint does not answer history queries",
                self.channel_id()
            ),
        ))
    }
}

#[async_trait]
impl ChannelEndpoint for Channel {
    fn channel_id(&self) -> &str {
        self.id()
    }
    fn kind(&self) -> Option<ChannelKind> {
        Some(Channel::kind(self))
    }
    fn is_remote(&self) -> bool {
        false
    }
    async fn info(&self, caller: &Principal) -> Result<ChannelInfo> {
        self.info_for(caller)
    }
    async fn stats(&self, caller: &Principal) -> Result<ChannelStats> {
        self.stats_for(caller).await
    }
    async fn write_batch(&self, caller: &Principal, payloads: Vec<Payload>) -> Result<Vec<String>> {
        Channel::write_batch(self, caller, payloads).await
    }
    async fn read(
        &self,
        caller: &Principal,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_with(caller, options).await
    }
    async fn claim(&self, caller: &Principal, limit: usize) -> Result<Vec<Claimed>> {
        self.claim_any(caller, limit).await
    }
    async fn settle(&self, caller: &Principal, ids: &[&str], how: Settle) -> Result<Settled> {
        self.settle_any(caller, ids, how).await
    }
    async fn settle_and_claim(
        &self,
        caller: &Principal,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>)> {
        self.settle_and_claim_any(caller, ids, how, limit).await
    }
    async fn dead_letters(&self, caller: &Principal, limit: usize) -> Result<Vec<DeadLetter>> {
        self.dead_letters_any(caller, limit).await
    }
    async fn redrive(&self, caller: &Principal, ids: &[&str]) -> Result<usize> {
        self.redrive_any(caller, ids).await
    }
    async fn subscribe(&self, caller: &Principal, after: Option<Seq>) -> Result<Subscription> {
        self.subscribe_from(caller, after).await
    }
    async fn unsubscribe(&self, caller: &Principal) {
        Channel::unsubscribe(self, caller);
    }
    async fn clear(&self, caller: &Principal) -> Result<usize> {
        Channel::clear(self, caller).await
    }
    async fn evict(
        &self,
        caller: &Principal,
        before: Option<f64>,
        max_count: Option<usize>,
    ) -> Result<usize> {
        Channel::evict(self, caller, before, max_count).await
    }
    async fn remove(&self, caller: &Principal, ids: &[&str]) -> Result<usize> {
        Channel::remove(self, caller, ids).await
    }
    async fn history(&self, caller: &Principal, query: &History) -> Result<Vec<Entry>> {
        Channel::history(self, caller, query).await
    }
}
