//! [`JwtSecurity`]: signed tokens carrying subject, role, expiry and an optional channel
//! scope, for remote callers; and the error texts a refused token gets.

use std::collections::HashSet;
use std::sync::RwLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::*;

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
    pub(super) encoding: EncodingKey,
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
