//! Fresh message ids: uuid v7 text, strictly increasing within a process, made with one
//! atomic step (the `uuid` crate's generator takes a shared mutex, reads the system clock
//! and formats through `fmt`: about 560 instructions of every write).

use std::sync::atomic::{AtomicU64, Ordering};

/// The last id's time and counter, `unix_ms << 12 | counter`: the 48-bit timestamp and
/// the 12 bits after the version (`rand_a`) of a uuid v7, used as a counter (RFC 9562,
/// method 1) so that ids made in the same millisecond still increase.
static LAST: AtomicU64 = AtomicU64::new(0);

const COUNTER_BITS: u32 = 12;
const MS_MASK: u64 = (1 << 48) - 1;

/// A fresh message id: uuid v7 text, greater than every id this process made before
/// (time-ordered; an id made when more than 4,096 came in one millisecond borrows the
/// next millisecond's time).
pub fn new_message_id() -> String {
    new_message_id_at(crate::clock::now_millis())
}

/// [`new_message_id`] made at `unix_ms` (a caller that read the clock already).
pub(crate) fn new_message_id_at(unix_ms: u64) -> String {
    let candidate = (unix_ms & MS_MASK) << COUNTER_BITS;
    let next = |last: u64| candidate.max(last + 1);
    // The closure never refuses: `fetch_update` returns the previous value.
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or_else(|last| last);
    let stamp = next(previous);
    let ms = u128::from(stamp >> COUNTER_BITS);
    let counter = u128::from(stamp & ((1 << COUNTER_BITS) - 1));
    // 62 random bits after the variant: ids from different processes do not meet.
    let random = u128::from(rand::random::<u64>() >> 2);
    let bits = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | random;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::from_u128(bits)
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::new_message_id;

    #[test]
    fn ids_are_uuid_v7_and_strictly_increasing_across_threads() {
        let made: Vec<Vec<String>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..5_000).map(|_| new_message_id()).collect()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for ids in &made {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "increasing in a thread"
            );
        }
        let mut all: Vec<&String> = made.iter().flatten().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20_000, "no id made twice");
        let id = uuid::Uuid::parse_str(all[0]).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let ms = id.get_timestamp().unwrap().to_unix();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(now.as_secs().abs_diff(ms.0) < 60, "the time is now's");
    }
}
