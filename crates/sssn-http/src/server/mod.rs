//! The HTTP server: hosts channels under v1's routes, plus server push and operations.
//!
//! ```no_run
//! # async fn demo() -> sssn::Result<()> {
//! use sssn::channel::WorkQueueChannel;
//! use sssn_http::Server;
//!
//! let jobs = WorkQueueChannel::new("jobs").public().build();
//! jobs.start().await?;
//! let server = Server::builder().channel(jobs).bind("127.0.0.1:0").await?;
//! println!("serving on {}", server.url());
//! server.shutdown().await?; // stop accepting, finish requests, drain the channels
//! # Ok(()) }
//! ```
//!
//! Only public channels are served unless [`ServerBuilder::serve_private`] is set. The
//! server does not start channels: their owner does (a `Network`, or `sssn serve`).
//! Identity comes from the `Authorization: Bearer <token>` header, authenticated by the
//! channel's own [`Security`](sssn::security::Security); the token's subject is the
//! reader, sender, claimer and subscriber id.

mod events;
mod listener;
mod metrics;
mod routes;

pub use listener::{
    ACCEPT_BACKOFF, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DESCRIPTOR_RESERVE, auto_max_connections,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use sssn::channel::Kind;
use sssn::security::{Operation, Principal};
use sssn::{Channel, Error, ErrorKind, Visibility};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// One route of the API: method, path (axum syntax) and OpenAPI `operationId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path, with `{id}` for the channel id.
    pub path: &'static str,
    /// The OpenAPI operation id.
    pub operation: &'static str,
}

const fn route(method: &'static str, path: &'static str, operation: &'static str) -> Route {
    Route {
        method,
        path,
        operation,
    }
}

/// Every route the server answers; the router is built from this table, and the OpenAPI
/// document describes exactly these.
pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", "health"),
    route("GET", "/metrics", "metrics"),
    route("GET", "/openapi.json", "openapi"),
    route("GET", "/channels", "listChannels"),
    route("GET", "/channels/{id}", "read"),
    route("PUT", "/channels/{id}", "write"),
    route("POST", "/channels/{id}/batch", "writeBatch"),
    route("POST", "/channels/{id}/claim", "claim"),
    route("POST", "/channels/{id}/acknowledge", "acknowledge"),
    route("POST", "/channels/{id}/nack", "nack"),
    route("POST", "/channels/{id}/extend", "extend"),
    route("POST", "/channels/{id}/reject", "reject"),
    route("GET", "/channels/{id}/dead-letters", "deadLetters"),
    route("POST", "/channels/{id}/redrive", "redrive"),
    route("POST", "/channels/{id}/clear", "clear"),
    route("POST", "/channels/{id}/evict", "evict"),
    route("POST", "/channels/{id}/remove", "remove"),
    route("GET", "/channels/{id}/info", "info"),
    route("GET", "/channels/{id}/stats", "stats"),
    route("GET", "/channels/{id}/events", "events"),
];

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default cap on `limit` of reads and claims.
pub const DEFAULT_MAX_LIMIT: usize = 10_000;

/// Entry point: [`Server::builder`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with no channels and default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Server options. Chain, then [`bind`](Self::bind), [`serve`](Self::serve) or
/// [`into_router`](Self::into_router).
#[derive(Debug)]
pub struct ServerBuilder {
    channels: Vec<Channel>,
    serve_private: bool,
    max_body_bytes: usize,
    max_limit: usize,
    keep_alive: Duration,
    drain_on_shutdown: bool,
    drain_timeout: Option<Duration>,
    public_metrics: bool,
    /// Timeouts and the connection cap; their setters are in `listener.rs`.
    limits: listener::Limits,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            serve_private: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_limit: DEFAULT_MAX_LIMIT,
            keep_alive: Duration::from_secs(15),
            drain_on_shutdown: true,
            drain_timeout: Some(Duration::from_secs(30)),
            public_metrics: false,
            limits: listener::Limits::default(),
        }
    }
}

impl ServerBuilder {
    /// Hosts `channel` (skipped with a log line if it is private and
    /// [`serve_private`](Self::serve_private) is off).
    #[must_use]
    pub fn channel<K: Kind>(mut self, channel: Channel<K>) -> Self {
        self.channels.push(channel.erased());
        self
    }

    /// Hosts every channel of `channels` (same rule as [`channel`](Self::channel)).
    #[must_use]
    pub fn channels<K: Kind>(mut self, channels: impl IntoIterator<Item = Channel<K>>) -> Self {
        self.channels
            .extend(channels.into_iter().map(|c| c.erased()));
        self
    }

    /// Serves private channels too. Off by default: only public channels leave the process.
    #[must_use]
    pub fn serve_private(mut self, yes: bool) -> Self {
        self.serve_private = yes;
        self
    }

    /// Largest request body accepted; larger ones get 413 (default 1 MiB).
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1);
        self
    }

    /// Largest `limit` a read, claim or dead-letter listing honours; larger values are
    /// clamped (default 10,000).
    #[must_use]
    pub fn max_limit(mut self, limit: usize) -> Self {
        self.max_limit = limit.max(1);
        self
    }

    /// Interval of `: keep-alive` comments on idle event streams (default 15 s).
    #[must_use]
    pub fn sse_keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval.max(Duration::from_millis(10));
        self
    }

    /// Whether shutting the server down drains the hosted channels (default: yes, with
    /// a 30 s timeout per channel).
    #[must_use]
    pub fn drain_on_shutdown(mut self, yes: bool) -> Self {
        self.drain_on_shutdown = yes;
        self
    }

    /// How long draining one channel may take at shutdown (`None`: no limit).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Serves `/metrics` without a token (for scrapers that cannot send one). Off by
    /// default: `/metrics` then needs a token, like `GET /channels`, and shows only the
    /// channels it may read.
    #[must_use]
    pub fn public_metrics(mut self, yes: bool) -> Self {
        self.public_metrics = yes;
        self
    }

    fn state(self, shutdown: CancellationToken) -> Result<Arc<AppState>, Error> {
        let mut channels = BTreeMap::new();
        for channel in self.channels {
            if channel.info().visibility != Visibility::Public && !self.serve_private {
                tracing::info!(
                    channel = channel.id(),
                    "private channel not served (ServerBuilder::serve_private is off)"
                );
                continue;
            }
            let id = channel.id().to_owned();
            if let Some(other) = channels.insert(id.clone(), channel.clone())
                && !other.same_channel(&channel)
            {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("two different channels with id '{id}'"),
                ));
            }
        }
        Ok(Arc::new(AppState {
            channels,
            max_body_bytes: self.max_body_bytes,
            max_limit: self.max_limit,
            keep_alive: self.keep_alive,
            public_metrics: self.public_metrics,
            drain_on_shutdown: self.drain_on_shutdown,
            drain_timeout: self.drain_timeout,
            shutdown,
            sse_streams: AtomicU64::new(0),
        }))
    }

    /// The router alone, to nest into an application or drive in tests. Its event streams
    /// end when `shutdown` is cancelled.
    pub fn into_router(self, shutdown: CancellationToken) -> Result<Router, Error> {
        Ok(build_router(self.state(shutdown)?))
    }

    /// Binds `addr` (`"127.0.0.1:0"` picks a free port) and serves in a background task.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::new(ErrorKind::InvalidArgument, format!("cannot bind: {e}")).with_source(e)
        })?;
        self.serve(listener).await
    }

    /// Serves on an already bound listener in a background task.
    pub async fn serve(self, listener: TcpListener) -> Result<ServerHandle, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("local_addr: {e}")))?;
        let shutdown = CancellationToken::new();
        let limits = self.limits;
        let state = self.state(shutdown.clone())?;
        let router = build_router(state.clone());
        let token = shutdown.clone();
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            // Stops accepting on `token`, then waits for the requests in flight.
            listener::serve(listener, router, limits, token).await;
            task_state.drain_channels().await
        });
        tracing::info!(%addr, channels = state.channels.len(), "sssn HTTP server listening");
        Ok(ServerHandle {
            addr,
            shutdown,
            task,
            channel_ids: state.channels.keys().cloned().collect(),
        })
    }
}

/// A running server. Dropping the handle leaves the server running; call
/// [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
    channel_ids: Vec<String>,
}

impl ServerHandle {
    /// The bound address (with the port chosen for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full URL of a hosted channel (what `RemoteChannel::connect` takes).
    pub fn channel_url(&self, id: &str) -> String {
        format!("{}/channels/{}", self.url(), encode_segment(id))
    }

    /// Ids of the channels served, sorted.
    pub fn channel_ids(&self) -> &[String] {
        &self.channel_ids
    }

    /// A token that starts a graceful shutdown when cancelled (e.g. from a signal handler).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Graceful shutdown: ends event streams, stops accepting connections, finishes the
    /// requests in flight, then drains the hosted channels (unless disabled).
    pub async fn shutdown(self) -> Result<(), Error> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server has stopped (after [`shutdown_token`](Self::shutdown_token)
    /// was cancelled).
    pub async fn wait(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("server task: {e}")))?
    }
}

/// Percent-encodes a channel id for use as one path segment.
pub fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) struct AppState {
    channels: BTreeMap<String, Channel>,
    max_body_bytes: usize,
    max_limit: usize,
    keep_alive: Duration,
    public_metrics: bool,
    drain_on_shutdown: bool,
    drain_timeout: Option<Duration>,
    shutdown: CancellationToken,
    sse_streams: AtomicU64,
}

impl AppState {
    fn channel(&self, id: &str) -> Result<&Channel, ApiError> {
        self.channels
            .get(id)
            .ok_or_else(|| ApiError::unknown_channel(id))
    }

    /// Token present → channel served → token authenticated, in that order (401, 404,
    /// 401). The operation is then authorised by the channel itself, the one check on
    /// every path (403).
    fn caller(&self, headers: &HeaderMap, id: &str) -> Result<(Channel, Principal), ApiError> {
        let token = bearer(headers)?;
        let channel = self.channel(id)?;
        let principal = authenticate(&*channel.security(), token)?;
        Ok((channel.clone(), principal))
    }

    /// Channels the bearer may read (listing, metrics). 401 when the token authenticates
    /// with none of the channels' policies.
    fn readable(&self, headers: &HeaderMap) -> Result<Vec<&Channel>, ApiError> {
        let token = bearer(headers)?;
        let mut authenticated = self.channels.is_empty();
        let mut out = Vec::new();
        let mut last_error = None;
        for channel in self.channels.values() {
            let security = channel.security();
            match authenticate(&*security, token) {
                Ok(p) => {
                    authenticated = true;
                    if security.authorize(&p, channel.id(), Operation::Read) {
                        out.push(channel);
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (authenticated, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    async fn drain_channels(&self) -> Result<(), Error> {
        if !self.drain_on_shutdown {
            return Ok(());
        }
        let mut outcome = Ok(());
        for channel in self.channels.values() {
            if let Err(e) = channel.drain(self.drain_timeout).await {
                tracing::warn!(channel = channel.id(), error = %e, "drain failed");
                outcome = Err(e);
            }
        }
        tracing::info!(channels = self.channels.len(), "channels drained");
        outcome
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme name is
/// case-insensitive (RFC 7235 §2.1: `bearer`, `BEARER` work too; v1 wanted `Bearer`).
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim_start_matches(' '))
        })
        .ok_or_else(ApiError::missing_token)
}

fn authenticate(
    security: &dyn sssn::security::Security,
    token: &str,
) -> Result<Principal, ApiError> {
    // The policy's message is a plain sentence (`The token has expired (5 min ago).`).
    security
        .authenticate(token)
        .map_err(|e| ApiError::new(ErrorKind::Unauthenticated, e.message()))
}

fn method_router(operation: &str) -> MethodRouter<Arc<AppState>> {
    use axum::routing::{get, post, put};
    match operation {
        "health" => get(routes::health),
        "metrics" => get(routes::metrics),
        "openapi" => get(routes::openapi),
        "listChannels" => get(routes::list_channels),
        "read" => get(routes::read),
        "write" => put(routes::write),
        "writeBatch" => post(routes::write_batch),
        "claim" => post(routes::claim),
        "acknowledge" => post(routes::acknowledge),
        "nack" => post(routes::nack),
        "extend" => post(routes::extend),
        "reject" => post(routes::reject),
        "deadLetters" => get(routes::dead_letters),
        "redrive" => post(routes::redrive),
        "clear" => post(routes::clear),
        "evict" => post(routes::evict),
        "remove" => post(routes::remove),
        "info" => get(routes::info),
        "stats" => get(routes::stats),
        "events" => get(events::events),
        other => unreachable!("route table names an unknown operation '{other}'"),
    }
}

fn build_router(state: Arc<AppState>) -> Router {
    let mut by_path: BTreeMap<&str, MethodRouter<Arc<AppState>>> = BTreeMap::new();
    for r in ROUTES {
        let mr = method_router(r.operation);
        let merged = match by_path.remove(r.path) {
            Some(existing) => existing.merge(mr),
            None => mr,
        };
        by_path.insert(r.path, merged);
    }
    let mut router = Router::new();
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(ErrorKind::Internal, "Internal error.").into_response()
            },
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler_and_operations_are_unique() {
        let mut ops = std::collections::HashSet::new();
        for r in ROUTES {
            let _ = method_router(r.operation);
            assert!(
                ops.insert(r.operation),
                "duplicate operation {}",
                r.operation
            );
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("jobs-1.x_~"), "jobs-1.x_~");
    }
}
