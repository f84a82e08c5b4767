//! Trace context across systems: a record's trace follows it through a work queue and a
//! broadcast, writes outside systems stay untouched, every hop is in the journal.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::network::Network;
use sssn::store::Entry;
use sssn::system::{System, SystemContext, SystemSpec};
use sssn::trace::journal::{self, HopKind};
use sssn::trace::{TRACEPARENT, TraceContext};
use sssn::{ChannelMessage, Result};

/// Writes `n` records in its first step.
struct Source(usize);

#[async_trait]
impl System for Source {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let q = ctx.work_queue("in")?;
        for i in 0..std::mem::take(&mut self.0) {
            q.write(&i).await?;
        }
        Ok(())
    }
}

/// Claims everything at once, then handles one by one: write the result, ack the input.
struct Worker;

#[async_trait]
impl System for Worker {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let (q, out) = (ctx.work_queue("in")?, ctx.broadcast("out")?);
        for c in q.claim(10).await? {
            let n: u64 = c.message.data()?;
            out.write(&(n * 10)).await?;
            q.ack(&c).await?.into_result()?;
        }
        Ok(())
    }
}

/// Keeps what it receives, and forwards each to `echo` from `on_message`.
struct Sink(Arc<Mutex<Vec<Entry>>>);

#[async_trait]
impl System for Sink {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("out").await
    }
    async fn on_message(&mut self, ctx: &mut SystemContext, _: &str, e: Entry) -> Result<()> {
        ctx.broadcast("echo")?.write(&e.message.id).await?;
        self.0.lock().unwrap().push(e);
        Ok(())
    }
}

fn ctx(m: &ChannelMessage) -> TraceContext {
    TraceContext::of(m).unwrap_or_else(|| panic!("no trace context on {m:?}"))
}

/// The tests of this file run one at a time: `tracing` caches each call site's interest
/// process-wide, and a call site first reached on a thread without a subscriber while
/// another thread installs its scoped one can stay disabled for that subscriber.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(start_paused = true)]
async fn a_record_keeps_its_trace_through_a_queue_a_worker_and_a_subscriber() {
    let _one = ONE_AT_A_TIME.lock().await;
    let journal = journal::enable(10_000);
    let mut net = Network::new("t");
    let input = net
        .add_channel(WorkQueueChannel::new("in").build())
        .unwrap();
    let out = net
        .add_channel(BroadcastChannel::new("out").build())
        .unwrap();
    let echo = net
        .add_channel(BroadcastChannel::new("echo").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("source").tick_rate(1.0).writes(["in"]),
        Source(4),
    )
    .unwrap();
    net.add_system(
        SystemSpec::new("worker")
            .tick_rate(2.0)
            .reads(["in"])
            .writes(["out"]),
        Worker,
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    net.add_system(
        SystemSpec::new("sink")
            .tick_rate(0.0)
            .reads(["out"])
            .writes(["echo"]),
        Sink(seen.clone()),
    )
    .unwrap();
    // Records written before the network runs (outside any system) stay as v1 wrote them.
    let running = net.start().await.unwrap();
    let plain = echo.write("outsider", &1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let echoed = echo.read("probe", 100).await.unwrap();
    let plain = echoed.iter().find(|m| m.id == plain).unwrap();
    assert!(plain.metadata.get(TRACEPARENT).is_none(), "{plain:?}");

    let results = out.read("probe", 100).await.unwrap();
    assert_eq!(results.len(), 4);
    // Each input started its own trace (the source handled nothing): four traces.
    let traces: std::collections::HashSet<_> = results.iter().map(|m| ctx(m).trace_id).collect();
    assert_eq!(traces.len(), 4, "one trace per record");
    for r in &results {
        let hops = journal.trace(&ctx(r).trace_id.to_string()).unwrap();
        let path: Vec<(HopKind, &str, &str)> = hops
            .iter()
            .map(|h| (h.kind, h.channel.as_str(), h.actor.as_str()))
            .collect();
        assert_eq!(
            path,
            [
                (HopKind::Write, "in", "source"),
                (HopKind::Claim, "in", "worker"),
                (HopKind::Write, "out", "worker"),
                (HopKind::Ack, "in", "worker"),
                (HopKind::Deliver, "out", "sink"),
                (HopKind::Write, "echo", "sink"),
            ],
            "{hops:#?}"
        );
        // Every hop that stores a message is a new span.
        let spans: std::collections::HashSet<_> = hops
            .iter()
            .filter(|h| h.kind == HopKind::Write)
            .map(|h| h.span_id.clone())
            .collect();
        assert_eq!(spans.len(), 3);
    }
    // The worker claimed all four at once; the path above shows each result has its own
    // input's trace (not the first or the last of the batch). The sink's forward, made in
    // on_message, continues the delivered message's trace.
    assert_eq!(input.stats().await.unwrap().acknowledged, 4);
    let echoes: Vec<_> = echoed.iter().filter(|m| m.id != plain.id).collect();
    for e in echoes {
        let of: String = e.data().unwrap();
        let result = results.iter().find(|m| m.id == of).unwrap();
        assert_eq!(ctx(e).trace_id, ctx(result).trace_id);
    }
    assert_eq!(seen.lock().unwrap().len(), 4);
    running.stop().await.unwrap();
}

/// Every span that closed: its name and fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<ClosedSpan>>>);

/// A span's name and its fields as text.
type ClosedSpan = (String, std::collections::BTreeMap<String, String>);

struct Fields(std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.0.insert(
            f.name().to_owned(),
            format!("{v:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut f = Fields(Default::default());
        attrs.record(&mut f);
        ctx.span(id).unwrap().extensions_mut().insert(f);
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(f) = ctx.span(id).unwrap().extensions_mut().get_mut::<Fields>() {
            values.record(f);
        }
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let fields = span
            .extensions()
            .get::<Fields>()
            .map(|f| f.0.clone())
            .unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), fields));
    }
}

#[tokio::test(start_paused = true)]
async fn channel_operations_and_steps_are_spans_with_message_fields() {
    let _one = ONE_AT_A_TIME.lock().await;
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let mut net = Network::new("t");
    net.add_channel(WorkQueueChannel::new("in").build())
        .unwrap();
    let out = net
        .add_channel(BroadcastChannel::new("out").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("source").tick_rate(1.0).writes(["in"]),
        Source(1),
    )
    .unwrap();
    net.add_system(
        SystemSpec::new("worker")
            .tick_rate(2.0)
            .reads(["in"])
            .writes(["out"]),
        Worker,
    )
    .unwrap();
    let running = net.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.stop().await.unwrap();
    let result = out.read("probe", 10).await.unwrap().remove(0);
    let trace_id = ctx(&result).trace_id.to_string();

    let spans = spans.0.lock().unwrap().clone();
    let op = |op: &str, channel: &str| {
        spans
            .iter()
            .find(|(n, f)| {
                n == "sssn.channel"
                    && f.get("op").map(String::as_str) == Some(op)
                    && f.get("channel").map(String::as_str) == Some(channel)
                    && f.contains_key("message_id")
            })
            .unwrap_or_else(|| panic!("no {op} span on {channel}: {spans:#?}"))
            .1
            .clone()
    };
    let claim = op("claim", "in");
    assert_eq!(claim["kind"], "work_queue");
    assert_eq!(claim["attempt"], "1");
    assert_eq!(claim["seq"], "1");
    assert_eq!(claim["trace_id"], trace_id);
    let write_in = op("write", "in");
    assert_eq!(write_in["message_id"], claim["message_id"]);
    assert_eq!(op("ack", "in")["message_id"], claim["message_id"]);
    let write_out = op("write", "out");
    assert_eq!(write_out["message_id"], result.id);
    assert_eq!(write_out["trace_id"], trace_id);
    assert_eq!(write_out["kind"], "broadcast");
    assert!(
        spans
            .iter()
            .any(|(n, f)| n == "sssn.step" && f["system"] == "worker"),
        "no step span"
    );
}
