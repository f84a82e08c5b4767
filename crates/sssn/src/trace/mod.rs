//! Trace context: W3C `traceparent` / `tracestate` carried in a message's `metadata` (v1's
//! field, so the wire format is unchanged), and the *handling context* that makes a write
//! inherit the trace of the message being handled.
//!
//! The rule, applied by the write path (`stamp`): a message written without a
//! `traceparent` of its own gets one, a new span of
//!
//! 1. the oldest message this task claimed and has not settled yet (a worker's loop
//!    `claim → handle → write → ack` makes each result a child of its input);
//! 2. else the message being delivered to `on_message`, or the context set with
//!    [`TraceContext::scope`] (the HTTP server sets the request's `traceparent` header);
//! 3. else, inside a system's step or hook, a new trace (the record starts its path here).
//!
//! Outside systems and scopes, writes are left as they are (v1's shape, no metadata added).
//! The runner sets the context around every step and hook, so it is automatic for systems.

pub mod journal;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;

use rand::RngCore;
use serde_json::Value;

use crate::message::ChannelMessage;
use crate::store::Claimed;

/// The metadata key (and HTTP header) of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// The metadata key (and HTTP header) of the W3C trace state.
pub const TRACESTATE: &str = "tracestate";

/// A 16-byte W3C trace id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte W3C span (parent) id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

fn hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    // W3C: lower-case hex only.
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex(&self.0, f)
    }
}

impl TraceId {
    /// Parses 32 lower-case hex digits (not all zero).
    pub fn parse(s: &str) -> Option<Self> {
        unhex::<16>(s).filter(|b| b != &[0; 16]).map(Self)
    }
    fn random() -> Self {
        let mut b = [0u8; 16];
        while b == [0; 16] {
            rand::rng().fill_bytes(&mut b);
        }
        Self(b)
    }
}

impl SpanId {
    /// Parses 16 lower-case hex digits (not all zero).
    pub fn parse(s: &str) -> Option<Self> {
        unhex::<8>(s).filter(|b| b != &[0; 8]).map(Self)
    }
    /// A fresh random span id.
    pub fn random() -> Self {
        let mut b = [0u8; 8];
        while b == [0; 8] {
            rand::rng().fill_bytes(&mut b);
        }
        Self(b)
    }
}

/// One position in a trace: the W3C `traceparent` fields and the opaque `tracestate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace every span of one record's path shares.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// The vendor `tracestate`, passed on unchanged.
    pub state: Option<String>,
}

impl TraceContext {
    /// A new trace (sampled).
    pub fn root() -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: 1,
            state: None,
        }
    }

    /// A new span in the same trace, below this one.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            flags: self.flags,
            state: self.state.clone(),
        }
    }

    /// Parses a `traceparent` header value (`00-<trace>-<span>-<flags>`; a later version's
    /// extra fields are ignored, as W3C asks). `None` for anything malformed.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let t = traceparent.trim();
        let mut parts = t.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let version = unhex::<1>(version)?[0];
        // Version ff is invalid; version 00 has exactly four fields.
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        Some(Self {
            trace_id: TraceId::parse(trace)?,
            span_id: SpanId::parse(span)?,
            flags: unhex::<1>(flags)?[0],
            state: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    /// The `traceparent` value (version 00).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }

    /// The context a message carries, if its metadata has a valid `traceparent`.
    pub fn of(message: &ChannelMessage) -> Option<Self> {
        let parent = message.metadata.get(TRACEPARENT)?.as_str()?;
        let state = message.metadata.get(TRACESTATE).and_then(Value::as_str);
        Self::parse(parent, state)
    }

    /// Writes this context into a message's metadata.
    pub fn inject(&self, message: &mut ChannelMessage) {
        message
            .metadata
            .insert(TRACEPARENT.into(), Value::String(self.traceparent()));
        match &self.state {
            Some(s) => {
                message
                    .metadata
                    .insert(TRACESTATE.into(), Value::String(s.clone()));
            }
            None => {
                message.metadata.remove(TRACESTATE);
            }
        }
    }

    /// The parent a write made now would get (rules 1 and 2 of the module docs), if any.
    pub fn current() -> Option<Self> {
        HANDLING.try_with(|h| h.borrow().parent()).ok().flatten()
    }

    /// The context a write made now would be a child of: [`current`](Self::current), else a
    /// new trace inside a system or scope, else `None` (what a remote client sends as its
    /// `traceparent` header).
    pub fn for_write() -> Option<Self> {
        HANDLING
            .try_with(|h| h.borrow().parent().unwrap_or_else(Self::root))
            .ok()
    }

    /// Runs `f` with this context as the parent of the writes it makes (rule 2).
    pub fn scope<F: Future>(self, f: F) -> impl Future<Output = F::Output> {
        HANDLING.scope(RefCell::new(Handling::with_parent(Some(self))), f)
    }
}

/// The target of the channel operations' spans: enable it (`RUST_LOG=sssn::channel=debug`)
/// to see them; an OpenTelemetry exporter usually enables it for itself alone.
pub const CHANNEL_SPAN_TARGET: &str = "sssn::channel";

/// The `tracing` span of one channel operation (`op`: write, claim, ack, …), with the
/// message fields left empty for [`record_message`]. At DEBUG level: one span per
/// operation is too many for an INFO log (it halved a work queue's throughput under an
/// INFO subscriber), and an exporter that wants them enables [`CHANNEL_SPAN_TARGET`].
pub(crate) fn channel_span(op: &'static str, channel: &str, kind: &'static str) -> tracing::Span {
    if !subscriber_installed() {
        return tracing::Span::none();
    }
    tracing::debug_span!(
        target: "sssn::channel",
        "sssn.channel",
        op,
        channel,
        kind,
        system = tracing::field::Empty,
        message_id = tracing::field::Empty,
        seq = tracing::field::Empty,
        attempt = tracing::field::Empty,
        count = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    )
}

/// Whether a `tracing` subscriber was ever installed (globally or for a scope). Until one
/// is, no span can be seen, yet a disabled span still costs: with `tracing`'s `log` feature
/// on (any crate of the build may enable it: axum does) it is handed to the `log` bridge on
/// every creation, enter, exit and record, about 250 instructions per channel operation.
/// Channel spans are for `tracing` subscribers only, so without one they are not made.
pub(crate) fn subscriber_installed() -> bool {
    tracing::dispatcher::has_been_set()
}

/// Records a message on an operation's span: its id, sequence, attempt and trace (of the
/// first message when there are several; `count` says how many).
pub(crate) fn record_message(
    span: &tracing::Span,
    message: Option<&ChannelMessage>,
    seq: Option<u64>,
    attempt: Option<u32>,
    count: usize,
) {
    if span.is_disabled() {
        return;
    }
    span.record("count", count);
    let Some(m) = message else { return };
    span.record("message_id", m.id.as_str());
    if let Some(seq) = seq {
        span.record("seq", seq);
    }
    if let Some(attempt) = attempt {
        span.record("attempt", attempt);
    }
    if let Some(ctx) = TraceContext::of(m) {
        span.record("trace_id", tracing::field::display(ctx.trace_id));
        span.record("span_id", tracing::field::display(ctx.span_id));
    }
}

/// What the task is handling now: the messages it claimed and has not settled, oldest
/// first, and the delivered message (or scope) context.
#[derive(Default)]
struct Handling {
    claimed: Vec<(String, TraceContext)>,
    parent: Option<TraceContext>,
}

impl Handling {
    fn with_parent(parent: Option<TraceContext>) -> Self {
        Self {
            claimed: Vec::new(),
            parent,
        }
    }

    fn parent(&self) -> Option<TraceContext> {
        self.claimed
            .first()
            .map(|(_, c)| c.clone())
            .or_else(|| self.parent.clone())
    }
}

tokio::task_local! {
    static HANDLING: RefCell<Handling>;
}

/// Runs one system hook with a fresh handling context (`delivered`: the trace of the
/// message handed to `on_message`). Claims made inside are noted by the channel.
pub(crate) fn handling<F: Future>(
    delivered: Option<TraceContext>,
    f: F,
) -> impl Future<Output = F::Output> {
    HANDLING.scope(RefCell::new(Handling::with_parent(delivered)), f)
}

/// Notes messages the current task claimed (no-op outside a handling context).
pub fn note_claimed(claimed: &[Claimed]) {
    let _ = HANDLING.try_with(|h| {
        let mut h = h.borrow_mut();
        for c in claimed {
            if let Some(ctx) = TraceContext::of(&c.message)
                && !h.claimed.iter().any(|(id, _)| *id == c.message.id)
            {
                h.claimed.push((c.message.id.clone(), ctx));
            }
        }
    });
}

/// Notes messages the current task settled for good (acked, nacked, rejected): the next
/// write no longer inherits from them.
pub fn note_settled(ids: &[&str]) {
    let _ = HANDLING.try_with(|h| {
        h.borrow_mut()
            .claimed
            .retain(|(id, _)| !ids.contains(&id.as_str()));
    });
}

/// Gives a message about to be stored its trace context (the module's rule), unless it
/// carries a valid one already. Returns the message's context.
pub(crate) fn stamp(message: &mut ChannelMessage) -> Option<TraceContext> {
    if let Some(own) = TraceContext::of(message) {
        return Some(own);
    }
    let in_scope = HANDLING.try_with(|_| ()).is_ok();
    let ctx = match TraceContext::current() {
        Some(parent) => {
            // The operation's span names the parent (an exporter links the two).
            let span = tracing::Span::current();
            if !span.is_disabled() {
                span.record("parent_span_id", tracing::field::display(parent.span_id));
            }
            parent.child()
        }
        None if in_scope => TraceContext::root(),
        None => return None,
    };
    ctx.inject(message);
    Some(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Content;

    const W3C_EXAMPLE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let c = TraceContext::parse(W3C_EXAMPLE, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(c.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(c.span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(c.flags, 1);
        assert_eq!(c.traceparent(), W3C_EXAMPLE);
        assert_eq!(c.state.as_deref(), Some("congo=t61rcWkgMzE"));
        // A later version may add fields; version 00 may not.
        assert!(TraceContext::parse(&format!("01{}-extra", &W3C_EXAMPLE[2..]), None).is_some());
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad:?}");
        }
    }

    fn message() -> ChannelMessage {
        ChannelMessage::new("w", Content::data(&1).unwrap())
    }

    #[tokio::test]
    async fn writes_outside_a_context_are_left_alone() {
        let mut m = message();
        assert!(stamp(&mut m).is_none());
        assert!(m.metadata.is_empty());
    }

    #[tokio::test]
    async fn the_oldest_unsettled_claim_is_the_parent_then_the_delivered_message() {
        let delivered = TraceContext::root();
        let (a, b) = (TraceContext::root(), TraceContext::root());
        let claimed = |ctx: &TraceContext, id: &str| {
            let mut m = message();
            m.id = id.into();
            ctx.inject(&mut m);
            Claimed {
                seq: 1,
                message: std::sync::Arc::new(m),
                attempt: 1,
                lease_until_ms: 0,
            }
        };
        let (ca, cb) = (claimed(&a, "a"), claimed(&b, "b"));
        let d = delivered.clone();
        handling(Some(delivered.clone()), async move {
            note_claimed(&[ca, cb]);
            let mut m = message();
            let ctx = stamp(&mut m).unwrap();
            assert_eq!(ctx.trace_id, a.trace_id);
            assert_ne!(ctx.span_id, a.span_id);
            note_settled(&["a"]);
            assert_eq!(stamp(&mut message()).unwrap().trace_id, b.trace_id);
            note_settled(&["b"]);
            assert_eq!(stamp(&mut message()).unwrap().trace_id, d.trace_id);
        })
        .await;
        // Inside a hook with nothing handled: every write starts its own trace.
        handling(None, async {
            let (x, y) = (
                stamp(&mut message()).unwrap(),
                stamp(&mut message()).unwrap(),
            );
            assert_ne!(x.trace_id, y.trace_id);
        })
        .await;
    }

    #[tokio::test]
    async fn a_message_keeps_its_own_valid_traceparent() {
        let own = TraceContext::root();
        let mut m = message();
        own.inject(&mut m);
        let got = TraceContext::root()
            .scope(async move { stamp(&mut m) })
            .await;
        assert_eq!(got, Some(own));
    }
}
