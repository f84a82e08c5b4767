//! `GET /channels/{id}/events`: push to remote subscribers over Server-Sent Events.
//!
//! The stream is a channel [`Subscription`] encoded by hand: every message ready at the
//! moment is written into one chunk, so a busy stream costs one write per batch, not per
//! message. It resumes after the `Last-Event-ID` header (or `?after=`), and ends when the
//! channel stops, the subscriber is dropped, or the server shuts down.
//!
//! Catching up (a resume, or a subscriber that lagged) is read here, in pages of at most
//! the response byte budget, on kinds with shared reads and no per-reader filter: the
//! stream subscribes from now and sends what came before page by page, so a stream that
//! resumes far back never holds its backlog in memory. Work-queue tails and mailboxes
//! catch up through the subscription.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use sssn::channel::{ChannelState, RecvError};
use sssn::security::Principal;
use sssn::store::Seq;
use sssn::{Channel, ChannelKind, Subscription};
use tokio_util::sync::CancellationToken;

use super::routes::query;
use super::{AppState, Authed};
use crate::api;
use crate::error::ApiError;
use crate::sse::{encode_comment, encode_event};
use crate::wire;

/// Flush a chunk once it holds this many bytes, even if more messages are ready.
const CHUNK_BYTES: usize = 64 * 1024;

/// Messages `from..=to` were removed before delivery: said, machine-readably, before the
/// next one. The event's id moves a resuming client past them.
fn encode_gap(out: &mut BytesMut, from: Seq, to: Seq) {
    let gap = wire::GapEvent { from, to };
    encode_event(
        out,
        Some("gap"),
        Some(to),
        &serde_json::to_string(&gap).unwrap_or_default(),
    );
}

impl EventStream {
    /// Encodes the next page of the catch-up into `out` (at most the byte budget, at least
    /// one message), and ends the catch-up once it reaches where the live feed starts.
    async fn catch_up_page(&mut self, c: CatchUp, out: &mut BytesMut) -> sssn::Result<()> {
        let budget = self.state.budget();
        let n = budget.page(budget.bytes, 0, usize::MAX, true);
        let page = self.channel.entries_after(&self.caller, c.after, n).await?;
        let mut done = page.len() < n;
        let mut after = c.after;
        for entry in page {
            if entry.seq > c.until {
                done = true;
                break;
            }
            // Stored sequences are dense: a jump is messages removed before delivery.
            if entry.seq > after + 1 {
                encode_gap(out, after + 1, entry.seq - 1);
            }
            encode_event(out, None, Some(entry.seq), &entry.message.to_json());
            after = entry.seq;
        }
        done |= after >= c.until;
        if done && after < c.until {
            encode_gap(out, after + 1, c.until);
        }
        self.catch_up = (!done).then_some(CatchUp {
            after,
            until: c.until,
        });
        Ok(())
    }
}

pub(crate) async fn events(
    Authed { channel, caller }: Authed,
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = query(&uri)?;
    let resume = match api::LAST_EVENT_ID.get(&q, &headers)? {
        Some(seq) => Some(seq),
        None => api::EVENTS_AFTER.get(&q, &headers)?,
    };
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
            format!("Channel '{}' is stopped.", channel.id()),
        ));
    }
    let (subscription, catch_up) = match resume {
        Some(seq) => {
            // An id beyond the head (a store that was reset) would stall delivery until the
            // log caught up with it: resume from the head instead; the `ready` event says so.
            let from = seq.min(channel.stats().await?.head_seq);
            if pages_catch_up(&channel) {
                // Live from now; what came before is read here, page by page.
                let subscription = channel.subscribe(&caller).await?;
                let until = subscription.position();
                (subscription, Some(CatchUp { after: from, until }))
            } else {
                (channel.subscribe_after(&caller, from).await?, None)
            }
        }
        None => (channel.subscribe(&caller).await?, None),
    };
    let stream = EventStream {
        subscription,
        catch_up,
        channel,
        caller,
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

/// Whether this server reads a stream's catch-up itself, in pages under the byte budget:
/// on kinds with shared reads and no per-reader filter. Others (work-queue tails,
/// mailboxes) catch up through the subscription.
fn pages_catch_up(channel: &Channel) -> bool {
    let kind = channel.kind();
    kind.shared_reads() && kind != ChannelKind::Mailbox
}

/// Messages in `(after, until]` still to send before the live ones.
#[derive(Clone, Copy, Debug)]
struct CatchUp {
    after: Seq,
    until: Seq,
}

struct EventStream {
    subscription: Subscription,
    catch_up: Option<CatchUp>,
    channel: Channel,
    caller: Principal,
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
        let after = match self.catch_up {
            Some(c) => c.after,
            None => self.subscription.position(),
        };
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
        if let Some(c) = self.catch_up {
            if self.shutdown.is_cancelled() {
                return None;
            }
            match self.catch_up_page(c, &mut out).await {
                Ok(()) => {
                    if !out.is_empty() {
                        return Some(out.freeze());
                    }
                }
                Err(e) => {
                    tracing::warn!(channel = %self.channel.id(), error = %e, "event stream catch-up failed; stream ended");
                    return None;
                }
            }
        }
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
                    // Nothing is lost: the stream catches up from the store, in pages
                    // here where it can, else through the subscription.
                    encode_comment(&mut out, &format!("lagged {n}; catching up"));
                    if pages_catch_up(&self.channel) {
                        let after = self.subscription.position();
                        match self.channel.subscribe(&self.caller).await {
                            Ok(fresh) => {
                                let until = fresh.position();
                                self.subscription = fresh;
                                self.catch_up = Some(CatchUp { after, until });
                            }
                            Err(e) => {
                                tracing::warn!(channel = %self.channel.id(), error = %e, "event stream could not resubscribe; stream ended");
                                return None;
                            }
                        }
                        break;
                    }
                }
                Err(RecvError::Gap { from, to }) => encode_gap(&mut out, from, to),
                Err(RecvError::Closed) => {
                    if out.is_empty() {
                        return None;
                    }
                    break;
                }
                // Anything else the subscription reports (e.g. messages removed before they
                // could be delivered) is said as a comment; delivery goes on.
                Err(other) => encode_comment(&mut out, &other.to_string()),
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
