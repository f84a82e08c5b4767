//! [`ChannelClient`]: a system's directory of the channels it is wired to, and its identity.
//!
//! Each connection is a [`ChannelEndpoint`]: a local [`Channel`], or a remote one reached
//! over HTTP (the `sssn-http` crate provides `RemoteChannel`). Both give the same
//! operations, authorisation, semantics and error kinds, so system code does not care
//! where a channel lives. Operations go through typed views with the client's identity
//! bound:
//!
//! ```
//! # async fn demo() -> sssn::Result<()> {
//! use sssn::channel::{BroadcastChannel, WorkQueueChannel};
//! use sssn::ChannelClient;
//!
//! let jobs = WorkQueueChannel::new("jobs").build();
//! let results = BroadcastChannel::new("results").build();
//! jobs.start().await?;
//! results.start().await?;
//! jobs.write("producer", &7).await?;
//!
//! let client = ChannelClient::new("worker-1");
//! client.connect("jobs", jobs);
//! client.connect("results", results);
//! let queue = client.work_queue("jobs")?;
//! for job in queue.claim(10).await? {
//!     client.broadcast("results")?.write(&(job.message.data::<i32>()? * 6)).await?;
//!     queue.ack(&job).await?;
//! }
//! assert!(client.broadcast("jobs").is_err(), "a kind mismatch shows at once");
//! # Ok(()) }
//! ```

mod endpoint;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

pub use endpoint::ChannelEndpoint;
pub use view::ChannelView;

use crate::channel::Channel;
use crate::channel::kind::{
    Any, Broadcast, Discovery, Kind, Mailbox, Passthrough, Periodic, WorkQueue,
};
use crate::error::{Error, ErrorKind, Result};
use crate::security::Principal;

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

    /// The identity as a principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Connects a local channel of any kind under `id` (replacing an earlier connection).
    pub fn connect<K: Kind>(&self, id: impl Into<String>, channel: Channel<K>) {
        self.connect_endpoint(id, Arc::new(channel.erased()));
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

    /// The channel `id` seen as kind `K`, acting as this client. Fails if it is not
    /// connected, or is known to be of another kind.
    pub fn view<K: Kind>(&self, id: &str) -> Result<ChannelView<K>> {
        ChannelView::new(self.endpoint(id)?, self.principal.clone())
    }

    /// The channel `id`, of whatever kind (operations its kind lacks fail at run time).
    pub fn channel(&self, id: &str) -> Result<ChannelView<Any>> {
        self.view(id)
    }

    /// The work queue `id`.
    pub fn work_queue(&self, id: &str) -> Result<ChannelView<WorkQueue>> {
        self.view(id)
    }

    /// The broadcast channel `id`.
    pub fn broadcast(&self, id: &str) -> Result<ChannelView<Broadcast>> {
        self.view(id)
    }

    /// The mailbox `id`.
    pub fn mailbox(&self, id: &str) -> Result<ChannelView<Mailbox>> {
        self.view(id)
    }

    /// The passthrough channel `id`.
    pub fn passthrough(&self, id: &str) -> Result<ChannelView<Passthrough>> {
        self.view(id)
    }

    /// The periodic channel `id`.
    pub fn periodic(&self, id: &str) -> Result<ChannelView<Periodic>> {
        self.view(id)
    }

    /// The discovery channel `id` (its generic operations; registrations need the local
    /// handle, [`Channel::discovery`]).
    pub fn discovery(&self, id: &str) -> Result<ChannelView<Discovery>> {
        self.view(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{BroadcastChannel, WorkQueueChannel};

    #[tokio::test]
    async fn routes_to_local_channels_and_reports_unknown_ids() {
        let ch = BroadcastChannel::new("feed").build();
        ch.start().await.unwrap();
        let client = ChannelClient::new("sys");
        client.connect("feed", ch.clone());
        assert_eq!(client.channel_ids(), vec!["feed".to_owned()]);
        let feed = client.broadcast("feed").unwrap();
        let id = feed.write(&serde_json::json!({"x": 1})).await.unwrap();
        let got = feed.read(10).await.unwrap();
        assert_eq!(got[0].id, id);
        assert_eq!(
            got[0].sender_id, "sys",
            "the client's identity is the sender"
        );
        let err = client.channel("nope").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
        assert_eq!(err.message(), "Channel 'nope' is not connected.");
    }

    #[tokio::test]
    async fn a_kind_mismatch_fails_when_the_view_is_taken() {
        let q = WorkQueueChannel::new("jobs").build();
        let client = ChannelClient::new("sys");
        client.connect("jobs", q);
        assert!(client.work_queue("jobs").is_ok());
        assert!(client.channel("jobs").is_ok());
        let err = client.broadcast("jobs").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedOperation);
        assert_eq!(
            err.message(),
            "channel 'jobs' is a work_queue channel, not a broadcast channel"
        );
    }
}
