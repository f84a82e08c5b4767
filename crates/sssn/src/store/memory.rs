//! The in-memory store: the default, nothing to install, nothing survives the process.
//!
//! One mutex guards each channel's state; no operation awaits while holding it. The log
//! is a ring of slots indexed by `seq - base`; removed messages leave a `None` hole that is
//! compacted away once it reaches the front, so acknowledged work leaves memory. Claimable
//! messages sit in an ordered set, leases and delays in min-heaps checked lazily, so claim,
//! ack and nack never walk the history.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

mod claim_queue;
mod inbox;

use super::id_index::IdIndex;
use super::{
    ChannelSpec, ChannelStorage, ClaimQueue, DeadLetter, Entry, Log, LogStats, ReadFilter,
    ReadFrom, Seq, Store,
};
use crate::clock::{millis, now_millis};
use crate::error::{Error, ErrorKind, Result};
use crate::message::ChannelMessage;
use crate::policy::{ClaimPolicy, ClaimScope, DeadReason, Fate, Release};

/// The in-memory backend. Channels opened twice under the same id share their state, so a
/// channel can be rebuilt in the same process without losing messages.
#[derive(Clone, Default)]
pub struct MemoryStore {
    channels: Arc<Mutex<HashMap<String, Arc<MemoryChannel>>>>,
}

impl MemoryStore {
    /// A new, empty memory store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn open_channel(&self, spec: &ChannelSpec) -> Result<ChannelStorage> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let channel = channels
            .entry(spec.id.clone())
            .or_insert_with(|| Arc::new(MemoryChannel::new(spec)))
            .clone();
        let scope_differs = spec.claims.is_some() && channel.scope != spec.claim_scope;
        if channel.policy.is_some() != spec.claims.is_some() || scope_differs {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "channel '{}' exists in this memory store {} claims and cannot be opened {}",
                    spec.id,
                    if channel.policy.is_some() {
                        "with"
                    } else {
                        "without"
                    },
                    match (spec.claims.is_some(), spec.claim_scope) {
                        (false, _) => "without claims",
                        (true, ClaimScope::Shared) => "with shared claims",
                        (true, ClaimScope::PerRecipient) => "with claims per recipient",
                    },
                ),
            ));
        }
        let claims = channel
            .policy
            .is_some()
            .then(|| channel.clone() as Arc<dyn ClaimQueue>);
        Ok(ChannelStorage {
            log: channel,
            claims,
        })
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// Where a stored message is in its claim life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Readable; claimable when the channel kind has claims.
    Ready,
    /// Nacked with a delay; claimable once its entry in the delay heap is due.
    Delayed,
    /// Held by a claim.
    InFlight,
}

struct Slot {
    message: Arc<ChannelMessage>,
    /// Arrival time, whole epoch seconds rounded up (retention needs no finer grain and
    /// the slot stays 16 bytes).
    stored_at: u32,
    attempts: u16,
    state: SlotState,
}

struct Lease {
    claimer: Arc<str>,
    deadline_ms: u64,
}

/// A map keyed by sequence. The store assigns sequences (no caller chooses them), so a
/// fast fixed hash is safe here, and it is several times cheaper than SipHash.
pub(super) type SeqMap<V> = HashMap<Seq, V, foldhash::fast::FixedState>;

struct State {
    /// Sequence of `slots[0]`.
    base: Seq,
    slots: VecDeque<Option<Slot>>,
    live: usize,
    ids: IdIndex,
    cursors: HashMap<String, Seq>,
    /// Claimable messages that were claimed before (nacked or lease expired).
    ready: BTreeSet<Seq>,
    /// Messages never claimed are claimable from here on, in order, without an entry each.
    next_fresh: Seq,
    fresh: usize,
    /// Whether the channel has one shared claim queue (the fields above and below).
    claims: bool,
    /// Claims per recipient (mailboxes): each recipient's inbox, instead of the shared queue.
    inboxes: HashMap<String, inbox::Inbox>,
    delayed: BinaryHeap<Reverse<(u64, Seq)>>,
    delayed_count: usize,
    in_flight: SeqMap<Lease>,
    leases: BinaryHeap<Reverse<(u64, Seq)>>,
    dead: VecDeque<DeadLetter>,
    acknowledged: u64,
    head: Seq,
    /// Arrival marks for history by time: `(ms, seq)` where `seq` is the first message
    /// appended at epoch millisecond `ms`. One per distinct millisecond with appends (the
    /// clock never goes back), so locating a time is a binary search, not a walk.
    marks: VecDeque<(u64, Seq)>,
}

/// One channel's state in a [`MemoryStore`].
pub(crate) struct MemoryChannel {
    /// `Some` for channels with claims.
    policy: Option<ClaimPolicy>,
    /// One shared queue, or an inbox per recipient.
    scope: ClaimScope,
    /// The lease in force (milliseconds), changeable while the channel runs.
    lease_ms: AtomicU64,
    state: Mutex<State>,
    feed: broadcast::Sender<Entry>,
}

impl MemoryChannel {
    fn new(spec: &ChannelSpec) -> Self {
        let (feed, _) = broadcast::channel(spec.feed_capacity.max(1));
        Self {
            policy: spec.claims,
            scope: spec.claim_scope,
            lease_ms: AtomicU64::new(millis(spec.claims.unwrap_or_default().lease)),
            state: Mutex::new(State {
                base: 1,
                slots: VecDeque::new(),
                live: 0,
                ids: IdIndex::default(),
                cursors: HashMap::new(),
                ready: BTreeSet::new(),
                next_fresh: 1,
                fresh: 0,
                claims: spec.claims.is_some() && spec.claim_scope == ClaimScope::Shared,
                inboxes: HashMap::new(),
                delayed: BinaryHeap::new(),
                delayed_count: 0,
                in_flight: SeqMap::default(),
                leases: BinaryHeap::new(),
                dead: VecDeque::new(),
                acknowledged: 0,
                head: 0,
                marks: VecDeque::new(),
            }),
            feed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // breaks invariants more than losing the channel would, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn slot_id(slots: &VecDeque<Option<Slot>>, base: Seq, seq: Seq) -> Option<&str> {
    let i = seq.checked_sub(base)?;
    slots
        .get(i as usize)?
        .as_ref()
        .map(|s| s.message.id.as_str())
}

impl State {
    fn slot(&self, seq: Seq) -> Option<&Slot> {
        if seq < self.base {
            return None;
        }
        self.slots.get((seq - self.base) as usize)?.as_ref()
    }

    fn slot_mut(&mut self, seq: Seq) -> Option<&mut Slot> {
        if seq < self.base {
            return None;
        }
        self.slots.get_mut((seq - self.base) as usize)?.as_mut()
    }

    fn seq_of(&self, id: &str) -> Option<Seq> {
        let (slots, base) = (&self.slots, self.base);
        self.ids.get(id, |seq| slot_id(slots, base, seq))
    }

    /// Stores a new message at the next sequence.
    fn push(&mut self, message: ChannelMessage, now: u64) -> Entry {
        let id_hash = self.ids.hash(&message.id);
        self.push_hashed(message, id_hash, now)
    }

    /// [`push`](Self::push) of a message whose id hash ([`IdIndex::hash`]) is known.
    fn push_hashed(&mut self, message: ChannelMessage, id_hash: u64, now: u64) -> Entry {
        self.head += 1;
        let seq = self.head;
        let message = Arc::new(message);
        if self.slots.is_empty() {
            self.base = seq;
        }
        if self.marks.back().is_none_or(|&(at, _)| now > at) {
            self.marks.push_back((now, seq));
        }
        self.slots.push_back(Some(Slot {
            message: message.clone(),
            stored_at: now.div_ceil(1000).try_into().unwrap_or(u32::MAX),
            attempts: 0,
            state: SlotState::Ready,
        }));
        self.live += 1;
        let (slots, base) = (&self.slots, self.base);
        self.ids
            .insert_hashed(id_hash, &message.id, seq, |s| slot_id(slots, base, s));
        if self.claims {
            self.fresh += 1;
        }
        Entry { seq, message }
    }

    /// Takes a message out of the log and every index; returns it.
    fn take(&mut self, seq: Seq) -> Option<Slot> {
        if seq < self.base {
            return None;
        }
        let slot = self.slots.get_mut((seq - self.base) as usize)?.take()?;
        self.live -= 1;
        self.ids.remove(&slot.message.id, seq);
        match slot.state {
            SlotState::Ready => {
                if !self.ready.remove(&seq) && self.claims && slot.attempts == 0 {
                    self.fresh -= 1;
                }
            }
            SlotState::Delayed => self.delayed_count -= 1,
            SlotState::InFlight => {
                self.in_flight.remove(&seq);
            }
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        // The mark covering `base` stays; the ones wholly before it go.
        while self.marks.len() > 1 && self.marks[1].1 <= self.base {
            self.marks.pop_front();
        }
        Some(slot)
    }

    /// The first sequence that arrived at or after `ms` (`head + 1` when none did).
    fn first_arrived_at_or_after(&self, ms: u64) -> Seq {
        let i = self.marks.partition_point(|&(at, _)| at < ms);
        self.marks.get(i).map_or(self.head + 1, |&(_, seq)| seq)
    }

    fn first_live(&self) -> Option<Seq> {
        // The front is always live after compaction.
        self.slots
            .front()
            .and_then(|s| s.as_ref())
            .map(|_| self.base)
    }

    fn dead_letter(&mut self, seq: Seq, reason: &DeadReason, now: u64) {
        if let Some(slot) = self.take(seq) {
            self.dead.push_back(DeadLetter {
                seq,
                message: Arc::unwrap_or_clone(slot.message),
                attempts: u32::from(slot.attempts),
                reason: reason.to_string(),
                dead_at_ms: now,
                recipient: None,
            });
        }
    }

    /// Releases a claimed message: the policy puts it back in line (claimable from `due`)
    /// or makes it a dead letter.
    fn release(
        &mut self,
        policy: &ClaimPolicy,
        seq: Seq,
        due: Option<u64>,
        why: Release,
        now: u64,
    ) {
        let Some(attempts) = self.slot(seq).map(|s| u32::from(s.attempts)) else {
            return;
        };
        if let Fate::DeadLetter(reason) = policy.on_release(attempts, why) {
            self.dead_letter(seq, &reason, now);
            return;
        }
        self.in_flight.remove(&seq);
        let state = match due {
            Some(due) if due > now => {
                self.delayed.push(Reverse((due, seq)));
                self.delayed_count += 1;
                SlotState::Delayed
            }
            _ => {
                self.ready.insert(seq);
                SlotState::Ready
            }
        };
        if let Some(slot) = self.slot_mut(seq) {
            slot.state = state;
        }
    }

    /// See [`compact_lease_heap`].
    fn compact_leases(&mut self) {
        compact_lease_heap(&mut self.leases, self.in_flight.len(), |seq| {
            self.in_flight.get(&seq).map(|l| l.deadline_ms)
        });
    }

    /// The oldest claimable message, taken out of line.
    fn next_claimable(&mut self) -> Option<Seq> {
        let mut fresh = self.next_fresh.max(self.base);
        while fresh <= self.head
            && !self
                .slot(fresh)
                .is_some_and(|s| s.attempts == 0 && s.state == SlotState::Ready)
        {
            fresh += 1;
        }
        self.next_fresh = fresh;
        match self.ready.first() {
            Some(&returned) if returned < fresh || fresh > self.head => self.ready.pop_first(),
            _ if fresh <= self.head => {
                self.next_fresh = fresh + 1;
                self.fresh -= 1;
                Some(fresh)
            }
            _ => None,
        }
    }

    /// Moves due delayed messages to ready and releases expired leases.
    fn maintain(&mut self, policy: &ClaimPolicy, now: u64) -> usize {
        while let Some(&Reverse((due, seq))) = self.delayed.peek() {
            if due > now {
                break;
            }
            self.delayed.pop();
            if let Some(slot) = self.slot_mut(seq)
                && slot.state == SlotState::Delayed
            {
                slot.state = SlotState::Ready;
                self.delayed_count -= 1;
                self.ready.insert(seq);
            }
        }
        let mut reclaimed = 0;
        while let Some(&Reverse((deadline, seq))) = self.leases.peek() {
            if deadline > now {
                break;
            }
            self.leases.pop();
            // Heap entries go stale when a lease is settled or extended.
            if self
                .in_flight
                .get(&seq)
                .is_some_and(|l| l.deadline_ms == deadline)
            {
                self.release(policy, seq, None, Release::LeaseExpired, now);
                reclaimed += 1;
            }
        }
        reclaimed
    }

    /// The live claim on `id` if `claimer` holds it.
    fn live_claim(&self, claimer: &str, id: &str, now: u64) -> Option<Seq> {
        let seq = self.seq_of(id)?;
        let lease = self.in_flight.get(&seq)?;
        ClaimPolicy::may_settle(&lease.claimer, lease.deadline_ms, claimer, now).then_some(seq)
    }
}

/// Settled and extended claims leave their lease-heap entries behind until their
/// deadline; once such entries dominate the heap, drop them, so memory follows what is in
/// flight (`live` leases, each with its current deadline from `deadline_of`), not
/// throughput × lease (amortised O(1) per settle).
fn compact_lease_heap(
    leases: &mut BinaryHeap<Reverse<(u64, Seq)>>,
    live: usize,
    deadline_of: impl Fn(Seq) -> Option<u64>,
) {
    let bound = 1024 + 2 * live;
    if leases.len() <= bound {
        return;
    }
    // In place: a heap rebuilt from nothing grows back through large reallocations (and
    // glibc then consolidates its free lists): 8 % of the instructions of a drain in
    // `sssn-bench workqueue`.
    leases.retain(|&Reverse((deadline, seq))| deadline_of(seq) == Some(deadline));
    if leases.capacity() > 2 * bound {
        leases.shrink_to(bound);
    }
}

impl MemoryChannel {
    /// Appends `message` under the lock, unless its id is stored already (then its stored
    /// entry is the answer).
    fn append_locked(&self, st: &mut State, message: ChannelMessage, now: u64) -> Entry {
        // One hash of the id for the duplicate check and the index insert.
        let id_hash = st.ids.hash(&message.id);
        let (slots, base) = (&st.slots, st.base);
        if let Some(seq) = st
            .ids
            .get_hashed(id_hash, &message.id, |s| slot_id(slots, base, s))
            && let Some(slot) = st.slot(seq)
        {
            return Entry {
                seq,
                message: slot.message.clone(),
            };
        }
        let entry = st.push_hashed(message, id_hash, now);
        // Sent under the lock so the feed order is the sequence order.
        let _ = self.feed.send(entry.clone());
        entry
    }

    /// The claim policy; only called on channels opened with claims (their claim queue).
    fn policy(&self) -> ClaimPolicy {
        ClaimPolicy {
            lease: Duration::from_millis(self.lease_ms.load(Ordering::Relaxed)),
            ..self.policy.unwrap_or_default()
        }
    }
}

#[async_trait]
impl Log for MemoryChannel {
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        let now = now_millis();
        let mut st = self.lock();
        Ok(messages
            .into_iter()
            .map(|message| self.append_locked(&mut st, message, now))
            .collect())
    }

    async fn append_one(&self, message: ChannelMessage) -> Result<Entry> {
        let now = now_millis();
        Ok(self.append_locked(&mut self.lock(), message, now))
    }

    fn append_one_now(
        &self,
        message: ChannelMessage,
    ) -> std::result::Result<Result<Entry>, ChannelMessage> {
        let now = now_millis();
        Ok(Ok(self.append_locked(&mut self.lock(), message, now)))
    }

    async fn replace(&self, message: ChannelMessage, _ttl: Option<Duration>) -> Result<Entry> {
        // Under one lock: nobody sees the id missing. Expiry is the channel's purge.
        let now = now_millis();
        let mut st = self.lock();
        if let Some(seq) = st.seq_of(&message.id) {
            st.take(seq);
        }
        let entry = st.push(message, now);
        let _ = self.feed.send(entry.clone());
        Ok(entry)
    }

    async fn remove_seqs(&self, seqs: &[Seq]) -> Result<usize> {
        let mut st = self.lock();
        Ok(seqs.iter().filter(|&&seq| st.take(seq).is_some()).count())
    }

    async fn read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let mut st = self.lock();
        let start = match from {
            ReadFrom::Cursor => st.cursors.get(reader).copied().unwrap_or(0),
            ReadFrom::AfterSeq(seq) => seq,
            ReadFrom::AfterId(id) => st.seq_of(&id).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("'after' names message '{id}', which is not in the channel"),
                )
            })?,
        };
        let mut out = Vec::new();
        let mut cursor = start;
        if limit > 0 {
            let mut seq = start.max(st.base.saturating_sub(1)) + 1;
            while seq <= st.head && out.len() < limit {
                if let Some(slot) = st.slot(seq)
                    && filter.matches(&slot.message)
                {
                    out.push(Entry {
                        seq,
                        message: slot.message.clone(),
                    });
                }
                cursor = seq;
                seq += 1;
            }
        }
        match st.cursors.get_mut(reader) {
            Some(c) => *c = cursor,
            None => {
                st.cursors.insert(reader.to_owned(), cursor);
            }
        }
        Ok(out)
    }

    async fn range(&self, after: Seq, limit: usize) -> Result<Vec<Entry>> {
        let st = self.lock();
        let mut out = Vec::new();
        let mut seq = after.max(st.base.saturating_sub(1)) + 1;
        while seq <= st.head && out.len() < limit {
            if let Some(slot) = st.slot(seq) {
                out.push(Entry {
                    seq,
                    message: slot.message.clone(),
                });
            }
            seq += 1;
        }
        Ok(out)
    }

    async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        let mut st = self.lock();
        let mut removed = 0;
        if let Some(before) = before {
            let before_ms = (before * 1000.0) as u64;
            while let Some(seq) = st.first_live() {
                if st
                    .slot(seq)
                    .is_some_and(|s| u64::from(s.stored_at) * 1000 < before_ms)
                {
                    st.take(seq);
                    removed += 1;
                } else {
                    break;
                }
            }
        }
        if let Some(max) = max_count {
            while st.live > max {
                let Some(seq) = st.first_live() else { break };
                st.take(seq);
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn remove(&self, ids: &[&str]) -> Result<usize> {
        let mut st = self.lock();
        let mut removed = 0;
        for &id in ids {
            if let Some(seq) = st.seq_of(id)
                && st.take(seq).is_some()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn clear(&self) -> Result<usize> {
        let mut st = self.lock();
        let removed = st.live;
        st.base = st.head + 1;
        st.slots.clear();
        st.live = 0;
        st.ids.clear();
        st.ready.clear();
        st.next_fresh = st.base;
        st.fresh = 0;
        st.delayed.clear();
        st.delayed_count = 0;
        st.in_flight.clear();
        st.leases.clear();
        st.marks.clear();
        Ok(removed)
    }

    async fn stats(&self) -> Result<LogStats> {
        let st = self.lock();
        let mut cursors: Vec<(String, Seq)> =
            st.cursors.iter().map(|(r, s)| (r.clone(), *s)).collect();
        cursors.sort();
        Ok(LogStats {
            stored: st.live as u64,
            oldest: st
                .first_live()
                .and_then(|s| st.slot(s))
                .map(|s| s.message.timestamp),
            head_seq: st.head,
            cursors,
        })
    }

    fn feed(&self) -> broadcast::Receiver<Entry> {
        self.feed.subscribe()
    }

    fn head(&self) -> Seq {
        self.lock().head
    }

    async fn get(&self, id: &str) -> Result<Option<Entry>> {
        let st = self.lock();
        Ok(st.seq_of(id).and_then(|seq| {
            st.slot(seq).map(|s| Entry {
                seq,
                message: s.message.clone(),
            })
        }))
    }

    async fn arrived_between(
        &self,
        start: f64,
        end: f64,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        let st = self.lock();
        // Arrival is kept in whole milliseconds: [start, end] holds the milliseconds from
        // ceil(start) to floor(end).
        let from = st.first_arrived_at_or_after((start * 1000.0).ceil().max(0.0) as u64);
        let until = st
            .first_arrived_at_or_after(((end * 1000.0).floor().max(0.0) as u64).saturating_add(1));
        let mut out = Vec::new();
        let mut seq = from.max(st.base);
        while seq < until && out.len() < limit {
            if let Some(slot) = st.slot(seq)
                && filter.matches(&slot.message)
            {
                out.push(Entry {
                    seq,
                    message: slot.message.clone(),
                });
            }
            seq += 1;
        }
        Ok(out)
    }

    async fn latest(&self, limit: usize, filter: &ReadFilter) -> Result<Vec<Entry>> {
        let st = self.lock();
        let mut out = Vec::new();
        let mut seq = st.head;
        while seq >= st.base && seq > 0 && out.len() < limit {
            if let Some(slot) = st.slot(seq)
                && filter.matches(&slot.message)
            {
                out.push(Entry {
                    seq,
                    message: slot.message.clone(),
                });
            }
            seq -= 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
