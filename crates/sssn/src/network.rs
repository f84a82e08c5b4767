//! [`Network`]: v1's "umbrella" — owns channels and systems, wires them, runs them.
//!
//! ```
//! # async fn demo() -> sssn::Result<()> {
//! use std::time::Duration;
//! use sssn::channel::BroadcastChannel;
//! use sssn::network::Network;
//! use sssn::system::{System, SystemContext, SystemSpec};
//!
//! struct Sensor;
//! #[async_trait::async_trait]
//! impl System for Sensor {
//!     async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
//!         ctx.broadcast("readings")?.write(&22.4).await.map(drop)
//!     }
//! }
//!
//! let mut net = Network::new("demo");
//! net.add_channel(BroadcastChannel::new("readings").build())?;
//! net.add_system(SystemSpec::new("sensor").tick_rate(10.0).writes(["readings"]), Sensor)?;
//! net.run_for(Duration::from_millis(250)).await?;
//! # Ok(()) }
//! ```
//!
//! Wiring is explicit and checked when it is declared: a system (or a sub-network) gets
//! only the channels it names, and naming a channel the network does not have is an error
//! (v1 ignored it silently, defect D32). Starting a network starts every channel in the
//! tree, runs every system's `setup` exactly once (before any step), then runs all systems.
//! Stopping stops the systems first, then drains the channels.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channel::discovery::DISCOVERY_SENDER;
use crate::channel::{Channel, Kind};
use crate::client::ChannelClient;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Visibility;
use crate::store::{IntoStore, Store};
use crate::system::{Runner, System, SystemHandle, SystemSpec, SystemState};

/// What the network reports about its systems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkEvent {
    /// A system failed (panic, or its error policy).
    SystemFailed {
        /// System id.
        system: String,
        /// What happened.
        error: String,
    },
    /// A failed system was restarted.
    SystemRestarted {
        /// System id.
        system: String,
        /// Restarts so far.
        restarts: u64,
    },
    /// A failed system used up its restart budget and stays in `Error`.
    SystemGaveUp {
        /// System id.
        system: String,
        /// The last failure.
        error: String,
    },
    /// A system finished.
    SystemStopped {
        /// System id.
        system: String,
        /// Its final state.
        state: SystemState,
    },
}

struct PendingSystem {
    spec: SystemSpec,
    system: Box<dyn System>,
    handle: SystemHandle,
    channels: BTreeMap<String, Channel>,
}

/// A tree of channels and systems. Build it, then [`start`](Network::start) or
/// [`run_for`](Network::run_for).
pub struct Network {
    id: String,
    store: Option<Arc<dyn Store>>,
    owned: Vec<Channel>,
    available: BTreeMap<String, Channel>,
    systems: Vec<PendingSystem>,
    children: Vec<Network>,
    discovery: Option<(String, Duration)>,
    events: broadcast::Sender<NetworkEvent>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("id", &self.id)
            .field("channels", &self.available.keys().collect::<Vec<_>>())
            .field(
                "systems",
                &self.systems.iter().map(|s| s.spec.id()).collect::<Vec<_>>(),
            )
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// An empty network.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            store: None,
            owned: Vec::new(),
            available: BTreeMap::new(),
            systems: Vec::new(),
            children: Vec::new(),
            discovery: None,
            events: broadcast::channel(256).0,
        }
    }

    /// The network id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store for channels that were built without one (default: memory), by value or
    /// shared: `with_store(SqliteStore::open("app.db")?)`.
    #[must_use]
    pub fn with_store(mut self, store: impl IntoStore) -> Self {
        self.store = Some(store.into_store());
        self
    }

    /// Registers every public channel of the tree in the discovery channel `discovery_id`
    /// at start, and refreshes the registrations every `ttl / 2` while running (v1
    /// registered once and let them expire, defect D10). The network registers as
    /// [`DISCOVERY_SENDER`] (`_discovery`), which needs `Write` on the discovery channel
    /// under an ACL, as in v1.
    #[must_use]
    pub fn register_public_channels(
        mut self,
        discovery_id: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        self.discovery = Some((discovery_id.into(), ttl));
        self
    }

    /// Adds a channel of any kind, owned by this network, and gives its typed handle
    /// back. Ids are unique within what the network sees.
    pub fn add_channel<K: Kind>(&mut self, channel: Channel<K>) -> Result<Channel<K>> {
        if self.available.contains_key(channel.id()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "network '{}' already has a channel '{}'",
                    self.id,
                    channel.id()
                ),
            ));
        }
        self.available
            .insert(channel.id().to_owned(), channel.erased());
        self.owned.push(channel.erased());
        Ok(channel)
    }

    /// A channel this network owns or was wired.
    pub fn channel(&self, id: &str) -> Option<Channel> {
        self.available.get(id).cloned()
    }

    /// The channels this network owns (not its sub-networks') whose visibility is public,
    /// in the order they were added (v1's `get_public_channels`).
    pub fn public_channels(&self) -> Vec<Channel> {
        self.owned
            .iter()
            .filter(|c| c.info().visibility == Visibility::Public)
            .cloned()
            .collect()
    }

    fn wire(&self, what: &str, ids: &[String]) -> Result<BTreeMap<String, Channel>> {
        let mut out = BTreeMap::new();
        for id in ids {
            let channel = self.available.get(id).ok_or_else(|| {
                Error::new(
                    ErrorKind::NotConnected,
                    format!(
                        "cannot wire channel '{id}' to {what}: network '{}' has no such channel (add it with add_channel first)",
                        self.id
                    ),
                )
            })?;
            out.insert(id.clone(), channel.clone());
        }
        Ok(out)
    }

    /// Adds a system, wired to exactly the channels its spec names.
    pub fn add_system(&mut self, spec: SystemSpec, system: impl System) -> Result<SystemHandle> {
        if self.systems.iter().any(|s| s.spec.id() == spec.id()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("network '{}' already has a system '{}'", self.id, spec.id()),
            ));
        }
        let channels = self.wire(&format!("system '{}'", spec.id()), &spec.wired())?;
        let handle = SystemHandle {
            id: spec.id().to_owned(),
            control: Arc::new(new_control(&spec)),
        };
        self.systems.push(PendingSystem {
            spec,
            system: Box::new(system),
            handle: handle.clone(),
            channels,
        });
        Ok(handle)
    }

    /// A sub-network wired to `channels` of this one; add systems and channels to it, then
    /// [`add_network`](Self::add_network) it.
    pub fn subnetwork<S: AsRef<str>>(
        &self,
        id: impl Into<String>,
        channels: &[S],
    ) -> Result<Network> {
        let id = id.into();
        let ids: Vec<String> = channels.iter().map(|c| c.as_ref().to_owned()).collect();
        let mut child = Network::new(id.clone());
        child.available = self.wire(&format!("sub-network '{id}'"), &ids)?;
        Ok(child)
    }

    /// Adds a sub-network (built with [`subnetwork`](Self::subnetwork)).
    pub fn add_network(&mut self, child: Network) -> Result<()> {
        for (id, ch) in &child.available {
            let owned_by_child = child.owned.iter().any(|c| c.same_channel(ch));
            if !owned_by_child
                && !self
                    .available
                    .get(id)
                    .is_some_and(|mine| mine.same_channel(ch))
            {
                return Err(Error::new(
                    ErrorKind::NotConnected,
                    format!(
                        "sub-network '{}' uses channel '{id}' that network '{}' did not wire to it",
                        child.id, self.id
                    ),
                ));
            }
        }
        self.children.push(child);
        Ok(())
    }

    /// Handles of every system in the tree, in add order (depth first).
    pub fn systems(&self) -> Vec<SystemHandle> {
        let mut out: Vec<SystemHandle> = self.systems.iter().map(|s| s.handle.clone()).collect();
        for c in &self.children {
            out.extend(c.systems());
        }
        out
    }

    /// Receives the events of every system in the tree.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// Every owned channel in the tree, parents first.
    fn all_channels(&self) -> Vec<Channel> {
        let mut out = self.owned.clone();
        for c in &self.children {
            out.extend(c.all_channels());
        }
        out
    }

    fn take_systems(&mut self) -> Vec<PendingSystem> {
        let mut out = std::mem::take(&mut self.systems);
        for c in &mut self.children {
            out.extend(c.take_systems());
        }
        out
    }

    fn apply_store(&self, inherited: Option<&Arc<dyn Store>>) -> Result<()> {
        let store = self.store.as_ref().or(inherited);
        if let Some(store) = store {
            for ch in &self.owned {
                ch.set_store_if_unset(store.clone())?;
            }
        }
        for c in &self.children {
            c.apply_store(store)?;
        }
        Ok(())
    }

    /// Starts every channel, runs every `setup` once, registers the public channels in
    /// discovery (if asked to), then starts every system. All or nothing: when any of it
    /// fails, what was started is stopped again and the error is returned.
    pub async fn start(mut self) -> Result<RunningNetwork> {
        self.apply_store(None)?;
        let channels = self.all_channels();
        // Resolved before anything starts, so a missing registry fails the start cleanly.
        let registry = match &self.discovery {
            Some((discovery_id, ttl)) => {
                let registry = channels
                    .iter()
                    .find(|c| c.id() == discovery_id)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::NotConnected,
                            format!("no discovery channel '{discovery_id}' in the network"),
                        )
                    })?
                    .discovery()?;
                Some((registry, *ttl))
            }
            None => None,
        };
        for (i, ch) in channels.iter().enumerate() {
            if let Err(e) = ch.start().await {
                stop_all(&channels[..i]).await;
                return Err(e);
            }
        }
        let cancel = CancellationToken::new();
        let mut runners = Vec::new();
        let mut handles = Vec::new();
        for pending in self.take_systems() {
            let PendingSystem {
                spec,
                system,
                handle,
                channels: wired,
            } = pending;
            let client = ChannelClient::new(spec.id());
            for (id, ch) in &wired {
                client.connect(id.clone(), ch.clone());
            }
            let mut runner =
                Runner::build(spec, system, handle, client, wired, &cancel, &self.events);
            if let Err(e) = runner.setup().await {
                cancel.cancel();
                stop_all(&channels).await;
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "setup of system '{}' failed: {}",
                        runner.handle_id(),
                        e.message()
                    ),
                ));
            }
            handles.push(runner.handle());
            runners.push(runner);
        }
        let public: Vec<Channel> = channels
            .iter()
            .filter(|c| c.info().visibility == Visibility::Public)
            .cloned()
            .collect();
        if let Some((registry, ttl)) = &registry {
            for ch in &public {
                if let Err(e) = registry
                    .register_channel(DISCOVERY_SENDER, &ch.info(), Some(*ttl))
                    .await
                {
                    cancel.cancel();
                    stop_all(&channels).await;
                    return Err(e);
                }
            }
        }
        let systems = runners
            .into_iter()
            .map(|runner| tokio::spawn(runner.run()))
            .collect();
        let refresher = registry.map(|(registry, ttl)| {
            let token = cancel.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval((ttl / 2).max(Duration::from_millis(10)));
                every.tick().await;
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        _ = every.tick() => {}
                    }
                    for ch in &public {
                        if let Err(e) = registry.register_channel(DISCOVERY_SENDER, &ch.info(), Some(ttl)).await {
                            tracing::warn!(channel = ch.id(), error = %e, "refreshing discovery registration failed");
                        }
                    }
                }
            })
        });
        Ok(RunningNetwork {
            id: self.id,
            channels,
            handles,
            systems,
            refresher,
            cancel,
            events: self.events,
        })
    }

    /// Starts, runs for `duration`, then stops (systems first, channels drained last) and
    /// hands the systems back.
    pub async fn run_for(self, duration: Duration) -> Result<StoppedNetwork> {
        let running = self.start().await?;
        tokio::time::sleep(duration).await;
        running.stop().await
    }

    /// Starts, runs until `signal` completes, then stops and hands the systems back.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<StoppedNetwork> {
        let running = self.start().await?;
        signal.await;
        running.stop().await
    }
}

async fn stop_all(channels: &[Channel]) {
    for ch in channels.iter().rev() {
        ch.stop().await;
    }
}

/// A started network.
pub struct RunningNetwork {
    id: String,
    channels: Vec<Channel>,
    handles: Vec<SystemHandle>,
    systems: Vec<JoinHandle<(String, Box<dyn System>)>>,
    refresher: Option<JoinHandle<()>>,
    cancel: CancellationToken,
    events: broadcast::Sender<NetworkEvent>,
}

impl std::fmt::Debug for RunningNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNetwork")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RunningNetwork {
    /// The handle of system `id`.
    pub fn system(&self, id: &str) -> Option<SystemHandle> {
        self.handles.iter().find(|s| s.id() == id).cloned()
    }

    /// Every system handle.
    pub fn systems(&self) -> &[SystemHandle] {
        &self.handles
    }

    /// The channel `id` (anywhere in the tree).
    pub fn channel(&self, id: &str) -> Option<Channel> {
        self.channels.iter().find(|c| c.id() == id).cloned()
    }

    /// Every channel in the tree.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Every public channel in the tree (what discovery registers and a server publishes).
    pub fn public_channels(&self) -> Vec<Channel> {
        self.channels
            .iter()
            .filter(|c| c.info().visibility == Visibility::Public)
            .cloned()
            .collect()
    }

    /// Receives system events from now on.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// Waits until every system has finished by itself (stopped or failed for good).
    pub async fn wait_systems(&self) {
        for s in &self.handles {
            s.finished().await;
        }
    }

    /// Stops every system (after its current step), then drains every channel, and hands
    /// the systems back.
    pub async fn stop(self) -> Result<StoppedNetwork> {
        self.cancel.cancel();
        let mut systems = Vec::with_capacity(self.systems.len());
        for runner in self.systems {
            match runner.await {
                Ok(done) => systems.push(done),
                Err(e) => tracing::error!(error = %e, "a system runner ended abnormally"),
            }
        }
        if let Some(refresher) = self.refresher {
            let _ = refresher.await;
        }
        let mut first_error = None;
        for ch in self.channels.iter().rev() {
            if let Err(e) = ch.drain(Some(Duration::from_secs(10))).await {
                tracing::warn!(channel = ch.id(), error = %e, "drain failed");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(StoppedNetwork { systems }),
        }
    }
}

/// A network that ran and stopped: its systems, handed back with their final state.
pub struct StoppedNetwork {
    systems: Vec<(String, Box<dyn System>)>,
}

impl std::fmt::Debug for StoppedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoppedNetwork")
            .field("systems", &self.ids())
            .finish()
    }
}

impl StoppedNetwork {
    /// Ids of the systems handed back, in the order they were added.
    pub fn ids(&self) -> Vec<&str> {
        self.systems.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The system `id`, if it is of type `S`.
    pub fn system<S: System>(&self, id: &str) -> Option<&S> {
        let (_, system) = self.systems.iter().find(|(sid, _)| sid == id)?;
        let any: &dyn std::any::Any = &**system;
        any.downcast_ref()
    }

    /// Takes the system `id` out, if it is of type `S`.
    pub fn take<S: System>(&mut self, id: &str) -> Option<S> {
        let at = self.systems.iter().position(|(sid, system)| {
            let any: &dyn std::any::Any = &**system;
            sid == id && any.is::<S>()
        })?;
        let (_, system) = self.systems.remove(at);
        let any: Box<dyn std::any::Any> = system;
        any.downcast().ok().map(|s| *s)
    }
}

pub(crate) fn new_control(spec: &SystemSpec) -> crate::system::Control {
    crate::system::Control {
        last_error: std::sync::Mutex::new(None),
        reads: spec.reads.clone(),
        writes: spec.writes.clone(),
        state: watch::channel(SystemState::Init).0,
        paused: watch::channel(false).0,
        stop: CancellationToken::new(),
        steps: AtomicU64::new(0),
        restarts: AtomicU64::new(0),
    }
}
