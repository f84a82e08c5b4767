//! [`ChannelTable`]: one channel declared in a configuration file — a `[[channel]]` table
//! of `sssn serve`'s config, and of a client's (`sssn_http::ClientConfig`): its kind, id,
//! options and store spec.
//!
//! ```toml
//! [[channel]]
//! id = "jobs"
//! kind = "work-queue"
//! claim_timeout = "30s"
//! max_deliveries = 5
//! retention = { max_age = "1d", max_count = 10000 }
//! store = "sqlite:jobs.db"   # memory (default), sqlite:PATH, nats://HOST:PORT[?…]
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sssn::channel::ChannelBuilder;
use sssn::security::Security;
use sssn::{Channel, ChannelKind, Result, Visibility};

use crate::stores::Stores;
use crate::values::{opt_positive, opt_positive_duration};

/// `retention = { max_age = "1h", max_count = 1000 }`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retention {
    #[serde(default, deserialize_with = "opt_positive_duration")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_count: Option<usize>,
}

/// One declared channel. Values are checked when the file is parsed (durations, counts,
/// unknown keys); the kind, id, visibility, store and the options a kind does not use are
/// checked by [`ChannelTable::build`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelTable {
    id: String,
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    claim_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_deliveries: Option<u32>,
    #[serde(default)]
    retention: Retention,
    #[serde(default = "default_store")]
    store: String,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    period: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_raw_buffer_size: Option<usize>,
    #[serde(default, deserialize_with = "opt_positive")]
    subscriber_capacity: Option<usize>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    maintenance_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    registration_ttl: Option<Duration>,
}

fn default_store() -> String {
    "memory".to_owned()
}

/// `spec` with a relative SQLite path made relative to `dir`; other stores unchanged.
pub fn resolve_store(spec: &str, dir: &Path) -> String {
    let Some(path) = spec
        .strip_prefix("sqlite://")
        .or_else(|| spec.strip_prefix("sqlite:"))
    else {
        return spec.to_owned();
    };
    if path.is_empty() || Path::new(path).is_absolute() {
        return spec.to_owned();
    }
    format!("sqlite:{}", dir.join(path).display())
}

impl ChannelTable {
    /// The channel's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store spec (`memory`, `sqlite:PATH`, `nats://…`).
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Makes a relative `sqlite:` path relative to `dir` (the config file's directory), so
    /// the same database is opened wherever the program is started from.
    pub fn resolve_paths(&mut self, dir: &Path) {
        self.store = resolve_store(&self.store, dir);
    }

    /// Builds the channel (not started) on its store, opened through `stores` (one
    /// handle per distinct spec). `security`: the channel's policy (`None`: the library's
    /// default); `visibility`: used when the table names none.
    pub async fn build(
        &self,
        security: Option<&Arc<dyn Security>>,
        visibility: Visibility,
        stores: &mut Stores,
    ) -> Result<Channel> {
        let kind: ChannelKind = self.kind.parse()?;
        // A periodic channel from a config has no source of its own: it buffers writes and
        // converts them every period. Options the kind does not use are refused by
        // `try_build`, naming them.
        let mut b = ChannelBuilder::new(kind, self.id.clone());
        if let Some(n) = &self.name {
            b = b.name(n);
        }
        if let Some(d) = &self.description {
            b = b.description(d);
        }
        let visibility = match &self.visibility {
            Some(v) => v.parse::<Visibility>()?,
            None => visibility,
        };
        b = b.visibility(visibility);
        if let Some(t) = self.claim_timeout {
            b = b.claim_timeout(t);
        }
        if let Some(n) = self.max_deliveries {
            b = b.max_deliveries(n);
        }
        if let Some(age) = self.retention.max_age {
            b = b.retention_max_age(age);
        }
        if let Some(n) = self.retention.max_count {
            b = b.retention_max_count(n);
        }
        if let Some(p) = self.period {
            b = b.period(p);
        }
        if let Some(n) = self.max_raw_buffer_size {
            b = b.max_raw_buffer_size(n);
        }
        if let Some(n) = self.subscriber_capacity {
            b = b.subscriber_capacity(n);
        }
        if let Some(i) = self.maintenance_interval {
            b = b.maintenance_interval(i);
        }
        if let Some(t) = self.registration_ttl {
            b = b.registration_ttl(t);
        }
        let store = stores.get(&self.store).await?;
        b = b.store(store);
        if let Some(security) = security {
            b = b.security(security.clone());
        }
        b.try_build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_follow_the_config_file() {
        let dir = Path::new("/etc/sssn");
        for (spec, resolved) in [
            ("sqlite:sssn.db", "sqlite:/etc/sssn/sssn.db"),
            ("sqlite://data/q.db", "sqlite:/etc/sssn/data/q.db"),
            ("sqlite:/var/lib/q.db", "sqlite:/var/lib/q.db"),
            ("sqlite:///var/lib/q.db", "sqlite:///var/lib/q.db"),
            ("memory", "memory"),
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ] {
            assert_eq!(resolve_store(spec, dir), resolved, "{spec}");
        }
    }

    #[tokio::test]
    async fn builds_a_channel_and_refuses_what_its_kind_does_not_use() {
        let table: ChannelTable = toml::from_str(
            "id = \"q\"\nkind = \"work-queue\"\nclaim_timeout = 30\nretention = { max_count = 10 }",
        )
        .unwrap();
        let mut stores = Stores::default();
        let q = table
            .build(None, Visibility::Private, &mut stores)
            .await
            .unwrap();
        assert_eq!((q.id(), q.kind()), ("q", ChannelKind::WorkQueue));
        assert_eq!(q.retention().1, Some(10));
        for (text, says) in [
            (
                "id = \"b\"\nkind = \"broadcast\"\nclaim_timeout = 5",
                "claim_timeout",
            ),
            ("id = \"b\"\nkind = \"nope\"", "nope"),
            (
                "id = \"b\"\nkind = \"broadcast\"\nstore = \"redis://x\"",
                "unknown store",
            ),
            (
                "id = \"b\"\nkind = \"broadcast\"\nvisibility = \"PUBLIC\"",
                "PUBLIC",
            ),
        ] {
            let table: ChannelTable = toml::from_str(text).unwrap();
            let err = table
                .build(None, Visibility::Private, &mut stores)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }
}
