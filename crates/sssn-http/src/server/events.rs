//! `GET /channels/{id}/events`: push to remote subscribers over Server-Sent Events.
//!
//! The stream is a channel [`Subscription`] (gap-free, catching up from the store after a
//! lag) encoded by hand: every message ready at the moment is written into one chunk, so
//! a busy stream costs one write per batch, not per message. It resumes after the
//! `Last-Event-ID` header (or `?after=`), and ends when the channel stops, the subscriber
//! is dropped, or the server shuts down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use sssn::Subscription;
use sssn::channel::{ChannelState, RecvError};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::routes::{path_id, query};
use crate::error::ApiError;
use crate::sse::{encode_comment, encode_event};
use crate::wire;

/// Flush a chunk once it holds this many bytes, even if more messages are ready.
const CHUNK_BYTES: usize = 64 * 1024;

pub(super) async fn events(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    params: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let q = query(params)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(wire::parse_seq(v.to_str().map_err(|_| {
            ApiError::bad_request("Last-Event-ID must be a sequence number")
        })?)?),
        None => q.get("after").map(|a| wire::parse_seq(a)).transpose()?,
    };
    let (channel, caller) = state.caller(&headers, &id)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::new(
            sssn::ErrorKind::ShuttingDown,
            "The server is shutting down.",
        ));
    }
    if matches!(
        channel.state(),
        ChannelState::Draining | ChannelState::Stopped
    ) {
        // Its subscriptions end at once: say so, rather than open a stream that closes.
        return Err(ApiError::new(
            sssn::ErrorKind::ShuttingDown,
            format!("Channel '{id}' is stopped."),
        ));
    }
    let subscription = match resume {
        Some(seq) => {
            // An id beyond the head (a store that was reset) would stall delivery until the
            // log caught up with it: resume from the head instead; the `ready` event says so.
            let head = channel.stats().await?.head_seq;
            channel.subscribe_after(&caller, seq.min(head)).await?
        }
        None => channel.subscribe(&caller).await?,
    };
    let stream = EventStream {
        subscription,
        keep_alive: state.keep_alive,
        shutdown: state.shutdown.clone(),
        state: state.clone(),
    };
    state.sse_streams.fetch_add(1, Ordering::Relaxed);
    let mut response = (StatusCode::OK, Body::from_stream(stream.into_stream())).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct EventStream {
    subscription: Subscription,
    keep_alive: Duration,
    shutdown: CancellationToken,
    state: Arc<AppState>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.state.sse_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventStream {
    fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        let mut first = BytesMut::new();
        let after = self.subscription.position();
        encode_event(
            &mut first,
            Some("ready"),
            Some(after),
            &serde_json::to_string(&wire::ReadyEvent { after }).unwrap_or_default(),
        );
        let ready = futures::stream::once(async move { Ok(first.freeze()) });
        let rest = futures::stream::unfold(Some(self), |this| async move {
            let mut this = this?;
            let chunk = this.next_chunk().await?;
            Some((Ok(chunk), Some(this)))
        });
        ready.chain(rest)
    }

    /// The next bytes to send: every message ready now, a keep-alive comment when idle, or
    /// `None` to end the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        let first = tokio::select! {
            () = self.shutdown.cancelled() => return None,
            () = tokio::time::sleep(self.keep_alive) => {
                encode_comment(&mut out, "keep-alive");
                return Some(out.freeze());
            }
            r = self.subscription.recv() => r,
        };
        let mut next = Some(first);
        while let Some(r) = next.take() {
            match r {
                Ok(entry) => {
                    encode_event(&mut out, None, Some(entry.seq), &entry.message.to_json());
                }
                Err(RecvError::Lagged(n)) => {
                    // The subscription continues from the store: nothing is lost.
                    encode_comment(&mut out, &format!("lagged {n}; catching up"));
                }
                Err(RecvError::Gap { from, to }) => {
                    // Messages removed before delivery: said, machine-readably, before the
                    // next one. Its id moves a resuming client past them.
                    let gap = wire::GapEvent { from, to };
                    encode_event(
                        &mut out,
                        Some("gap"),
                        Some(to),
                        &serde_json::to_string(&gap).unwrap_or_default(),
                    );
                }
                Err(_) => {
                    if out.is_empty() {
                        return None;
                    }
                    break;
                }
            }
            if out.len() >= CHUNK_BYTES {
                break;
            }
            // `recv` is cancel-safe: a poll that is not ready loses nothing.
            next = self.subscription.recv().now_or_never();
        }
        Some(out.freeze())
    }
}
