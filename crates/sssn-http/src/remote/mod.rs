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

mod endpoint;
mod request;
mod subscription;

pub(crate) use self::request::error_from;
use self::request::*;
use self::subscription::Pump;

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
