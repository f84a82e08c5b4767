//! Who may do what on a channel.
//!
//! Every channel operation is authorised by the channel's [`Security`] object: read,
//! write, claim, ack, nack, subscribe, and admin for clear/evict/remove/redrive (v1 only
//! checked reads and writes, defect D12). Roles are ordered `read ⊂ write ⊂ admin`:
//!
//! | operation | role needed |
//! |---|---|
//! | read, subscribe, info, stats | read |
//! | write, claim, ack, nack, extend | write |
//! | clear, evict, remove, dead letters, redrive | admin |
//!
//! Three policies ship: [`OpenSecurity`] (everyone may do everything), [`AclSecurity`]
//! (per-identity roles, for identities established in process) and [`JwtSecurity`] (signed
//! tokens carrying subject, role, expiry and an optional channel scope, for remote callers).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The operations a channel authorises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Shared (cursor) read, info, stats.
    Read,
    /// Push subscription.
    Subscribe,
    /// Write a message.
    Write,
    /// Claim (exclusive read).
    Claim,
    /// Acknowledge a claim.
    Ack,
    /// Release a claim (nack), reject it, or extend its lease.
    Nack,
    /// Host operations: clear, evict, remove, dead letters, redrive.
    Admin,
}

impl Operation {
    /// The least role that permits this operation.
    pub fn required_role(self) -> Role {
        match self {
            Self::Read | Self::Subscribe => Role::Read,
            Self::Write | Self::Claim | Self::Ack | Self::Nack => Role::Write,
            Self::Admin => Role::Admin,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Subscribe => "subscribe",
            Self::Write => "write",
            Self::Claim => "claim",
            Self::Ack => "ack",
            Self::Nack => "nack",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access level, ordered `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and subscribe.
    Read,
    /// Read, write, claim, ack, nack.
    Write,
    /// Everything, including host operations.
    Admin,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("Unknown role: '{s}'. Must be 'read', 'write', or 'admin'."),
            )),
        }
    }
}

/// An authenticated caller: its identity and, for token callers, what the token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The caller's system id; it becomes the reader or sender id.
    pub id: String,
    /// Role granted by a token; `None` for callers identified in process.
    pub role: Option<Role>,
    /// Channels a token is scoped to; `None` means every channel.
    pub channels: Option<Vec<String>>,
}

impl Principal {
    /// A caller identified in process by its system id.
    pub fn local(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            role: None,
            channels: None,
        }
    }
}

/// A channel's security policy.
pub trait Security: Send + Sync + 'static {
    /// Establishes the caller behind a bearer token (remote calls).
    fn authenticate(&self, token: &str) -> Result<Principal>;

    /// Whether `principal` may perform `op` on channel `channel_id`.
    fn authorize(&self, principal: &Principal, channel_id: &str, op: Operation) -> bool;

    /// Whether the caller identified in process as `id` ([`Principal::local`]) may perform
    /// `op` on `channel_id`. The same decision as [`authorize`](Self::authorize) of that
    /// principal; the policies here override it so an in-process call builds no principal.
    fn authorize_local(&self, id: &str, channel_id: &str, op: Operation) -> bool {
        self.authorize(&Principal::local(id), channel_id, op)
    }

    /// Issues a token for `system_id` with `role`, optionally scoped to `channels`.
    fn generate_token(
        &self,
        system_id: &str,
        role: Role,
        channels: Option<&[String]>,
        expires_in: std::time::Duration,
    ) -> Result<String>;

    /// Short policy name for logs (`open`, `acl`, `jwt`).
    fn name(&self) -> &'static str;
}

/// Everyone may do everything. The token is the identity (no secret), as in v1: use it
/// for trusted networks only.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenSecurity;

impl Security for OpenSecurity {
    fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "The token is empty.",
            ));
        }
        Ok(Principal::local(token))
    }

    fn authorize(&self, _: &Principal, _: &str, _: Operation) -> bool {
        true
    }

    fn authorize_local(&self, _: &str, _: &str, _: Operation) -> bool {
        true
    }

    fn generate_token(
        &self,
        system_id: &str,
        _: Role,
        _: Option<&[String]>,
        _: std::time::Duration,
    ) -> Result<String> {
        Ok(system_id.to_owned())
    }

    fn name(&self) -> &'static str {
        "open"
    }
}

/// Per-identity roles.
///
/// Remote callers authenticate with a bearer token. With no tokens registered the token is
/// the identity itself, as in v1 — anyone can claim any id, so use that only on a network
/// you trust. Once a token is registered with [`AclSecurity::add_token`], only registered
/// tokens authenticate (v1 had no secret at all, defect D14).
#[derive(Debug, Default)]
pub struct AclSecurity {
    roles: RwLock<std::collections::HashMap<String, Role>>,
    tokens: RwLock<std::collections::HashMap<String, String>>,
}

impl AclSecurity {
    /// An ACL from lists of ids per role (v1's `ACLSecurity(read, write, admin)`).
    pub fn new<S: AsRef<str>>(read: &[S], write: &[S], admin: &[S]) -> Self {
        let acl = Self::default();
        for (ids, role) in [
            (read, Role::Read),
            (write, Role::Write),
            (admin, Role::Admin),
        ] {
            for id in ids {
                acl.grant(id.as_ref(), role);
            }
        }
        acl
    }

    /// Grants `role` (and every lesser role) to `system_id`; a higher role already held stays.
    pub fn grant(&self, system_id: &str, role: Role) {
        let mut roles = self.roles.write().unwrap_or_else(|e| e.into_inner());
        let entry = roles.entry(system_id.to_owned()).or_insert(role);
        *entry = (*entry).max(role);
    }

    /// Grants a role given by name; unknown names are an error.
    pub fn grant_named(&self, system_id: &str, role: &str) -> Result<()> {
        self.grant(system_id, role.parse()?);
        Ok(())
    }

    /// Removes every right of `system_id`.
    pub fn revoke(&self, system_id: &str) {
        self.roles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(system_id);
    }

    /// Registers a secret bearer `token` for `system_id`; from then on only registered
    /// tokens authenticate.
    pub fn add_token(&self, token: impl Into<String>, system_id: impl Into<String>) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.into(), system_id.into());
    }

    /// The role of `system_id`, if any.
    pub fn role_of(&self, system_id: &str) -> Option<Role> {
        self.roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(system_id)
            .copied()
    }
}

impl Security for AclSecurity {
    fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "The token is empty.",
            ));
        }
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        if tokens.is_empty() {
            return Ok(Principal::local(token));
        }
        tokens
            .get(token)
            .map(|id| Principal::local(id.as_str()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "The token is not one this server issued.",
                )
            })
    }

    fn authorize(&self, principal: &Principal, channel_id: &str, op: Operation) -> bool {
        self.authorize_local(&principal.id, channel_id, op)
    }

    fn authorize_local(&self, id: &str, _: &str, op: Operation) -> bool {
        self.role_of(id).is_some_and(|r| r >= op.required_role())
    }

    fn generate_token(
        &self,
        system_id: &str,
        role: Role,
        _: Option<&[String]>,
        _: std::time::Duration,
    ) -> Result<String> {
        self.grant(system_id, role);
        Ok(system_id.to_owned())
    }

    fn name(&self) -> &'static str {
        "acl"
    }
}

/// The claims of an sssn JWT (v1 shape: `exp` may be fractional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Subject: the caller's system id.
    pub sub: String,
    /// `read`, `write` or `admin`.
    pub role: String,
    /// Expiry, Unix epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<f64>,
    /// Not before: the token is refused until this time, Unix epoch seconds (RFC 7519
    /// §4.1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<f64>,
    /// Issued at, Unix epoch seconds; a token issued in the future is refused (RFC 7519
    /// §4.1.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<f64>,
    /// Token id (for revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Channel scope; absent means every channel, empty means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
}

/// Signed bearer tokens (HS256 by default). The algorithm is pinned by configuration, never
/// taken from the token; expiry (`exp`), not-before (`nbf`) and issued-at (`iat`, which
/// must not be in the future) are checked with no leeway unless
/// [`leeway`](JwtSecurity::leeway) is configured; a token without `exp` is refused unless
/// [`JwtSecurity::allow_no_expiry`] is set; a string `channels` claim is refused (v1
/// matched it as a substring, D19); revoked token ids are refused. Every refusal is an
/// [`ErrorKind::Unauthenticated`] error whose message says in plain words what is wrong
/// with the token (expired, not valid yet, bad signature, malformed, wrong algorithm,
/// missing or mistyped claim, revoked), never the JWT library's internals.
///
/// In process, callers identified by system id (no token) are trusted, as in v1: the
/// tokens guard the remote surface.
pub struct JwtSecurity {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    leeway_secs: f64,
    require_exp: bool,
    revoked: RwLock<HashSet<String>>,
}

impl fmt::Debug for JwtSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSecurity")
            .field("algorithm", &self.algorithm)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl JwtSecurity {
    /// HS256 with `secret` (at least 32 bytes recommended; empty is refused).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self> {
        Self::with_algorithm(secret, Algorithm::HS256)
    }

    /// An HMAC algorithm (`HS256`, `HS384`, `HS512`) with `secret`.
    pub fn with_algorithm(secret: impl AsRef<[u8]>, algorithm: Algorithm) -> Result<Self> {
        if !matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "JwtSecurity supports HS256, HS384 and HS512 shared secrets",
            ));
        }
        let secret = secret.as_ref();
        let bad = |e: jsonwebtoken::errors::Error| {
            Error::new(ErrorKind::InvalidArgument, format!("JWT secret: {e}"))
        };
        Ok(Self {
            encoding: EncodingKey::from_secret(secret).map_err(bad)?,
            decoding: DecodingKey::from_secret(secret).map_err(bad)?,
            algorithm,
            leeway_secs: 0.0,
            require_exp: true,
            revoked: RwLock::new(HashSet::new()),
        })
    }

    /// Tolerates clock skew between machines: accepts tokens up to `leeway` after their
    /// expiry (`exp`), up to `leeway` before their `nbf`, and with an `iat` up to `leeway`
    /// in the future. No leeway by default.
    #[must_use]
    pub fn leeway(mut self, leeway: std::time::Duration) -> Self {
        self.leeway_secs = leeway.as_secs_f64();
        self
    }

    /// Accepts tokens without an `exp` claim (they never expire). Off by default.
    #[must_use]
    pub fn allow_no_expiry(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Refuses the token with this `jti` from now on.
    pub fn revoke(&self, jti: &str) {
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti.to_owned());
    }

    /// Verifies signature, algorithm, expiry, not-before, issued-at and revocation;
    /// returns the claims. Errors are [`ErrorKind::Unauthenticated`] with a plain sentence.
    pub fn verify(&self, token: &str) -> Result<TokenClaims> {
        let unauthenticated = |why: String| Error::new(ErrorKind::Unauthenticated, why);
        // The header first, so a token for another algorithm is named as such rather than
        // reported as a bad signature.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthenticated(jwt_error_text(&e, Part::Header, self.algorithm)))?;
        if header.alg != self.algorithm {
            return Err(unauthenticated(format!(
                "The token is signed with {:?}, but this server accepts only {:?} tokens.",
                header.alg, self.algorithm
            )));
        }
        let mut validation = Validation::new(self.algorithm);
        // Checked below: v1 tokens carry a fractional `exp`, and the leeway is fractional.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &validation)
            .map_err(|e| unauthenticated(jwt_error_text(&e, Part::Claims, self.algorithm)))?;
        let claims = data.claims;
        let now = crate::clock::now_secs();
        match claims.exp {
            Some(exp) if !exp.is_finite() => {
                return Err(unauthenticated(
                    "The token's expiry ('exp' claim) is not a finite number.".into(),
                ));
            }
            Some(exp) if exp + self.leeway_secs <= now => {
                return Err(unauthenticated(format!(
                    "The token has expired ({} ago).",
                    human_secs(now - exp)
                )));
            }
            None if self.require_exp => {
                return Err(unauthenticated(
                    "The token has no expiry ('exp' claim); this server requires one.".into(),
                ));
            }
            _ => {}
        }
        if let Some(nbf) = claims.nbf
            && (!nbf.is_finite() || nbf - self.leeway_secs > now)
        {
            return Err(unauthenticated(if nbf.is_finite() {
                format!(
                    "The token is not valid yet: its 'nbf' (not before) time is {} from now.",
                    human_secs(nbf - now)
                )
            } else {
                "The token's 'nbf' (not before) claim is not a finite number.".into()
            }));
        }
        if let Some(iat) = claims.iat
            && (!iat.is_finite() || iat - self.leeway_secs > now)
        {
            return Err(unauthenticated(if iat.is_finite() {
                format!(
                    "The token says it was issued {} in the future ('iat' claim); the issuer's clock is wrong or the token is forged.",
                    human_secs(iat - now)
                )
            } else {
                "The token's 'iat' (issued at) claim is not a finite number.".into()
            }));
        }
        if claims.sub.is_empty() {
            return Err(unauthenticated(
                "The token has an empty subject ('sub' claim).".into(),
            ));
        }
        if let Some(jti) = &claims.jti
            && self
                .revoked
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(jti)
        {
            return Err(unauthenticated("The token has been revoked.".into()));
        }
        Ok(claims)
    }
}

/// Which part of a token was being decoded when the JWT library failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Header,
    Claims,
}

/// A duration in seconds, in words: `42 s`, `5 min`, `3 h`, `2 days`.
fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7_200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.0} h", s / 3_600.0)
    } else {
        format!("{:.0} days", s / 86_400.0)
    }
}

/// A plain sentence for a `jsonwebtoken` error: what is wrong with the token, never the
/// library's internals (`InvalidToken`, `Base64 error: Invalid last symbol 0x78`).
fn jwt_error_text(e: &jsonwebtoken::errors::Error, part: Part, accepted: Algorithm) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    let malformed = "The token is malformed: a JWT is three base64url parts (header, claims, signature) separated by dots.";
    match e.kind() {
        K::InvalidToken => malformed.into(),
        K::Base64(_) => format!(
            "The token is malformed: its {} is not valid base64url.",
            match part {
                Part::Header => "header",
                Part::Claims => "claims or signature",
            }
        ),
        K::Utf8(_) => "The token is malformed: it contains text that is not UTF-8.".into(),
        K::Json(json) => match part {
            Part::Header => format!(
                "The token's header is not a valid JWT header (or names an unknown algorithm); this server accepts only {accepted:?} tokens."
            ),
            Part::Claims => claims_json_text(json),
        },
        K::InvalidSignature => "The token's signature is wrong: it was not signed with this server's secret, or it was altered after signing.".into(),
        K::InvalidAlgorithm
        | K::InvalidAlgorithmName
        | K::UnsupportedAlgorithm
        | K::MissingAlgorithm => format!(
            "The token is signed with an algorithm this server does not accept; it accepts only {accepted:?} tokens."
        ),
        K::ExpiredSignature => "The token has expired.".into(),
        K::ImmatureSignature => "The token is not valid yet ('nbf' claim).".into(),
        K::MissingRequiredClaim(claim) => format!("The token lacks the '{claim}' claim."),
        K::InvalidClaimFormat(claim) => {
            format!("The token's '{claim}' claim has the wrong type.")
        }
        K::InvalidIssuer => "The token's issuer ('iss' claim) is not accepted.".into(),
        K::InvalidAudience => "The token's audience ('aud' claim) is not accepted.".into(),
        K::InvalidSubject => "The token's subject ('sub' claim) is not accepted.".into(),
        // Key and signing failures, providers, and kinds a later version adds.
        _ => "The token could not be verified.".into(),
    }
}

/// The claims of a token were not the JSON sssn expects: say which claim, in words.
fn claims_json_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("missing field `")
        && let Some(claim) = rest.split('`').next()
    {
        return format!("The token lacks the '{claim}' claim.");
    }
    if e.is_data() {
        "The token's claims have the wrong shape: 'sub' and 'role' must be strings, 'exp', 'nbf' and 'iat' numbers, and 'channels' a list of channel ids.".into()
    } else {
        "The token is malformed: its claims are not a JSON object.".into()
    }
}

impl Security for JwtSecurity {
    fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.verify(token)?;
        let role = claims.role.parse::<Role>().ok();
        // An unknown role authenticates the caller but grants nothing anywhere.
        let channels = if role.is_some() {
            claims.channels
        } else {
            Some(Vec::new())
        };
        Ok(Principal {
            id: claims.sub,
            role,
            channels,
        })
    }

    fn authorize(&self, principal: &Principal, channel_id: &str, op: Operation) -> bool {
        if let Some(channels) = &principal.channels
            && !channels.iter().any(|c| c == channel_id)
        {
            return false;
        }
        match principal.role {
            Some(role) => role >= op.required_role(),
            // Identified in process, not by a token: trusted (see the type docs).
            None => principal.channels.is_none(),
        }
    }

    fn authorize_local(&self, _: &str, _: &str, _: Operation) -> bool {
        // A principal with no role and no channel scope: trusted, as in `authorize`.
        true
    }

    fn generate_token(
        &self,
        system_id: &str,
        role: Role,
        channels: Option<&[String]>,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        let claims = TokenClaims {
            sub: system_id.to_owned(),
            role: role.as_str().to_owned(),
            exp: Some(crate::clock::now_secs() + expires_in.as_secs_f64()),
            nbf: None,
            iat: None,
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
            channels: channels.map(<[String]>::to_vec),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("signing token: {e}")))
    }

    fn name(&self) -> &'static str {
        "jwt"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: &str = "a-test-secret-that-is-32-bytes-long!";
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn open_allows_everything() {
        let open = OpenSecurity;
        let p = open.authenticate("anyone").unwrap();
        assert_eq!(p.id, "anyone");
        for op in [Operation::Read, Operation::Write, Operation::Admin] {
            assert!(open.authorize(&p, "c", op));
        }
        assert_eq!(
            open.generate_token("sys", Role::Read, None, DAY).unwrap(),
            "sys"
        );
    }

    #[test]
    fn local_callers_get_the_decision_of_their_principal() {
        let acl = AclSecurity::default();
        acl.grant("w", Role::Write);
        let jwt = JwtSecurity::new(SECRET).unwrap();
        let policies: [&dyn Security; 3] = [&OpenSecurity, &acl, &jwt];
        let ops = [
            Operation::Read,
            Operation::Subscribe,
            Operation::Write,
            Operation::Claim,
            Operation::Ack,
            Operation::Nack,
            Operation::Admin,
        ];
        for policy in policies {
            for id in ["w", "nobody"] {
                for op in ops {
                    assert_eq!(
                        policy.authorize_local(id, "c", op),
                        policy.authorize(&Principal::local(id), "c", op),
                        "{} policy, caller {id}, {op}",
                        policy.name()
                    );
                }
            }
        }
        assert!(!acl.authorize_local("nobody", "c", Operation::Read));
        assert!(!acl.authorize_local("w", "c", Operation::Admin));
    }

    #[test]
    fn acl_roles_are_nested() {
        let acl = AclSecurity::default();
        let who = |id: &str| Principal::local(id);
        acl.grant("r", Role::Read);
        acl.grant("w", Role::Write);
        acl.grant("a", Role::Admin);
        let can = |id: &str, op| acl.authorize(&who(id), "c", op);
        assert!(
            can("r", Operation::Read) && !can("r", Operation::Write) && !can("r", Operation::Admin)
        );
        assert!(
            can("w", Operation::Read) && can("w", Operation::Write) && !can("w", Operation::Admin)
        );
        assert!(
            can("a", Operation::Read) && can("a", Operation::Write) && can("a", Operation::Admin)
        );
        acl.revoke("a");
        assert!(!can("a", Operation::Read));
        assert!(!can("unknown", Operation::Read));
        let err = acl.grant_named("x", "superuser").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("Unknown role: 'superuser'"));
    }

    #[test]
    fn acl_registered_tokens_replace_identity_tokens() {
        let acl = AclSecurity::new(&["reader"], &[], &[]);
        assert_eq!(
            acl.authenticate("reader").unwrap().id,
            "reader",
            "v1 mode: token = id"
        );
        acl.add_token("s3cret-for-reader", "reader");
        assert_eq!(acl.authenticate("s3cret-for-reader").unwrap().id, "reader");
        assert_eq!(
            acl.authenticate("reader").unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
    }

    #[test]
    fn acl_constructor_lists_and_generate_token() {
        let acl = AclSecurity::new(&["reader"], &["writer"], &["boss"]);
        assert!(!acl.authorize(&Principal::local("reader"), "c", Operation::Write));
        assert!(acl.authorize(&Principal::local("writer"), "c", Operation::Write));
        assert!(acl.authorize(&Principal::local("boss"), "c", Operation::Admin));
        assert_eq!(
            acl.generate_token("new", Role::Write, None, DAY).unwrap(),
            "new"
        );
        assert!(acl.authorize(&Principal::local("new"), "c", Operation::Write));
    }

    #[test]
    fn jwt_round_trip_scope_and_role() {
        let jwt = JwtSecurity::new(SECRET).unwrap();
        let ch1 = vec!["ch-1".to_owned()];
        let read = jwt
            .generate_token("dash", Role::Read, Some(&ch1), DAY)
            .unwrap();
        let p = jwt.authenticate(&read).unwrap();
        assert_eq!(p.id, "dash");
        assert!(jwt.authorize(&p, "ch-1", Operation::Read));
        assert!(!jwt.authorize(&p, "ch-1", Operation::Write));
        assert!(!jwt.authorize(&p, "ch-2", Operation::Read));
        let admin = jwt.generate_token("root", Role::Admin, None, DAY).unwrap();
        let p = jwt.authenticate(&admin).unwrap();
        assert!(jwt.authorize(&p, "anything", Operation::Admin));
        assert_eq!(
            jwt.authenticate("not-a-jwt").unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );
        // Trusted in process.
        assert!(jwt.authorize(&Principal::local("x"), "c", Operation::Admin));
    }

    #[test]
    fn jwt_refuses_expired_forged_and_none_tokens() {
        let jwt = JwtSecurity::new(SECRET).unwrap();
        let other = JwtSecurity::new("another-secret-that-is-32-bytes-long").unwrap();
        let forged = other.generate_token("x", Role::Admin, None, DAY).unwrap();
        assert!(jwt.authenticate(&forged).is_err());

        let expired = TokenClaims {
            sub: "x".into(),
            role: "read".into(),
            exp: Some(crate::clock::now_secs() - 1.0),
            nbf: None,
            iat: None,
            jti: None,
            channels: None,
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &jwt.encoding).unwrap();
        assert!(
            jwt.authenticate(&t)
                .unwrap_err()
                .message()
                .contains("expired")
        );

        // alg: none with the same claims.
        use base64_like::encode as b64;
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"sub":"x","role":"admin","exp":9999999999}"#)
        );
        assert!(jwt.authenticate(&none).is_err());

        // No exp: refused by default.
        let no_exp = TokenClaims {
            exp: None,
            ..expired
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &no_exp, &jwt.encoding).unwrap();
        assert!(jwt.authenticate(&t).is_err());

        // A string scope is a malformed token, not a substring match.
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "role": "read", "exp": 9.9e9, "channels": "ch-1"}),
            &jwt.encoding,
        )
        .unwrap();
        assert!(jwt.authenticate(&t).is_err());
    }

    #[test]
    fn jwt_unknown_role_grants_nothing_and_revocation_works() {
        let jwt = JwtSecurity::new(SECRET).unwrap();
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "role": "superuser", "exp": 9.9e9}),
            &jwt.encoding,
        )
        .unwrap();
        let p = jwt.authenticate(&t).unwrap();
        assert!(!jwt.authorize(&p, "c", Operation::Read));

        let t = jwt.generate_token("y", Role::Read, None, DAY).unwrap();
        let jti = jwt.verify(&t).unwrap().jti.unwrap();
        jwt.revoke(&jti);
        assert!(jwt.authenticate(&t).is_err());
    }

    fn signed(jwt: &JwtSecurity, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &jwt.encoding).unwrap()
    }

    #[test]
    fn jwt_not_before_and_issued_at_are_checked_with_the_leeway() {
        let jwt = JwtSecurity::new(SECRET).unwrap();
        let now = crate::clock::now_secs();
        let exp = now + 3_600.0;
        let claims = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "x", "role": "admin", "exp": exp});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let early = signed(&jwt, &claims(serde_json::json!({"nbf": now + 600.0})));
        let err = jwt.authenticate(&early).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert_eq!(
            err.message(),
            "The token is not valid yet: its 'nbf' (not before) time is 10 min from now."
        );
        let future_iat = signed(&jwt, &claims(serde_json::json!({"iat": now + 600.0})));
        assert!(
            jwt.authenticate(&future_iat)
                .unwrap_err()
                .message()
                .starts_with("The token says it was issued 10 min in the future")
        );
        // Past nbf and iat are fine, and so are integer ones (the RFC's NumericDate).
        let fine = signed(
            &jwt,
            &claims(serde_json::json!({"nbf": now as i64 - 10, "iat": now as i64 - 10})),
        );
        assert_eq!(jwt.authenticate(&fine).unwrap().id, "x");
        // Within the leeway: accepted; beyond it: refused.
        let lenient = JwtSecurity::new(SECRET)
            .unwrap()
            .leeway(std::time::Duration::from_secs(900));
        assert!(lenient.authenticate(&early).is_ok());
        assert!(lenient.authenticate(&future_iat).is_ok());
        let far = signed(&jwt, &claims(serde_json::json!({"nbf": now + 1_800.0})));
        assert!(lenient.authenticate(&far).is_err());
        // A mistyped nbf is a malformed token, not a valid one.
        let odd = signed(&jwt, &claims(serde_json::json!({"nbf": "soon"})));
        assert!(
            jwt.authenticate(&odd)
                .unwrap_err()
                .message()
                .starts_with("The token's claims have the wrong shape")
        );
    }

    #[test]
    fn jwt_errors_are_plain_sentences() {
        let jwt = JwtSecurity::new(SECRET).unwrap();
        let text = |t: &str| jwt.authenticate(t).unwrap_err().message().to_owned();
        let valid = jwt.generate_token("x", Role::Read, None, DAY).unwrap();
        let (header, rest) = valid.split_once('.').unwrap();
        let (claims, signature) = rest.split_once('.').unwrap();
        assert_eq!(
            text("not-a-jwt"),
            "The token is malformed: a JWT is three base64url parts (header, claims, signature) separated by dots."
        );
        assert_eq!(
            text(&format!("x.{claims}.{signature}")),
            "The token is malformed: its header is not valid base64url."
        );
        assert_eq!(
            text(&format!("{header}.{claims}.{signature}!")),
            "The token is malformed: its claims or signature is not valid base64url."
        );
        // A shortened signature is bad base64url or a wrong signature, depending on its
        // length: either way a plain sentence.
        let short = text(&format!("{header}.{claims}.{}", &signature[1..]));
        assert!(
            short.contains("base64url") || short.contains("signature is wrong"),
            "{short}"
        );
        let mut forged = signature.to_owned().into_bytes();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            text(&format!(
                "{header}.{claims}.{}",
                String::from_utf8(forged).unwrap()
            )),
            "The token's signature is wrong: it was not signed with this server's secret, or it was altered after signing."
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::json!({"sub": "x", "role": "read", "exp": 9.9e9}),
            &jwt.encoding,
        )
        .unwrap();
        assert_eq!(
            text(&hs512),
            "The token is signed with HS512, but this server accepts only HS256 tokens."
        );
        use base64_like::encode as b64;
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"sub":"x","role":"admin","exp":9999999999}"#)
        );
        assert!(text(&none).starts_with("The token's header is not a valid JWT header"));
        let no_sub = signed(&jwt, &serde_json::json!({"role": "read", "exp": 9.9e9}));
        assert_eq!(text(&no_sub), "The token lacks the 'sub' claim.");
        let expired = signed(
            &jwt,
            &serde_json::json!({"sub": "x", "role": "read", "exp": crate::clock::now_secs() - 7_200.0}),
        );
        assert_eq!(text(&expired), "The token has expired (2 h ago).");
        let no_exp = signed(&jwt, &serde_json::json!({"sub": "x", "role": "read"}));
        assert_eq!(
            text(&no_exp),
            "The token has no expiry ('exp' claim); this server requires one."
        );
        let jti = jwt.verify(&valid).unwrap().jti.unwrap();
        jwt.revoke(&jti);
        assert_eq!(text(&valid), "The token has been revoked.");
        // None of the library's own names or texts leak through.
        for t in [
            text("not-a-jwt"),
            text(&format!("x.{claims}.{signature}")),
            text(&none),
        ] {
            for internal in [
                "InvalidToken",
                "Base64 error",
                "Invalid last symbol",
                "JSON error",
            ] {
                assert!(!t.contains(internal), "{t}");
            }
        }
    }

    mod base64_like {
        /// URL-safe base64 without padding (enough for test tokens).
        pub(super) fn encode(s: &str) -> String {
            const T: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let b = s.as_bytes();
            let mut out = String::new();
            for chunk in b.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
                let chars = chunk.len() + 1;
                for i in 0..chars {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
