//! The stream transport: the routes of [`crate::api`] as frames on one WebSocket.
//!
//! HTTP/1.1 costs one request (and its parsing, wake-ups and allocations) per operation.
//! On the stream, one connection carries many operations at once: each request is one
//! binary WebSocket message naming a route of the table by its OpenAPI operation id, and
//! each answer is one message carrying the same status and JSON body the route answers.
//! The server runs every frame through the same router as an HTTP request, so semantics,
//! authentication, authorisation, error kinds, body limit, nesting limit and response
//! byte budget are the routes' own: nothing here re-implements an operation.
//!
//! ```text
//! GET /stream  (Upgrade: websocket, Authorization: Bearer <token>)
//!
//! request  = {"id":7,"op":"claim","channel":"jobs","query":"limit=10"} LF [body]
//! answer   = {"id":7,"status":200} LF body
//!          | {"id":7,"status":200,"truncated":true} LF body
//! ```
//!
//! `docs/http-api.md` ("The stream transport") is the protocol's reference.
//!
//! * `server/stream.rs`: the upgrade (the token is checked there) and the connection loop;
//! * `client`: the connection [`crate::RemoteChannel`] multiplexes its calls over.

pub(crate) mod client;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::{ROUTES, Route};

/// The path of the upgrade, at the server's root (beside `/channels`).
pub const STREAM_PATH: &str = "/stream";

/// The most requests one connection has in flight on the server; past it the server reads
/// no further frames until answers have gone out (TCP pushes back on the client).
pub const MAX_IN_FLIGHT: usize = 256;

/// Bodies at least this large go over plain HTTP from [`crate::RemoteChannel`]: the
/// server's largest accepted frame is never smaller, so an oversized body gets its `413`
/// instead of a closed connection.
pub const LARGE_BODY: usize = 16 << 20;

/// The WebSocket read buffer of both ends. tungstenite zero-fills the free part of its
/// read buffer before every read, so its default (128 KiB) costs a 128 KiB `memset` per
/// small frame; a larger frame is still read whole, in reads of this size.
pub(crate) const READ_BUFFER: usize = 16 << 10;

/// Room for a request's head line on top of its body in the server's frame limit.
pub(crate) const HEAD_ALLOWANCE: usize = 64 << 10;

/// Which transport a [`crate::RemoteChannel`] sends its operations over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// The stream when the server offers it (tried at the first call), plain HTTP
    /// otherwise, and for bodies of [`LARGE_BODY`] or more.
    #[default]
    Auto,
    /// The stream only: a server without it is an error.
    Stream,
    /// One HTTP/1.1 request per operation.
    Http,
}

/// `key=value&…`, each part percent-encoded (what a frame's `query` holds).
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&crate::server::encode_segment(k));
        out.push('=');
        out.push_str(&crate::server::encode_segment(v));
    }
    out
}

/// The head line of a request frame.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestHead {
    /// Chosen by the client; the answer carries it back. Unique among the requests in
    /// flight on the connection.
    pub id: u64,
    /// A route's OpenAPI operation id (`write`, `claim`, `acknowledge`, …).
    pub op: String,
    /// The channel, for the routes under `/channels/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The route's query string, URL-encoded, without `?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// The head line of an answer frame.
#[derive(Debug, Serialize, Deserialize)]
pub struct AnswerHead {
    /// The request's id; `null` when the request frame was too broken to have one.
    pub id: Option<u64>,
    /// The HTTP status the route answered with.
    pub status: u16,
    /// The route's `X-Sssn-Truncated: true` (a reply cut short by the byte budget).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Splits a frame into its head line (JSON) and the body after the first `\n`.
pub(crate) fn split_frame(frame: &Bytes) -> (&[u8], Bytes) {
    match frame.iter().position(|&b| b == b'\n') {
        Some(at) => (&frame[..at], frame.slice(at + 1..)),
        None => (&frame[..], Bytes::new()),
    }
}

/// Joins a head and a body into one frame.
pub(crate) fn join_frame<H: Serialize>(head: &H, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + body.len());
    // A head is plain data: serialising it cannot fail.
    let _ = serde_json::to_writer(&mut out, head);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The route an operation id names, if the stream carries it. Every route of the table
/// does, except the endless ones (server push: its `text/event-stream` reply has no end to
/// put in one answer).
pub fn stream_route(operation: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .copied()
        .find(|r| r.operation == operation)
        .filter(|r| carried(r))
}

/// Whether the stream carries `route`.
pub fn carried(route: &Route) -> bool {
    route.reply.media != "text/event-stream"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_but_server_push_is_carried() {
        for r in ROUTES {
            let carried = stream_route(r.operation).is_some();
            assert_eq!(carried, r.operation != "events", "{}", r.operation);
        }
        assert!(stream_route("nope").is_none());
    }

    #[test]
    fn frames_split_at_the_first_newline() {
        let f = Bytes::from(join_frame(
            &AnswerHead {
                id: Some(3),
                status: 200,
                truncated: false,
            },
            b"{\"a\":\n1}",
        ));
        let (head, body) = split_frame(&f);
        assert_eq!(head, br#"{"id":3,"status":200}"#);
        assert_eq!(&body[..], b"{\"a\":\n1}");
        let bare = Bytes::from_static(b"{}");
        let (head, body) = split_frame(&bare);
        assert_eq!(head, b"{}");
        assert!(body.is_empty());
    }
}
