//! The OpenAPI 3 document served at `/openapi.json`, written by hand next to the route
//! table ([`ROUTES`]); a test checks both list the same routes.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::server::ROUTES;

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn err(description: &str) -> Value {
    ok(description, r("Error"))
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": "Channel id.",
           "schema": {"type": "string"}})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": schema})
}

fn ids_body(extra: Value) -> Value {
    let mut props = json!({"message_ids": {"type": "array", "items": {"type": "string"}}});
    if let (Some(p), Value::Object(extra)) = (props.as_object_mut(), extra) {
        p.extend(extra);
    }
    json!({"required": true, "content": {"application/json": {"schema":
        {"type": "object", "properties": props}}}})
}

fn settled(verb: &str) -> Value {
    json!({"type": "object", "required": ["status", verb], "properties": {
        "status": {"type": "string", "enum": ["ok"]}, verb: {"type": "integer", "minimum": 0}}})
}

/// Standard error responses of channel routes.
fn channel_errors(responses: &mut serde_json::Map<String, Value>, with_body: bool) {
    responses.insert(
        "401".into(),
        err("Missing, malformed, expired or forged token."),
    );
    responses.insert(
        "403".into(),
        err("The token does not grant this operation on this channel."),
    );
    responses.insert("404".into(), err("Unknown channel."));
    responses.insert(
        "400".into(),
        err("Bad parameters or body, or an operation this channel kind does not support."),
    );
    responses.insert(
        "503".into(),
        err("The channel is not started, draining or stopped."),
    );
    if with_body {
        responses.insert("413".into(), err("Body larger than the server's limit."));
    }
}

fn operation(op: &str) -> Value {
    let limit = |d: u64| {
        query(
            "limit",
            "At most this many (clamped to the server's maximum).",
            json!({"type": "integer", "minimum": 0, "default": d}),
        )
    };
    let kind_params = || {
        vec![
            query(
                "kind",
                "How the body is read: data (raw JSON, stored as {\"data\": …}), content (an object stored as is), message (a complete message), mixed (batch only: items tagged data/content/message).",
                json!({"type": "string", "enum": ["data", "content", "message", "mixed"], "default": "data"}),
            ),
            query(
                "direct",
                "v1 form of kind=message.",
                json!({"type": "boolean", "default": false}),
            ),
        ]
    };
    let (summary, params, body, success, with_body): (
        &str,
        Vec<Value>,
        Option<Value>,
        Value,
        bool,
    ) = match op {
        "health" => {
            return json!({"operationId": op, "summary": "Health: ok, degraded (a served channel is not running yet, e.g. its store is not reachable) or shutting down.", "security": [], "responses": {
            "200": ok("Serving.", json!({"type": "object", "properties": {"status": {"type": "string"}, "channels": {"type": "integer"}}})),
            "503": ok("Shutting down (an Error), or degraded: status \"degraded\" and the ids of the served channels that are not running.",
                json!({"oneOf": [r("Error"), {"type": "object", "properties": {"status": {"type": "string"}, "channels": {"type": "integer"}, "not_running": {"type": "array", "items": {"type": "string"}}}}]}))}});
        }
        "metrics" => {
            return json!({"operationId": op, "summary": "Prometheus metrics of the channels the token may read (of all served channels when the server has public metrics).",
            "security": [{"bearer": []}, {}],
            "responses": {"200": {"description": "Prometheus text format 0.0.4.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "401": err("Missing or invalid token.")}});
        }
        "openapi" => {
            return json!({"operationId": op, "summary": "This document.", "security": [],
            "responses": {"200": ok("OpenAPI 3 document.", json!({"type": "object"}))}});
        }
        "listChannels" => {
            return json!({"operationId": op, "summary": "Served channels the token may read.",
            "responses": {"200": ok("Channels by id.", r("Channels")), "401": err("Missing or invalid token.")}});
        }
        "read" => (
            "Read messages (v1): a shared read from the caller's cursor, or a claim with exclusive=true.",
            vec![
                limit(10),
                query(
                    "exclusive",
                    "Claim instead of a shared read (true/false/1/0/yes/no/on/off).",
                    json!({"type": "boolean", "default": false}),
                ),
                query(
                    "after",
                    "Start after this message id (moves the caller's cursor).",
                    json!({"type": "string"}),
                ),
            ],
            None,
            ok(
                "Messages in sequence order, with full content.",
                r("Messages"),
            ),
            false,
        ),
        "write" => (
            "Write one message (v1). The sender is the token's subject; a direct write whose sender_id differs is refused.",
            kind_params(),
            Some(json!({"required": true, "content": {"application/json": {"schema": {}}}})),
            ok("Accepted.", r("WriteAccepted")),
            true,
        ),
        "writeBatch" => (
            "Write several messages in one append (all or nothing).",
            kind_params(),
            Some(
                json!({"required": true, "content": {"application/json": {"schema": {"type": "array", "items": {}}}}}),
            ),
            ok("Accepted; one id per item.", r("BatchAccepted")),
            true,
        ),
        "claim" => (
            "Claim messages with a lease.",
            vec![limit(1)],
            None,
            ok("Claims, oldest first.", r("Claims")),
            false,
        ),
        "acknowledge" => (
            "Acknowledge claimed messages (v1).",
            vec![],
            Some(ids_body(json!({}))),
            ok("Number acknowledged.", settled("acknowledged")),
            true,
        ),
        "nack" => (
            "Release claimed messages (v1), optionally claimable again only after delay_ms.",
            vec![],
            Some(ids_body(
                json!({"delay_ms": {"type": "integer", "minimum": 0}}),
            )),
            ok("Number released.", settled("nacked")),
            true,
        ),
        "extend" => (
            "Renew the leases of claimed messages.",
            vec![],
            Some(ids_body(json!({}))),
            ok("Number renewed.", settled("extended")),
            true,
        ),
        "reject" => (
            "Dead-letter claimed messages.",
            vec![],
            Some(ids_body(json!({"reason": {"type": "string"}}))),
            ok("Number dead-lettered.", settled("rejected")),
            true,
        ),
        "deadLetters" => (
            "List dead letters (admin).",
            vec![limit(100)],
            None,
            ok("Dead letters, oldest first.", r("DeadLetters")),
            false,
        ),
        "redrive" => (
            "Put dead letters back into the channel (admin).",
            vec![],
            Some(ids_body(json!({}))),
            ok("Number moved back.", settled("redriven")),
            true,
        ),
        "info" => (
            "Channel identity (v1).",
            vec![],
            None,
            ok("Channel info.", r("ChannelInfo")),
            false,
        ),
        "stats" => (
            "Channel counters and storage state.",
            vec![],
            None,
            ok("Stats.", r("ChannelStats")),
            false,
        ),
        "events" => (
            "Server-Sent Events: a `ready` event (id = the sequence delivery starts after), then one event per message (id = sequence, data = message JSON), `: keep-alive` comments when idle. Resume with the Last-Event-ID header or ?after=.",
            vec![
                query(
                    "after",
                    "Deliver messages with a greater sequence (the Last-Event-ID header takes precedence).",
                    json!({"type": "integer", "minimum": 0}),
                ),
                json!({"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "integer", "minimum": 0}}),
            ],
            None,
            json!({"description": "An endless text/event-stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}}),
            false,
        ),
        other => unreachable!("no OpenAPI text for operation '{other}'"),
    };
    let mut parameters = vec![id_param()];
    parameters.extend(params);
    let mut responses = serde_json::Map::new();
    responses.insert("200".into(), success);
    channel_errors(&mut responses, with_body);
    match op {
        "acknowledge" | "nack" | "extend" | "reject" => {
            responses.insert("409".into(), err("Stale claim: expired, reclaimed, already settled, unknown, or not the caller's (the others were settled)."));
        }
        "write" | "writeBatch" => {
            responses.insert(
                "429".into(),
                err("Backpressure: the channel's buffer is full; retry later."),
            );
        }
        _ => {}
    }
    let mut o = json!({"operationId": op, "summary": summary, "parameters": parameters,
                       "responses": responses});
    if let Some(body) = body {
        o["requestBody"] = body;
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
        "DeadLetters": {"type": "object", "required": ["dead_letters"], "properties": {
            "dead_letters": {"type": "array", "items": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "message": r("ChannelMessage"), "attempts": {"type": "integer"},
                "reason": {"type": "string"}, "dead_at_ms": {"type": "integer"}}}}}},
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

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut paths = serde_json::Map::new();
        for route in ROUTES {
            let entry = paths
                .entry(route.path.to_owned())
                .or_insert_with(|| json!({}));
            entry[route.method.to_ascii_lowercase()] = operation(route.operation);
        }
        json!({
            "openapi": "3.1.0",
            "info": {"title": "sssn channel server", "version": env!("CARGO_PKG_VERSION"),
                     "description": "Channels over HTTP: v1 routes (read, write, acknowledge, nack, info) plus batch operations, claims, dead letters, server push (SSE), stats and metrics. Every error is JSON {\"detail\": …, \"kind\": …}."},
            "paths": paths,
            "components": {
                "schemas": schemas(),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                    "description": "With open or ACL security the token is the caller's id; with JWT security a signed token whose subject is the caller's id."}}
            },
            "security": [{"bearer": []}]
        })
    })
}
