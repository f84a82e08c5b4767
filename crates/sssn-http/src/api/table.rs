//! The routes, one static each, and [`ROUTES`], the table the server, the OpenAPI
//! document, `RemoteChannel` and the `sssn` command read.

use axum::routing::on;

use super::doc::{BODY_ERRORS, IDS_BODY, READ_ERRORS, WRITE_ERRORS};
use super::*;
use crate::openapi::schema;
use crate::server::events;
use crate::server::routes::{self as h, Settling};

// ---- the routes -------------------------------------------------------------------------

/// `GET /healthz`.
pub static HEALTH: Route = Route::new(Verb::Get, "/healthz", "health", |m| on(m, h::health))
    .summary("Health: ok; degraded (503 with the same body and `not_running`) while a served channel is not running, e.g. its store is not reachable yet; 503 with an error while shutting down.")
    .auth(Auth::Public)
    .reply(Reply::json("Serving.", schema::health))
    .errors(&[Status::Unavailable]);

/// `GET /metrics`.
pub static METRICS: Route = Route::new(Verb::Get, "/metrics", "metrics", |m| on(m, h::metrics))
    .summary("Prometheus metrics of the channels the token may read (of all served channels when the server has public metrics).")
    .auth(Auth::BearerUnlessPublic)
    .reply(Reply {
        description: "Prometheus text format 0.0.4.",
        media: "text/plain",
        schema: schema::text,
    })
    .errors(&[Status::Unauthenticated]);

/// `GET /openapi.json`.
pub static OPENAPI: Route =
    Route::new(Verb::Get, "/openapi.json", "openapi", |m| on(m, h::openapi))
        .summary("This document.")
        .auth(Auth::Public)
        .reply(Reply::json("OpenAPI 3 document.", schema::any_object));

/// `GET /channels`.
pub static LIST_CHANNELS: Route = Route::new(Verb::Get, "/channels", "listChannels", |m| {
    on(m, h::list_channels)
})
.summary("Served channels the token may read.")
.reply(Reply::json("Channels by id.", schema::channels))
.errors(&[Status::Unauthenticated]);

/// `GET /channels/{id}` (v1).
pub static READ: Route = Route::new(Verb::Get, "/channels/{id}", "read", |m| on(m, h::read))
    .op(ChannelOp::Read)
    .summary("Read messages (v1): a shared read from the caller's cursor, or a claim with exclusive=true. The cursor advances exactly past the messages returned.")
    .params(&[READ_LIMIT.param(), READ_EXCLUSIVE.param(), READ_AFTER.param()])
    .reply(Reply::json("Messages in sequence order, with full content.", schema::messages))
    .errors(READ_ERRORS)
    .bounded()
    .cli(
        "read",
        "Shared read from your cursor (or a claim with --exclusive). Prints one message per line.",
        &[
            CliArg::param(READ_LIMIT.param()),
            CliArg::param(READ_EXCLUSIVE.param()),
            CliArg::param(READ_AFTER.param()).named("MESSAGE_ID"),
        ],
    );

/// `PUT /channels/{id}` (v1).
pub static WRITE: Route = Route::new(Verb::Put, "/channels/{id}", "write", |m| on(m, h::write))
    .op(ChannelOp::Write)
    .summary("Write one message (v1). The sender is the token's subject; a direct write whose sender_id differs is refused.")
    .params(&[WRITE_KIND.param(), DIRECT.param()])
    .body(BodyDoc::Json {
        description: "Any JSON value (kind=data), an object (kind=content) or a message (kind=message).",
        schema: schema::any,
    })
    .reply(Reply::json("Accepted.", schema::write_accepted))
    .errors(WRITE_ERRORS)
    .cli(
        "write",
        "Write data (JSON; from stdin when omitted or \"-\"). Prints the new id(s), one per line.",
        &[ARG_DATA, ARG_DIRECT, ARG_CONTENT, ARG_BATCH, ARG_TO],
    );

/// `POST /channels/{id}/batch`.
pub static WRITE_BATCH: Route = Route::new(Verb::Post, "/channels/{id}/batch", "writeBatch", |m| {
    on(m, h::write_batch)
})
.op(ChannelOp::WriteBatch)
.summary("Write several messages in one append (all or nothing).")
.params(&[BATCH_KIND.param(), DIRECT.param()])
.body(BodyDoc::Json {
    description: "A JSON array of items of `kind`.",
    schema: schema::any_array,
})
.reply(Reply::json(
    "Accepted; one id per item.",
    schema::batch_accepted,
))
.errors(WRITE_ERRORS);

/// `POST /channels/{id}/claim`.
pub static CLAIM: Route = Route::new(Verb::Post, "/channels/{id}/claim", "claim", |m| {
    on(m, h::claim)
})
.op(ChannelOp::Claim)
.summary("Claim messages with a lease.")
.params(&[CLAIM_LIMIT.param()])
.reply(Reply::json("Claims, oldest first.", schema::claims))
.errors(READ_ERRORS)
.bounded()
.cli(
    "claim",
    "Claim messages with a lease. Prints {seq, attempt, lease_until_ms, message} per line.",
    &[CliArg::param(CLAIM_LIMIT.param())],
);

/// `POST /channels/{id}/acknowledge` (v1).
pub static ACKNOWLEDGE: Route = Route::new(
    Verb::Post,
    "/channels/{id}/acknowledge",
    "acknowledge",
    |m| h::settling(m, Settling::Ack),
)
.op(ChannelOp::Ack)
.summary("Acknowledge claimed messages (v1).")
.body(IDS_BODY)
.reply(Reply::json(
    "How many were acknowledged, and the outcome of every id.",
    schema::settled_acknowledged,
))
.errors(BODY_ERRORS)
.cli(
    "ack",
    "Acknowledge claimed messages. Prints how many; fails naming the stale ids.",
    &[ARG_IDS],
);

/// `POST /channels/{id}/ack-and-claim`.
pub static ACK_AND_CLAIM: Route = Route::new(
    Verb::Post,
    "/channels/{id}/ack-and-claim",
    "ackAndClaim",
    |m| on(m, h::ack_and_claim),
)
.op(ChannelOp::AckAndClaim)
.summary("Acknowledge claimed messages, then claim up to limit more: a consumer's \"done with these, next batch\" in one request (and, on the SQLite store, one transaction). The acknowledgement is fenced as /acknowledge's.")
.params(&[CLAIM_LIMIT.param()])
.body(IDS_BODY)
.reply(Reply::json(
    "How many were acknowledged, the outcome of every id, and the new claims, oldest first.",
    schema::acked_and_claimed,
))
.errors(BODY_ERRORS)
.bounded()
.cli(
    "ack-and-claim",
    "Acknowledge claimed messages, then claim more. Prints {seq, attempt, lease_until_ms, message} per new claim; fails naming the stale ids.",
    &[CliArg::param(CLAIM_LIMIT.param()), ARG_IDS],
);

/// `POST /channels/{id}/nack` (v1).
pub static NACK: Route = Route::new(Verb::Post, "/channels/{id}/nack", "nack", |m| h::settling(m, Settling::Nack))
    .op(ChannelOp::Nack)
    .summary("Release claimed messages (v1), optionally claimable again only after delay_ms.")
    .body(BodyDoc::Fields {
        required: true,
        fields: &[MESSAGE_IDS, DELAY_MS],
    })
    .reply(Reply::json("How many were released, and the outcome of every id.", schema::settled_nacked))
    .errors(BODY_ERRORS)
    .cli(
        "nack",
        "Release claimed messages, optionally after a delay. Prints how many; fails naming the stale ids.",
        &[ARG_DELAY, ARG_IDS],
    );

/// `POST /channels/{id}/extend`.
pub static EXTEND: Route = Route::new(Verb::Post, "/channels/{id}/extend", "extend", |m| {
    h::settling(m, Settling::Extend)
})
.op(ChannelOp::Extend)
.summary("Renew the leases of claimed messages for a full claim timeout from now.")
.body(IDS_BODY)
.reply(Reply::json(
    "How many were renewed, and the outcome of every id.",
    schema::settled_extended,
))
.errors(BODY_ERRORS)
.cli(
    "extend",
    "Renew the leases of claimed messages. Prints how many; fails naming the stale ids.",
    &[ARG_IDS],
);

/// `POST /channels/{id}/reject`.
pub static REJECT: Route = Route::new(Verb::Post, "/channels/{id}/reject", "reject", |m| {
    h::settling(m, Settling::Reject)
})
.op(ChannelOp::Reject)
.summary("Dead-letter claimed messages.")
.body(BodyDoc::Fields {
    required: true,
    fields: &[MESSAGE_IDS, REASON],
})
.reply(Reply::json(
    "How many were dead-lettered, and the outcome of every id.",
    schema::settled_rejected,
))
.errors(BODY_ERRORS)
.cli(
    "reject",
    "Dead-letter claimed messages. Prints how many; fails naming the stale ids.",
    &[ARG_REASON, ARG_IDS],
);

/// `GET /channels/{id}/dead-letters`.
pub static DEAD_LETTERS: Route = Route::new(
    Verb::Get,
    "/channels/{id}/dead-letters",
    "deadLetters",
    |m| on(m, h::dead_letters),
)
.op(ChannelOp::DeadLetters)
.summary("List dead letters, oldest first (admin).")
.params(&[DEAD_LETTER_LIMIT.param()])
.reply(Reply::json("Dead letters, oldest first.", schema::dead_letters))
.errors(READ_ERRORS)
.bounded()
.cli(
    "dead-letters",
    "List dead letters, oldest first (admin). Prints {seq, message, attempts, reason, dead_at_ms} per line.",
    &[CliArg::param(DEAD_LETTER_LIMIT.param())],
);

/// `POST /channels/{id}/redrive`.
pub static REDRIVE: Route = Route::new(Verb::Post, "/channels/{id}/redrive", "redrive", |m| {
    h::settling(m, Settling::Redrive)
})
.op(ChannelOp::Redrive)
.summary("Put dead letters back into the channel (admin).")
.body(IDS_BODY)
.reply(Reply::json("How many went back.", schema::counted_redriven))
.errors(BODY_ERRORS)
.cli(
    "redrive",
    "Put dead letters back into the channel (admin). Prints how many.",
    &[ARG_IDS],
);

/// `POST /channels/{id}/clear`.
pub static CLEAR: Route = Route::new(Verb::Post, "/channels/{id}/clear", "clear", |m| {
    on(m, h::clear)
})
.op(ChannelOp::Clear)
.summary("Remove every message (admin). Cursors stay valid.")
.reply(Reply::json(
    "How many were removed.",
    schema::counted_removed,
))
.errors(READ_ERRORS)
.cli(
    "clear",
    "Remove every message (admin). Prints how many.",
    &[],
);

/// `POST /channels/{id}/evict`.
pub static EVICT: Route = Route::new(Verb::Post, "/channels/{id}/evict", "evict", |m| {
    on(m, h::evict)
})
.op(ChannelOp::Evict)
.summary("Remove messages stored before `before`, then all but the newest `max_count` (admin).")
.body(BodyDoc::Fields {
    required: false,
    fields: &[BEFORE, MAX_COUNT],
})
.reply(Reply::json(
    "How many were removed.",
    schema::counted_removed,
))
.errors(BODY_ERRORS)
.cli(
    "evict",
    "Remove old messages (admin). Prints how many.",
    &[ARG_BEFORE, ARG_MAX_COUNT],
);

/// `POST /channels/{id}/remove`.
pub static REMOVE: Route = Route::new(Verb::Post, "/channels/{id}/remove", "remove", |m| {
    h::settling(m, Settling::Remove)
})
.op(ChannelOp::Remove)
.summary("Remove messages by id (admin).")
.body(IDS_BODY)
.reply(Reply::json(
    "How many were removed.",
    schema::counted_removed,
))
.errors(BODY_ERRORS)
.cli(
    "remove",
    "Remove messages by id (admin). Prints how many.",
    &[ARG_IDS],
);

/// `GET /channels/{id}/info` (v1).
pub static INFO: Route = Route::new(Verb::Get, "/channels/{id}/info", "info", |m| on(m, h::info))
    .op(ChannelOp::Info)
    .summary("Channel identity (v1).")
    .reply(Reply::json("Channel info.", schema::channel_info))
    .errors(READ_ERRORS)
    .cli("info", "Print the channel's info (one JSON object).", &[]);

/// `GET /channels/{id}/stats`.
pub static STATS: Route = Route::new(Verb::Get, "/channels/{id}/stats", "stats", |m| {
    on(m, h::stats)
})
.op(ChannelOp::Stats)
.summary("Channel counters and storage state.")
.reply(Reply::json("Stats.", schema::channel_stats))
.errors(READ_ERRORS)
.cli("stats", "Print the channel's stats (one JSON object).", &[]);

/// `GET /channels/{id}/events`.
pub static EVENTS: Route =
    Route::new(Verb::Get, "/channels/{id}/events", "events", |m| on(m, events::events))
        .op(ChannelOp::Events)
        .summary("Server-Sent Events: a `ready` event (id = the sequence delivery starts after), then one event per message (id = sequence, data = message JSON), `: keep-alive` comments when idle. Resume with the Last-Event-ID header or ?after=; catching up is read in pages of at most the response byte budget.")
        .params(&[EVENTS_AFTER.param(), LAST_EVENT_ID.param()])
        .reply(Reply {
            description: "An endless text/event-stream.",
            media: "text/event-stream",
            schema: schema::text,
        })
        .errors(READ_ERRORS)
        .cli(
            "tail",
            "Follow a channel live (server push). Prints {seq, message} per line; ends when stdout closes.",
            &[CliArg::param(EVENTS_AFTER.param()), ARG_COUNT],
        );

/// `GET /channels/{id}/history`.
pub static HISTORY: Route = Route::new(Verb::Get, "/channels/{id}/history", "history", |m| {
    on(m, h::history)
})
.op(ChannelOp::History)
.summary("Stored messages (v1's get, get_range, get_latest), moving no cursor and taking no claim: the message with message_id; with start and/or end, those that arrived in that time (inclusive), oldest first; otherwise the newest limit, newest first. Read rights; a mailbox shows the caller its own messages and those addressed to nobody.")
.params(&[
    HISTORY_MESSAGE_ID.param(),
    HISTORY_START.param(),
    HISTORY_END.param(),
    HISTORY_LIMIT.param(),
])
.reply(Reply::json(
    "Stored messages with their sequences.",
    schema::history,
))
.errors(READ_ERRORS)
.bounded()
.cli(
    "history",
    "Stored messages: --message-id ID, a time range (--start/--end, oldest first) or the newest --limit (newest first). Prints {seq, message} per line.",
    &[
        ARG_MESSAGE_ID,
        CliArg::param(HISTORY_START.param()),
        CliArg::param(HISTORY_END.param()),
        CliArg::param(HISTORY_LIMIT.param()),
    ],
);

/// `limit` of `GET /traces`.
pub const TRACES_LIMIT: CountParam = CountParam {
    name: "limit",
    default: 50,
    description: "At most this many traces, newest first.",
};

/// `GET /topology` (the console's graph).
pub static TOPOLOGY: Route = Route::new(Verb::Get, "/topology", "topology", |m| {
    on(m, crate::console::topology)
})
.summary("The channels the token may read, and the systems wired to them: state, steps, restarts, last error, reads and writes (restricted to those channels).")
.reply(Reply::json("Channels and systems.", crate::console::schema::topology))
.errors(&[Status::BadRequest, Status::Unauthenticated]);

/// `GET /traces` (the console's trace list).
pub static TRACES: Route = Route::new(Verb::Get, "/traces", "traces", |m| {
    on(m, crate::console::traces)
})
.summary(
    "The newest traces in this process's hop journal with a hop on a channel the token may read.",
)
.params(&[TRACES_LIMIT.param()])
.reply(Reply::json(
    "Traces, newest first.",
    crate::console::schema::traces,
))
.errors(&[Status::BadRequest, Status::Unauthenticated]);

/// `GET /traces/{id}` (the console's trace view).
pub static TRACE: Route = Route::new(Verb::Get, "/traces/{id}", "trace", |m| {
    on(m, crate::console::trace)
})
.summary("One record's path: the hops of a trace (write, claim, ack, nack, reject, deliver) on channels the token may read, in time order, each with its channel, message, actor and time.")
.reply(Reply::json("The trace's hops.", crate::console::schema::trace))
.errors(&[Status::BadRequest, Status::Unauthenticated, Status::NotFound]);

/// Every route the server answers, in the order the OpenAPI document lists them.
pub static ROUTES: &[&Route] = &[
    &HEALTH,
    &METRICS,
    &OPENAPI,
    &LIST_CHANNELS,
    &READ,
    &WRITE,
    &WRITE_BATCH,
    &CLAIM,
    &ACKNOWLEDGE,
    &ACK_AND_CLAIM,
    &NACK,
    &EXTEND,
    &REJECT,
    &DEAD_LETTERS,
    &REDRIVE,
    &CLEAR,
    &EVICT,
    &REMOVE,
    &INFO,
    &STATS,
    &EVENTS,
    &HISTORY,
    &TOPOLOGY,
    &TRACES,
    &TRACE,
];

/// The channel operations the `sssn` command exposes as client subcommands, with their
/// routes and command-line shapes.
pub fn cli_routes() -> impl Iterator<Item = (ChannelOp, &'static Route, &'static CliCommand)> {
    ROUTES
        .iter()
        .filter_map(|&r| Some((r.op?, r, r.cli.as_ref()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_method_paths_are_unique_and_ops_map_back() {
        let mut ops = std::collections::HashSet::new();
        let mut routes = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                ops.insert(r.operation),
                "duplicate operation {}",
                r.operation
            );
            assert!(
                routes.insert((r.method, r.path)),
                "duplicate {} {}",
                r.method,
                r.path
            );
            assert!(!r.summary.is_empty(), "{} has a summary", r.operation);
            if let Some(op) = r.op {
                assert!(
                    std::ptr::eq(op.route(), *r),
                    "{op:?} maps back to {}",
                    r.operation
                );
                assert!(r.is_channel_route());
            }
            if r.body.is_some() {
                assert!(
                    r.errors.contains(&Status::PayloadTooLarge),
                    "{}",
                    r.operation
                );
            }
            let _ = r.method_router();
        }
        let mut names = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                r.cli.is_none() || r.op.is_some(),
                "{}: a subcommand is a channel operation",
                r.operation
            );
        }
        for (_, _, c) in cli_routes() {
            assert!(names.insert(c.name), "duplicate subcommand {}", c.name);
        }
    }
}
