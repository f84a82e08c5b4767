//! `Publish`: a network's public channels over HTTP in one call (v1's `publish`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sssn::Result;
use sssn::channel::{BroadcastChannel, ChannelState, WorkQueueChannel};
use sssn::network::Network;
use sssn::system::{System, SystemContext, SystemSpec};
use sssn_http::Publish;

/// Writes one refined record per step, and counts them.
#[derive(Default)]
struct Refiner {
    written: u32,
}

#[async_trait]
impl System for Refiner {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        self.written += 1;
        ctx.broadcast("refined-records")?
            .write(&json!({"value": self.written}))
            .await
            .map(drop)
    }
}

fn network() -> Network {
    let mut net = Network::new("pipeline");
    net.add_channel(BroadcastChannel::new("refined-records").public().build())
        .unwrap();
    net.add_channel(WorkQueueChannel::new("raw-records").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("refiner")
            .tick_rate(50.0)
            .writes(["refined-records"]),
        Refiner::default(),
    )
    .unwrap();
    net
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn one_call_starts_the_network_and_serves_its_public_channels_only() {
    let published = network().publish("127.0.0.1:0").await.unwrap();
    let url = published.url();
    assert_eq!(published.local_addr().ip().to_string(), "127.0.0.1");
    assert_eq!(published.server().channel_ids(), ["refined-records"]);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (status, body) = get(
        &format!("{url}/channels/refined-records?limit=100"),
        "client",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let messages = body["messages"].as_array().unwrap();
    assert!(!messages.is_empty(), "the systems run: {body}");
    assert_eq!(messages[0]["sender_id"], "refiner");
    assert_eq!(messages[0]["content"]["data"], json!({"value": 1}));

    // The private work queue never leaves the process.
    let (status, body) = get(&format!("{url}/channels/raw-records"), "client").await;
    assert_eq!(status, 404, "{body}");
    let (_, listing) = get(&format!("{url}/channels"), "client").await;
    assert_eq!(
        listing["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["refined-records"],
        "{listing}"
    );

    let mut stopped = published.stop().await.unwrap();
    let refiner: Refiner = stopped.take("refiner").unwrap();
    assert!(refiner.written as usize >= messages.len());
    // The server is gone.
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "nothing listens after stop"
    );
}

#[tokio::test]
async fn shutting_the_server_down_leaves_a_running_network_running() {
    let running = network().start().await.unwrap();
    let server = (&running).publish("127.0.0.1:0").await.unwrap();
    let url = server.channel_url("refined-records");
    let (status, _) = get(&url, "client").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();

    let refined = running.channel("refined-records").unwrap();
    assert_eq!(
        refined.state(),
        ChannelState::Running,
        "the network owns its channels"
    );
    // The systems keep stepping (at 50 Hz: the first step may come after the shutdown).
    let refiner = running.system("refiner").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while refiner.steps() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refiner never stepped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = refined.stats().await.unwrap().stored;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        refined.stats().await.unwrap().stored > before,
        "systems still write"
    );
    running.stop().await.unwrap();
    assert_eq!(refined.state(), ChannelState::Stopped);
}

#[tokio::test]
async fn an_address_that_cannot_be_bound_stops_the_network_again() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let net = network();
    let refined = net.channel("refined-records").unwrap();
    let err = net.publish(addr).await.unwrap_err();
    assert_eq!(err.kind(), sssn::ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("cannot bind"), "{err}");
    assert_eq!(
        refined.state(),
        ChannelState::Stopped,
        "nothing keeps running"
    );
}

/// sssn 0.0.1's behaviour 56: `publish` serves the public discovery and feed channels, not
/// the private one, and the discovery channel lists exactly those two as public.
#[tokio::test]
async fn v1_56_publish_serves_the_public_channels_and_lists_them_in_discovery() {
    use sssn::Visibility;
    use sssn::channel::{DiscoveryChannel, PassthroughChannel};
    let mut net =
        Network::new("v1-56").register_public_channels("discovery", Duration::from_secs(60));
    let discovery = net
        .add_channel(DiscoveryChannel::new("discovery").public().build())
        .unwrap();
    net.add_channel(BroadcastChannel::new("public-feed").public().build())
        .unwrap();
    net.add_channel(PassthroughChannel::new("private").build())
        .unwrap();
    let published = net.publish("127.0.0.1:0").await.unwrap();
    assert_eq!(
        published.server().channel_ids(),
        ["discovery", "public-feed"]
    );
    let url = published.url();
    for (id, status) in [("discovery", 200), ("public-feed", 200), ("private", 404)] {
        let resp = reqwest::Client::new()
            .get(format!("{url}/channels/{id}/info"))
            .bearer_auth("client")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{id}");
    }
    let mut listed: Vec<String> = discovery
        .find_channels("client", Some(Visibility::Public))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    listed.sort();
    assert_eq!(listed, ["discovery", "public-feed"]);
    published.stop().await.unwrap();
}
