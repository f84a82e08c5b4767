//! [`DiscoveryChannel`]: a registry of channels and systems with a time to live.
//!
//! Registrations are ordinary messages (sender `_discovery`) with stable ids
//! (`channel-<id>`, `system-<id>`): registering again replaces the previous record, so
//! queries never return duplicates or stale data (v1 appended a record per refresh,
//! defect D10). Expired records are filtered out of queries at once and removed by
//! maintenance.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::descriptor::ServiceDescriptor;
use crate::error::Result;
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Content, Visibility};
use crate::security::{Operation, Principal};

/// The identity registrations are written as (needs write rights under an ACL).
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

#[derive(Deserialize)]
#[serde(untagged)]
enum Record {
    Channel(ChannelRegistration),
    System(SystemRegistration),
}

impl Record {
    fn expires_at(&self) -> f64 {
        match self {
            Self::Channel(r) => r.expires_at,
            Self::System(r) => r.expires_at,
        }
    }
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

    fn expiry(&self, ttl: Option<Duration>) -> f64 {
        crate::clock::now_secs() + ttl.unwrap_or(self.core.registration_ttl).as_secs_f64()
    }

    async fn put(&self, id: String, content: Content) -> Result<()> {
        let core = &self.core;
        core.check_accepting()?;
        core.authorize(&Principal::local(DISCOVERY_SENDER), Operation::Write)?;
        core.log()?.remove(&[id.as_str()]).await?;
        let mut message = ChannelMessage::new(DISCOVERY_SENDER, content);
        message.id = id;
        core.append(vec![message]).await?;
        Ok(())
    }

    /// Registers (or refreshes) a channel for `ttl` (default: the channel's
    /// `registration_ttl`).
    pub async fn register_channel(&self, info: &ChannelInfo, ttl: Option<Duration>) -> Result<()> {
        let record = ChannelRegistration {
            info: info.clone(),
            expires_at: self.expiry(ttl),
        };
        self.put(format!("channel-{}", info.id), Content::new(&record)?)
            .await
    }

    /// Registers (or refreshes) a system for `ttl`.
    pub async fn register_system(
        &self,
        descriptor: &ServiceDescriptor,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let record = SystemRegistration {
            descriptor: descriptor.clone(),
            expires_at: self.expiry(ttl),
        };
        self.put(
            format!("system-{}", descriptor.system_id),
            Content::new(&record)?,
        )
        .await
    }

    /// Removes a channel's registration.
    pub async fn unregister_channel(&self, channel_id: &str) -> Result<bool> {
        let id = format!("channel-{channel_id}");
        Ok(self.core.log()?.remove(&[id.as_str()]).await? > 0)
    }

    /// Removes a system's registration.
    pub async fn unregister_system(&self, system_id: &str) -> Result<bool> {
        let id = format!("system-{system_id}");
        Ok(self.core.log()?.remove(&[id.as_str()]).await? > 0)
    }

    /// Every live record, with its message id.
    async fn records(&self) -> Result<Vec<(String, Record)>> {
        let now = crate::clock::now_secs();
        let entries = self.core.log()?.range(0, usize::MAX).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let record = e.message.content.get::<Record>().ok()?;
                (record.expires_at() > now).then(|| (e.message.id.clone(), record))
            })
            .collect())
    }

    /// Live channel registrations, optionally only those with `visibility`.
    pub async fn find_channels(&self, visibility: Option<Visibility>) -> Result<Vec<ChannelInfo>> {
        Ok(self
            .records()
            .await?
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::Channel(c) if visibility.is_none_or(|v| c.info.visibility == v) => {
                    Some(c.info)
                }
                _ => None,
            })
            .collect())
    }

    /// Live system registrations, optionally only those exposing `capability`.
    pub async fn find_systems(&self, capability: Option<&str>) -> Result<Vec<ServiceDescriptor>> {
        Ok(self
            .records()
            .await?
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::System(s) if capability.is_none_or(|c| s.descriptor.has_service(c)) => {
                    Some(s.descriptor)
                }
                _ => None,
            })
            .collect())
    }

    /// The live record stored under message id `record_id`, found through the store's id
    /// index (no scan of the registry).
    async fn record(&self, record_id: &str) -> Result<Option<Record>> {
        let now = crate::clock::now_secs();
        Ok(self
            .core
            .log()?
            .get(record_id)
            .await?
            .and_then(|e| e.message.content.get::<Record>().ok())
            .filter(|r| r.expires_at() > now))
    }

    /// The live registration of channel `id`.
    pub async fn get_channel(&self, id: &str) -> Result<Option<ChannelInfo>> {
        Ok(match self.record(&format!("channel-{id}")).await? {
            Some(Record::Channel(c)) => Some(c.info),
            _ => None,
        })
    }

    /// The live registration of system `id`.
    pub async fn get_system(&self, id: &str) -> Result<Option<ServiceDescriptor>> {
        Ok(match self.record(&format!("system-{id}")).await? {
            Some(Record::System(s)) => Some(s.descriptor),
            _ => None,
        })
    }
}

/// Removes expired registrations (maintenance).
pub(crate) async fn purge_expired(channel: &Channel) -> Result<usize> {
    let now = crate::clock::now_secs();
    let store = channel.core.log()?;
    let expired: Vec<String> = store
        .range(0, usize::MAX)
        .await?
        .into_iter()
        .filter(|e| {
            e.message
                .content
                .get::<Record>()
                .is_ok_and(|r| r.expires_at() <= now)
        })
        .map(|e| e.message.id.clone())
        .collect();
    if expired.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = expired.iter().map(String::as_str).collect();
    store.remove(&ids).await
}

impl Channel {
    /// The discovery handle of this channel (fails unless it is a discovery channel).
    pub fn discovery(&self) -> Result<DiscoveryChannel> {
        self.typed::<Discovery>()
    }
}
