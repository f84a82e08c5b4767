//! [`ChannelBuilder`]: the options of a channel, with v1's defaults. Each kind's builder
//! offers only the options its kind uses: claim options on kinds with claims, the period
//! and raw buffer on periodic channels, the registration TTL on discovery channels. The
//! type-erased builder ([`ChannelBuilder::new`], for kinds chosen at run time) offers
//! every option and refuses, at [`try_build`](ChannelBuilder::try_build), one that the
//! kind does not use.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::Channel;
use super::hook_calls::Hooks;
use super::hooks::{BeforeStoreFn, ChannelHooks, ConvertFn, ErrorFn, MessageFn, async_convert};
use super::kind::{Any, Claims, Kind, PullLoop, Registry, Typed};
use super::periodic::Source;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelKind, ChannelMessage, Payload, Visibility};
use crate::policy::ClaimPolicy;
use crate::security::Security;
use crate::store::{ChannelSpec, IntoStore, Store};

pub(crate) const DEFAULT_PERIOD: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_RAW_BUFFER: usize = 10_000;
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// v1's `max_workers` default: conversions one processing pass runs at once.
pub(crate) const DEFAULT_MAX_WORKERS: usize = 10;

/// Options of a channel of kind `K`. Start from a kind (`WorkQueueChannel::new("jobs")`,
/// …), chain options, then [`build`](ChannelBuilder::build).
pub struct ChannelBuilder<K: Kind = Any> {
    pub(crate) kind: ChannelKind,
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) description: String,
    pub(crate) visibility: Visibility,
    pub(crate) period: Option<Duration>,
    pub(crate) claim_timeout: Option<Duration>,
    pub(crate) max_deliveries: Option<u32>,
    pub(crate) retention_max_age: Option<Duration>,
    pub(crate) retention_max_count: Option<usize>,
    pub(crate) maintenance_interval: Duration,
    pub(crate) max_raw_buffer_size: Option<usize>,
    pub(crate) max_workers: Option<usize>,
    pub(crate) subscriber_capacity: usize,
    pub(crate) registration_ttl: Option<Duration>,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) security: Option<Arc<dyn Security>>,
    pub(crate) hooks: Hooks,
    pub(crate) source: Option<Box<dyn Source>>,
    marker: PhantomData<fn() -> K>,
}

impl<K: Kind> std::fmt::Debug for ChannelBuilder<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ChannelBuilder {
    /// A type-erased builder for a channel of `kind` (chosen at run time, e.g. from a
    /// config file). Build it with [`try_build`](Self::try_build).
    pub fn new(kind: ChannelKind, id: impl Into<String>) -> Self {
        Self::of_kind(kind, id)
    }
}

impl<K: Kind> ChannelBuilder<K> {
    pub(crate) fn of_kind(kind: ChannelKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            name: None,
            description: String::new(),
            visibility: Visibility::Private,
            period: None,
            claim_timeout: None,
            max_deliveries: None,
            retention_max_age: None,
            retention_max_count: None,
            maintenance_interval: Duration::from_secs(60),
            max_raw_buffer_size: None,
            max_workers: None,
            subscriber_capacity: 1024,
            registration_ttl: None,
            store: None,
            security: None,
            hooks: Hooks::default(),
            source: None,
            marker: PhantomData,
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

    /// Maintenance removes messages stored longer ago than this.
    #[must_use]
    pub fn retention_max_age(mut self, age: Duration) -> Self {
        self.retention_max_age = Some(age);
        self
    }

    /// Keeps only the newest `count` messages: enforced as writes arrive (stored messages
    /// stay within `count` plus a tenth of it), and by maintenance.
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

    /// Messages a push subscriber may fall behind before it lags (default 1024).
    #[must_use]
    pub fn subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity.max(1);
        self
    }

    /// The storage backend, by value or shared (default: the network's store, else a
    /// private memory store).
    #[must_use]
    pub fn store(mut self, store: impl IntoStore) -> Self {
        self.store = Some(store.into_store());
        self
    }

    /// The security policy (default: [`OpenSecurity`](crate::security::OpenSecurity)).
    #[must_use]
    pub fn security(mut self, security: Arc<dyn Security>) -> Self {
        self.security = Some(security);
        self
    }

    /// The channel's [`ChannelHooks`] (conversion, filtering before the store, life-cycle
    /// hooks). Pass an `Arc` to keep a handle on the object. A closure set with
    /// [`convert`](Self::convert), [`convert_async`](Self::convert_async),
    /// [`before_store`](Self::before_store), [`on_message`](Self::on_message) or
    /// [`on_error`](Self::on_error) takes the place of the object's hook of that name.
    #[must_use]
    pub fn hooks(mut self, hooks: impl ChannelHooks) -> Self {
        self.hooks.object = Some(Arc::new(hooks));
        self
    }

    /// Converts raw writes into messages, synchronously. Returning `Ok(None)` drops the
    /// item (the write returns `""`). A panic is caught and fails that write with
    /// [`ErrorKind::Internal`]; being synchronous, it cannot be timed out, so anything
    /// that waits belongs in [`convert_async`](Self::convert_async). Replaces an earlier
    /// `convert_async`.
    #[must_use]
    pub fn convert(
        mut self,
        f: impl Fn(&str, Payload) -> Result<Option<ChannelMessage>> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.convert = Some(Arc::new(f) as ConvertFn);
        self.hooks.convert_async = None;
        self
    }

    /// Converts raw writes into messages with a future (sender id, payload), bounded by
    /// [`hook_timeout`](Self::hook_timeout). Returning `Ok(None)` drops the item.
    /// Replaces an earlier `convert`.
    #[must_use]
    pub fn convert_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(String, Payload) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Option<ChannelMessage>>> + Send + 'static,
    {
        self.hooks.convert_async = Some(async_convert(f));
        self.hooks.convert = None;
        self
    }

    /// Filters (`Ok(None)`: the write returns `""`) or changes each converted message
    /// before it is stored. Synchronous; an async one is
    /// [`ChannelHooks::before_store`].
    #[must_use]
    pub fn before_store(
        mut self,
        f: impl Fn(ChannelMessage) -> Result<Option<ChannelMessage>> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.before_store = Some(Arc::new(f) as BeforeStoreFn);
        self
    }

    /// Called with every message after it is stored.
    #[must_use]
    pub fn on_message(mut self, f: impl Fn(&ChannelMessage) + Send + Sync + 'static) -> Self {
        self.hooks.on_message = Some(Arc::new(f) as MessageFn);
        self
    }

    /// Called when a background phase (`pull`, `process`, `maintain`, `subscriber`, …) or
    /// a hook fails (the phases are listed at [`ChannelHooks::on_error`]).
    #[must_use]
    pub fn on_error(mut self, f: impl Fn(&str, &Error) + Send + Sync + 'static) -> Self {
        self.hooks.on_error = Some(Arc::new(f) as ErrorFn);
        self
    }

    /// How long one call of an async hook may run (default 10 s). Past it the call is
    /// abandoned: a writer gets [`ErrorKind::Timeout`], a background phase reports it to
    /// `on_error` and goes on.
    #[must_use]
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hooks.timeout = timeout;
        self
    }

    pub(crate) fn info(&self) -> ChannelInfo {
        ChannelInfo {
            id: self.id.clone(),
            name: self.name.clone().unwrap_or_else(|| self.id.clone()),
            description: self.description.clone(),
            visibility: self.visibility,
            period: self.period.unwrap_or(DEFAULT_PERIOD).as_secs_f64(),
            kind: Some(self.kind),
        }
    }

    pub(crate) fn spec(&self) -> ChannelSpec {
        let claims = self.kind.claims().then(|| ClaimPolicy {
            lease: self.claim_timeout.unwrap_or(ClaimPolicy::default().lease),
            max_deliveries: self.max_deliveries,
        });
        ChannelSpec {
            id: self.id.clone(),
            claims,
            claim_scope: self.kind.claim_scope(),
            feed_capacity: self.subscriber_capacity,
            // Discovery registrations are replaced by id and expire (`Log::replace`).
            expiring: self.kind == ChannelKind::Discovery,
        }
    }

    /// Options set that the kind does not use (only possible on the type-erased builder).
    fn misapplied(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.kind.claims() {
            if self.claim_timeout.is_some() {
                out.push("claim_timeout");
            }
            if self.max_deliveries.is_some() {
                out.push("max_deliveries");
            }
        }
        if self.kind != ChannelKind::Periodic {
            if self.period.is_some() {
                out.push("period");
            }
            if self.max_raw_buffer_size.is_some() {
                out.push("max_raw_buffer_size");
            }
            if self.source.is_some() {
                out.push("source");
            }
            if self.max_workers.is_some() {
                out.push("max_workers");
            }
        }
        if self.kind != ChannelKind::Discovery && self.registration_ttl.is_some() {
            out.push("registration_ttl");
        }
        out
    }

    /// Builds the channel, checking the id is usable (non-empty, no `/`, no control
    /// characters — ids become URL path segments and store keys) and that every option set
    /// applies to the kind.
    pub fn try_build(self) -> Result<Channel<K>> {
        validate_id(&self.id)?;
        let misapplied = self.misapplied();
        if !misapplied.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "channel '{}': {} does not apply to a {} channel",
                    self.id,
                    misapplied.join(", "),
                    self.kind.as_str()
                ),
            ));
        }
        Ok(Channel::from_builder(self))
    }
}

/// Typed builders (every kind but `Any`) build without a check of their options: the
/// compiler made it.
impl<K: Typed> ChannelBuilder<K> {
    /// A builder of kind `K`.
    pub(crate) fn typed(id: impl Into<String>) -> Self {
        Self::of_kind(K::CHANNEL_KIND, id)
    }

    /// Builds the channel. It accepts writes once [started](Channel::start).
    pub fn build(self) -> Channel<K> {
        Channel::from_builder(self)
    }
}

impl<K: Claims> ChannelBuilder<K> {
    /// How long a claim holds a message (default 300 s).
    #[must_use]
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = Some(timeout);
        self
    }

    /// Deliveries after which an unacknowledged message becomes a dead letter.
    #[must_use]
    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = Some(max.max(1));
        self
    }
}

impl<K: PullLoop> ChannelBuilder<K> {
    /// Loop period of a periodic channel (default 60 s).
    #[must_use]
    pub fn period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// Raw items a periodic channel buffers before refusing writes (default 10,000).
    #[must_use]
    pub fn max_raw_buffer_size(mut self, size: usize) -> Self {
        self.max_raw_buffer_size = Some(size.max(1));
        self
    }

    /// Conversions one processing pass runs at once (v1's `max_workers`, default 10).
    /// Messages are stored in the order the items were buffered whatever order the
    /// conversions end in.
    #[must_use]
    pub fn max_workers(mut self, workers: usize) -> Self {
        self.max_workers = Some(workers.max(1));
        self
    }

    /// Where the pull loop fetches raw items each period.
    #[must_use]
    pub fn source(mut self, source: impl Source) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl<K: Registry> ChannelBuilder<K> {
    /// Default lifetime of discovery registrations (default 3600 s).
    #[must_use]
    pub fn registration_ttl(mut self, ttl: Duration) -> Self {
        self.registration_ttl = Some(ttl);
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_erased_builder_refuses_options_its_kind_does_not_use() {
        let err = ChannelBuilder::new(ChannelKind::Broadcast, "b")
            .max_deliveries(3)
            .period(Duration::from_secs(1))
            .try_build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "channel 'b': max_deliveries, period does not apply to a broadcast channel"
        );
        let err = ChannelBuilder::new(ChannelKind::Passthrough, "p")
            .max_workers(4)
            .try_build()
            .unwrap_err();
        assert_eq!(
            err.message(),
            "channel 'p': max_workers does not apply to a passthrough channel"
        );
        let ok = ChannelBuilder::new(ChannelKind::WorkQueue, "q")
            .max_deliveries(3)
            .try_build()
            .unwrap();
        assert_eq!(ok.kind(), ChannelKind::WorkQueue);
    }
}
