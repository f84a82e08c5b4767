//! Conformance cases of discovery channels and of what they ask of a store
//! ([`Log::replace`](crate::store::Log::replace),
//! [`Log::remove_seqs`](crate::store::Log::remove_seqs)).

use std::time::Duration;

use super::{Harness, started, uid};
use crate::channel::DiscoveryChannel;
use crate::descriptor::{ServiceDescriptor, ServiceMethod};
use crate::error::ErrorKind;
use crate::message::{ChannelInfo, ChannelMessage, Content, Visibility};
use crate::security::{AclSecurity, Role};
use crate::store::ChannelSpec;
use std::sync::Arc;

fn info(id: &str, v: Visibility) -> ChannelInfo {
    ChannelInfo {
        id: id.into(),
        name: id.to_uppercase(),
        description: String::new(),
        visibility: v,
        period: 60.0,
        kind: None,
    }
}

fn system(id: &str, service: &str) -> ServiceDescriptor {
    let mut desc = ServiceDescriptor::new(id, id.to_uppercase());
    desc.services.push(ServiceMethod::new(service, "d"));
    desc
}

pub async fn discovery_registry(h: &impl Harness) {
    let d = started(h, DiscoveryChannel::new(uid("d"))).await;
    let info = |id: &str, v: Visibility| ChannelInfo {
        id: id.into(),
        name: id.to_uppercase(),
        description: String::new(),
        visibility: v,
        period: 60.0,
        kind: None,
    };
    d.register_channel("reg", &info("pub", Visibility::Public), None)
        .await
        .unwrap();
    d.register_channel("reg", &info("priv", Visibility::Private), None)
        .await
        .unwrap();
    let mut renamed = info("pub", Visibility::Public);
    renamed.name = "Renamed".into();
    d.register_channel("reg", &renamed, None).await.unwrap();
    let public = d
        .find_channels("q", Some(Visibility::Public))
        .await
        .unwrap();
    assert_eq!(public.len(), 1, "re-registering replaces");
    assert_eq!(public[0].name, "Renamed");
    assert_eq!(
        d.get_channel("q", "pub").await.unwrap().unwrap().name,
        "Renamed"
    );
    assert_eq!(d.find_channels("q", None).await.unwrap().len(), 2);

    let mut desc = ServiceDescriptor::new("sys1", "S1");
    desc.services.push(ServiceMethod::new("process_image", "d"));
    d.register_system("reg", &desc, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(
        d.find_systems("q", Some("process_image"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(d.find_systems("q", Some("other")).await.unwrap().is_empty());
    assert_eq!(
        d.get_system("q", "sys1")
            .await
            .unwrap()
            .unwrap()
            .system_name,
        "S1"
    );
    h.advance(Duration::from_millis(1300)).await;
    assert!(
        d.get_system("q", "sys1").await.unwrap().is_none(),
        "expired records vanish from queries"
    );
    d.maintain().await.unwrap();
    assert_eq!(
        d.stats().await.unwrap().stored,
        2,
        "maintenance purged the expired record"
    );
    assert!(d.unregister_channel("reg", "priv").await.unwrap());
    assert_eq!(d.find_channels("q", None).await.unwrap().len(), 1);
}

pub async fn replace_keeps_one_version_per_id(h: &impl Harness) {
    let spec = ChannelSpec {
        expiring: true,
        ..ChannelSpec::log(uid("r"))
    };
    let log = h.store().open_channel(&spec).await.unwrap().log;
    let msg = |id: &str, v: i32| {
        let mut m = ChannelMessage::new("w", Content::data(&v).unwrap());
        m.id = id.into();
        m
    };
    let mut feed = log.feed();
    let a1 = log.replace(msg("a", 1), None).await.unwrap();
    let b = log.append(vec![msg("b", 0)]).await.unwrap().remove(0);
    let a2 = log
        .replace(msg("a", 2), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(
        a2.seq > b.seq && b.seq > a1.seq,
        "a new version gets a new sequence"
    );
    let got = log.get("a").await.unwrap().expect("a is stored");
    assert_eq!(
        (
            got.seq,
            got.message.content.get::<serde_json::Value>().unwrap()
        ),
        (a2.seq, serde_json::json!({"data": 2}))
    );
    let stored: Vec<String> = log
        .range(0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message.id.clone())
        .collect();
    assert_eq!(stored, ["b", "a"], "one version of 'a', in its new place");
    // A feed reading from the store may skip a version replaced before it got there (as
    // it skips any removed message); the new version always arrives, in order.
    let mut fed = Vec::new();
    while fed.last() != Some(&a2.seq) {
        let e = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("the new version reaches the feed")
            .unwrap();
        fed.push(e.seq);
    }
    fed.retain(|&s| s != a1.seq);
    assert_eq!(
        fed,
        [b.seq, a2.seq],
        "a replace reaches the feed like an append"
    );
    assert_eq!(
        log.remove_seqs(&[a1.seq]).await.unwrap(),
        0,
        "the old version is gone; the newer one stays"
    );
    assert!(log.get("a").await.unwrap().is_some());
    assert_eq!(log.remove_seqs(&[b.seq, a2.seq]).await.unwrap(), 2);
    assert!(log.get("a").await.unwrap().is_none());
    assert_eq!(log.stats().await.unwrap().stored, 0);
}

pub async fn discovery_checks_rights_and_life_cycle(h: &impl Harness) {
    let acl = Arc::new(AclSecurity::default());
    acl.grant("reader", Role::Read);
    acl.grant("writer", Role::Write);
    let d = started(h, DiscoveryChannel::new(uid("d")).security(acl)).await;
    let denied = |e: crate::Error| {
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    };
    denied(
        d.register_channel("reader", &info("c", Visibility::Public), None)
            .await
            .unwrap_err(),
    );
    denied(
        d.register_system("nobody", &system("s", "x"), None)
            .await
            .unwrap_err(),
    );
    d.register_channel("writer", &info("c", Visibility::Public), None)
        .await
        .unwrap();
    d.register_system("writer", &system("s", "x"), None)
        .await
        .unwrap();
    denied(d.find_channels("nobody", None).await.unwrap_err());
    denied(d.find_systems("nobody", Some("x")).await.unwrap_err());
    denied(d.get_channel("nobody", "c").await.unwrap_err());
    denied(d.get_system("nobody", "s").await.unwrap_err());
    assert_eq!(d.find_channels("reader", None).await.unwrap().len(), 1);
    assert_eq!(d.find_systems("reader", Some("x")).await.unwrap().len(), 1);
    assert!(d.get_channel("reader", "c").await.unwrap().is_some());
    denied(d.unregister_channel("reader", "c").await.unwrap_err());
    denied(d.unregister_system("reader", "s").await.unwrap_err());
    assert!(
        d.get_system("reader", "s").await.unwrap().is_some(),
        "a refused unregister removed nothing"
    );
    assert!(d.unregister_system("writer", "s").await.unwrap());
    assert!(
        !d.unregister_system("writer", "s").await.unwrap(),
        "nothing left to remove"
    );
    d.stop().await;
    let stopped = d.unregister_channel("writer", "c").await.unwrap_err();
    assert_eq!(stopped.kind(), ErrorKind::ShuttingDown);
    assert_eq!(
        d.register_channel("writer", &info("c", Visibility::Public), None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ShuttingDown
    );
    assert!(
        d.get_channel("reader", "c").await.unwrap().is_some(),
        "queries still answer on a stopped channel, and the refused unregister kept the record"
    );
}

pub async fn discovery_index_follows_other_handles(h: &impl Harness) {
    let id = uid("d");
    let a = started(h, DiscoveryChannel::new(id.clone())).await;
    a.register_channel("w", &info("before", Visibility::Public), None)
        .await
        .unwrap();
    a.register_system("w", &system("s1", "resize"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    // Another handle on the same stored channel (another process, or a restart) loads
    // what is stored, then follows what the first one writes.
    let b = started(h, DiscoveryChannel::new(id)).await;
    assert!(
        b.get_channel("q", "before").await.unwrap().is_some(),
        "loaded at start"
    );
    assert_eq!(b.find_systems("q", Some("resize")).await.unwrap().len(), 1);
    a.register_channel("w", &info("after", Visibility::Private), None)
        .await
        .unwrap();
    let mut renamed = info("before", Visibility::Public);
    renamed.name = "Renamed".into();
    a.register_channel("w", &renamed, None).await.unwrap();
    let mut seen = false;
    for _ in 0..100 {
        let after = b.get_channel("q", "after").await.unwrap();
        let before = b.get_channel("q", "before").await.unwrap();
        if after.is_some() && before.is_some_and(|c| c.name == "Renamed") {
            seen = true;
            break;
        }
        h.advance(Duration::from_millis(50)).await;
    }
    assert!(
        seen,
        "registrations and refreshes of another handle reach this index"
    );
    assert_eq!(
        b.find_channels("q", Some(Visibility::Public))
            .await
            .unwrap(),
        vec![renamed],
        "one version per id, of the right visibility"
    );
    h.advance(Duration::from_millis(1100)).await;
    assert!(
        b.find_systems("q", Some("resize"))
            .await
            .unwrap()
            .is_empty(),
        "expired"
    );
    assert!(b.find_systems("q", None).await.unwrap().is_empty());
    b.maintain().await.unwrap();
    assert!(a.get_system("q", "s1").await.unwrap().is_none());
    a.stop().await;
    b.stop().await;
}

pub async fn discovery_refresh_never_hides_the_record(h: &impl Harness) {
    let d = started(h, DiscoveryChannel::new(uid("d"))).await;
    d.register_channel("w", &info("c", Visibility::Public), None)
        .await
        .unwrap();
    d.register_system("w", &system("s", "resize"), None)
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refresher = {
        let (d, done) = (d.clone(), done.clone());
        tokio::spawn(async move {
            for i in 0..100 {
                let mut c = info("c", Visibility::Public);
                c.name = format!("v{i}");
                d.register_channel("w", &c, None).await.unwrap();
                d.register_system("w", &system("s", "resize"), None)
                    .await
                    .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        })
    };
    let mut queries = 0;
    while !done.load(std::sync::atomic::Ordering::Acquire) || queries == 0 {
        assert!(
            d.get_channel("q", "c").await.unwrap().is_some(),
            "get_channel missed the record"
        );
        assert_eq!(
            d.find_channels("q", Some(Visibility::Public))
                .await
                .unwrap()
                .len(),
            1,
            "find_channels"
        );
        assert_eq!(
            d.find_systems("q", Some("resize")).await.unwrap().len(),
            1,
            "find_systems"
        );
        assert!(
            d.get_system("q", "s").await.unwrap().is_some(),
            "get_system"
        );
        queries += 1;
        tokio::task::yield_now().await;
    }
    refresher.await.unwrap();
    assert_eq!(d.get_channel("q", "c").await.unwrap().unwrap().name, "v99");
    assert_eq!(
        d.stats().await.unwrap().stored,
        2,
        "one stored version per id"
    );
}

pub async fn replace_never_hides_the_id(h: &impl Harness) {
    replace_while_reading(h, false).await;
}

/// [`replace_never_hides_the_id`], and scans ([`Log::range`](crate::store::Log::range))
/// find a version too: what the memory and SQLite stores promise. JetStream does not: a
/// scan's consumer racing the swap can come back with neither version (seen on 2.15.1).
pub async fn replace_never_hides_the_id_from_scans(h: &impl Harness) {
    replace_while_reading(h, true).await;
}

async fn replace_while_reading(h: &impl Harness, scans: bool) {
    let log = h
        .store()
        .open_channel(&ChannelSpec {
            expiring: true,
            ..ChannelSpec::log(uid("r"))
        })
        .await
        .unwrap()
        .log;
    let version = |v: i32| {
        let mut m = ChannelMessage::new("w", Content::data(&v).unwrap());
        m.id = "key".into();
        m
    };
    log.replace(version(0), None).await.unwrap();
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for v in 1..=100 {
                log.replace(version(v), None).await.unwrap();
            }
        })
    };
    // Read the store itself while it replaces: by id, and by a scan (a new handle's load).
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        assert!(
            log.get("key").await.unwrap().is_some(),
            "a lookup by id found nothing"
        );
        if scans {
            let scan = log.range(0, usize::MAX).await.unwrap();
            assert!(
                scan.iter().any(|e| e.message.id == "key"),
                "a scan found no version"
            );
        }
        reads += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let last = log.get("key").await.unwrap().unwrap();
    assert_eq!(
        last.message.content.get::<serde_json::Value>().unwrap(),
        serde_json::json!({"data": 100})
    );
    assert_eq!(log.stats().await.unwrap().stored, 1);
}
