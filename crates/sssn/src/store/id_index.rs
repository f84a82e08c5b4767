//! Message id → sequence index that stores an 8-byte hash per message instead of a copy of
//! the id (ids are ~36-byte strings; the memory store keeps one entry per stored message).
//!
//! The id itself is still checked on every lookup against the stored message, so a hash
//! collision never returns the wrong message: colliding ids go to a small spill map keyed
//! by the full id.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::Seq;

#[derive(Default)]
pub(crate) struct IdIndex {
    /// Seeded per index, so nobody can choose ids that collide (or crowd one bucket).
    seed: foldhash::fast::RandomState,
    /// Keyed by a hash already: the map uses it as it is instead of hashing it again.
    by_hash: HashMap<u64, Seq, BuildHasherDefault<AsIs>>,
    spill: HashMap<Box<str>, Seq>,
}

/// A hasher for keys that are hashes already: the key is its own hash.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys come here; fold anything else rather than fail.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl IdIndex {
    /// The hash of `id` in this index: computed once by a caller that looks an id up and
    /// then inserts it (an append), for [`get_hashed`](Self::get_hashed) and
    /// [`insert_hashed`](Self::insert_hashed).
    pub(crate) fn hash(&self, id: &str) -> u64 {
        self.seed.hash_one(id)
    }

    /// The sequence of `id`; `id_at` gives the id stored at a sequence.
    pub(crate) fn get<'a>(&self, id: &str, id_at: impl Fn(Seq) -> Option<&'a str>) -> Option<Seq> {
        self.get_hashed(self.hash(id), id, id_at)
    }

    /// [`get`](Self::get) of an id whose [`hash`](Self::hash) is `h`.
    pub(crate) fn get_hashed<'a>(
        &self,
        h: u64,
        id: &str,
        id_at: impl Fn(Seq) -> Option<&'a str>,
    ) -> Option<Seq> {
        if let Some(&seq) = self.by_hash.get(&h)
            && id_at(seq) == Some(id)
        {
            return Some(seq);
        }
        if self.spill.is_empty() {
            return None;
        }
        self.spill.get(id).copied()
    }

    #[cfg(test)]
    pub(crate) fn insert<'a>(
        &mut self,
        id: &str,
        seq: Seq,
        id_at: impl Fn(Seq) -> Option<&'a str>,
    ) {
        self.insert_hashed(self.hash(id), id, seq, id_at);
    }

    /// [`insert`](Self::insert) of an id whose [`hash`](Self::hash) is `h`.
    pub(crate) fn insert_hashed<'a>(
        &mut self,
        h: u64,
        id: &str,
        seq: Seq,
        id_at: impl Fn(Seq) -> Option<&'a str>,
    ) {
        match self.by_hash.entry(h) {
            Entry::Occupied(other) if id_at(*other.get()).is_some_and(|o| o != id) => {
                self.spill.insert(id.into(), seq);
            }
            Entry::Occupied(mut same) => {
                same.insert(seq);
            }
            Entry::Vacant(free) => {
                free.insert(seq);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &str, seq: Seq) {
        let h = self.hash(id);
        if self.by_hash.get(&h) == Some(&seq) {
            self.by_hash.remove(&h);
        } else {
            self.spill.remove(id);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_hash.clear();
        self.spill.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_spill_and_still_resolve() {
        // Force a collision by pretending two ids share a slot: insert "a" at 1, then make
        // "b" collide by inserting it under a's hash path through the spill map directly.
        let ids = ["a", "b"];
        let id_at = |seq: Seq| ids.get(seq as usize - 1).copied();
        let mut index = IdIndex::default();
        index.insert("a", 1, id_at);
        index.by_hash.insert(index.hash("b"), 1); // simulate b's hash colliding with a's entry
        index.insert("b", 2, id_at);
        assert_eq!(index.get("a", id_at), Some(1));
        assert_eq!(
            index.get("b", id_at),
            Some(2),
            "resolved through the spill map"
        );
        index.remove("b", 2);
        assert_eq!(index.get("b", id_at), None);
        assert_eq!(index.get("missing", id_at), None);
    }
}
