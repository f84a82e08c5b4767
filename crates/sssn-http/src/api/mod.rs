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

mod cli;
mod doc;
mod params;
mod route;
mod table;

pub use cli::*;
pub use doc::*;
pub use params::*;
pub use route::*;
pub use table::*;

use axum::routing::MethodFilter;

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

    pub(super) const fn filter(self) -> MethodFilter {
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
