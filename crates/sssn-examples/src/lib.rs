//! Shared helpers of the sssn examples: choosing a store from a URL, printing lines a test
//! can check ([`Out`]), and showing data as Python printed it ([`py`]).

mod out;
mod py;

pub use out::Out;
pub use py::{py, py_data};

use std::sync::Arc;

use sssn::store::{MemoryStore, Store};

/// Opens the store named by `url`:
///
/// - `memory` (the default): in process, nothing to install;
/// - `sqlite:PATH`: durable, one file;
/// - `nats://HOST:PORT[,HOST:PORT…][?replicas=3&prefix=NAME&…]`: NATS JetStream (the
///   store URL of `sssn_nats`); `prefix` namespaces the streams (default `sssn`), so
///   separate deployments can share a server.
pub async fn open_store(url: &str) -> sssn::Result<Arc<dyn Store>> {
    if url.is_empty() || url == "memory" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(sssn_sqlite::SqliteStore::open_url(url)?));
    }
    if url.starts_with("nats://") {
        return Ok(Arc::new(sssn_nats::JetStreamStore::connect(url).await?));
    }
    Err(sssn::Error::new(
        sssn::ErrorKind::InvalidArgument,
        format!("unknown store '{url}' (expected memory, sqlite:PATH or nats://HOST:PORT)"),
    ))
}

/// Logs warnings and errors to stderr (`RUST_LOG` overrides).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Turns a run's result into the process exit code, printing an error readably.
pub fn exit_code<T>(result: sssn::Result<T>) -> std::process::ExitCode {
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Longest run an example accepts: a year.
const MAX_DURATION_SECS: f64 = 365.0 * 86_400.0;

fn seconds(text: &str, ok: impl Fn(f64) -> bool, range: &str) -> Result<f64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !secs.is_finite() || !ok(secs) {
        return Err(format!("{text} seconds is out of range: give {range}"));
    }
    Ok(secs)
}

/// Parses a run duration in seconds (a flag): a finite number above 0, at most a year.
pub fn duration_secs(text: &str) -> Result<f64, String> {
    seconds(
        text,
        |s| s > 0.0 && s <= MAX_DURATION_SECS,
        "more than 0 and at most 31536000 (a year)",
    )
}

/// Parses a period in seconds (a flag): from 0.01 s (a faster loop floods the output) to a
/// day.
pub fn period_secs(text: &str) -> Result<f64, String> {
    seconds(
        text,
        |s| (0.01..=86_400.0).contains(&s),
        "from 0.01 to 86400 (a day)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_flags_refuse_what_cannot_run() {
        for bad in ["-5", "0", "nan", "inf", "1e30", "x", ""] {
            assert!(duration_secs(bad).is_err(), "duration {bad:?}");
        }
        for bad in ["-1", "0", "0.001", "nan", "1e9"] {
            assert!(period_secs(bad).is_err(), "period {bad:?}");
        }
        assert_eq!(duration_secs("12").unwrap(), 12.0);
        assert_eq!(period_secs("0.5").unwrap(), 0.5);
        assert_eq!(
            period_secs("0").unwrap_err(),
            "0 seconds is out of range: give from 0.01 to 86400 (a day)"
        );
    }
}
