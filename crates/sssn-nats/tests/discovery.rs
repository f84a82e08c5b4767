//! Discovery shared by two processes on one JetStream (two connections), on 2.9 and 2.15:
//! what each process's index sees of the other's registrations, refreshes and removals
//! (see `sssn::channel::registry`'s guarantees).

mod common;

use std::sync::Arc;
use std::time::Duration;

use sssn::channel::{BroadcastChannel, DiscoveryChannel};
use sssn::{ChannelInfo, ServiceDescriptor, ServiceMethod, Visibility};

use common::Release;

/// Polls `check` every 50 ms for up to 5 s.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn channel(id: &str, name: &str) -> ChannelInfo {
    let mut info = BroadcastChannel::new(id).public().build().info();
    info.name = name.into();
    info
}

async fn two_processes_share_one_registry(release: Release) {
    let Some(ts) = common::store_of(release, "two_processes_share_one_registry").await else {
        return;
    };
    let a = DiscoveryChannel::new("registry")
        .store(ts.store.clone())
        .build();
    a.start().await.unwrap();
    a.register_channel("a", &channel("early", "Early"), None)
        .await
        .unwrap();
    let b = DiscoveryChannel::new("registry")
        .store(Arc::new(ts.another().await))
        .build();
    b.start().await.unwrap();
    assert_eq!(
        b.get_channel("b", "early").await.unwrap().unwrap().name,
        "Early",
        "loaded from the stream at start"
    );

    let mut desc = ServiceDescriptor::new("resizer", "Resizer");
    desc.services.push(ServiceMethod::new("resize", "d"));
    a.register_system("a", &desc, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    a.register_channel("a", &channel("early", "Renamed"), None)
        .await
        .unwrap();
    assert!(
        eventually(async || {
            b.find_systems("b", Some("resize")).await.unwrap().len() == 1
                && b.get_channel("b", "early")
                    .await
                    .unwrap()
                    .is_some_and(|c| c.name == "Renamed")
        })
        .await,
        "the other process's registration and refresh reach this index through the feed"
    );
    assert_eq!(
        b.find_channels("b", Some(Visibility::Public))
            .await
            .unwrap()
            .len(),
        1,
        "one version per id"
    );

    // A refresh from B replaces A's version in the stream: A sees B's.
    let mut desc2 = desc.clone();
    desc2.system_name = "Resizer 2".into();
    b.register_system("b", &desc2, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(
        eventually(async || {
            a.get_system("a", "resizer")
                .await
                .unwrap()
                .is_some_and(|s| s.system_name == "Resizer 2")
        })
        .await
    );
    assert_eq!(
        a.stats().await.unwrap().stored,
        2,
        "one stored version per id"
    );

    // An unregistration is not in the feed: the other process sees it when it starts again.
    assert!(a.unregister_system("a", "resizer").await.unwrap());
    assert!(a.get_system("a", "resizer").await.unwrap().is_none());
    b.stop().await;
    b.start().await.unwrap();
    assert!(
        b.get_system("b", "resizer").await.unwrap().is_none(),
        "reloaded at start"
    );
    a.stop().await;
    b.stop().await;
}

on_each_release!(two_processes_share_one_registry);
