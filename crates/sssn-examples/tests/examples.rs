//! Every example runs and prints what its docs show. The examples' own code is compiled
//! in here so the tests drive exactly what `cargo run --example …` runs.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Write as _;
#[path = "../examples/data_pipeline.rs"]
mod data_pipeline;

use std::collections::HashSet;

fn pipeline_args(duration: f64, period: f64, store: &str) -> data_pipeline::Args {
    data_pipeline::Args {
        duration,
        period,
        store: store.to_owned(),
        console: None,
    }
}

fn assert_each_once(ids: &[String], expected: usize) {
    assert_eq!(ids.len(), expected, "records received");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), expected, "each record processed exactly once");
}

#[tokio::test(start_paused = true)]
async fn pipeline_defaults_process_30_records_exactly_once() {
    let report = data_pipeline::run(pipeline_args(30.0, 5.0, "memory"))
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 30);
}

#[tokio::test(start_paused = true)]
async fn pipeline_short_run_processes_30_records() {
    let report = data_pipeline::run(pipeline_args(12.0, 2.0, "memory"))
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 30);
}

#[tokio::test(start_paused = true)]
async fn pipeline_dashboard_records_carry_the_trace_of_their_raw_record() {
    let journal = sssn::trace::journal::enable(10_000);
    let report = data_pipeline::run(pipeline_args(4.0, 2.0, "memory"))
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 10);
    let traces: HashSet<&String> = report.trace_ids.iter().collect();
    assert_eq!(traces.len(), 10, "one trace per raw record: {traces:?}");
    for trace in &report.trace_ids {
        // The raw record the ingestor queued was stored with this very trace id, then the
        // worker's processed record and the dashboard's delivery continued it.
        let hops = journal.trace(trace).unwrap();
        let path: Vec<(&str, &str)> = hops
            .iter()
            .filter(|h| {
                use sssn::trace::journal::HopKind::{Deliver, Write};
                matches!(h.kind, Write | Deliver)
            })
            .map(|h| (h.channel.as_str(), h.actor.as_str()))
            .collect();
        assert_eq!(path.len(), 3, "{hops:#?}");
        assert_eq!(path[0], ("raw-records", "ingestor"));
        assert_eq!(path[1].0, "processed");
        assert!(path[1].1.starts_with("worker-"), "{path:?}");
        assert_eq!(path[2], ("processed", "dashboard"));
    }
}

#[path = "../examples/request_response.rs"]
mod request_response;

#[tokio::test(start_paused = true)]
async fn request_response_answers_42_and_all_concurrent_requests() {
    let args = request_response::Args {
        store: "memory".into(),
    };
    let (answer, concurrent) = request_response::run(args).await.unwrap();
    assert_eq!(answer, 42);
    assert_eq!(concurrent, 10);
}

#[path = "../examples/discovery.rs"]
mod discovery;

#[tokio::test(start_paused = true)]
async fn discovery_consumer_finds_the_feed_and_reads_it() {
    let args = discovery::Args {
        duration: 5.0,
        store: "memory".into(),
    };
    let readings = discovery::run(args).await.unwrap();
    assert!(
        readings >= 5,
        "the consumer printed {readings} temperatures"
    );
}

#[path = "../examples/quick_start.rs"]
mod quick_start;

#[tokio::test(start_paused = true)]
async fn quick_start_monitor_prints_each_reading() {
    let args = quick_start::Args {
        duration: 2.6,
        store: "memory".into(),
    };
    let seen = quick_start::run(args).await.unwrap();
    assert_eq!(seen, 6, "readings at 0, 0.5, … 2.5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_on_sqlite_processes_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("pipeline.db").display());
    let report = data_pipeline::run(pipeline_args(3.0, 0.5, &url))
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_on_nats_processes_every_record_once() {
    const SERVER: &str = "nats://127.0.0.1:4222";
    if std::net::TcpStream::connect("127.0.0.1:4222").is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED pipeline_on_nats_processes_every_record_once: NATS not reachable at 127.0.0.1:4222"
        );
        return;
    }
    let prefix = format!("pipe-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let url = format!("{SERVER}?prefix={prefix}");
    let report = data_pipeline::run(pipeline_args(3.0, 0.5, &url)).await;
    let cleanup = sssn_nats::JetStreamStore::connect_with(
        SERVER,
        sssn_nats::JetStreamOptions::default().prefix(prefix),
    )
    .await
    .unwrap();
    cleanup.delete_all().await.unwrap();
    assert_each_once(&report.unwrap().record_ids, 30);
}
