//! [`ChannelClient`]: a system's view of the channels it is wired to.
//!
//! A client carries one identity (the system id) and a directory of connected channels.
//! Each connection is a [`ChannelEndpoint`]: a local [`Channel`], or a remote one reached
//! over HTTP (the `sssn-http` crate provides `RemoteChannel`). Both give the same
//! operations, semantics and error kinds, so system code does not care where a channel
//! lives.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::channel::{Channel, ChannelStats, ReadOptions, Subscription};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelMessage, Content, Payload};
use crate::security::Principal;
use crate::store::{Claimed, Seq};

/// A connected channel, local or remote. Every call names the caller; a remote endpoint
/// authenticates with its own token instead, and the server derives the identity from it.
#[async_trait]
pub trait ChannelEndpoint: Send + Sync + 'static {
    /// Whether calls cross the network.
    fn is_remote(&self) -> bool;
    /// Identity snapshot.
    async fn info(&self, caller: &Principal) -> Result<ChannelInfo>;
    /// Writes payloads; one id per payload.
    async fn write_batch(&self, caller: &Principal, payloads: Vec<Payload>) -> Result<Vec<String>>;
    /// v1 read: shared, or a claim when `exclusive`.
    async fn read(
        &self,
        caller: &Principal,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>>;
    /// Claims with attempt numbers.
    async fn claim(&self, caller: &Principal, limit: usize) -> Result<Vec<Claimed>>;
    /// Acknowledges claims.
    async fn ack(&self, caller: &Principal, ids: &[String]) -> Result<usize>;
    /// Releases claims, optionally after a delay.
    async fn nack(
        &self,
        caller: &Principal,
        ids: &[String],
        delay: Option<Duration>,
    ) -> Result<usize>;
    /// Dead-letters claims with a reason.
    async fn reject(&self, caller: &Principal, ids: &[String], reason: &str) -> Result<usize>;
    /// Renews leases.
    async fn extend(&self, caller: &Principal, ids: &[String]) -> Result<usize>;
    /// Push subscription (from now, or after a sequence).
    async fn subscribe(&self, caller: &Principal, after: Option<Seq>) -> Result<Subscription>;
    /// Ends the caller's subscriptions.
    async fn unsubscribe(&self, caller: &Principal);
    /// Health snapshot.
    async fn stats(&self, caller: &Principal) -> Result<ChannelStats>;
}

#[async_trait]
impl ChannelEndpoint for Channel {
    fn is_remote(&self) -> bool {
        false
    }
    async fn info(&self, _: &Principal) -> Result<ChannelInfo> {
        Ok(Channel::info(self))
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
        Channel::claim(self, caller, limit).await
    }
    async fn ack(&self, caller: &Principal, ids: &[String]) -> Result<usize> {
        Channel::ack(self, caller, ids).await
    }
    async fn nack(
        &self,
        caller: &Principal,
        ids: &[String],
        delay: Option<Duration>,
    ) -> Result<usize> {
        match delay {
            Some(d) => self.nack_after(caller, ids, d).await,
            None => Channel::nack(self, caller, ids).await,
        }
    }
    async fn reject(&self, caller: &Principal, ids: &[String], reason: &str) -> Result<usize> {
        Channel::reject(self, caller, ids, reason).await
    }
    async fn extend(&self, caller: &Principal, ids: &[String]) -> Result<usize> {
        Channel::extend(self, caller, ids).await
    }
    async fn subscribe(&self, caller: &Principal, after: Option<Seq>) -> Result<Subscription> {
        match after {
            Some(seq) => self.subscribe_after(caller, seq).await,
            None => Channel::subscribe(self, caller).await,
        }
    }
    async fn unsubscribe(&self, caller: &Principal) {
        Channel::unsubscribe(self, caller);
    }
    async fn stats(&self, caller: &Principal) -> Result<ChannelStats> {
        self.authorize(caller, crate::security::Operation::Read)?;
        Channel::stats(self).await
    }
}

/// A system's channel directory and identity. Clones share the directory.
#[derive(Clone)]
pub struct ChannelClient {
    principal: Principal,
    endpoints: Arc<RwLock<BTreeMap<String, Arc<dyn ChannelEndpoint>>>>,
}

impl std::fmt::Debug for ChannelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelClient")
            .field("system_id", &self.principal.id)
            .field("channels", &self.channel_ids())
            .finish()
    }
}

impl ChannelClient {
    /// A client acting as `system_id`, with no channels connected.
    pub fn new(system_id: impl Into<String>) -> Self {
        Self {
            principal: Principal::local(system_id),
            endpoints: Arc::new(RwLock::new(BTreeMap::new())),
        }
    }

    /// The identity this client reads and writes as.
    pub fn system_id(&self) -> &str {
        &self.principal.id
    }

    /// Connects a local channel under `id` (replacing an earlier connection).
    pub fn connect(&self, id: impl Into<String>, channel: Channel) {
        self.connect_endpoint(id, Arc::new(channel));
    }

    /// Connects any endpoint (e.g. a remote channel) under `id`.
    pub fn connect_endpoint(&self, id: impl Into<String>, endpoint: Arc<dyn ChannelEndpoint>) {
        self.endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.into(), endpoint);
    }

    /// Forgets the connection `id`; returns whether it existed.
    pub fn disconnect(&self, id: &str) -> bool {
        self.endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .is_some()
    }

    /// Connected channel ids, sorted (v1's `channel_directory`).
    pub fn channel_ids(&self) -> Vec<String> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Whether `id` is connected.
    pub fn is_connected(&self, id: &str) -> bool {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// The endpoint connected under `id`.
    pub fn endpoint(&self, id: &str) -> Result<Arc<dyn ChannelEndpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotConnected,
                    format!("Channel '{id}' is not connected."),
                )
            })
    }

    /// Writes raw data (`{"data": …}`); returns the message id.
    pub async fn write<T: Serialize + ?Sized>(&self, id: &str, data: &T) -> Result<String> {
        let value = serde_json::to_value(data)
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("data: {e}")))?;
        self.write_payload(id, Payload::Data(value)).await
    }

    /// Writes content as is.
    pub async fn write_content(&self, id: &str, content: Content) -> Result<String> {
        self.write_payload(id, Payload::Content(content)).await
    }

    /// Direct write of a complete message (its sender must be this system).
    pub async fn write_message(&self, id: &str, message: ChannelMessage) -> Result<String> {
        self.write_payload(id, Payload::Message(message)).await
    }

    /// Writes one payload.
    pub async fn write_payload(&self, id: &str, payload: Payload) -> Result<String> {
        let mut ids = self.write_batch(id, vec![payload]).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Writes several payloads at once.
    pub async fn write_batch(&self, id: &str, payloads: Vec<Payload>) -> Result<Vec<String>> {
        self.endpoint(id)?
            .write_batch(&self.principal, payloads)
            .await
    }

    /// Shared read of up to `limit` messages from this system's cursor.
    pub async fn read(&self, id: &str, limit: usize) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_with(
            id,
            ReadOptions {
                limit,
                ..ReadOptions::default()
            },
        )
        .await
    }

    /// v1 read with all options.
    pub async fn read_with(
        &self,
        id: &str,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        self.endpoint(id)?.read(&self.principal, options).await
    }

    /// Claims up to `limit` messages.
    pub async fn claim(&self, id: &str, limit: usize) -> Result<Vec<Claimed>> {
        self.endpoint(id)?.claim(&self.principal, limit).await
    }

    /// Acknowledges claims.
    pub async fn ack(&self, id: &str, ids: &[String]) -> Result<usize> {
        self.endpoint(id)?.ack(&self.principal, ids).await
    }

    /// Releases claims now.
    pub async fn nack(&self, id: &str, ids: &[String]) -> Result<usize> {
        self.endpoint(id)?.nack(&self.principal, ids, None).await
    }

    /// Releases claims after `delay`.
    pub async fn nack_after(&self, id: &str, ids: &[String], delay: Duration) -> Result<usize> {
        self.endpoint(id)?
            .nack(&self.principal, ids, Some(delay))
            .await
    }

    /// Dead-letters claims.
    pub async fn reject(&self, id: &str, ids: &[String], reason: &str) -> Result<usize> {
        self.endpoint(id)?
            .reject(&self.principal, ids, reason)
            .await
    }

    /// Renews leases.
    pub async fn extend(&self, id: &str, ids: &[String]) -> Result<usize> {
        self.endpoint(id)?.extend(&self.principal, ids).await
    }

    /// Subscribes to new messages.
    pub async fn subscribe(&self, id: &str) -> Result<Subscription> {
        self.endpoint(id)?.subscribe(&self.principal, None).await
    }

    /// Subscribes starting after sequence `after`.
    pub async fn subscribe_after(&self, id: &str, after: Seq) -> Result<Subscription> {
        self.endpoint(id)?
            .subscribe(&self.principal, Some(after))
            .await
    }

    /// Ends this system's subscriptions on `id` (no error if not connected).
    pub async fn unsubscribe(&self, id: &str) {
        if let Ok(endpoint) = self.endpoint(id) {
            endpoint.unsubscribe(&self.principal).await;
        }
    }

    /// Channel identity.
    pub async fn info(&self, id: &str) -> Result<ChannelInfo> {
        self.endpoint(id)?.info(&self.principal).await
    }

    /// Channel health.
    pub async fn stats(&self, id: &str) -> Result<ChannelStats> {
        self.endpoint(id)?.stats(&self.principal).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::BroadcastChannel;

    #[tokio::test]
    async fn routes_to_local_channels_and_reports_unknown_ids() {
        let ch = BroadcastChannel::new("feed").build();
        ch.start().await.unwrap();
        let client = ChannelClient::new("sys");
        client.connect("feed", ch.clone());
        assert_eq!(client.channel_ids(), vec!["feed".to_owned()]);
        let id = client
            .write("feed", &serde_json::json!({"x": 1}))
            .await
            .unwrap();
        let got = client.read("feed", 10).await.unwrap();
        assert_eq!(got[0].id, id);
        assert_eq!(
            got[0].sender_id, "sys",
            "the client's identity is the sender"
        );
        let err = client.read("nope", 1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
        assert_eq!(err.message(), "Channel 'nope' is not connected.");
        client.unsubscribe("nope").await; // no error
    }
}
