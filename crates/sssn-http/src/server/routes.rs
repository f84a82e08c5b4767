//! Request handlers: each authenticates, parses, calls the channel, and answers JSON.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Serialize;
use sssn::ErrorKind;
use sssn::channel::ReadOptions;
use sssn::security::Operation;

use super::AppState;
use crate::error::ApiError;
use crate::wire::{self, PayloadKind};

type S = State<Arc<AppState>>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;
type Id = Result<Path<String>, PathRejection>;

/// A JSON `200 OK`.
pub(super) fn json<T: Serialize>(value: &T) -> Response {
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

pub(super) fn path_id(id: Id) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(format!("Invalid channel id in path: {e}")))
}

pub(super) fn query(params: Params) -> Result<HashMap<String, String>, ApiError> {
    params
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("Invalid query string: {}", e.body_text())))
}

fn limit(state: &AppState, q: &HashMap<String, String>, default: usize) -> Result<usize, ApiError> {
    Ok(match q.get("limit") {
        Some(text) => wire::parse_count("limit", text)?,
        None => default,
    }
    .min(state.max_limit))
}

/// Reads the body up to the server's limit. A body over the limit is read on (and thrown
/// away) up to a bounded amount so the client gets its 413 instead of a reset connection.
async fn body_bytes(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.max_body_bytes;
    let discard_cap = limit.saturating_mul(4).max(16 << 20);
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

pub(super) async fn health(State(state): S) -> Response {
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

pub(super) async fn openapi() -> Response {
    json(crate::openapi::document())
}

pub(super) async fn metrics(State(state): S, headers: HeaderMap) -> Result<Response, ApiError> {
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

pub(super) async fn list_channels(
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

pub(super) async fn read(
    State(state): S,
    id: Id,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let q = query(params)?;
    let exclusive = q
        .get("exclusive")
        .map(|v| wire::parse_bool(v))
        .transpose()?
        .unwrap_or(false);
    let op = if exclusive {
        Operation::Claim
    } else {
        Operation::Read
    };
    let (channel, caller) = state.authorize(&headers, &id, op)?;
    let options = ReadOptions {
        limit: limit(&state, &q, 10)?,
        exclusive,
        after: q.get("after").filter(|a| !a.is_empty()).cloned(),
    };
    let messages = channel.read_with(&caller, options).await?;
    let messages: Vec<&sssn::ChannelMessage> = messages.iter().map(|m| &**m).collect();
    Ok(json(&wire::MessagesResponse { messages }))
}

fn payload_kind(q: &HashMap<String, String>) -> Result<PayloadKind, ApiError> {
    Ok(PayloadKind::from_query(
        q.get("kind").map(String::as_str),
        q.get("direct").map(String::as_str),
    )?)
}

pub(super) async fn write(
    State(state): S,
    id: Id,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let kind = payload_kind(&query(params)?)?;
    let (channel, caller) = state.authorize(&headers, &id, Operation::Write)?;
    let body = body_bytes(&state, &headers, body).await?;
    let payload = wire::parse_write(&body, kind)?;
    let item_id = channel.write_payload(&caller, payload).await?;
    Ok(json(&wire::WriteResponse {
        status: "accepted".into(),
        item_id,
    }))
}

pub(super) async fn write_batch(
    State(state): S,
    id: Id,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let kind = payload_kind(&query(params)?)?;
    let (channel, caller) = state.authorize(&headers, &id, Operation::Write)?;
    let body = body_bytes(&state, &headers, body).await?;
    let payloads = wire::parse_batch(&body, kind)?;
    let item_ids = channel.write_batch(&caller, payloads).await?;
    Ok(json(&wire::BatchResponse {
        status: "accepted".into(),
        item_ids,
    }))
}

pub(super) async fn claim(
    State(state): S,
    id: Id,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let q = query(params)?;
    let (channel, caller) = state.authorize(&headers, &id, Operation::Claim)?;
    let claimed = channel.claim(&caller, limit(&state, &q, 1)?).await?;
    let claims = claimed
        .iter()
        .map(|c| wire::ClaimedMessage {
            seq: c.seq,
            attempt: c.attempt,
            lease_until_ms: c.lease_until_ms,
            message: &*c.message,
        })
        .collect();
    Ok(json(&wire::ClaimResponse { claims }))
}

/// The operations that take `{"message_ids": [...]}`.
#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Nack,
    Extend,
    Reject,
    Redrive,
}

async fn settle(
    state: &AppState,
    id: Id,
    headers: &HeaderMap,
    body: Body,
    what: Settle,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let op = match what {
        Settle::Ack => Operation::Ack,
        Settle::Nack | Settle::Extend | Settle::Reject => Operation::Nack,
        Settle::Redrive => Operation::Admin,
    };
    let (channel, caller) = state.authorize(headers, &id, op)?;
    let body = body_bytes(state, headers, body).await?;
    let request = wire::parse_ids(&body)?;
    let ids = &request.message_ids;
    let mut response = wire::SettledResponse {
        status: "ok".into(),
        ..Default::default()
    };
    match what {
        Settle::Ack => response.acknowledged = Some(channel.ack(&caller, ids).await?),
        Settle::Nack => {
            let n = match request.delay_ms {
                Some(ms) => {
                    channel
                        .nack_after(&caller, ids, Duration::from_millis(ms))
                        .await?
                }
                None => channel.nack(&caller, ids).await?,
            };
            response.nacked = Some(n);
        }
        Settle::Extend => response.extended = Some(channel.extend(&caller, ids).await?),
        Settle::Reject => {
            let reason = request.reason.as_deref().unwrap_or("rejected");
            response.rejected = Some(channel.reject(&caller, ids, reason).await?);
        }
        Settle::Redrive => response.redriven = Some(channel.redrive(&caller, ids).await?),
    }
    Ok(json(&response))
}

pub(super) async fn acknowledge(
    State(state): S,
    id: Id,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle(&state, id, &headers, body, Settle::Ack).await
}

pub(super) async fn nack(
    State(state): S,
    id: Id,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle(&state, id, &headers, body, Settle::Nack).await
}

pub(super) async fn extend(
    State(state): S,
    id: Id,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle(&state, id, &headers, body, Settle::Extend).await
}

pub(super) async fn reject(
    State(state): S,
    id: Id,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle(&state, id, &headers, body, Settle::Reject).await
}

pub(super) async fn redrive(
    State(state): S,
    id: Id,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    settle(&state, id, &headers, body, Settle::Redrive).await
}

pub(super) async fn dead_letters(
    State(state): S,
    id: Id,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let q = query(params)?;
    let (channel, caller) = state.authorize(&headers, &id, Operation::Admin)?;
    let dead_letters = channel
        .dead_letters(&caller, limit(&state, &q, 100)?)
        .await?;
    Ok(json(&wire::DeadLettersResponse { dead_letters }))
}

pub(super) async fn info(
    State(state): S,
    id: Id,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let (channel, _) = state.authorize(&headers, &id, Operation::Read)?;
    Ok(json(&channel.info()))
}

pub(super) async fn stats(
    State(state): S,
    id: Id,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let (channel, _) = state.authorize(&headers, &id, Operation::Read)?;
    Ok(json(&channel.stats().await?))
}
