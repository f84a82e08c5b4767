//! A channel hook that panics or hangs behind the HTTP server: the write gets the JSON
//! error body of the existing mapping (`internal` → 500, `timeout` → 504, the hook's own
//! error kind otherwise), and the server keeps serving.

mod common;

use std::time::Duration;

use common::{serve, started};
use serde_json::json;
use sssn::channel::{PassthroughChannel, default_convert};
use sssn::{Error, ErrorKind, Payload};

#[tokio::test]
async fn a_panicking_or_slow_hook_is_a_json_error_and_the_server_keeps_serving() {
    let ch = started(
        PassthroughChannel::new("hooked")
            .public()
            .hook_timeout(Duration::from_millis(300))
            .convert_async(|sender, payload| async move {
                match &payload {
                    Payload::Data(v) if *v == json!("panic") => panic!("hook bug"),
                    Payload::Data(v) if *v == json!("slow") => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Payload::Data(v) if *v == json!("refuse") => {
                        return Err(Error::new(ErrorKind::InvalidMessage, "no refusals"));
                    }
                    _ => {}
                }
                default_convert(&sender, payload)
            }),
    )
    .await;
    let h = serve(vec![ch]).await;

    let r = h.put("/channels/hooked", "w", r#""panic""#).await;
    r.expect_error(500);
    assert_eq!(r.kind(), "internal");
    assert_eq!(
        r.detail(),
        "the convert hook of channel 'hooked' panicked: hook bug"
    );

    let r = h.put("/channels/hooked", "w", r#""slow""#).await;
    r.expect_error(504);
    assert_eq!(r.kind(), "timeout");

    let r = h.put("/channels/hooked", "w", r#""refuse""#).await;
    r.expect_error(400);
    assert_eq!(
        r.kind(),
        "invalid_message",
        "a hook's own answer keeps its kind"
    );

    let id = h.put("/channels/hooked", "w", r#""fine""#).await.ok()["item_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let msgs = h.get("/channels/hooked", "r").await.ok();
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 1, "{msgs}");
    assert_eq!(
        msgs["messages"][0]["id"],
        id.as_str(),
        "the server kept serving"
    );
}
