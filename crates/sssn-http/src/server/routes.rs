//! Request handlers. Each channel handler takes [`Authed`] first, so the caller is
//! authenticated before its query or body is looked at; then it parses (through the
//! parameter constants of [`crate::api`]), calls the channel, and answers JSON.
//!
//! The hot channel operations (reads, writes, claims, settles) are written once as
//! `serve_*` functions of the authenticated caller, the request's URI and its body
//! ([`BodySource`]); the HTTP handler and the stream transport (`stream.rs`, which serves
//! a frame without building an HTTP request) both call them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Serialize;
use sssn::channel::ReadOptions;
use sssn::store::{History, Settle, Settled};
use sssn::{ChannelEndpoint, ErrorKind};

use super::paging::{self, ArrayReply, Budget};
use super::{AppState, Authed};
use crate::api::{self, QueryMap};
use crate::error::ApiError;
use crate::wire::{self, PayloadKind};

type S = State<Arc<AppState>>;

/// A JSON `200 OK`.
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => ApiError::new(ErrorKind::Internal, format!("encoding the response: {e}"))
            .into_response(),
    }
}

/// The query parameters, decoded. Called after authentication.
pub(crate) fn query(uri: &Uri) -> Result<QueryMap, ApiError> {
    Query::<QueryMap>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("Invalid query string: {}", e.body_text())))
}

/// A reply built under the byte budget, with `X-Sssn-Truncated: true` when it was cut short.
fn bounded((body, truncated): (Vec<u8>, bool)) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if truncated {
        h.insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    r
}

/// A channel operation's success: a JSON body, and whether the byte budget cut it short
/// (answered `200 OK`, with `X-Sssn-Truncated: true` then).
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
    pub(crate) truncated: bool,
}

impl Reply {
    /// A whole JSON reply.
    fn json<T: Serialize>(value: &T) -> Result<Self, ApiError> {
        serde_json::to_vec(value)
            .map(|body| Self {
                body,
                truncated: false,
            })
            .map_err(|e| ApiError::new(ErrorKind::Internal, format!("encoding the response: {e}")))
    }

    fn bounded((body, truncated): (Vec<u8>, bool)) -> Self {
        Self { body, truncated }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        bounded((self.body, self.truncated))
    }
}

/// Where a request's body comes from.
pub(crate) enum BodySource<'a> {
    /// An HTTP request's, read under the body limit.
    Http(&'a HeaderMap, Body),
    /// A stream frame's, already in memory (the frame limit bounds it).
    Frame(Bytes),
}

impl BodySource<'_> {
    /// The body, or `413` past the server's limit (the same error on both transports).
    async fn bytes(self, state: &AppState) -> Result<Bytes, ApiError> {
        match self {
            Self::Http(headers, body) => body_bytes(state, headers, body).await,
            Self::Frame(b) if b.len() > state.max_body_bytes => {
                Err(ApiError::payload_too_large(state.max_body_bytes))
            }
            Self::Frame(b) => Ok(b),
        }
    }
}

/// The header a reply cut short by the byte budget carries (`true`).
pub const TRUNCATED_HEADER: &str = "x-sssn-truncated";

/// The most body bytes read (and thrown away) to answer `413` rather than reset the
/// connection; also the largest frame the stream transport accepts.
pub(crate) fn discard_cap(limit: usize) -> usize {
    limit.saturating_mul(4).max(16 << 20)
}

/// Reads the body up to the server's limit. A body over the limit is read on (and thrown
/// away) up to a bounded amount so the client gets its 413 instead of a reset connection.
async fn body_bytes(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.max_body_bytes;
    let discard_cap = discard_cap(limit);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > discard_cap) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            if total > discard_cap {
                return Err(ApiError::payload_too_large(limit));
            }
            continue;
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    if total > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    })
}

pub(crate) async fn health(State(state): S) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError::new(ErrorKind::ShuttingDown, "The server is shutting down.")
            .into_response();
    }
    // A served channel that is not running (its store was not reachable when the server
    // started, and its owner is still retrying) makes the server degraded: 503, so a
    // readiness probe keeps traffic away until every channel is up.
    let waiting: Vec<&str> = state
        .channels
        .values()
        .filter(|c| c.state() != sssn::channel::ChannelState::Running)
        .map(|c| c.id())
        .collect();
    if waiting.is_empty() {
        return json(&serde_json::json!({"status": "ok", "channels": state.channels.len()}));
    }
    let mut r = json(&serde_json::json!({
        "status": "degraded",
        "channels": state.channels.len(),
        "not_running": waiting,
    }));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r
}

pub(crate) async fn openapi(State(state): S) -> Response {
    json(&state.openapi)
}

pub(crate) async fn metrics(State(state): S, headers: HeaderMap) -> Result<Response, ApiError> {
    let channels: Vec<_> = if state.public_metrics {
        state.channels.values().collect()
    } else {
        state.readable(&headers)?
    };
    let text = super::metrics::render(&channels, &state).await;
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

pub(crate) async fn list_channels(
    State(state): S,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let channels = state
        .readable(&headers)?
        .into_iter()
        .map(sssn::Channel::info)
        .collect();
    Ok(json(&wire::ChannelsResponse { channels }))
}

impl AppState {
    pub(crate) fn budget(&self) -> Budget {
        Budget {
            bytes: self.max_response_bytes,
            expected_item: self.max_body_bytes,
        }
    }
}

pub(crate) async fn read(authed: Authed, State(state): S, uri: Uri) -> Result<Reply, ApiError> {
    serve_read(&state, authed, &uri).await
}

pub(crate) async fn serve_read(
    state: &AppState,
    Authed { channel, caller }: Authed,
    uri: &Uri,
) -> Result<Reply, ApiError> {
    let q = query(uri)?;
    let limit = api::READ_LIMIT.get(&q, state.max_limit)?;
    let exclusive = api::READ_EXCLUSIVE.get(&q)?;
    let mut after = api::READ_AFTER.get(&q);
    let mut reply = ArrayReply::new("messages");
    if exclusive {
        // v1's exclusive read: claims, answered as plain messages.
        paging::advancing(
            &mut reply,
            state.budget(),
            limit,
            |n| channel.claim(&caller, n),
            |r, c| r.push(&*c.message),
        )
        .await?;
    } else {
        // `after` moves the cursor, so only the first page names it.
        paging::advancing(
            &mut reply,
            state.budget(),
            limit,
            |n| {
                let options = ReadOptions {
                    limit: n,
                    exclusive: false,
                    after: after.take(),
                };
                channel.read_with(&caller, options)
            },
            |r, m| r.push(&**m),
        )
        .await?;
    }
    Ok(Reply::bounded(reply.finish()))
}

fn payload_kind(q: &QueryMap, kinds: &api::ChoiceParam) -> Result<PayloadKind, ApiError> {
    Ok(PayloadKind::from_query(
        kinds.get(q)?,
        api::DIRECT.get(q)?.then_some("true"),
    )?)
}

pub(crate) async fn write(
    authed: Authed,
    State(state): S,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    serve_write(
        &state,
        authed,
        &uri,
        &headers,
        BodySource::Http(&headers, body),
    )
    .await
}

/// `headers`: where a `traceparent` may be (none on the stream).
pub(crate) async fn serve_write(
    state: &AppState,
    Authed { channel, caller }: Authed,
    uri: &Uri,
    headers: &HeaderMap,
    body: BodySource<'_>,
) -> Result<Reply, ApiError> {
    let kind = payload_kind(&query(uri)?, &api::WRITE_KIND)?;
    let body = body.bytes(state).await?;
    let payload = wire::parse_write(&body, kind)?;
    let write = channel.write_payload(&caller, payload);
    let item_id = crate::trace_header::within(headers, write).await?;
    Reply::json(&wire::WriteResponse {
        status: "accepted".into(),
        item_id,
    })
}

pub(crate) async fn write_batch(
    authed: Authed,
    State(state): S,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    serve_write_batch(
        &state,
        authed,
        &uri,
        &headers,
        BodySource::Http(&headers, body),
    )
    .await
}

pub(crate) async fn serve_write_batch(
    state: &AppState,
    Authed { channel, caller }: Authed,
    uri: &Uri,
    headers: &HeaderMap,
    body: BodySource<'_>,
) -> Result<Reply, ApiError> {
    let kind = payload_kind(&query(uri)?, &api::BATCH_KIND)?;
    let body = body.bytes(state).await?;
    let payloads = wire::parse_batch(&body, kind)?;
    let write = channel.write_batch(&caller, payloads);
    let item_ids = crate::trace_header::within(headers, write).await?;
    Reply::json(&wire::BatchResponse {
        status: "accepted".into(),
        item_ids,
    })
}

pub(crate) async fn claim(authed: Authed, State(state): S, uri: Uri) -> Result<Reply, ApiError> {
    serve_claim(&state, authed, &uri).await
}

pub(crate) async fn serve_claim(
    state: &AppState,
    Authed { channel, caller }: Authed,
    uri: &Uri,
) -> Result<Reply, ApiError> {
    let q = query(uri)?;
    let limit = api::CLAIM_LIMIT.get(&q, state.max_limit)?;
    let mut reply = ArrayReply::new("claims");
    paging::advancing(
        &mut reply,
        state.budget(),
        limit,
        |n| ChannelEndpoint::claim(&channel, &caller, n),
        |r, c| {
            r.push(&wire::ClaimedMessage {
                seq: c.seq,
                attempt: c.attempt,
                lease_until_ms: c.lease_until_ms,
                message: &*c.message,
            })
        },
    )
    .await?;
    Ok(Reply::bounded(reply.finish()))
}

/// `POST /channels/{id}/ack-and-claim`: one store call for the ack and the first page
/// of claims; further pages (when the byte budget allows) are plain claims.
pub(crate) async fn ack_and_claim(
    authed: Authed,
    State(state): S,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    serve_ack_and_claim(&state, authed, &uri, BodySource::Http(&headers, body)).await
}

pub(crate) async fn serve_ack_and_claim(
    state: &AppState,
    Authed { channel, caller }: Authed,
    uri: &Uri,
    body: BodySource<'_>,
) -> Result<Reply, ApiError> {
    let q = query(uri)?;
    let limit = api::CLAIM_LIMIT.get(&q, state.max_limit)?;
    let body = body.bytes(state).await?;
    let request = wire::parse_ids(&body)?;
    let ids: Vec<&str> = request.message_ids.iter().map(String::as_str).collect();
    let mut reply = ArrayReply::new("claims");
    let settled = if limit == 0 {
        ChannelEndpoint::settle(&channel, &caller, &ids, Settle::Ack).await?
    } else {
        let first = std::sync::Mutex::new(None::<Settled>);
        let (channel, caller, ids, first_ref) = (&channel, &caller, &ids, &first);
        let lock = || first_ref.lock().unwrap_or_else(|e| e.into_inner());
        paging::advancing(
            &mut reply,
            state.budget(),
            limit,
            |n| async move {
                if lock().is_some() {
                    // A later page: the ack is done.
                    return ChannelEndpoint::claim(channel, caller, n).await;
                }
                let (settled, page) =
                    ChannelEndpoint::settle_and_claim(channel, caller, ids, Settle::Ack, n).await?;
                *lock() = Some(settled);
                Ok(page)
            },
            |r, c| {
                r.push(&wire::ClaimedMessage {
                    seq: c.seq,
                    attempt: c.attempt,
                    lease_until_ms: c.lease_until_ms,
                    message: &*c.message,
                })
            },
        )
        .await?;
        first
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_default()
    };
    let head = wire::SettledResponse::of("acknowledged", settled);
    Ok(Reply::bounded(reply.finish_with(&head)?))
}

/// The operations that take `{"message_ids": [...]}`.
#[derive(Clone, Copy)]
pub(crate) enum Settling {
    Ack,
    Nack,
    Extend,
    Reject,
    Redrive,
    Remove,
}

pub(crate) async fn serve_settle(
    state: &AppState,
    Authed { channel, caller }: Authed,
    body: BodySource<'_>,
    what: Settling,
) -> Result<Reply, ApiError> {
    let body = body.bytes(state).await?;
    let request = wire::parse_ids(&body)?;
    let ids: Vec<&str> = request.message_ids.iter().map(String::as_str).collect();
    let (verb, how) = match what {
        Settling::Ack => ("acknowledged", Settle::Ack),
        Settling::Nack => (
            "nacked",
            Settle::Nack {
                delay: request.delay_ms.map(Duration::from_millis),
            },
        ),
        Settling::Extend => ("extended", Settle::Extend),
        Settling::Reject => (
            "rejected",
            Settle::Reject {
                reason: request.reason.clone().unwrap_or_else(|| "rejected".into()),
            },
        ),
        Settling::Redrive => {
            let n = channel.redrive(&caller, &ids).await?;
            return Reply::json(&wire::SettledResponse::count_of("redriven", n));
        }
        Settling::Remove => {
            let n = ChannelEndpoint::remove(&channel, &caller, &ids).await?;
            return Reply::json(&wire::SettledResponse::count_of("removed", n));
        }
    };
    let settled = ChannelEndpoint::settle(&channel, &caller, &ids, how).await?;
    Reply::json(&wire::SettledResponse::of(verb, settled))
}

/// The route of one of the operations that take `{"message_ids": [...]}`, for `methods`.
pub(crate) fn settling(methods: MethodFilter, what: Settling) -> MethodRouter<Arc<AppState>> {
    on(
        methods,
        move |authed: Authed, State(state): S, headers: HeaderMap, body: Body| async move {
            let body = BodySource::Http(&headers, body);
            serve_settle(&state, authed, body, what).await
        },
    )
}

pub(crate) async fn clear(Authed { channel, caller }: Authed) -> Result<Response, ApiError> {
    let n = ChannelEndpoint::clear(&channel, &caller).await?;
    Ok(json(&wire::SettledResponse::count_of("removed", n)))
}

pub(crate) async fn evict(
    Authed { channel, caller }: Authed,
    State(state): S,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, &headers, body).await?;
    let request = wire::parse_evict(&body)?;
    let n = ChannelEndpoint::evict(&channel, &caller, request.before, request.max_count).await?;
    Ok(json(&wire::SettledResponse::count_of("removed", n)))
}

pub(crate) async fn dead_letters(
    Authed { channel, caller }: Authed,
    State(state): S,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = query(&uri)?;
    let limit = api::DEAD_LETTER_LIMIT.get(&q, state.max_limit)?;
    let mut reply = ArrayReply::new("dead_letters");
    paging::restarting(
        &mut reply,
        state.budget(),
        limit,
        |n| ChannelEndpoint::dead_letters(&channel, &caller, n),
        |d| d.seq,
        |r, d| r.push(d),
    )
    .await?;
    Ok(bounded(reply.finish()))
}

/// The history query a request names: by id, by time, or the newest `limit`.
fn history_query(q: &QueryMap, max_limit: usize) -> Result<History, ApiError> {
    let limit = api::HISTORY_LIMIT.get(q, max_limit)?;
    let start = api::HISTORY_START.get(q)?;
    let end = api::HISTORY_END.get(q)?;
    if let Some(id) = api::HISTORY_MESSAGE_ID.get(q) {
        if start.is_some() || end.is_some() {
            return Err(ApiError::bad_request(
                "message_id names one message: give it without start or end",
            ));
        }
        return Ok(History::Id(id));
    }
    Ok(match (start, end) {
        (None, None) => History::Latest { limit },
        (start, end) => History::Between {
            start: start.unwrap_or(0.0),
            end: end.unwrap_or(f64::MAX),
            limit,
        },
    })
}

pub(crate) async fn history(
    Authed { channel, caller }: Authed,
    State(state): S,
    uri: Uri,
) -> Result<Response, ApiError> {
    let query = history_query(&query(&uri)?, state.max_limit)?;
    let mut reply = ArrayReply::new("entries");
    // No cursor: pages are the same query with a growing limit, told apart by sequence.
    paging::restarting(
        &mut reply,
        state.budget(),
        query.limit(),
        |n| {
            let query = query.with_limit(n);
            let channel = channel.clone();
            let caller = caller.clone();
            async move { channel.history(&caller, &query).await }
        },
        |e| e.seq,
        |r, e| {
            r.push(&wire::StoredMessage {
                seq: e.seq,
                message: &*e.message,
            })
        },
    )
    .await?;
    Ok(bounded(reply.finish()))
}

pub(crate) async fn info(Authed { channel, caller }: Authed) -> Result<Response, ApiError> {
    Ok(json(&channel.info_for(&caller)?))
}

pub(crate) async fn stats(Authed { channel, caller }: Authed) -> Result<Response, ApiError> {
    Ok(json(&channel.stats_for(&caller).await?))
}
