//! v1 parity points that are not store behaviours: the claim timeout changed on a running
//! memory channel, two subscriptions under one id, a network's public channels.

use std::time::Duration;

use sssn::channel::{BroadcastChannel, PassthroughChannel, WorkQueueChannel};
use sssn::conformance::MemoryHarness;
use sssn::{ErrorKind, Network};

#[tokio::test(start_paused = true)]
async fn claim_timeout_changes_while_running_on_memory() {
    sssn::conformance::claim_timeout_changes_while_running(&MemoryHarness::default()).await;
}

#[tokio::test(start_paused = true)]
async fn a_claim_timeout_change_needs_admin_and_a_started_channel() {
    let acl = std::sync::Arc::new(sssn::security::AclSecurity::default());
    acl.grant("worker", sssn::security::Role::Write);
    let q = WorkQueueChannel::new("q").security(acl).build();
    let err = q
        .set_claim_timeout("boss", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let open = WorkQueueChannel::new("q2").build();
    let err = open
        .set_claim_timeout("boss", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown, "not started");
    assert_eq!(
        q.set_retention("worker", None, Some(1)).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

/// v1 replaced the first subscription of an id with the second; sssn keeps both, because
/// one identity often runs several consumers at once (two dashboards on one token, an
/// event stream whose dropped connection is not noticed yet when the client reconnects),
/// and replacing would silently end one of them. `unsubscribe` ends them all.
#[tokio::test]
async fn two_subscriptions_under_one_id_both_deliver_and_unsubscribe_ends_both() {
    let ch = BroadcastChannel::new("b").build();
    ch.start().await.unwrap();
    let mut first = ch.subscribe("dash").await.unwrap();
    let mut second = ch.subscribe("dash").await.unwrap();
    let id = ch.write("w", &1).await.unwrap();
    assert_eq!(first.recv().await.unwrap().message.id, id);
    assert_eq!(second.recv().await.unwrap().message.id, id);
    ch.unsubscribe("dash");
    ch.write("w", &2).await.unwrap();
    assert!(first.recv().await.is_err(), "ended");
    assert!(second.recv().await.is_err(), "ended");
}

#[tokio::test]
async fn public_channels_are_the_owned_public_ones() {
    let mut net = Network::new("n");
    net.add_channel(PassthroughChannel::new("private").build())
        .unwrap();
    net.add_channel(BroadcastChannel::new("out").public().build())
        .unwrap();
    let mut sub = net.subnetwork("sub", &[] as &[&str]).unwrap();
    sub.add_channel(BroadcastChannel::new("inner").public().build())
        .unwrap();
    net.add_network(sub).unwrap();
    let ids: Vec<String> = net
        .public_channels()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    assert_eq!(ids, ["out"]);
    let running = net.start().await.unwrap();
    let mut ids: Vec<String> = running
        .public_channels()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["inner", "out"],
        "the running tree's, sub-networks included"
    );
    running.stop().await.unwrap();
}

/// A store that counts the scans of its logs (`range`), to show which queries walk the
/// registry and which use an index.
mod counting {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use sssn::store::{
        ChannelSpec, ChannelStorage, Entry, Log, LogStats, MemoryStore, ReadFilter, ReadFrom, Seq,
        Store,
    };
    use sssn::{ChannelMessage, Result};
    use tokio::sync::broadcast;

    #[derive(Default)]
    pub(crate) struct CountingStore {
        inner: MemoryStore,
        pub(crate) scans: Arc<AtomicUsize>,
    }

    struct CountingLog {
        inner: Arc<dyn Log>,
        scans: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Store for CountingStore {
        async fn open_channel(&self, spec: &ChannelSpec) -> Result<ChannelStorage> {
            let s = self.inner.open_channel(spec).await?;
            let log = Arc::new(CountingLog {
                inner: s.log,
                scans: self.scans.clone(),
            });
            Ok(ChannelStorage {
                log,
                claims: s.claims,
            })
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    #[async_trait]
    impl Log for CountingLog {
        async fn append(&self, m: Vec<ChannelMessage>) -> Result<Vec<Entry>> {
            self.inner.append(m).await
        }
        async fn read(
            &self,
            r: &str,
            from: ReadFrom,
            limit: usize,
            f: &ReadFilter,
        ) -> Result<Vec<Entry>> {
            self.inner.read(r, from, limit, f).await
        }
        async fn range(&self, after: Seq, limit: usize) -> Result<Vec<Entry>> {
            self.scans.fetch_add(1, Ordering::Relaxed);
            self.inner.range(after, limit).await
        }
        async fn evict(&self, before: Option<f64>, max: Option<usize>) -> Result<usize> {
            self.inner.evict(before, max).await
        }
        async fn remove(&self, ids: &[&str]) -> Result<usize> {
            self.inner.remove(ids).await
        }
        async fn replace(
            &self,
            m: ChannelMessage,
            ttl: Option<std::time::Duration>,
        ) -> Result<Entry> {
            self.inner.replace(m, ttl).await
        }
        async fn remove_seqs(&self, seqs: &[Seq]) -> Result<usize> {
            self.inner.remove_seqs(seqs).await
        }
        async fn clear(&self) -> Result<usize> {
            self.inner.clear().await
        }
        async fn stats(&self) -> Result<LogStats> {
            self.inner.stats().await
        }
        fn feed(&self) -> broadcast::Receiver<Entry> {
            self.inner.feed()
        }
        fn head(&self) -> Seq {
            self.inner.head()
        }
        async fn get(&self, id: &str) -> Result<Option<Entry>> {
            self.inner.get(id).await
        }
    }
}

#[tokio::test(start_paused = true)]
async fn discovery_queries_refreshes_and_purges_use_the_index_not_a_scan() {
    use std::sync::atomic::Ordering;

    use sssn::channel::DiscoveryChannel;
    use sssn::{ServiceDescriptor, ServiceMethod};

    let store = std::sync::Arc::new(counting::CountingStore::default());
    let scans = store.scans.clone();
    let reg = DiscoveryChannel::new("_d").store(store).build();
    reg.start().await.unwrap();
    for i in 0..50 {
        let ch = BroadcastChannel::new(format!("c{i}")).public().build();
        reg.register_channel("reg", &ch.info(), None).await.unwrap();
    }
    let mut d = ServiceDescriptor::new("sys", "Sys");
    d.services
        .push(ServiceMethod::new("resize", "resizes images"));
    reg.register_system("reg", &d, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let before = scans.load(Ordering::Relaxed);
    assert_eq!(reg.get_channel("q", "c7").await.unwrap().unwrap().id, "c7");
    assert!(reg.get_channel("q", "nope").await.unwrap().is_none());
    assert_eq!(
        reg.get_system("q", "sys").await.unwrap().unwrap().system_id,
        "sys"
    );
    assert!(
        reg.get_system("q", "c7").await.unwrap().is_none(),
        "a channel is not a system"
    );
    assert_eq!(
        scans.load(Ordering::Relaxed),
        before,
        "no lookup by id scanned"
    );
    assert_eq!(reg.find_channels("q", None).await.unwrap().len(), 50);
    assert_eq!(
        reg.find_systems("q", Some("resize")).await.unwrap().len(),
        1
    );
    assert!(
        reg.find_systems("q", Some("other"))
            .await
            .unwrap()
            .is_empty()
    );
    reg.register_channel("reg", &BroadcastChannel::new("c7").build().info(), None)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(
        reg.get_system("q", "sys").await.unwrap().is_none(),
        "expired"
    );
    reg.maintain().await.unwrap();
    assert_eq!(
        reg.stats().await.unwrap().stored,
        50,
        "the purge removed the expired record"
    );
    assert_eq!(
        scans.load(Ordering::Relaxed),
        before,
        "no query, refresh or purge scanned the channel"
    );
}
