//! Unit tests of the security policies.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};

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
    assert!(can("w", Operation::Read) && can("w", Operation::Write) && !can("w", Operation::Admin));
    assert!(can("a", Operation::Read) && can("a", Operation::Write) && can("a", Operation::Admin));
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
    let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &jwt.encoding).unwrap();
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
    let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &no_exp, &jwt.encoding).unwrap();
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
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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
