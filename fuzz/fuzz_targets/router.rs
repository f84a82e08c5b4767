//! The whole HTTP surface: arbitrary method, path, token and body against the router with
//! a passthrough, a work queue and a broadcast channel. No request may crash the server
//! or get a 500, and every error answer is JSON with a `detail`.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use sssn::channel::{BroadcastChannel, PassthroughChannel, WorkQueueChannel};
use sssn_http::Server;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::PATCH,
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(selector) % METHODS.len()].clone();
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let path = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let uri = format!("/{}", path.trim_start_matches('/'));
    let mut request = Request::builder().method(method).uri(uri.as_str());
    if selector & 0x80 == 0 {
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(token);
        request = request.header("authorization", value);
    }
    if selector & 0x40 != 0 {
        request = request.header("last-event-id", token);
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };
    runtime().block_on(async move {
        let channels = [
            PassthroughChannel::new("p").public().build().erased(),
            WorkQueueChannel::new("q").public().build().erased(),
            BroadcastChannel::new("b").public().build().erased(),
        ];
        for c in &channels {
            c.start().await.unwrap();
        }
        let shutdown = CancellationToken::new();
        let router = Server::builder()
            .channels(channels.iter().cloned())
            .max_body_bytes(4096)
            .into_router(shutdown.clone())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        assert_ne!(status.as_u16(), 500, "{uri}");
        if status.as_u16() >= 400 {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error body");
            assert!(value["detail"].is_string(), "{uri}: {value}");
        }
        shutdown.cancel();
        for c in &channels {
            c.stop().await;
        }
    });
});
