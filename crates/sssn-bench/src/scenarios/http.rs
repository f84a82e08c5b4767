//! `http`: channels over loopback HTTP (`sssn-http` server and `RemoteChannel` client,
//! both in this process, open security). One `reqwest::Client` (keep-alive, `TCP_NODELAY`)
//! serves ours and the baselines alike.
//!
//! * **write**: 8 tasks share the client (so 8 keep-alive connections) and each writes
//!   small JSON messages one per request (`PUT /channels/{id}`, v1's route) through
//!   `RemoteChannel`. Baseline: the same 8 tasks sending the same JSON body with the same
//!   headers to a bare axum handler that reads the body and returns 200.
//! * **batch**: the same with 1,000 messages per request (`POST …/batch`); messages/s.
//!   Baseline: the same body to a bare axum handler returning 200.
//! * **sse**: one remote subscriber on a broadcast channel (`GET …/events`, decoded into
//!   messages by `RemoteChannel`) while the server side writes N messages in batches of
//!   1,000; messages/s until the subscriber has them all. Baseline: a bare axum handler
//!   streaming the same N events, pre-encoded, read with the same client and decoded the
//!   same way (SSE parsing + `ChannelMessage::from_json`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use bytes::BytesMut;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::security::Principal;
use sssn::{ChannelEndpoint, ChannelMessage, Payload};
use sssn_http::sse::{SseParser, encode_event};
use sssn_http::{RemoteChannel, Server};
use tokio::net::TcpListener;

use super::{Config, paired, record, secs};
use crate::report::{Better, Figure, Goal, Outcome};

const CONNECTIONS: usize = 8;
const BATCH: usize = 1_000;

struct Setup {
    client: reqwest::Client,
    writes: sssn::WorkQueueChannel,
    feed: sssn::BroadcastChannel,
    writes_url: String,
    feed_url: String,
    bare: String,
}

/// Runs the scenario.
pub async fn run(cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    let writes = WorkQueueChannel::new("bench-writes").public().build();
    let feed = BroadcastChannel::new("bench-feed").public().build();
    writes.start().await?;
    feed.start().await?;
    let server = Server::builder()
        .channel(writes.clone())
        .channel(feed.clone())
        .max_body_bytes(8 << 20)
        .bind("127.0.0.1:0")
        .await?;
    let sse_n = cfg.size(50_000, 10_000);
    let bare = bare_server(sse_n).await?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?;
    let s = Arc::new(Setup {
        client,
        writes_url: server.channel_url("bench-writes"),
        feed_url: server.channel_url("bench-feed"),
        writes,
        feed,
        bare,
    });

    let n = cfg.size(16_000, 1_600);
    let (ours, base) = paired(
        "http",
        cfg.runs,
        || remote_writes(s.clone(), n, 1),
        || bare_writes(s.clone(), n, 1),
    )
    .await?;
    let mut out: Vec<Outcome> = vec![
        Figure::new("http/write", "writes/s", Better::Higher)
            .ours(ours)
            .baseline("bare axum handler returning 200, same client and body", base)
            .goal(Goal::AtLeast(30_000.0))
            .goal(Goal::RatioAtLeast(0.3))
            .note(format!(
                "{n} writes of one small JSON message (PUT) over {CONNECTIONS} keep-alive connections, RemoteChannel → sssn-http → work queue (memory store)"
            ))
            .into(),
    ];

    let n = cfg.size(160_000, 16_000);
    let (ours, base) = paired(
        "http",
        cfg.runs,
        || remote_writes(s.clone(), n, BATCH),
        || bare_writes(s.clone(), n, BATCH),
    )
    .await?;
    out.push(
        Figure::new("http/batch", "msgs/s", Better::Higher)
            .ours(ours)
            .baseline(
                "bare axum handler returning 200, same client and body",
                base,
            )
            .goal(Goal::AtLeast(300_000.0))
            .note(format!(
                "{n} messages in requests of {BATCH} (POST …/batch) over {CONNECTIONS} connections"
            ))
            .into(),
    );

    let (ours, base) = paired(
        "http",
        cfg.runs,
        || remote_sse(s.clone(), sse_n),
        || bare_sse(s.clone(), sse_n),
    )
    .await?;
    out.push(
        Figure::new("http/sse", "msgs/s", Better::Higher)
            .ours(ours)
            .baseline(
                "bare axum handler streaming the same events pre-encoded, same client and decoding",
                base,
            )
            .goal(Goal::AtLeast(100_000.0))
            .note(format!(
                "{sse_n} messages written on the server (batches of {BATCH}) and pushed over SSE to one RemoteChannel subscriber"
            ))
            .into(),
    );
    server.shutdown().await?;
    Ok(out)
}

/// Starts the bare axum server: `PUT`/`POST` handlers that read the body and return 200,
/// and an event stream of `events` pre-encoded messages. Returns its URL.
async fn bare_server(events: usize) -> anyhow::Result<String> {
    let mut chunks = Vec::new();
    let mut buf = BytesMut::new();
    for i in 0..events {
        let m = ChannelMessage::with_data("producer", &record(i))?;
        encode_event(&mut buf, None, Some(i as u64 + 1), &m.to_json());
        if buf.len() >= 64 * 1024 {
            chunks.push(buf.split().freeze());
        }
    }
    chunks.push(buf.freeze());
    let chunks = Arc::new(chunks);
    async fn ok(body: Bytes) -> StatusCode {
        std::hint::black_box(body);
        StatusCode::OK
    }
    let router = Router::new()
        .route("/channels/{id}", put(ok))
        .route("/channels/{id}/batch", post(ok))
        .route(
            "/channels/{id}/events",
            get(move || {
                let chunks = chunks.clone();
                async move {
                    let stream = futures::stream::iter(
                        (0..chunks.len()).map(move |i| Ok::<_, std::io::Error>(chunks[i].clone())),
                    );
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                        Body::from_stream(stream),
                    )
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("bare axum server failed: {e}");
        }
    });
    Ok(format!("http://{addr}/channels/bare"))
}

use axum::serve::ListenerExt as _;

/// `n` messages written through `RemoteChannel`, `per_request` per request, over
/// `CONNECTIONS` concurrent tasks; messages/s.
async fn remote_writes(s: Arc<Setup>, n: usize, per_request: usize) -> anyhow::Result<f64> {
    let remote = RemoteChannel::connect(&s.writes_url, None)?.with_client(s.client.clone());
    let per_task = n / CONNECTIONS;
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let remote = remote.clone();
        tasks.spawn(async move {
            let me = Principal::local(format!("writer-{c}"));
            let mut i = 0;
            while i < per_task {
                let k = per_request.min(per_task - i);
                let batch: Vec<Payload> = (i..i + k).map(|j| Payload::Data(record(j))).collect();
                let ids = remote.write_batch(&me, batch).await?;
                ensure!(ids.len() == k, "{} ids for {k} messages", ids.len());
                i += k;
            }
            anyhow::Ok(i)
        });
    }
    let mut written = 0;
    while let Some(r) = tasks.join_next().await {
        written += r.context("writer task")??;
    }
    let elapsed = secs(t);
    let stored = s.writes.stats().await?.stored;
    ensure!(
        stored == written as u64,
        "{stored} stored of {written} written"
    );
    s.writes.clear("admin").await?;
    Ok(written as f64 / elapsed)
}

/// The same requests against the bare handler; messages/s.
async fn bare_writes(s: Arc<Setup>, n: usize, per_request: usize) -> anyhow::Result<f64> {
    let per_task = n / CONNECTIONS;
    let url = if per_request == 1 {
        s.bare.clone()
    } else {
        format!("{}/batch?kind=data", s.bare)
    };
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let client = s.client.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let auth = format!("Bearer writer-{c}");
            let mut i = 0;
            while i < per_task {
                let k = per_request.min(per_task - i);
                let body = if per_request == 1 {
                    serde_json::to_vec(&record(i))?
                } else {
                    let items: Vec<Value> = (i..i + k).map(record).collect();
                    serde_json::to_vec(&items)?
                };
                let method = if per_request == 1 {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::POST
                };
                let r = client
                    .request(method, &url)
                    .header(AUTHORIZATION, &auth)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await?;
                ensure!(r.status() == StatusCode::OK, "bare handler: {}", r.status());
                std::hint::black_box(r.bytes().await?);
                i += k;
            }
            anyhow::Ok(i)
        });
    }
    let mut written = 0;
    while let Some(r) = tasks.join_next().await {
        written += r.context("writer task")??;
    }
    Ok(written as f64 / secs(t))
}

/// One remote subscriber receives `n` messages written on the server side; messages/s.
async fn remote_sse(s: Arc<Setup>, n: usize) -> anyhow::Result<f64> {
    let remote = RemoteChannel::connect(&s.feed_url, None)?.with_client(s.client.clone());
    let mut sub = remote
        .subscribe(&Principal::local("sse-reader"), None)
        .await?;
    let t = Instant::now();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            match sub.next().await {
                Some(entry) => {
                    std::hint::black_box(entry);
                    got += 1;
                }
                None => break,
            }
        }
        got
    });
    for from in (0..n).step_by(BATCH) {
        let batch = (from..(from + BATCH).min(n))
            .map(|i| Payload::Data(record(i)))
            .collect();
        s.feed.write_batch("producer", batch).await?;
    }
    let got = reader.await.context("SSE reader")?;
    let elapsed = secs(t);
    ensure!(got == n, "received {got} of {n}");
    remote.unsubscribe(&Principal::local("sse-reader")).await;
    s.feed.clear("admin").await?;
    Ok(n as f64 / elapsed)
}

/// The same client reads the bare event stream and decodes every event; messages/s.
async fn bare_sse(s: Arc<Setup>, n: usize) -> anyhow::Result<f64> {
    let response = s
        .client
        .get(format!("{}/events", s.bare))
        .header(AUTHORIZATION, "Bearer sse-reader")
        .header("accept", "text/event-stream")
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "bare events: {}",
        response.status()
    );
    // Like ours, timed from an open stream.
    let t = Instant::now();
    let mut body = response.bytes_stream();
    let mut parser = SseParser::new();
    let mut got = 0;
    while let Some(chunk) = body.next().await {
        for event in parser.push(&chunk?) {
            let message = ChannelMessage::from_json(&event.data)?;
            std::hint::black_box(message);
            got += 1;
        }
    }
    let elapsed = secs(t);
    ensure!(got == n, "received {got} of {n}");
    Ok(n as f64 / elapsed)
}
