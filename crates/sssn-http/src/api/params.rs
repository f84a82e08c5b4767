//! Query and header parameters: their types as documented and as parsed, and the
//! parameters of every route, declared once.

use std::collections::HashMap;

use crate::error::ApiError;

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
