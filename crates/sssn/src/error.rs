//! One error type for every channel and system operation.
//!
//! Callers branch on [`Error::kind`] without downcasting. A refused write hands every
//! payload back ([`Error::into_rejected_all`]), so nothing the caller handed over is
//! silently dropped.

use std::fmt;

use crate::message::Payload;
use crate::security::Operation;

/// What went wrong, for callers to `match` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The channel id is not connected in this client, or no such channel exists.
    NotConnected,
    /// The identity could not be established (missing, malformed, expired or forged token).
    Unauthenticated,
    /// The identity is known but lacks the right for this operation.
    PermissionDenied,
    /// The channel kind does not support this operation (e.g. a shared read of a work queue).
    UnsupportedOperation,
    /// The channel is full; the rejected data is handed back.
    Backpressure,
    /// The channel is not started, or is draining / stopped.
    ShuttingDown,
    /// An ack, nack or extend names a claim that expired, was reclaimed, or is not the caller's.
    StaleClaim,
    /// The message or content is malformed.
    InvalidMessage,
    /// An argument is out of range or refers to something unknown (e.g. an unknown `after` id).
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// The operation did not finish in time.
    Timeout,
    /// The storage backend failed (I/O, database, broker).
    Store,
    /// A remote peer answered with an error or could not be reached.
    Remote,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// A short stable name (`"permission_denied"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::UnsupportedOperation => "unsupported_operation",
            Self::Backpressure => "backpressure",
            Self::ShuttingDown => "shutting_down",
            Self::StaleClaim => "stale_claim",
            Self::InvalidMessage => "invalid_message",
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::Timeout => "timeout",
            Self::Store => "store",
            Self::Remote => "remote",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every sssn operation: a [`ErrorKind`], a message, and optionally the
/// rejected payload and an underlying cause.
pub struct Error {
    kind: ErrorKind,
    message: String,
    rejected: Vec<Payload>,
    denied: Option<Box<(Operation, String)>>,
    source: Option<Source>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            rejected: Vec::new(),
            denied: None,
            source: None,
        }
    }

    /// The refusal of `op` on channel `channel` for `caller` (v1's wording).
    pub fn denied(caller: &str, channel: &str, op: Operation) -> Self {
        let verb = match op {
            Operation::Read => "read from",
            Operation::Write => "write to",
            Operation::Subscribe => "subscribe to",
            Operation::Claim => "claim from",
            Operation::Ack => "acknowledge on",
            Operation::Nack => "nack on",
            Operation::Admin => "administer",
        };
        let mut e = Self::new(
            ErrorKind::PermissionDenied,
            format!("'{caller}' is not authorised to {verb} channel '{channel}'."),
        );
        e.denied = Some(Box::new((op, channel.to_owned())));
        e
    }

    /// For an authorisation refusal ([`Error::denied`]): the operation and the channel.
    pub fn denied_operation(&self) -> Option<(Operation, &str)> {
        self.denied.as_deref().map(|(op, ch)| (*op, ch.as_str()))
    }

    /// Attaches an underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches a payload a write could not accept.
    #[must_use]
    pub fn with_rejected(mut self, payload: Payload) -> Self {
        self.rejected.push(payload);
        self
    }

    /// Attaches every payload a write could not accept, in order.
    #[must_use]
    pub fn with_rejected_all(mut self, payloads: Vec<Payload>) -> Self {
        self.rejected.extend(payloads);
        self
    }

    /// A storage failure.
    pub fn store(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::new(ErrorKind::Store, message).with_source(source)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (without the kind).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The (first) payload a refused write handed back, if any.
    pub fn rejected(&self) -> Option<&Payload> {
        self.rejected.first()
    }

    /// Takes back the (first) payload a refused write handed back, if any.
    pub fn into_rejected(self) -> Option<Payload> {
        self.rejected.into_iter().next()
    }

    /// Every payload a refused write handed back, in the order they were written.
    pub fn rejected_all(&self) -> &[Payload] {
        &self.rejected
    }

    /// Takes back every payload a refused write handed back, in order.
    pub fn into_rejected_all(self) -> Vec<Payload> {
        self.rejected
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish_non_exhaustive()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// `Result<T, sssn::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_hands_data_back() {
        let err = Error::new(ErrorKind::Backpressure, "full")
            .with_rejected(Payload::Data(serde_json::json!({"a": 1})));
        assert_eq!(err.kind(), ErrorKind::Backpressure);
        assert_eq!(err.to_string(), "backpressure: full");
        assert_eq!(
            err.into_rejected(),
            Some(Payload::Data(serde_json::json!({"a": 1})))
        );
    }

    #[test]
    fn errors_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
    }
}
