//! W3C trace context over HTTP: a write request's `traceparent` / `tracestate` headers
//! become the parent of the messages it stores, and [`crate::RemoteChannel`] sends the
//! context its caller is handling (see `sssn::trace`).

use std::future::Future;

use axum::http::HeaderMap;
use sssn::trace::{TRACEPARENT, TRACESTATE, TraceContext};

/// The trace context a request carries, if its `traceparent` is valid (an invalid one is
/// ignored, as W3C asks: the write then starts no trace).
pub(crate) fn incoming(headers: &HeaderMap) -> Option<TraceContext> {
    let parent = headers.get(TRACEPARENT)?.to_str().ok()?;
    let state = headers.get(TRACESTATE).and_then(|v| v.to_str().ok());
    TraceContext::parse(parent, state)
}

/// Runs a write under the request's trace context, when it has one.
pub(crate) async fn within<F: Future>(headers: &HeaderMap, write: F) -> F::Output {
    match incoming(headers) {
        Some(ctx) => ctx.scope(write).await,
        None => write.await,
    }
}

/// Adds the caller's trace context to an outgoing write request.
pub(crate) fn outgoing(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let Some(ctx) = TraceContext::for_write() else {
        return request;
    };
    let request = request.header(TRACEPARENT, ctx.traceparent());
    match &ctx.state {
        Some(state) => request.header(TRACESTATE, state.as_str()),
        None => request,
    }
}
