//! Protected mode (as Redis has it): a server reachable from other machines must have chosen
//! its security on purpose. Without a `[security]` table `sssn serve` serves with open
//! security, which lets anyone read, write and administer every served channel; that is
//! only allowed on a loopback address. An explicit `kind = "open"` (or an ACL without
//! tokens, where the bearer token is only a claimed id) on another address starts, with a
//! warning.

use std::net::SocketAddr;

use crate::config::{SecurityConfig, SecurityKind};

/// A refusal to start: `sssn serve` exits with status 2 (a usage error, not a failure).
#[derive(Debug)]
pub(crate) struct Refusal(pub(crate) String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// What serving `security` on `bind` calls for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Loopback, or a security that authenticates by secret.
    Serve,
    /// Starts, with this warning at startup.
    Warn(String),
}

/// Checks `security` (`None`: the config has no `[security]` table) against the address
/// the server is about to bind. An address that does not resolve passes: binding it fails
/// next, with its own error.
pub(crate) async fn check(
    security: Option<&SecurityConfig>,
    bind: &str,
) -> Result<Verdict, Refusal> {
    let Ok(addrs) = tokio::net::lookup_host(bind).await else {
        return Ok(Verdict::Serve);
    };
    let addrs: Vec<SocketAddr> = addrs.collect();
    // 0.0.0.0 and :: (every interface) are not loopback.
    if addrs.is_empty() || addrs.iter().all(|a| a.ip().is_loopback()) {
        return Ok(Verdict::Serve);
    }
    match security {
        None => Err(Refusal(format!(
            "refusing to serve on {bind} without a [security] table: anyone who can reach \
             it could read, write and administer every channel. Choose a security kind in \
             the config: [security] kind = \"jwt\" (signed tokens, issued with `sssn token`), \
             kind = \"acl\" with tokens, or kind = \"open\" to serve without authentication \
             on purpose (trusted networks only); or bind to 127.0.0.1"
        ))),
        Some(s) if s.needs_a_secret() => Ok(Verdict::Serve),
        Some(s) => Ok(Verdict::Warn(match s.kind {
            SecurityKind::Acl => format!(
                "serving on {bind} with kind = \"acl\" and no tokens: a bearer token is \
                 only the id the caller claims, so anyone who can reach {bind} can act as \
                 any id (add tokens or tokens_env, or use kind = \"jwt\")"
            ),
            _ => format!(
                "serving on {bind} with kind = \"open\": anyone who can reach it can read, \
                 write and administer every served channel (use kind = \"jwt\" or \"acl\" \
                 with tokens on an untrusted network)"
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn security(text: &str) -> Option<SecurityConfig> {
        Config::parse(text).unwrap().security
    }

    #[tokio::test]
    async fn only_loopback_may_go_without_a_security_table() {
        for bind in ["127.0.0.1:8000", "[::1]:8000", "localhost:8000"] {
            assert_eq!(check(None, bind).await.unwrap(), Verdict::Serve, "{bind}");
        }
        for bind in ["0.0.0.0:8000", "[::]:8000", "192.0.2.7:8000"] {
            let refusal = check(None, bind).await.unwrap_err();
            assert!(refusal.0.contains("kind = \"jwt\""), "{refusal}");
        }
    }

    #[tokio::test]
    async fn open_security_elsewhere_warns_and_secrets_do_not() {
        let open = security("[security]\nkind = \"open\"");
        assert!(matches!(
            check(open.as_ref(), "0.0.0.0:8000").await,
            Ok(Verdict::Warn(w)) if w.contains("kind = \"open\"")
        ));
        assert_eq!(
            check(open.as_ref(), "127.0.0.1:8000").await.unwrap(),
            Verdict::Serve
        );
        let acl = security("[security]\nkind = \"acl\"\nread = [\"a\"]");
        assert!(matches!(
            check(acl.as_ref(), "0.0.0.0:8000").await,
            Ok(Verdict::Warn(w)) if w.contains("no tokens")
        ));
        for text in [
            "[security]\nkind = \"acl\"\nread = [\"a\"]\ntokens = { a = \"s3cret\" }",
            "[security]\nkind = \"jwt\"\nsecret_env = \"X\"",
        ] {
            let s = security(text);
            assert_eq!(
                check(s.as_ref(), "0.0.0.0:8000").await.unwrap(),
                Verdict::Serve
            );
        }
    }
}
