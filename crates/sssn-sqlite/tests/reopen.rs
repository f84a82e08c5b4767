//! Closing the store and opening the file again restores every channel exactly: readers
//! resume from their cursors, a claim whose lease ran out is claimable (with its attempt
//! count), a delayed nack comes due at its time, dead letters and counters are kept.

use std::sync::Arc;
use std::time::Duration;

use sssn::message::ChannelMessage;
use sssn::policy::ClaimPolicy;
use sssn::store::{
    ChannelSpec, ChannelStorage, ClaimStats, Claimed, DeadLetter, Entry, LogStats, ReadFilter,
    ReadFrom, Settle, Settled, Store,
};
use sssn::{ErrorKind, Result};
use sssn_sqlite::SqliteStore;

/// Long enough that a claim outlives a close and reopen, or the next two commits, on a
/// loaded machine (an fsync per commit); short enough to wait out in a test.
const LEASE: Duration = Duration::from_millis(1500);

/// How long #2 of the first test is held back by its nack: it must still be waiting
/// when the lease of #3 has run out.
const NACK_DELAY: Duration = Duration::from_millis(4000);

fn spec() -> ChannelSpec {
    ChannelSpec::with_claims(
        "orders",
        ClaimPolicy {
            lease: LEASE,
            max_deliveries: Some(5),
        },
    )
}

async fn open(path: &std::path::Path) -> (SqliteStore, Chan) {
    let store = SqliteStore::open(path).unwrap();
    let ch = store.open_channel(&spec()).await.unwrap();
    (store, Chan(ch))
}

/// A passthrough channel's storage, both halves, as this test drives it.
struct Chan(ChannelStorage);

/// What `stats` compares across the restart: the log's and the claims' snapshots.
#[derive(Debug)]
struct Stats {
    stored: u64,
    acknowledged: u64,
    dead_lettered: u64,
    cursors: Vec<(String, u64)>,
}

impl Chan {
    fn queue(&self) -> &Arc<dyn sssn::store::ClaimQueue> {
        self.0
            .claims
            .as_ref()
            .expect("a passthrough channel has claims")
    }
    async fn append(&self, messages: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
        self.0.log.append(messages).await
    }
    async fn read(
        &self,
        reader: &str,
        from: ReadFrom,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<Vec<Entry>> {
        self.0.log.read(reader, from, limit, filter).await
    }
    fn head(&self) -> u64 {
        self.0.log.head()
    }
    async fn claim(&self, claimer: &str, limit: usize) -> Result<Vec<Claimed>> {
        self.queue().claim(claimer, limit).await
    }
    async fn settle(&self, claimer: &str, ids: &[String], how: Settle) -> Result<Settled> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.queue().settle(claimer, &ids, how).await
    }
    async fn ack(&self, claimer: &str, ids: &[String]) -> Result<Settled> {
        self.settle(claimer, ids, Settle::Ack).await
    }
    async fn nack(
        &self,
        claimer: &str,
        ids: &[String],
        delay: Option<Duration>,
    ) -> Result<Settled> {
        self.settle(claimer, ids, Settle::Nack { delay }).await
    }
    async fn reject(&self, claimer: &str, ids: &[String], reason: &str) -> Result<Settled> {
        let reason = reason.to_owned();
        self.settle(claimer, ids, Settle::Reject { reason }).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.queue().dead_letters(limit).await
    }
    async fn stats(&self) -> Result<Stats> {
        let (log, claims): (LogStats, ClaimStats) =
            (self.0.log.stats().await?, self.queue().stats().await?);
        if log.head_seq != self.head() {
            return Err(sssn::Error::new(ErrorKind::Internal, "head disagrees"));
        }
        Ok(Stats {
            stored: log.stored,
            acknowledged: claims.acknowledged,
            dead_lettered: claims.dead_lettered,
            cursors: log.cursors,
        })
    }
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
        assert!(ch.ack("w1", &written[..1]).await.unwrap().all_done());
        assert!(
            ch.reject("w1", &written[1..2], "bad address")
                .await
                .unwrap()
                .all_done()
        );
        assert!(
            ch.nack("w1", &written[2..3], Some(NACK_DELAY))
                .await
                .unwrap()
                .all_done()
        );
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
    // #3 is still held by w1 (the lease), #2 is delayed: only #4 and #5 are free.
    let free = ch.claim("w2", 10).await.unwrap();
    let free_ids: Vec<_> = free.iter().map(|c| c.message.id.clone()).collect();
    assert_eq!(free_ids, written[4..]);
    assert!(ch.ack("w2", &free_ids).await.unwrap().all_done());
    // After the lease, #3 comes back as its second attempt; #2 is not due yet.
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
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
    // The delayed nack comes due `NACK_DELAY` after it was made.
    let mut due = Vec::new();
    for _ in 0..200 {
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
        let d = &registry;
        d.register_channel("reg", &info, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        d.register_system(
            "reg",
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
    let d = &registry;
    assert_eq!(d.get_channel("q", "orders").await.unwrap(), Some(info));
    assert_eq!(
        d.get_system("q", "resizer")
            .await
            .unwrap()
            .unwrap()
            .system_name,
        "Resizer"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        d.get_system("q", "resizer").await.unwrap().is_none(),
        "its expiry time was kept"
    );
}

/// Claims per recipient (a mailbox) are in the file: after the store is closed and opened
/// again, each recipient's inbox is as it was — what it acknowledged stays done, a live
/// claim is still its holder's to settle, a released one comes back with its attempts.
#[tokio::test]
async fn mailbox_inboxes_survive_a_restart() {
    use sssn::channel::MailboxChannel;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    let mailbox = |store: SqliteStore| {
        MailboxChannel::new("mail")
            .claim_timeout(Duration::from_secs(60))
            .store(store)
            .build()
    };
    let (all, mine) = {
        let ch = mailbox(SqliteStore::open(&path).unwrap());
        ch.start().await.unwrap();
        let all = ch.write("w", &"to everyone").await.unwrap();
        let to_alice = ChannelMessage::with_data("w", &"to alice")
            .unwrap()
            .recipient("alice");
        let mine = ch.write_message("w", to_alice).await.unwrap();
        assert_eq!(ch.claim("alice", 10).await.unwrap().len(), 2);
        assert!(ch.ack("alice", &mine).await.unwrap().all_done());
        assert_eq!(ch.claim("bob", 10).await.unwrap()[0].message.id, all);
        assert!(ch.nack("bob", &all).await.unwrap().all_done());
        ch.stop().await;
        (all, mine)
    };
    let ch = mailbox(SqliteStore::open(&path).unwrap());
    ch.start().await.unwrap();
    assert!(
        ch.claim("alice", 10).await.unwrap().is_empty(),
        "alice's claim on it still holds"
    );
    assert_eq!(
        ch.ack("alice", &[&all, &mine]).await.unwrap().stale,
        vec![mine.clone()],
        "her live claim is still hers to settle; her own message was consumed"
    );
    let bob = ch.claim("bob", 10).await.unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!(
        (bob[0].message.id.as_str(), bob[0].attempt),
        (all.as_str(), 2)
    );
    let s = ch.stats().await.unwrap();
    assert_eq!(
        (s.stored, s.acknowledged, s.in_flight, s.backlog),
        (1, 2, 1, 0)
    );
    ch.stop().await;
}
