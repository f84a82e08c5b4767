//! The stream transport (`GET /stream`): choosing it and falling back to HTTP, many
//! requests in flight on one connection, the token at the upgrade, bad frames, dropped
//! connections, and the limits (body, frame, response budget, timeouts, connection cap,
//! shutdown). `remote_stream.rs` runs the remote client's cases over it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{serve, serve_with, started};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use sssn::channel::{PassthroughChannel, WorkQueueChannel};
use sssn::security::{JwtSecurity, Principal, Role, Security};
use sssn::{ChannelEndpoint, ErrorKind, Payload};
use sssn_http::{RemoteChannel, Server, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Raw = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw WebSocket to `server`'s `/stream` with `Authorization: Bearer <token>`.
async fn raw(server: &str, token: Option<&str>) -> Result<Raw, tungstenite::Error> {
    let url = format!("{}/stream", server.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request()?;
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

async fn send(ws: &mut Raw, head: Value, body: &str) {
    let frame = format!("{head}\n{body}");
    ws.send(Message::Binary(Bytes::from(frame))).await.unwrap();
}

/// The next answer: (head, body as JSON, or `null` when empty).
async fn answer(ws: &mut Raw) -> (Value, Value) {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer within 5 s")
            .expect("the stream is open")
            .expect("a readable message");
        let bytes = match m {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::from(t.as_str().to_owned()),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        };
        let at = bytes.iter().position(|&b| b == b'\n').unwrap();
        let head: Value = serde_json::from_slice(&bytes[..at]).unwrap();
        let body = if at + 1 == bytes.len() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes[at + 1..]).unwrap()
        };
        return (head, body);
    }
}

/// Waits for the server's close frame; returns its code and reason.
async fn closed(ws: &mut Raw) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed within 5 s")
        {
            Some(Ok(Message::Close(Some(f)))) => return (f.code, f.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("not a clean close: {e}"),
        }
    }
}

fn me(id: &str) -> Principal {
    Principal::local(id)
}

#[tokio::test]
async fn auto_takes_the_stream_and_falls_back_to_http_on_a_server_without_it() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve(vec![ch.clone()]).await;
    let remote = RemoteChannel::connect(&h.server.channel_url("p"), None).unwrap();
    assert_eq!(remote.transport_in_use(), None);
    remote
        .write_batch(&me("a"), vec![Payload::Data(json!(1))])
        .await
        .unwrap();
    assert_eq!(remote.transport_in_use(), Some(Transport::Stream));

    // The same routes without `/stream` (a server from before the transport): 404 at the
    // upgrade, so the client uses HTTP from then on.
    let router = Server::builder()
        .channel(ch.clone())
        .into_router(tokio_util::sync::CancellationToken::new())
        .unwrap()
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                if req.uri().path() == "/stream" {
                    axum::response::IntoResponse::into_response(
                        sssn_http::ApiError::route_not_found(),
                    )
                } else {
                    next.run(req).await
                }
            },
        ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let old = RemoteChannel::connect(&format!("http://{addr}/channels/p"), None).unwrap();
    old.write_batch(&me("a"), vec![Payload::Data(json!(2))])
        .await
        .unwrap();
    assert_eq!(old.transport_in_use(), Some(Transport::Http));
    let got = old
        .read(&me("a"), sssn::channel::ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "both writes, over either transport");
    // Asking for the stream on that server is an error, not a silent fallback.
    let forced = RemoteChannel::connect(&format!("http://{addr}/channels/p"), None)
        .unwrap()
        .transport(Transport::Stream);
    let err = forced.info(&me("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation, "{err}");
}

/// A stream server of its own: answers writes only once `n` requests are in flight, in
/// reverse order. A client that waited for each answer before sending the next would
/// never get one.
async fn answers_after(n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut ids = Vec::new();
        while ids.len() < n {
            let Some(Ok(Message::Binary(b))) = ws.next().await else {
                return;
            };
            let at = b.iter().position(|&c| c == b'\n').unwrap();
            let head: Value = serde_json::from_slice(&b[..at]).unwrap();
            assert_eq!(head["op"], "write");
            assert_eq!(head["channel"], "c");
            ids.push(head["id"].as_u64().unwrap());
        }
        for id in ids.into_iter().rev() {
            let frame = format!(
                "{{\"id\":{id},\"status\":200}}\n{{\"status\":\"accepted\",\"item_id\":\"m{id}\"}}"
            );
            ws.send(Message::Binary(Bytes::from(frame))).await.unwrap();
        }
        // Keep the connection open until the client goes.
        while ws.next().await.is_some() {}
    });
    format!("http://{addr}/channels/c")
}

#[tokio::test]
async fn four_producers_on_one_remote_channel_are_in_flight_together() {
    let url = answers_after(4).await;
    let remote = RemoteChannel::connect(&url, Some("token"))
        .unwrap()
        .transport(Transport::Stream)
        .timeout(Duration::from_secs(5));
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let remote = remote.clone();
            tokio::spawn(async move {
                remote
                    .write_batch(&me(&format!("p{i}")), vec![Payload::Data(json!(i))])
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for call in calls {
        ids.extend(call.await.unwrap().unwrap());
    }
    ids.sort();
    assert_eq!(
        ids,
        ["m1", "m2", "m3", "m4"],
        "each answer went to its caller"
    );
}

#[tokio::test]
async fn the_token_is_checked_at_the_upgrade_and_the_operation_per_frame() {
    let jwt = Arc::new(JwtSecurity::new("a-test-secret-that-is-32-bytes-long!").unwrap());
    let q = started(WorkQueueChannel::new("q").public().security(jwt.clone())).await;
    let h = serve(vec![q]).await;
    let url = h.server.url();

    for token in [None, Some("forged")] {
        match raw(&url, token).await {
            Err(tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 401, "{token:?}");
                let body: Value = serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["kind"], "unauthenticated", "{body}");
            }
            other => panic!("{token:?}: expected 401, got {:?}", other.map(|_| ())),
        }
    }
    let forged = RemoteChannel::connect(&h.server.channel_url("q"), Some("forged"))
        .unwrap()
        .transport(Transport::Stream);
    let err = forged.info(&me("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");

    // A reader's token opens the stream; a write on it is refused as over HTTP (403).
    let reader = jwt
        .generate_token("dash", Role::Read, None, Duration::from_secs(60))
        .unwrap();
    let mut ws = raw(&url, Some(&reader)).await.unwrap();
    send(
        &mut ws,
        json!({"id": 1, "op": "write", "channel": "q"}),
        "1",
    )
    .await;
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head, json!({"id": 1, "status": 403}));
    assert_eq!(body["kind"], "permission_denied");
    send(&mut ws, json!({"id": 2, "op": "info", "channel": "q"}), "").await;
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head["status"], 200);
    assert_eq!(body["id"], "q");
    let remote = RemoteChannel::connect(&h.server.channel_url("q"), Some(&reader))
        .unwrap()
        .transport(Transport::Stream);
    let err = remote
        .write_batch(&me("dash"), vec![Payload::Data(json!(1))])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[tokio::test]
async fn bad_frames_are_answered_400_and_the_connection_stays_open() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve(vec![ch]).await;
    let mut ws = raw(&h.server.url(), Some("a")).await.unwrap();

    ws.send(Message::Binary(Bytes::from_static(b"not json\n{}")))
        .await
        .unwrap();
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head, json!({"id": null, "status": 400}));
    assert_eq!(body["kind"], "invalid_argument");

    let cases = [
        (
            json!({"id": 2, "op": "nope", "channel": "p"}),
            "Unknown operation",
        ),
        (
            json!({"id": 3, "op": "events", "channel": "p"}),
            "not carried",
        ),
        (json!({"id": 4, "op": "read"}), "needs a channel"),
        (
            json!({"id": 5, "op": "read", "channel": "p", "query": "limit=x"}),
            "limit",
        ),
        (
            json!({"id": 6, "op": "read", "channel": "p", "query": "a b"}),
            "query",
        ),
        (json!({"id": 7, "op": "write", "channel": "p"}), ""),
    ];
    for (head, says) in cases {
        let id = head["id"].clone();
        send(&mut ws, head, "").await;
        let (answer_head, body) = answer(&mut ws).await;
        assert_eq!(answer_head["id"], id);
        assert_eq!(answer_head["status"], 400, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{id}: {body}"
        );
    }
    send(
        &mut ws,
        json!({"id": 8, "op": "write", "channel": "p"}),
        "{\"n\":1}",
    )
    .await;
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head, json!({"id": 8, "status": 200}));
    assert_eq!(body["status"], "accepted");
    // Text frames are read the same way (handy with a WebSocket console).
    ws.send(Message::text("{\"id\":9,\"op\":\"listChannels\"}"))
        .await
        .unwrap();
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head, json!({"id": 9, "status": 200}));
    assert!(
        body["channels"].is_object() || body["channels"].is_array(),
        "{body}"
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_request_is_reported_and_the_next_call_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // First connection: read the request, then drop the socket without an answer.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let _ = ws.next().await;
        drop(ws);
        // Second: answer properly.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(Message::Binary(b))) = ws.next().await {
            let at = b.iter().position(|&c| c == b'\n').unwrap();
            let head: Value = serde_json::from_slice(&b[..at]).unwrap();
            let frame = format!(
                "{{\"id\":{},\"status\":200}}\n{{\"id\":\"c\",\"name\":\"c\"}}",
                head["id"]
            );
            ws.send(Message::Binary(Bytes::from(frame))).await.unwrap();
        }
    });
    let remote = RemoteChannel::connect(&format!("http://{addr}/channels/c"), Some("t"))
        .unwrap()
        .transport(Transport::Stream)
        .timeout(Duration::from_secs(20));
    let t = std::time::Instant::now();
    let err = remote.info(&me("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.to_string().contains("outcome is unknown"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "reported at once, not at the timeout"
    );
    let info = remote.info(&me("x")).await.unwrap();
    assert_eq!(info.id, "c", "a new connection for the next call");
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while ws.next().await.is_some() {} // reads, never answers
    });
    let remote = RemoteChannel::connect(&format!("http://{addr}/channels/c"), Some("t"))
        .unwrap()
        .transport(Transport::Stream)
        .timeout(Duration::from_millis(300));
    let t = std::time::Instant::now();
    let err = remote.claim(&me("x"), 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn body_limit_nesting_frame_cap_and_response_budget_are_the_routes() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve_with(
        Server::builder()
            .channel(ch.clone())
            .max_body_bytes(1024)
            .max_response_bytes(300),
    )
    .await;
    let mut ws = raw(&h.server.url(), Some("a")).await.unwrap();
    // Over the body limit (within the discard cap): the route's 413, connection kept.
    let big = format!("\"{}\"", "x".repeat(2000));
    send(
        &mut ws,
        json!({"id": 1, "op": "write", "channel": "p"}),
        &big,
    )
    .await;
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head["status"], 413, "{body}");
    // Nesting past the limit: the route's 400.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    send(
        &mut ws,
        json!({"id": 2, "op": "write", "channel": "p"}),
        &deep,
    )
    .await;
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head["status"], 400, "{body}");
    // The response budget: a read cut short says so.
    for i in 0..5 {
        let body = format!("\"{}{i}\"", "y".repeat(100));
        send(
            &mut ws,
            json!({"id": 10 + i, "op": "write", "channel": "p"}),
            &body,
        )
        .await;
        assert_eq!(answer(&mut ws).await.0["status"], 200);
    }
    send(
        &mut ws,
        json!({"id": 20, "op": "read", "channel": "p", "query": "limit=5"}),
        "",
    )
    .await;
    let (head, body) = answer(&mut ws).await;
    assert_eq!(head, json!({"id": 20, "status": 200, "truncated": true}));
    let n = body["messages"].as_array().unwrap().len();
    assert!((1..5).contains(&n), "{n} messages under a 300-byte budget");
    // A frame past the discard cap (16 MiB here) closes the connection with 1009.
    let huge = vec![b' '; 17 << 20];
    let mut frame = b"{\"id\":30,\"op\":\"write\",\"channel\":\"p\"}\n".to_vec();
    frame.extend_from_slice(&huge);
    let _ = ws.send(Message::Binary(Bytes::from(frame))).await;
    assert_eq!(closed(&mut ws).await.0, CloseCode::Size);
    // RemoteChannel sends such bodies over HTTP: the route's 413, not a closed stream.
    let remote = RemoteChannel::connect(&h.server.channel_url("p"), None).unwrap();
    let err = remote
        .write_batch(&me("a"), vec![Payload::Data(json!("z".repeat(17 << 20)))])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("1024"), "names the limit: {err}");
}

#[tokio::test]
async fn idle_streams_close_and_the_client_opens_a_new_one() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve_with(
        Server::builder()
            .channel(ch)
            .idle_timeout(Some(Duration::from_millis(300))),
    )
    .await;
    let mut ws = raw(&h.server.url(), Some("a")).await.unwrap();
    send(&mut ws, json!({"id": 1, "op": "info", "channel": "p"}), "").await;
    assert_eq!(answer(&mut ws).await.0["status"], 200);
    let t = std::time::Instant::now();
    let (code, reason) = closed(&mut ws).await;
    assert_eq!((code, reason.as_str()), (CloseCode::Normal, "idle"));
    assert!(t.elapsed() >= Duration::from_millis(250));

    let remote = RemoteChannel::connect(&h.server.channel_url("p"), None)
        .unwrap()
        .transport(Transport::Stream);
    remote.info(&me("a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        remote.transport_in_use(),
        None,
        "the idle stream was closed"
    );
    remote.info(&me("a")).await.unwrap();
    assert_eq!(remote.transport_in_use(), Some(Transport::Stream));
}

#[tokio::test]
async fn an_open_stream_holds_its_connection_slot() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve_with(Server::builder().channel(ch).max_connections(1)).await;
    let mut ws = raw(&h.server.url(), Some("a")).await.unwrap();
    send(&mut ws, json!({"id": 1, "op": "info", "channel": "p"}), "").await;
    assert_eq!(answer(&mut ws).await.0["status"], 200);
    // At the cap: a second connection waits in the backlog while the stream is open.
    let http = reqwest::Client::new();
    let health = h.server.url() + "/healthz";
    let waited = http
        .get(&health)
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert!(waited.is_err(), "served past the cap: {waited:?}");
    ws.close(None).await.unwrap();
    let served = http
        .get(&health)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn shutdown_closes_open_streams_with_1001() {
    let ch = started(PassthroughChannel::new("p").public()).await;
    let h = serve(vec![ch]).await;
    let mut ws = raw(&h.server.url(), Some("a")).await.unwrap();
    send(&mut ws, json!({"id": 1, "op": "info", "channel": "p"}), "").await;
    assert_eq!(answer(&mut ws).await.0["status"], 200);
    let stopping = tokio::spawn(h.server.shutdown());
    let (code, _) = closed(&mut ws).await;
    assert_eq!(code, CloseCode::Away);
    drop(ws);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown does not wait forever")
        .unwrap()
        .unwrap();
}

/// The operations a frame serves without the router (reads, writes, claims, settles)
/// answer exactly as their HTTP routes do: the same status, the same body, refusals
/// included, in the same order of checks (channel, token, query, body limit, body).
#[tokio::test]
async fn frames_served_without_the_router_answer_as_their_routes() {
    let jwt = Arc::new(JwtSecurity::new("a-test-secret-that-is-32-bytes-long!").unwrap());
    let q = started(
        WorkQueueChannel::new("q")
            .public()
            .security(jwt.clone())
            .max_deliveries(2),
    )
    .await;
    let h = serve_with(Server::builder().channel(q).max_body_bytes(256)).await;
    let url = h.server.url();
    let token = |role| {
        jwt.generate_token("w", role, None, Duration::from_secs(60))
            .unwrap()
    };
    let (writer, reader) = (token(Role::Write), token(Role::Read));
    let big = format!("\"{}\"", "x".repeat(300));
    // (token, op, channel, query, body): each is also the HTTP request of its route.
    let cases: Vec<(&str, &str, &str, &str, String)> = vec![
        (&writer, "write", "q", "kind=nope", "1".into()),
        (&writer, "write", "q", "kind=content", "1".into()),
        (&writer, "write", "q", "", big.clone()),
        (&writer, "write", "q", "", "{not json".into()),
        (&writer, "write", "q", "", String::new()),
        (&writer, "write", "nope", "", "1".into()),
        (&reader, "write", "q", "", "1".into()),
        (&reader, "writeBatch", "q", "", "[1,2]".into()),
        (&writer, "writeBatch", "q", "", "{}".into()),
        (&writer, "writeBatch", "q", "kind=x", "[1]".into()),
        (&writer, "claim", "q", "limit=x", String::new()),
        (&reader, "claim", "q", "limit=1", String::new()),
        (&writer, "read", "q", "exclusive=maybe", String::new()),
        (&writer, "read", "nope", "", String::new()),
        (
            &writer,
            "acknowledge",
            "q",
            "",
            r#"{"message_ids":["gone"]}"#.into(),
        ),
        (
            &writer,
            "acknowledge",
            "q",
            "",
            r#"{"message_ids":7}"#.into(),
        ),
        (&writer, "acknowledge", "q", "", big.clone()),
        (
            &writer,
            "nack",
            "q",
            "",
            r#"{"message_ids":["gone"],"delay_ms":-1}"#.into(),
        ),
        (
            &writer,
            "extend",
            "q",
            "",
            r#"{"message_ids":["gone"]}"#.into(),
        ),
        (
            &writer,
            "reject",
            "q",
            "",
            r#"{"message_ids":["gone"],"reason":"r"}"#.into(),
        ),
        (
            &writer,
            "redrive",
            "q",
            "",
            r#"{"message_ids":["gone"]}"#.into(),
        ),
        (
            &writer,
            "remove",
            "q",
            "",
            r#"{"message_ids":["gone"]}"#.into(),
        ),
        (
            &writer,
            "ackAndClaim",
            "q",
            "limit=0",
            r#"{"message_ids":["gone"]}"#.into(),
        ),
        (
            &writer,
            "ackAndClaim",
            "q",
            "limit=x",
            r#"{"message_ids":["gone"]}"#.into(),
        ),
        (
            &reader,
            "ackAndClaim",
            "q",
            "",
            r#"{"message_ids":[]}"#.into(),
        ),
    ];
    let mut sockets = std::collections::HashMap::new();
    for (i, (tok, op, channel, query, body)) in cases.into_iter().enumerate() {
        let route = sssn_http::stream::stream_route(op).unwrap();
        let path = route.path.replacen("{id}", channel, 1);
        let mut request = h
            .http
            .request(
                route.method.parse().unwrap(),
                format!("{url}{path}?{query}"),
            )
            .bearer_auth(tok)
            .body(body.clone());
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let over_http = request.send().await.unwrap();
        let http_status = over_http.status().as_u16();
        let http_body: Value = serde_json::from_slice(&over_http.bytes().await.unwrap()).unwrap();

        if !sockets.contains_key(tok) {
            sockets.insert(tok, raw(&url, Some(tok)).await.unwrap());
        }
        let ws = sockets.get_mut(tok).unwrap();
        let id = 100 + i as u64;
        let mut head = json!({"id": id, "op": op, "channel": channel});
        if !query.is_empty() {
            head["query"] = json!(query);
        }
        send(ws, head, &body).await;
        let (answer_head, frame_body) = answer(ws).await;
        assert_eq!(answer_head["id"], id);
        let case = format!("{op} {channel}?{query} {body:.40}");
        assert_eq!(answer_head["status"], http_status, "{case}: {frame_body}");
        if http_status == 200 {
            // Writes name new ids; the rest is the same.
            for key in ["item_id", "item_ids"] {
                if let Some(v) = http_body.get(key) {
                    assert_eq!(v.is_array(), frame_body[key].is_array(), "{case}");
                }
            }
            let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
            assert_eq!(keys(&http_body), keys(&frame_body), "{case}");
            if http_body.get("item_id").is_none() && http_body.get("item_ids").is_none() {
                assert_eq!(http_body, frame_body, "{case}");
            }
        } else {
            assert_eq!(http_body, frame_body, "{case}");
        }
    }
}

/// A caller whose frame cannot be written yet (the server is busy sending answers
/// nobody waits for, and reads nothing until they are read) reads meanwhile, so the
/// connection moves on instead of both ends waiting for each other.
#[tokio::test]
async fn a_caller_reads_while_its_write_waits_for_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        // 32 MiB of answers to no one, more than both sockets' buffers hold.
        let junk = Bytes::from(format!(
            "{{\"id\":999999,\"status\":200}}\n\"{}\"",
            "j".repeat(1 << 20)
        ));
        for _ in 0..32 {
            ws.send(Message::Binary(junk.clone())).await.unwrap();
        }
        while let Some(Ok(m)) = ws.next().await {
            let Message::Binary(b) = m else { continue };
            let at = b.iter().position(|&c| c == b'\n').unwrap();
            let head: Value = serde_json::from_slice(&b[..at]).unwrap();
            let frame = format!(
                "{{\"id\":{},\"status\":200}}\n{{\"status\":\"accepted\",\"item_id\":\"m\"}}",
                head["id"]
            );
            ws.send(Message::Binary(Bytes::from(frame))).await.unwrap();
        }
    });
    let remote = RemoteChannel::connect(&format!("http://{addr}/channels/c"), Some("t"))
        .unwrap()
        .transport(Transport::Stream)
        .timeout(Duration::from_secs(30));
    // 12 MiB: more than the sockets buffer while the server is not reading.
    let big = Payload::Data(json!("b".repeat(12 << 20)));
    let ids = remote.write_batch(&me("p"), vec![big]).await.unwrap();
    assert_eq!(ids, ["m"]);
}
