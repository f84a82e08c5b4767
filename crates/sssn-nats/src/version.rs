//! [`ServerVersion`]: the nats-server version a store talks to, and what it enables.
//!
//! The store learns the version from the server's `INFO` on connect (and again after every
//! reconnect, since in a cluster the next server may run another version). Every
//! version-dependent path asks one of the predicates below instead of comparing numbers
//! itself, so the table in the crate README and the code cannot drift apart.

use std::fmt;
use std::str::FromStr;

use sssn::{Error, ErrorKind, Result};

/// A nats-server version, `major.minor.patch` (a pre-release suffix such as `-beta.1` is
/// ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl ServerVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    const fn at_least(self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }

    const fn at_least_patch(self, major: u32, minor: u32, patch: u32) -> bool {
        self.major > major
            || (self.major == major
                && (self.minor > minor || (self.minor == minor && self.patch >= patch)))
    }

    /// `create_key_value` works (2.10+). On 2.9 async-nats 0.51 cannot parse the
    /// server's account info, which `create_key_value` reads first.
    pub const fn supports_kv(self) -> bool {
        self.at_least(2, 10)
    }

    /// A durable consumer can be changed in place with the consumer *update* action, and
    /// consumers can filter on several subjects (2.10+). On 2.9 a create with the
    /// durable's name updates its editable fields.
    pub const fn supports_consumer_update(self) -> bool {
        self.at_least(2, 10)
    }

    /// Per-message TTL (`Nats-TTL` header, stream option `allow_msg_ttl`) and with it
    /// per-key TTL in KV buckets (2.11+). On 2.9 and 2.10 the header is silently ignored:
    /// the message never expires.
    pub const fn supports_message_ttl(self) -> bool {
        self.at_least(2, 11)
    }

    /// Per-key TTL in KV buckets: the same server feature as [`supports_message_ttl`].
    ///
    /// [`supports_message_ttl`]: ServerVersion::supports_message_ttl
    pub const fn supports_kv_ttl(self) -> bool {
        self.supports_message_ttl()
    }

    /// Atomic batch publish (stream option `allow_atomic`, headers `Nats-Batch-*`): a batch
    /// is stored whole or not at all (2.12+).
    pub const fn supports_atomic_batch(self) -> bool {
        self.at_least(2, 12)
    }

    /// Atomic batches whose messages each carry `Nats-Expected-Last-Subject-Sequence`,
    /// which is what an append of several messages is (2.12.1+): 2.12.0 refuses every such
    /// batch of more than one message with "wrong last sequence" (error code 10164), also
    /// when no subject of it is stored (tested on 2.12.0 and 2.12.1). The store writes
    /// batches atomically from here on.
    pub const fn supports_atomic_batch_appends(self) -> bool {
        self.at_least_patch(2, 12, 1)
    }

    /// Purges that filter by subject or keep the newest `n` behave (2.10.25+, the oldest
    /// release tested without the 2.9 pitfalls): a purge by subject leaves the stream's
    /// other consumers where they were (2.9.10 makes them skip to the end of the stream),
    /// and a purge with `keep` counts only stored messages (2.9.10 counts deleted ones
    /// too, keeping fewer than asked). The store then removes by subject and evicts by
    /// count with `keep` instead of computing sequences itself. The fixes landed in
    /// between (nats-server #3838, Feb 2023, for consumers after a filtered purge), but
    /// 2.9.11-2.10.24 were not tested, so they keep the 2.9 paths.
    pub const fn purges_without_2_9_pitfalls(self) -> bool {
        self.at_least_patch(2, 10, 25)
    }

    /// A consumer of an interest-retention stream comes back from a SIGKILL with an ack
    /// floor no higher than its acknowledged deliveries (2.15+, the oldest release tested
    /// without the loss). 2.9.10 restored the claims consumer of an interest stream with
    /// its ack floor moved up to its last delivery, above deliveries nobody had
    /// acknowledged, and the server then removed those messages as acknowledged
    /// (`tests/server_crash.rs`, 7 runs of 52 lost 2-6 messages; see the crate README,
    /// "Acks that remove"). New channel streams get interest retention by default
    /// (`remove_on_ack` unset) only from here on; 2.10-2.14 were not tested.
    pub const fn interest_streams_survive_crashes(self) -> bool {
        self.at_least(2, 15)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for ServerVersion {
    type Err = Error;

    /// Parses `2.9.10`, `v2.15.1`, `2.12.0-beta.1` or `2.11` (patch 0).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid nats-server version {s:?} (expected MAJOR.MINOR[.PATCH])"),
            )
        };
        let core = s.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let mut next = |required: bool| -> Result<u32> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let version = Self::new(next(true)?, next(true)?, next(false)?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_version_strings() {
        assert_eq!(
            "2.9.10".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(2, 9, 10)
        );
        assert_eq!(
            "v2.15.1".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(2, 15, 1)
        );
        assert_eq!(
            "2.12.0-beta.1".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(2, 12, 0)
        );
        assert_eq!(
            "2.11".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(2, 11, 0)
        );
        for bad in ["", "2", "x.y", "2.9.10.1", "2..1"] {
            assert!(bad.parse::<ServerVersion>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn features_by_version() {
        let v = |s: &str| s.parse::<ServerVersion>().unwrap();
        let old = v("2.9.10");
        assert!(!old.supports_kv() && !old.supports_message_ttl());
        assert!(!old.supports_atomic_batch() && !old.supports_consumer_update());
        assert!(v("2.10.0").supports_kv() && !v("2.10.29").supports_kv_ttl());
        assert!(v("2.11.0").supports_kv_ttl() && !v("2.11.9").supports_atomic_batch());
        let new = v("2.15.1");
        assert!(new.supports_kv() && new.supports_kv_ttl());
        assert!(new.supports_atomic_batch() && new.supports_consumer_update());
        assert!(v("3.0.0").supports_atomic_batch());
        assert!(
            v("2.12.0").supports_atomic_batch() && !v("2.12.0").supports_atomic_batch_appends()
        );
        assert!(v("2.12.1").supports_atomic_batch_appends() && new.supports_atomic_batch_appends());
        assert!(!old.supports_atomic_batch_appends());
        assert!(!old.purges_without_2_9_pitfalls() && !v("2.10.24").purges_without_2_9_pitfalls());
        assert!(
            v("2.10.25").purges_without_2_9_pitfalls() && v("2.11.0").purges_without_2_9_pitfalls()
        );
        assert!(new.purges_without_2_9_pitfalls() && v("3.0.0").purges_without_2_9_pitfalls());
        assert!(!old.interest_streams_survive_crashes());
        assert!(!v("2.14.9").interest_streams_survive_crashes());
        assert!(
            v("2.15.0").interest_streams_survive_crashes()
                && new.interest_streams_survive_crashes()
        );
        assert!(old < v("2.10.0") && v("2.10.0") < new);
    }
}
