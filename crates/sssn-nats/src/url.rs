//! The store URL: `nats://HOST:PORT[,HOST:PORT…][?OPTION=VALUE&…]`.
//!
//! Several servers are separated by commas; each may carry its own scheme (`nats://`,
//! `tls://`, `ws://`, `wss://`), otherwise it takes the first one's. The query sets
//! [`JetStreamOptions`] on top of the ones given in code; see [`apply_query`] for the
//! names.

use std::time::Duration;

use async_nats::ServerAddr;
use sssn::{Error, ErrorKind, Result};

use crate::names;
use crate::store::{JetStreamOptions, StorageKind};
use crate::version::ServerVersion;

/// Most replicas a JetStream stream can have.
pub(crate) const MAX_REPLICAS: usize = 5;

fn invalid(url: &str, message: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("NATS store URL '{url}': {message}"),
    )
}

/// Splits a store URL into its servers and its options (the query applied on top of
/// `options`).
pub(crate) fn parse(
    url: &str,
    options: JetStreamOptions,
) -> Result<(Vec<ServerAddr>, JetStreamOptions)> {
    let (list, query) = url.split_once('?').unwrap_or((url, ""));
    let list = list.trim();
    if list.is_empty() {
        return Err(invalid(url, "no server"));
    }
    let scheme = list
        .split_once("://")
        .map_or("nats", |(scheme, _)| scheme)
        .to_owned();
    let mut servers = Vec::new();
    for (i, entry) in list.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(invalid(
                url,
                format!("server {} of the list is empty", i + 1),
            ));
        }
        let full = if entry.contains("://") {
            entry.to_owned()
        } else {
            format!("{scheme}://{entry}")
        };
        let host = full.split_once("://").map_or("", |(_, rest)| rest);
        // `nats://:4222` or `nats://` would silently mean localhost.
        if host.is_empty() || host.starts_with(':') || host.starts_with('/') {
            return Err(invalid(url, format!("server '{entry}' has no host")));
        }
        let addr: ServerAddr = full
            .parse()
            .map_err(|e| invalid(url, format!("server '{entry}': {e}")))?;
        servers.push(addr);
    }
    let options = apply_query(url, query, options)?;
    Ok((servers, options))
}

fn flag(url: &str, name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(
            url,
            format!("{name}={value:?}: expected true or false"),
        )),
    }
}

/// A duration: `500ms`, `2s`, `1m`, or a bare number of milliseconds.
fn duration(url: &str, name: &str, value: &str) -> Result<Duration> {
    let bad = || {
        invalid(
            url,
            format!("{name}={value:?}: expected a duration such as 500ms, 2s or 1m"),
        )
    };
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, "ms"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(invalid(url, format!("{name} must be more than zero")));
    }
    Ok(d)
}

/// Applies the query's options:
///
/// | name | value | option |
/// |---|---|---|
/// | `prefix` | 1-32 letters, digits, `-` | [`JetStreamOptions::prefix`] |
/// | `replicas` | 1-5 | [`JetStreamOptions::replicas`] |
/// | `storage` | `file`, `memory` | [`JetStreamOptions::storage`] |
/// | `request_timeout` | `500ms`, `2s`, `1m`, or milliseconds | [`JetStreamOptions::request_timeout`] |
/// | `durable_acks` | `true`, `false` | [`JetStreamOptions::durable_acks`] |
/// | `name` | text | [`JetStreamOptions::connection_name`] |
/// | `retry_connect` | `true`, `false` | [`JetStreamOptions::retry_initial_connect`] |
/// | `server_version` | `2.9.10` | [`JetStreamOptions::assume_server_version`] |
/// | `ping_interval` | a duration, as `request_timeout` | [`JetStreamOptions::ping_interval`] |
/// | `claim_wait` | a duration, as `request_timeout`, or `0` | [`JetStreamOptions::claim_wait`] |
/// | `atomic_batches` | `true`, `false` | [`JetStreamOptions::atomic_batches`] |
/// | `remove_on_ack` | `true`, `false` | [`JetStreamOptions::remove_on_ack`] |
fn apply_query(url: &str, query: &str, mut options: JetStreamOptions) -> Result<JetStreamOptions> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(invalid(
                url,
                format!("option '{pair}' has no value (NAME=VALUE)"),
            ));
        };
        match name {
            "prefix" => {
                names::validate_prefix(value).map_err(|e| invalid(url, e.message()))?;
                options = options.prefix(value);
            }
            "replicas" => {
                let n: usize = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_REPLICAS).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            url,
                            format!("replicas={value:?}: expected 1 to {MAX_REPLICAS}"),
                        )
                    })?;
                options = options.replicas(n);
            }
            "storage" => {
                options = options.storage(match value {
                    "file" => StorageKind::File,
                    "memory" => StorageKind::Memory,
                    _ => {
                        return Err(invalid(
                            url,
                            format!("storage={value:?}: expected file or memory"),
                        ));
                    }
                });
            }
            "request_timeout" => {
                options = options.request_timeout(duration(url, name, value)?);
            }
            "ping_interval" => options = options.ping_interval(duration(url, name, value)?),
            "claim_wait" if value == "0" => options = options.claim_wait(Duration::ZERO),
            "claim_wait" => options = options.claim_wait(duration(url, name, value)?),
            "durable_acks" => options = options.durable_acks(flag(url, name, value)?),
            "atomic_batches" => options = options.atomic_batches(flag(url, name, value)?),
            "remove_on_ack" => options = options.remove_on_ack(flag(url, name, value)?),
            "name" if !value.is_empty() => options = options.connection_name(value),
            "retry_connect" => options = options.retry_initial_connect(flag(url, name, value)?),
            "server_version" => {
                let v = value
                    .parse::<ServerVersion>()
                    .map_err(|e| invalid(url, e.message()))?;
                options = options.assume_server_version(Some(v));
            }
            _ => {
                return Err(invalid(
                    url,
                    format!(
                        "unknown option '{name}' (prefix, replicas, storage, request_timeout, \
                         ping_interval, claim_wait, durable_acks, atomic_batches, \
                         remove_on_ack, name, retry_connect, server_version)"
                    ),
                ));
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(servers: &[ServerAddr]) -> Vec<String> {
        servers
            .iter()
            .map(|s| format!("{}:{}", s.host(), s.port()))
            .collect()
    }

    #[test]
    fn several_servers_with_options() {
        let (servers, options) = parse(
            "nats://127.0.0.1:16101,127.0.0.1:16102,127.0.0.1:16103?replicas=3&prefix=t1",
            JetStreamOptions::default(),
        )
        .unwrap();
        assert_eq!(
            hosts(&servers),
            ["127.0.0.1:16101", "127.0.0.1:16102", "127.0.0.1:16103"]
        );
        assert!(
            servers
                .iter()
                .all(|s| s.as_url_str().starts_with("nats://"))
        );
        assert_eq!(options.replicas, 3);
        assert_eq!(options.prefix, "t1");
    }

    #[test]
    fn each_server_may_carry_its_scheme() {
        let (servers, options) = parse(
            "nats://a:1, nats://b:2,c:3",
            JetStreamOptions::default().prefix("kept"),
        )
        .unwrap();
        assert_eq!(hosts(&servers), ["a:1", "b:2", "c:3"]);
        assert_eq!(options.prefix, "kept", "no query keeps the given options");
        let (servers, _) = parse("h1", JetStreamOptions::default()).unwrap();
        assert_eq!(hosts(&servers), ["h1:4222"], "the default port");
    }

    #[test]
    fn every_option() {
        let (_, o) = parse(
            "nats://h:1?storage=memory&request_timeout=2s&durable_acks=true&name=svc\
             &retry_connect=true&server_version=2.9.10&ping_interval=1s&claim_wait=250ms\
             &atomic_batches=false&remove_on_ack=true",
            JetStreamOptions::default(),
        )
        .unwrap();
        assert_eq!(o.storage, StorageKind::Memory);
        assert_eq!(o.request_timeout, Duration::from_secs(2));
        assert!(o.durable_acks && o.retry_initial_connect);
        assert_eq!(o.connection_name, "svc");
        assert_eq!(o.assume_server_version, Some(ServerVersion::new(2, 9, 10)));
        assert_eq!(o.ping_interval, Duration::from_secs(1));
        assert_eq!(o.claim_wait, Duration::from_millis(250));
        assert!(!o.atomic_batches && JetStreamOptions::default().atomic_batches);
        assert_eq!(o.remove_on_ack, Some(true));
        assert_eq!(JetStreamOptions::default().remove_on_ack, None);
        let (_, o) = parse(
            "nats://h:1?request_timeout=750",
            JetStreamOptions::default(),
        )
        .unwrap();
        assert_eq!(o.request_timeout, Duration::from_millis(750));
    }

    #[test]
    fn bad_values_are_named() {
        for (url, says) in [
            ("nats://h:1?replicas=0", "replicas=\"0\": expected 1 to 5"),
            ("nats://h:1?replicas=7", "expected 1 to 5"),
            ("nats://h:1?replicas=three", "replicas=\"three\""),
            ("nats://h:1?prefix=a.b", "invalid JetStream store prefix"),
            ("nats://h:1?storage=disk", "expected file or memory"),
            ("nats://h:1?request_timeout=2h", "expected a duration"),
            ("nats://h:1?request_timeout=0s", "more than zero"),
            ("nats://h:1?durable_acks=maybe", "expected true or false"),
            (
                "nats://h:1?server_version=new",
                "invalid nats-server version",
            ),
            ("nats://h:1?colour=red", "unknown option 'colour'"),
            ("nats://h:1?replicas", "has no value"),
            ("nats://h:1,,h:2", "server 2 of the list is empty"),
            ("nats://h:99999", "server 'nats://h:99999'"),
            ("nats://h:1,h:x", "server 'h:x'"),
            ("nats://:4222", "has no host"),
            ("", "no server"),
            ("http://h:1", "invalid scheme"),
        ] {
            let err = parse(url, JetStreamOptions::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}");
            assert!(err.message().contains(says), "{url}: {err}");
            assert!(err.message().contains(url), "names the URL: {err}");
        }
    }
}
