//! The server side of the stream transport (`GET /stream`, see [`crate::stream`]).
//!
//! The upgrade authenticates the token first (401 when no served channel's policy
//! accepts it, as `GET /channels` does). Each frame is then turned into the HTTP request
//! it stands for, with the upgrade's `Authorization` header, and served by the API router
//! itself: every route's checks, limits and error bodies apply unchanged, and a token
//! that expires or is revoked stops working on an open stream as it does on HTTP.
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
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use sssn::ErrorKind;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::AppState;
use super::listener::ConnectionHold;
use super::routes::{TRUNCATED_HEADER, discard_cap};
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
    ws.max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| async move {
            Connection {
                socket,
                api,
                auth,
                idle,
            }
            .serve(shutdown)
            .await;
            drop(hold); // the connection slot is free once the stream is closed
        })
}

struct Connection {
    socket: WebSocket,
    api: Router,
    auth: HeaderValue,
    idle: Option<Duration>,
}

impl Connection {
    async fn serve(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let mut in_flight = FuturesUnordered::new();
        let mut idle_since = Instant::now();
        let mut closing = false;
        loop {
            if closing && in_flight.is_empty() {
                self.close(close_code::AWAY, "server shutting down").await;
                return;
            }
            let idle_deadline = self
                .idle
                .filter(|_| in_flight.is_empty())
                .map(|d| idle_since + d);
            let idle_sleep = async {
                match idle_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                    // Every answer ready now goes out in one flush.
                    let mut answers: Vec<Vec<u8>> = vec![answer];
                    while let Some(Some(more)) = in_flight.next().now_or_never() {
                        answers.push(more);
                    }
                    for a in answers {
                        if self.socket.feed(Message::Binary(a.into())).await.is_err() {
                            return;
                        }
                    }
                    if self.socket.flush().await.is_err() {
                        return;
                    }
                    if in_flight.is_empty() {
                        idle_since = Instant::now();
                    }
                }
                () = shutdown.cancelled(), if !closing => closing = true,
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
                    in_flight.push(dispatch(self.api.clone(), self.auth.clone(), frame));
                }
                () = idle_sleep => {
                    tracing::trace!("idle stream; closing");
                    self.close(close_code::NORMAL, "idle").await;
                    return;
                }
            }
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

/// Serves one request frame through the router; returns the answer frame.
async fn dispatch(api: Router, auth: HeaderValue, frame: Bytes) -> Vec<u8> {
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
    let request = match to_request(&head, auth, body) {
        Ok(r) => r,
        Err(e) => return refusal(Some(head.id), &e),
    };
    let response = match api.oneshot(request).await {
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

/// The HTTP request a frame stands for.
fn to_request(
    head: &RequestHead,
    auth: HeaderValue,
    body: Bytes,
) -> Result<Request<Body>, ApiError> {
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
    let uri: axum::http::Uri = uri
        .parse()
        .map_err(|e| ApiError::bad_request(format!("Bad query in request frame: {e}")))?;
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
    Ok(request)
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
