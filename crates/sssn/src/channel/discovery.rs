//! [`DiscoveryChannel`]: a registry of channels and systems with a time to live.
//!
//! Registrations are ordinary messages (sender `_discovery`, v1's shape) with stable ids
//! (`channel-<id>`, `system-<id>`): registering again replaces the previous record
//! ([`Log::replace`](crate::store::Log::replace)), so queries never return
//! duplicates or stale data (v1 appended a record per refresh, defect D10) and never miss
//! a record being refreshed. Every operation names its caller and is authorised for it:
//! registering and unregistering need `Write`, queries `Read`; registering and
//! unregistering need the channel running, as writes do.
//!
//! Queries are answered from the channel's index (`channel/registry.rs`, which says what
//! it guarantees when several processes share a store): by id,
//! by visibility, by capability (a service name of a system's descriptor, what v1's
//! `find_systems(capability)` matched). Expired records are filtered out of queries at
//! once and removed by maintenance, which walks only what has expired.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kind::kind;
use super::registry::{Record, Registry};
use super::{Caller, Channel, ChannelBuilder, Who};
use crate::descriptor::ServiceDescriptor;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Content, Visibility};
use crate::security::Operation;

/// The sender of every stored registration (v1's shape). The caller of a registration is
/// the one authorised; a network registering its public channels calls as this identity.
pub const DISCOVERY_SENDER: &str = "_discovery";

/// Content of a channel registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelRegistration {
    /// The registered channel.
    pub info: ChannelInfo,
    /// Expiry, Unix epoch seconds.
    pub expires_at: f64,
}

/// Content of a system registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemRegistration {
    /// The registered system.
    pub descriptor: ServiceDescriptor,
    /// Expiry, Unix epoch seconds.
    pub expires_at: f64,
}

/// A registry of channels and systems with a time to live; queries by id, visibility
/// and capability.
#[derive(Debug, Clone, Copy)]
pub struct Discovery;

kind!(
    Discovery,
    ChannelKind::Discovery,
    SharedReads,
    Subscriptions,
    Registry
);

/// A discovery channel handle.
pub type DiscoveryChannel = Channel<Discovery>;

impl Channel<Discovery> {
    /// A builder for a discovery channel with id `id`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> ChannelBuilder<Discovery> {
        ChannelBuilder::typed(id)
    }

    fn expiry(&self, ttl: Option<Duration>) -> (Duration, f64) {
        let ttl = ttl.unwrap_or(self.core.registration_ttl);
        (ttl, crate::clock::now_secs() + ttl.as_secs_f64())
    }

    fn registry(&self) -> Result<&Registry> {
        self.core.registry.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("discovery channel '{}' has no registry index", self.id()),
            )
        })
    }

    /// Checks a change of the registry: running, and `Write` for the caller.
    fn check_change(&self, caller: &impl Caller) -> Result<()> {
        self.core.check_accepting()?;
        self.core.authorize(&Who::of(&caller), Operation::Write)
    }

    /// Checks a query: started once, and `Read` for the caller.
    fn check_query(&self, caller: &impl Caller) -> Result<&Registry> {
        self.core.storage()?;
        self.core.authorize(&Who::of(&caller), Operation::Read)?;
        self.registry()
    }

    async fn put(
        &self,
        caller: impl Caller,
        id: String,
        ttl: Duration,
        content: Content,
    ) -> Result<()> {
        self.check_change(&caller)?;
        let registry = self.registry()?;
        let _writes = registry.writes.lock().await;
        let mut message = ChannelMessage::new(DISCOVERY_SENDER, content);
        message.id = id;
        // The new version replaces the old in one store step, then in the index: a query
        // meanwhile finds the old version, never nothing.
        let entry = self.core.replace(message, Some(ttl)).await?;
        registry.apply(&entry);
        Ok(())
    }

    async fn delete(&self, caller: impl Caller, id: String) -> Result<bool> {
        self.check_change(&caller)?;
        let registry = self.registry()?;
        let _writes = registry.writes.lock().await;
        let log = self.core.log()?;
        let removed = log.remove(&[id.as_str()]).await? > 0;
        registry.forget(&id, log.head());
        Ok(removed)
    }

    /// Registers (or refreshes) a channel for `ttl` (default: the channel's
    /// `registration_ttl`), as `caller` (who needs `Write`).
    pub async fn register_channel(
        &self,
        caller: impl Caller,
        info: &ChannelInfo,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let (ttl, expires_at) = self.expiry(ttl);
        let record = ChannelRegistration {
            info: info.clone(),
            expires_at,
        };
        self.put(
            caller,
            format!("channel-{}", info.id),
            ttl,
            Content::new(&record)?,
        )
        .await
    }

    /// Registers (or refreshes) a system for `ttl`, as `caller` (who needs `Write`).
    pub async fn register_system(
        &self,
        caller: impl Caller,
        descriptor: &ServiceDescriptor,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let (ttl, expires_at) = self.expiry(ttl);
        let record = SystemRegistration {
            descriptor: descriptor.clone(),
            expires_at,
        };
        self.put(
            caller,
            format!("system-{}", descriptor.system_id),
            ttl,
            Content::new(&record)?,
        )
        .await
    }

    /// Removes a channel's registration, as `caller` (who needs `Write`); `false` when
    /// none was stored.
    pub async fn unregister_channel(&self, caller: impl Caller, channel_id: &str) -> Result<bool> {
        self.delete(caller, format!("channel-{channel_id}")).await
    }

    /// Removes a system's registration, as `caller` (who needs `Write`); `false` when
    /// none was stored.
    pub async fn unregister_system(&self, caller: impl Caller, system_id: &str) -> Result<bool> {
        self.delete(caller, format!("system-{system_id}")).await
    }

    /// Live channel registrations in store order (oldest registration or refresh first),
    /// optionally only those with `visibility`; `caller` needs `Read`.
    pub async fn find_channels(
        &self,
        caller: impl Caller,
        visibility: Option<Visibility>,
    ) -> Result<Vec<ChannelInfo>> {
        let registry = self.check_query(&caller)?;
        Ok(registry.channels(visibility, crate::clock::now_secs()))
    }

    /// Live system registrations in store order, optionally only those exposing a service
    /// named `capability`; `caller` needs `Read`.
    pub async fn find_systems(
        &self,
        caller: impl Caller,
        capability: Option<&str>,
    ) -> Result<Vec<ServiceDescriptor>> {
        let registry = self.check_query(&caller)?;
        Ok(registry.systems(capability, crate::clock::now_secs()))
    }

    /// The live registration of channel `id`; `caller` needs `Read`.
    pub async fn get_channel(&self, caller: impl Caller, id: &str) -> Result<Option<ChannelInfo>> {
        let registry = self.check_query(&caller)?;
        Ok(
            match registry
                .get(&format!("channel-{id}"), crate::clock::now_secs())
                .as_deref()
            {
                Some(Record::Channel(c)) => Some(c.info.clone()),
                _ => None,
            },
        )
    }

    /// The live registration of system `id`; `caller` needs `Read`.
    pub async fn get_system(
        &self,
        caller: impl Caller,
        id: &str,
    ) -> Result<Option<ServiceDescriptor>> {
        let registry = self.check_query(&caller)?;
        Ok(
            match registry
                .get(&format!("system-{id}"), crate::clock::now_secs())
                .as_deref()
            {
                Some(Record::System(s)) => Some(s.descriptor.clone()),
                _ => None,
            },
        )
    }
}

/// Removes expired registrations (maintenance): the versions the index's expiry order
/// names, removed by sequence so a newer version (a refresh from elsewhere) stays.
pub(crate) async fn purge_expired(channel: &Channel) -> Result<usize> {
    let Some(registry) = &channel.core.registry else {
        return Ok(0);
    };
    let _writes = registry.writes.lock().await;
    let expired = registry.expired(crate::clock::now_secs());
    if expired.is_empty() {
        return Ok(0);
    }
    let removed = channel.core.log()?.remove_seqs(&expired).await?;
    registry.forget_seqs(&expired);
    Ok(removed)
}

/// Loads the registry index from the store and follows its feed while the channel runs
/// (called by `start`, before the channel accepts operations).
pub(crate) async fn open_registry(
    channel: &Channel,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let Some(registry) = &channel.core.registry else {
        return Ok(());
    };
    let log = channel.core.log()?;
    // Subscribed before the load: nothing appended meanwhile is missed.
    let feed = log.feed();
    registry.load(log.as_ref()).await?;
    let this = channel.clone();
    channel
        .core
        .tasks
        .spawn(async move { this.follow_registry(feed, cancel).await });
    Ok(())
}

impl Channel {
    /// The discovery handle of this channel (fails unless it is a discovery channel).
    pub fn discovery(&self) -> Result<DiscoveryChannel> {
        self.typed::<Discovery>()
    }
}
