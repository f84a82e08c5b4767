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

mod docs;
pub(crate) mod events;
mod listener;
mod metrics;
pub(crate) mod paging;
pub(crate) mod routes;
mod stream;

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
use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use sssn::channel::Kind;
use sssn::security::{Operation, Principal};
use sssn::{Channel, Error, ErrorKind, Visibility};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

pub use crate::api::{ROUTES, Route};
pub use docs::CONTENT_SECURITY_POLICY as DOCS_CONTENT_SECURITY_POLICY;
pub use routes::TRUNCATED_HEADER;

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default cap on `limit` of reads and claims.
pub const DEFAULT_MAX_LIMIT: usize = 10_000;
/// Default byte budget of one response: 12 MiB of messages. With the default 1 MiB body
/// limit, messages are fetched 12 at a time, so v1's default read (`limit=10`) is one
/// store call.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 12 << 20;

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
    max_response_bytes: usize,
    keep_alive: Duration,
    drain_on_shutdown: bool,
    drain_timeout: Option<Duration>,
    public_metrics: bool,
    /// Timeouts and the connection cap; their setters are in `listener.rs`.
    limits: listener::Limits,
    /// Systems the console shows (`systems`, `network`).
    systems: Vec<sssn::system::SystemHandle>,
    /// Whether `/ui` is served and the hop journal kept (default: yes).
    console: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            serve_private: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_limit: DEFAULT_MAX_LIMIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            keep_alive: Duration::from_secs(15),
            drain_on_shutdown: true,
            drain_timeout: Some(Duration::from_secs(30)),
            public_metrics: false,
            limits: listener::Limits::default(),
            systems: Vec::new(),
            console: true,
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

    /// The byte budget of one response (default 12 MiB): a read, claim or dead-letter
    /// listing stops adding messages once their JSON reaches it, and an event stream
    /// catches up in pages of at most this much. At least one message is always returned,
    /// so a message larger than the budget is still readable. A shared read's cursor (and a
    /// claim) covers exactly the messages returned: read again for the rest. A reply cut
    /// short by the budget carries `X-Sssn-Truncated: true`.
    ///
    /// Messages are fetched from the channel in pages sized so that messages up to
    /// [`max_body_bytes`](Self::max_body_bytes) (the largest a client can write) stay
    /// within the budget, so a budget of several times the body limit keeps pages large.
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes.max(1);
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

    /// Shows these systems (state, steps, restarts, last error, wiring) in the console and
    /// `GET /topology`.
    #[must_use]
    pub fn systems(
        mut self,
        systems: impl IntoIterator<Item = sssn::system::SystemHandle>,
    ) -> Self {
        self.systems.extend(systems);
        self
    }

    /// Hosts a running network's channels (same rule as [`channel`](Self::channel)) and
    /// shows its systems: what a program embedding the server for its console needs.
    #[must_use]
    pub fn network(self, network: &sssn::network::RunningNetwork) -> Self {
        self.channels(network.channels().iter().cloned())
            .systems(network.systems().iter().cloned())
    }

    /// Serves the web console at `/ui` and keeps the hop journal its trace view reads
    /// (default: yes). The console's data needs a token like every other route.
    #[must_use]
    pub fn console(mut self, yes: bool) -> Self {
        self.console = yes;
        self
    }

    fn state(self, shutdown: CancellationToken) -> Result<Arc<AppState>, Error> {
        if self.console {
            sssn::trace::journal::enable(crate::console::JOURNAL_TRACES);
        }
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
        let openapi = crate::openapi::document(&crate::openapi::Limits {
            max_limit: self.max_limit,
            max_body_bytes: self.max_body_bytes,
            max_response_bytes: self.max_response_bytes,
        });
        Ok(Arc::new(AppState {
            channels,
            max_body_bytes: self.max_body_bytes,
            max_limit: self.max_limit,
            max_response_bytes: self.max_response_bytes,
            openapi,
            keep_alive: self.keep_alive,
            public_metrics: self.public_metrics,
            drain_on_shutdown: self.drain_on_shutdown,
            drain_timeout: self.drain_timeout,
            shutdown,
            sse_streams: AtomicU64::new(0),
            systems: self.systems,
            console: self.console,
        }))
    }

    /// The router alone, to nest into an application or drive in tests. Its event streams
    /// end when `shutdown` is cancelled.
    pub fn into_router(self, shutdown: CancellationToken) -> Result<Router, Error> {
        Ok(build_router(self.state(shutdown)?))
    }

    /// Binds `addr` (`"127.0.0.1:0"` picks a free port) and serves in a background task.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle, Error> {
        // The cause is the source, said once by `Error`'s Display (not in the message too).
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, "cannot bind").with_source(e))?;
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
    max_response_bytes: usize,
    openapi: serde_json::Value,
    keep_alive: Duration,
    public_metrics: bool,
    drain_on_shutdown: bool,
    drain_timeout: Option<Duration>,
    shutdown: CancellationToken,
    sse_streams: AtomicU64,
    systems: Vec<sssn::system::SystemHandle>,
    console: bool,
}

impl AppState {
    fn channel(&self, id: &str) -> Result<&Channel, ApiError> {
        self.channels
            .get(id)
            .ok_or_else(|| ApiError::unknown_channel(id))
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

    /// Ids of the channels the bearer may read (401 as for [`readable`](Self::readable)).
    pub(crate) fn readable_ids(&self, headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
        Ok(self
            .readable(headers)?
            .into_iter()
            .map(|c| c.id().to_owned())
            .collect())
    }

    /// Every served channel.
    pub(crate) fn served(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
    }

    /// The systems shown in the console.
    pub(crate) fn systems(&self) -> &[sssn::system::SystemHandle] {
        &self.systems
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

/// The caller of a channel route, authenticated before anything else of the request is
/// looked at: token present → channel served → token authenticated, in that order (401,
/// 404, 401). The operation is then authorised by the channel itself, the one check on
/// every path (403). Every channel handler takes this as its first argument, so no query
/// or body is validated for a caller without a valid token.
pub(crate) struct Authed {
    pub(crate) channel: Channel,
    pub(crate) caller: Principal,
}

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?.to_owned();
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid channel id in path: {e}")))?;
        Self::of(state, &token, &id)
    }
}

impl Authed {
    /// The caller `token` stands for on channel `id`: 404 for a channel not served, then
    /// 401 for a token its policy refuses (after the token's presence was checked).
    pub(crate) fn of(state: &AppState, token: &str, id: &str) -> Result<Self, ApiError> {
        let channel = state.channel(id)?;
        let caller = authenticate(&*channel.security(), token)?;
        Ok(Self {
            channel: channel.clone(),
            caller,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme name is
/// case-insensitive (RFC 7235 §2.1: `bearer`, `BEARER` work too; v1 wanted `Bearer`).
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
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

fn build_router(state: Arc<AppState>) -> Router {
    let mut by_path: BTreeMap<&str, MethodRouter<Arc<AppState>>> = BTreeMap::new();
    for r in ROUTES {
        let mr = r.method_router();
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
    let mut router = router.merge(docs::router());
    if state.console {
        router = router.merge(crate::console::assets_router());
    }
    let api = router
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(ErrorKind::Internal, "Internal error.").into_response()
            },
        ))
        .with_state(state.clone());
    // The stream transport serves its frames through `api`, the same routes.
    api.clone()
        .route(crate::stream::STREAM_PATH, stream::route(state, api))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("jobs-1.x_~"), "jobs-1.x_~");
    }
}
