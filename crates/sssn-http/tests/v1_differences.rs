//! Differences from sssn 0.0.1 that `docs/v1-differences.md` states for HTTP clients:
//! a channel that is not started answers 503, and a message's `timestamp` must be a JSON
//! number.

mod common;

use common::{serve, started};
use sssn::channel::PassthroughChannel;

#[tokio::test]
async fn a_channel_not_started_answers_503_on_reads_and_writes() {
    let idle = PassthroughChannel::new("idle").public().build();
    let h = serve(vec![idle.erased()]).await;
    let r = h.put("/channels/idle", "w", "1").await;
    r.expect_error(503);
    assert_eq!(r.kind(), "shutting_down");
    assert!(r.detail().contains("not started"), "{}", r.detail());
    h.get("/channels/idle", "r").await.expect_error(503);
    // Once started, the same requests succeed.
    idle.start().await.unwrap();
    h.put("/channels/idle", "w", "1").await.ok();
    h.get("/channels/idle", "r").await.ok();
}

#[tokio::test]
async fn a_timestamp_must_be_a_json_number() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve(vec![ch.clone()]).await;
    // v1 (pydantic, lax) accepted numeric strings and bools here.
    for (id, timestamp) in [("m1", r#""1795993127.5""#), ("m2", "true"), ("m3", "null")] {
        let body = format!(
            r#"{{"id": "{id}", "timestamp": {timestamp}, "sender_id": "w", "content": {{"data": 1}}}}"#
        );
        let r = h.put("/channels/p?direct=true", "w", &body).await;
        r.expect_error(400);
    }
    assert_eq!(ch.stats().await.unwrap().stored, 0);
    let body =
        r#"{"id": "m4", "timestamp": 1795993127.5, "sender_id": "w", "content": {"data": 1}}"#;
    h.put("/channels/p?direct=true", "w", body).await.ok();
    assert_eq!(ch.stats().await.unwrap().stored, 1);
}
