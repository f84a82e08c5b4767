//! W3C trace context over HTTP: a write's `traceparent` header is honoured and stored,
//! and a remote client sends the context its caller is handling.

mod common;

use common::{serve, started};
use sssn::channel::BroadcastChannel;
use sssn::security::Principal;
use sssn::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use sssn::{ChannelEndpoint, Payload};
use sssn_http::RemoteChannel;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_writes_traceparent_header_becomes_the_parent_of_the_stored_message() {
    let ch = started(BroadcastChannel::new("b").public()).await;
    let h = serve(vec![ch.clone()]).await;
    let put = |parent: Option<&'static str>, body: &'static str| {
        let mut req = h
            .http
            .put(h.url("/channels/b"))
            .header("authorization", "Bearer w")
            .header("content-type", "application/json")
            .body(body);
        if let Some(p) = parent {
            req = req
                .header("traceparent", p)
                .header("tracestate", "vendor=1");
        }
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let v: serde_json::Value = r.json().await.unwrap();
            v["item_id"].as_str().unwrap().to_owned()
        }
    };
    let traced = put(Some(PARENT), "1").await;
    let plain = put(None, "2").await;
    let malformed = put(Some("00-nothex-00f067aa0ba902b7-01"), "3").await;
    let batch = h
        .http
        .post(h.url("/channels/b/batch"))
        .header("authorization", "Bearer w")
        .header("traceparent", PARENT)
        .header("content-type", "application/json")
        .body("[4, 5]")
        .send()
        .await
        .unwrap();
    assert!(batch.status().is_success());

    let stored = ch.read("probe", 10).await.unwrap();
    let by_id = |id: &str| stored.iter().find(|m| m.id == id).unwrap().clone();
    let parent = TraceContext::parse(PARENT, None).unwrap();
    let got = TraceContext::of(&by_id(&traced)).unwrap();
    assert_eq!(got.trace_id, parent.trace_id, "same trace");
    assert_ne!(got.span_id, parent.span_id, "the write is a child span");
    assert_eq!(got.state.as_deref(), Some("vendor=1"));
    assert_eq!(by_id(&traced).metadata[TRACESTATE], "vendor=1");
    for id in [&plain, &malformed] {
        assert!(by_id(id).metadata.get(TRACEPARENT).is_none(), "{id}");
    }
    let batched: Vec<_> = stored.iter().skip(3).collect();
    assert_eq!(batched.len(), 2);
    for m in batched {
        assert_eq!(TraceContext::of(m).unwrap().trace_id, parent.trace_id);
    }
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_remote_write_carries_the_context_its_caller_handles() {
    let ch = started(BroadcastChannel::new("b").public()).await;
    let h = serve(vec![ch.clone()]).await;
    let remote = RemoteChannel::connect(&h.server.channel_url("b"), Some("w")).unwrap();
    let me = Principal::local("w");
    let handling = TraceContext::root();
    let id = handling
        .clone()
        .scope(remote.write_batch(&me, vec![Payload::Data(serde_json::json!(1))]))
        .await
        .unwrap()
        .remove(0);
    let outside = remote
        .write_batch(&me, vec![Payload::Data(serde_json::json!(2))])
        .await
        .unwrap()
        .remove(0);
    let stored = ch.read("probe", 10).await.unwrap();
    let m = stored.iter().find(|m| m.id == id).unwrap();
    assert_eq!(TraceContext::of(m).unwrap().trace_id, handling.trace_id);
    let o = stored.iter().find(|m| m.id == outside).unwrap();
    assert!(o.metadata.get(TRACEPARENT).is_none());
    h.server.shutdown().await.unwrap();
}
