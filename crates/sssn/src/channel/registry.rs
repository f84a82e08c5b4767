//! The discovery channel's index of its registrations: id → newest record, capability →
//! systems, visibility → channels, and an expiry order, so queries cost what they return
//! and a purge what has expired, never a scan of the channel.
//!
//! The store stays the source of truth. The index is loaded from the store at every
//! `start` (a durable store reopened, or one shared with other processes) and then kept
//! by the channel: every register, unregister and purge of this process updates it right
//! after the store did, and the store's feed ([`Log::feed`]) brings appends from
//! elsewhere, so registrations and refreshes written by other processes sharing a durable
//! store (JetStream) show up here within the feed's delay.
//!
//! What it guarantees:
//! * in this process, a query after a register/unregister/purge returned sees its effect,
//!   and a query during a refresh sees the old or the new version, never neither: one
//!   entry is swapped under the write lock;
//! * every record is resolved to its newest version by id (a higher sequence wins), so a
//!   late or repeated feed entry never brings back an older version;
//! * records are live while `expires_at > now`, checked at each query, whoever purges;
//! * the feed carries appends only: a record another process *unregisters* stays in this
//!   index until it expires or this channel starts again. A lagging feed reloads the index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Channel;
use super::discovery::{ChannelRegistration, SystemRegistration};
use crate::descriptor::ServiceDescriptor;
use crate::error::Result;
use crate::message::{ChannelInfo, Visibility};
use crate::store::{Entry, Log, Seq};

/// A stored registration, as decoded from a message's content.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Record {
    Channel(ChannelRegistration),
    System(SystemRegistration),
}

impl Record {
    fn expires_at(&self) -> f64 {
        match self {
            Self::Channel(r) => r.expires_at,
            Self::System(r) => r.expires_at,
        }
    }
}

/// The expiry order's key: whole milliseconds, rounded down (exact order is checked on
/// the record itself).
fn expiry_key(at: f64) -> i64 {
    (at * 1000.0).floor() as i64
}

struct Indexed {
    id: String,
    record: Arc<Record>,
}

#[derive(Default)]
struct Index {
    by_id: HashMap<String, Seq>,
    by_seq: BTreeMap<Seq, Indexed>,
    channels: BTreeSet<Seq>,
    by_visibility: HashMap<Visibility, BTreeSet<Seq>>,
    systems: BTreeSet<Seq>,
    by_capability: HashMap<String, BTreeSet<Seq>>,
    expiry: BTreeSet<(i64, Seq)>,
    /// Newest removed version of each id removed since the load: older feed entries of it
    /// are ignored.
    gone: HashMap<String, Seq>,
    /// Every append at or below this sequence was in the load (feed entries are ignored).
    floor: Seq,
}

impl Index {
    fn insert(&mut self, id: &str, seq: Seq, record: Record) {
        if seq <= self.floor || self.gone.get(id).is_some_and(|&g| g >= seq) {
            return;
        }
        if let Some(&current) = self.by_id.get(id) {
            if current >= seq {
                return;
            }
            self.remove_seq(current);
        }
        match &record {
            Record::Channel(c) => {
                self.channels.insert(seq);
                self.by_visibility
                    .entry(c.info.visibility)
                    .or_default()
                    .insert(seq);
            }
            Record::System(s) => {
                self.systems.insert(seq);
                for service in &s.descriptor.services {
                    self.by_capability
                        .entry(service.name.clone())
                        .or_default()
                        .insert(seq);
                }
            }
        }
        self.expiry.insert((expiry_key(record.expires_at()), seq));
        self.by_id.insert(id.to_owned(), seq);
        self.by_seq.insert(
            seq,
            Indexed {
                id: id.to_owned(),
                record: Arc::new(record),
            },
        );
    }

    /// Drops the version at `seq` from every index; returns its id.
    fn remove_seq(&mut self, seq: Seq) -> Option<String> {
        let Indexed { id, record } = self.by_seq.remove(&seq)?;
        if self.by_id.get(&id) == Some(&seq) {
            self.by_id.remove(&id);
        }
        self.expiry.remove(&(expiry_key(record.expires_at()), seq));
        match &*record {
            Record::Channel(c) => {
                self.channels.remove(&seq);
                remove_from(&mut self.by_visibility, &c.info.visibility, seq);
            }
            Record::System(s) => {
                self.systems.remove(&seq);
                for service in &s.descriptor.services {
                    remove_from(&mut self.by_capability, &service.name, seq);
                }
            }
        }
        Some(id)
    }

    fn mark_gone(&mut self, id: String, seq: Seq) {
        let g = self.gone.entry(id).or_default();
        *g = (*g).max(seq);
    }

    fn live<'a>(
        &'a self,
        seqs: impl Iterator<Item = &'a Seq> + 'a,
        now: f64,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        seqs.filter_map(|seq| self.by_seq.get(seq))
            .map(|i| &*i.record)
            .filter(move |r| r.expires_at() > now)
    }
}

fn remove_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<Seq>>, key: &K, seq: Seq) {
    if let Some(set) = map.get_mut(key) {
        set.remove(&seq);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// The index of one discovery channel (see the module docs).
#[derive(Default)]
pub(crate) struct Registry {
    index: RwLock<Index>,
    /// This process's registers, unregisters and purges, one at a time, so the store and
    /// the index change in the same order.
    pub(crate) writes: tokio::sync::Mutex<()>,
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the index with one built from every message stored in `log`.
    pub(crate) async fn load(&self, log: &dyn Log) -> Result<()> {
        // Appends up to the head read before the scan are all in the scan.
        let floor = log.head();
        let mut fresh = Index::default();
        for entry in log.range(0, usize::MAX).await? {
            if let Ok(record) = entry.message.content.get::<Record>() {
                fresh.insert(&entry.message.id, entry.seq, record);
            }
        }
        fresh.floor = floor;
        *self.write() = fresh;
        Ok(())
    }

    /// Indexes a stored entry if it is a registration (newest version per id wins).
    pub(crate) fn apply(&self, entry: &Entry) {
        if let Ok(record) = entry.message.content.get::<Record>() {
            self.write().insert(&entry.message.id, entry.seq, record);
        }
    }

    /// Forgets record `id` after its removal from the store; versions up to `upto` are
    /// gone (a late feed entry of one is ignored).
    pub(crate) fn forget(&self, id: &str, upto: Seq) {
        let mut index = self.write();
        let upto = index.by_id.get(id).map_or(upto, |&s| s.max(upto));
        if let Some(&seq) = index.by_id.get(id) {
            index.remove_seq(seq);
        }
        index.mark_gone(id.to_owned(), upto);
    }

    /// Forgets the versions at `seqs` after their removal from the store.
    pub(crate) fn forget_seqs(&self, seqs: &[Seq]) {
        let mut index = self.write();
        for &seq in seqs {
            if let Some(id) = index.remove_seq(seq) {
                index.mark_gone(id, seq);
            }
        }
    }

    /// The versions expired at `now` (`expires_at <= now`), oldest expiry first: a walk
    /// of the expiry order that stops at the first live one.
    pub(crate) fn expired(&self, now: f64) -> Vec<Seq> {
        let index = self.read();
        let last = expiry_key(now);
        index
            .expiry
            .iter()
            .take_while(|&&(key, _)| key <= last)
            .filter(|(_, seq)| {
                index
                    .by_seq
                    .get(seq)
                    .is_some_and(|i| i.record.expires_at() <= now)
            })
            .map(|&(_, seq)| seq)
            .collect()
    }

    /// The live record of id `id`.
    pub(crate) fn get(&self, id: &str, now: f64) -> Option<Arc<Record>> {
        let index = self.read();
        let seq = index.by_id.get(id)?;
        let indexed = index.by_seq.get(seq)?;
        (indexed.record.expires_at() > now).then(|| indexed.record.clone())
    }

    /// Live channel registrations in store order, optionally of one visibility.
    pub(crate) fn channels(&self, visibility: Option<Visibility>, now: f64) -> Vec<ChannelInfo> {
        let index = self.read();
        let seqs = match visibility {
            None => Some(&index.channels),
            Some(v) => index.by_visibility.get(&v),
        };
        let Some(seqs) = seqs else {
            return Vec::new();
        };
        index
            .live(seqs.iter(), now)
            .filter_map(|r| match r {
                Record::Channel(c) => Some(c.info.clone()),
                Record::System(_) => None,
            })
            .collect()
    }

    /// Live system registrations in store order, optionally only those exposing a
    /// service named `capability`.
    pub(crate) fn systems(&self, capability: Option<&str>, now: f64) -> Vec<ServiceDescriptor> {
        let index = self.read();
        let seqs = match capability {
            None => Some(&index.systems),
            Some(c) => index.by_capability.get(c),
        };
        let Some(seqs) = seqs else {
            return Vec::new();
        };
        index
            .live(seqs.iter(), now)
            .filter_map(|r| match r {
                Record::System(s) => Some(s.descriptor.clone()),
                Record::Channel(_) => None,
            })
            .collect()
    }
}

impl Channel {
    /// Keeps the registry index in step with the store's feed until `cancel`: appends of
    /// any process are indexed; a lag reloads the index from the store.
    pub(crate) async fn follow_registry(
        self,
        mut feed: tokio::sync::broadcast::Receiver<Entry>,
        cancel: CancellationToken,
    ) {
        let (Some(registry), Ok(log)) = (&self.core.registry, self.core.log()) else {
            return;
        };
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                next = feed.recv() => next,
            };
            match next {
                Ok(entry) => registry.apply(&entry),
                Err(RecvError::Lagged(_)) => {
                    // Under the write lock: a register of this process is not lost in the swap.
                    let _writes = registry.writes.lock().await;
                    if let Err(e) = registry.load(log.as_ref()).await {
                        self.core.error_hook("discovery index", &e);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}
