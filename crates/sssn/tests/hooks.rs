//! Channel hooks (issue 14 point 3): async conversion on every kind, `before_store`
//! filtering and enriching, the life-cycle hooks at their moments and in their order, and
//! the isolation of writers from a panicking or slow hook.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sssn::channel::{
    Channel, ChannelBuilder, ChannelHooks, ChannelState, PassthroughChannel, PeriodicChannel,
    ProcessReport, source_fn,
};
use sssn::{ChannelKind, ChannelMessage, Error, ErrorKind, Payload, Result};
use tokio::time::Instant;

/// Records each hook call as `"<ms since creation> <event>"`.
struct Recorder {
    origin: Instant,
    events: Mutex<Vec<String>>,
    errors: Mutex<Vec<(String, ErrorKind)>>,
    /// `on_start` fails while this is set.
    refuse_start: AtomicBool,
    /// `on_maintain` panics while this is set.
    panic_in_maintain: AtomicBool,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            events: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            refuse_start: AtomicBool::new(false),
            panic_in_maintain: AtomicBool::new(false),
        })
    }

    fn note(&self, event: impl std::fmt::Display) {
        let ms = self.origin.elapsed().as_millis();
        self.events.lock().unwrap().push(format!("{ms} {event}"));
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn errors(&self) -> Vec<(String, ErrorKind)> {
        self.errors.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl ChannelHooks for Recorder {
    async fn on_message(&self, message: &ChannelMessage) -> Result<()> {
        self.note(format!("message {}", message.content));
        Ok(())
    }
    async fn on_start(&self, channel: &Channel) -> Result<()> {
        if self.refuse_start.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Store, "warehouse offline"));
        }
        assert!(channel.is_accepting_writes(), "on_start may write");
        self.note("start");
        Ok(())
    }
    async fn on_stop(&self, channel: &Channel) -> Result<()> {
        assert!(!channel.is_accepting_writes(), "writes refused by then");
        self.note("stop");
        Ok(())
    }
    async fn on_pull(&self, _: &Channel, pulled: usize) -> Result<()> {
        self.note(format!("pull {pulled}"));
        Ok(())
    }
    async fn on_process(&self, _: &Channel, report: &ProcessReport) -> Result<()> {
        self.note(format!("process {}/{}", report.stored, report.taken));
        Ok(())
    }
    async fn on_maintain(&self, _: &Channel) -> Result<()> {
        self.note("maintain");
        if self.panic_in_maintain.load(Ordering::SeqCst) {
            panic!("maintenance hook broke");
        }
        Ok(())
    }
    fn on_error(&self, _: &str, phase: &str, error: &Error) {
        self.errors
            .lock()
            .unwrap()
            .push((phase.to_owned(), error.kind()));
    }
}

/// The stored messages of any kind (newest first), through history.
async fn stored(ch: &Channel) -> Vec<Arc<ChannelMessage>> {
    ch.get_latest("owner", 100).await.unwrap()
}

fn events_without_time(rec: &Recorder) -> Vec<String> {
    rec.events()
        .into_iter()
        .map(|e| e.split_once(' ').unwrap().1.to_owned())
        .collect()
}

#[tokio::test]
async fn an_async_convert_runs_on_the_write_path_of_every_kind() {
    for kind in [
        ChannelKind::Passthrough,
        ChannelKind::Broadcast,
        ChannelKind::WorkQueue,
        ChannelKind::Mailbox,
        ChannelKind::Discovery,
    ] {
        let ch = ChannelBuilder::new(kind, "c")
            .convert_async(|sender, payload| async move {
                tokio::task::yield_now().await; // really async
                let Payload::Data(v) = payload else {
                    return Ok(None);
                };
                Ok(Some(
                    ChannelMessage::with_data(&sender, &json!({"wrapped": v}))?
                        .meta("converted", true),
                ))
            })
            .try_build()
            .unwrap();
        ch.start().await.unwrap();
        let id = ch.write("w", &7).await.unwrap();
        let got = stored(&ch).await;
        assert_eq!(got.len(), 1, "{kind:?}");
        assert_eq!(got[0].id, id);
        assert_eq!(
            got[0].data::<serde_json::Value>().unwrap(),
            json!({"wrapped": 7})
        );
        assert_eq!(got[0].metadata["converted"], true, "{kind:?}");
        let content = sssn::Content::data(&1).unwrap();
        assert_eq!(
            ch.write_content("w", content).await.unwrap(),
            "",
            "{kind:?}: a dropped conversion returns an empty id"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_periodic_channel_converts_in_its_loop_with_max_workers_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let ch = PeriodicChannel::buffered("p")
        .period(Duration::from_secs(3600))
        .max_workers(4)
        .convert_async(move |sender, payload| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let Payload::Data(v) = payload else {
                    unreachable!()
                };
                // Later items finish first: the store order must still be buffer order.
                let n = v.as_u64().unwrap();
                tokio::time::sleep(Duration::from_millis(100 - n)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(ChannelMessage::with_data(&sender, &(n * 10))?))
            }
        })
        .build();
    ch.start().await.unwrap();
    for i in 0..12u64 {
        ch.write("w", &i).await.unwrap();
    }
    let started = Instant::now();
    ch.drain(None).await.unwrap();
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "max_workers conversions at once"
    );
    assert!(
        started.elapsed() < Duration::from_millis(12 * 100),
        "concurrent, not one after the other: {:?}",
        started.elapsed()
    );
    let got: Vec<u64> = ch
        .read("r", 20)
        .await
        .unwrap()
        .iter()
        .map(|m| m.data().unwrap())
        .collect();
    assert_eq!(
        got,
        (0..12).map(|i| i * 10).collect::<Vec<_>>(),
        "buffer order"
    );
}

#[tokio::test]
async fn before_store_filters_and_enriches() {
    let ch = PassthroughChannel::new("temps")
        .before_store(|m| {
            let celsius: f64 = m.data()?;
            if celsius < -273.15 {
                return Ok(None);
            }
            Ok(Some(m.meta("kelvin", celsius + 273.15)))
        })
        .build();
    ch.start().await.unwrap();
    assert_eq!(ch.write("s", &-300.0).await.unwrap(), "", "filtered");
    let id = ch.write("s", &20.0).await.unwrap();
    let batch = ch
        .write_batch(
            "s",
            vec![Payload::Data(json!(-500.0)), Payload::Data(json!(1.0))],
        )
        .await
        .unwrap();
    assert_eq!(batch[0], "", "a filtered item of a batch has an empty id");
    assert!(!batch[1].is_empty());
    let got = ch.read("r", 10).await.unwrap();
    assert_eq!(got.len(), 2, "only what passed is stored");
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].metadata["kelvin"], 293.15, "enriched");
    assert_eq!(
        got[0].sender_id, "s",
        "before_store saw the sender filled in"
    );
}

/// `before_store` of a hooks object, async, also runs on what a periodic channel
/// converts; a closure of the same name takes its place.
#[tokio::test(start_paused = true)]
async fn before_store_of_an_object_runs_on_periodic_items_and_a_closure_replaces_it() {
    struct EvenOnly;
    #[async_trait::async_trait]
    impl ChannelHooks for EvenOnly {
        async fn before_store(&self, m: ChannelMessage) -> Result<Option<ChannelMessage>> {
            tokio::task::yield_now().await;
            Ok((m.data::<i64>()? % 2 == 0).then_some(m))
        }
    }
    let ch = PeriodicChannel::buffered("p").hooks(EvenOnly).build();
    ch.start().await.unwrap();
    for i in 0..6 {
        ch.write("w", &i).await.unwrap();
    }
    ch.drain(None).await.unwrap();
    let got: Vec<i64> = ch
        .read("r", 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.data().unwrap())
        .collect();
    assert_eq!(got, [0, 2, 4]);

    let ch = PassthroughChannel::new("q")
        .hooks(EvenOnly)
        .before_store(|m| Ok(Some(m)))
        .build();
    ch.start().await.unwrap();
    assert_ne!(
        ch.write("w", &1).await.unwrap(),
        "",
        "the closure replaced the object's"
    );
}

#[tokio::test(start_paused = true)]
async fn lifecycle_hooks_run_at_their_moments_pull_process_maintain() {
    let rec = Recorder::new();
    let pulls = Arc::new(AtomicUsize::new(0));
    let p = pulls.clone();
    let source = source_fn(move || {
        let n = p.fetch_add(1, Ordering::SeqCst);
        async move { Ok((0..n % 2).map(|_| Payload::Data(json!(n))).collect()) }
    });
    let ch = PeriodicChannel::new("cycle", source)
        .period(Duration::from_secs(1))
        // Maintenance has its own task: an interval that never meets a cycle keeps the
        // order of the record deterministic.
        .maintenance_interval(Duration::from_millis(2300))
        .hooks(rec.clone())
        .build();
    assert!(events_without_time(&rec).is_empty(), "nothing before start");
    ch.start().await.unwrap();
    ch.start().await.unwrap(); // idempotent: on_start once (v1 defect D26)
    tokio::time::sleep(Duration::from_millis(5200)).await;
    ch.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ch.stop().await; // a stopped channel is not stopped twice
    assert_eq!(
        rec.events(),
        [
            "0 start",
            "0 pull 0",
            "0 process 0/0",
            "1000 pull 1",
            "1000 message {\"data\":1}",
            "1000 process 1/1",
            "2000 pull 0",
            "2000 process 0/0",
            "2300 maintain",
            "3000 pull 1",
            "3000 message {\"data\":3}",
            "3000 process 1/1",
            "4000 pull 0",
            "4000 process 0/0",
            "4600 maintain",
            "5000 pull 1",
            "5000 message {\"data\":5}",
            "5000 process 1/1",
            "5200 stop",
        ]
    );
    assert!(rec.errors().is_empty(), "{:?}", rec.errors());
}

#[tokio::test(start_paused = true)]
async fn drain_processes_the_buffer_before_on_stop_and_a_restart_starts_again() {
    let rec = Recorder::new();
    let ch = PeriodicChannel::buffered("d")
        .period(Duration::from_secs(3600))
        .hooks(rec.clone())
        .build();
    assert!(
        ch.has_loop(),
        "hooks give a sourceless periodic channel its loop"
    );
    ch.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    ch.write("w", &"late").await.unwrap();
    ch.drain(None).await.unwrap();
    assert_eq!(
        events_without_time(&rec),
        [
            "start",
            "pull 0",
            "process 0/0",
            "message {\"data\":\"late\"}",
            "process 1/1",
            "stop"
        ]
    );
    ch.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await; // the first cycle
    ch.stop().await;
    let ev = events_without_time(&rec);
    assert_eq!(
        ev[ev.len() - 4..],
        ["start", "pull 0", "process 0/0", "stop"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_on_start_fails_start_cleanly() {
    let rec = Recorder::new();
    rec.refuse_start.store(true, Ordering::SeqCst);
    let ch = PeriodicChannel::buffered("s")
        .period(Duration::from_millis(100))
        .hooks(rec.clone())
        .build();
    let err = ch.start().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert_eq!(err.message(), "warehouse offline");
    assert_eq!(ch.state(), ChannelState::Created, "back to not started");
    assert_eq!(
        ch.write("w", &1).await.unwrap_err().kind(),
        ErrorKind::ShuttingDown
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rec.events().is_empty(), "no loop ran: {:?}", rec.events());
    assert_eq!(rec.errors(), [("on_start".to_owned(), ErrorKind::Store)]);
    ch.stop().await;
    assert!(
        rec.events().is_empty(),
        "no on_stop for a channel that never started"
    );

    rec.refuse_start.store(false, Ordering::SeqCst);
    let ch = PeriodicChannel::buffered("s2").hooks(rec.clone()).build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    ch.stop().await;
    ch.start().await.unwrap();
    rec.refuse_start.store(true, Ordering::SeqCst);
    ch.stop().await;
    assert_eq!(
        ch.start().await.unwrap_err().kind(),
        ErrorKind::Store,
        "a refused restart"
    );
    assert_eq!(ch.state(), ChannelState::Stopped, "back to stopped");
}

#[tokio::test]
async fn a_panicking_convert_fails_only_its_write() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let ch = PassthroughChannel::new("p")
        .convert(|sender, payload| {
            if payload == Payload::Data(json!("boom")) {
                panic!("cannot parse boom");
            }
            sssn::channel::default_convert(sender, payload)
        })
        .on_error(move |phase, err| e.lock().unwrap().push((phase.to_owned(), err.kind())))
        .build();
    ch.start().await.unwrap();
    let writers: Vec<_> = (0..20)
        .map(|i| {
            let ch = ch.clone();
            tokio::spawn(async move {
                if i % 5 == 0 {
                    ch.write("w", &"boom").await
                } else {
                    ch.write("w", &i).await
                }
            })
        })
        .collect();
    let mut failed = 0;
    for (i, w) in writers.into_iter().enumerate() {
        match w
            .await
            .expect("a hook's panic never reaches the writer's task")
        {
            Ok(id) => assert!(!id.is_empty()),
            Err(err) => {
                assert_eq!(i % 5, 0, "only the writes that panic fail");
                assert_eq!(err.kind(), ErrorKind::Internal);
                assert_eq!(
                    err.message(),
                    "the convert hook of channel 'p' panicked: cannot parse boom"
                );
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 4);
    assert_eq!(
        ch.stats().await.unwrap().stored,
        16,
        "every other write stored"
    );
    assert_eq!(
        errors.lock().unwrap().len(),
        4,
        "each panic reported to on_error"
    );
    assert!(
        errors
            .lock()
            .unwrap()
            .iter()
            .all(|(p, k)| p == "convert" && *k == ErrorKind::Internal)
    );
    ch.write("w", &"after")
        .await
        .expect("the next write succeeds");
}

#[tokio::test]
async fn a_panicking_before_store_or_on_message_is_contained() {
    struct Broken;
    #[async_trait::async_trait]
    impl ChannelHooks for Broken {
        async fn before_store(&self, m: ChannelMessage) -> Result<Option<ChannelMessage>> {
            if m.data::<i32>()? < 0 {
                panic!("negative");
            }
            Ok(Some(m))
        }
        async fn on_message(&self, m: &ChannelMessage) -> Result<()> {
            if m.data::<i32>()? == 13 {
                panic!("unlucky");
            }
            Ok(())
        }
    }
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let ch = PassthroughChannel::new("b")
        .hooks(Broken)
        .on_error(move |phase, err| e.lock().unwrap().push((phase.to_owned(), err.kind())))
        .build();
    ch.start().await.unwrap();
    let err = ch.write("w", &-1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(
        err.message()
            .contains("before_store hook of channel 'b' panicked: negative")
    );
    ch.write("w", &13)
        .await
        .expect("stored: a panicking observer does not undo the write");
    ch.write("w", &1).await.unwrap();
    assert_eq!(ch.stats().await.unwrap().stored, 2);
    assert_eq!(
        *errors.lock().unwrap(),
        [
            ("before_store".to_owned(), ErrorKind::Internal),
            ("on_message".to_owned(), ErrorKind::Internal)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_hook_times_out_without_holding_up_other_writers() {
    let ch = PassthroughChannel::new("slow")
        .hook_timeout(Duration::from_millis(200))
        .convert_async(|sender, payload| async move {
            if payload == Payload::Data(json!("slow")) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            sssn::channel::default_convert(&sender, payload)
        })
        .build();
    ch.start().await.unwrap();
    let began = Instant::now();
    let slow = tokio::spawn({
        let ch = ch.clone();
        async move { ch.write("w", &"slow").await }
    });
    tokio::task::yield_now().await; // the slow write is inside its hook
    tokio::time::sleep(Duration::from_millis(1)).await;
    ch.write("w", &"fast")
        .await
        .expect("another writer is not blocked");
    assert_eq!(
        began.elapsed(),
        Duration::from_millis(1),
        "the fast write did not wait"
    );
    assert!(!slow.is_finished(), "the slow write is still in its hook");
    let err = slow.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        began.elapsed(),
        Duration::from_millis(200),
        "bounded by hook_timeout"
    );
    assert_eq!(
        err.message(),
        "the convert hook of channel 'slow' did not finish within 200ms"
    );
    assert_eq!(ch.stats().await.unwrap().stored, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_on_maintain_does_not_stop_maintenance() {
    let rec = Recorder::new();
    rec.panic_in_maintain.store(true, Ordering::SeqCst);
    let ch = PassthroughChannel::new("m")
        .maintenance_interval(Duration::from_secs(1))
        .retention_max_age(Duration::from_millis(1500))
        .hooks(rec.clone())
        .build();
    ch.start().await.unwrap();
    ch.write("w", &1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let maintained = rec
        .events()
        .iter()
        .filter(|e| e.ends_with("maintain"))
        .count();
    assert_eq!(maintained, 3, "at 1, 2 and 3 s: {:?}", rec.events());
    assert_eq!(
        rec.errors(),
        vec![("on_maintain".to_owned(), ErrorKind::Internal); 3],
        "each panic reported"
    );
    assert_eq!(
        ch.stats().await.unwrap().stored,
        0,
        "the default maintenance (retention) kept running"
    );
    // A manual pass reports the hook's failure to its caller too.
    let err = ch.maintain().await.unwrap_err();
    assert!(err.message().contains("maintenance hook broke"), "{err}");
    ch.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failures_in_the_periodic_loop_are_reported_and_the_loop_goes_on() {
    struct Flaky(AtomicUsize);
    #[async_trait::async_trait]
    impl ChannelHooks for Flaky {
        async fn convert(&self, sender: &str, payload: Payload) -> Result<Option<ChannelMessage>> {
            if payload == Payload::Data(json!("bad")) {
                panic!("bad item");
            }
            sssn::channel::default_convert(sender, payload)
        }
        async fn on_pull(&self, channel: &Channel, _: usize) -> Result<()> {
            // v1's pull_fn writing into its own channel: processed in this cycle.
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            channel.write("self", &n).await?;
            if n == 1 {
                return Err(Error::new(ErrorKind::Remote, "upstream"));
            }
            Ok(())
        }
        async fn on_process(&self, _: &Channel, report: &ProcessReport) -> Result<()> {
            if report.failed > 0 {
                panic!("on_process saw a failure");
            }
            Ok(())
        }
    }
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let ch = PeriodicChannel::buffered("f")
        .period(Duration::from_secs(1))
        .hooks(Flaky(AtomicUsize::new(0)))
        .on_error(move |phase, err| e.lock().unwrap().push((phase.to_owned(), err.kind())))
        .build();
    ch.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    ch.write("w", &"bad").await.unwrap(); // accepted into the buffer; fails in the loop
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got: Vec<serde_json::Value> = ch
        .read("r", 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.data().unwrap())
        .collect();
    assert_eq!(
        got,
        [json!(0), json!(1), json!(2)],
        "every cycle's own write stored"
    );
    assert_eq!(
        *errors.lock().unwrap(),
        [
            // The second cycle: on_pull wrote, then failed; the buffered "bad" panicked.
            ("on_pull".to_owned(), ErrorKind::Remote),
            ("process".to_owned(), ErrorKind::Internal),
            ("on_process".to_owned(), ErrorKind::Internal),
        ]
    );
    ch.stop().await;
}

#[tokio::test]
async fn a_sync_convert_closure_replaces_the_objects_and_the_last_convert_wins() {
    struct Upper;
    #[async_trait::async_trait]
    impl ChannelHooks for Upper {
        async fn convert(&self, s: &str, _: Payload) -> Result<Option<ChannelMessage>> {
            Ok(Some(ChannelMessage::with_data(s, &"object")?))
        }
    }
    let ch = PassthroughChannel::new("a")
        .hooks(Upper)
        .convert_async(|s, _| async move { Ok(Some(ChannelMessage::with_data(&s, &"async")?)) })
        .convert(|s, _| Ok(Some(ChannelMessage::with_data(s, &"sync")?)))
        .build();
    ch.start().await.unwrap();
    ch.write("w", &0).await.unwrap();
    assert_eq!(
        ch.read("r", 1).await.unwrap()[0].data::<String>().unwrap(),
        "sync"
    );

    let ch = PassthroughChannel::new("b").hooks(Upper).build();
    ch.start().await.unwrap();
    ch.write("w", &0).await.unwrap();
    assert_eq!(
        ch.read("r", 1).await.unwrap()[0].data::<String>().unwrap(),
        "object"
    );
}

#[tokio::test]
async fn the_sender_check_comes_before_any_hook() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let ch = PassthroughChannel::new("s")
        .convert(move |s, p| {
            c.fetch_add(1, Ordering::SeqCst);
            sssn::channel::default_convert(s, p)
        })
        .build();
    ch.start().await.unwrap();
    let forged = ChannelMessage::with_data("admin", &1).unwrap();
    let err = ch.write_message("mallory", forged).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_observer_is_cut_off_and_the_write_stands() {
    struct Hangs(Mutex<Vec<(String, String, ErrorKind)>>);
    #[async_trait::async_trait]
    impl ChannelHooks for Hangs {
        async fn on_message(&self, _: &ChannelMessage) -> Result<()> {
            std::future::pending().await
        }
        fn on_error(&self, channel: &str, phase: &str, error: &Error) {
            let seen = (channel.to_owned(), phase.to_owned(), error.kind());
            self.0.lock().unwrap().push(seen);
        }
    }
    let hooks = Arc::new(Hangs(Mutex::new(Vec::new())));
    let ch = PassthroughChannel::new("o")
        .hooks(hooks.clone())
        .hook_timeout(Duration::from_secs(2))
        .build();
    ch.start().await.unwrap();
    let began = Instant::now();
    let id = ch
        .write("w", &1)
        .await
        .expect("stored before the observer ran");
    assert_eq!(began.elapsed(), Duration::from_secs(2));
    assert_eq!(ch.read("r", 1).await.unwrap()[0].id, id);
    assert_eq!(
        *hooks.0.lock().unwrap(),
        [("o".to_owned(), "on_message".to_owned(), ErrorKind::Timeout)]
    );
}
