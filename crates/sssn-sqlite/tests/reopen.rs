//! Closing the store and opening the file again restores every channel exactly: readers
//! resume from their cursors, a claim whose lease ran out is claimable (with its attempt
//! count), a delayed nack comes due at its time, dead letters and counters are kept.

use std::sync::Arc;
use std::time::Duration;

use sssn::ChannelKind;
use sssn::message::ChannelMessage;
use sssn::store::{ChannelSpec, ChannelStore, ReadFrom, Store};
use sssn_sqlite::SqliteStore;

fn spec() -> ChannelSpec {
    let mut spec = ChannelSpec::new("orders", ChannelKind::Passthrough);
    spec.claim_timeout = Duration::from_millis(400);
    spec.max_deliveries = Some(5);
    spec
}

async fn open(path: &std::path::Path) -> (SqliteStore, Arc<dyn ChannelStore>) {
    let store = SqliteStore::open(path).unwrap();
    let ch = store.open_channel(&spec()).await.unwrap();
    (store, ch)
}

fn ids(entries: &[sssn::store::Entry]) -> Vec<String> {
    entries.iter().map(|e| e.message.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_file_resumes_every_reader_claim_and_delay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    let written: Vec<String>;
    let before;
    {
        let (_store, ch) = open(&path).await;
        let msgs: Vec<ChannelMessage> = (0..6)
            .map(|i| ChannelMessage::with_data("shop", &serde_json::json!({"order": i})).unwrap())
            .collect();
        written = ids(&ch.append(msgs).await.unwrap());
        assert_eq!(
            ids(&ch
                .read("audit", ReadFrom::Cursor, 2, &Default::default())
                .await
                .unwrap()),
            written[..2]
        );
        let claimed = ch.claim("w1", 4).await.unwrap();
        assert_eq!(claimed.len(), 4);
        // #0 acked, #1 rejected, #2 nacked for a while, #3 held by w1 when we "crash".
        ch.ack("w1", &written[..1]).await.unwrap();
        ch.reject("w1", &written[1..2], "bad address")
            .await
            .unwrap();
        ch.nack("w1", &written[2..3], Some(Duration::from_millis(1500)))
            .await
            .unwrap();
        before = ch.stats().await.unwrap();
    }

    let (_store, ch) = open(&path).await;
    assert_eq!(ch.head(), 6);
    let after = ch.stats().await.unwrap();
    assert_eq!(after.stored, before.stored);
    assert_eq!(after.acknowledged, 1);
    assert_eq!(after.dead_lettered, 1);
    assert_eq!(after.cursors, before.cursors);
    // The reader goes on where it stopped.
    assert_eq!(
        ids(&ch
            .read("audit", ReadFrom::Cursor, 10, &Default::default())
            .await
            .unwrap()),
        written[2..]
    );
    let dead = ch.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].message.id, written[1]);
    assert_eq!(dead[0].reason, "bad address");
    // #3 is still held by w1 (lease 400 ms), #2 is delayed: only #4 and #5 are free.
    let free = ch.claim("w2", 10).await.unwrap();
    let free_ids: Vec<_> = free.iter().map(|c| c.message.id.clone()).collect();
    assert_eq!(free_ids, written[4..]);
    ch.ack("w2", &free_ids).await.unwrap();
    // After the lease, #3 comes back as its second attempt; #2 is not due yet.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let back = ch.claim("w2", 10).await.unwrap();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].message.id, written[3]);
    assert_eq!(back[0].attempt, 2);
    assert_eq!(
        ch.ack("w1", &written[3..4]).await.unwrap().stale,
        written[3..4],
        "the old holder's claim stayed expired across the restart"
    );
    assert_eq!(ch.ack("w2", &written[3..4]).await.unwrap().done.len(), 1);
    // The delayed nack comes due 1.5 s after it was made.
    let mut due = Vec::new();
    for _ in 0..100 {
        due = ch.claim("w3", 10).await.unwrap();
        if !due.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].message.id, written[2]);
    assert_eq!(due[0].attempt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_registrations_survive_a_restart_until_they_expire() {
    use sssn::channel::DiscoveryChannel;
    use sssn::descriptor::ServiceDescriptor;
    use sssn::{ChannelInfo, Visibility};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let info = ChannelInfo {
        id: "orders".into(),
        name: "Orders".into(),
        description: String::new(),
        visibility: Visibility::Public,
        period: 60.0,
        kind: None,
    };
    {
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let registry = DiscoveryChannel::new("registry").store(store).build();
        registry.start().await.unwrap();
        let d = registry.discovery().unwrap();
        d.register_channel(&info, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        d.register_system(
            &ServiceDescriptor::new("resizer", "Resizer"),
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        registry.stop().await;
    }
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let registry = DiscoveryChannel::new("registry").store(store).build();
    registry.start().await.unwrap();
    let d = registry.discovery().unwrap();
    assert_eq!(d.get_channel("orders").await.unwrap(), Some(info));
    assert_eq!(
        d.get_system("resizer").await.unwrap().unwrap().system_name,
        "Resizer"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        d.get_system("resizer").await.unwrap().is_none(),
        "its expiry time was kept"
    );
}
