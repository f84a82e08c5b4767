//! Shared helpers of the sssn examples: choosing a store from a URL.

use std::sync::Arc;

use sssn::store::{MemoryStore, Store};

/// Opens the store named by `url`: `memory` (default).
pub async fn open_store(url: &str) -> sssn::Result<Arc<dyn Store>> {
    match url {
        "memory" | "" => Ok(Arc::new(MemoryStore::new())),
        other => Err(sssn::Error::new(
            sssn::ErrorKind::InvalidArgument,
            format!("unknown store '{other}' (expected memory)"),
        )),
    }
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
