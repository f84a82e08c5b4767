//! System runtime: setup, wiring, tick loop, pause, stop, supervision, request/response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sssn::channel::{
    BroadcastChannel, DiscoveryChannel, MailboxChannel, PassthroughChannel, WorkQueueChannel,
};
use sssn::descriptor::ServiceMethod;
use sssn::network::{Network, NetworkEvent};
use sssn::request::{Requester, reply};
use sssn::store::Entry;
use sssn::system::{ErrorAction, RestartPolicy, System, SystemContext, SystemSpec, SystemState};
use sssn::{ChannelClient, ChannelMessage, ErrorKind, Result};

#[derive(Default, Clone)]
struct Counters {
    setups: Arc<AtomicU32>,
    steps: Arc<AtomicU32>,
    stops: Arc<AtomicU32>,
}

struct Probe {
    c: Counters,
    seen_channels: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl System for Probe {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        self.c.setups.fetch_add(1, Ordering::SeqCst);
        *self.seen_channels.lock().unwrap() = ctx.channel_ids();
        Ok(())
    }
    async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
        self.c.steps.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn on_stop(&mut self, _: &mut SystemContext) {
        self.c.stops.fetch_add(1, Ordering::SeqCst);
    }
}

fn probe() -> (Probe, Counters, Arc<std::sync::Mutex<Vec<String>>>) {
    let c = Counters::default();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    (
        Probe {
            c: c.clone(),
            seen_channels: seen.clone(),
        },
        c,
        seen,
    )
}

#[tokio::test(start_paused = true)]
async fn setup_runs_once_and_wiring_is_exactly_what_was_declared() {
    let mut net = Network::new("root");
    net.add_channel(BroadcastChannel::new("allowed").build())
        .unwrap();
    net.add_channel(BroadcastChannel::new("denied").build())
        .unwrap();
    let (p, c, seen) = probe();
    net.add_system(SystemSpec::new("child").channels(["allowed"]), p)
        .unwrap();

    let mut sub = net.subnetwork("sub", &["allowed"]).unwrap();
    sub.add_channel(WorkQueueChannel::new("sub-owned").build())
        .unwrap();
    let (p2, c2, seen2) = probe();
    sub.add_system(
        SystemSpec::new("grandchild").channels(["allowed", "sub-owned"]),
        p2,
    )
    .unwrap();
    let err = sub
        .add_system(SystemSpec::new("bad").channels(["denied"]), probe().0)
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotConnected,
        "a sub-network only sees what it was wired"
    );
    net.add_network(sub).unwrap();

    let err = net
        .add_system(SystemSpec::new("x").reads(["missing"]), probe().0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert!(err.message().contains("missing"), "{err}");

    let running = net.start().await.unwrap();
    assert!(
        running.channel("sub-owned").unwrap().is_accepting_writes(),
        "sub-network channels start too"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    running.stop().await.unwrap();
    assert_eq!(c.setups.load(Ordering::SeqCst), 1);
    assert_eq!(
        c2.setups.load(Ordering::SeqCst),
        1,
        "nested systems are set up and run"
    );
    assert!(c2.steps.load(Ordering::SeqCst) >= 3);
    assert_eq!(c.stops.load(Ordering::SeqCst), 1);
    assert_eq!(*seen.lock().unwrap(), vec!["allowed".to_owned()]);
    assert_eq!(
        *seen2.lock().unwrap(),
        vec!["allowed".to_owned(), "sub-owned".to_owned()]
    );
}

#[tokio::test(start_paused = true)]
async fn ticks_at_the_rate_and_overruns_delay_without_bursts() {
    struct Slow(Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>);
    #[async_trait]
    impl System for Slow {
        async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
            self.0.lock().unwrap().push(tokio::time::Instant::now());
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok(())
        }
    }
    let (p, c, _) = probe();
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut net = Network::new("n");
    net.add_system(SystemSpec::new("fast").tick_rate(10.0), p)
        .unwrap();
    net.add_system(SystemSpec::new("slow").tick_rate(10.0), Slow(times.clone()))
        .unwrap();
    net.run_for(Duration::from_millis(995)).await.unwrap();
    assert_eq!(
        c.steps.load(Ordering::SeqCst),
        10,
        "10 ticks in the first second at 10/s"
    );
    let t = times.lock().unwrap();
    for w in t.windows(2) {
        assert_eq!(
            w[1] - w[0],
            Duration::from_millis(150),
            "an overrunning step delays the next tick"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn pause_stops_steps_and_resume_continues() {
    let (p, c, _) = probe();
    let mut net = Network::new("n");
    let h = net
        .add_system(SystemSpec::new("s").tick_rate(100.0), p)
        .unwrap();
    assert_eq!(h.state(), SystemState::Init);
    let running = net.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(105)).await;
    assert_eq!(h.state(), SystemState::Running);
    h.pause();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.state(), SystemState::Paused);
    let at_pause = c.steps.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        c.steps.load(Ordering::SeqCst),
        at_pause,
        "no steps while paused"
    );
    h.resume();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.state(), SystemState::Running);
    assert!(c.steps.load(Ordering::SeqCst) > at_pause + 5);
    running.stop().await.unwrap();
    assert_eq!(h.state(), SystemState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn stop_is_prompt_and_a_system_can_stop_itself() {
    struct OneStep;
    #[async_trait]
    impl System for OneStep {
        async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
            ctx.stop();
            Ok(())
        }
    }
    let (p, _, _) = probe();
    let mut net = Network::new("n");
    let slow = net
        .add_system(SystemSpec::new("slow").tick_rate(0.001), p)
        .unwrap();
    let once = net
        .add_system(SystemSpec::new("once").tick_rate(1000.0), OneStep)
        .unwrap();
    let running = net.start().await.unwrap();
    assert_eq!(once.finished().await, SystemState::Stopped);
    assert_eq!(once.steps(), 1);
    let before = tokio::time::Instant::now();
    slow.stop();
    assert_eq!(slow.finished().await, SystemState::Stopped);
    assert!(
        tokio::time::Instant::now() - before < Duration::from_millis(10),
        "no waiting out the tick period"
    );
    running.stop().await.unwrap();
}

struct Panicky {
    calls: Arc<AtomicU32>,
    restarts_seen: Arc<AtomicU32>,
}

#[async_trait]
impl System for Panicky {
    async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        panic!("boom");
    }
    async fn on_restart(&mut self, _: &mut SystemContext, error: &sssn::Error) {
        assert!(error.message().contains("boom"));
        self.restarts_seen.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_system_is_restarted_then_gives_up() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(AtomicU32::new(0));
    let mut net = Network::new("n");
    let mut events = net.events();
    let policy = RestartPolicy::OnFailure {
        max_restarts: 3,
        window: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };
    let h = net
        .add_system(
            SystemSpec::new("p").tick_rate(10.0).restart(policy),
            Panicky {
                calls: calls.clone(),
                restarts_seen: seen.clone(),
            },
        )
        .unwrap();
    let (ok, ok_counters, _) = probe();
    let healthy = net
        .add_system(SystemSpec::new("healthy").tick_rate(10.0), ok)
        .unwrap();
    let running = net.start().await.unwrap();
    assert_eq!(h.finished().await, SystemState::Error);
    assert_eq!(calls.load(Ordering::SeqCst), 4, "first run + 3 restarts");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(h.restarts(), 3);
    assert_eq!(
        healthy.state(),
        SystemState::Running,
        "a failing sibling does not take others down"
    );
    assert!(ok_counters.steps.load(Ordering::SeqCst) > 0);
    running.stop().await.unwrap();
    let mut got = Vec::new();
    while let Ok(e) = events.try_recv() {
        got.push(e);
    }
    assert_eq!(
        got.iter()
            .filter(|e| matches!(e, NetworkEvent::SystemFailed { .. }))
            .count(),
        4
    );
    assert_eq!(
        got.iter()
            .filter(|e| matches!(e, NetworkEvent::SystemRestarted { .. }))
            .count(),
        3
    );
    assert!(
        got.iter()
            .any(|e| matches!(e, NetworkEvent::SystemGaveUp { system, .. } if system == "p"))
    );
}

#[tokio::test(start_paused = true)]
async fn never_policy_and_consecutive_errors_fail_the_system() {
    struct Failing;
    #[async_trait]
    impl System for Failing {
        async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
            Err(sssn::Error::new(ErrorKind::Internal, "nope"))
        }
    }
    struct StopOnError;
    #[async_trait]
    impl System for StopOnError {
        async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
            Err(sssn::Error::new(ErrorKind::Internal, "nope"))
        }
        async fn on_step_error(&mut self, _: &mut SystemContext, _: sssn::Error) -> ErrorAction {
            ErrorAction::Stop
        }
    }
    let mut net = Network::new("n");
    let f = net
        .add_system(
            SystemSpec::new("f")
                .tick_rate(10.0)
                .max_consecutive_errors(3),
            Failing,
        )
        .unwrap();
    let s = net
        .add_system(SystemSpec::new("s").tick_rate(10.0), StopOnError)
        .unwrap();
    let running = net.start().await.unwrap();
    assert_eq!(f.finished().await, SystemState::Error);
    assert_eq!(f.steps(), 3);
    assert_eq!(s.finished().await, SystemState::Stopped);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn every_tick_yields_even_when_a_step_never_suspends() {
    struct Busy;
    #[async_trait]
    impl System for Busy {
        async fn step(&mut self, _: &mut SystemContext) -> Result<()> {
            std::hint::black_box((0..1000u64).sum::<u64>());
            Ok(())
        }
    }
    let (p, c, _) = probe();
    let mut net = Network::new("n");
    net.add_system(SystemSpec::new("busy").tick_rate(1e9), Busy)
        .unwrap();
    net.add_system(SystemSpec::new("other").tick_rate(100.0), p)
        .unwrap();
    net.run_for(Duration::from_millis(200)).await.unwrap();
    assert!(
        c.steps.load(Ordering::SeqCst) > 0,
        "the other system was not starved"
    );
}

struct Collector {
    got: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
}

#[async_trait]
impl System for Collector {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("feed").await
    }
    async fn on_message(
        &mut self,
        _: &mut SystemContext,
        channel: &str,
        entry: Entry,
    ) -> Result<()> {
        self.got
            .lock()
            .unwrap()
            .push((channel.to_owned(), entry.message.data::<i64>()?));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn subscriptions_deliver_to_on_message_in_order() {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut net = Network::new("n");
    let feed = net
        .add_channel(BroadcastChannel::new("feed").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("c").tick_rate(0.0).reads(["feed"]),
        Collector { got: got.clone() },
    )
    .unwrap();
    let running = net.start().await.unwrap();
    for i in 0..50 {
        feed.write("w", &i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.stop().await.unwrap();
    let got = got.lock().unwrap();
    assert_eq!(
        got.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|(c, _)| c == "feed"));
}

struct Adder;

#[async_trait]
impl System for Adder {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("requests").await
    }
    async fn on_message(&mut self, ctx: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        let req: serde_json::Value = entry.message.data()?;
        let sum = req["a"].as_i64().unwrap_or(0) + req["b"].as_i64().unwrap_or(0);
        reply(ctx.client(), &entry.message, &json!({"sum": sum})).await?;
        Ok(())
    }
    fn services(&self) -> Vec<ServiceMethod> {
        vec![
            ServiceMethod::new("add", "adds a and b")
                .param("a", "int")
                .param("b", "int"),
        ]
    }
}

#[tokio::test(start_paused = true)]
async fn hundred_concurrent_requests_from_one_sender_all_get_their_answer() {
    let mut net = Network::new("n");
    let requests = net
        .add_channel(PassthroughChannel::new("requests").build())
        .unwrap();
    let responses = net
        .add_channel(MailboxChannel::new("responses").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("adder")
            .tick_rate(0.0)
            .reads(["requests"])
            .writes(["responses"]),
        Adder,
    )
    .unwrap();
    let running = net.start().await.unwrap();
    let client = ChannelClient::new("client-a");
    client.connect("requests", requests);
    client.connect("responses", responses);
    let requester = Arc::new(
        Requester::new(&client, "requests", "responses")
            .await
            .unwrap(),
    );
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..100i64 {
        let (r, ok) = (requester.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let reply = r
                .request(&json!({"a": i, "b": 1000}), Duration::from_secs(5))
                .await
                .unwrap();
            let v: serde_json::Value = reply.data().unwrap();
            assert_eq!(v["sum"], i + 1000, "each request gets its own answer");
            ok.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::SeqCst), 100);
    let err = Requester::new(&client, "requests", "nowhere")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn request_times_out_cleanly() {
    let requests = PassthroughChannel::new("rq").build();
    let responses = BroadcastChannel::new("rs").build();
    requests.start().await.unwrap();
    responses.start().await.unwrap();
    let client = ChannelClient::new("c");
    client.connect("rq", requests);
    client.connect("rs", responses);
    let got = sssn::request::request_via_channel(&client, "rq", "rs", &1, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(got.is_none());
}

struct Announcer;

#[async_trait]
impl System for Announcer {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.announce("registry", None).await
    }
    fn services(&self) -> Vec<ServiceMethod> {
        vec![ServiceMethod::new("process_image", "d")]
    }
}

#[tokio::test(start_paused = true)]
async fn announce_registers_the_descriptor_and_public_channels_are_listed() {
    let mut net = Network::new("n").register_public_channels("registry", Duration::from_secs(2));
    let registry = net
        .add_channel(DiscoveryChannel::new("registry").public().build())
        .unwrap();
    net.add_channel(BroadcastChannel::new("public-feed").public().build())
        .unwrap();
    net.add_channel(BroadcastChannel::new("private").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("svc")
            .name("Service")
            .reads(["public-feed"])
            .writes(["registry"]),
        Announcer,
    )
    .unwrap();
    let running = net.start().await.unwrap();
    let d = registry;
    let found = d.find_systems("q", Some("process_image")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].system_name, "Service");
    assert_eq!(found[0].channels_read, vec!["public-feed".to_owned()]);
    assert_eq!(found[0].channels_write, vec!["registry".to_owned()]);
    let mut public: Vec<String> = d
        .find_channels("q", Some(sssn::Visibility::Public))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    public.sort();
    assert_eq!(
        public,
        vec!["public-feed".to_owned(), "registry".to_owned()]
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        d.find_channels("q", Some(sssn::Visibility::Public))
            .await
            .unwrap()
            .len(),
        2,
        "refreshed, not expired"
    );
    running.stop().await.unwrap();
}

struct Claimer {
    claimed_at: Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
}

#[async_trait]
impl System for Claimer {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.wake_on("jobs").await
    }
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let jobs = ctx.work_queue("jobs")?;
        for job in jobs.claim(10).await? {
            self.claimed_at
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
            jobs.ack(&job).await?.into_result()?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn wake_on_steps_as_soon_as_work_arrives() {
    let claimed_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut net = Network::new("n");
    let jobs = net
        .add_channel(WorkQueueChannel::new("jobs").build())
        .unwrap();
    net.add_system(
        SystemSpec::new("w").tick_rate(0.1).reads(["jobs"]),
        Claimer {
            claimed_at: claimed_at.clone(),
        },
    )
    .unwrap();
    let running = net.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written_at = tokio::time::Instant::now();
    jobs.write("producer", &1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = claimed_at.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "claimed without waiting for the 10 s tick");
    assert_eq!(
        got[0], written_at,
        "no time passed between the write and the claim"
    );
    running.stop().await.unwrap();
}

/// A mailbox view claims for the identity it is bound to: two systems each take their own
/// messages and each take the one addressed to everyone.
#[tokio::test]
async fn mailbox_views_claim_for_their_own_identity() {
    let inbox = MailboxChannel::new("inbox").build();
    inbox.start().await.unwrap();
    let to = |who: &str, n: i64| ChannelMessage::with_data("w", &n).unwrap().recipient(who);
    inbox.write_message("w", to("alice", 1)).await.unwrap();
    inbox.write_message("w", to("bob", 2)).await.unwrap();
    let all = inbox.write("w", &3).await.unwrap();
    let (alice, bob) = (ChannelClient::new("alice"), ChannelClient::new("bob"));
    alice.connect("inbox", inbox.clone());
    bob.connect("inbox", inbox.clone());
    let (alice, bob) = (
        alice.mailbox("inbox").unwrap(),
        bob.mailbox("inbox").unwrap(),
    );

    let mine = alice.claim(10).await.unwrap();
    let data: Vec<i64> = mine.iter().map(|c| c.message.data().unwrap()).collect();
    assert_eq!(data, [1, 3]);
    assert_eq!(
        bob.ack(&all).await.unwrap().stale,
        vec![all.clone()],
        "bob holds nothing yet"
    );
    let theirs = bob.claim(10).await.unwrap();
    let data: Vec<i64> = theirs.iter().map(|c| c.message.data().unwrap()).collect();
    assert_eq!(data, [2, 3]);
    assert!(alice.ack(&mine).await.unwrap().all_done());
    assert!(bob.nack(&theirs).await.unwrap().all_done());
    assert_eq!(
        bob.claim(10).await.unwrap().len(),
        2,
        "bob's are back for bob"
    );
    assert!(alice.claim(10).await.unwrap().is_empty());
}
