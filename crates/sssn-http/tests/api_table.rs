//! The route table against the server: authentication comes before validation on every
//! route, the OpenAPI document matches what the router accepts, and replies stay within
//! the response byte budget while every message stays readable by paging.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Harness, serve_with, started};
use reqwest::Method;
use serde_json::{Value, json};
use sssn::ChannelMessage;
use sssn::channel::{BroadcastChannel, PassthroughChannel, WorkQueueChannel};
use sssn::security::AclSecurity;
use sssn_http::Server;
use sssn_http::api::{Auth, ROUTES};
use sssn_http::server::TRUNCATED_HEADER;

/// Query, header and body that are wrong for every route.
const BAD_QUERY: &str =
    "?limit=abc&exclusive=maybe&kind=blob&direct=perhaps&after=zz%ZZ&max_count=-1";

async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = h.http.request(method, h.url(path)).body(body.to_owned());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_route_authenticates_before_it_validates_the_request() {
    let acl = Arc::new(AclSecurity::new(&["w"], &["w"], &["w"]));
    acl.add_token("s3cret-token", "w");
    let ch = started(PassthroughChannel::new("open").public().security(acl)).await;
    let h = serve_with(Server::builder().channel(ch)).await;
    for r in ROUTES {
        let path = format!("{}{BAD_QUERY}", r.path.replace("{id}", "open"));
        for token in [None, Some("not-a-known-token")] {
            let resp = send(&h, r.method, &path, token, Some("abc"), "{").await;
            let status = resp.status().as_u16();
            match r.auth {
                Auth::Public => assert_ne!(status, 401, "{} {path}", r.method),
                Auth::Bearer | Auth::BearerUnlessPublic => {
                    let text = resp.text().await.unwrap();
                    assert_eq!(status, 401, "{} {path} token {token:?}: {text}", r.method);
                }
            }
        }
    }
    // Not even the channel is looked up first: an unknown channel, a bad query, no token.
    let resp = send(&h, "GET", "/channels/x?limit=abc", None, None, "").await;
    assert_eq!(resp.status(), 401);
    let resp = send(&h, "GET", "/channels/%FF%FE?limit=abc", None, None, "").await;
    assert_eq!(resp.status(), 401);
    // With the token, the same request is judged on its merits.
    let resp = send(
        &h,
        "GET",
        "/channels/open?limit=abc",
        Some("s3cret-token"),
        None,
        "",
    )
    .await;
    assert_eq!(resp.status(), 400);
}

/// A body the route accepts with this parameter.
fn body_for(operation: &str, name: &str, value: &str) -> String {
    let kind = match name {
        "kind" if !value.is_empty() => Some(value),
        "direct" if sssn_http::wire::parse_bool(value).unwrap_or(false) => Some("message"),
        _ => None,
    };
    let message = || ChannelMessage::with_data("t", &1).unwrap().to_json();
    match (operation, kind.unwrap_or("data")) {
        ("write", "content") => r#"{"c": 1}"#.into(),
        ("write", "message") => message(),
        ("write", _) => "1".into(),
        ("writeBatch", "content") => r#"[{"c": 1}]"#.into(),
        ("writeBatch", "message") => format!("[{}]", message()),
        ("writeBatch", "mixed") => r#"[{"data": 1}]"#.into(),
        ("writeBatch", _) => "[1]".into(),
        _ => "{}".into(),
    }
}

/// Values that the schema of a documented parameter allows.
fn examples(schema: &Value, known_id: &str) -> Vec<String> {
    let mut out = vec![String::new()]; // empty: the default
    if let Some(values) = schema["enum"].as_array() {
        out.extend(values.iter().map(|v| v.as_str().unwrap().to_owned()));
    }
    match schema["type"].as_str() {
        Some("integer") => out.extend(["0".into(), "1".into(), "7".into()]),
        Some("boolean") => {
            out.extend(["true", "false", "1", "0", "yes", "no", "on", "off"].map(String::from))
        }
        Some("string") if schema.get("enum").is_none() => out.push(known_id.to_owned()),
        _ => {}
    }
    if schema.get("x-sssn-clamped-maximum").is_some() {
        out.extend([
            "1e20".into(),
            "100000000000000000000000".into(),
            "10.0".into(),
        ]);
    }
    out
}

#[tokio::test]
async fn the_openapi_document_matches_the_router() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve_with(Server::builder().channel(ch.clone()).max_limit(50)).await;
    let doc = h.call(Method::GET, "/openapi.json", None, None).await.ok();
    let known = ch.write("t", &"known").await.unwrap();
    let mut documented = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            documented.insert((method.clone(), path.clone()));
            let operation = op["operationId"].as_str().unwrap();
            let route = ROUTES
                .iter()
                .find(|r| r.operation == operation)
                .unwrap_or_else(|| panic!("{operation} is documented but not routed"));
            assert_eq!((route.method, route.path), (method.as_str(), path.as_str()));
            let url_path = path.replace("{id}", "p");
            for param in op["parameters"].as_array().unwrap() {
                if param["in"] == "path" {
                    continue;
                }
                let name = param["name"].as_str().unwrap();
                for value in examples(&param["schema"], &known) {
                    let body = body_for(operation, name, &value);
                    let resp = if param["in"] == "header" {
                        send(&h, &method, &url_path, Some("t"), Some(&value), &body).await
                    } else {
                        let q = format!("{url_path}?{name}={value}");
                        send(&h, &method, &q, Some("t"), None, &body).await
                    };
                    let status = resp.status();
                    let text = if operation == "events" {
                        String::new() // an endless stream: the status says it all
                    } else {
                        resp.text().await.unwrap()
                    };
                    assert!(
                        status.is_success(),
                        "{method} {path}: {name}={value:?} is documented but got {status} {text}"
                    );
                }
            }
        }
    }
    let routed: HashSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        documented, routed,
        "every route is documented, nothing else"
    );

    // The documented bounds are the server's: limit is clamped to its maximum (50 here).
    let read = &doc["paths"]["/channels/{id}"]["get"]["parameters"];
    let limit = read
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["x-sssn-clamped-maximum"], 50);
    assert_eq!(limit["schema"]["default"], 10);
    for i in 0..60 {
        ch.write("t", &i).await.unwrap();
    }
    let r = h.get("/channels/p?limit=1e20", "clamp").await.ok();
    assert_eq!(r["messages"].as_array().unwrap().len(), 50);
    // `kind=mixed` is documented for batches only, and refused on PUT.
    let put_kinds = &doc["paths"]["/channels/{id}"]["put"]["parameters"][1]["schema"]["enum"];
    assert_eq!(put_kinds, &json!(["data", "content", "message"]));
    h.put("/channels/p?kind=mixed", "t", "1")
        .await
        .expect_error(400);
    // `"message_ids": null` is documented and means none.
    let ids = &doc["paths"]["/channels/{id}/acknowledge"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["message_ids"];
    assert_eq!(ids["type"], json!(["array", "null"]));
    let r = h
        .post("/channels/p/acknowledge", "t", r#"{"message_ids": null}"#)
        .await
        .ok();
    assert_eq!(r["acknowledged"], 0);
    // An empty `kind=` is the default.
    let r = h.put("/channels/p?kind=", "t", r#"[1]"#).await.ok();
    assert_eq!(r["status"], "accepted");
    assert!(
        limit["description"]
            .as_str()
            .unwrap()
            .contains("empty value")
    );
}

async fn budget_server(budget: usize) -> (Harness, sssn::Channel, sssn::Channel) {
    let feed = started(BroadcastChannel::new("feed").public()).await;
    let jobs = started(
        WorkQueueChannel::new("jobs")
            .public()
            .claim_timeout(std::time::Duration::from_secs(60)),
    )
    .await;
    let h = serve_with(
        Server::builder()
            .channels([feed.clone(), jobs.clone()])
            .max_body_bytes(2_000)
            .max_response_bytes(budget),
    )
    .await;
    (h, feed, jobs)
}

fn kb(i: usize) -> String {
    format!("{i:04}{}", "x".repeat(996))
}

#[tokio::test]
async fn shared_reads_stay_within_the_budget_and_every_message_is_read_once() {
    let (h, feed, _) = budget_server(10_000).await;
    for i in 0..50 {
        feed.write("w", &kb(i)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut replies = 0;
    loop {
        let resp = send(&h, "GET", "/channels/feed?limit=10000", Some("r"), None, "").await;
        let truncated = resp.headers().get(TRUNCATED_HEADER).is_some();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        let messages = body["messages"].as_array().unwrap();
        if messages.is_empty() {
            assert!(!truncated);
            break;
        }
        assert!(
            text.len() <= 10_000 + 1_100,
            "a reply of {} bytes",
            text.len()
        );
        assert!(truncated || seen.len() + messages.len() == 50);
        replies += 1;
        seen.extend(
            messages
                .iter()
                .map(|m| m["content"]["data"].as_str().unwrap()[..4].to_owned()),
        );
    }
    let expected: Vec<String> = (0..50).map(|i| format!("{i:04}")).collect();
    assert_eq!(seen, expected, "in order, none lost, none twice");
    assert!(replies >= 5, "{replies} replies");
    // A message larger than the budget is still returned.
    feed.write("w", &"y".repeat(30_000)).await.unwrap();
    let r = h.get("/channels/feed?limit=10", "r").await.ok();
    assert_eq!(
        r["messages"][0]["content"]["data"].as_str().unwrap().len(),
        30_000
    );
}

#[tokio::test]
async fn claims_and_dead_letters_stay_within_the_budget() {
    let (h, _, jobs) = budget_server(10_000).await;
    for i in 0..30 {
        jobs.write("w", &kb(i)).await.unwrap();
    }
    let mut claimed = Vec::new();
    for via in [
        "POST /channels/jobs/claim?limit=15",
        "GET /channels/jobs?exclusive=true&limit=15",
    ] {
        loop {
            let (method, path) = via.split_once(' ').unwrap();
            let resp = send(&h, method, path, Some("c"), None, "").await;
            let text = resp.text().await.unwrap();
            assert!(
                text.len() <= 10_000 + 1_200,
                "a reply of {} bytes",
                text.len()
            );
            let body: Value = serde_json::from_str(&text).unwrap();
            let ids: Vec<String> = match body.get("claims") {
                Some(claims) => claims
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["message"]["id"].as_str().unwrap().to_owned())
                    .collect(),
                None => body["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_str().unwrap().to_owned())
                    .collect(),
            };
            let done = ids.is_empty();
            claimed.extend(ids);
            if done || (method == "POST" && claimed.len() >= 15) {
                break;
            }
        }
    }
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(
        unique.len(),
        30,
        "every message claimed once, by claim or exclusive read"
    );
    assert_eq!(claimed.len(), 30);
    // Dead letters: the listing is bounded too, and lists each letter once.
    let body = json!({"message_ids": claimed, "reason": "test"}).to_string();
    let r = h.post("/channels/jobs/reject", "c", &body).await.ok();
    assert_eq!(r["rejected"], 30);
    let resp = send(
        &h,
        "GET",
        "/channels/jobs/dead-letters?limit=100",
        Some("admin"),
        None,
        "",
    )
    .await;
    assert_eq!(resp.headers().get(TRUNCATED_HEADER).unwrap(), "true");
    let letters: Value = resp.json().await.unwrap();
    let letters = letters["dead_letters"].as_array().unwrap();
    assert!(
        !letters.is_empty() && letters.len() < 30,
        "{}",
        letters.len()
    );
    let seqs: HashSet<u64> = letters.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), letters.len(), "no letter twice");
    // Small letters all fit: the listing grows to its limit.
    let small = started(WorkQueueChannel::new("small").public()).await;
    let h2 = serve_with(
        Server::builder()
            .channel(small.clone())
            .max_body_bytes(1_000)
            .max_response_bytes(100_000),
    )
    .await;
    for i in 0..40 {
        small.write("w", &i).await.unwrap();
    }
    let c = small.claim("c", 40).await.unwrap();
    let ids: Vec<&str> = c.iter().map(|c| c.message.id.as_str()).collect();
    let _ = small.reject("c", &ids, "r").await.unwrap();
    let r = h2
        .get("/channels/small/dead-letters?limit=35", "admin")
        .await
        .ok();
    assert_eq!(r["dead_letters"].as_array().unwrap().len(), 35);
}

#[tokio::test]
async fn history_stays_within_the_budget_and_its_queries_are_checked() {
    let (h, feed, _) = budget_server(10_000).await;
    for i in 0..30 {
        feed.write("w", &kb(i)).await.unwrap();
    }
    let resp = send(
        &h,
        "GET",
        "/channels/feed/history?limit=30",
        Some("r"),
        None,
        "",
    )
    .await;
    assert_eq!(resp.headers().get(TRUNCATED_HEADER).unwrap(), "true");
    let text = resp.text().await.unwrap();
    assert!(
        text.len() <= 10_000 + 1_200,
        "a reply of {} bytes",
        text.len()
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let seqs: Vec<u64> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(!seqs.is_empty() && seqs.len() < 30, "{}", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first, none twice: {seqs:?}"
    );
    assert_eq!(seqs[0], 30);
    // A time range: oldest first.
    let r = h
        .get("/channels/feed/history?start=0&limit=2", "r")
        .await
        .ok();
    let first: Vec<u64> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(first, [1, 2]);
    let id = r["entries"][1]["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .get(&format!("/channels/feed/history?message_id={id}"), "r")
        .await
        .ok();
    assert_eq!(r["entries"][0]["seq"], 2);
    h.get(
        &format!("/channels/feed/history?message_id={id}&start=1"),
        "r",
    )
    .await
    .expect_error(400);
    h.get("/channels/feed/history?start=soon", "r")
        .await
        .expect_error(400);
    h.get("/channels/feed/history?end=inf", "r")
        .await
        .expect_error(400);
}

#[tokio::test]
async fn an_event_stream_catches_up_in_pages_without_gaps() {
    let (h, feed, _) = budget_server(5_000).await;
    for i in 0..40 {
        feed.write("w", &kb(i)).await.unwrap();
    }
    let mut events = h.events("feed", "dash", Some(3)).await;
    let ready = events.next().await.unwrap();
    assert_eq!(ready.id.as_deref(), Some("3"));
    for expected in 4..=40u64 {
        let (seq, msg) = events.next_message().await;
        assert_eq!(seq, expected);
        assert_eq!(
            &msg["content"]["data"].as_str().unwrap()[..4],
            format!("{:04}", expected - 1)
        );
    }
    // Then live.
    feed.write("w", &"live").await.unwrap();
    let (seq, msg) = events.next_message().await;
    assert_eq!(seq, 41);
    assert_eq!(msg["content"]["data"], "live");
}
