//! The console's routes without a browser: the page is public and self-contained, every
//! figure needs a token, and a token sees only what it may read.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::serve_with;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::network::Network;
use sssn::security::AclSecurity;
use sssn::system::{System, SystemContext, SystemSpec};
use sssn::trace::TraceContext;
use sssn_http::Server;

/// Moves every job from `a` to `b`.
struct Mover;

#[async_trait]
impl System for Mover {
    async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
        let (a, b) = (ctx.work_queue("a")?, ctx.broadcast("b")?);
        for c in a.claim(10).await? {
            b.write(&c.message.content).await?;
            a.ack(&c).await?.into_result()?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_page_is_public_its_data_needs_a_token_and_shows_only_what_it_may_read() {
    // `viewer` may read `a` only; `mover` reads and writes both.
    let acl_a = Arc::new(AclSecurity::new(
        &["viewer"],
        &["mover", "writer"],
        &["admin"],
    ));
    let acl_b = Arc::new(AclSecurity::new(&[] as &[&str], &["mover"], &["admin"]));
    for acl in [&acl_a, &acl_b] {
        acl.add_token("viewer-token", "viewer");
        acl.add_token("writer-token", "writer");
    }
    let mut net = Network::new("n");
    net.add_channel(
        WorkQueueChannel::new("a")
            .public()
            .security(acl_a.clone())
            .build(),
    )
    .unwrap();
    net.add_channel(
        BroadcastChannel::new("b")
            .public()
            .security(acl_b.clone())
            .build(),
    )
    .unwrap();
    net.add_system(
        SystemSpec::new("mover")
            .tick_rate(50.0)
            .reads(["a"])
            .writes(["b"]),
        Mover,
    )
    .unwrap();
    let running = net.start().await.unwrap();
    let h = serve_with(Server::builder().network(&running).drain_on_shutdown(false)).await;

    let page = h.call(reqwest::Method::GET, "/ui/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.text.contains("/ui/console.js"));
    let js = h.http.get(h.url("/ui/console.js")).send().await.unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let csp = js.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let js = js.text().await.unwrap();
    assert!(
        !js.contains("http://") && !js.contains("https://"),
        "no network beyond the server"
    );
    h.call(reqwest::Method::GET, "/ui/nope.js", None, None)
        .await
        .expect_error(404);
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(h.url("/ui"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.headers()["location"], "/ui/");

    for path in [
        "/topology",
        "/traces",
        "/traces/4bf92f3577b34da6a3ce929d0e0e4736",
    ] {
        h.call(reqwest::Method::GET, path, None, None)
            .await
            .expect_error(401);
    }
    let topo = h.get("/topology", "viewer-token").await.ok();
    let channels: Vec<&str> = topo["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["a"], "only what the token may read");
    let mover = &topo["systems"][0];
    assert_eq!(mover["id"], "mover");
    assert_eq!(mover["reads"], serde_json::json!(["a"]));
    assert_eq!(
        mover["writes"],
        serde_json::json!([]),
        "wiring to b is not shown"
    );
    assert_eq!(mover["state"], "RUNNING");

    // A traced write goes a → mover → b; the viewer sees only the hops on a.
    let parent = TraceContext::root();
    let r = h
        .http
        .put(h.url("/channels/a"))
        .header("authorization", "Bearer writer-token")
        .header("traceparent", parent.traceparent())
        .body("1")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let path = format!("/traces/{}", parent.trace_id);
    let mut hops = serde_json::Value::Null;
    for _ in 0..200 {
        let t = h.get(&path, "viewer-token").await;
        if t.status == 200 && t.json()["hops"].as_array().unwrap().len() >= 3 {
            hops = t.json()["hops"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds: Vec<(&str, &str, &str)> = hops
        .as_array()
        .expect("the trace appears")
        .iter()
        .map(|h| {
            (
                h["kind"].as_str().unwrap(),
                h["channel"].as_str().unwrap(),
                h["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("write", "a", "writer"),
            ("claim", "a", "mover"),
            ("ack", "a", "mover")
        ]
    );
    let recent = h.get("/traces?limit=5", "viewer-token").await.ok();
    assert!(
        recent["traces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["trace_id"] == parent.trace_id.to_string())
    );
    h.get("/traces/0123456789abcdef0123456789abcdef", "viewer-token")
        .await
        .expect_error(404);
    h.server.shutdown().await.unwrap();
    running.stop().await.unwrap();
}
