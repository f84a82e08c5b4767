//! [`ChannelBuilder`]: every option a channel can have, with v1's defaults.

use std::sync::Arc;
use std::time::Duration;

use super::Channel;
use super::hooks::{ConvertFn, ErrorFn, Hooks, MessageFn};
use super::periodic::Source;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Payload, Visibility};
use crate::security::Security;
use crate::store::{ChannelSpec, Store};

/// Options of a channel. Start from a kind (`WorkQueueChannel::new("jobs")`, …), chain
/// options, then [`build`](ChannelBuilder::build).
pub struct ChannelBuilder {
    pub(crate) kind: ChannelKind,
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) description: String,
    pub(crate) visibility: Visibility,
    pub(crate) period: Duration,
    pub(crate) claim_timeout: Duration,
    pub(crate) max_deliveries: Option<u32>,
    pub(crate) retention_max_age: Option<Duration>,
    pub(crate) retention_max_count: Option<usize>,
    pub(crate) maintenance_interval: Duration,
    pub(crate) max_raw_buffer_size: usize,
    pub(crate) subscriber_capacity: usize,
    pub(crate) registration_ttl: Duration,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) security: Option<Arc<dyn Security>>,
    pub(crate) hooks: Hooks,
    pub(crate) source: Option<Box<dyn Source>>,
}

impl std::fmt::Debug for ChannelBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ChannelBuilder {
    /// A builder for a channel of `kind` with id `id`.
    pub fn new(kind: ChannelKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            name: None,
            description: String::new(),
            visibility: Visibility::Private,
            period: Duration::from_secs(60),
            claim_timeout: Duration::from_secs(300),
            max_deliveries: None,
            retention_max_age: None,
            retention_max_count: None,
            maintenance_interval: Duration::from_secs(60),
            max_raw_buffer_size: 10_000,
            subscriber_capacity: 1024,
            registration_ttl: Duration::from_secs(3600),
            store: None,
            security: None,
            hooks: Hooks::default(),
            source: None,
        }
    }

    /// Human name (defaults to the id).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Free-text description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Private (default) or public.
    #[must_use]
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Shorthand for `visibility(Visibility::Public)`.
    #[must_use]
    pub fn public(self) -> Self {
        self.visibility(Visibility::Public)
    }

    /// Loop period of a periodic channel (default 60 s).
    #[must_use]
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// How long a claim holds a message (default 300 s).
    #[must_use]
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    /// Deliveries after which an unacknowledged message becomes a dead letter.
    #[must_use]
    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = Some(max.max(1));
        self
    }

    /// Maintenance removes messages stored longer ago than this.
    #[must_use]
    pub fn retention_max_age(mut self, age: Duration) -> Self {
        self.retention_max_age = Some(age);
        self
    }

    /// Maintenance keeps only the newest `count` messages.
    #[must_use]
    pub fn retention_max_count(mut self, count: usize) -> Self {
        self.retention_max_count = Some(count);
        self
    }

    /// How often maintenance (retention, lease reclaim, TTL expiry) runs (default 60 s).
    #[must_use]
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Raw items a periodic channel buffers before refusing writes (default 10,000).
    #[must_use]
    pub fn max_raw_buffer_size(mut self, size: usize) -> Self {
        self.max_raw_buffer_size = size.max(1);
        self
    }

    /// Messages a push subscriber may fall behind before it lags (default 1024).
    #[must_use]
    pub fn subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity.max(1);
        self
    }

    /// Default lifetime of discovery registrations (default 3600 s).
    #[must_use]
    pub fn registration_ttl(mut self, ttl: Duration) -> Self {
        self.registration_ttl = ttl;
        self
    }

    /// The storage backend (default: the network's store, else a private memory store).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The security policy (default: [`OpenSecurity`](crate::security::OpenSecurity)).
    #[must_use]
    pub fn security(mut self, security: Arc<dyn Security>) -> Self {
        self.security = Some(security);
        self
    }

    /// Converts raw writes into messages. Returning `Ok(None)` drops the item.
    #[must_use]
    pub fn convert(
        mut self,
        f: impl Fn(&str, Payload) -> Result<Option<ChannelMessage>> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.convert = Some(Arc::new(f) as ConvertFn);
        self
    }

    /// Called with every message after it is stored.
    #[must_use]
    pub fn on_message(mut self, f: impl Fn(&ChannelMessage) + Send + Sync + 'static) -> Self {
        self.hooks.on_message = Some(Arc::new(f) as MessageFn);
        self
    }

    /// Called when a background phase (`pull`, `process`, `maintain`, `subscriber`) fails.
    #[must_use]
    pub fn on_error(mut self, f: impl Fn(&str, &Error) + Send + Sync + 'static) -> Self {
        self.hooks.on_error = Some(Arc::new(f) as ErrorFn);
        self
    }

    pub(crate) fn info(&self) -> ChannelInfo {
        ChannelInfo {
            id: self.id.clone(),
            name: self.name.clone().unwrap_or_else(|| self.id.clone()),
            description: self.description.clone(),
            visibility: self.visibility,
            period: self.period.as_secs_f64(),
            kind: Some(self.kind),
        }
    }

    pub(crate) fn spec(&self) -> ChannelSpec {
        ChannelSpec {
            id: self.id.clone(),
            kind: self.kind,
            claim_timeout: self.claim_timeout,
            max_deliveries: self.max_deliveries,
            feed_capacity: self.subscriber_capacity,
        }
    }

    /// Builds the channel. It accepts writes once [started](Channel::start).
    pub fn build(self) -> Channel {
        Channel::from_builder(self)
    }

    /// Builds the channel, checking the id is usable (non-empty, no `/`, no control
    /// characters) — ids become URL path segments and store keys.
    pub fn try_build(self) -> Result<Channel> {
        validate_id(&self.id)?;
        Ok(self.build())
    }
}

/// Checks a channel id can be used in URLs and stores.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 200 || id.chars().any(|c| c == '/' || c.is_control()) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid channel id {id:?}: 1-200 characters, no '/' or control characters"),
        ));
    }
    Ok(())
}
