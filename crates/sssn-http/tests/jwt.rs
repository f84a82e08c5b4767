//! JWT over HTTP: every attack is refused with the right status, and the token's subject
//! is the identity.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, b64url, b64url_decode, serve, started};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use sssn::ChannelMessage;
use sssn::channel::WorkQueueChannel;
use sssn::security::{JwtSecurity, Role, Security};

const SECRET: &str = "a-test-secret-that-is-32-bytes-long!";
const DAY: Duration = Duration::from_secs(86_400);

async fn jwt_server() -> (Harness, Arc<JwtSecurity>) {
    let jwt = Arc::new(JwtSecurity::new(SECRET).unwrap());
    let jobs = started(WorkQueueChannel::new("jobs").public().security(jwt.clone())).await;
    let other = started(
        WorkQueueChannel::new("other")
            .public()
            .security(jwt.clone()),
    )
    .await;
    (serve(vec![jobs, other]).await, jwt)
}

fn token(jwt: &JwtSecurity, sub: &str, role: Role, channels: Option<&[&str]>) -> String {
    let channels: Option<Vec<String>> = channels.map(|c| c.iter().map(|s| s.to_string()).collect());
    jwt.generate_token(sub, role, channels.as_deref(), DAY)
        .unwrap()
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn far_future() -> f64 {
    9_999_999_999.0
}

async fn expect_401(h: &Harness, token: &str, why: &str) {
    let r = h.put("/channels/jobs", token, "1").await;
    assert_eq!(r.status, 401, "{why}: {}", r.text);
    r.expect_error(401);
    assert_eq!(r.kind(), "unauthenticated", "{why}");
}

#[tokio::test]
async fn missing_none_forged_expired_tampered_and_revoked_tokens_are_401() {
    let (h, jwt) = jwt_server().await;
    let r = h.call(Method::PUT, "/channels/jobs", None, Some("1")).await;
    r.expect_error(401);
    assert_eq!(r.detail(), "Missing Bearer token.");

    expect_401(&h, "not-a-jwt", "malformed").await;

    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(
            json!({"sub": "x", "role": "admin", "exp": far_future()})
                .to_string()
                .as_bytes()
        )
    );
    expect_401(&h, &none, "alg none").await;

    let wrong_key = sign(
        &json!({"sub": "x", "role": "admin", "exp": far_future()}),
        "another-secret-that-is-32-bytes-long",
    );
    expect_401(&h, &wrong_key, "wrong key").await;

    let expired = sign(
        &json!({"sub": "x", "role": "admin", "exp": 1_000.5}),
        SECRET,
    );
    let r = h.put("/channels/jobs", &expired, "1").await;
    assert_eq!(r.status, 401);
    assert!(r.detail().contains("expired"), "{}", r.detail());
    // A token issued with no lifetime is expired at once (no leeway).
    let instant = jwt
        .generate_token("x", Role::Admin, None, Duration::ZERO)
        .unwrap();
    expect_401(&h, &instant, "zero lifetime").await;

    let no_exp = sign(&json!({"sub": "x", "role": "admin"}), SECRET);
    expect_401(&h, &no_exp, "no exp").await;

    // Tampered payload: a read token promoted to admin, signature kept.
    let read = token(&jwt, "reader", Role::Read, None);
    let parts: Vec<&str> = read.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    claims["role"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    );
    let decoded: Value =
        serde_json::from_slice(&b64url_decode(tampered.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(
        decoded["role"], "admin",
        "the tampered token is well formed"
    );
    assert_eq!(decoded["sub"], "reader");
    expect_401(&h, &tampered, "tampered payload").await;

    // A string scope is malformed, not a substring match (v1 D19).
    let string_scope = sign(
        &json!({"sub": "x", "role": "admin", "exp": far_future(), "channels": "jobs-and-more"}),
        SECRET,
    );
    expect_401(&h, &string_scope, "string channels claim").await;

    // HS512 header against an HS256 server.
    let other_alg = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({"sub": "x", "role": "admin", "exp": far_future()}),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    expect_401(&h, &other_alg, "algorithm not configured").await;

    let revoked = token(&jwt, "x", Role::Admin, None);
    h.put("/channels/jobs", &revoked, "1").await.ok();
    let jti = jwt.verify(&revoked).unwrap().jti.unwrap();
    jwt.revoke(&jti);
    expect_401(&h, &revoked, "revoked").await;
}

#[tokio::test]
async fn valid_tokens_without_the_right_are_403() {
    let (h, jwt) = jwt_server().await;
    let scoped = token(&jwt, "w", Role::Write, Some(&["jobs"]));
    h.put("/channels/jobs", &scoped, "1").await.ok();
    let r = h.put("/channels/other", &scoped, "1").await;
    r.expect_error(403);
    assert_eq!(
        r.detail(),
        "Token does not permit 'write' on channel 'other'."
    );
    let empty_scope = token(&jwt, "w", Role::Admin, Some(&[]));
    h.get("/channels/jobs/info", &empty_scope)
        .await
        .expect_error(403);

    let read = token(&jwt, "r", Role::Read, None);
    h.get("/channels/jobs/info", &read).await.ok();
    h.get("/channels/jobs/history", &read).await.ok();
    h.get("/channels/jobs/history", &empty_scope)
        .await
        .expect_error(403);
    h.get("/channels/jobs/stats", &read).await.ok();
    for (method, path, body) in [
        (Method::PUT, "/channels/jobs", "1"),
        (Method::POST, "/channels/jobs/batch", "[1]"),
        (Method::POST, "/channels/jobs/claim", ""),
        (Method::GET, "/channels/jobs?exclusive=true", ""),
        (Method::POST, "/channels/jobs/acknowledge", "{}"),
        (Method::POST, "/channels/jobs/nack", "{}"),
        (Method::POST, "/channels/jobs/extend", "{}"),
        (Method::POST, "/channels/jobs/reject", "{}"),
    ] {
        let r = h.call(method.clone(), path, Some(&read), Some(body)).await;
        assert_eq!(r.status, 403, "read role on {method} {path}: {}", r.text);
    }
    let write = token(&jwt, "w", Role::Write, None);
    h.get("/channels/jobs/dead-letters", &write)
        .await
        .expect_error(403);
    h.post("/channels/jobs/redrive", &write, "{}")
        .await
        .expect_error(403);
    let admin = token(&jwt, "boss", Role::Admin, Some(&["jobs"]));
    h.get("/channels/jobs/dead-letters", &admin).await.ok();
    // An unknown role authenticates but grants nothing.
    let odd = sign(
        &json!({"sub": "x", "role": "superuser", "exp": far_future()}),
        SECRET,
    );
    h.get("/channels/jobs/info", &odd).await.expect_error(403);
}

#[tokio::test]
async fn the_subject_is_the_sender_and_claimer() {
    let (h, jwt) = jwt_server().await;
    let alice = token(&jwt, "alice", Role::Write, None);
    let bob = token(&jwt, "bob", Role::Write, None);
    h.put("/channels/jobs", &alice, "{\"n\": 1}").await.ok();
    let forged = ChannelMessage::with_data("bob", &1).unwrap();
    let r = h
        .put("/channels/jobs?direct=true", &alice, &forged.to_json())
        .await;
    r.expect_error(403);
    let own = ChannelMessage::with_data("alice", &2).unwrap();
    h.put("/channels/jobs?direct=true", &alice, &own.to_json())
        .await
        .ok();

    let claims = h.post("/channels/jobs/claim?limit=2", &bob, "").await.ok();
    let claims = claims["claims"].as_array().unwrap();
    assert_eq!(claims[0]["message"]["sender_id"], "alice");
    assert_eq!(claims[1]["message"]["sender_id"], "alice");
    let id = claims[0]["message"]["id"].as_str().unwrap();
    // Bob claimed it, so Alice cannot settle it.
    let r = h
        .post(
            "/channels/jobs/acknowledge",
            &alice,
            &json!({"message_ids": [id]}).to_string(),
        )
        .await
        .ok();
    assert_eq!(r["stale"], json!([id]));
    h.post(
        "/channels/jobs/acknowledge",
        &bob,
        &json!({"message_ids": [id]}).to_string(),
    )
    .await
    .ok();
}

#[tokio::test]
async fn listing_shows_only_channels_in_the_token_scope() {
    let (h, jwt) = jwt_server().await;
    let scoped = token(&jwt, "r", Role::Read, Some(&["other"]));
    let list = h.get("/channels", &scoped).await.ok();
    let ids: Vec<&str> = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["other"]);
    let all = token(&jwt, "r", Role::Read, None);
    assert_eq!(
        h.get("/channels", &all).await.ok()["channels"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    h.get("/channels", "forged").await.expect_error(401);
    let metrics = h.get("/metrics", &scoped).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("channel=\"other\""));
    assert!(!metrics.text.contains("channel=\"jobs\""));
    // SSE needs the read right on the channel too.
    let r = h
        .http
        .get(h.url("/channels/jobs/events"))
        .header("authorization", format!("Bearer {scoped}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn a_token_not_valid_yet_or_issued_in_the_future_is_401_on_every_route() {
    let (h, _) = jwt_server().await;
    let now = now_secs();
    let early = sign(
        &json!({"sub": "ops", "role": "admin", "exp": now + 7_200.0, "nbf": now + 3_600.0}),
        SECRET,
    );
    let future = sign(
        &json!({"sub": "ops", "role": "admin", "exp": now + 7_200.0, "iat": now + 3_600.0}),
        SECRET,
    );
    for (token, words) in [
        (&early, "The token is not valid yet"),
        (&future, "The token says it was issued 60 min in the future"),
    ] {
        for (method, path, body) in [
            (Method::PUT, "/channels/jobs", "1"),
            (Method::GET, "/channels/jobs/dead-letters", ""),
            (Method::POST, "/channels/jobs/redrive", "{}"),
            (Method::GET, "/channels/jobs/info", ""),
            (Method::GET, "/channels", ""),
        ] {
            let r = h.call(method.clone(), path, Some(token), Some(body)).await;
            r.expect_error(401);
            assert!(
                r.detail().starts_with(words),
                "{method} {path}: {}",
                r.detail()
            );
        }
        let r = h
            .http
            .get(h.url("/channels/jobs/events"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The same claims once valid: accepted.
    let ok = sign(
        &json!({"sub": "ops", "role": "admin", "exp": now + 7_200.0, "nbf": now - 5.0, "iat": now - 5.0}),
        SECRET,
    );
    h.get("/channels/jobs/dead-letters", &ok).await.ok();
}

#[tokio::test]
async fn token_errors_are_plain_words_not_library_internals() {
    let (h, _) = jwt_server().await;
    let valid = sign(
        &json!({"sub": "x", "role": "write", "exp": far_future()}),
        SECRET,
    );
    let (header, rest) = valid.split_once('.').unwrap();
    let (claims, _) = rest.split_once('.').unwrap();
    let expired = sign(
        &json!({"sub": "x", "role": "admin", "exp": 1_000.5}),
        SECRET,
    );
    let wrong_key = sign(
        &json!({"sub": "x", "role": "admin", "exp": far_future()}),
        "another-secret-that-is-32-bytes-long",
    );
    let cases = [
        (
            "not-a-jwt".to_owned(),
            "The token is malformed: a JWT is three",
        ),
        (
            format!("x.{claims}.sig"),
            "The token is malformed: its header is not valid base64url.",
        ),
        (
            format!("{header}.{claims}.sig!"),
            "The token is malformed: its claims or signature is not valid base64url.",
        ),
        (expired, "The token has expired ("),
        (wrong_key, "The token's signature is wrong"),
        (
            sign(&json!({"role": "admin", "exp": far_future()}), SECRET),
            "The token lacks the 'sub' claim.",
        ),
        (
            sign(&json!({"sub": "x", "role": "admin"}), SECRET),
            "The token has no expiry",
        ),
    ];
    for (token, words) in cases {
        let r = h.put("/channels/jobs", &token, "1").await;
        r.expect_error(401);
        let detail = r.detail();
        assert!(detail.starts_with(words), "{token}: {detail}");
        for internal in [
            "InvalidToken",
            "InvalidSignature",
            "Base64 error",
            "Invalid last symbol",
            "JSON error",
            "ExpiredSignature",
        ] {
            assert!(!detail.contains(internal), "{token}: {detail}");
        }
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (h, jwt) = jwt_server().await;
    let t = token(&jwt, "w", Role::Write, None);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = h
            .http
            .put(h.url("/channels/jobs"))
            .header("authorization", format!("{scheme} {t}"))
            .body("1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "scheme {scheme}: {}",
            r.text().await.unwrap()
        );
    }
    for bad in [format!("Basic {t}"), format!("Bearer{t}"), t.clone()] {
        let r = h
            .http
            .put(h.url("/channels/jobs"))
            .header("authorization", bad.clone())
            .body("1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"], "Missing Bearer token.");
    }
}
