//! OTLP export (feature `otlp`): a local OTLP/HTTP endpoint receives the spans of channel
//! operations, in the traces of the messages they touch.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use serde_json::Value;
use sssn::channel::WorkQueueChannel;
use sssn::trace::TraceContext;
use tracing_subscriber::layer::SubscriberExt;

/// Every span the endpoint received, flattened.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                assert!(
                    headers["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("application/json")
                );
                let v: Value = serde_json::from_str(&body).unwrap();
                for rs in v["resourceSpans"].as_array().unwrap() {
                    let service = &rs["resource"]["attributes"][0];
                    assert_eq!(service["key"], "service.name");
                    for ss in rs["scopeSpans"].as_array().unwrap() {
                        for span in ss["spans"].as_array().unwrap() {
                            let mut span = span.clone();
                            span["service"] = service["value"]["stringValue"].clone();
                            sink.lock().unwrap().push(span);
                        }
                    }
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

// Two worker threads: `flush` blocks the test's thread while the receiver answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_otlp_endpoint_receives_the_spans_of_channel_operations() {
    let (url, got) = receiver().await;
    // What `otlp::from_env` builds from OTEL_EXPORTER_OTLP_ENDPOINT=<url>.
    let (layer, guard) = sssn_http::otlp::layer(&format!("{url}/v1/traces"), "otlp-test");
    let subscriber = tracing_subscriber::registry().with(layer);
    let _default = tracing::subscriber::set_default(subscriber);

    let q = WorkQueueChannel::new("jobs").build();
    q.start().await.unwrap();
    let parent = TraceContext::root();
    let id = parent.clone().scope(q.write("producer", &1)).await.unwrap();
    let claimed = q.claim("worker", 1).await.unwrap();
    q.ack("worker", &claimed)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let message = TraceContext::of(&claimed[0].message).unwrap();
    guard.flush();
    drop(guard);

    let spans = got.lock().unwrap().clone();
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name && attr(s, "channel").is_some())
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
            .clone()
    };
    let write = named("sssn.write");
    assert_eq!(write["service"], "otlp-test");
    assert_eq!(write["traceId"], parent.trace_id.to_string());
    assert_eq!(
        write["spanId"],
        message.span_id.to_string(),
        "the write is the message's span"
    );
    assert_eq!(write["parentSpanId"], parent.span_id.to_string());
    assert_eq!(attr(&write, "channel").unwrap()["stringValue"], "jobs");
    assert_eq!(attr(&write, "kind").unwrap()["stringValue"], "work_queue");
    assert_eq!(attr(&write, "message_id").unwrap()["stringValue"], id);
    assert_eq!(attr(&write, "seq").unwrap()["intValue"], "1");
    let claim = named("sssn.claim");
    assert_eq!(claim["traceId"], parent.trace_id.to_string());
    assert_eq!(claim["parentSpanId"], message.span_id.to_string());
    assert_eq!(attr(&claim, "attempt").unwrap()["intValue"], "1");
    let ack = named("sssn.ack");
    assert_eq!(attr(&ack, "message_id").unwrap()["stringValue"], id);
    let start: u128 = write["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u128 = write["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start > 0 && end >= start);
}
