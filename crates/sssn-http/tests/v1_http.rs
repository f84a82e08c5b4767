//! sssn 0.0.1's transport tests (behavioural spec §12, 57–60) under JWT, with v1's
//! request shapes: a scoped write token writes, a scoped read token reads and reads the
//! info, a token scoped elsewhere is refused and nothing is stored.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, serve, started};
use serde_json::json;
use sssn::Channel;
use sssn::channel::PassthroughChannel;
use sssn::security::{JwtSecurity, Role, Security};

const SECRET: &str = "a-v1-transport-secret-of-32-bytes!";

async fn server() -> (Harness, Arc<JwtSecurity>, Channel, Channel) {
    let jwt = Arc::new(JwtSecurity::new(SECRET).unwrap());
    let ch1 = started(
        PassthroughChannel::new("ch-1")
            .name("Channel One")
            .public()
            .security(jwt.clone()),
    )
    .await;
    let ch2 = started(
        PassthroughChannel::new("ch-2")
            .name("Channel Two")
            .public()
            .security(jwt.clone()),
    )
    .await;
    (serve(vec![ch1.clone(), ch2.clone()]).await, jwt, ch1, ch2)
}

fn token(jwt: &JwtSecurity, sub: &str, role: Role, channel: &str) -> String {
    jwt.generate_token(
        sub,
        role,
        Some(&[channel.to_owned()]),
        Duration::from_secs(3600),
    )
    .unwrap()
}

#[tokio::test]
async fn v1_57_jwt_round_trip_write_then_scoped_read() {
    let (h, jwt, _, _) = server().await;
    let write = token(&jwt, "writer-1", Role::Write, "ch-1");
    let data = json!({"reading": 21.5, "tags": ["a", "b"], "nested": {"ok": true}});
    let r = h
        .put("/channels/ch-1", &write, &data.to_string())
        .await
        .ok();
    assert_eq!(r["status"], "accepted");
    let item_id = r["item_id"].as_str().unwrap();
    assert!(!item_id.is_empty());

    let read = token(&jwt, "reader-1", Role::Read, "ch-1");
    let got = h.get("/channels/ch-1?limit=10", &read).await.ok();
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{got}");
    assert_eq!(messages[0]["id"], item_id);
    assert_eq!(messages[0]["sender_id"], "writer-1");
    assert_eq!(messages[0]["content"]["data"], data);
    // The read token reads, and only reads.
    h.put("/channels/ch-1", &read, "1").await.expect_error(403);
}

#[tokio::test]
async fn v1_58_put_without_authorization_is_401() {
    let (h, _, ch1, _) = server().await;
    let r = h
        .call(reqwest::Method::PUT, "/channels/ch-1", None, Some("1"))
        .await;
    r.expect_error(401);
    assert_eq!(r.detail(), "Missing Bearer token.");
    assert_eq!(ch1.stats().await.unwrap().stored, 0);
}

#[tokio::test]
async fn v1_59_token_scoped_to_another_channel_is_403_and_nothing_is_stored() {
    let (h, jwt, ch1, ch2) = server().await;
    let elsewhere = token(&jwt, "writer-1", Role::Write, "ch-2");
    let r = h.put("/channels/ch-1", &elsewhere, r#"{"x": 1}"#).await;
    r.expect_error(403);
    assert_eq!(
        r.detail(),
        "Token does not permit 'write' on channel 'ch-1'."
    );
    let batch = h
        .post(
            "/channels/ch-1/batch",
            &elsewhere,
            r#"[{"x": 1}, {"x": 2}]"#,
        )
        .await;
    batch.expect_error(403);
    assert_eq!(
        ch1.stats().await.unwrap().stored,
        0,
        "the store stays empty"
    );
    let admin = jwt
        .generate_token("ops", Role::Admin, None, Duration::from_secs(3600))
        .unwrap();
    let read = h.get("/channels/ch-1?limit=10", &admin).await.ok();
    assert_eq!(read["messages"], json!([]));
    // The same token writes where it is scoped.
    h.put("/channels/ch-2", &elsewhere, "1").await.ok();
    assert_eq!(ch2.stats().await.unwrap().stored, 1);
}

#[tokio::test]
async fn v1_60_info_with_a_scoped_read_token() {
    let (h, jwt, _, _) = server().await;
    let read = token(&jwt, "reader-1", Role::Read, "ch-1");
    let info = h.get("/channels/ch-1/info", &read).await.ok();
    assert_eq!(info["id"], "ch-1");
    assert_eq!(info["name"], "Channel One");
    assert_eq!(info["visibility"], "public");
    // Scoped to ch-1: another channel's info is refused.
    h.get("/channels/ch-2/info", &read).await.expect_error(403);
}
