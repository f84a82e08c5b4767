//! The client side of the stream transport: one WebSocket per token, many requests in
//! flight on it, matched to their answers by id.
//!
//! A [`Link`] is one open connection: a writer task sends every frame queued since its
//! last write in one flush (so concurrent callers share system calls), a reader task hands
//! each answer to the caller waiting for its id. When the connection ends, every caller
//! still waiting gets an error at once (the outcome of its operation is unknown, as when
//! an HTTP connection drops mid-request); a request that never left is retried on a new
//! connection by [`Links`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;
use sssn::{Error, ErrorKind};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::{AnswerHead, STREAM_PATH, join_frame, split_frame};

/// How long opening the TCP connection may take (as the shared HTTP client's).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer: the route's status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// Why a call on a link did not get an answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The connection had already ended: the request was not sent (safe to send again).
    Gone,
    /// Sent, but no answer came (connection lost, or the timeout ran out).
    Failed(Error),
}

type Waiter = oneshot::Sender<Result<Answer, Error>>;

/// What the reader task and the callers share.
struct Shared {
    /// Callers waiting, by request id; `None` once the connection has ended.
    pending: Mutex<Option<HashMap<u64, Waiter>>>,
    closed: CancellationToken,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Waiter>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the connection for every caller still waiting.
    fn fail_all(&self, why: &str) {
        self.closed.cancel();
        let waiting = self.lock().take();
        for (_, waiter) in waiting.into_iter().flatten() {
            let _ = waiter.send(Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "the stream connection ended before the answer ({why}); the outcome is unknown"
                ),
            )));
        }
    }

    fn answer(&self, frame: &Bytes) {
        let (head, body) = split_frame(frame);
        let head: AnswerHead = match serde_json::from_slice(head) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable answer frame skipped");
                return;
            }
        };
        let Some(id) = head.id else {
            // The server could not read one of our frames: a client bug, logged.
            tracing::warn!(status = head.status, body = %String::from_utf8_lossy(&body), "the server refused a request frame");
            return;
        };
        let waiter = self.lock().as_mut().and_then(|p| p.remove(&id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(Answer {
                status: head.status,
                body,
            }));
        }
    }
}

/// One open stream connection.
pub(crate) struct Link {
    out: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl Drop for Link {
    fn drop(&mut self) {
        // The writer task closes the connection when `out` goes; tell the reader too.
        self.shared.closed.cancel();
    }
}

/// Removes a caller's entry when it stops waiting (answered, timed out or dropped).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.shared.lock().as_mut() {
            p.remove(&self.id);
        }
    }
}

#[derive(Serialize)]
struct Head<'a> {
    id: u64,
    op: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    query: &'a str,
}

impl Link {
    fn is_open(&self) -> bool {
        !self.shared.closed.is_cancelled()
    }

    /// Sends one request and waits (at most `timeout`) for its answer.
    pub(crate) async fn call(
        &self,
        op: &str,
        channel: Option<&str>,
        query: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self.shared.lock().as_mut() {
            Some(p) => p.insert(id, tx),
            None => return Err(CallError::Gone),
        };
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let frame = join_frame(
            &Head {
                id,
                op,
                channel,
                query,
            },
            body,
        );
        if self.out.send(Message::Binary(frame.into())).is_err() {
            return Err(CallError::Gone);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer.map_err(CallError::Failed),
            Ok(Err(_)) => Err(CallError::Failed(Error::new(
                ErrorKind::Remote,
                format!(
                    "the stream connection ended before the answer to '{op}'; the outcome is unknown"
                ),
            ))),
            Err(_) => Err(CallError::Failed(Error::new(
                ErrorKind::Timeout,
                format!("no answer to '{op}' within {timeout:?} on the stream"),
            ))),
        }
    }
}

/// Why a stream could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The server has no stream transport (it answered the upgrade with 404, 405, …).
    NotOffered(String),
    /// The server refused the caller (401, 403): the error the routes would give.
    Refused(Error),
    /// Anything else (connection refused, timeout, a 5xx): plain HTTP may still work.
    Failed(Error),
}

/// The URL of the upgrade: the server's (with its prefix), `ws://…/stream`.
fn stream_url(server: &Url) -> Result<Url, OpenError> {
    let mut url = server.clone();
    if url.scheme() != "http" {
        return Err(OpenError::NotOffered(format!(
            "no stream transport over {} in this build",
            url.scheme()
        )));
    }
    let path = format!("{}{STREAM_PATH}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_scheme("ws")
        .map_err(|()| OpenError::NotOffered("not a ws URL".into()))?;
    Ok(url)
}

/// Opens a stream to `server` with `auth`, within `timeout` for the upgrade.
pub(crate) async fn open(
    server: &Url,
    auth: &HeaderValue,
    timeout: Duration,
) -> Result<Link, OpenError> {
    let url = stream_url(server)?;
    let failed = |what: String| OpenError::Failed(Error::new(ErrorKind::Remote, what));
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| failed(format!("connecting to {host}:{port} timed out")))?
        .map_err(|e| failed(format!("connecting to {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("stream request: {e}")))?;
    request.headers_mut().insert(AUTHORIZATION, auth.clone());
    // The server bounds what it sends (its response byte budget); the client takes it.
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let handshake = tokio_tungstenite::client_async_with_config(request, tcp, Some(config));
    let (ws, _) = match tokio::time::timeout(timeout, handshake).await {
        Err(_) => return Err(failed(format!("the stream upgrade took over {timeout:?}"))),
        Ok(Ok(done)) => done,
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            let text = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let error = crate::remote::error_from("stream", status.as_u16(), &text);
            return Err(match status.as_u16() {
                401 | 403 => OpenError::Refused(error),
                400 | 404 | 405 | 426 | 501 => {
                    OpenError::NotOffered(format!("the upgrade was answered {status}"))
                }
                _ => OpenError::Failed(error),
            });
        }
        Ok(Err(e)) => return Err(failed(format!("stream upgrade: {e}"))),
    };
    let (sink, stream) = ws.split();
    let (out, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        pending: Mutex::new(Some(HashMap::new())),
        closed: CancellationToken::new(),
    });
    tokio::spawn(write(sink, rx, shared.clone()));
    tokio::spawn(read(stream, shared.clone()));
    Ok(Link {
        out,
        shared,
        next_id: AtomicU64::new(1),
    })
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn write(
    mut sink: futures::stream::SplitSink<Socket, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
) {
    'connection: loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            () = shared.closed.cancelled() => None,
        };
        let Some(first) = first else { break };
        if sink.feed(first).await.is_err() {
            break;
        }
        // Everything queued meanwhile goes in the same flush.
        while let Ok(more) = rx.try_recv() {
            if sink.feed(more).await.is_err() {
                break 'connection;
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    shared.fail_all("the connection could not be written");
    let _ = sink.close().await;
}

async fn read(mut stream: futures::stream::SplitStream<Socket>, shared: Arc<Shared>) {
    let why = loop {
        let message = tokio::select! {
            m = stream.next() => m,
            () = shared.closed.cancelled() => break "closed by the client".to_owned(),
        };
        match message {
            Some(Ok(Message::Binary(frame))) => shared.answer(&frame),
            Some(Ok(Message::Text(text))) => shared.answer(&Bytes::from(text.as_str().to_owned())),
            Some(Ok(Message::Close(frame))) => {
                break match frame {
                    Some(f) => format!(
                        "the server closed it: {} {}",
                        u16::from(f.code),
                        f.reason.as_str()
                    ),
                    None => "the server closed it".to_owned(),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break e.to_string(),
            None => break "the connection closed".to_owned(),
        }
    };
    tracing::debug!(reason = %why, "stream connection ended");
    shared.fail_all(&why);
}

/// A remote channel's stream connections, one per token, opened on first use and again
/// after one ends.
#[derive(Default)]
pub(crate) struct Links {
    /// `Some(reason)` once the server said it has no stream transport.
    not_offered: Mutex<Option<String>>,
    open: Mutex<HashMap<HeaderValue, Arc<Link>>>,
    /// One upgrade at a time, so concurrent first calls share one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl Links {
    /// Why the server has no stream transport, once it said so.
    pub(crate) fn not_offered(&self) -> Option<String> {
        self.not_offered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether some stream connection is open.
    pub(crate) fn any_open(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values().any(|l| l.is_open())
    }

    fn cached(&self, auth: &HeaderValue) -> Option<Arc<Link>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(auth).filter(|l| l.is_open()).cloned()
    }

    /// The open link for `auth`, opening one if needed.
    pub(crate) async fn get(
        &self,
        server: &Url,
        auth: &HeaderValue,
        timeout: Duration,
    ) -> Result<Arc<Link>, OpenError> {
        if let Some(link) = self.cached(auth) {
            return Ok(link);
        }
        let _one = self.connecting.lock().await;
        if let Some(link) = self.cached(auth) {
            return Ok(link);
        }
        if let Some(why) = self.not_offered() {
            return Err(OpenError::NotOffered(why));
        }
        match open(server, auth, timeout).await {
            Ok(link) => {
                let link = Arc::new(link);
                let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                open.retain(|_, l| l.is_open());
                open.insert(auth.clone(), link.clone());
                Ok(link)
            }
            Err(OpenError::NotOffered(why)) => {
                tracing::debug!(%server, reason = %why, "no stream transport; using HTTP");
                *self.not_offered.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                Err(OpenError::NotOffered(why))
            }
            Err(e) => Err(e),
        }
    }
}
