//! [`RemoteChannel`]: a channel on an sssn server, behind the same [`ChannelEndpoint`]
//! interface as a local [`Channel`](sssn::Channel).
//!
//! ```no_run
//! # async fn demo() -> sssn::Result<()> {
//! use sssn::ChannelClient;
//! use sssn_http::ConnectRemote;
//!
//! let client = ChannelClient::new("worker-1");
//! // v1's form: the full channel URL and a bare token.
//! client.connect_remote("jobs", "http://127.0.0.1:8000/channels/jobs", Some("worker-1"))?;
//! let jobs = client.work_queue("jobs")?;
//! jobs.write(&serde_json::json!({"n": 1})).await?;
//! let claims = jobs.claim(10).await?;
//! # Ok(()) }
//! ```
//!
//! # URLs
//!
//! * `http://host:8000/channels/my-channel` — v1's full channel URL (what sssn 0.0.1's
//!   `connect_remote` took); the last segment is the channel id, percent-decoded. A server
//!   mounted under a prefix works too (`http://host/api/channels/my-channel`).
//! * `http://host:8000` — a server URL (what v1's docs showed): the channel id is the id
//!   the channel is connected under ([`ConnectRemote::connect_remote`]) or given to
//!   [`RemoteChannel::connect_to`].
//!
//! # Identity
//!
//! The server derives the caller from the token: its subject (JWT) or the token itself
//! (open and ACL security, where the token is the system id). Without a token the caller's
//! own id is sent as the token, which is what open and ACL servers expect (v1 sent no
//! header and always got 401, defect D7). A token given as `"Bearer …"` (v1's docs) is
//! accepted too.
//!
//! # Connections and errors
//!
//! Operations go over the stream transport ([`crate::stream`]: one WebSocket per token,
//! the routes as frames, many calls in flight at once) when the server offers it, and as
//! one HTTP request each otherwise ([`RemoteChannel::transport`] chooses). For HTTP, all
//! remote channels share one keep-alive [`reqwest::Client`] (v1 built a client per call)
//! unless given their own. HTTP statuses come back as the [`ErrorKind`] the server's
//! channel failed with (the error body names it), so code handles a remote channel's
//! errors exactly as a local one's; unreachable servers are [`ErrorKind::Remote`], timeouts
//! [`ErrorKind::Timeout`].
//!
//! # Subscriptions
//!
//! [`subscribe`](ChannelEndpoint::subscribe) opens the channel's event stream (SSE) and
//! feeds a [`Subscription`] from a background task. When the connection drops, the task
//! reconnects with `Last-Event-ID` (backing off up to 5 s) and delivery goes on without
//! gaps or duplicates; it gives up (the subscription closes) only when the server refuses
//! the caller or no longer serves the channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sssn::channel::{ChannelStats, ReadOptions, RecvError};
use sssn::security::Principal;
use sssn::store::{Claimed, DeadLetter, Entry, History, Seq, Settle, Settled};
use sssn::{
    ChannelClient, ChannelEndpoint, ChannelInfo, ChannelKind, ChannelMessage, Error, ErrorKind,
    Payload, Subscription,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ChannelOp};
use crate::error::{ErrorBody, kind_for_status, parse_kind};
use crate::server::encode_segment;
use crate::sse::SseParser;
use crate::stream::{
    self, Transport,
    client::{CallError, Links, OpenError},
};
use crate::wire::{self, IdsRequest, PayloadKind};

/// The keep-alive client every [`RemoteChannel`] uses unless given its own.
pub fn shared_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
        .clone()
}

/// A channel served by an sssn HTTP server. Clones share connections and subscriptions.
#[derive(Clone)]
pub struct RemoteChannel {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    channel_id: String,
    /// The server's URL (with any prefix): where `/stream` is.
    server: Url,
    /// Which transport calls take.
    transport: Transport,
    /// Stream connections, one per token (shared by handles made with the setters).
    links: Arc<Links>,
    /// `…/channels/<id>`, without a trailing slash.
    url: Url,
    /// `Bearer <token>`; `None`: the caller's id is the token.
    auth: Option<HeaderValue>,
    timeout: Duration,
    backoff_max: Duration,
    idle_timeout: Duration,
    /// The channel's kind, once an `info` answer told it.
    kind: OnceLock<ChannelKind>,
    subscriptions: Mutex<HashMap<String, Vec<CancellationToken>>>,
}

impl std::fmt::Debug for RemoteChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteChannel")
            .field("channel_id", &self.inner.channel_id)
            .field("url", &self.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, detail)
}

fn percent_decode(segment: &str) -> Result<String, Error> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("bad percent-encoding in '{segment}'")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("'{segment}' is not UTF-8")))
}

/// Splits `url` into (server URL with any prefix, channel id if the URL names one).
fn split_url(url: &str) -> Result<(Url, Option<String>), Error> {
    let mut parsed =
        Url::parse(url.trim()).map_err(|e| invalid(format!("bad URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!("'{url}' is not an http(s) URL")));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    let segments: Vec<String> = parsed
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let n = segments.len();
    let (prefix, id) = if n >= 2 && segments[n - 2] == "channels" {
        (&segments[..n - 2], Some(percent_decode(&segments[n - 1])?))
    } else {
        (&segments[..], None)
    };
    parsed.set_path(&prefix.iter().map(|s| format!("/{s}")).collect::<String>());
    Ok((parsed, id))
}

impl RemoteChannel {
    /// Connects to the channel at its full URL (`http://host:8000/channels/<id>`).
    /// `token`: the bearer token (`None`: the caller's id). No request is made yet.
    pub fn connect(url: &str, token: Option<&str>) -> Result<Self, Error> {
        let (server, id) = split_url(url)?;
        let id = id.ok_or_else(|| {
            invalid(format!(
                "'{url}' does not name a channel: expected http://host:port/channels/<id>"
            ))
        })?;
        Self::build(server, id, token)
    }

    /// Connects to channel `channel_id` on the server at `url` (`http://host:8000`); a
    /// full channel URL is accepted too, and then names the channel itself.
    pub fn connect_to(url: &str, channel_id: &str, token: Option<&str>) -> Result<Self, Error> {
        let (server, id) = split_url(url)?;
        Self::build(server, id.unwrap_or_else(|| channel_id.to_owned()), token)
    }

    fn build(server: Url, channel_id: String, token: Option<&str>) -> Result<Self, Error> {
        sssn::channel::validate_id(&channel_id)?;
        let mut url = server.clone();
        let path = format!(
            "{}/channels/{}",
            url.path().trim_end_matches('/'),
            encode_segment(&channel_id)
        );
        url.set_path(&path);
        let auth = match token.map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim()) {
            None | Some("") => None,
            Some(t) => Some(bearer(t)?),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http: shared_client(),
                channel_id,
                server,
                transport: Transport::Auto,
                links: Arc::new(Links::default()),
                url,
                auth,
                timeout: Duration::from_secs(30),
                backoff_max: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
                kind: OnceLock::new(),
                subscriptions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A handle with changed settings. Clones made earlier keep the old settings (and their
    /// subscriptions); the new handle starts with none.
    fn configure(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            http: shared.http.clone(),
            channel_id: shared.channel_id.clone(),
            server: shared.server.clone(),
            transport: shared.transport,
            links: shared.links.clone(),
            url: shared.url.clone(),
            auth: shared.auth.clone(),
            timeout: shared.timeout,
            backoff_max: shared.backoff_max,
            idle_timeout: shared.idle_timeout,
            kind: shared.kind.clone(),
            subscriptions: Mutex::new(HashMap::new()),
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Uses `client` instead of the shared one (e.g. for TLS settings).
    #[must_use]
    pub fn with_client(self, client: reqwest::Client) -> Self {
        self.configure(|i| i.http = client)
    }

    /// Which transport the channel operations take (default [`Transport::Auto`]: the
    /// stream when the server offers it, plain HTTP otherwise). Subscriptions always use
    /// the event stream (SSE).
    #[must_use]
    pub fn transport(self, transport: Transport) -> Self {
        self.configure(|i| i.transport = transport)
    }

    /// The transport calls take now: [`Transport::Stream`] while a stream connection is
    /// open, [`Transport::Http`] when HTTP was asked for or the server said it has no
    /// stream transport; `None` before the first call has told.
    pub fn transport_in_use(&self) -> Option<Transport> {
        let inner = &self.inner;
        if inner.transport == Transport::Http || inner.links.not_offered().is_some() {
            Some(Transport::Http)
        } else if inner.links.any_open() {
            Some(Transport::Stream)
        } else {
            None
        }
    }

    /// Per-request timeout (default 30 s; the event stream has none).
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.configure(|i| i.timeout = timeout)
    }

    /// An event stream silent for this long is reconnected (default 60 s; the server sends
    /// keep-alives every 15 s by default).
    #[must_use]
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        self.configure(|i| i.idle_timeout = timeout)
    }

    /// Longest pause between reconnection attempts of an event stream (default 5 s).
    #[must_use]
    pub fn max_backoff(self, max: Duration) -> Self {
        self.configure(|i| i.backoff_max = max.max(Duration::from_millis(1)))
    }

    /// The channel id on the server.
    pub fn channel_id(&self) -> &str {
        &self.inner.channel_id
    }

    /// The channel's URL (`…/channels/<id>`).
    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }
}

fn bearer(token: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| invalid("the token contains characters not allowed in a header"))
}

fn ids_body(ids: &[&str], delay: Option<Duration>, reason: Option<&str>) -> Result<Vec<u8>, Error> {
    let body = IdsRequest {
        message_ids: ids.iter().map(|&id| id.to_owned()).collect(),
        delay_ms: delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        reason: reason.map(str::to_owned),
    };
    serde_json::to_vec(&body).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
}

fn transport_error(op: &str, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Remote
    };
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    Error::new(kind, format!("HTTP request '{op}' failed: {text}"))
}

/// The error a non-success response stands for.
async fn error_of(op: &str, response: reqwest::Response) -> Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    error_from(op, status.as_u16(), &text)
}

/// The error a non-success status and its body stand for (HTTP and stream answers alike).
pub(crate) fn error_from(op: &str, status: u16, text: &str) -> Error {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => {
            let kind = body
                .kind
                .as_deref()
                .and_then(parse_kind)
                .unwrap_or_else(|| kind_for_status(status));
            Error::new(kind, body.detail)
        }
        Err(_) => Error::new(
            kind_for_status(status),
            format!("HTTP {} during '{op}': {text}", status.as_u16()),
        ),
    }
}

impl Inner {
    /// The method and URL of a channel operation, from the route table.
    fn route(&self, op: ChannelOp, query: &[(&str, &str)]) -> (Method, Url) {
        let route = op.route();
        (
            route.verb.into(),
            self.url_for(route.channel_suffix(), query),
        )
    }

    fn url_for(&self, suffix: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.url.clone();
        if !suffix.is_empty() {
            let path = format!("{}{suffix}", url.path());
            url.set_path(&path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn auth(&self, caller: &Principal) -> Result<HeaderValue, Error> {
        match &self.auth {
            Some(h) => Ok(h.clone()),
            None => bearer(&caller.id),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        auth: &HeaderValue,
        body: Option<Vec<u8>>,
        op: &str,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, auth.clone())
            .timeout(self.timeout);
        if op == "write" || op == "writeBatch" {
            request = crate::trace_header::outgoing(request);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let response = request.send().await.map_err(|e| transport_error(op, &e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_of(op, response).await)
        }
    }

    /// Calls a channel operation on the stream when the server offers it, over HTTP
    /// otherwise, and decodes its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        op: ChannelOp,
        query: &[(&str, &str)],
        caller: &Principal,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let route = op.route();
        let name = route.operation;
        let auth = self.auth(caller)?;
        let body_len = body.as_ref().map_or(0, Vec::len);
        // A write that continues a trace goes over plain HTTP, where the `traceparent`
        // header travels (stream calls carry no headers).
        let traced = matches!(op, ChannelOp::Write | ChannelOp::WriteBatch)
            && sssn::trace::TraceContext::for_write().is_some();
        let link = if traced {
            None
        } else {
            self.over_stream(&auth, body_len).await?
        };
        let bytes = match link {
            Some(link) => {
                let q = stream::query_string(query);
                let b = body.as_deref().unwrap_or_default();
                let channel = Some(self.channel_id.as_str());
                let mut answer = link.call(name, channel, &q, b, self.timeout).await;
                if matches!(answer, Err(CallError::Gone)) {
                    // The connection had ended before the request left: one new one.
                    answer = match self.over_stream(&auth, body_len).await? {
                        Some(link) => link.call(name, channel, &q, b, self.timeout).await,
                        None => Err(CallError::Gone),
                    };
                }
                match answer {
                    Ok(a) if (200..300).contains(&a.status) => a.body,
                    Ok(a) => {
                        return Err(error_from(
                            name,
                            a.status,
                            &String::from_utf8_lossy(&a.body),
                        ));
                    }
                    Err(CallError::Failed(e)) => return Err(e),
                    Err(CallError::Gone) => self.http_bytes(op, query, &auth, body).await?,
                }
            }
            None => self.http_bytes(op, query, &auth, body).await?,
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Remote,
                format!("unexpected response to '{name}': {e}"),
            )
        })
    }

    /// The stream link to use for a call, or `None` for plain HTTP (the server offers no
    /// stream, HTTP was asked for, the body is large, or opening a stream failed in a way
    /// HTTP may not).
    async fn over_stream(
        &self,
        auth: &HeaderValue,
        body_len: usize,
    ) -> Result<Option<Arc<stream::client::Link>>, Error> {
        if self.transport == Transport::Http || body_len >= stream::LARGE_BODY {
            return Ok(None);
        }
        let forced = self.transport == Transport::Stream;
        match self.links.get(&self.server, auth, self.timeout).await {
            Ok(link) => Ok(Some(link)),
            Err(OpenError::Refused(e)) => Err(e),
            Err(OpenError::NotOffered(why)) if forced => Err(Error::new(
                ErrorKind::UnsupportedOperation,
                format!("the server offers no stream transport ({why})"),
            )),
            Err(OpenError::Failed(e)) if forced => Err(e),
            Err(OpenError::NotOffered(_) | OpenError::Failed(_)) => Ok(None),
        }
    }

    /// One request over plain HTTP; the body of a success.
    async fn http_bytes(
        &self,
        op: ChannelOp,
        query: &[(&str, &str)],
        auth: &HeaderValue,
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, Error> {
        let (method, url) = self.route(op, query);
        let name = op.route().operation;
        let response = self.send(method, url, auth, body, name).await?;
        response
            .bytes()
            .await
            .map_err(|e| transport_error(name, &e))
    }

    /// Calls a settling operation and reads a [`wire::SettledResponse`].
    async fn settle(
        &self,
        op: ChannelOp,
        caller: &Principal,
        body: Option<Vec<u8>>,
    ) -> Result<wire::SettledResponse, Error> {
        self.call(op, &[], caller, body).await
    }

    async fn open_events(
        &self,
        auth: &HeaderValue,
        after: Option<Seq>,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self
            .http
            .get(self.route(ChannelOp::Events, &[]).1)
            .header(AUTHORIZATION, auth.clone())
            .header("accept", "text/event-stream");
        if let Some(seq) = after {
            request = request.header("last-event-id", seq.to_string());
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "opening the event stream timed out"))?
            .map_err(|e| transport_error("events", &e))?;
        if response.status() == StatusCode::OK {
            Ok(response)
        } else {
            Err(error_of("events", response).await)
        }
    }
}

/// A payload as it goes on the wire, by batch kind.
struct WireItem<'a>(&'a Payload, PayloadKind);

impl Serialize for WireItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let inner = |s: S| match self.0 {
            Payload::Data(v) => v.serialize(s),
            Payload::Content(c) => c.serialize(s),
            Payload::Message(m) => m.serialize(s),
        };
        if self.1 != PayloadKind::Mixed {
            return inner(s);
        }
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Payload::Data(v) => map.serialize_entry("data", v)?,
            Payload::Content(c) => map.serialize_entry("content", c)?,
            Payload::Message(m) => map.serialize_entry("message", m)?,
        }
        map.end()
    }
}

fn kind_of(p: &Payload) -> PayloadKind {
    match p {
        Payload::Data(_) => PayloadKind::Data,
        Payload::Content(_) => PayloadKind::Content,
        Payload::Message(_) => PayloadKind::Message,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::new(ErrorKind::InvalidMessage, e.to_string()))
}

/// Hands every payload back on the errors where a local channel does.
fn with_rejected(e: Error, payloads: Vec<Payload>) -> Error {
    if matches!(
        e.kind(),
        ErrorKind::Backpressure | ErrorKind::ShuttingDown | ErrorKind::PermissionDenied
    ) {
        return e.with_rejected_all(payloads);
    }
    e
}

/// A claim as the client API has it.
fn claimed(c: wire::ClaimedMessage) -> Claimed {
    Claimed {
        seq: c.seq,
        message: Arc::new(c.message),
        attempt: c.attempt,
        lease_until_ms: c.lease_until_ms,
    }
}

#[async_trait]
impl ChannelEndpoint for RemoteChannel {
    fn channel_id(&self) -> &str {
        &self.inner.channel_id
    }

    fn kind(&self) -> Option<ChannelKind> {
        self.inner.kind.get().copied()
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn info(&self, caller: &Principal) -> Result<ChannelInfo, Error> {
        let info: ChannelInfo = self.inner.call(ChannelOp::Info, &[], caller, None).await?;
        if let Some(kind) = info.kind {
            let _ = self.inner.kind.set(kind);
        }
        Ok(info)
    }

    async fn write_batch(
        &self,
        caller: &Principal,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>, Error> {
        let Some(first) = payloads.first() else {
            return Ok(Vec::new());
        };
        let kind = if payloads.iter().all(|p| kind_of(p) == kind_of(first)) {
            kind_of(first)
        } else {
            PayloadKind::Mixed
        };
        let outcome = if payloads.len() == 1 {
            // v1's PUT, so a single write works against any v1-shaped server.
            let query: &[(&str, &str)] = match kind {
                PayloadKind::Message => &[("direct", "true")],
                PayloadKind::Content => &[("kind", "content")],
                _ => &[],
            };
            let body = encode(&WireItem(first, kind))?;
            self.inner
                .call::<wire::WriteResponse>(ChannelOp::Write, query, caller, Some(body))
                .await
                .map(|r| vec![r.item_id])
        } else {
            let items: Vec<WireItem<'_>> = payloads.iter().map(|p| WireItem(p, kind)).collect();
            let body = encode(&items)?;
            self.inner
                .call::<wire::BatchResponse>(
                    ChannelOp::WriteBatch,
                    &[("kind", kind.as_str())],
                    caller,
                    Some(body),
                )
                .await
                .map(|r| r.item_ids)
        };
        outcome.map_err(|e| with_rejected(e, payloads))
    }

    async fn read(
        &self,
        caller: &Principal,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>, Error> {
        let limit = options.limit.to_string();
        let mut query = vec![
            ("limit", limit.as_str()),
            (
                "exclusive",
                if options.exclusive { "true" } else { "false" },
            ),
        ];
        if let Some(after) = &options.after {
            query.push(("after", after));
        }
        let r: wire::MessagesResponse = self
            .inner
            .call(ChannelOp::Read, &query, caller, None)
            .await?;
        Ok(r.messages.into_iter().map(Arc::new).collect())
    }

    async fn claim(&self, caller: &Principal, limit: usize) -> Result<Vec<Claimed>, Error> {
        let limit = limit.to_string();
        let r: wire::ClaimResponse = self
            .inner
            .call(ChannelOp::Claim, &[("limit", &limit)], caller, None)
            .await?;
        Ok(r.claims.into_iter().map(claimed).collect())
    }

    async fn settle(
        &self,
        caller: &Principal,
        ids: &[&str],
        how: Settle,
    ) -> Result<Settled, Error> {
        let (op, body) = match &how {
            Settle::Ack => (ChannelOp::Ack, ids_body(ids, None, None)?),
            Settle::Nack { delay } => (ChannelOp::Nack, ids_body(ids, *delay, None)?),
            Settle::Reject { reason } => (ChannelOp::Reject, ids_body(ids, None, Some(reason))?),
            Settle::Extend => (ChannelOp::Extend, ids_body(ids, None, None)?),
        };
        let r = self.inner.settle(op, caller, Some(body)).await?;
        Ok(r.settled(ids))
    }

    async fn history(&self, caller: &Principal, query: &History) -> Result<Vec<Entry>, Error> {
        let (limit, start, end);
        let params: Vec<(&str, &str)> = match query {
            History::Id(id) => vec![(api::HISTORY_MESSAGE_ID.name, id.as_str())],
            History::Between {
                start: s,
                end: e,
                limit: n,
            } => {
                (start, end, limit) = (s.to_string(), e.to_string(), n.to_string());
                vec![
                    (api::HISTORY_START.name, start.as_str()),
                    (api::HISTORY_END.name, end.as_str()),
                    (api::HISTORY_LIMIT.name, limit.as_str()),
                ]
            }
            History::Latest { limit: n } => {
                limit = n.to_string();
                vec![(api::HISTORY_LIMIT.name, limit.as_str())]
            }
        };
        let r: wire::HistoryResponse = self
            .inner
            .call(ChannelOp::History, &params, caller, None)
            .await?;
        Ok(r.entries
            .into_iter()
            .map(|e| Entry {
                seq: e.seq,
                message: Arc::new(e.message),
            })
            .collect())
    }

    async fn settle_and_claim(
        &self,
        caller: &Principal,
        ids: &[&str],
        how: Settle,
        limit: usize,
    ) -> Result<(Settled, Vec<Claimed>), Error> {
        if how != Settle::Ack {
            // Only the ack has a combined route.
            let settled = self.settle(caller, ids, how).await?;
            return Ok((settled, self.claim(caller, limit).await?));
        }
        let limit = limit.to_string();
        let body = ids_body(ids, None, None)?;
        let r: wire::AckAndClaimResponse = self
            .inner
            .call(
                ChannelOp::AckAndClaim,
                &[("limit", &limit)],
                caller,
                Some(body),
            )
            .await?;
        let settled = Settled {
            done: r.done,
            stale: r.stale,
        };
        Ok((settled, r.claims.into_iter().map(claimed).collect()))
    }

    async fn dead_letters(
        &self,
        caller: &Principal,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        let limit = limit.to_string();
        let r: wire::DeadLettersResponse = self
            .inner
            .call(ChannelOp::DeadLetters, &[("limit", &limit)], caller, None)
            .await?;
        Ok(r.dead_letters)
    }

    async fn redrive(&self, caller: &Principal, ids: &[&str]) -> Result<usize, Error> {
        let body = ids_body(ids, None, None)?;
        let r = self
            .inner
            .settle(ChannelOp::Redrive, caller, Some(body))
            .await?;
        Ok(r.count())
    }

    async fn clear(&self, caller: &Principal) -> Result<usize, Error> {
        let r = self.inner.settle(ChannelOp::Clear, caller, None).await?;
        Ok(r.count())
    }

    async fn evict(
        &self,
        caller: &Principal,
        before: Option<f64>,
        max_count: Option<usize>,
    ) -> Result<usize, Error> {
        let body = encode(&wire::EvictRequest { before, max_count })?;
        let r = self
            .inner
            .settle(ChannelOp::Evict, caller, Some(body))
            .await?;
        Ok(r.count())
    }

    async fn remove(&self, caller: &Principal, ids: &[&str]) -> Result<usize, Error> {
        let body = ids_body(ids, None, None)?;
        let r = self
            .inner
            .settle(ChannelOp::Remove, caller, Some(body))
            .await?;
        Ok(r.count())
    }

    async fn subscribe(
        &self,
        caller: &Principal,
        after: Option<Seq>,
    ) -> Result<Subscription, Error> {
        let auth = self.inner.auth(caller)?;
        let response = self.inner.open_events(&auth, after).await?;
        let (tx, rx) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        {
            let mut subs = self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let list = subs.entry(caller.id.clone()).or_default();
            list.retain(|c| !c.is_cancelled());
            list.push(cancel.clone());
        }
        let pump = Pump {
            inner: self.inner.clone(),
            auth,
            last: after,
            tx,
            cancel: cancel.clone(),
        };
        tokio::spawn(pump.run(response));
        Ok(Subscription::from_remote(
            self.inner.channel_id.clone(),
            caller.id.clone(),
            rx,
            cancel,
        ))
    }

    async fn unsubscribe(&self, caller: &Principal) {
        let list = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&caller.id);
        for cancel in list.into_iter().flatten() {
            cancel.cancel();
        }
    }

    async fn stats(&self, caller: &Principal) -> Result<ChannelStats, Error> {
        let value: serde_json::Value = self.inner.call(ChannelOp::Stats, &[], caller, None).await?;
        serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorKind::Remote,
                format!("unexpected response to 'stats': {e}"),
            )
        })
    }
}

/// The background task behind a remote subscription.
struct Pump {
    inner: Arc<Inner>,
    auth: HeaderValue,
    /// The last sequence delivered (or the one delivery starts after).
    last: Option<Seq>,
    tx: mpsc::Sender<Result<Entry, RecvError>>,
    cancel: CancellationToken,
}

/// Why one connection's stream ended.
enum Ended {
    /// The subscriber is gone: stop.
    Stop,
    /// The connection ended or went silent: reconnect.
    Reconnect,
}

impl Pump {
    async fn run(mut self, mut response: reqwest::Response) {
        const FIRST_BACKOFF: Duration = Duration::from_millis(50);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let before = self.last;
            if let Ended::Stop = self.stream(response).await {
                return;
            }
            if self.last != before {
                backoff = FIRST_BACKOFF; // that connection delivered: the next may too
            }
            loop {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(self.inner.backoff_max);
                match self.inner.open_events(&self.auth, self.last).await {
                    Ok(r) => {
                        response = r;
                        break;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Unauthenticated
                                | ErrorKind::PermissionDenied
                                | ErrorKind::NotFound
                                | ErrorKind::InvalidArgument
                                | ErrorKind::UnsupportedOperation
                        ) =>
                    {
                        tracing::warn!(channel = %self.inner.channel_id, error = %e, "event stream refused; subscription closed");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(channel = %self.inner.channel_id, error = %e, "event stream reconnect failed; retrying");
                    }
                }
            }
        }
    }

    async fn stream(&mut self, response: reqwest::Response) -> Ended {
        let mut parser = SseParser::new();
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::select! {
                () = self.cancel.cancelled() => return Ended::Stop,
                () = self.tx.closed() => return Ended::Stop,
                r = tokio::time::timeout(self.inner.idle_timeout, body.next()) => r,
            };
            let bytes = match next {
                Ok(Some(Ok(bytes))) => bytes,
                Ok(Some(Err(e))) => {
                    tracing::debug!(channel = %self.inner.channel_id, error = %e, "event stream broke; reconnecting");
                    return Ended::Reconnect;
                }
                Ok(None) | Err(_) => return Ended::Reconnect,
            };
            for event in parser.push(&bytes) {
                let Some(seq) = event.id.as_deref().and_then(|id| id.parse::<Seq>().ok()) else {
                    continue;
                };
                match event.event.as_deref() {
                    Some("ready") => self.last = Some(seq),
                    Some("gap") => {
                        if self.last.is_some_and(|last| seq <= last) {
                            continue;
                        }
                        self.last = Some(seq);
                        let Ok(gap) = serde_json::from_str::<wire::GapEvent>(&event.data) else {
                            continue;
                        };
                        let lost = RecvError::Gap {
                            from: gap.from,
                            to: gap.to,
                        };
                        let sent = tokio::select! {
                            () = self.cancel.cancelled() => return Ended::Stop,
                            r = self.tx.send(Err(lost)) => r,
                        };
                        if sent.is_err() {
                            return Ended::Stop;
                        }
                    }
                    None | Some("message") => {
                        if self.last.is_some_and(|last| seq <= last) {
                            continue; // already delivered before a reconnect
                        }
                        self.last = Some(seq);
                        let message = match ChannelMessage::from_json(&event.data) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(channel = %self.inner.channel_id, seq, error = %e, "undecodable event skipped");
                                continue;
                            }
                        };
                        let entry = Entry {
                            seq,
                            message: Arc::new(message),
                        };
                        let sent = tokio::select! {
                            () = self.cancel.cancelled() => return Ended::Stop,
                            r = self.tx.send(Ok(entry)) => r,
                        };
                        if sent.is_err() {
                            return Ended::Stop;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

/// Connects remote channels into a [`ChannelClient`], as v1's
/// `client.connect_remote(channel_id, url, token)` did.
pub trait ConnectRemote {
    /// Connects the remote channel at `url` under `id`. `url` is a full channel URL
    /// (`http://host:8000/channels/<channel>`) or a server URL (`http://host:8000`, the
    /// channel id is then `id`). `token`: the bearer token; `None` sends the client's
    /// system id as the token (open and ACL servers).
    fn connect_remote(
        &self,
        id: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<RemoteChannel, Error>;
}

impl ConnectRemote for ChannelClient {
    fn connect_remote(
        &self,
        id: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<RemoteChannel, Error> {
        let remote = RemoteChannel::connect_to(url, id, token)?;
        self.connect_endpoint(id, Arc::new(remote.clone()));
        Ok(remote)
    }
}

/// Free-function form of [`ConnectRemote::connect_remote`].
pub fn connect_remote(
    client: &ChannelClient,
    id: &str,
    url: &str,
    token: Option<&str>,
) -> Result<RemoteChannel, Error> {
    client.connect_remote(id, url, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_channel_urls_and_server_urls() {
        let r = RemoteChannel::connect("http://h:8000/channels/my-channel/", None).unwrap();
        assert_eq!(r.channel_id(), "my-channel");
        assert_eq!(r.url(), "http://h:8000/channels/my-channel");
        let r = RemoteChannel::connect("http://h/api/channels/a%20b", Some("Bearer t")).unwrap();
        assert_eq!(r.channel_id(), "a b");
        assert_eq!(r.url(), "http://h/api/channels/a%20b");
        assert_eq!(r.inner.auth.as_ref().unwrap(), "Bearer t");
        let r = RemoteChannel::connect_to("http://h:8000", "jobs", Some("")).unwrap();
        assert_eq!(r.url(), "http://h:8000/channels/jobs");
        assert!(r.inner.auth.is_none());
        assert!(RemoteChannel::connect("http://h:8000", None).is_err());
        assert!(RemoteChannel::connect("ftp://h/channels/x", None).is_err());
        assert!(RemoteChannel::connect("http://h/channels/%zz", None).is_err());
    }

    #[test]
    fn settings_apply_to_the_new_handle_even_after_cloning() {
        let a = RemoteChannel::connect("http://h/channels/c", None).unwrap();
        let b = a.clone().timeout(Duration::from_secs(1));
        assert_eq!(a.inner.timeout, Duration::from_secs(30));
        assert_eq!(b.inner.timeout, Duration::from_secs(1));
        let c = b.max_backoff(Duration::ZERO);
        assert_eq!(c.inner.backoff_max, Duration::from_millis(1));
        assert_eq!(c.url(), a.url());
    }

    #[test]
    fn wire_items_by_kind() {
        let data = Payload::Data(serde_json::json!([1]));
        assert_eq!(
            serde_json::to_string(&WireItem(&data, PayloadKind::Data)).unwrap(),
            "[1]"
        );
        assert_eq!(
            serde_json::to_string(&WireItem(&data, PayloadKind::Mixed)).unwrap(),
            r#"{"data":[1]}"#
        );
        let bytes = serde_json::to_vec(&vec![WireItem(&data, PayloadKind::Mixed)]).unwrap();
        assert_eq!(
            wire::parse_batch(&bytes, PayloadKind::Mixed).unwrap(),
            vec![data]
        );
    }
}
