//! [`Publish`]: a network's public channels over HTTP in one call, as v1's
//! `system.publish(host, port)`.
//!
//! ```no_run
//! # async fn demo() -> sssn::Result<()> {
//! use sssn::channel::BroadcastChannel;
//! use sssn::network::Network;
//! use sssn_http::Publish;
//!
//! let mut net = Network::new("pipeline");
//! net.add_channel(BroadcastChannel::new("refined-records").public().build())?;
//! // Starts the network, then serves its public channels (and `/docs`).
//! let published = net.publish("127.0.0.1:8000").await?;
//! println!("serving on {}", published.url());
//! let stopped = published.stop().await?; // the server first, then the network
//! # drop(stopped); Ok(()) }
//! ```
//!
//! Only public channels are served (private ones never leave the process, as in v1).
//! The network owns the channels, so shutting the server down leaves them running; the
//! network drains them when it stops. To register the public channels in a discovery
//! channel, as v1's `publish` did, use `Network::register_public_channels`.

use std::net::SocketAddr;

use sssn::Result;
use sssn::network::{Network, RunningNetwork, StoppedNetwork};
use tokio::net::ToSocketAddrs;

use crate::server::{Server, ServerBuilder, ServerHandle};

/// Serving a network over HTTP in one call; implemented for [`Network`] (starts it) and
/// [`RunningNetwork`] (serves it as it is).
pub trait Publish {
    /// What the call hands back.
    type Published;

    /// Serves the public channels on `addr` (`"127.0.0.1:0"` picks a free port) with the
    /// server's default settings.
    fn publish(
        self,
        addr: impl ToSocketAddrs + Send,
    ) -> impl Future<Output = Result<Self::Published>> + Send
    where
        Self: Sized,
    {
        self.publish_with(Server::builder(), addr)
    }

    /// Same, with the limits and timeouts of `server` (its channels, if any, are served
    /// too; draining at shutdown is left to the network).
    fn publish_with(
        self,
        server: ServerBuilder,
        addr: impl ToSocketAddrs + Send,
    ) -> impl Future<Output = Result<Self::Published>> + Send;
}

impl Publish for &RunningNetwork {
    type Published = ServerHandle;

    async fn publish_with(
        self,
        server: ServerBuilder,
        addr: impl ToSocketAddrs + Send,
    ) -> Result<ServerHandle> {
        server
            .channels(self.channels().iter().cloned())
            .serve_private(false)
            .drain_on_shutdown(false)
            .bind(addr)
            .await
    }
}

impl Publish for Network {
    type Published = PublishedNetwork;

    /// Starts the network (all or nothing), then serves it. If the address cannot be
    /// bound, the network is stopped again and the error returned.
    async fn publish_with(
        self,
        server: ServerBuilder,
        addr: impl ToSocketAddrs + Send,
    ) -> Result<PublishedNetwork> {
        let network = self.start().await?;
        match (&network).publish_with(server, addr).await {
            Ok(server) => Ok(PublishedNetwork { network, server }),
            Err(e) => {
                if let Err(stop) = network.stop().await {
                    tracing::warn!(error = %stop, "stopping the network after a failed publish");
                }
                Err(e)
            }
        }
    }
}

/// A started network with its HTTP server ([`Publish`] on a [`Network`]).
#[derive(Debug)]
pub struct PublishedNetwork {
    network: RunningNetwork,
    server: ServerHandle,
}

impl PublishedNetwork {
    /// The running network: its systems, channels and events.
    pub fn network(&self) -> &RunningNetwork {
        &self.network
    }

    /// The server: address, channel URLs, shutdown token.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The bound address (with the port chosen for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Stops serving (event streams end, requests in flight finish), then stops the
    /// network (systems, then channels drained) and hands its systems back.
    pub async fn stop(self) -> Result<StoppedNetwork> {
        let served = self.server.shutdown().await;
        let stopped = self.network.stop().await?;
        served?;
        Ok(stopped)
    }
}
