//! A system on its own, without a [`Network`](crate::network::Network): v1's
//! `system.run(tick_rate)` with `stop()`, `pause()` and `resume()`.
//!
//! ```
//! # async fn demo() -> sssn::Result<()> {
//! use std::time::Duration;
//! use sssn::channel::BroadcastChannel;
//! use sssn::system::{self, System, SystemContext, SystemSpec};
//!
//! #[derive(Default)]
//! struct Counter { steps: u32 }
//!
//! #[async_trait::async_trait]
//! impl System for Counter {
//!     async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
//!         self.steps += 1;
//!         ctx.broadcast("ticks")?.write(&self.steps).await.map(drop)
//!     }
//! }
//!
//! let ticks = BroadcastChannel::new("ticks").build();
//! ticks.start().await?;
//! let running = system::spawn(SystemSpec::new("counter").tick_rate(20.0), Counter::default(), [ticks]).await?;
//! running.handle().pause();
//! running.handle().resume();
//! tokio::time::sleep(Duration::from_millis(120)).await;
//! let counter: Counter = running.stop().await?;
//! assert!(counter.steps >= 2);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Runner, System, SystemHandle, SystemSpec};
use crate::channel::{Channel, ChannelState, Kind};
use crate::client::ChannelClient;
use crate::error::{Error, ErrorKind, Result};
use crate::network::NetworkEvent;

/// A system running on its own; see [`spawn`]. Dropping it does not stop the system: call
/// [`stop`](Self::stop) (or `handle().stop()` and then [`join`](Self::join)).
pub struct RunningSystem<S: System> {
    handle: SystemHandle,
    task: JoinHandle<(String, Box<dyn System>)>,
    events: broadcast::Sender<NetworkEvent>,
    system: PhantomData<fn() -> S>,
}

impl<S: System> std::fmt::Debug for RunningSystem<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSystem")
            .field("id", &self.handle.id())
            .field("state", &self.handle.state())
            .finish_non_exhaustive()
    }
}

/// Runs `system` on its own, wired to the local `channels` (each under its own id; erase
/// channels of different kinds with [`Channel::erased`]). Its `setup` runs before this
/// returns (an error there is returned, and nothing keeps running); then it ticks at the
/// spec's rate, with the same supervision as in a network.
///
/// The channels must be started by their owner (a channel that was never started is
/// refused here rather than failing every step), and every channel the spec names in
/// `reads`, `writes` or `channels` must be among them, as `Network::add_system` checks.
pub async fn spawn<S: System, K: Kind>(
    spec: SystemSpec,
    system: S,
    channels: impl IntoIterator<Item = Channel<K>>,
) -> Result<RunningSystem<S>> {
    let client = ChannelClient::new(spec.id());
    let mut local = BTreeMap::new();
    for channel in channels {
        let channel = channel.erased();
        if channel.state() == ChannelState::Created {
            return Err(Error::new(
                ErrorKind::ShuttingDown,
                format!(
                    "cannot run system '{}' on channel '{}': the channel is not started (call start() first)",
                    spec.id(),
                    channel.id()
                ),
            ));
        }
        client.connect(channel.id().to_owned(), channel.clone());
        local.insert(channel.id().to_owned(), channel);
    }
    check_wiring(&spec, &client)?;
    launch(spec, system, client, local).await
}

/// Runs `system` on its own, on the channels connected to `client` (local or remote, e.g.
/// with `sssn_http::ConnectRemote`). The client's identity must be the spec's id, and
/// every channel the spec names must be connected.
pub async fn spawn_with_client<S: System>(
    spec: SystemSpec,
    system: S,
    client: ChannelClient,
) -> Result<RunningSystem<S>> {
    if client.system_id() != spec.id() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "the client acts as '{}', but the system is '{}': a system reads and writes as itself",
                client.system_id(),
                spec.id()
            ),
        ));
    }
    check_wiring(&spec, &client)?;
    launch(spec, system, client, BTreeMap::new()).await
}

/// A channel the spec declares but nobody provided is a wiring mistake: say so now, not
/// at the first step that uses it.
fn check_wiring(spec: &SystemSpec, client: &ChannelClient) -> Result<()> {
    let missing: Vec<String> = spec
        .wired()
        .into_iter()
        .filter(|id| !client.is_connected(id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::NotConnected,
        format!(
            "system '{}' names channel(s) {} that it was not given",
            spec.id(),
            missing
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

async fn launch<S: System>(
    spec: SystemSpec,
    system: S,
    client: ChannelClient,
    local: BTreeMap<String, Channel>,
) -> Result<RunningSystem<S>> {
    let handle = SystemHandle {
        id: spec.id().to_owned(),
        control: Arc::new(crate::network::new_control(&spec)),
    };
    let events = broadcast::channel(64).0;
    // Nothing above the system stops it: only its handle does.
    let never = CancellationToken::new();
    let mut runner = Runner::build(
        spec,
        Box::new(system),
        handle.clone(),
        client,
        local,
        &never,
        &events,
    );
    if let Err(e) = runner.setup().await {
        handle.stop();
        return Err(Error::new(
            e.kind(),
            format!("setup of system '{}' failed: {}", handle.id(), e.message()),
        ));
    }
    Ok(RunningSystem {
        handle,
        task: tokio::spawn(runner.run()),
        events,
        system: PhantomData,
    })
}

impl<S: System> RunningSystem<S> {
    /// Its handle: state, steps, restarts, pause, resume, stop.
    pub fn handle(&self) -> &SystemHandle {
        &self.handle
    }

    /// Its failures and restarts from now on.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// Stops it after its current step and hands it back.
    pub async fn stop(self) -> Result<S> {
        self.handle.stop();
        self.join().await
    }

    /// Waits until it finished (stopped through its handle, or failed for good) and hands
    /// it back.
    pub async fn join(self) -> Result<S> {
        let (id, system) = self.task.await.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!(
                    "the runner of system '{}' ended abnormally: {e}",
                    self.handle.id()
                ),
            )
        })?;
        let any: Box<dyn std::any::Any> = system;
        any.downcast::<S>().map(|s| *s).map_err(|_| {
            Error::new(
                ErrorKind::Internal,
                format!("system '{id}' came back as another type"),
            )
        })
    }
}
