//! OpenTelemetry export (cargo feature `otlp`, off by default): a `tracing` layer that
//! sends closed spans to an OTLP/HTTP collector as JSON (`POST <endpoint>/v1/traces`,
//! OTLP's JSON encoding), with no dependency beyond the HTTP client this crate has.
//!
//! Spans of sssn's channel operations keep the trace of the message they touch (the W3C
//! context in its metadata, see `sssn::trace`): a write's span *is* the message's span, a
//! claim, settle or delivery is its child. Other spans continue their parent's trace.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//! // Nothing is exported unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
//! let (layer, _flush_on_drop) = sssn_http::otlp::from_env("my-service").unzip();
//! tracing_subscriber::registry().with(layer).init();
//! ```

use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use sssn::trace::{SpanId, TraceId};

/// Spans sent in one request at most.
const BATCH: usize = 512;
/// How long a span waits for its batch at most.
const LINGER: Duration = Duration::from_millis(500);
/// Spans waiting to be sent at most; beyond this new spans are dropped (and counted in
/// the log), so a collector that is down never holds the application back.
const QUEUE: usize = 16_384;

/// The OTLP endpoint the environment names: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
/// is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`), as the OpenTelemetry spec says.
pub fn endpoint_from_env() -> Option<String> {
    let set = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        set("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    })
}

/// The layer and its flush guard when the environment names an endpoint; `None` (export
/// off) otherwise. `OTEL_SERVICE_NAME` overrides `service`.
pub fn from_env(service: &str) -> Option<(OtlpLayer, OtlpGuard)> {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    endpoint_from_env().map(|e| layer(&e, &service))
}

/// A layer exporting to `traces_url` (the full `/v1/traces` URL) as `service`. Drop (or
/// [`OtlpGuard::flush`]) the guard at exit so the last spans are sent.
pub fn layer(traces_url: &str, service: &str) -> (OtlpLayer, OtlpGuard) {
    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
    let (url, service) = (traces_url.to_owned(), service.to_owned());
    // The exporter thread lives as long as the layer (a subscriber usually lives for the
    // whole process); the guard only asks it to send what it holds.
    let _ = std::thread::Builder::new()
        .name("sssn-otlp".into())
        .spawn(move || export_loop(&url, &service, &rx));
    (OtlpLayer { tx: tx.clone() }, OtlpGuard { tx })
}

/// What the exporter thread receives.
enum Msg {
    Span(Value),
    /// Send everything received so far, then answer.
    Flush(mpsc::SyncSender<()>),
}

/// How long a flush waits for the collector at most.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// The `tracing` layer (see the module docs).
pub struct OtlpLayer {
    tx: mpsc::SyncSender<Msg>,
}

/// Sends what is queued when dropped (or [`flush`](Self::flush)ed).
pub struct OtlpGuard {
    tx: mpsc::SyncSender<Msg>,
}

impl OtlpGuard {
    /// Sends every span closed so far and waits (at most 10 s) until the collector has
    /// answered. Export goes on afterwards. It blocks the calling thread: call it at exit
    /// or from a blocking context, not from a single-threaded runtime's task.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(FLUSH_WAIT);
        }
    }
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        self.flush();
    }
}

impl std::fmt::Debug for OtlpLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpLayer")
    }
}

impl std::fmt::Debug for OtlpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpGuard")
    }
}

fn export_loop(url: &str, service: &str, rx: &mpsc::Receiver<Msg>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let http = reqwest::Client::new();
    let mut open = true;
    while open {
        let mut batch = Vec::new();
        let mut flushed = None;
        match rx.recv() {
            Ok(Msg::Span(span)) => batch.push(span),
            Ok(Msg::Flush(done)) => flushed = Some(done),
            Err(_) => break,
        }
        let deadline = std::time::Instant::now() + LINGER;
        while batch.len() < BATCH && flushed.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(Msg::Span(span)) => batch.push(span),
                Ok(Msg::Flush(done)) => flushed = Some(done),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            send(&rt, &http, url, service, batch);
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

fn send(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
    service: &str,
    batch: Vec<Value>,
) {
    {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [attr("service.name", json!({"stringValue": service}))]},
            "scopeSpans": [{"scope": {"name": "sssn"}, "spans": batch}]}]});
        let sent = rt.block_on(async {
            http.post(url)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
        });
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "OTLP export refused"),
            Err(e) => tracing::warn!(error = %e, "OTLP export failed"),
        }
    }
}

fn attr(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// What the layer keeps per open span.
struct Open {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    start: SystemTime,
    fields: Fields,
}

#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn set(&mut self, key: &'static str, v: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }
    fn text(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v["stringValue"].as_str())
    }
}

impl field::Visit for Fields {
    fn record_debug(&mut self, f: &field::Field, v: &dyn std::fmt::Debug) {
        self.set(f.name(), json!({"stringValue": format!("{v:?}")}));
    }
    fn record_str(&mut self, f: &field::Field, v: &str) {
        self.set(f.name(), json!({"stringValue": v}));
    }
    fn record_u64(&mut self, f: &field::Field, v: u64) {
        self.set(f.name(), json!({"intValue": v.to_string()}));
    }
    fn record_i64(&mut self, f: &field::Field, v: i64) {
        self.set(f.name(), json!({"intValue": v.to_string()}));
    }
    fn record_bool(&mut self, f: &field::Field, v: bool) {
        self.set(f.name(), json!({"boolValue": v}));
    }
    fn record_f64(&mut self, f: &field::Field, v: f64) {
        self.set(f.name(), json!({"doubleValue": v}));
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<Open>()
                .map(|o| (o.trace_id, o.span_id))
        });
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let trace_id = parent.map_or_else(random_trace, |p| p.0);
        span.extensions_mut().insert(Open {
            trace_id,
            span_id: SpanId::random(),
            parent: parent.map(|p| p.1),
            start: SystemTime::now(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<Open>()
        {
            values.record(&mut open.fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let op = open.fields.text("op").map(str::to_owned);
        // The message's trace: a write's span is the message's span (its parent, the
        // message being handled); any other operation on a message is its child.
        let message_trace = open.fields.text("trace_id").and_then(TraceId::parse);
        let message_span = open.fields.text("span_id").and_then(SpanId::parse);
        if let Some(t) = message_trace {
            open.trace_id = t;
            match (op.as_deref(), message_span) {
                (Some("write"), Some(s)) => {
                    open.span_id = s;
                    open.parent = open.fields.text("parent_span_id").and_then(SpanId::parse);
                }
                (_, parent) => open.parent = parent,
            }
        }
        let name = match (span.name(), op) {
            ("sssn.channel", Some(op)) => format!("sssn.{op}"),
            (name, _) => name.to_owned(),
        };
        let mut out = json!({
            "traceId": open.trace_id.to_string(),
            "spanId": open.span_id.to_string(),
            "name": name,
            "kind": 1,
            "startTimeUnixNano": nanos(open.start),
            "endTimeUnixNano": nanos(SystemTime::now()),
            "attributes": open.fields.0.iter().map(|(k, v)| attr(k, v.clone())).collect::<Vec<_>>(),
        });
        if let Some(p) = open.parent {
            out["parentSpanId"] = Value::String(p.to_string());
        }
        if self.tx.try_send(Msg::Span(out)).is_err() {
            // Full (collector slow or down) or stopped: the span is dropped, never waited on.
        }
    }
}

fn random_trace() -> TraceId {
    sssn::trace::TraceContext::root().trace_id
}
