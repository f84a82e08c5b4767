//! A system on its own (`system::spawn`, `spawn_with_client`): v1's `run(tick_rate)`,
//! `stop()`, `pause()` and `resume()`, without a network.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::network::NetworkEvent;
use sssn::store::Entry;
use sssn::system::{self, System, SystemContext, SystemSpec, SystemState};
use sssn::{ChannelClient, ErrorKind, Result};

/// Writes its step number to "ticks" every step.
#[derive(Default)]
struct Ticker {
    steps: u64,
    setups: u32,
    stopped: bool,
}

#[async_trait]
impl System for Ticker {
    async fn setup(&mut self, _: &mut SystemContext) -> Result<()> {
        self.setups += 1;
        Ok(())
    }
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        self.steps += 1;
        ctx.broadcast("ticks")?
            .write(&json!({"step": self.steps}))
            .await
            .map(drop)
    }
    async fn on_stop(&mut self, _: &mut SystemContext) {
        self.stopped = true;
    }
}

async fn started_ticks() -> sssn::channel::BroadcastChannel {
    let ticks = BroadcastChannel::new("ticks").build();
    ticks.start().await.unwrap();
    ticks
}

async fn stored(ticks: &sssn::channel::BroadcastChannel) -> usize {
    ticks.stats().await.unwrap().stored as usize
}

#[tokio::test(start_paused = true)]
async fn it_ticks_at_its_rate_pauses_resumes_and_hands_itself_back() {
    let ticks = started_ticks().await;
    let running = system::spawn(
        SystemSpec::new("ticker").tick_rate(10.0).writes(["ticks"]),
        Ticker::default(),
        [ticks.clone()],
    )
    .await
    .unwrap();
    let handle = running.handle().clone();
    assert_eq!(handle.id(), "ticker");

    // 10 Hz: steps at 0, 100, …, 1000 ms.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(handle.state(), SystemState::Running);
    assert_eq!(handle.steps(), 11);
    assert_eq!(stored(&ticks).await, 11);

    handle.pause();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(handle.state(), SystemState::Paused);
    let at_pause = handle.steps();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(handle.steps(), at_pause, "no steps while paused");
    assert_eq!(
        stored(&ticks).await as u64,
        at_pause,
        "no writes while paused"
    );

    handle.resume();
    tokio::time::sleep(Duration::from_millis(505)).await;
    assert_eq!(handle.state(), SystemState::Running);
    assert_eq!(handle.steps(), at_pause + 6, "resumed at once, at 10 Hz");

    let ticker: Ticker = running.stop().await.unwrap();
    assert_eq!(handle.state(), SystemState::Stopped);
    assert_eq!(ticker.setups, 1);
    assert!(ticker.stopped, "on_stop ran");
    assert_eq!(
        ticker.steps,
        handle.steps(),
        "the system handed back is the one that ran"
    );
    // Stopping the system leaves its channels to their owner.
    assert!(ticks.is_accepting_writes());
}

#[tokio::test(start_paused = true)]
async fn setup_failure_is_returned_and_nothing_runs() {
    struct BadSetup(std::sync::Arc<std::sync::atomic::AtomicU32>);
    #[async_trait]
    impl System for BadSetup {
        async fn setup(&mut self, _: &mut SystemContext) -> Result<()> {
            Err(sssn::Error::new(ErrorKind::InvalidArgument, "no config"))
        }
        async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }
    let steps = std::sync::Arc::default();
    let ticks = started_ticks().await;
    let err = system::spawn(
        SystemSpec::new("bad").tick_rate(100.0),
        BadSetup(std::sync::Arc::clone(&steps)),
        [ticks],
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(err.message(), "setup of system 'bad' failed: no config");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(steps.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_channel_not_started_or_not_given_is_refused_before_anything_runs() {
    let idle = BroadcastChannel::new("ticks").build();
    let err = system::spawn(SystemSpec::new("t"), Ticker::default(), [idle])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShuttingDown);
    assert_eq!(
        err.message(),
        "cannot run system 't' on channel 'ticks': the channel is not started (call start() first)"
    );

    let ticks = started_ticks().await;
    let err = system::spawn(
        SystemSpec::new("t")
            .reads(["jobs"])
            .writes(["ticks", "done"]),
        Ticker::default(),
        [ticks],
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert_eq!(
        err.message(),
        "system 't' names channel(s) 'jobs', 'done' that it was not given"
    );
}

#[tokio::test(start_paused = true)]
async fn spawn_with_client_runs_as_the_clients_identity_only() {
    let ticks = started_ticks().await;
    let client = ChannelClient::new("someone-else");
    client.connect("ticks", ticks.clone());
    let err = system::spawn_with_client(SystemSpec::new("ticker"), Ticker::default(), client)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let client = ChannelClient::new("ticker");
    client.connect("ticks", ticks.clone());
    let running = system::spawn_with_client(
        SystemSpec::new("ticker").tick_rate(10.0),
        Ticker::default(),
        client,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let ticker = running.stop().await.unwrap();
    assert_eq!(ticker.steps, 3);
    let written = ticks.read("observer", 10).await.unwrap();
    assert_eq!(written.len(), 3);
    assert!(
        written.iter().all(|m| m.sender_id == "ticker"),
        "it writes as itself"
    );
}

/// Subscribes to "jobs" and panics on the message `{"boom": true}`.
#[derive(Default)]
struct Listener {
    seen: Vec<String>,
}

#[async_trait]
impl System for Listener {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("events").await
    }
    async fn on_message(&mut self, _: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        let text = entry.message.content.json().to_owned();
        assert!(!text.contains("boom"), "told to fail");
        self.seen.push(text);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn deliveries_reach_on_message_and_a_failure_is_reported_and_final() {
    let events = BroadcastChannel::new("events").build();
    events.start().await.unwrap();
    let running = system::spawn(
        SystemSpec::new("listener").tick_rate(0.0).reads(["events"]),
        Listener::default(),
        [events.clone()],
    )
    .await
    .unwrap();
    let mut heard = running.events();
    events.write("w", &json!({"n": 1})).await.unwrap();
    events.write("w", &json!({"n": 2})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(running.handle().state(), SystemState::Running);
    assert_eq!(running.handle().steps(), 0, "tick rate 0: no ticks");

    events.write("w", &json!({"boom": true})).await.unwrap();
    let handle = running.handle().clone();
    assert_eq!(handle.finished().await, SystemState::Error);
    match heard.recv().await.unwrap() {
        NetworkEvent::SystemFailed { system, error } => {
            assert_eq!(system, "listener");
            assert!(
                error.contains("on_message panicked: told to fail"),
                "{error}"
            );
        }
        other => panic!("expected SystemFailed, got {other:?}"),
    }
    let listener = running.join().await.unwrap();
    assert_eq!(
        listener.seen,
        vec![r#"{"data":{"n":1}}"#, r#"{"data":{"n":2}}"#]
    );
}

#[tokio::test(start_paused = true)]
async fn channels_of_different_kinds_are_passed_erased() {
    struct Mover;
    #[async_trait]
    impl System for Mover {
        async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
            for job in ctx.work_queue("jobs")?.claim(10).await? {
                ctx.broadcast("ticks")?
                    .write_content(job.message.content.clone())
                    .await?;
                let settled = ctx
                    .work_queue("jobs")?
                    .ack(&[job.message.id.as_str()])
                    .await?;
                assert!(settled.stale.is_empty());
            }
            Ok(())
        }
    }
    let jobs = WorkQueueChannel::new("jobs").build();
    jobs.start().await.unwrap();
    let ticks = started_ticks().await;
    jobs.write("producer", &json!({"job": 1})).await.unwrap();
    let running = system::spawn(
        SystemSpec::new("mover")
            .tick_rate(100.0)
            .reads(["jobs"])
            .writes(["ticks"]),
        Mover,
        [jobs.erased(), ticks.erased()],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.stop().await.unwrap();
    let moved = ticks.read("o", 10).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].content.json(), r#"{"data":{"job":1}}"#);
    assert_eq!(
        jobs.stats().await.unwrap().stored,
        0,
        "acknowledged work leaves"
    );
}
