//! Test harness: a server on 127.0.0.1:0 and a small JSON client.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sssn::Channel;
use sssn::channel::ChannelBuilder;
use sssn::channel::kind::Typed;
use sssn_http::sse::{SseEvent, SseParser};
use sssn_http::{Server, ServerBuilder, ServerHandle};

pub struct Harness {
    pub server: ServerHandle,
    pub http: reqwest::Client,
}

/// Builds and starts a channel; the server holds the type-erased handle.
pub async fn started<K: Typed>(builder: ChannelBuilder<K>) -> Channel {
    let ch = builder.build();
    ch.start().await.unwrap();
    ch.erased()
}

pub async fn serve(channels: Vec<Channel>) -> Harness {
    serve_with(Server::builder().channels(channels)).await
}

pub async fn serve_with(builder: ServerBuilder) -> Harness {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    Harness {
        server,
        http: reqwest::Client::new(),
    }
}

/// A response: status, raw text, and the JSON value when it parses.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub content_type: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.status, self.text))
    }

    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn kind(&self) -> String {
        self.json()["kind"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the status and that the body is a JSON error with a detail.
    pub fn expect_error(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "error bodies are JSON: {:?}",
            self.content_type
        );
        assert!(
            !self.detail().is_empty(),
            "error has a detail: {}",
            self.text
        );
        self
    }

    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text);
        self.json()
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            text,
            content_type,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: &str) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &str) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Opens an event stream.
    pub async fn events(
        &self,
        channel: &str,
        token: &str,
        last_event_id: Option<u64>,
    ) -> EventReader {
        let mut req = self
            .http
            .get(self.url(&format!("/channels/{channel}/events")))
            .header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        EventReader {
            body: Box::pin(resp.bytes_stream()),
            parser: SseParser::new(),
            pending: std::collections::VecDeque::new(),
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

pub struct EventReader {
    body: ByteStream,
    parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
}

impl EventReader {
    /// The next event (bounded wait so a broken test fails instead of hanging).
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("no event within 10 s")?
                .ok()?;
            self.pending.extend(self.parser.push(&chunk));
        }
    }

    /// The next event that carries a message: (sequence, message JSON).
    pub async fn next_message(&mut self) -> (u64, Value) {
        loop {
            let e = self.next().await.expect("stream ended");
            if e.event.is_none() {
                let seq = e.id.unwrap().parse().unwrap();
                return (seq, serde_json::from_str(&e.data).unwrap());
            }
        }
    }
}

/// URL-safe base64 without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes URL-safe base64 without padding.
pub fn b64url_decode(text: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (val(c) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// A started periodic channel whose buffer holds `max` raw items and whose next cycle is
/// an hour away: its first cycle (at start) has run when this returns, so writes fill the
/// buffer and then get backpressure, deterministically.
pub async fn full_after(id: &str, max: usize) -> Channel {
    use sssn::channel::{PeriodicChannel, source_fn};
    let mut first = true;
    let source = source_fn(move || {
        let seed = std::mem::take(&mut first);
        async move {
            Ok(if seed {
                vec![sssn::Payload::Data(serde_json::json!("seed"))]
            } else {
                Vec::new()
            })
        }
    });
    let ch = started(
        PeriodicChannel::new(id, source)
            .period(Duration::from_secs(3600))
            .max_raw_buffer_size(max)
            .public(),
    )
    .await;
    for _ in 0..1000 {
        if ch.stats().await.unwrap().head_seq >= 1 {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the first cycle of '{id}' did not run");
}
