//! The one route table of the HTTP API.
//!
//! Every route is one [`Route`]: method, path, OpenAPI operation id, the handler that
//! serves it, its OpenAPI description (summary, parameters with their types, defaults and
//! bounds, body, success reply, error statuses) and, where the `sssn` command exposes it,
//! its command-line shape ([`CliCommand`]). From [`ROUTES`]:
//!
//! * the server builds its router (one handler per entry, nothing to look up);
//! * [`crate::openapi::document`] writes `/openapi.json`;
//! * [`crate::RemoteChannel`] finds the method and path of each channel operation
//!   ([`ChannelOp::route`]);
//! * the `sssn` command builds its client subcommands, their options and help.
//!
//! Query parameters are declared once, as typed constants ([`CountParam`], [`FlagParam`],
//! …): the table lists them, and the handlers parse requests through the same constants,
//! so the documented name, type, default and bounds are the ones the server applies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::routing::{MethodFilter, MethodRouter, on};

use crate::error::ApiError;
use crate::openapi::schema;
use crate::server::routes::{self as h, Settling};
use crate::server::{AppState, events};

/// The HTTP methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `GET`
    Get,
    /// `PUT`
    Put,
    /// `POST`
    Post,
}

impl Verb {
    /// The upper-case method name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Post => "POST",
        }
    }

    const fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Put => MethodFilter::PUT,
            Self::Post => MethodFilter::POST,
        }
    }
}

impl From<Verb> for reqwest::Method {
    fn from(verb: Verb) -> Self {
        match verb {
            Verb::Get => Self::GET,
            Verb::Put => Self::PUT,
            Verb::Post => Self::POST,
        }
    }
}

/// The channel operations of [`sssn::ChannelEndpoint`], one per channel route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelOp {
    /// `read` (v1): shared, or a claim with `exclusive`.
    Read,
    /// One write (v1 `PUT`).
    Write,
    /// A batch write.
    WriteBatch,
    /// Claims with leases.
    Claim,
    /// Settle: acknowledge.
    Ack,
    /// Settle: acknowledge, then claim the next batch.
    AckAndClaim,
    /// Settle: release.
    Nack,
    /// Settle: renew the lease.
    Extend,
    /// Settle: dead-letter.
    Reject,
    /// List dead letters.
    DeadLetters,
    /// Put dead letters back.
    Redrive,
    /// Remove every message.
    Clear,
    /// Remove old messages.
    Evict,
    /// Remove messages by id.
    Remove,
    /// Identity.
    Info,
    /// Counters.
    Stats,
    /// Server push (SSE).
    Events,
    /// History: by id, by arrival time, or the newest N.
    History,
}

impl ChannelOp {
    /// The route that carries this operation.
    pub fn route(self) -> &'static Route {
        match self {
            Self::Read => &READ,
            Self::Write => &WRITE,
            Self::WriteBatch => &WRITE_BATCH,
            Self::Claim => &CLAIM,
            Self::Ack => &ACKNOWLEDGE,
            Self::AckAndClaim => &ACK_AND_CLAIM,
            Self::Nack => &NACK,
            Self::Extend => &EXTEND,
            Self::Reject => &REJECT,
            Self::DeadLetters => &DEAD_LETTERS,
            Self::Redrive => &REDRIVE,
            Self::Clear => &CLEAR,
            Self::Evict => &EVICT,
            Self::Remove => &REMOVE,
            Self::Info => &INFO,
            Self::Stats => &STATS,
            Self::Events => &EVENTS,
            Self::History => &HISTORY,
        }
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No token needed.
    Public,
    /// `Authorization: Bearer <token>`, authenticated before anything else is looked at.
    Bearer,
    /// A token, unless the server was built with public metrics.
    BearerUnlessPublic,
}

/// Where a parameter travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// In the query string.
    Query,
    /// In a request header.
    Header,
}

/// A parameter's type, default and bounds, as documented and as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// An integer ≥ 0 (exponent forms such as `1e3` accepted), clamped to the server's
    /// maximum (`ServerBuilder::max_limit`).
    Count {
        /// Used when the parameter is absent or empty.
        default: usize,
    },
    /// A boolean: true/false, 1/0, yes/no, on/off (any case).
    Bool {
        /// Used when the parameter is absent or empty.
        default: bool,
    },
    /// Free text (a message id).
    Text,
    /// A sequence number (an integer ≥ 0).
    Seq,
    /// A finite number (Unix epoch seconds).
    Number,
    /// One of a fixed set of words.
    Choice {
        /// The accepted values.
        values: &'static [&'static str],
        /// Used when the parameter is absent or empty.
        default: &'static str,
    },
}

/// One documented parameter. An empty value (`?kind=`) means the parameter's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The query key or header name.
    pub name: &'static str,
    /// Query or header.
    pub place: Place,
    /// Type, default and bounds.
    pub ty: ParamType,
    /// What it does.
    pub description: &'static str,
}

/// The query parameters of one request, decoded (after authentication).
pub(crate) type QueryMap = HashMap<String, String>;

fn present<'q>(q: &'q QueryMap, name: &str) -> Option<&'q str> {
    q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A count parameter (`limit`).
#[derive(Clone, Copy, Debug)]
pub struct CountParam {
    /// Query key.
    pub name: &'static str,
    /// Value when absent or empty.
    pub default: usize,
    /// What it does.
    pub description: &'static str,
}

impl CountParam {
    /// Its table entry.
    pub const fn param(&self) -> Param {
        Param {
            name: self.name,
            place: Place::Query,
            ty: ParamType::Count {
                default: self.default,
            },
            description: self.description,
        }
    }

    /// The value of a request, clamped to `max`.
    pub(crate) fn get(&self, q: &QueryMap, max: usize) -> Result<usize, ApiError> {
        Ok(match present(q, self.name) {
            Some(text) => crate::wire::parse_count(self.name, text)?,
            None => self.default,
        }
        .min(max))
    }
}

/// A boolean parameter.
#[derive(Clone, Copy, Debug)]
pub struct FlagParam {
    /// Query key.
    pub name: &'static str,
    /// Value when absent or empty.
    pub default: bool,
    /// What it does.
    pub description: &'static str,
}

impl FlagParam {
    /// Its table entry.
    pub const fn param(&self) -> Param {
        Param {
            name: self.name,
            place: Place::Query,
            ty: ParamType::Bool {
                default: self.default,
            },
            description: self.description,
        }
    }

    /// The value of a request.
    pub(crate) fn get(&self, q: &QueryMap) -> Result<bool, ApiError> {
        match present(q, self.name) {
            Some(text) => Ok(crate::wire::parse_bool(text)
                .map_err(|e| ApiError::bad_request(format!("'{}': {}", self.name, e.message())))?),
            None => Ok(self.default),
        }
    }
}

/// A free-text parameter.
#[derive(Clone, Copy, Debug)]
pub struct TextParam {
    /// Query key.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
}

impl TextParam {
    /// Its table entry.
    pub const fn param(&self) -> Param {
        Param {
            name: self.name,
            place: Place::Query,
            ty: ParamType::Text,
            description: self.description,
        }
    }

    /// The value of a request (`None` when absent or empty).
    pub(crate) fn get(&self, q: &QueryMap) -> Option<String> {
        present(q, self.name).map(str::to_owned)
    }
}

/// A number parameter (Unix epoch seconds).
#[derive(Clone, Copy, Debug)]
pub struct NumberParam {
    /// Query key.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
}

impl NumberParam {
    /// Its table entry.
    pub const fn param(&self) -> Param {
        Param {
            name: self.name,
            place: Place::Query,
            ty: ParamType::Number,
            description: self.description,
        }
    }

    /// The value of a request (`None` when absent or empty); anything but a finite number
    /// is a 400.
    pub(crate) fn get(&self, q: &QueryMap) -> Result<Option<f64>, ApiError> {
        let Some(text) = present(q, self.name) else {
            return Ok(None);
        };
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(ApiError::bad_request(format!(
                "'{}' must be a finite number of Unix epoch seconds, got '{text}'",
                self.name
            ))),
        }
    }
}

/// A sequence-number parameter (query or header).
#[derive(Clone, Copy, Debug)]
pub struct SeqParam {
    /// Query key or header name.
    pub name: &'static str,
    /// Query or header.
    pub place: Place,
    /// What it does.
    pub description: &'static str,
}

impl SeqParam {
    /// Its table entry.
    pub const fn param(&self) -> Param {
        Param {
            name: self.name,
            place: self.place,
            ty: ParamType::Seq,
            description: self.description,
        }
    }

    /// The value of a request (`None` when absent or empty).
    pub(crate) fn get(
        &self,
        q: &QueryMap,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<sssn::store::Seq>, ApiError> {
        let text = match self.place {
            Place::Query => present(q, self.name).map(str::to_owned),
            Place::Header => match headers.get(self.name) {
                None => None,
                Some(v) => Some(
                    v.to_str()
                        .map_err(|_| {
                            ApiError::bad_request(format!(
                                "{} must be a sequence number",
                                self.name
                            ))
                        })?
                        .trim()
                        .to_owned(),
                )
                .filter(|v| !v.is_empty()),
            },
        };
        Ok(text.map(|t| crate::wire::parse_seq(&t)).transpose()?)
    }
}

/// A parameter taking one of a fixed set of words.
#[derive(Clone, Copy, Debug)]
pub struct ChoiceParam {
    /// Query key.
    pub name: &'static str,
    /// Accepted values.
    pub values: &'static [&'static str],
    /// Value when absent or empty.
    pub default: &'static str,
    /// What it does.
    pub description: &'static str,
}

impl ChoiceParam {
    /// Its table entry.
    pub const fn param(&self) -> Param {
        Param {
            name: self.name,
            place: Place::Query,
            ty: ParamType::Choice {
                values: self.values,
                default: self.default,
            },
            description: self.description,
        }
    }

    /// The value of a request, one of [`values`](Self::values); `None` when absent or
    /// empty (the default applies).
    pub(crate) fn get<'q>(&self, q: &'q QueryMap) -> Result<Option<&'q str>, ApiError> {
        match present(q, self.name) {
            None => Ok(None),
            Some(v) if self.values.contains(&v) => Ok(Some(v)),
            Some(v) => Err(ApiError::bad_request(format!(
                "unknown {} '{v}' here (expected one of: {})",
                self.name,
                self.values.join(", ")
            ))),
        }
    }
}

/// The type of a JSON body field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A list of message ids (`null` or missing: none).
    Ids,
    /// Milliseconds, an integer ≥ 0.
    Millis,
    /// Text.
    Text,
    /// Unix epoch seconds, a finite number.
    EpochSeconds,
    /// An integer ≥ 0.
    Count,
}

/// One field of a JSON object body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The key.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// What it does.
    pub description: &'static str,
}

/// A route's request body.
#[derive(Clone, Copy, Debug)]
pub enum BodyDoc {
    /// A JSON object of these fields (all optional).
    Fields {
        /// Whether a body must be sent (an empty body is otherwise the empty object).
        required: bool,
        /// The fields.
        fields: &'static [Field],
    },
    /// Any JSON described by a schema.
    Json {
        /// What the body is.
        description: &'static str,
        /// Its JSON schema.
        schema: fn() -> serde_json::Value,
    },
}

/// A route's success reply (200).
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// What it holds.
    pub description: &'static str,
    /// Its media type.
    pub media: &'static str,
    /// Its JSON schema.
    pub schema: fn() -> serde_json::Value,
}

impl Reply {
    const fn json(description: &'static str, schema: fn() -> serde_json::Value) -> Self {
        Self {
            description,
            media: "application/json",
            schema,
        }
    }
}

/// An error status a route may answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 400
    BadRequest,
    /// 401
    Unauthenticated,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 413
    PayloadTooLarge,
    /// 429
    Backpressure,
    /// 503
    Unavailable,
}

impl Status {
    /// The status code.
    pub const fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::PayloadTooLarge => 413,
            Self::Backpressure => 429,
            Self::Unavailable => 503,
        }
    }

    /// When it is answered.
    pub const fn description(self) -> &'static str {
        match self {
            Self::BadRequest => {
                "Bad parameters or body (checked after the token), or an operation this channel kind does not support."
            }
            Self::Unauthenticated => {
                "Missing, malformed, expired or forged token (checked before anything else)."
            }
            Self::Forbidden => "The token does not grant this operation on this channel.",
            Self::NotFound => "Unknown channel.",
            Self::PayloadTooLarge => "Body larger than the server's limit.",
            Self::Backpressure => "Backpressure: the channel's buffer is full; retry later.",
            Self::Unavailable => {
                "The server is shutting down, or the channel is not started, draining or stopped."
            }
        }
    }
}

const READ_ERRORS: &[Status] = &[
    Status::BadRequest,
    Status::Unauthenticated,
    Status::Forbidden,
    Status::NotFound,
    Status::Unavailable,
];
const BODY_ERRORS: &[Status] = &[
    Status::BadRequest,
    Status::Unauthenticated,
    Status::Forbidden,
    Status::NotFound,
    Status::PayloadTooLarge,
    Status::Unavailable,
];
const WRITE_ERRORS: &[Status] = &[
    Status::BadRequest,
    Status::Unauthenticated,
    Status::Forbidden,
    Status::NotFound,
    Status::PayloadTooLarge,
    Status::Backpressure,
    Status::Unavailable,
];

/// What a command-line argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CliValue {
    /// A switch (`--exclusive`).
    Flag,
    /// Text.
    Text,
    /// An integer ≥ 0, with its default.
    Count {
        /// Value when not given.
        default: Option<usize>,
    },
    /// A sequence number.
    Seq,
    /// A number (epoch seconds).
    Number,
    /// A duration (`500ms`, `10s`, `5m`), sent as milliseconds.
    Duration,
    /// One or more message ids, positional.
    Ids,
    /// JSON text, positional; stdin when omitted or `-`.
    Json,
}

/// One argument of a client subcommand (besides `--url` and `--token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CliArg {
    /// The option's long name (`--limit`) or the positional's id.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// What it takes.
    pub value: CliValue,
    /// The placeholder in help (`RECIPIENT`); empty: one that fits the value.
    pub value_name: &'static str,
    /// Options it cannot be combined with.
    pub conflicts_with: &'static [&'static str],
}

impl CliArg {
    /// The option for a query parameter: same name, help, type and default.
    pub const fn param(p: Param) -> Self {
        let value = match p.ty {
            ParamType::Count { default } => CliValue::Count {
                default: Some(default),
            },
            ParamType::Bool { .. } => CliValue::Flag,
            ParamType::Text | ParamType::Choice { .. } => CliValue::Text,
            ParamType::Seq => CliValue::Seq,
            ParamType::Number => CliValue::Number,
        };
        Self {
            name: p.name,
            help: p.description,
            value,
            value_name: "",
            conflicts_with: &[],
        }
    }

    /// The option (or positional ids) for a body field, under `name`; a duration for
    /// milliseconds.
    pub const fn field(f: Field, name: &'static str) -> Self {
        let value = match f.ty {
            FieldType::Ids => CliValue::Ids,
            FieldType::Millis => CliValue::Duration,
            FieldType::Text => CliValue::Text,
            FieldType::EpochSeconds => CliValue::Number,
            FieldType::Count => CliValue::Count { default: None },
        };
        Self {
            name,
            help: f.description,
            value,
            value_name: "",
            conflicts_with: &[],
        }
    }

    const fn conflicts(mut self, with: &'static [&'static str]) -> Self {
        self.conflicts_with = with;
        self
    }

    const fn named(mut self, value_name: &'static str) -> Self {
        self.value_name = value_name;
        self
    }
}

/// A client subcommand of the `sssn` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CliCommand {
    /// The subcommand (`read`, `dead-letters`).
    pub name: &'static str,
    /// One line of help: what it does and prints.
    pub about: &'static str,
    /// Its arguments.
    pub args: &'static [CliArg],
}

type Handler = fn(MethodFilter) -> MethodRouter<Arc<AppState>>;

/// One route of the API.
#[derive(Clone, Copy)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The method, typed.
    pub verb: Verb,
    /// Path (axum syntax), with `{id}` for the channel id.
    pub path: &'static str,
    /// The OpenAPI `operationId`.
    pub operation: &'static str,
    /// The channel operation it carries (channel routes).
    pub op: Option<ChannelOp>,
    /// OpenAPI summary.
    pub summary: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// Query and header parameters (the path's `{id}` aside).
    pub params: &'static [Param],
    /// Request body.
    pub body: Option<BodyDoc>,
    /// Success reply.
    pub reply: Reply,
    /// Error statuses.
    pub errors: &'static [Status],
    /// Whether one reply holds at most the server's response byte budget (and then says
    /// so with the `X-Sssn-Truncated` header).
    pub bounded: bool,
    /// Its `sssn` subcommand, if any.
    pub cli: Option<CliCommand>,
    handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl Route {
    const fn new(
        verb: Verb,
        path: &'static str,
        operation: &'static str,
        handler: Handler,
    ) -> Self {
        Self {
            method: verb.as_str(),
            verb,
            path,
            operation,
            op: None,
            summary: "",
            auth: Auth::Bearer,
            params: &[],
            body: None,
            reply: Reply::json("OK.", schema::any_object),
            errors: &[],
            bounded: false,
            cli: None,
            handler,
        }
    }
    const fn op(mut self, op: ChannelOp) -> Self {
        self.op = Some(op);
        self
    }
    const fn summary(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }
    const fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    const fn params(mut self, params: &'static [Param]) -> Self {
        self.params = params;
        self
    }
    const fn body(mut self, body: BodyDoc) -> Self {
        self.body = Some(body);
        self
    }
    const fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }
    const fn errors(mut self, errors: &'static [Status]) -> Self {
        self.errors = errors;
        self
    }
    const fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }
    const fn cli(
        mut self,
        name: &'static str,
        about: &'static str,
        args: &'static [CliArg],
    ) -> Self {
        self.cli = Some(CliCommand { name, about, args });
        self
    }

    /// The router entry of this route.
    pub(crate) fn method_router(&self) -> MethodRouter<Arc<AppState>> {
        (self.handler)(self.verb.filter())
    }

    /// The part of the path after `/channels/{id}` (`""`, `/claim`, …); the whole path for
    /// the routes that are not under a channel.
    pub fn channel_suffix(&self) -> &'static str {
        self.path
            .strip_prefix("/channels/{id}")
            .unwrap_or(self.path)
    }

    /// Whether the path names a channel.
    pub fn is_channel_route(&self) -> bool {
        self.path.starts_with("/channels/{id}")
    }
}

// ---- parameters -------------------------------------------------------------------------

/// `limit` of `GET /channels/{id}`.
pub const READ_LIMIT: CountParam = CountParam {
    name: "limit",
    default: 10,
    description: "At most this many messages.",
};
/// `exclusive` of `GET /channels/{id}`.
pub const READ_EXCLUSIVE: FlagParam = FlagParam {
    name: "exclusive",
    default: false,
    description: "Claim instead of a shared read (v1's exclusive read).",
};
/// `after` of `GET /channels/{id}`.
pub const READ_AFTER: TextParam = TextParam {
    name: "after",
    description: "Start after this message id (moves the caller's cursor there; an unknown id is a 400).",
};
/// `kind` of `PUT /channels/{id}`.
pub const WRITE_KIND: ChoiceParam = ChoiceParam {
    name: "kind",
    values: &["data", "content", "message"],
    default: "data",
    description: "How the body is read: data (any JSON, stored as {\"data\": …}), content (an object stored as is), message (a complete message). mixed is for batch writes only (400 here).",
};
/// `kind` of `POST /channels/{id}/batch`.
pub const BATCH_KIND: ChoiceParam = ChoiceParam {
    name: "kind",
    values: &["data", "content", "message", "mixed"],
    default: "data",
    description: "How each item is read: data, content, message, or mixed (each item {\"data\": …}, {\"content\": …} or {\"message\": …}).",
};
/// `direct` of the writes (v1).
pub const DIRECT: FlagParam = FlagParam {
    name: "direct",
    default: false,
    description: "v1 form of kind=message: the body is a complete message whose sender_id must be the caller (an empty one is filled in).",
};
/// `limit` of `POST /channels/{id}/claim`.
pub const CLAIM_LIMIT: CountParam = CountParam {
    name: "limit",
    default: 1,
    description: "At most this many claims.",
};
/// `limit` of `GET /channels/{id}/dead-letters`.
pub const DEAD_LETTER_LIMIT: CountParam = CountParam {
    name: "limit",
    default: 100,
    description: "At most this many dead letters, oldest first.",
};
/// `after` of `GET /channels/{id}/events`.
pub const EVENTS_AFTER: SeqParam = SeqParam {
    name: "after",
    place: Place::Query,
    description: "Deliver messages with a greater sequence (default: from now). The Last-Event-ID header takes precedence.",
};
/// The `Last-Event-ID` header of `GET /channels/{id}/events`.
pub const LAST_EVENT_ID: SeqParam = SeqParam {
    name: "last-event-id",
    place: Place::Header,
    description: "Resume after this sequence (what EventSource sends after a reconnect).",
};

/// `message_id` of `GET /channels/{id}/history`.
pub const HISTORY_MESSAGE_ID: TextParam = TextParam {
    name: "message_id",
    description: "The stored message with this id (none or one); not with start or end.",
};
/// `start` of `GET /channels/{id}/history`.
pub const HISTORY_START: NumberParam = NumberParam {
    name: "start",
    description: "Messages that arrived at the store at or after this time (Unix epoch seconds), oldest first.",
};
/// `end` of `GET /channels/{id}/history`.
pub const HISTORY_END: NumberParam = NumberParam {
    name: "end",
    description: "Messages that arrived at the store at or before this time (Unix epoch seconds), oldest first.",
};
/// `limit` of `GET /channels/{id}/history`.
pub const HISTORY_LIMIT: CountParam = CountParam {
    name: "limit",
    default: 10,
    description: "At most this many messages.",
};

// ---- body fields ------------------------------------------------------------------------

/// `message_ids` of the settle, redrive and remove bodies.
pub const MESSAGE_IDS: Field = Field {
    name: "message_ids",
    ty: FieldType::Ids,
    description: "Message ids.",
};
/// `delay_ms` of the nack body.
pub const DELAY_MS: Field = Field {
    name: "delay_ms",
    ty: FieldType::Millis,
    description: "Claimable again only after this long.",
};
/// `reason` of the reject body.
pub const REASON: Field = Field {
    name: "reason",
    ty: FieldType::Text,
    description: "Why (kept in the dead letter; default \"rejected\").",
};
/// `before` of the evict body.
pub const BEFORE: Field = Field {
    name: "before",
    ty: FieldType::EpochSeconds,
    description: "Remove messages stored before this time (Unix epoch seconds).",
};
/// `max_count` of the evict body.
pub const MAX_COUNT: Field = Field {
    name: "max_count",
    ty: FieldType::Count,
    description: "Then keep only the newest this many.",
};

const IDS_BODY: BodyDoc = BodyDoc::Fields {
    required: true,
    fields: &[MESSAGE_IDS],
};

// ---- command-line arguments that are not parameters or fields -----------------------------

/// `sssn write DATA`.
pub const ARG_DATA: CliArg = CliArg {
    name: "data",
    help: "JSON text (from stdin when omitted or \"-\").",
    value: CliValue::Json,
    value_name: "",
    conflicts_with: &[],
};
/// `sssn write --direct`.
pub const ARG_DIRECT: CliArg = CliArg::param(DIRECT.param()).conflicts(&["content", "to"]);
/// `sssn write --content`.
pub const ARG_CONTENT: CliArg = CliArg {
    name: "content",
    help: "The body is content (a JSON object) stored as is.",
    value: CliValue::Flag,
    value_name: "",
    conflicts_with: &[],
};
/// `sssn write --batch`.
pub const ARG_BATCH: CliArg = CliArg {
    name: "batch",
    help: "The body is a JSON array written in one batch (POST /channels/{id}/batch).",
    value: CliValue::Flag,
    value_name: "",
    conflicts_with: &[],
};
/// `sssn write --to RECIPIENT`.
pub const ARG_TO: CliArg = CliArg {
    name: "to",
    help: "Address the message(s) to this recipient (mailboxes); sent as a direct write in your name.",
    value: CliValue::Text,
    value_name: "RECIPIENT",
    conflicts_with: &[],
};
/// `sssn tail --count N`.
pub const ARG_COUNT: CliArg = CliArg {
    name: "count",
    help: "Stop after this many messages.",
    value: CliValue::Count { default: None },
    value_name: "",
    conflicts_with: &[],
};
/// The ids of the settling commands.
pub const ARG_IDS: CliArg = CliArg::field(MESSAGE_IDS, "ids");
/// `sssn nack --delay`.
pub const ARG_DELAY: CliArg = CliArg::field(DELAY_MS, "delay");
/// `sssn reject --reason`.
pub const ARG_REASON: CliArg = CliArg::field(REASON, "reason").named("TEXT");
/// `sssn evict --before`.
pub const ARG_BEFORE: CliArg = CliArg::field(BEFORE, "before");
/// `sssn history --message-id`.
pub const ARG_MESSAGE_ID: CliArg = CliArg {
    name: "message-id",
    ..CliArg::param(HISTORY_MESSAGE_ID.param())
}
.named("MESSAGE_ID")
.conflicts(&["start", "end"]);
/// `sssn evict --max-count`.
pub const ARG_MAX_COUNT: CliArg = CliArg::field(MAX_COUNT, "max-count");

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
