//! Shared helpers of the sssn examples: choosing a store from a URL.

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
