//! What a route documents besides its parameters: body fields, replies and error statuses.

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
    pub(super) const fn json(description: &'static str, schema: fn() -> serde_json::Value) -> Self {
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

pub(super) const READ_ERRORS: &[Status] = &[
    Status::BadRequest,
    Status::Unauthenticated,
    Status::Forbidden,
    Status::NotFound,
    Status::Unavailable,
];
pub(super) const BODY_ERRORS: &[Status] = &[
    Status::BadRequest,
    Status::Unauthenticated,
    Status::Forbidden,
    Status::NotFound,
    Status::PayloadTooLarge,
    Status::Unavailable,
];
pub(super) const WRITE_ERRORS: &[Status] = &[
    Status::BadRequest,
    Status::Unauthenticated,
    Status::Forbidden,
    Status::NotFound,
    Status::PayloadTooLarge,
    Status::Backpressure,
    Status::Unavailable,
];

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

pub(super) const IDS_BODY: BodyDoc = BodyDoc::Fields {
    required: true,
    fields: &[MESSAGE_IDS],
};
