//! Unit tests of the in-memory store's internals.

use super::*;
use crate::message::Content;
use crate::store::Settle;

#[test]
fn a_slot_is_16_bytes() {
    assert_eq!(std::mem::size_of::<Option<Slot>>(), 16);
}

#[tokio::test(start_paused = true)]
async fn arrival_marks_follow_what_is_stored() {
    let ch = MemoryChannel::new(&ChannelSpec::log("p"));
    for i in 0..200 {
        ch.append(vec![ChannelMessage::new("p", Content::data(&i).unwrap())])
            .await
            .unwrap();
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        ch.lock().marks.len(),
        200,
        "one mark per distinct millisecond"
    );
    assert_eq!(ch.evict(None, Some(10)).await.unwrap(), 190);
    assert_eq!(
        ch.lock().marks.len(),
        10,
        "marks before the oldest message go"
    );
    let newest = ch.latest(1, &ReadFilter::default()).await.unwrap();
    let all = ch
        .arrived_between(0.0, 1e12, 100, &ReadFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[9], newest[0]);
    ch.clear().await.unwrap();
    assert!(ch.lock().marks.is_empty());
}

#[tokio::test]
async fn settled_claims_do_not_pile_up_in_the_lease_heap() {
    let ch = MemoryChannel::new(&ChannelSpec::with_claims("q", ClaimPolicy::default()));
    for round in 0..50 {
        let batch = (0..100)
            .map(|i| ChannelMessage::new("p", Content::data(&(round * 100 + i)).unwrap()))
            .collect();
        ch.append(batch).await.unwrap();
        let claimed = ch.claim("w", 100).await.unwrap();
        let ids: Vec<&str> = claimed.iter().map(|c| c.message.id.as_str()).collect();
        let settled = ch.settle("w", &ids, Settle::Ack).await.unwrap();
        assert_eq!(settled.done.len(), 100);
    }
    let st = ch.lock();
    assert_eq!(st.live, 0);
    assert!(
        st.leases.len() <= 1024 + 100,
        "lease heap holds {} entries",
        st.leases.len()
    );
    assert!(st.leases.capacity() <= 2 * (1024 + 2 * 100));
}

#[tokio::test]
async fn the_lease_heap_gives_memory_back_after_a_burst_of_claims() {
    let ch = MemoryChannel::new(&ChannelSpec::with_claims("q", ClaimPolicy::default()));
    let batch = (0..5_000)
        .map(|i| ChannelMessage::new("p", Content::data(&i).unwrap()))
        .collect();
    ch.append(batch).await.unwrap();
    let claimed = ch.claim("w", 5_000).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.message.id.as_str()).collect();
    assert_eq!(ch.lock().leases.len(), 5_000);
    assert_eq!(
        ch.settle("w", &ids, Settle::Ack).await.unwrap().done.len(),
        5_000
    );
    let st = ch.lock();
    assert!(st.leases.is_empty());
    assert!(
        st.leases.capacity() <= 2 * 1024,
        "capacity {}",
        st.leases.capacity()
    );
}
