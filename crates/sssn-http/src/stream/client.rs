//! The client side of the stream transport: one WebSocket per token, many requests in
//! flight on it, matched to their answers by id.
//!
//! A [`Link`] is one open connection, driven by its callers' own tasks (no task of its
//! own, so a call costs no hand-over between tasks): a caller queues its frame and writes
//! every frame queued so far in one flush (concurrent callers share system calls); then
//! the first caller waiting reads the connection for everyone, handing each answer to the
//! caller waiting for its id, until its own comes, and the next waiting caller takes
//! over. When the connection ends, every caller still waiting gets an error at once (the
//! outcome of its operation is unknown, as when an HTTP connection drops mid-request); a
//! request that never left is retried on a new connection by [`Links`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;
use sssn::{Error, ErrorKind};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

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
type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// The error of a caller whose request left but whose answer did not come.
fn ended(why: &str) -> Error {
    Error::new(
        ErrorKind::Remote,
        format!("the stream connection ended before the answer ({why}); the outcome is unknown"),
    )
}

/// What the callers of one connection share.
struct Shared {
    /// Callers waiting, by request id; `None` once the connection has ended.
    pending: Mutex<Option<HashMap<u64, Waiter>>>,
    closed: AtomicBool,
    /// Frames not written yet, with their request ids: whoever holds `sink` writes them all.
    outbox: Mutex<Vec<(u64, Message)>>,
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    /// Held by the caller reading for everyone.
    stream: tokio::sync::Mutex<SplitStream<Socket>>,
}

/// What one incoming message meant.
enum Incoming {
    /// The answer to the caller reading.
    Mine(Answer),
    /// Someone else's answer (handed over), or nothing to act on.
    Other,
    /// The connection ended, for this reason.
    End(String),
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Waiter>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Message)>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends the connection for every caller still waiting.
    fn fail_all(&self, why: &str) {
        self.closed.store(true, Ordering::Release);
        let waiting = self.lock().take();
        for (_, waiter) in waiting.into_iter().flatten() {
            let _ = waiter.send(Err(ended(why)));
        }
        // Best effort: answer the server's close (or start ours) without waiting.
        if let Ok(mut sink) = self.sink.try_lock() {
            let _ = sink.close().now_or_never();
        }
    }

    /// Acts on one message read from the connection; `mine` is the reader's request id.
    fn incoming(
        &self,
        message: Option<Result<Message, tungstenite::Error>>,
        mine: u64,
    ) -> Incoming {
        let frame = match message {
            Some(Ok(Message::Binary(frame))) => frame,
            Some(Ok(Message::Text(text))) => Bytes::from(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                return Incoming::End(match frame {
                    Some(f) => format!(
                        "the server closed it: {} {}",
                        u16::from(f.code),
                        f.reason.as_str()
                    ),
                    None => "the server closed it".to_owned(),
                });
            }
            Some(Ok(_)) => return Incoming::Other,
            Some(Err(e)) => return Incoming::End(e.to_string()),
            None => return Incoming::End("the connection closed".to_owned()),
        };
        let (head, body) = split_frame(&frame);
        let head: AnswerHead = match serde_json::from_slice(head) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable answer frame skipped");
                return Incoming::Other;
            }
        };
        let Some(id) = head.id else {
            // The server could not read one of our frames: a client bug, logged.
            tracing::warn!(status = head.status, body = %String::from_utf8_lossy(&body), "the server refused a request frame");
            return Incoming::Other;
        };
        let answer = Answer {
            status: head.status,
            body,
        };
        let waiter = self.lock().as_mut().and_then(|p| p.remove(&id));
        if id == mine {
            return Incoming::Mine(answer);
        }
        if let Some(waiter) = waiter {
            let _ = waiter.send(Ok(answer));
        }
        Incoming::Other
    }

    /// Reads what has arrived while nobody was reading (answers to callers that gave up,
    /// the server closing an idle stream), without waiting.
    fn look(&self) {
        let Ok(mut stream) = self.stream.try_lock() else {
            return; // a caller is reading
        };
        while !self.is_closed() {
            let Some(message) = stream.next().now_or_never() else {
                return;
            };
            if let Incoming::End(why) = self.incoming(message, 0) {
                tracing::debug!(reason = %why, "stream connection ended");
                self.fail_all(&why);
            }
        }
    }

    /// Writes every queued frame in one flush. `Ok(false)`: the connection had ended
    /// before `id`'s frame was taken (it was not sent).
    async fn write(&self, id: u64) -> Result<bool, Error> {
        let mut sink = self.sink.lock().await;
        if self.is_closed() {
            // Still queued: never sent. Otherwise a writer before took it.
            if self.outbox().iter().any(|(i, _)| *i == id) {
                return Ok(false);
            }
            return Err(ended("the connection closed"));
        }
        let batch = std::mem::take(&mut *self.outbox());
        // Frames taken but not fed go back if this caller is cancelled meanwhile.
        let mut unsent = Unsent {
            shared: self,
            frames: batch.into_iter(),
        };
        let mut failed = None;
        for (_, message) in unsent.frames.by_ref() {
            if let Err(e) = sink.feed(message).await {
                failed = Some(e);
                break;
            }
        }
        // Always flush: a flush cut short by a cancelled caller is finished here.
        if failed.is_none()
            && let Err(e) = sink.flush().await
        {
            failed = Some(e);
        }
        drop(unsent);
        drop(sink);
        match failed {
            None => Ok(true),
            Some(e) => {
                let why = format!("the connection could not be written: {e}");
                self.fail_all(&why);
                Err(ended(&why))
            }
        }
    }
}

/// Frames taken from the outbox and not written yet: put back on drop.
struct Unsent<'a> {
    shared: &'a Shared,
    frames: std::vec::IntoIter<(u64, Message)>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        let rest: Vec<_> = self.frames.by_ref().collect();
        if !rest.is_empty() && !self.shared.is_closed() {
            let mut outbox = self.shared.outbox();
            outbox.splice(0..0, rest);
        }
    }
}

/// One open stream connection.
pub(crate) struct Link {
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.fail_all("closed by the client");
    }
}

/// Removes a caller's entries when it stops waiting (answered, timed out or dropped).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.shared.lock().as_mut() {
            p.remove(&self.id);
        }
        // A frame still queued is not sent for a caller that stopped waiting.
        self.shared.outbox().retain(|(i, _)| *i != self.id);
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
        self.shared.look();
        !self.shared.is_closed()
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
        self.shared
            .outbox()
            .push((id, Message::Binary(frame.into())));
        match tokio::time::timeout(timeout, self.exchange(id, rx)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Failed(Error::new(
                ErrorKind::Timeout,
                format!("no answer to '{op}' within {timeout:?} on the stream"),
            ))),
        }
    }

    /// Writes the caller's frame (with any others queued) and waits for its answer,
    /// reading the connection while no other caller does. Reading starts while the write
    /// is still waiting: a connection whose send side is full because the server is busy
    /// sending answers nobody reads would otherwise never move again.
    async fn exchange(
        &self,
        id: u64,
        rx: oneshot::Receiver<Result<Answer, Error>>,
    ) -> Result<Answer, CallError> {
        let shared = &*self.shared;
        let write = shared.write(id);
        let read = self.answer(id, rx);
        tokio::pin!(write, read);
        let mut written = false;
        loop {
            tokio::select! {
                biased;
                w = &mut write, if !written => match w {
                    Ok(true) => written = true,
                    Ok(false) => return Err(CallError::Gone),
                    Err(e) => return Err(CallError::Failed(e)),
                },
                r = &mut read => {
                    // Ended before this caller's frame left: it was never sent.
                    if r.is_err() && !written && shared.outbox().iter().any(|(i, _)| *i == id) {
                        return Err(CallError::Gone);
                    }
                    return r;
                }
            }
        }
    }

    /// Waits for the answer to `id`: handed over by the caller reading, or read by this
    /// caller once it holds the connection's read side.
    async fn answer(
        &self,
        id: u64,
        mut rx: oneshot::Receiver<Result<Answer, Error>>,
    ) -> Result<Answer, CallError> {
        let shared = &*self.shared;
        let handed = |r: Result<Result<Answer, Error>, oneshot::error::RecvError>| {
            r.unwrap_or_else(|_| Err(ended("the answer was lost")))
                .map_err(CallError::Failed)
        };
        tokio::select! {
            biased;
            r = &mut rx => handed(r),
            mut stream = shared.stream.lock() => {
                // The reader before may have handed this caller its answer already.
                if let Ok(r) = rx.try_recv() {
                    return r.map_err(CallError::Failed);
                }
                loop {
                    if shared.is_closed() {
                        return Err(CallError::Failed(ended("the connection closed")));
                    }
                    match shared.incoming(stream.next().await, id) {
                        Incoming::Mine(answer) => return Ok(answer),
                        Incoming::Other => {}
                        Incoming::End(why) => {
                            tracing::debug!(reason = %why, "stream connection ended");
                            shared.fail_all(&why);
                            return Err(CallError::Failed(ended(&why)));
                        }
                    }
                }
            }
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
        .read_buffer_size(super::READ_BUFFER)
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
    Ok(Link {
        shared: Arc::new(Shared {
            pending: Mutex::new(Some(HashMap::new())),
            closed: AtomicBool::new(false),
            outbox: Mutex::new(Vec::new()),
            sink: tokio::sync::Mutex::new(sink),
            stream: tokio::sync::Mutex::new(stream),
        }),
        next_id: AtomicU64::new(1),
    })
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
