//! The OpenAPI 3 document served at `/openapi.json`, generated from the route table
//! ([`crate::api::ROUTES`]): every route, its parameters (types, defaults, bounds), body,
//! success reply and error statuses come from there, so the document and the router
//! cannot disagree. The limits of the serving server ([`Limits`]) are written in.

use serde_json::{Map, Value, json};

use crate::api::{Auth, BodyDoc, FieldType, Param, ParamType, Place, ROUTES, Route};
use crate::server::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LIMIT, DEFAULT_MAX_RESPONSE_BYTES};

/// The server limits the document states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `limit` honoured; larger ones are clamped to it.
    pub max_limit: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Byte budget of one reply.
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_limit: DEFAULT_MAX_LIMIT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The schemas the route table refers to.
pub(crate) mod schema {
    use serde_json::{Value, json};

    use super::r;

    pub(crate) fn any() -> Value {
        json!({})
    }
    pub(crate) fn any_object() -> Value {
        json!({"type": "object"})
    }
    pub(crate) fn any_array() -> Value {
        json!({"type": "array", "items": {}})
    }
    pub(crate) fn text() -> Value {
        json!({"type": "string"})
    }
    pub(crate) fn health() -> Value {
        json!({"type": "object", "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "channels": {"type": "integer"},
            "not_running": {"type": "array", "items": {"type": "string"},
                "description": "Degraded (503): the served channels that are not running yet, e.g. their store is not reachable."}}})
    }
    pub(crate) fn channels() -> Value {
        r("Channels")
    }
    pub(crate) fn messages() -> Value {
        r("Messages")
    }
    pub(crate) fn write_accepted() -> Value {
        r("WriteAccepted")
    }
    pub(crate) fn batch_accepted() -> Value {
        r("BatchAccepted")
    }
    pub(crate) fn claims() -> Value {
        r("Claims")
    }
    pub(crate) fn dead_letters() -> Value {
        r("DeadLetters")
    }
    pub(crate) fn history() -> Value {
        r("History")
    }
    pub(crate) fn channel_info() -> Value {
        r("ChannelInfo")
    }
    pub(crate) fn channel_stats() -> Value {
        r("ChannelStats")
    }

    fn counted(verb: &str) -> Value {
        json!({"type": "object", "required": ["status", verb], "properties": {
            "status": {"type": "string", "enum": ["ok"]}, verb: {"type": "integer", "minimum": 0}}})
    }

    /// A settle's answer: v1's count, and the outcome of every id.
    fn settled(verb: &str) -> Value {
        let ids = json!({"type": "array", "items": {"type": "string"}});
        json!({"type": "object", "required": ["status", verb, "done", "stale"], "properties": {
            "status": {"type": "string", "enum": ["ok"]}, verb: {"type": "integer", "minimum": 0},
            "done": ids, "stale": {"type": "array", "items": {"type": "string"},
                "description": "Ids with no live claim by the caller (expired, reclaimed, already settled or unknown); left alone."}}})
    }

    pub(crate) fn settled_acknowledged() -> Value {
        settled("acknowledged")
    }
    pub(crate) fn acked_and_claimed() -> Value {
        let mut v = settled("acknowledged");
        v["required"]
            .as_array_mut()
            .expect("required")
            .push(json!("claims"));
        v["properties"]["claims"] = json!({"type": "array", "description": "The new claims, oldest first (as /claim's).",
            "items": {"type": "object", "required": ["seq", "attempt", "lease_until_ms", "message"], "properties": {
                "seq": {"type": "integer"}, "attempt": {"type": "integer"},
                "lease_until_ms": {"type": "integer", "description": "Lease deadline, Unix epoch milliseconds."},
                "message": r("ChannelMessage")}}});
        v
    }
    pub(crate) fn settled_nacked() -> Value {
        settled("nacked")
    }
    pub(crate) fn settled_extended() -> Value {
        settled("extended")
    }
    pub(crate) fn settled_rejected() -> Value {
        settled("rejected")
    }
    pub(crate) fn counted_redriven() -> Value {
        counted("redriven")
    }
    pub(crate) fn counted_removed() -> Value {
        counted("removed")
    }
}

fn param_doc(p: &Param, limits: &Limits) -> Value {
    let empty = " An empty value means the default.";
    let absent = " An empty value counts as absent.";
    let (schema, extra) = match p.ty {
        ParamType::Count { default } => (
            json!({"type": "integer", "minimum": 0, "default": default,
                   "x-sssn-clamped-maximum": limits.max_limit}),
            format!(
                " An integer ≥ 0 (exponent forms such as 1e3 accepted); values above {} (the server's maximum) are clamped to it.{empty}",
                limits.max_limit
            ),
        ),
        ParamType::Bool { default } => (
            json!({"type": "boolean", "default": default}),
            format!(" true/false, 1/0, yes/no, on/off (any case).{empty}"),
        ),
        ParamType::Text => (json!({"type": "string"}), absent.to_owned()),
        ParamType::Seq => (json!({"type": "integer", "minimum": 0}), absent.to_owned()),
        ParamType::Number => (json!({"type": "number"}), absent.to_owned()),
        ParamType::Choice { values, default } => (
            json!({"type": "string", "enum": values, "default": default}),
            empty.to_owned(),
        ),
    };
    let place = match p.place {
        Place::Query => "query",
        Place::Header => "header",
    };
    let name = match p.place {
        Place::Query => p.name.to_owned(),
        // Header names as browsers send them.
        Place::Header => header_case(p.name),
    };
    json!({"name": name, "in": place, "required": false,
           "description": format!("{}{extra}", p.description), "schema": schema})
}

fn header_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
        .replace("-Id", "-ID")
}

fn body_doc(body: &BodyDoc) -> Value {
    match body {
        BodyDoc::Json {
            description,
            schema,
        } => json!({"required": true, "description": description,
                    "content": {"application/json": {"schema": schema()}}}),
        BodyDoc::Fields { required, fields } => {
            let mut props = Map::new();
            for f in *fields {
                let schema = match f.ty {
                    FieldType::Ids => {
                        json!({"type": ["array", "null"], "items": {"type": "string"},
                        "description": format!("{} Missing or null: none (v1).", f.description)})
                    }
                    FieldType::Millis => json!({"type": ["integer", "null"], "minimum": 0,
                        "description": format!("{} Milliseconds.", f.description)}),
                    FieldType::Text => {
                        json!({"type": ["string", "null"], "description": f.description})
                    }
                    FieldType::EpochSeconds => {
                        json!({"type": ["number", "null"], "description": f.description})
                    }
                    FieldType::Count => {
                        json!({"type": ["integer", "null"], "minimum": 0, "description": f.description})
                    }
                };
                props.insert(f.name.to_owned(), schema);
            }
            let description = if *required {
                "A JSON object."
            } else {
                "A JSON object; an empty body is the empty object."
            };
            json!({"required": required, "description": description,
                   "content": {"application/json": {"schema": {"type": "object", "properties": props}}}})
        }
    }
}

/// The names of a path's `{…}` segments, in order.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

fn operation(route: &Route, limits: &Limits) -> Value {
    let mut parameters = Vec::new();
    // Every `{name}` of the path is a declared path parameter.
    for name in path_params(route.path) {
        let description = if route.is_channel_route() && name == "id" {
            "Channel id."
        } else if route.path.starts_with("/traces/") {
            "Trace id: the 32 hex digits of a W3C trace-id."
        } else {
            "Named by the path."
        };
        parameters.push(json!({"name": name, "in": "path", "required": true,
            "description": description, "schema": {"type": "string"}}));
    }
    parameters.extend(route.params.iter().map(|p| param_doc(p, limits)));
    let mut success = json!({"description": route.reply.description,
        "content": {route.reply.media: {"schema": (route.reply.schema)()}}});
    let mut summary = route.summary.to_owned();
    if route.bounded {
        summary.push_str(&format!(
            " One reply holds at most {} bytes of items (the server's response budget), and always at least one; a reply cut short says so with X-Sssn-Truncated: true — ask again for the rest.",
            limits.max_response_bytes
        ));
        success["headers"] = json!({"X-Sssn-Truncated": {
            "description": "true when the byte budget ended the reply before `limit` was reached.",
            "schema": {"type": "string", "enum": ["true"]}}});
    }
    let mut responses = Map::new();
    responses.insert("200".into(), success);
    for status in route.errors {
        let mut description = status.description().to_owned();
        if status.code() == 413 {
            description = format!(
                "Body larger than the server's limit ({} bytes).",
                limits.max_body_bytes
            );
        }
        responses.insert(
            status.code().to_string(),
            json!({"description": description, "content": {"application/json": {"schema": r("Error")}}}),
        );
    }
    let mut o = json!({"operationId": route.operation, "summary": summary,
                       "parameters": parameters, "responses": responses});
    match route.auth {
        Auth::Public => o["security"] = json!([]),
        Auth::BearerUnlessPublic => o["security"] = json!([{"bearer": []}, {}]),
        Auth::Bearer => {}
    }
    if let Some(body) = &route.body {
        o["requestBody"] = body_doc(body);
    }
    o
}

fn schemas() -> Value {
    json!({
        "Error": {"type": "object", "required": ["detail"], "properties": {
            "detail": {"type": "string"},
            "kind": {"type": "string", "description": "sssn error kind: unauthenticated, permission_denied, not_found, invalid_argument, invalid_message, unsupported_operation, stale_claim, backpressure, shutting_down, timeout, store, remote, internal."}}},
        "ChannelMessage": {"type": "object", "required": ["id", "timestamp", "sender_id", "content"], "properties": {
            "id": {"type": "string"}, "timestamp": {"type": "number", "description": "Unix epoch seconds."},
            "sender_id": {"type": "string"}, "content": {"type": "object", "additionalProperties": true},
            "metadata": {"type": "object", "additionalProperties": true},
            "correlation_id": {"type": ["string", "null"]}, "reply_to": {"type": ["string", "null"]},
            "recipient_id": {"type": ["string", "null"]}}},
        "ChannelInfo": {"type": "object", "required": ["id", "name", "description", "visibility", "period"], "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
            "visibility": {"type": "string", "enum": ["private", "public"]}, "period": {"type": "number"},
            "kind": {"type": "string", "enum": ["passthrough", "broadcast", "work_queue", "mailbox", "periodic", "discovery"]}}},
        "Messages": {"type": "object", "required": ["messages"], "properties": {
            "messages": {"type": "array", "items": r("ChannelMessage")}}},
        "WriteAccepted": {"type": "object", "required": ["status", "item_id"], "properties": {
            "status": {"type": "string", "enum": ["accepted"]}, "item_id": {"type": "string"}}},
        "BatchAccepted": {"type": "object", "required": ["status", "item_ids"], "properties": {
            "status": {"type": "string", "enum": ["accepted"]}, "item_ids": {"type": "array", "items": {"type": "string"}}}},
        "Claims": {"type": "object", "required": ["claims"], "properties": {
            "claims": {"type": "array", "items": {"type": "object", "required": ["seq", "attempt", "lease_until_ms", "message"], "properties": {
                "seq": {"type": "integer"}, "attempt": {"type": "integer"},
                "lease_until_ms": {"type": "integer", "description": "Lease deadline, Unix epoch milliseconds."},
                "message": r("ChannelMessage")}}}}},
        "History": {"type": "object", "required": ["entries"], "properties": {
            "entries": {"type": "array", "items": {"type": "object", "required": ["seq", "message"], "properties": {
                "seq": {"type": "integer"}, "message": r("ChannelMessage")}}}}},
        "DeadLetters": {"type": "object", "required": ["dead_letters"], "properties": {
            "dead_letters": {"type": "array", "items": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "message": r("ChannelMessage"), "attempts": {"type": "integer"},
                "reason": {"type": "string"}, "dead_at_ms": {"type": "integer"},
                "recipient": {"type": "string", "description": "On a mailbox: the recipient whose inbox gave the message up; a redrive gives it back to that recipient only."}}}}}},
        "Channels": {"type": "object", "required": ["channels"], "properties": {
            "channels": {"type": "array", "items": r("ChannelInfo")}}},
        "ChannelStats": {"type": "object", "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"}, "state": {"type": "string", "enum": ["created", "running", "draining", "stopped"]},
            "store": {"type": "string"}, "stored": {"type": "integer"}, "backlog": {"type": "integer"},
            "delayed": {"type": "integer"}, "in_flight": {"type": "integer"}, "acknowledged": {"type": "integer"},
            "dead_lettered": {"type": "integer"}, "oldest_unacked_age_secs": {"type": ["number", "null"]},
            "head_seq": {"type": "integer"}, "writes": {"type": "integer"}, "reads": {"type": "integer"},
            "claims": {"type": "integer"}, "acks": {"type": "integer"}, "nacks": {"type": "integer"},
            "raw_buffered": {"type": "integer"}, "readers": {"type": "array", "items": {"type": "object"}},
            "subscribers": {"type": "array", "items": {"type": "object"}}}}
    })
}

/// The document for a server with these limits.
pub fn document(limits: &Limits) -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation(route, limits);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sssn channel server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Channels over HTTP: v1 routes (read, write, acknowledge, nack, info) plus batch operations, claims, dead letters, server push (SSE), stats and metrics. Every error is JSON {\"detail\": …, \"kind\": …}. A channel route authenticates the token before it looks at anything else of the request."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "With open or ACL security the token is the caller's id; with JWT security a signed token whose subject is the caller's id."}}
        },
        "security": [{"bearer": []}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// schemathesis refuses a document whose path names a parameter it does not declare
    /// (`GET /traces/{id}` once did).
    #[test]
    fn every_path_parameter_is_declared() {
        let doc = document(&Limits::default());
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let named: Vec<&str> = path_params(route.path).collect();
            assert_eq!(declared, named, "{} {}", route.method, route.path);
        }
        assert!(ROUTES.iter().any(|r| r.path == "/traces/{id}"));
    }
}
