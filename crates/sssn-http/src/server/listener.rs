//! The accept loop: a connection cap, header-read, request-body and idle timeouts, a
//! back-off when descriptors run out, and graceful shutdown.
//!
//! Each accepted connection is served by hyper-util's automatic HTTP/1.1 / HTTP/2 builder
//! (HTTP/2 with prior knowledge, `h2c`, as before) and watched by its own task:
//!
//! * **Header read** ([`ServerBuilder::header_read_timeout`], default
//!   [`DEFAULT_HEADER_READ_TIMEOUT`]): a new connection must deliver its first request's
//!   head within this time, and on a kept-alive HTTP/1 connection a request whose first
//!   byte has arrived must complete its head within it. A client trickling header bytes
//!   (slowloris) is disconnected when it runs out.
//! * **Request body** ([`ServerBuilder::body_timeout`], default [`DEFAULT_BODY_TIMEOUT`]):
//!   the whole body must arrive within this time after the head; otherwise the request is
//!   answered `408` (`kind: "timeout"`) and the connection closed.
//! * **Idle** ([`ServerBuilder::idle_timeout`], default [`DEFAULT_IDLE_TIMEOUT`]): a
//!   connection with no request in flight is closed after this long (for HTTP/2, bytes
//!   such as pings do not keep it open). A connection with a request in flight has no
//!   deadline: responses, event streams in particular, may last as long as they need.
//! * **Connections** ([`ServerBuilder::max_connections`], default from the descriptor
//!   limit, see [`auto_max_connections`]): at the cap the server stops accepting; new
//!   connections wait in the kernel's listen backlog (they are not refused, and cost the
//!   server nothing) until a connection closes.
//! * **Descriptors exhausted** (`EMFILE`, `ENFILE`, also `ENOBUFS`/`ENOMEM`, any accept
//!   error but a peer's reset): the loop sleeps [`ACCEPT_BACKOFF`] before the next accept,
//!   so it neither spins nor exits, and logs `accept error` once, then every 10 s while
//!   the errors last; connections already open are served meanwhile.
//!
//! Shutdown stops accepting, lets every connection finish the requests in flight (event
//! streams end on the server's shutdown token), closes the others at once (an idle
//! connection, or one whose request head is still arriving, within a second), then
//! returns.

use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, Version, header};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::ServerBuilder;
use crate::error::ErrorBody;

/// Default [`ServerBuilder::header_read_timeout`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ServerBuilder::body_timeout`]: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ServerBuilder::idle_timeout`]: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The connection cap when the descriptor limit is unknown or unlimited, and the most
/// [`auto_max_connections`] gives: 10,000.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Descriptors [`auto_max_connections`] leaves for everything but connections (the
/// listener, the runtime, store files, NATS connections, logs): 64.
pub const DESCRIPTOR_RESERVE: usize = 64;
/// How long the accept loop sleeps after an error that retrying at once cannot fix
/// (descriptors exhausted, memory short): 100 ms.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// While accept keeps failing, or the cap keeps being reached, one log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long an idle connection asked to close gracefully may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The default connection cap: the soft descriptor limit (`RLIMIT_NOFILE`) less
/// [`DESCRIPTOR_RESERVE`], at least 1 and at most [`DEFAULT_MAX_CONNECTIONS`] (which is
/// also the value when the limit is unknown or unlimited). Under `ulimit -n 256` it is 192.
pub fn auto_max_connections() -> usize {
    match descriptor_limit() {
        Some(limit) => usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(DESCRIPTOR_RESERVE)
            .clamp(1, DEFAULT_MAX_CONNECTIONS),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// The connection limits and timeouts of a server (set on [`ServerBuilder`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    header_read_timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            body_timeout: Some(DEFAULT_BODY_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connections: None,
        }
    }
}

/// Connection limits and timeouts. They apply to the server [`bind`](Self::bind) and
/// [`serve`](Self::serve) run, not to [`into_router`](Self::into_router), whose host
/// serves the connections. `docs/http-api.md` ("Limits and timeouts") has the table.
impl ServerBuilder {
    /// How long a client may take to send a request's head: from the accept for a new
    /// connection, from the first byte of the next request on a kept-alive HTTP/1
    /// connection (default 10 s; `None`: no limit). A slow-header client (slowloris) is
    /// disconnected when it runs out.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.header_read_timeout = timeout.map(non_zero);
        self
    }

    /// How long a client may take to send a request's body after its head (default 30 s;
    /// `None`: no limit). Past it the request is answered `408 Request Timeout` and the
    /// connection closed. Responses are not limited: event streams last.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.body_timeout = timeout.map(non_zero);
        self
    }

    /// How long a connection with no request in flight stays open (default 60 s; `None`:
    /// until the client closes it). An open event stream is a request in flight: it is not
    /// idle, however long it stays quiet.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.idle_timeout = timeout.map(non_zero);
        self
    }

    /// The most connections served at once (default: [`auto_max_connections`], the
    /// descriptor limit less a reserve, at most 10,000). At the cap the server stops
    /// accepting: new connections wait in the kernel's listen backlog until one closes.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = Some(max.max(1));
        self
    }
}

fn non_zero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// Accepts and serves connections on `listener` until `shutdown` is cancelled, then waits
/// for the connections to finish their requests in flight.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let max = limits.max_connections.unwrap_or_else(auto_max_connections);
    tracing::debug!(
        max_connections = max,
        header_read_timeout = ?limits.header_read_timeout,
        body_timeout = ?limits.body_timeout,
        idle_timeout = ?limits.idle_timeout,
        "accepting connections"
    );
    let slots = Arc::new(Semaphore::new(max));
    let tracker = TaskTracker::new();
    let mut last_cap_log: Option<Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    let mut errors_since_log: u64 = 0;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let now = Instant::now();
                if last_cap_log.is_none_or(|t| now >= t + LOG_EVERY) {
                    tracing::warn!(
                        max_connections = max,
                        "connection cap reached: new connections wait in the listen backlog"
                    );
                    last_cap_log = Some(now);
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                drop(permit);
                if is_transient(&e) {
                    continue;
                }
                // Once, then at most every LOG_EVERY while it lasts.
                let now = Instant::now();
                if last_error_log.is_none_or(|t| now >= t + LOG_EVERY) {
                    tracing::error!(
                        error = %e,
                        repeated = errors_since_log,
                        backoff_ms = ACCEPT_BACKOFF.as_millis() as u64,
                        "accept error; retrying after a pause"
                    );
                    last_error_log = Some(now);
                    errors_since_log = 0;
                } else {
                    errors_since_log += 1;
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let shutdown = shutdown.clone();
        let hold = ConnectionHold(Arc::new(HoldInner {
            _permit: permit,
            _tracked: tracker.token(),
            idle_timeout: limits.idle_timeout,
        }));
        tracker.spawn(async move {
            serve_connection(stream, router, limits, shutdown, hold).await;
            tracing::trace!(%peer, "connection closed");
        });
    }
    drop(listener);
    tracker.close();
    tracing::debug!(
        connections = tracker.len(),
        "not accepting; waiting for connections"
    );
    tracker.wait().await;
}

/// A connection's slot under the cap, and its place among the connections shutdown waits
/// for. Every request carries a clone (an extension), so a connection upgraded to the
/// stream transport keeps both after hyper has handed its socket over.
#[derive(Clone)]
pub(crate) struct ConnectionHold(Arc<HoldInner>);

struct HoldInner {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _tracked: tokio_util::task::task_tracker::TaskTrackerToken,
    idle_timeout: Option<Duration>,
}

impl ConnectionHold {
    /// The server's idle timeout: the stream transport closes after it, too.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        self.0.idle_timeout
    }
}

/// Errors of one connection (the peer gave up before the accept): accept the next one.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset | K::Interrupted
    )
}

/// One connection: hyper serves it, this task enforces the deadlines and the shutdown.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    hold: ConnectionHold,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(hold.clone());
            handle(router.clone(), activity.clone(), limits.body_timeout, req)
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // This task enforces the header-read timeout (hyper's own would also count the idle
    // time between kept-alive requests).
    builder.http1().header_read_timeout(None);
    // With upgrades: `GET /stream` becomes a WebSocket (server/stream.rs).
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut closing = false;
    let mut grace: Option<Instant> = None;
    loop {
        let deadline = match grace {
            Some(g) => Some(g),
            None => activity.deadline(&limits),
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
                if activity.in_flight.load(Ordering::Acquire) == 0 {
                    // Idle, or a request head under way: no reason to wait for it.
                    grace = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            () = activity.changed.notified() => {}
            () = sleep => {
                if grace.is_some() {
                    if activity.in_flight.load(Ordering::Acquire) == 0 {
                        return; // did not close within the grace: drop it
                    }
                    grace = None; // a request came in meanwhile: let it finish
                    continue;
                }
                match activity.expired(&limits) {
                    Expired::No => {}
                    Expired::Header => {
                        tracing::debug!("request head not received in time; closing");
                        return;
                    }
                    Expired::Idle => {
                        tracing::trace!("idle connection; closing");
                        if closing {
                            return;
                        }
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        grace = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
            }
        }
    }
}

/// One request: counts it in flight until its response body is done, and bounds the time
/// its body may take.
async fn handle(
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Option<Duration>,
    req: Request<Incoming>,
) -> Result<Response<Tracked>, Infallible> {
    let version = req.version();
    let in_flight = activity.request_started(version);
    let timed_out = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| match body_timeout {
        Some(limit) => Body::new(TimedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            timed_out: timed_out.clone(),
            limit,
        }),
        None => Body::new(body),
    });
    let response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let response = if timed_out.load(Ordering::Relaxed) {
        body_timeout_response(body_timeout.unwrap_or_default(), version)
    } else {
        response
    };
    Ok(response.map(|body| Tracked {
        inner: body,
        _in_flight: in_flight,
    }))
}

/// `408` for a body that did not arrive in time; an HTTP/1 connection closes after it
/// (the rest of the body is not read).
fn body_timeout_response(limit: Duration, version: Version) -> Response<Body> {
    let body = ErrorBody {
        detail: format!(
            "The request body did not arrive within {} (the server's body timeout).",
            words(limit)
        ),
        kind: Some(sssn::ErrorKind::Timeout.as_str().to_owned()),
    };
    let mut r = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if version != Version::HTTP_2 {
        // (HTTP/2 has no connection header: the stream is reset instead.)
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn words(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What a connection is doing, for its deadlines.
struct Activity {
    state: Mutex<State>,
    /// Set while no request is in flight and no byte has arrived since: the next read
    /// records the start of a request head.
    awaiting_first_byte: AtomicBool,
    in_flight: AtomicUsize,
    /// Wakes the watchdog when the deadline may have moved.
    changed: Notify,
}

struct State {
    /// When the connection was accepted, or its last request finished.
    idle_since: Instant,
    /// First byte read since `idle_since` (an HTTP/1 request head under way).
    first_byte: Option<Instant>,
    /// No request yet: the first must arrive within the header-read timeout.
    fresh: bool,
    http2: bool,
}

enum Expired {
    No,
    Header,
    Idle,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                idle_since: Instant::now(),
                first_byte: None,
                fresh: true,
                http2: false,
            }),
            awaiting_first_byte: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instant this connection is to be closed at unless something happens first;
    /// `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let s = self.state();
        let header = if s.fresh {
            Some(s.idle_since)
        } else if s.http2 {
            None
        } else {
            s.first_byte
        };
        let header = header.and_then(|t| Some(t + limits.header_read_timeout?));
        let idle = limits.idle_timeout.map(|d| s.idle_since + d);
        match (header, idle) {
            (Some(h), Some(i)) => Some(h.min(i)),
            (h, i) => h.or(i),
        }
    }

    fn expired(&self, limits: &Limits) -> Expired {
        let Some(deadline) = self.deadline(limits) else {
            return Expired::No;
        };
        if Instant::now() < deadline {
            return Expired::No;
        }
        let s = self.state();
        if s.fresh || (!s.http2 && s.first_byte.is_some()) {
            Expired::Header
        } else {
            Expired::Idle
        }
    }

    fn on_read(&self) {
        if self.awaiting_first_byte.swap(false, Ordering::AcqRel) {
            let mut s = self.state();
            if s.first_byte.is_none() {
                s.first_byte = Some(Instant::now());
            }
            drop(s);
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.awaiting_first_byte.store(false, Ordering::Release);
        {
            let mut s = self.state();
            s.fresh = false;
            s.http2 = version == Version::HTTP_2;
            s.first_byte = None;
        }
        self.changed.notify_one();
        InFlight(self.clone())
    }
}

/// A request in flight, until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            {
                let mut s = a.state();
                s.idle_since = Instant::now();
                s.first_byte = None;
            }
            a.awaiting_first_byte.store(true, Ordering::Release);
            a.changed.notify_one();
        }
    }
}

/// The socket, noting when the first byte of a request head arrives.
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request in flight until it is done.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body, failing once the body timeout has run out.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
    limit: Duration,
}

/// The error a request body yields when the body timeout runs out.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {}",
            words(self.0)
        )
    }
}

impl std::error::Error for BodyTimeout {}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_descriptor_limit() {
        let cap = auto_max_connections();
        assert!((1..=DEFAULT_MAX_CONNECTIONS).contains(&cap));
        if let Some(limit) = descriptor_limit() {
            let expected = (limit as usize)
                .saturating_sub(DESCRIPTOR_RESERVE)
                .clamp(1, DEFAULT_MAX_CONNECTIONS);
            assert_eq!(cap, expected);
        }
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(words(Duration::from_secs(30)), "30 s");
        assert_eq!(words(Duration::from_millis(250)), "250 ms");
    }
}
