//! The server side of the stream transport (`GET /stream`, see [`crate::stream`]).
//!
//! The upgrade authenticates the token first (401 when no served channel's policy
//! accepts it, as `GET /channels` does). The hot channel operations of a frame (reads,
//! writes, claims, settles) are then served by the same functions as their HTTP routes
//! (`routes.rs`, `serve_*`), given the caller authenticated with the upgrade's token, the
//! URI the frame stands for and its body, without building an HTTP request or running
//! the router; every other frame is turned into the HTTP request it stands for and served
//! by the API router itself. Either way every route's checks, limits and error bodies
//! apply unchanged, and a token that expires or is revoked stops working on an open
//! stream as it does on HTTP.
//!
//! Limits of a connection: frames up to the body limit's discard cap (bigger bodies within
//! it get the route's `413`; a frame past it closes the connection with 1009), at most
//! [`MAX_IN_FLIGHT`] requests at once (then no frame is read until answers went out),
//! the listener's idle timeout while nothing is in flight, and the connection counts
//! against the connection cap until it closes. At shutdown the stream stops reading,
//! answers what is in flight, and closes with 1001.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, HeaderValue, Request, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use std::panic::AssertUnwindSafe;

use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use sssn::ErrorKind;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::listener::ConnectionHold;
use super::routes::{self, BodySource, Reply, Settling, TRUNCATED_HEADER, discard_cap};
use super::{AppState, Authed};
use crate::api::{ChannelOp, Route};
use crate::error::ApiError;
use crate::stream::{
    AnswerHead, HEAD_ALLOWANCE, MAX_IN_FLIGHT, RequestHead, join_frame, split_frame, stream_route,
};

/// The `GET /stream` entry of the router; frames are served by `api`.
pub(crate) fn route(state: Arc<AppState>, api: Router) -> MethodRouter {
    get(move |req: Request<Body>| upgrade(state.clone(), api.clone(), req))
}

async fn upgrade(state: Arc<AppState>, api: Router, req: Request<Body>) -> Response {
    let (mut parts, _) = req.into_parts();
    // The token before anything else, as on every route.
    if let Err(e) = state.readable(&parts.headers) {
        return e.into_response();
    }
    let Some(auth) = parts.headers.get(header::AUTHORIZATION).cloned() else {
        return ApiError::missing_token().into_response();
    };
    let token: Arc<str> = match super::bearer(&parts.headers) {
        Ok(t) => t.into(),
        Err(e) => return e.into_response(),
    };
    let hold = parts.extensions.remove::<ConnectionHold>();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::bad_request(format!(
                "{} needs a WebSocket upgrade: {}",
                crate::stream::STREAM_PATH,
                rejection.body_text()
            ))
            .into_response();
        }
    };
    if state.shutdown.is_cancelled() {
        return ApiError::new(ErrorKind::ShuttingDown, "The server is shutting down.")
            .into_response();
    }
    let max_frame = discard_cap(state.max_body_bytes).saturating_add(HEAD_ALLOWANCE);
    let idle = hold.as_ref().and_then(ConnectionHold::idle_timeout);
    let shutdown = state.shutdown.clone();
    ws.read_buffer_size(crate::stream::READ_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| async move {
            Connection {
                socket,
                state,
                api,
                auth,
                token,
                idle,
            }
            .serve(shutdown)
            .await;
            drop(hold); // the connection slot is free once the stream is closed
        })
}

struct Connection {
    socket: WebSocket,
    state: Arc<AppState>,
    api: Router,
    /// The upgrade's `Authorization` header (for frames served by the router) and its
    /// token (for the others): every frame is authenticated with it.
    auth: HeaderValue,
    token: Arc<str>,
    idle: Option<Duration>,
}

impl Connection {
    async fn serve(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let mut in_flight = FuturesUnordered::new();
        let mut idle_since = Instant::now();
        let mut closing = false;
        // One shutdown waiter and one idle timer for the connection, not one per frame:
        // the timer is set for the first idle deadline and, when it fires early (frames
        // came meanwhile), moved to the current one.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let idle_timer = tokio::time::sleep(self.idle.unwrap_or(Duration::MAX));
        tokio::pin!(idle_timer);
        loop {
            if closing && in_flight.is_empty() {
                self.close(close_code::AWAY, "server shutting down").await;
                return;
            }
            let idle = self.idle.filter(|_| in_flight.is_empty());
            tokio::select! {
                biased;
                Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                    // Every answer ready now goes out in one flush.
                    let mut next: Option<Vec<u8>> = Some(answer);
                    while let Some(a) = next {
                        if self.socket.feed(Message::Binary(a.into())).await.is_err() {
                            return;
                        }
                        next = in_flight.next().now_or_never().flatten();
                    }
                    if self.socket.flush().await.is_err() {
                        return;
                    }
                    if in_flight.is_empty() {
                        idle_since = Instant::now();
                    }
                }
                () = &mut cancelled, if !closing => closing = true,
                message = self.socket.next(), if !closing && in_flight.len() < MAX_IN_FLIGHT => {
                    let frame = match message {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Text(t))) => Bytes::from(t.as_str().to_owned()),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => return,
                        Some(Err(e)) => {
                            let (code, why) = if is_too_big(&e) {
                                (close_code::SIZE, "frame larger than the server's limit")
                            } else {
                                (close_code::PROTOCOL, "unreadable frame")
                            };
                            tracing::debug!(error = %e, "stream frame refused; closing");
                            self.close(code, why).await;
                            return;
                        }
                    };
                    in_flight.push(dispatch(self.frame_context(), frame));
                }
                () = &mut idle_timer, if idle.is_some() => {
                    let deadline = idle_since + idle.unwrap_or_default();
                    if Instant::now() < deadline {
                        idle_timer.as_mut().reset(deadline);
                        continue;
                    }
                    tracing::trace!("idle stream; closing");
                    self.close(close_code::NORMAL, "idle").await;
                    return;
                }
            }
        }
    }

    fn frame_context(&self) -> FrameContext {
        FrameContext {
            state: self.state.clone(),
            api: self.api.clone(),
            auth: self.auth.clone(),
            token: self.token.clone(),
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}

fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(ts) = s.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(ts, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    false
}

/// What serving one frame needs of its connection.
struct FrameContext {
    state: Arc<AppState>,
    api: Router,
    auth: HeaderValue,
    token: Arc<str>,
}

/// Serves one request frame; returns the answer frame.
async fn dispatch(cx: FrameContext, frame: Bytes) -> Vec<u8> {
    let (head, body) = split_frame(&frame);
    let head: RequestHead = match serde_json::from_slice(head) {
        Ok(h) => h,
        Err(e) => {
            let id = serde_json::from_slice::<serde_json::Value>(head)
                .ok()
                .and_then(|v| v.get("id")?.as_u64());
            return refusal(
                id,
                &ApiError::bad_request(format!("Bad request frame head: {e}")),
            );
        }
    };
    let (route, uri) = match route_and_uri(&head) {
        Ok(r) => r,
        Err(e) => return refusal(Some(head.id), &e),
    };
    // An empty channel id names no route (`/channels//claim`): the router answers that.
    let direct = route
        .op
        .and_then(Direct::of)
        .zip(head.channel.as_deref().filter(|c| !c.is_empty()));
    if let Some((direct, channel)) = direct {
        // As the router's panic layer does: a panic is a 500, not a lost connection.
        let served = AssertUnwindSafe(direct.serve(&cx, channel, &uri, body))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(ApiError::new(ErrorKind::Internal, "Internal error.")));
        return match served {
            Ok(reply) => join_frame(
                &AnswerHead {
                    id: Some(head.id),
                    status: 200,
                    truncated: reply.truncated,
                },
                &reply.body,
            ),
            Err(e) => refusal(Some(head.id), &e),
        };
    }
    let request = to_request(route, uri, cx.auth, body);
    let response = match cx.api.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let truncated = response
        .headers()
        .get(TRUNCATED_HEADER)
        .is_some_and(|v| v == "true");
    // The routes answer whole bodies (server push is not carried): this does not wait.
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    join_frame(
        &AnswerHead {
            id: Some(head.id),
            status,
            truncated,
        },
        &body,
    )
}

/// The operations a frame serves by calling their route's function itself (the others
/// go through the router).
enum Direct {
    Read,
    Claim,
    Write,
    WriteBatch,
    AckAndClaim,
    Settle(Settling),
}

impl Direct {
    fn of(op: ChannelOp) -> Option<Self> {
        Some(match op {
            ChannelOp::Read => Self::Read,
            ChannelOp::Claim => Self::Claim,
            ChannelOp::Write => Self::Write,
            ChannelOp::WriteBatch => Self::WriteBatch,
            ChannelOp::AckAndClaim => Self::AckAndClaim,
            ChannelOp::Ack => Self::Settle(Settling::Ack),
            ChannelOp::Nack => Self::Settle(Settling::Nack),
            ChannelOp::Extend => Self::Settle(Settling::Extend),
            ChannelOp::Reject => Self::Settle(Settling::Reject),
            ChannelOp::Redrive => Self::Settle(Settling::Redrive),
            ChannelOp::Remove => Self::Settle(Settling::Remove),
            _ => return None,
        })
    }

    /// Serves it as its HTTP handler does: the caller first (404 for the channel, 401 for
    /// the token), then the route's own steps.
    async fn serve(
        self,
        cx: &FrameContext,
        channel: &str,
        uri: &Uri,
        body: Bytes,
    ) -> Result<Reply, ApiError> {
        let state = &*cx.state;
        let authed = Authed::of(state, &cx.token, channel)?;
        // A frame has no headers, so no `traceparent`: its writes start no trace.
        let headers = HeaderMap::new();
        let body = BodySource::Frame(body);
        match self {
            Self::Read => routes::serve_read(state, authed, uri).await,
            Self::Claim => routes::serve_claim(state, authed, uri).await,
            Self::Write => routes::serve_write(state, authed, uri, &headers, body).await,
            Self::WriteBatch => routes::serve_write_batch(state, authed, uri, &headers, body).await,
            Self::AckAndClaim => routes::serve_ack_and_claim(state, authed, uri, body).await,
            Self::Settle(what) => routes::serve_settle(state, authed, body, what).await,
        }
    }
}

/// The route a frame names and the URI it stands for (`400` for an operation the stream
/// does not carry, a channel route without a channel, a query that is not a URI's).
fn route_and_uri(head: &RequestHead) -> Result<(&'static Route, Uri), ApiError> {
    let Some(route) = stream_route(&head.op) else {
        let detail = if crate::api::ROUTES.iter().any(|r| r.operation == head.op) {
            format!(
                "'{}' is not carried on the stream (server push has its own route); use HTTP",
                head.op
            )
        } else {
            format!("Unknown operation '{}'", head.op)
        };
        return Err(ApiError::bad_request(detail));
    };
    let mut uri = if route.is_channel_route() {
        let Some(channel) = head.channel.as_deref() else {
            return Err(ApiError::bad_request(format!(
                "'{}' needs a channel",
                head.op
            )));
        };
        route
            .path
            .replacen("{id}", &super::encode_segment(channel), 1)
    } else {
        route.path.to_owned()
    };
    if let Some(q) = head.query.as_deref().filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(q);
    }
    let uri: Uri = uri
        .parse()
        .map_err(|e| ApiError::bad_request(format!("Bad query in request frame: {e}")))?;
    Ok((route, uri))
}

/// The HTTP request a frame stands for, for the router.
fn to_request(route: &Route, uri: Uri, auth: HeaderValue, body: Bytes) -> Request<Body> {
    let length = body.len();
    let empty = body.is_empty();
    let mut request = Request::new(Body::from(body));
    *request.method_mut() = route.verb.into();
    *request.uri_mut() = uri;
    let h = request.headers_mut();
    h.insert(header::AUTHORIZATION, auth);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if !empty {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    request
}

fn refusal(id: Option<u64>, e: &ApiError) -> Vec<u8> {
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    join_frame(
        &AnswerHead {
            id,
            status: e.status().as_u16(),
            truncated: false,
        },
        &body,
    )
}
