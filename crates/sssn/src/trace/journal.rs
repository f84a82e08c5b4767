//! The hop journal: a bounded, in-process record of what happened to each traced message
//! (written, claimed, settled, delivered), by trace id, so a console can show one record's
//! path with the time spent at each hop. Off until [`enable`]d: the channel hot paths then
//! pay one atomic load.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::{TraceContext, TraceId};
use crate::message::ChannelMessage;

/// What happened at one hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HopKind {
    /// Stored in a channel.
    Write,
    /// Claimed from a work queue.
    Claim,
    /// Acknowledged (consumed).
    Ack,
    /// Released for another attempt.
    Nack,
    /// Sent to the dead letters.
    Reject,
    /// Handed to a system's `on_message`.
    Deliver,
}

/// One hop of a record's path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hop {
    /// What happened.
    pub kind: HopKind,
    /// The channel.
    pub channel: String,
    /// The message.
    pub message_id: String,
    /// Its span (`traceparent`'s span id).
    pub span_id: String,
    /// Who: the writer, claimer, settler or receiving system.
    pub actor: String,
    /// The message's sequence in the channel, where known.
    pub seq: Option<u64>,
    /// The delivery attempt (claims).
    pub attempt: Option<u32>,
    /// When, Unix epoch milliseconds.
    pub at_ms: u64,
}

/// A trace in the journal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceSummary {
    /// The trace id (32 hex digits).
    pub trace_id: String,
    /// Its hops.
    pub hops: usize,
    /// First and last hop, epoch milliseconds.
    pub first_ms: u64,
    /// Last hop, epoch milliseconds.
    pub last_ms: u64,
}

struct Inner {
    traces: HashMap<TraceId, Vec<Hop>>,
    order: VecDeque<TraceId>,
    /// Message id → trace, for hops that name only the id (settling).
    messages: HashMap<String, TraceId>,
    message_order: VecDeque<String>,
}

/// The journal (one per process).
pub struct Journal {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// Hops kept per trace at most (a record redelivered forever stays bounded).
const MAX_HOPS: usize = 256;

static JOURNAL: OnceLock<Journal> = OnceLock::new();

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    // A few map updates per section: a panic inside cannot leave them worse than refusing.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns the journal on, keeping the newest `traces` traces (the first call's size wins).
pub fn enable(traces: usize) -> &'static Journal {
    JOURNAL.get_or_init(|| Journal {
        capacity: traces.max(1),
        inner: Mutex::new(Inner {
            traces: HashMap::new(),
            order: VecDeque::new(),
            messages: HashMap::new(),
            message_order: VecDeque::new(),
        }),
    })
}

/// The journal, when enabled.
pub fn get() -> Option<&'static Journal> {
    JOURNAL.get()
}

/// Records a hop of `message` when the journal is on and the message is traced.
pub(crate) fn record(
    kind: HopKind,
    channel: &str,
    message: &ChannelMessage,
    actor: &str,
    seq: Option<u64>,
    attempt: Option<u32>,
) {
    let Some(j) = get() else { return };
    let Some(ctx) = TraceContext::of(message) else {
        return;
    };
    j.push(ctx.trace_id, &message.id, || Hop {
        kind,
        channel: channel.to_owned(),
        message_id: message.id.clone(),
        span_id: ctx.span_id.to_string(),
        actor: actor.to_owned(),
        seq,
        attempt,
        at_ms: crate::clock::now_millis(),
    });
}

/// Records a settling hop for message ids (the journal knows their traces from the write
/// or claim it saw).
pub(crate) fn record_settled(kind: HopKind, channel: &str, ids: &[String], actor: &str) {
    let Some(j) = get() else { return };
    let mut inner = lock(&j.inner);
    let now = crate::clock::now_millis();
    for id in ids {
        let Some(trace) = inner.messages.get(id).copied() else {
            continue;
        };
        let span_id = inner
            .traces
            .get(&trace)
            .and_then(|hops| hops.iter().rev().find(|h| h.message_id == *id))
            .map(|h| h.span_id.clone())
            .unwrap_or_default();
        if let Some(hops) = inner.traces.get_mut(&trace)
            && hops.len() < MAX_HOPS
        {
            hops.push(Hop {
                kind,
                channel: channel.to_owned(),
                message_id: id.clone(),
                span_id,
                actor: actor.to_owned(),
                seq: None,
                attempt: None,
                at_ms: now,
            });
        }
    }
}

impl Journal {
    fn push(&self, trace: TraceId, message_id: &str, hop: impl FnOnce() -> Hop) {
        let mut inner = lock(&self.inner);
        if !inner.traces.contains_key(&trace) {
            while inner.order.len() >= self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.traces.remove(&old);
                }
            }
            inner.order.push_back(trace);
        }
        let hops = inner.traces.entry(trace).or_default();
        if hops.len() < MAX_HOPS {
            hops.push(hop());
        }
        if inner
            .messages
            .insert(message_id.to_owned(), trace)
            .is_none()
        {
            inner.message_order.push_back(message_id.to_owned());
            // Message ids are kept for a few times as many messages as traces.
            while inner.message_order.len() > self.capacity * 4 {
                if let Some(old) = inner.message_order.pop_front() {
                    inner.messages.remove(&old);
                }
            }
        }
    }

    /// The hops of one trace in time order.
    pub fn trace(&self, trace_id: &str) -> Option<Vec<Hop>> {
        let id = TraceId::parse(trace_id)?;
        let inner = lock(&self.inner);
        let mut hops = inner.traces.get(&id)?.clone();
        hops.sort_by_key(|h| h.at_ms);
        Some(hops)
    }

    /// The trace a message belongs to, if the journal saw it.
    pub fn trace_of(&self, message_id: &str) -> Option<String> {
        let inner = lock(&self.inner);
        inner.messages.get(message_id).map(ToString::to_string)
    }

    /// The newest traces, newest first.
    pub fn recent(&self, limit: usize) -> Vec<TraceSummary> {
        let inner = lock(&self.inner);
        inner
            .order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|t| {
                let hops = inner.traces.get(t)?;
                Some(TraceSummary {
                    trace_id: t.to_string(),
                    hops: hops.len(),
                    first_ms: hops.iter().map(|h| h.at_ms).min()?,
                    last_ms: hops.iter().map(|h| h.at_ms).max()?,
                })
            })
            .collect()
    }
}
