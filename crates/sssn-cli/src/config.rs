//! `sssn serve` configuration: a TOML file with `[server]`, `[security]` and `[[channel]]`
//! tables (see `sssn.example.toml` next to this crate's manifest). The `[[channel]]` table,
//! durations and counts are `sssn-config`'s, shared with clients wired from a file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use sssn::Channel;
use sssn::Visibility;
use sssn::security::{AclSecurity, JwtSecurity, OpenSecurity, Security};
use sssn_config::values::{opt_duration_or_zero, opt_positive, opt_positive_duration};
use sssn_config::{ChannelTable, Stores};
use sssn_http::ServerBuilder;

/// A duration given on the command line or in a config (see [`sssn_config::parse_duration`]).
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    sssn_config::parse_duration(text).map_err(anyhow::Error::msg)
}

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
    pub(crate) channels: Vec<ChannelTable>,
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

impl Config {
    /// Resolves relative `sqlite:` paths against `dir` (the config file's directory), so the
    /// server opens the same database wherever it is started from.
    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        for channel in &mut self.channels {
            channel.resolve_paths(dir);
        }
    }

    /// Parses a config file's text.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text).context("invalid config")?;
        let mut seen = std::collections::HashSet::new();
        for c in &config.channels {
            if !seen.insert(c.id()) {
                bail!("channel '{}' is declared twice", c.id());
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
            // Declaring a channel in a serve config is already the act of offering it:
            // public unless the table says `visibility = "private"` (the library's default
            // is private, as in v1, where `publish()` served only the public channels).
            channels.push(
                c.build(Some(&security), Visibility::Public, &mut stores)
                    .await
                    .with_context(|| format!("channel '{}'", c.id()))?,
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
    use sssn::ChannelKind;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn env(var: &str) -> Option<String> {
        (var == "SSSN_JWT_SECRET").then(|| SECRET.to_owned())
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
