//! [`SystemContext`]: what a system's hooks get — its identity, its channels, and its
//! subscriptions.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::{Channel, RecvError};
use crate::client::ChannelClient;
use crate::descriptor::{ServiceDescriptor, ServiceMethod};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Entry;

/// A delivery for `on_message`: channel id and entry.
pub(crate) type Delivery = (String, Entry);

/// The hooks' view of the runtime. Dereferences to the system's [`ChannelClient`], so
/// `ctx.work_queue("jobs")?.claim(3)`, `ctx.broadcast("results")?.write(&data)`, … act as
/// this system, on exactly the channels it is wired to.
pub struct SystemContext {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) client: ChannelClient,
    pub(crate) local: BTreeMap<String, Channel>,
    pub(crate) reads: Vec<String>,
    pub(crate) writes: Vec<String>,
    pub(crate) services: Vec<ServiceMethod>,
    pub(crate) deliveries: mpsc::Sender<Delivery>,
    pub(crate) stop: CancellationToken,
    pub(crate) forwarders: TaskTracker,
    pub(crate) wake: Arc<Notify>,
    pub(crate) step: u64,
}

impl std::fmt::Debug for SystemContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemContext")
            .field("id", &self.id())
            .field("channels", &self.client.channel_ids())
            .finish_non_exhaustive()
    }
}

impl Deref for SystemContext {
    type Target = ChannelClient;
    fn deref(&self) -> &ChannelClient {
        &self.client
    }
}

impl SystemContext {
    /// This system's id.
    pub fn id(&self) -> &str {
        self.client.system_id()
    }

    /// This system's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel client (also reachable through `Deref`).
    pub fn client(&self) -> &ChannelClient {
        &self.client
    }

    /// Number of completed steps.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Asks the runtime to stop this system after the current hook returns.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Delivers every new message of channel `channel_id` to `on_message`, on this
    /// system's task. A system that falls behind catches up from the channel's store.
    pub async fn subscribe(&mut self, channel_id: &str) -> Result<()> {
        let mut sub = self.client.channel(channel_id)?.subscribe().await?;
        let tx = self.deliveries.clone();
        let stop = self.stop.clone();
        let id = channel_id.to_owned();
        self.forwarders.spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    r = sub.recv() => r,
                };
                match next {
                    Ok(entry) => {
                        if tx.send((id.clone(), entry)).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(channel = %id, missed = n, "system subscription lagged; catching up");
                    }
                    Err(RecvError::Gap { from, to }) => {
                        tracing::warn!(channel = %id, from, to, "messages were removed before this system got them");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(())
    }

    /// A local channel wired to this system (for kind-specific views such as
    /// [`Channel::discovery`]).
    pub fn local_channel(&self, id: &str) -> Result<&Channel> {
        self.local.get(id).ok_or_else(|| {
            Error::new(
                ErrorKind::NotConnected,
                format!("Channel '{id}' is not connected as a local channel."),
            )
        })
    }

    /// Runs `step` as soon as a message arrives on channel `channel_id`, besides the
    /// regular ticks (arrivals while a step runs coalesce into one more step). A worker
    /// that claims from a queue in `step` then reacts to new work at once instead of at
    /// its next tick.
    pub async fn wake_on(&mut self, channel_id: &str) -> Result<()> {
        let mut sub = self.client.channel(channel_id)?.subscribe().await?;
        let wake = self.wake.clone();
        let stop = self.stop.clone();
        self.forwarders.spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    r = sub.recv() => r,
                };
                match next {
                    Err(RecvError::Closed) => return,
                    // Anything else means the channel changed: look.
                    Ok(_) | Err(_) => wake.notify_one(),
                }
            }
        });
        Ok(())
    }

    /// This system's descriptor: identity, services, and the channels it reads and writes.
    pub fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor {
            system_id: self.id().to_owned(),
            system_name: self.name.clone(),
            description: self.description.clone(),
            services: self.services.clone(),
            channels_read: self.reads.clone(),
            channels_write: self.writes.clone(),
        }
    }

    /// Registers this system's descriptor in the discovery channel `discovery_id` (wired to
    /// this system), for `ttl` (default: the channel's registration TTL), as this system
    /// (it needs `Write` there). Call it again to refresh.
    pub async fn announce(&self, discovery_id: &str, ttl: Option<Duration>) -> Result<()> {
        self.local_channel(discovery_id)?
            .discovery()?
            .register_system(self.id(), &self.descriptor(), ttl)
            .await
    }
}
