//! Who may do what on a channel.
//!
//! Every channel operation is authorised by the channel's [`Security`] object: read,
//! write, claim, ack, nack, subscribe, and admin for clear/evict/remove/redrive (v1 only
//! checked reads and writes, defect D12). Roles are ordered `read ⊂ write ⊂ admin`:
//!
//! | operation | role needed |
//! |---|---|
//! | read, subscribe, info, stats | read |
//! | write, claim, ack, nack, extend | write |
//! | clear, evict, remove, dead letters, redrive | admin |
//!
//! Three policies ship: [`OpenSecurity`] (everyone may do everything), [`AclSecurity`]
//! (per-identity roles, for identities established in process) and [`JwtSecurity`] (signed
//! tokens carrying subject, role, expiry and an optional channel scope, for remote callers).

mod acl;
mod jwt;
#[cfg(test)]
mod tests;

pub use self::acl::AclSecurity;
pub use self::jwt::{JwtSecurity, TokenClaims};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The operations a channel authorises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Shared (cursor) read, info, stats.
    Read,
    /// Push subscription.
    Subscribe,
    /// Write a message.
    Write,
    /// Claim (exclusive read).
    Claim,
    /// Acknowledge a claim.
    Ack,
    /// Release a claim (nack), reject it, or extend its lease.
    Nack,
    /// Host operations: clear, evict, remove, dead letters, redrive.
    Admin,
}

impl Operation {
    /// The least role that permits this operation.
    pub fn required_role(self) -> Role {
        match self {
            Self::Read | Self::Subscribe => Role::Read,
            Self::Write | Self::Claim | Self::Ack | Self::Nack => Role::Write,
            Self::Admin => Role::Admin,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Subscribe => "subscribe",
            Self::Write => "write",
            Self::Claim => "claim",
            Self::Ack => "ack",
            Self::Nack => "nack",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access level, ordered `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and subscribe.
    Read,
    /// Read, write, claim, ack, nack.
    Write,
    /// Everything, including host operations.
    Admin,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("Unknown role: '{s}'. Must be 'read', 'write', or 'admin'."),
            )),
        }
    }
}

/// An authenticated caller: its identity and, for token callers, what the token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The caller's system id; it becomes the reader or sender id.
    pub id: String,
    /// Role granted by a token; `None` for callers identified in process.
    pub role: Option<Role>,
    /// Channels a token is scoped to; `None` means every channel.
    pub channels: Option<Vec<String>>,
}

impl Principal {
    /// A caller identified in process by its system id.
    pub fn local(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            role: None,
            channels: None,
        }
    }
}

/// A channel's security policy.
pub trait Security: Send + Sync + 'static {
    /// Establishes the caller behind a bearer token (remote calls).
    fn authenticate(&self, token: &str) -> Result<Principal>;

    /// Whether `principal` may perform `op` on channel `channel_id`.
    fn authorize(&self, principal: &Principal, channel_id: &str, op: Operation) -> bool;

    /// Whether the caller identified in process as `id` ([`Principal::local`]) may perform
    /// `op` on `channel_id`. The same decision as [`authorize`](Self::authorize) of that
    /// principal; the policies here override it so an in-process call builds no principal.
    fn authorize_local(&self, id: &str, channel_id: &str, op: Operation) -> bool {
        self.authorize(&Principal::local(id), channel_id, op)
    }

    /// Issues a token for `system_id` with `role`, optionally scoped to `channels`.
    fn generate_token(
        &self,
        system_id: &str,
        role: Role,
        channels: Option<&[String]>,
        expires_in: std::time::Duration,
    ) -> Result<String>;

    /// Short policy name for logs (`open`, `acl`, `jwt`).
    fn name(&self) -> &'static str;
}

/// Everyone may do everything. The token is the identity (no secret), as in v1: use it
/// for trusted networks only.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenSecurity;

impl Security for OpenSecurity {
    fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "The token is empty.",
            ));
        }
        Ok(Principal::local(token))
    }

    fn authorize(&self, _: &Principal, _: &str, _: Operation) -> bool {
        true
    }

    fn authorize_local(&self, _: &str, _: &str, _: Operation) -> bool {
        true
    }

    fn generate_token(
        &self,
        system_id: &str,
        _: Role,
        _: Option<&[String]>,
        _: std::time::Duration,
    ) -> Result<String> {
        Ok(system_id.to_owned())
    }

    fn name(&self) -> &'static str {
        "open"
    }
}
