//! The web console at `/ui`: static assets embedded in the binary (plain JavaScript
//! modules, no build step, no network at run time), and the read-only routes it needs
//! beyond the channel API: the topology (systems and their wiring) and traces (one
//! record's path, from the hop journal of `sssn::trace`). The console is an ordinary
//! client: the browser holds a token, and every figure comes through the same HTTP API and
//! security as any other caller. Nothing but the page itself is served without a token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sssn::ErrorKind;
use sssn::system::{SystemHandle, SystemState};
use sssn::trace::journal;

use crate::api::{self};
use crate::error::ApiError;
use crate::server::AppState;
use crate::server::routes::{json, query};

/// Traces the journal keeps for the console when a server turns it on.
pub(crate) const JOURNAL_TRACES: usize = 2_000;

/// One embedded file.
struct Asset {
    path: &'static str,
    media: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        media: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "console.css",
        media: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        path: "console.js",
        media: "text/javascript; charset=utf-8",
        body: include_str!("assets/console.js"),
    },
    Asset {
        path: "api.js",
        media: "text/javascript; charset=utf-8",
        body: include_str!("assets/api.js"),
    },
    Asset {
        path: "graph.js",
        media: "text/javascript; charset=utf-8",
        body: include_str!("assets/graph.js"),
    },
];

fn asset(path: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::route_not_found().into_response();
    };
    let mut r = (StatusCode::OK, a.body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.media));
    // The page loads only its own files and talks only to this server.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The console's static routes (`/ui`, `/ui/`, `/ui/<file>`), merged into the server's
/// router next to the API table.
pub(crate) fn assets_router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/ui",
            get(|| async {
                let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
                r
            }),
        )
        .route("/ui/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

/// A system as the console shows it.
#[derive(Serialize)]
struct SystemView {
    id: String,
    state: SystemState,
    restarts: u64,
    steps: u64,
    last_error: Option<String>,
    reads: Vec<String>,
    writes: Vec<String>,
}

/// A channel node of the topology.
#[derive(Serialize)]
struct ChannelNode {
    id: String,
    name: String,
    kind: sssn::ChannelKind,
}

#[derive(Serialize)]
struct Topology {
    channels: Vec<ChannelNode>,
    systems: Vec<SystemView>,
}

/// `GET /topology`: the channels the token may read, and the systems wired to them with
/// their wiring restricted to those channels.
pub(crate) async fn topology(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let readable = state.readable_ids(&headers)?;
    let channels = state
        .served()
        .filter(|c| readable.contains(&c.id().to_owned()))
        .map(|c| {
            let info = c.info();
            ChannelNode {
                id: info.id,
                name: info.name,
                kind: c.kind(),
            }
        })
        .collect();
    let keep = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .filter(|i| readable.contains(i))
            .cloned()
            .collect()
    };
    let systems = state
        .systems()
        .iter()
        .map(|s: &SystemHandle| SystemView {
            id: s.id().to_owned(),
            state: s.state(),
            restarts: s.restarts(),
            steps: s.steps(),
            last_error: s.last_error(),
            reads: keep(s.reads()),
            writes: keep(s.writes()),
        })
        .filter(|s| !s.reads.is_empty() || !s.writes.is_empty())
        .collect();
    Ok(json(&Topology { channels, systems }))
}

/// `GET /traces`: the newest traces with a hop on a channel the token may read.
pub(crate) async fn traces(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let readable = state.readable_ids(&headers)?;
    let limit = api::TRACES_LIMIT.get(&query(&uri)?, 1_000)?;
    let Some(j) = journal::get() else {
        return Ok(json(&serde_json::json!({"traces": []})));
    };
    let traces: Vec<_> = j
        .recent(limit.saturating_mul(4))
        .into_iter()
        .filter(|t| {
            j.trace(&t.trace_id)
                .is_some_and(|hops| hops.iter().any(|h| readable.contains(&h.channel)))
        })
        .take(limit)
        .collect();
    Ok(json(&serde_json::json!({ "traces": traces })))
}

/// `GET /traces/{id}`: one trace's hops on channels the token may read, in time order.
pub(crate) async fn trace(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let readable = state.readable_ids(&headers)?;
    let hops: Vec<_> = journal::get()
        .and_then(|j| j.trace(&id))
        .unwrap_or_default()
        .into_iter()
        .filter(|h| readable.contains(&h.channel))
        .collect();
    if hops.is_empty() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "No trace '{id}' on a channel you may read (the journal keeps the newest {JOURNAL_TRACES})."
            ),
        ));
    }
    Ok(json(&serde_json::json!({ "trace_id": id, "hops": hops })))
}

/// The OpenAPI schemas of the console's routes.
pub(crate) mod schema {
    use serde_json::{Value, json};

    fn strings() -> Value {
        json!({"type": "array", "items": {"type": "string"}})
    }

    pub(crate) fn topology() -> Value {
        json!({"type": "object", "required": ["channels", "systems"], "properties": {
            "channels": {"type": "array", "items": {"type": "object",
                "required": ["id", "name", "kind"], "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"}}}},
            "systems": {"type": "array", "items": {"type": "object",
                "required": ["id", "state", "restarts", "steps", "reads", "writes"], "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": ["INIT", "RUNNING", "PAUSED", "STOPPED", "ERROR"]},
                "restarts": {"type": "integer", "minimum": 0},
                "steps": {"type": "integer", "minimum": 0},
                "last_error": {"type": ["string", "null"]},
                "reads": strings(), "writes": strings()}}}}})
    }

    pub(crate) fn traces() -> Value {
        json!({"type": "object", "required": ["traces"], "properties": {
            "traces": {"type": "array", "items": {"type": "object",
                "required": ["trace_id", "hops", "first_ms", "last_ms"], "properties": {
                "trace_id": {"type": "string"}, "hops": {"type": "integer", "minimum": 0},
                "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"}}}}}})
    }

    pub(crate) fn trace() -> Value {
        json!({"type": "object", "required": ["trace_id", "hops"], "properties": {
            "trace_id": {"type": "string"},
            "hops": {"type": "array", "items": {"type": "object",
                "required": ["kind", "channel", "message_id", "span_id", "actor", "at_ms"],
                "properties": {
                "kind": {"type": "string", "enum": ["write", "claim", "ack", "nack", "reject", "deliver"]},
                "channel": {"type": "string"}, "message_id": {"type": "string"},
                "span_id": {"type": "string"}, "actor": {"type": "string"},
                "seq": {"type": ["integer", "null"]}, "attempt": {"type": ["integer", "null"]},
                "at_ms": {"type": "integer"}}}}}})
    }
}
