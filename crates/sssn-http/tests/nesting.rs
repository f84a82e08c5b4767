//! One nesting limit on every path by which content enters over HTTP: content, raw data,
//! direct messages, batches of each kind. A reader (serde_json stops at 128 levels, Python's
//! json at about 1,000) can always parse what it reads back.

mod common;

use common::{Harness, serve, started};
use serde_json::Value;
use sssn::channel::PassthroughChannel;
use sssn::message::MAX_CONTENT_DEPTH;

/// `levels` nested objects: `{"a":{"a":…{}…}}`.
fn objects(levels: usize) -> String {
    format!(
        "{}{{}}{}",
        r#"{"a":"#.repeat(levels - 1),
        "}".repeat(levels - 1)
    )
}

/// `levels` nested arrays around `1`.
fn arrays(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

fn message(sender: &str, content: &str) -> String {
    format!(
        r#"{{"id":"{}","timestamp":1.5,"sender_id":"{sender}","content":{content}}}"#,
        sssn::message::new_message_id()
    )
}

async fn server() -> Harness {
    serve(vec![started(PassthroughChannel::new("c").public()).await]).await
}

/// Writes that must be refused: 400 `invalid_message`, saying what the limit is.
async fn refused(h: &Harness, path: &str, put: bool, body: &str) {
    let r = if put {
        h.put(path, "me", body).await
    } else {
        h.post(path, "me", body).await
    };
    r.expect_error(400);
    assert_eq!(r.kind(), "invalid_message", "{path}");
    assert!(
        r.detail().contains("nested more than") && r.detail().contains("at most 64 levels"),
        "{path}: {}",
        r.detail()
    );
}

#[tokio::test]
async fn content_data_direct_and_batch_writes_keep_to_one_nesting_limit() {
    let h = server().await;
    let max = MAX_CONTENT_DEPTH;
    assert_eq!(max, 64);

    // Content: at the limit accepted, one more refused, 100,000 refused.
    h.put("/channels/c?kind=content", "me", &objects(max))
        .await
        .ok();
    refused(&h, "/channels/c?kind=content", true, &objects(max + 1)).await;
    refused(&h, "/channels/c?kind=content", true, &objects(100_000)).await;
    // Raw data: wrapped as {"data": …}, so one level less.
    h.put("/channels/c", "me", &arrays(max - 1)).await.ok();
    refused(&h, "/channels/c", true, &arrays(max)).await;
    refused(&h, "/channels/c", true, &arrays(100_000)).await;
    // A direct message.
    h.put(
        "/channels/c?direct=true",
        "me",
        &message("me", &objects(max)),
    )
    .await
    .ok();
    refused(
        &h,
        "/channels/c?direct=true",
        true,
        &message("me", &objects(max + 1)),
    )
    .await;
    refused(
        &h,
        "/channels/c?direct=true",
        true,
        &message("me", &objects(100_000)),
    )
    .await;
    // Batches of every kind.
    for (kind, ok_item, deep_item) in [
        ("data", arrays(max - 1), arrays(max)),
        ("content", objects(max), objects(max + 1)),
        (
            "message",
            message("me", &objects(max)),
            message("me", &objects(max + 1)),
        ),
        (
            "mixed",
            format!(r#"{{"content":{}}}"#, objects(max)),
            format!(r#"{{"content":{}}}"#, objects(max + 1)),
        ),
        (
            "mixed",
            format!(r#"{{"data":{}}}"#, arrays(max - 1)),
            format!(r#"{{"data":{}}}"#, arrays(max)),
        ),
    ] {
        let path = format!("/channels/c/batch?kind={kind}");
        h.post(&path, "me", &format!("[{ok_item}]")).await.ok();
        refused(&h, &path, false, &format!("[{ok_item},{deep_item}]")).await;
    }
    refused(
        &h,
        "/channels/c/batch?kind=content",
        false,
        &format!("[{}]", objects(100_000)),
    )
    .await;

    // Everything stored reads back, and parses with serde_json's default limits, in a
    // read, a claim and the event stream.
    let read = h.get("/channels/c?limit=100&after=", "reader").await;
    let messages = read.ok()["messages"].as_array().unwrap().len();
    assert_eq!(messages, 8, "the accepted writes only");
    let claims = h.post("/channels/c/claim?limit=100", "worker", "").await;
    let claims: Value = claims.ok();
    assert_eq!(claims["claims"].as_array().unwrap().len(), 8);
    let mut events = h.events("c", "watcher", Some(0)).await;
    for _ in 0..8 {
        let (_, m) = events.next_message().await;
        assert!(m["content"].is_object());
    }
}
