//! `sssn serve` configuration: a TOML file with `[server]`, `[security]` and `[[channel]]`
//! tables (see `sssn.example.toml` next to this crate's manifest).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer};
use sssn::Channel;
use sssn::channel::ChannelBuilder;
use sssn::security::{AclSecurity, JwtSecurity, OpenSecurity, Security};
use sssn::store::{MemoryStore, Store};
use sssn::{ChannelKind, Visibility};
use sssn_http::ServerBuilder;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) server: ServerConfig,
    /// `None` when the file has no `[security]` table: open security, and only on a
    /// loopback address (see `protected.rs`).
    #[serde(default)]
    pub(crate) security: Option<SecurityConfig>,
    #[serde(default, rename = "channel")]
    pub(crate) channels: Vec<ChannelConfig>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    #[serde(default = "default_bind")]
    pub(crate) bind: String,
    #[serde(default, deserialize_with = "opt_positive")]
    max_body_bytes: Option<usize>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_limit: Option<usize>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_response_bytes: Option<usize>,
    #[serde(default)]
    serve_private: bool,
    #[serde(default)]
    public_metrics: bool,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    sse_keep_alive: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    drain_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    body_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive_duration")]
    idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_connections: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_body_bytes: None,
            max_limit: None,
            max_response_bytes: None,
            serve_private: false,
            public_metrics: false,
            sse_keep_alive: None,
            drain_timeout: None,
            header_read_timeout: None,
            body_timeout: None,
            idle_timeout: None,
            max_connections: None,
        }
    }
}

fn default_bind() -> String {
    "127.0.0.1:8000".to_owned()
}

/// `[security]`: `kind` = open | acl | jwt.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecurityConfig {
    #[serde(default)]
    pub(crate) kind: SecurityKind,
    /// jwt: the HMAC secret (prefer `secret_env`).
    #[serde(default)]
    secret: Option<String>,
    /// jwt: name of the environment variable holding the secret.
    #[serde(default)]
    secret_env: Option<String>,
    /// jwt: HS256 (default), HS384 or HS512.
    #[serde(default)]
    algorithm: Option<String>,
    /// jwt: accepted clock skew after `exp` (zero allowed).
    #[serde(default, deserialize_with = "opt_duration_or_zero")]
    leeway: Option<Duration>,
    /// acl: ids per role.
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    admin: Vec<String>,
    /// acl: secret bearer token per id (`{ worker-1 = "…" }`); once any is set, only these
    /// tokens authenticate.
    #[serde(default)]
    tokens: std::collections::BTreeMap<String, String>,
    /// acl: like `tokens`, naming the environment variable that holds each id's token.
    #[serde(default)]
    tokens_env: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SecurityKind {
    #[default]
    Open,
    Acl,
    Jwt,
}

/// `retention = { max_age = "1h", max_count = 1000 }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retention {
    #[serde(default, deserialize_with = "opt_positive_duration")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "opt_positive")]
    max_count: Option<usize>,
}

/// One `[[channel]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelConfig {
    pub(crate) id: String,
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

/// `spec` with a relative SQLite path made relative to `dir`; other stores unchanged.
fn resolve_store(spec: &str, dir: &Path) -> String {
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

fn default_store() -> String {
    "memory".to_owned()
}

/// The longest duration a config or flag may give: a century (beyond it, deadlines computed
/// from it could overflow the clock's arithmetic).
const MAX_DURATION_SECS: f64 = 100.0 * 365.0 * 86_400.0;

/// A duration: a number of seconds, or text with a unit (`250ms`, `30s`, `5m`, `2h`, `1d`),
/// zero or more, at most a century.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        if t.starts_with('-') {
            anyhow::anyhow!("'{text}' is negative: a duration is zero or more")
        } else {
            anyhow::anyhow!("'{text}' is not a duration (e.g. 250ms, 30s, 5m, 2h, 1d)")
        }
    })?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        other => bail!("unknown duration unit '{other}' in '{text}' (ms, s, m, h, d)"),
    };
    checked_secs(secs, text).map_err(anyhow::Error::msg)
}

/// `secs` as a duration, if it is finite, not negative and at most a century.
fn checked_secs(secs: f64, shown: &str) -> Result<Duration, String> {
    if !secs.is_finite() {
        return Err(format!("'{shown}' is not a finite duration"));
    }
    if secs < 0.0 {
        return Err(format!("'{shown}' is negative: a duration is zero or more"));
    }
    if secs > MAX_DURATION_SECS {
        return Err(format!(
            "'{shown}' is longer than the longest duration accepted (100 years)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration in a config: seconds as a number, or text with a unit.
fn duration_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    let custom = serde::de::Error::custom;
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Secs(s)) => Some(checked_secs(s, &s.to_string()).map_err(custom)?),
        Some(Raw::Text(t)) => Some(parse_duration(&t).map_err(|e| custom(e.to_string()))?),
    })
}

/// A duration that may be zero (a leeway).
fn opt_duration_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_value(d)
}

/// A duration that must be longer than zero: a period, timeout, interval or lifetime of
/// zero would spin or expire at once.
fn opt_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match duration_value(d)? {
        Some(t) if t.is_zero() => Err(serde::de::Error::custom(
            "must be longer than zero (e.g. 250ms, 30s, 5m)",
        )),
        t => Ok(t),
    }
}

/// A count (a size, a limit, a capacity): a whole number, at least 1.
fn opt_positive<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Whole(i64),
        Number(f64),
        Text(String),
    }
    let custom = serde::de::Error::custom;
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Whole(n)) if n >= 1 => u64::try_from(n)
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| custom(format!("{n} is too large"))),
        Some(Raw::Whole(n)) => Err(custom(format!("must be at least 1, not {n}"))),
        Some(Raw::Number(f)) => Err(custom(format!(
            "must be a whole number, at least 1, not {f}"
        ))),
        Some(Raw::Text(t)) => Err(custom(format!(
            "must be a whole number, at least 1, not the text \"{t}\""
        ))),
    }
}

impl Config {
    /// Resolves relative `sqlite:` paths against `dir` (the config file's directory), so the
    /// server opens the same database wherever it is started from.
    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        for channel in &mut self.channels {
            channel.store = resolve_store(&channel.store, dir);
        }
    }

    /// Parses a config file's text.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text).context("invalid config")?;
        let mut seen = std::collections::HashSet::new();
        for c in &config.channels {
            if !seen.insert(c.id.as_str()) {
                bail!("channel '{}' is declared twice", c.id);
            }
        }
        Ok(config)
    }
}

impl SecurityConfig {
    /// The security policy; `env` looks up environment variables.
    pub(crate) fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Arc<dyn Security>> {
        Ok(match self.kind {
            SecurityKind::Open => Arc::new(OpenSecurity),
            SecurityKind::Acl => {
                let acl = AclSecurity::new(&self.read, &self.write, &self.admin);
                for (id, token) in &self.tokens {
                    acl.add_token(token.clone(), id.clone());
                }
                for (id, var) in &self.tokens_env {
                    let token = env(var).ok_or_else(|| {
                        anyhow::anyhow!(
                            "environment variable {var} (the token of '{id}') is not set"
                        )
                    })?;
                    acl.add_token(token, id.clone());
                }
                Arc::new(acl)
            }
            SecurityKind::Jwt => Arc::new(self.jwt(env)?),
        })
    }

    /// Whether a caller must present a secret to authenticate (JWT, or ACL with tokens);
    /// otherwise the bearer token is just the id the caller claims.
    pub(crate) fn needs_a_secret(&self) -> bool {
        match self.kind {
            SecurityKind::Open => false,
            SecurityKind::Acl => !(self.tokens.is_empty() && self.tokens_env.is_empty()),
            SecurityKind::Jwt => true,
        }
    }

    /// The JWT policy (also what `sssn token --config` signs with).
    pub(crate) fn jwt(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<JwtSecurity> {
        if self.kind != SecurityKind::Jwt {
            bail!("[security] kind is not \"jwt\"");
        }
        let secret = match (&self.secret, &self.secret_env) {
            (Some(s), None) => s.clone(),
            (None, Some(var)) => env(var).with_context(|| {
                format!("environment variable {var} (the JWT secret) is not set")
            })?,
            (Some(_), Some(_)) => bail!("[security] sets both secret and secret_env"),
            (None, None) => bail!("[security] kind = \"jwt\" needs secret or secret_env"),
        };
        if secret.len() < 32 {
            bail!("the JWT secret must be at least 32 bytes");
        }
        let algorithm = match self.algorithm.as_deref().unwrap_or("HS256") {
            "HS256" => jsonwebtoken::Algorithm::HS256,
            "HS384" => jsonwebtoken::Algorithm::HS384,
            "HS512" => jsonwebtoken::Algorithm::HS512,
            other => bail!("unsupported JWT algorithm '{other}' (HS256, HS384, HS512)"),
        };
        let mut jwt = JwtSecurity::with_algorithm(secret, algorithm)?;
        if let Some(leeway) = self.leeway {
            jwt = jwt.leeway(leeway);
        }
        Ok(jwt)
    }
}

/// Opens each distinct store once.
#[derive(Default)]
pub(crate) struct Stores {
    open: HashMap<String, Arc<dyn Store>>,
}

impl Stores {
    async fn get(&mut self, spec: &str) -> anyhow::Result<Arc<dyn Store>> {
        if let Some(s) = self.open.get(spec) {
            return Ok(s.clone());
        }
        let store: Arc<dyn Store> = if spec == "memory" {
            Arc::new(MemoryStore::new())
        } else if spec.starts_with("sqlite:") {
            open_sqlite(spec)?
        } else if spec.starts_with("nats://") {
            open_nats(spec).await?
        } else {
            bail!("unknown store '{spec}' (memory, sqlite:PATH or nats://HOST:PORT)")
        };
        self.open.insert(spec.to_owned(), store.clone());
        Ok(store)
    }
}

#[cfg(feature = "sqlite")]
fn open_sqlite(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    Ok(Arc::new(
        sssn_sqlite::SqliteStore::open_url(spec).with_context(|| format!("store '{spec}'"))?,
    ))
}

/// A NATS store URL, `nats://HOST:PORT[,HOST:PORT…][?replicas=3&prefix=NAME&…]` (the
/// options of `sssn_nats`'s store URL). The connection is made in the background, so the
/// server starts while NATS is not reachable yet (its channels start once it is).
#[cfg(feature = "nats")]
async fn open_nats(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    let options = sssn_nats::JetStreamOptions::default().retry_initial_connect(true);
    Ok(Arc::new(
        sssn_nats::JetStreamStore::connect_with(spec, options)
            .await
            .with_context(|| format!("store '{spec}'"))?,
    ))
}

#[cfg(not(feature = "nats"))]
async fn open_nats(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    bail!("store '{spec}': this build of sssn has no NATS support (feature `nats`)")
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    bail!("store '{spec}': this build of sssn has no SQLite support (feature `sqlite`)")
}

impl ChannelConfig {
    async fn build(
        &self,
        security: &Arc<dyn Security>,
        stores: &mut Stores,
    ) -> anyhow::Result<Channel> {
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
        // Declaring a channel in a serve config is already the act of offering it: public
        // unless the config says `visibility = "private"` (the library's default is
        // private, as in v1, where `publish()` served only the public channels).
        let visibility = match &self.visibility {
            Some(v) => v.parse::<Visibility>()?,
            None => Visibility::Public,
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
        Ok(b.store(store).security(security.clone()).try_build()?)
    }
}

/// Everything `sssn serve` runs.
pub(crate) struct Built {
    pub(crate) channels: Vec<Channel>,
    pub(crate) server: ServerBuilder,
}

impl Config {
    /// Builds the channels (not started) and the server options.
    pub(crate) async fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Built> {
        let security = match &self.security {
            Some(s) => s.build(env)?,
            None => SecurityConfig::default().build(env)?,
        };
        let mut stores = Stores::default();
        let mut channels = Vec::with_capacity(self.channels.len());
        for c in &self.channels {
            channels.push(
                c.build(&security, &mut stores)
                    .await
                    .with_context(|| format!("channel '{}'", c.id))?,
            );
        }
        let s = &self.server;
        let mut server = ServerBuilder::default()
            .channels(channels.iter().cloned())
            .serve_private(s.serve_private)
            .public_metrics(s.public_metrics);
        if let Some(n) = s.max_body_bytes {
            server = server.max_body_bytes(n);
        }
        if let Some(n) = s.max_limit {
            server = server.max_limit(n);
        }
        if let Some(n) = s.max_response_bytes {
            server = server.max_response_bytes(n);
        }
        if let Some(k) = s.sse_keep_alive {
            server = server.sse_keep_alive(k);
        }
        if let Some(t) = s.drain_timeout {
            server = server.drain_timeout(Some(t));
        }
        if let Some(t) = s.header_read_timeout {
            server = server.header_read_timeout(Some(t));
        }
        if let Some(t) = s.body_timeout {
            server = server.body_timeout(Some(t));
        }
        if let Some(t) = s.idle_timeout {
            server = server.idle_timeout(Some(t));
        }
        if let Some(n) = s.max_connections {
            server = server.max_connections(n);
        }
        Ok(Built { channels, server })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn env(var: &str) -> Option<String> {
        (var == "SSSN_JWT_SECRET").then(|| SECRET.to_owned())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[tokio::test]
    async fn the_example_config_builds() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../sssn.example.toml").replace(
            "sqlite:sssn.db",
            &format!("sqlite:{}", dir.path().join("x.db").display()),
        );
        let config = Config::parse(&text).unwrap();
        let built = config.build(&env).await.unwrap();
        assert!(built.channels.len() >= 3);
        let jobs = built.channels.iter().find(|c| c.id() == "jobs").unwrap();
        assert_eq!(jobs.kind(), ChannelKind::WorkQueue);
        assert!(jobs.store_description().starts_with("sqlite:"));
        assert_eq!(jobs.security().name(), "jwt");
        // Without the secret the config does not build.
        assert!(config.build(&|_| None).await.is_err());
    }

    #[test]
    fn every_numeric_value_is_checked_with_a_clear_error() {
        let channel =
            |line: &str| format!("[[channel]]\nid = \"c\"\nkind = \"periodic\"\n{line}\n");
        for (text, says) in [
            (channel("period = 0"), "longer than zero"),
            (channel("period = \"0s\""), "longer than zero"),
            (channel("period = -1"), "negative"),
            (channel("period = \"-5s\""), "negative"),
            (channel("period = nan"), "not a finite duration"),
            (channel("period = inf"), "not a finite duration"),
            (channel("period = 1e30"), "100 years"),
            (channel("max_raw_buffer_size = 0"), "at least 1"),
            (channel("max_raw_buffer_size = -4"), "at least 1, not -4"),
            (channel("max_raw_buffer_size = 2.5"), "whole number"),
            (channel("max_raw_buffer_size = \"many\""), "whole number"),
            (channel("subscriber_capacity = 0"), "at least 1"),
            (channel("maintenance_interval = 0"), "longer than zero"),
            (channel("retention = { max_count = 0 }"), "at least 1"),
            (
                channel("retention = { max_age = \"0s\" }"),
                "longer than zero",
            ),
            (channel("max_deliveries = 0"), "at least 1"),
            (channel("max_deliveries = 5000000000"), "too large"),
            (channel("claim_timeout = \"0ms\""), "longer than zero"),
            (channel("registration_ttl = 0"), "longer than zero"),
            ("[server]\nmax_connections = 0".to_owned(), "at least 1"),
            ("[server]\nmax_limit = -3".to_owned(), "at least 1"),
            ("[server]\nmax_body_bytes = 0".to_owned(), "at least 1"),
            ("[server]\nmax_response_bytes = 0".to_owned(), "at least 1"),
            (
                "[server]\nheader_read_timeout = 0".to_owned(),
                "longer than zero",
            ),
            ("[server]\nbody_timeout = \"-1s\"".to_owned(), "negative"),
            (
                "[server]\nidle_timeout = inf".to_owned(),
                "not a finite duration",
            ),
            (
                "[server]\nsse_keep_alive = 0".to_owned(),
                "longer than zero",
            ),
            (
                "[server]\ndrain_timeout = nan".to_owned(),
                "not a finite duration",
            ),
            ("[security]\nleeway = -1".to_owned(), "negative"),
        ] {
            let error = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(error.contains(says), "{text}: {error}");
            // toml names where: line and column.
            assert!(error.contains("line"), "{text}: {error}");
        }
        // What is allowed stays allowed.
        let ok = Config::parse(
            "[security]\nleeway = 0\n[[channel]]\nid = \"c\"\nkind = \"periodic\"\nperiod = 0.25\nmax_raw_buffer_size = 1",
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
        assert!(
            parse_duration("-1s")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        assert!(parse_duration("1e300").is_err());
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

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
    async fn config_errors_are_reported() {
        for (text, why) in [
            ("[server]\nbnid = \"x\"", "unknown key"),
            ("[[channel]]\nid = \"a\"\nkind = \"nope\"", "unknown kind"),
            (
                "[[channel]]\nid = \"a\"\nkind = \"broadcast\"\nstore = \"redis://x\"",
                "unknown store",
            ),
            ("[[channel]]\nid = \"a/b\"\nkind = \"broadcast\"", "bad id"),
            (
                "[[channel]]\nid = \"a\"\nkind = \"broadcast\"\nvisibility = \"PUBLIC\"",
                "bad visibility",
            ),
            (
                "[[channel]]\nid = \"a\"\nkind = \"broadcast\"\n[[channel]]\nid = \"a\"\nkind = \"mailbox\"",
                "duplicate",
            ),
            (
                "[security]\nkind = \"jwt\"\nsecret = \"short\"",
                "short secret",
            ),
            ("[security]\nkind = \"jwt\"", "no secret"),
            (
                "[[channel]]\nid = \"a\"\nkind = \"broadcast\"\nclaim_timeout = \"soon\"",
                "bad duration",
            ),
        ] {
            let outcome = match Config::parse(text) {
                Ok(c) => c.build(&env).await.map(|_| ()),
                Err(e) => Err(e),
            };
            assert!(outcome.is_err(), "{why} should be refused");
        }
        let c = Config::parse(
            "[security]\nkind = \"acl\"\nread = [\"dash\"]\nwrite = [\"worker\"]\n[[channel]]\nid = \"q\"\nkind = \"work-queue\"\nclaim_timeout = 30\nretention = { max_count = 10 }",
        )
        .unwrap();
        let built = c.build(&env).await.unwrap();
        assert_eq!(built.channels[0].security().name(), "acl");
        assert_eq!(built.channels[0].kind(), ChannelKind::WorkQueue);
        // With tokens, ids alone no longer authenticate.
        let c = Config::parse(
            "[security]\nkind = \"acl\"\nwrite = [\"worker\"]\ntokens = { worker = \"s3cret\" }\n[[channel]]\nid = \"q\"\nkind = \"work-queue\"",
        )
        .unwrap();
        let built = c.build(&env).await.unwrap();
        let security = built.channels[0].security();
        assert_eq!(security.authenticate("s3cret").unwrap().id, "worker");
        assert!(security.authenticate("worker").is_err());
    }
}
