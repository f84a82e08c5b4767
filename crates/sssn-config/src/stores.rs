//! [`Stores`]: the stores named by store specs (`memory`, `sqlite:PATH`,
//! `nats://HOST:PORT[,…][?…]`), each distinct spec opened once, so channels declared on the
//! same spec share one store.

use std::collections::HashMap;
use std::sync::Arc;

use sssn::store::{MemoryStore, Store};
use sssn::{Error, ErrorKind, Result};

/// Opens each distinct store spec once.
#[derive(Default)]
pub struct Stores {
    open: HashMap<String, Arc<dyn Store>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("open", &self.open.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Stores {
    /// The store of `spec`, opened on first use. `memory` is a fresh in-memory store per
    /// `Stores`; `sqlite:PATH` needs the `sqlite` feature, `nats://…` the `nats` feature
    /// (the connection is made in the background, so a program starts while NATS is not
    /// reachable yet; its channels start once it is).
    pub async fn get(&mut self, spec: &str) -> Result<Arc<dyn Store>> {
        if let Some(s) = self.open.get(spec) {
            return Ok(s.clone());
        }
        let store: Arc<dyn Store> = if spec == "memory" {
            Arc::new(MemoryStore::new())
        } else if spec.starts_with("sqlite:") {
            open_sqlite(spec).map_err(|e| naming(spec, e))?
        } else if spec.starts_with("nats://") {
            open_nats(spec).await.map_err(|e| naming(spec, e))?
        } else {
            return Err(invalid(format!(
                "unknown store '{spec}' (memory, sqlite:PATH or nats://HOST:PORT)"
            )));
        };
        self.open.insert(spec.to_owned(), store.clone());
        Ok(store)
    }
}

/// `e`, saying which store it is about.
fn naming(spec: &str, e: Error) -> Error {
    if e.message().contains(spec) {
        return e;
    }
    Error::new(e.kind(), format!("store '{spec}': {}", e.message()))
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

#[cfg(feature = "sqlite")]
fn open_sqlite(spec: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(sssn_sqlite::SqliteStore::open_url(spec)?))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(spec: &str) -> Result<Arc<dyn Store>> {
    Err(invalid(format!(
        "store '{spec}': this build has no SQLite support (feature `sqlite`)"
    )))
}

#[cfg(feature = "nats")]
async fn open_nats(spec: &str) -> Result<Arc<dyn Store>> {
    let options = sssn_nats::JetStreamOptions::default().retry_initial_connect(true);
    Ok(Arc::new(
        sssn_nats::JetStreamStore::connect_with(spec, options).await?,
    ))
}

#[cfg(not(feature = "nats"))]
async fn open_nats(spec: &str) -> Result<Arc<dyn Store>> {
    Err(invalid(format!(
        "store '{spec}': this build has no NATS support (feature `nats`)"
    )))
}
