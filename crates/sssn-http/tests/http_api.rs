//! Every route and status code of the HTTP API, against a server on 127.0.0.1:0.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, serve, serve_with, started};
use reqwest::Method;
use serde_json::{Value, json};
use sssn::ChannelMessage;
use sssn::channel::{BroadcastChannel, MailboxChannel, PassthroughChannel, WorkQueueChannel};
use sssn::security::AclSecurity;
use sssn_http::Server;
use sssn_http::server::ROUTES;

async fn passthrough_server() -> (Harness, sssn::Channel) {
    let ch = started(PassthroughChannel::new("open").name("Open").public()).await;
    (serve(vec![ch.clone()]).await, ch)
}

#[tokio::test]
async fn v1_write_then_read_returns_full_content_and_moves_the_cursor() {
    let (h, _) = passthrough_server().await;
    let r = h
        .put(
            "/channels/open",
            "writer-1",
            r#"{"kind": "event", "value": 42}"#,
        )
        .await;
    let body = r.ok();
    assert_eq!(body["status"], "accepted");
    let id = body["item_id"].as_str().unwrap().to_owned();

    let msgs = h.get("/channels/open?limit=10", "reader-1").await.ok();
    let m = &msgs["messages"][0];
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["sender_id"], "writer-1", "the token is the sender");
    assert_eq!(
        m["content"],
        json!({"data": {"kind": "event", "value": 42}})
    );
    for key in [
        "timestamp",
        "metadata",
        "correlation_id",
        "reply_to",
        "recipient_id",
    ] {
        assert!(m.get(key).is_some(), "v1 field {key} present");
    }
    // The cursor moved; another reader has its own.
    assert_eq!(
        h.get("/channels/open", "reader-1").await.ok()["messages"],
        json!([])
    );
    assert_eq!(
        h.get("/channels/open", "reader-2").await.ok()["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // `after` moves the cursor to just after that message.
    let id2 = h.put("/channels/open", "writer-1", "2").await.ok()["item_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = h
        .get(&format!("/channels/open?after={id}"), "reader-3")
        .await
        .ok();
    assert_eq!(after["messages"][0]["id"], id2.as_str());
    assert_eq!(after["messages"].as_array().unwrap().len(), 1);
    // An unknown `after` is an error, not a replay from the start (v1 D16).
    h.get("/channels/open?after=nope", "reader-3")
        .await
        .expect_error(400);
    // v1 bool spellings and limit.
    h.put("/channels/open", "w", "3").await.ok();
    let one = h
        .get("/channels/open?limit=1&exclusive=off", "reader-4")
        .await
        .ok();
    assert_eq!(one["messages"].as_array().unwrap().len(), 1);
    h.get("/channels/open?limit=ten", "reader-4")
        .await
        .expect_error(400);
    h.get("/channels/open?exclusive=maybe", "reader-4")
        .await
        .expect_error(400);
}

#[tokio::test]
async fn v1_info_and_exclusive_read_with_ack_and_nack_counts() {
    let (h, _) = passthrough_server().await;
    let info = h.get("/channels/open/info", "anyone").await.ok();
    assert_eq!(
        info,
        json!({"id": "open", "name": "Open", "description": "", "visibility": "public", "period": 60.0, "kind": "passthrough"})
    );
    for i in 0..3 {
        h.put("/channels/open", "w", &i.to_string()).await.ok();
    }
    let claimed = h
        .get("/channels/open?exclusive=true&limit=2", "worker")
        .await
        .ok();
    let ids: Vec<String> = claimed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let ack = h
        .post(
            "/channels/open/acknowledge",
            "worker",
            &json!({"message_ids": [ids[0]]}).to_string(),
        )
        .await
        .ok();
    assert_eq!(
        ack,
        json!({"status": "ok", "acknowledged": 1, "done": [ids[0]], "stale": []})
    );
    let nack = h
        .post(
            "/channels/open/nack",
            "worker",
            &json!({"message_ids": [ids[1]]}).to_string(),
        )
        .await
        .ok();
    assert_eq!(
        nack,
        json!({"status": "ok", "nacked": 1, "done": [ids[1]], "stale": []})
    );
    // A missing key means no ids (v1).
    assert_eq!(
        h.post("/channels/open/acknowledge", "worker", "{}")
            .await
            .ok(),
        json!({"status": "ok", "acknowledged": 0, "done": [], "stale": []})
    );
    // Acking again, or someone else's claim: the id is reported stale, nothing happens.
    let r = h
        .post(
            "/channels/open/acknowledge",
            "worker",
            &json!({"message_ids": [ids[0]]}).to_string(),
        )
        .await
        .ok();
    assert_eq!(
        r,
        json!({"status": "ok", "acknowledged": 0, "done": [], "stale": [ids[0]]})
    );
    let again = h.get("/channels/open?exclusive=1", "other").await.ok();
    let nacked_id = again["messages"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        nacked_id, ids[1],
        "the nacked message is claimable again, oldest first"
    );
    let r = h
        .post(
            "/channels/open/acknowledge",
            "worker",
            &json!({"message_ids": [nacked_id]}).to_string(),
        )
        .await
        .ok();
    assert_eq!(r["stale"], json!([nacked_id]), "another's claim is stale");
    assert_eq!(r["acknowledged"], 0);
}

#[tokio::test]
async fn auth_failures_are_401_with_v1_text() {
    let (h, _) = passthrough_server().await;
    let r = h.call(Method::GET, "/channels/open", None, None).await;
    r.expect_error(401);
    assert_eq!(r.detail(), "Missing Bearer token.");
    // Another scheme (the Bearer scheme itself is case-insensitive, see tests/jwt.rs).
    let r = h
        .http
        .get(h.url("/channels/open"))
        .header("authorization", "Basic x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    // Open security refuses an empty token.
    let r = h
        .http
        .get(h.url("/channels/open"))
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Token checked before the body is even parsed.
    h.call(Method::PUT, "/channels/open", None, Some("{"))
        .await
        .expect_error(401);
}

#[tokio::test]
async fn unknown_channels_routes_and_methods_are_json_404_and_405() {
    let (h, _) = passthrough_server().await;
    let r = h.get("/channels/nope", "t").await;
    r.expect_error(404);
    assert_eq!(r.kind(), "not_found");
    h.put("/channels/nope", "t", "1").await.expect_error(404);
    h.get("/channels/nope/info", "t").await.expect_error(404);
    let r = h.get("/no/such/route", "t").await;
    r.expect_error(404);
    assert_eq!(r.detail(), "Not Found");
    let r = h
        .call(Method::DELETE, "/channels/open", Some("t"), None)
        .await;
    r.expect_error(405);
}

#[tokio::test]
async fn malformed_and_wrong_shape_bodies_are_400() {
    let (h, _) = passthrough_server().await;
    for (method, path, body) in [
        (Method::PUT, "/channels/open", "{"),
        (Method::PUT, "/channels/open", ""),
        (Method::PUT, "/channels/open?direct=true", r#"{"id": 1}"#),
        (
            Method::PUT,
            "/channels/open?direct=true",
            r#"{"id": "x", "timestamp": 1, "sender_id": "w", "content": [1]}"#,
        ),
        (Method::PUT, "/channels/open?kind=content", "42"),
        (Method::PUT, "/channels/open?kind=blob", "42"),
        (Method::PUT, "/channels/open?kind=mixed", "42"),
        (Method::POST, "/channels/open/batch", r#"{"not": "a list"}"#),
        (
            Method::POST,
            "/channels/open/batch?kind=mixed",
            r#"[{"nope": 1}]"#,
        ),
        (Method::POST, "/channels/open/acknowledge", "[1, 2]"),
        (Method::POST, "/channels/open/acknowledge", "not json"),
        (
            Method::POST,
            "/channels/open/nack",
            r#"{"message_ids": [1]}"#,
        ),
        (
            Method::POST,
            "/channels/open/nack",
            r#"{"message_ids": ["a"], "delay_ms": "soon"}"#,
        ),
    ] {
        let r = h.call(method.clone(), path, Some("w"), Some(body)).await;
        assert_eq!(r.status, 400, "{method} {path} {body}: {}", r.text);
        r.expect_error(400);
    }
    let r = h
        .post(
            "/channels/open/acknowledge",
            "w",
            r#"{"message_ids": "abc"}"#,
        )
        .await;
    assert_eq!(r.detail(), "'message_ids' must be a list.");
    // Invalid UTF-8 in the body.
    let r = h
        .http
        .put(h.url("/channels/open"))
        .header("authorization", "Bearer w")
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let ch = started(PassthroughChannel::new("small").public()).await;
    let h = serve_with(Server::builder().channel(ch.clone()).max_body_bytes(1024)).await;
    let fits = format!("\"{}\"", "x".repeat(1000));
    h.put("/channels/small", "w", &fits).await.ok();
    for size in [2_000, 100_000, 3_000_000] {
        let big = format!("\"{}\"", "x".repeat(size));
        let r = h.put("/channels/small", "w", &big).await;
        r.expect_error(413);
        h.post("/channels/small/batch", "w", &format!("[{big}]"))
            .await
            .expect_error(413);
    }
    assert_eq!(
        ch.stats().await.unwrap().stored,
        1,
        "nothing oversize was stored"
    );
}

#[tokio::test]
async fn kind_restrictions_are_400_unsupported_operation() {
    let q = started(WorkQueueChannel::new("q").public()).await;
    let b = started(BroadcastChannel::new("b").public()).await;
    let h = serve(vec![q, b]).await;
    let r = h.get("/channels/q", "r").await;
    r.expect_error(400);
    assert_eq!(r.kind(), "unsupported_operation");
    let r = h.get("/channels/b?exclusive=true", "r").await;
    assert_eq!(r.kind(), "unsupported_operation");
    h.post("/channels/b/acknowledge", "r", r#"{"message_ids": []}"#)
        .await
        .expect_error(400);
    h.post("/channels/b/claim", "r", "").await.expect_error(400);
}

#[tokio::test]
async fn direct_writes_keep_the_message_but_not_a_foreign_sender() {
    let (h, ch) = passthrough_server().await;
    let mut msg = ChannelMessage::with_data("alice", &json!({"x": 1})).unwrap();
    msg = msg.correlation_id("c-1").meta("k", "v");
    let r = h
        .put("/channels/open?direct=true", "mallory", &msg.to_json())
        .await;
    r.expect_error(403);
    assert_eq!(r.kind(), "permission_denied");
    let r = h
        .put("/channels/open?direct=true", "alice", &msg.to_json())
        .await
        .ok();
    assert_eq!(r["item_id"], msg.id.as_str());
    let stored = ch.entries_after("x", 0, 10).await.unwrap();
    assert_eq!(*stored[0].message, msg, "a direct write is stored as sent");
    // Content writes keep the object as is.
    h.put(
        "/channels/open?kind=content",
        "alice",
        r#"{"celsius": 2.5}"#,
    )
    .await
    .ok();
    let stored = ch.entries_after("x", 0, 10).await.unwrap();
    assert_eq!(stored[1].message.content.json(), r#"{"celsius": 2.5}"#);
}

#[tokio::test]
async fn acl_rights_are_403_per_operation() {
    let acl = Arc::new(AclSecurity::new(&["reader"], &["writer"], &["boss"]));
    let q = started(WorkQueueChannel::new("q").public().security(acl)).await;
    let h = serve(vec![q]).await;
    let r = h.put("/channels/q", "reader", "1").await;
    r.expect_error(403);
    assert_eq!(r.detail(), "Token does not permit 'write' on channel 'q'.");
    h.put("/channels/q", "stranger", "1")
        .await
        .expect_error(403);
    h.put("/channels/q", "writer", "1").await.ok();
    h.post("/channels/q/claim", "reader", "")
        .await
        .expect_error(403);
    h.get("/channels/q/info", "reader").await.ok();
    h.get("/channels/q/dead-letters", "writer")
        .await
        .expect_error(403);
    h.get("/channels/q/dead-letters", "boss").await.ok();
    h.post("/channels/q/redrive", "writer", "{}")
        .await
        .expect_error(403);
}

#[tokio::test]
async fn backpressure_is_429_and_stopped_channels_are_503() {
    let ingest = common::full_after("ingest", 2).await;
    let stopped = started(PassthroughChannel::new("stopped").public()).await;
    let h = serve(vec![ingest, stopped.clone()]).await;
    for i in 0..2 {
        let r = h.put("/channels/ingest", "w", &i.to_string()).await.ok();
        let id = r["item_id"].as_str().unwrap().to_owned();
        // The core now gives a buffered write the id its stored message will have.
        assert!(!id.is_empty(), "a buffered write returns an id");
    }
    let r = h.put("/channels/ingest", "w", "3").await;
    r.expect_error(429);
    assert_eq!(r.kind(), "backpressure");
    h.post("/channels/ingest/batch", "w", "[4, 5]")
        .await
        .expect_error(429);

    stopped.stop().await;
    let r = h.put("/channels/stopped", "w", "1").await;
    r.expect_error(503);
    assert_eq!(r.kind(), "shutting_down");
    // Reads keep working after a stop; an event stream would end at once: 503.
    h.get("/channels/stopped", "r").await.ok();
    h.get("/channels/stopped/events", "r")
        .await
        .expect_error(503);
}

#[tokio::test]
async fn batch_write_and_batch_claim_with_attempts_and_leases() {
    let q = started(
        WorkQueueChannel::new("jobs")
            .public()
            .claim_timeout(Duration::from_secs(30))
            .max_deliveries(2),
    )
    .await;
    let h = serve(vec![q]).await;
    let r = h
        .post("/channels/jobs/batch", "producer", "[1, 2, 3, {\"n\": 4}]")
        .await
        .ok();
    assert_eq!(r["status"], "accepted");
    let ids: Vec<String> = r["item_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let c = h
        .post("/channels/jobs/claim?limit=3", "worker", "")
        .await
        .ok();
    let claims = c["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 3);
    assert_eq!(claims[0]["seq"], 1);
    assert_eq!(claims[0]["attempt"], 1);
    assert_eq!(claims[0]["message"]["content"], json!({"data": 1}));
    assert_eq!(claims[0]["message"]["sender_id"], "producer");
    let lease = claims[0]["lease_until_ms"].as_u64().unwrap();
    assert!(lease >= now_ms + 29_000, "lease of claim_timeout from now");
    // Default claim limit is 1.
    let one = h.post("/channels/jobs/claim", "worker-2", "").await.ok();
    assert_eq!(one["claims"].as_array().unwrap().len(), 1);

    let body = |ids: &[&String]| json!({"message_ids": ids}).to_string();
    let ext = h
        .post("/channels/jobs/extend", "worker", &body(&[&ids[0]]))
        .await
        .ok();
    assert_eq!(
        ext,
        json!({"status": "ok", "extended": 1, "done": [ids[0]], "stale": []})
    );
    // Someone else cannot extend, ack or nack my claim.
    for verb in ["extend", "acknowledge", "nack"] {
        let r = h
            .post(
                &format!("/channels/jobs/{verb}"),
                "worker-2",
                &body(&[&ids[0]]),
            )
            .await
            .ok();
        assert_eq!(r["stale"], json!([ids[0]]), "{verb}");
        assert_eq!(r["done"], json!([]), "{verb}");
    }

    // Nack with a delay: not claimable before it is over.
    let n = h
        .post(
            "/channels/jobs/nack",
            "worker",
            &json!({"message_ids": [ids[1]], "delay_ms": 60_000}).to_string(),
        )
        .await
        .ok();
    assert_eq!(
        n,
        json!({"status": "ok", "nacked": 1, "done": [ids[1]], "stale": []})
    );
    assert_eq!(
        h.post("/channels/jobs/claim?limit=10", "worker-3", "")
            .await
            .ok()["claims"],
        json!([])
    );
    let stats = h.get("/channels/jobs/stats", "x").await.ok();
    assert_eq!(stats["delayed"], 1);
    assert_eq!(stats["in_flight"], 3);
    assert_eq!(stats["state"], "running");

    // Reject → dead letter; list it, redrive it (admin; open security allows).
    let rej = h
        .post(
            "/channels/jobs/reject",
            "worker",
            &json!({"message_ids": [ids[2]], "reason": "bad input"}).to_string(),
        )
        .await
        .ok();
    assert_eq!(
        rej,
        json!({"status": "ok", "rejected": 1, "done": [ids[2]], "stale": []})
    );
    let dl = h.get("/channels/jobs/dead-letters", "admin").await.ok();
    let letters = dl["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "bad input");
    assert_eq!(letters[0]["message"]["id"], ids[2].as_str());
    let rd = h
        .post("/channels/jobs/redrive", "admin", &body(&[&ids[2]]))
        .await
        .ok();
    assert_eq!(rd, json!({"status": "ok", "redriven": 1}));
    let again = h
        .post("/channels/jobs/claim?limit=10", "worker-3", "")
        .await
        .ok();
    assert_eq!(again["claims"][0]["message"]["id"], ids[2].as_str());
    assert_eq!(
        again["claims"][0]["attempt"], 1,
        "redriven letters start over"
    );

    let ack = h
        .post("/channels/jobs/acknowledge", "worker", &body(&[&ids[0]]))
        .await
        .ok();
    assert_eq!(ack["acknowledged"], 1);
    h.post("/channels/jobs/claim?limit=nope", "w", "")
        .await
        .expect_error(400);
}

#[tokio::test]
async fn only_public_channels_are_served_unless_opted_in() {
    let public = started(BroadcastChannel::new("feed").public()).await;
    let private = started(BroadcastChannel::new("secret")).await;
    let h = serve(vec![public.clone(), private.clone()]).await;
    assert_eq!(h.server.channel_ids(), ["feed".to_owned()]);
    h.get("/channels/secret", "r").await.expect_error(404);
    let list = h.get("/channels", "r").await.ok();
    assert_eq!(list["channels"].as_array().unwrap().len(), 1);
    assert_eq!(list["channels"][0]["id"], "feed");
    h.call(Method::GET, "/channels", None, None)
        .await
        .expect_error(401);

    let h2 = serve_with(
        Server::builder()
            .channels([public, private])
            .serve_private(true),
    )
    .await;
    assert_eq!(h2.server.channel_ids().len(), 2);
    h2.get("/channels/secret", "r").await.ok();
}

#[tokio::test]
async fn duplicate_channel_ids_are_refused() {
    let a = PassthroughChannel::new("same").public().build();
    let b = PassthroughChannel::new("same").public().build();
    let err = Server::builder()
        .channels([a.clone(), b])
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), sssn::ErrorKind::InvalidArgument);
    // The same channel twice is fine.
    Server::builder()
        .channels([a.clone(), a])
        .bind("127.0.0.1:0")
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}

#[tokio::test]
async fn health_stats_and_metrics() {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let jobs = started(WorkQueueChannel::new("jobs").public()).await;
    let h = serve(vec![feed.clone(), jobs]).await;
    let health = h.call(Method::GET, "/healthz", None, None).await.ok();
    assert_eq!(health["status"], "ok");
    for i in 0..3 {
        h.put("/channels/feed", "sensor", &i.to_string()).await.ok();
    }
    h.get("/channels/feed?limit=1", "dash\"board").await.ok();
    h.put("/channels/jobs", "p", "1").await.ok();
    let _sub = feed.subscribe("watcher").await.unwrap();

    let stats = h.get("/channels/feed/stats", "x").await.ok();
    assert_eq!(stats["writes"], 3);
    assert_eq!(stats["kind"], "broadcast");
    assert_eq!(stats["head_seq"], 3);

    h.call(Method::GET, "/metrics", None, None)
        .await
        .expect_error(401);
    let r = h.get("/metrics", "x").await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"));
    let text = r.text;
    for line in [
        "# TYPE sssn_channel_writes_total counter",
        "sssn_channel_writes_total{channel=\"feed\",kind=\"broadcast\"} 3",
        "sssn_channel_reads_total{channel=\"feed\",kind=\"broadcast\"} 1",
        "sssn_channel_backlog{channel=\"jobs\",kind=\"work_queue\"} 1",
        "sssn_channel_in_flight{channel=\"jobs\",kind=\"work_queue\"} 0",
        "sssn_channel_dead_lettered{channel=\"jobs\",kind=\"work_queue\"} 0",
        "sssn_channel_subscriber_lag{channel=\"feed\",reader=\"watcher\"} 0",
        "sssn_channel_reader_lag{channel=\"feed\",reader=\"dash\\\"board\"} 2",
        "sssn_http_event_streams 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let public = serve_with(
        Server::builder()
            .channel(started(BroadcastChannel::new("f").public()).await)
            .public_metrics(true),
    )
    .await;
    let r = public.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("channel=\"f\""));
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_the_router_serves() {
    let ch = started(WorkQueueChannel::new("q").public()).await;
    let h = serve(vec![ch]).await;
    let doc = h.call(Method::GET, "/openapi.json", None, None).await.ok();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            documented.push((method.to_uppercase(), path.clone()));
            assert!(op["operationId"].is_string());
            assert!(op["responses"]["200"].is_object(), "{method} {path}");
        }
    }
    let mut routed: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);

    // Every route answers through its handler (not the 404/405 fallbacks).
    for r in ROUTES {
        let path = r.path.replace("{id}", "q");
        if r.operation == "events" {
            let resp = h
                .http
                .get(h.url(&path))
                .header("authorization", "Bearer t")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            continue;
        }
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let reply = h.call(method, &path, Some("t"), Some("{}")).await;
        assert!(
            reply.status != 405 && !(reply.status == 404 && reply.detail() == "Not Found"),
            "{} {path} fell through to a fallback: {} {}",
            r.method,
            reply.status,
            reply.text
        );
    }
}

#[tokio::test]
async fn mailbox_reads_only_what_is_addressed_to_the_token_subject() {
    let mb = started(MailboxChannel::new("mail").public()).await;
    let h = serve(vec![mb]).await;
    for to in ["alice", "bob"] {
        let msg = ChannelMessage::with_data("sender", &to)
            .unwrap()
            .recipient(to);
        h.put("/channels/mail?direct=true", "sender", &msg.to_json())
            .await
            .ok();
    }
    h.put("/channels/mail", "sender", "\"all\"").await.ok();
    let got = h.get("/channels/mail", "alice").await.ok();
    let data: Vec<Value> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["data"].clone())
        .collect();
    assert_eq!(data, vec![json!("alice"), json!("all")]);
}

/// v1's exclusive read and the claim routes on a mailbox claim for the token's subject
/// only: its own messages and those to everyone, from its own inbox.
#[tokio::test]
async fn mailbox_claims_take_only_what_is_addressed_to_the_token_subject() {
    let mb = started(MailboxChannel::new("mail").public()).await;
    let h = serve(vec![mb]).await;
    for to in ["alice", "bob"] {
        let msg = ChannelMessage::with_data("sender", &to)
            .unwrap()
            .recipient(to);
        h.put("/channels/mail?direct=true", "sender", &msg.to_json())
            .await
            .ok();
    }
    h.put("/channels/mail", "sender", "\"all\"").await.ok();
    let data = |v: &Value, key: &str| -> Vec<Value> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"]["data"].clone())
            .collect()
    };
    let alice = h
        .get("/channels/mail?exclusive=true&limit=10", "alice")
        .await
        .ok();
    assert_eq!(data(&alice, "messages"), vec![json!("alice"), json!("all")]);
    let bob = h
        .post("/channels/mail/claim?limit=10", "bob", "")
        .await
        .ok();
    let bob_msgs: Vec<Value> = bob["claims"]
        .as_array()
        .unwrap_or_else(|| panic!("{bob}"))
        .iter()
        .map(|c| c["message"]["content"]["data"].clone())
        .collect();
    assert_eq!(
        bob_msgs,
        vec![json!("bob"), json!("all")],
        "alice's claim hid nothing"
    );
    let ids: Vec<String> = alice["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let body = json!({"message_ids": ids}).to_string();
    let by_bob = h
        .post("/channels/mail/acknowledge", "bob", &body)
        .await
        .ok();
    // Bob's ack settles his own claim on the message to everyone; alice's is not his.
    assert_eq!(by_bob["done"], json!([ids[1]]), "{by_bob}");
    assert_eq!(by_bob["stale"], json!([ids[0]]), "{by_bob}");
    let by_alice = h
        .post("/channels/mail/acknowledge", "alice", &body)
        .await
        .ok();
    assert_eq!(by_alice["acknowledged"], 2, "{by_alice}");
}

#[tokio::test]
async fn event_stream_delivers_in_order_and_resumes_without_gaps_or_duplicates() {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let h = serve(vec![feed.clone()]).await;
    let mut events = h.events("feed", "dash", None).await;
    let ready = events.next().await.unwrap();
    assert_eq!(ready.event.as_deref(), Some("ready"));
    assert_eq!(ready.id.as_deref(), Some("0"));
    for i in 0..5 {
        feed.write("sensor", &i).await.unwrap();
    }
    let mut last = 0;
    for i in 0..3 {
        let (seq, msg) = events.next_message().await;
        assert_eq!(seq, i + 1);
        assert_eq!(msg["content"], json!({"data": i}));
        last = seq;
    }
    drop(events); // the connection drops after message 3
    for i in 5..8 {
        feed.write("sensor", &i).await.unwrap();
    }
    let mut resumed = h.events("feed", "dash", Some(last)).await;
    let ready = resumed.next().await.unwrap();
    assert_eq!(ready.id.as_deref(), Some("3"));
    for expected in 4..=8 {
        let (seq, msg) = resumed.next_message().await;
        assert_eq!(seq, expected, "no gap, no duplicate");
        assert_eq!(msg["content"]["data"], expected - 1);
    }
    // `?after=` works like the header.
    let mut from_after = {
        let resp = h
            .http
            .get(h.url("/channels/feed/events?after=6"))
            .header("authorization", "Bearer dash")
            .send()
            .await
            .unwrap();
        let mut p = sssn_http::sse::SseParser::new();
        let mut stream = futures::StreamExt::boxed(resp.bytes_stream());
        let mut seqs = Vec::new();
        while seqs.len() < 2 {
            let chunk = futures::StreamExt::next(&mut stream)
                .await
                .unwrap()
                .unwrap();
            for e in p.push(&chunk) {
                if e.event.is_none() {
                    seqs.push(e.id.unwrap());
                }
            }
        }
        seqs
    };
    from_after.sort();
    assert_eq!(from_after, ["7", "8"]);
    // A Last-Event-ID beyond the head (a store that was reset) resumes from the head.
    let mut ahead = h.events("feed", "dash", Some(1_000)).await;
    assert_eq!(ahead.next().await.unwrap().id.as_deref(), Some("8"));
    feed.write("sensor", &"late").await.unwrap();
    assert_eq!(ahead.next_message().await.0, 9);
    let r = h
        .http
        .get(h.url("/channels/feed/events"))
        .header("authorization", "Bearer dash")
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn event_stream_sends_keep_alives_and_survives_a_lagging_subscriber() {
    let feed = started(
        BroadcastChannel::new("feed")
            .public()
            .subscriber_capacity(4),
    )
    .await;
    let h = serve_with(
        Server::builder()
            .channel(feed.clone())
            .sse_keep_alive(Duration::from_millis(50)),
    )
    .await;
    let resp = h
        .http
        .get(h.url("/channels/feed/events"))
        .header("authorization", "Bearer dash")
        .send()
        .await
        .unwrap();
    let mut stream = futures::StreamExt::boxed(resp.bytes_stream());
    let mut text = String::new();
    while !text.contains(": keep-alive") {
        let chunk = tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut stream),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Far more than the subscriber's queue holds, written while nobody reads the stream.
    for i in 0..500 {
        feed.write("sensor", &i).await.unwrap();
    }
    let mut parser = sssn_http::sse::SseParser::new();
    let mut seqs = Vec::new();
    while seqs.len() < 500 {
        let chunk = tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut stream),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        for e in parser.push(&chunk) {
            if e.event.is_none() {
                seqs.push(e.id.unwrap().parse::<u64>().unwrap());
            }
        }
    }
    assert!(text.contains(": lagged "), "the subscriber did lag");
    assert_eq!(
        seqs,
        (1..=500).collect::<Vec<_>>(),
        "lag caught up from the store"
    );
}

#[tokio::test]
async fn graceful_shutdown_ends_streams_and_drains_channels() {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let h = serve(vec![feed.clone()]).await;
    let mut events = h.events("feed", "dash", None).await;
    events.next().await.unwrap();
    let url = h.url("/healthz");
    let Harness { server, http } = h;
    server.shutdown().await.unwrap();
    assert!(events.next().await.is_none(), "the event stream ended");
    assert_eq!(feed.state(), sssn::channel::ChannelState::Stopped);
    assert!(http.get(url).send().await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn a_resume_past_removed_messages_is_told_of_the_gap() {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let h = serve(vec![feed.clone()]).await;
    for i in 0..200 {
        feed.write("sensor", &i).await.unwrap();
    }
    // Retention removes all but the newest 10 (191..=200).
    assert_eq!(feed.evict("admin", None, Some(10)).await.unwrap(), 190);
    let mut events = h.events("feed", "dash", Some(5)).await;
    let ready = events.next().await.unwrap();
    assert_eq!(ready.event.as_deref(), Some("ready"));
    let gap = events.next().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("gap"), "{gap:?}");
    assert_eq!(
        gap.id.as_deref(),
        Some("190"),
        "resuming after the gap skips it"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&gap.data).unwrap(),
        json!({"from": 6, "to": 190})
    );
    assert_eq!(events.next_message().await.0, 191);

    // The same, through RemoteChannel: a distinct error, then the next message.
    let remote = sssn_http::RemoteChannel::connect(&h.server.channel_url("feed"), None).unwrap();
    let caller = sssn::security::Principal::local("dash");
    let mut sub = sssn::ChannelEndpoint::subscribe(&remote, &caller, Some(5))
        .await
        .unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .unwrap();
    assert_eq!(
        lost.unwrap_err(),
        sssn::channel::RecvError::Gap { from: 6, to: 190 }
    );
    let next = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.seq, 191);
}
