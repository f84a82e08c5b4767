//! Every example runs and prints what its docs show: the tests check the printed lines.
//! The examples' own code is compiled in here so the tests drive exactly what
//! `cargo run --example …` runs.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use clap::CommandFactory;
use sssn_examples::Out;

#[path = "../examples/data_pipeline.rs"]
mod data_pipeline;
#[path = "../examples/discovery.rs"]
mod discovery;
#[path = "../examples/quick_start.rs"]
mod quick_start;
#[path = "../examples/request_response.rs"]
mod request_response;
#[path = "../examples/tutorial_01_first_channel.rs"]
mod tutorial_01_first_channel;
#[path = "../examples/tutorial_02_broadcast.rs"]
mod tutorial_02_broadcast;
#[path = "../examples/tutorial_03_work_queue.rs"]
mod tutorial_03_work_queue;
#[path = "../examples/tutorial_04_multi_system.rs"]
mod tutorial_04_multi_system;
#[path = "../examples/tutorial_05_securing_channels.rs"]
mod tutorial_05_securing_channels;

#[test]
fn every_example_answers_help_and_takes_a_store() {
    let commands = [
        ("data_pipeline", data_pipeline::Args::command()),
        ("discovery", discovery::Args::command()),
        ("quick_start", quick_start::Args::command()),
        ("request_response", request_response::Args::command()),
        ("tutorial_01", tutorial_01_first_channel::Args::command()),
        ("tutorial_02", tutorial_02_broadcast::Args::command()),
        ("tutorial_03", tutorial_03_work_queue::Args::command()),
        ("tutorial_04", tutorial_04_multi_system::Args::command()),
        (
            "tutorial_05",
            tutorial_05_securing_channels::Args::command(),
        ),
    ];
    for (name, mut command) in commands {
        command.clone().debug_assert();
        let help = command.render_long_help().to_string();
        assert!(command.get_about().is_some(), "{name} says what it does");
        assert!(help.contains("-h, --help"), "{name}: {help}");
        assert!(
            help.contains("--store <STORE>")
                && help.contains("memory, sqlite:PATH or nats://HOST:PORT"),
            "{name} takes --store: {help}"
        );
        let err = command
            .clone()
            .try_get_matches_from([name, "--store"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{name}");
    }
    let help = tutorial_04_multi_system::Args::command()
        .render_long_help()
        .to_string();
    assert!(help.contains("--publish <HOST:PORT>"), "{help}");
}

// ---- the v1 tutorials -----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn tutorial_01_prints_the_reads_of_each_cursor() {
    let out = Out::capture();
    let args = tutorial_01_first_channel::Args {
        store: "memory".into(),
    };
    tutorial_01_first_channel::run(args, &out).await.unwrap();
    let lines = out.lines();
    let id = lines[0].strip_prefix("Wrote message: ").unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(
        lines[1..],
        [
            "Read 1 message(s)",
            "  tutorial-user: {'note': 'Hello, SSSN!'}",
            "Second read: 0 message(s)",
            "Third read: 1 message(s)",
            "5 5",
            "Alice sees 3 messages",
            "Bob sees   3   messages",
            "Carol sees 3 messages",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn tutorial_02_prints_every_delivery_in_v1_order() {
    let out = Out::capture();
    let args = tutorial_02_broadcast::Args {
        store: "memory".into(),
    };
    tutorial_02_broadcast::run(args, &out).await.unwrap();
    let lines = out.lines();
    assert_eq!(
        lines[..12],
        [
            "[A] received: {'type': 'user.login', 'user': 'alice'}",
            "[B] received: {'type': 'user.login', 'user': 'alice'}",
            "[A] received: {'type': 'user.logout', 'user': 'bob'}",
            "[B] received: {'type': 'user.logout', 'user': 'bob'}",
            "A received: ['user.login', 'user.logout']",
            "B received: ['user.login', 'user.logout']",
            "Carol sees 2 events in history",
            "[A] received: {'type': 'user.purchase'}",
            "[B] received: {'type': 'user.purchase'}",
            "[Carol] live: {'type': 'user.purchase'}",
            "[B] received: {'type': 'system.reboot'}",
            "[Carol] live: {'type': 'system.reboot'}",
        ]
    );
    assert_eq!(
        lines[12],
        "BroadcastChannel channel 'events' does not support claims (exclusive reads). Use subscribe() for push delivery or a shared read for cursor-based polling."
    );
    assert_eq!(lines[13..], ["Total deliveries: 12"]);
}

#[tokio::test(start_paused = true)]
async fn tutorial_03_each_job_is_processed_once_and_a_lapsed_claim_is_reclaimed() {
    let out = Out::capture();
    let args = tutorial_03_work_queue::Args {
        store: "memory".into(),
    };
    tutorial_03_work_queue::run(args, &out).await.unwrap();
    let lines = out.lines();
    assert_eq!(lines[0], "Queued 4 jobs");
    let steps = &lines[1..13];
    for (file, size) in [
        ("photo-1.jpg", 1024),
        ("photo-2.jpg", 800),
        ("photo-3.jpg", 2048),
        ("photo-4.jpg", 512),
    ] {
        let at = |text: &str| {
            let found: Vec<usize> = steps
                .iter()
                .enumerate()
                .filter(|(_, l)| l.as_str() == text)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(found.len(), 1, "{text:?} once in {steps:#?}");
            found[0]
        };
        let worker = steps
            .iter()
            .find_map(|l| {
                l.strip_suffix(&format!("] processing {file}"))
                    .and_then(|w| w.strip_prefix('['))
            })
            .unwrap_or_else(|| panic!("{file} processed: {steps:#?}"));
        assert!(["worker-1", "worker-2"].contains(&worker));
        let processing = at(&format!("[{worker}] processing {file}"));
        let resized = at(&format!("  resized {file} to {size}px"));
        let done = at(&format!("[{worker}] done: {file}"));
        assert!(processing < resized && resized < done, "{steps:#?}");
    }
    assert_eq!(
        lines[13..],
        [
            "[rescue-worker] claimed 0 while stuck-worker holds its claim",
            "[rescue-worker] reclaimed photo-5.jpg after the claim lapsed (attempt 2)",
            "Processed 10 tasks",
        ]
    );
}

fn tutorial_04_args(threshold: f64, publish: Option<&str>) -> tutorial_04_multi_system::Args {
    tutorial_04_multi_system::Args {
        duration: Some(3.0),
        threshold,
        publish: publish.map(str::to_owned),
        store: "memory".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn tutorial_04_monitor_alerts_above_the_threshold_only() {
    let out = Out::capture();
    let report = tutorial_04_multi_system::run(tutorial_04_args(30.0, None), &out)
        .await
        .unwrap();
    assert_eq!(
        out.lines(),
        Vec::<String>::new(),
        "22.4 °C never alerts at 30 °C"
    );
    // 5 ticks per second for 3 s: steps at 0, 0.2, … 2.8 s, and the one due as the run
    // ends at 3 s.
    assert!((15..=16).contains(&report.ingested), "{report:?}");
    assert!(report.refined >= 14 && report.monitored >= 13, "{report:?}");

    let out = Out::capture();
    let report = tutorial_04_multi_system::run(tutorial_04_args(20.0, None), &out)
        .await
        .unwrap();
    let lines = out.lines();
    assert_eq!(lines.len(), report.monitored, "{report:?}");
    assert!(report.monitored >= 13);
    assert!(
        lines
            .iter()
            .all(|l| l == "[ALERT] High temperature: 22.4°C"),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_04_publish_serves_refined_records_to_a_v1_client() {
    let out = Out::capture();
    let run = tokio::spawn({
        let out = out.clone();
        async move {
            tutorial_04_multi_system::run(tutorial_04_args(30.0, Some("127.0.0.1:0")), &out).await
        }
    });
    let url = loop {
        if let Some(line) = out.lines().first() {
            break line
                .strip_prefix("Serving refined-records on ")
                .unwrap_or_else(|| panic!("{line}"))
                .to_owned();
        }
        assert!(!run.is_finished(), "the run ended before serving");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/channels/refined-records"));
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A client written for sssn 0.0.1: plain requests, v1's paths, query and header.
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(path)
            .header("Authorization", "Bearer v1-client")
            .send()
    };
    let resp = get(format!("{url}?limit=10&exclusive=false"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert!(!messages.is_empty(), "{body}");
    for m in messages {
        assert_eq!(m["sender_id"], "refiner");
        let data = &m["content"]["data"];
        assert_eq!(data["sensor"], "temp-01");
        assert_eq!(data["value"], 22.4);
        assert_eq!(data["unit"], "celsius");
        assert_eq!(data["system_id"], "refiner");
        assert!(m["id"].is_string() && m["timestamp"].is_f64(), "{m}");
    }
    // The cursor is the client's: a second read starts after the first.
    let again: serde_json::Value = get(format!("{url}?limit=10"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_ids: HashSet<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    for m in again["messages"].as_array().unwrap() {
        assert!(
            !first_ids.contains(m["id"].as_str().unwrap()),
            "read twice: {m}"
        );
    }
    let info: serde_json::Value = get(format!("{url}/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id"], "refined-records");
    assert_eq!(info["name"], "Refined Records");
    assert_eq!(info["visibility"], "public");
    // The private queue is not served.
    let raw = get(url.replace("refined-records", "raw-records"))
        .await
        .unwrap();
    assert_eq!(raw.status(), 404);

    let report = run.await.unwrap().unwrap();
    assert!(report.refined >= messages.len(), "{report:?}");
    assert_eq!(
        out.lines().len(),
        1,
        "no alerts at 30 °C: {:?}",
        out.lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_05_prints_each_refusal_and_each_remote_call() {
    let out = Out::capture();
    let args = tutorial_05_securing_channels::Args {
        listen: "127.0.0.1:0".into(),
        store: "memory".into(),
    };
    tutorial_05_securing_channels::run(args, &out)
        .await
        .unwrap();
    assert_eq!(
        out.lines(),
        [
            "worker-1 claimed 1 and acknowledged 1",
            "'rogue-process' is not authorised to claim from channel 'jobs'.",
            "worker-3 (granted at run time) claimed 1",
            "'worker-1' is not authorised to claim from channel 'jobs'.",
            "any-local-system wrote in process without a token",
            "HTTP claim with worker-1's token: 200, 1 message(s)",
            "HTTP acknowledge: 200, acknowledged 1",
            "HTTP write with a read token: 403 Token does not permit 'write' on channel 'jobs'.",
            "HTTP info with a tampered token: 401",
            "HTTP info with the admin token: 200, visibility public",
            "worker-3 claimed 1 remotely as 'archive'",
        ]
    );
}

// ---- the v1 examples ------------------------------------------------------------------

fn pipeline_args(duration: f64, period: f64, store: &str) -> data_pipeline::Args {
    data_pipeline::Args {
        duration,
        period,
        store: store.to_owned(),
        console: None,
    }
}

/// Checks the pipeline's printed lines; returns the dashboard lines.
fn check_pipeline_lines(lines: &[String], duration: &str, records: usize) {
    assert_eq!(
        lines[0],
        format!("Pipeline starting — runs for {duration} seconds...")
    );
    let ingests = lines
        .iter()
        .filter(|l| *l == "[Ingestor] queued 5 records")
        .count();
    assert_eq!(ingests * 5, records, "{lines:#?}");
    let dashboard: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("[Dashboard] "))
        .collect();
    assert_eq!(dashboard.len(), records);
    for line in &dashboard {
        // [Dashboard] ✅ OK  | s1 | 22.1°C | worker=worker-2
        let fields: Vec<&str> = line["[Dashboard] ".len()..].split(" | ").collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[1], "s1");
        // The simulated 22.1 + 3 × 0.3 is a hair off 23.0, so either status is right there.
        let expected: &[&str] = match fields[2] {
            "22.1°C" | "22.4°C" | "22.7°C" => &["✅ OK "],
            "23.3°C" => &["🔴 HIGH"],
            "23.0°C" => &["✅ OK ", "🔴 HIGH"],
            other => panic!("unexpected temperature {other}"),
        };
        assert!(expected.contains(&fields[0]), "{line}");
        let worker = fields[3].strip_prefix("worker=").unwrap();
        assert!(
            ["worker-1", "worker-2", "worker-3"].contains(&worker),
            "{line}"
        );
    }
    assert_eq!(
        lines[lines.len() - 2..],
        [
            String::new(),
            format!("Dashboard received {records} processed records.")
        ]
    );
    assert_eq!(
        lines.len(),
        1 + ingests + records + 2,
        "nothing else: {lines:#?}"
    );
}

fn assert_each_once(ids: &[String], expected: usize) {
    assert_eq!(ids.len(), expected, "records received");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), expected, "each record processed exactly once");
}

#[tokio::test(start_paused = true)]
async fn pipeline_defaults_print_30_records_each_once() {
    let out = Out::capture();
    let report = data_pipeline::run(pipeline_args(30.0, 5.0, "memory"), &out)
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 30);
    check_pipeline_lines(&out.lines(), "30", 30);
}

#[tokio::test(start_paused = true)]
async fn pipeline_short_run_processes_30_records() {
    let out = Out::capture();
    let report = data_pipeline::run(pipeline_args(12.0, 2.0, "memory"), &out)
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 30);
    check_pipeline_lines(&out.lines(), "12", 30);
}

#[tokio::test(start_paused = true)]
async fn pipeline_dashboard_records_carry_the_trace_of_their_raw_record() {
    let journal = sssn::trace::journal::enable(10_000);
    let report = data_pipeline::run(pipeline_args(4.0, 2.0, "memory"), &Out::capture())
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

#[tokio::test(start_paused = true)]
async fn request_response_prints_42_and_every_concurrent_answer() {
    let out = Out::capture();
    let args = request_response::Args {
        store: "memory".into(),
    };
    let (answer, concurrent) = request_response::run(args, &out).await.unwrap();
    assert_eq!((answer, concurrent), (42, 10));
    let mut expected = vec!["7 + 35 = 42".to_owned()];
    expected.extend((0..10).map(|i| format!("{i} + {} = {}", i * 2, i * 3)));
    expected.push("10/10 concurrent requests answered".into());
    assert_eq!(out.lines(), expected);
}

#[tokio::test(start_paused = true)]
async fn discovery_consumer_finds_the_feed_and_the_service_and_reads() {
    let out = Out::capture();
    let args = discovery::Args {
        duration: 5.0,
        store: "memory".into(),
    };
    let readings = discovery::run(args, &out).await.unwrap();
    let lines = out.lines();
    assert_eq!(
        lines[..4],
        [
            "[temp-svc] registered with discovery",
            "[Consumer] connected to 'Temperature Feed' (temperature-feed)",
            "Found: Temperature Service (temp-svc)",
            "  services: ['temperature']",
        ]
    );
    assert!(readings >= 9, "2 per second for 5 s: {readings}");
    assert_eq!(lines.len(), 4 + readings);
    assert!(
        lines[4..].iter().all(|l| l == "[Consumer] temp=22.4°C"),
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn quick_start_monitor_prints_each_reading() {
    let out = Out::capture();
    let args = quick_start::Args {
        duration: 2.6,
        store: "memory".into(),
    };
    let seen = quick_start::run(args, &out).await.unwrap();
    assert_eq!(seen, 6, "readings at 0, 0.5, … 2.5 s");
    assert_eq!(out.lines(), vec![r#"[Monitor] {"data":{"temp":22.4}}"#; 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_on_sqlite_processes_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("pipeline.db").display());
    let out = Out::capture();
    let report = data_pipeline::run(pipeline_args(3.0, 0.5, &url), &out)
        .await
        .unwrap();
    assert_each_once(&report.record_ids, 30);
    check_pipeline_lines(&out.lines(), "3", 30);
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
    let out = Out::capture();
    let report = data_pipeline::run(pipeline_args(3.0, 0.5, &url), &out).await;
    let cleanup = sssn_nats::JetStreamStore::connect_with(
        SERVER,
        sssn_nats::JetStreamOptions::default().prefix(prefix),
    )
    .await
    .unwrap();
    cleanup.delete_all().await.unwrap();
    assert_each_once(&report.unwrap().record_ids, 30);
    check_pipeline_lines(&out.lines(), "3", 30);
}
