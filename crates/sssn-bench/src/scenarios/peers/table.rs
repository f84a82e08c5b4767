//! The rounds of every row made into the peer table: medians, ratios, goals, notes.

use super::*;

/// Median, min and max of some samples.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(samples: impl Iterator<Item = f64>) -> Option<Self> {
        let s: Vec<f64> = samples.collect();
        if s.is_empty() {
            return None;
        }
        Some(Self {
            median: median(&s),
            min: s.iter().copied().fold(f64::INFINITY, f64::min),
            max: s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

/// What the table shows of a measured row.
struct Measured {
    /// Medians of takes and empty takes per message.
    takes: f64,
    empty: f64,
    rate: Stat,
    client: Stat,
    server: Option<Stat>,
    total: Stat,
}

fn measured(e: &Entry) -> Option<Measured> {
    if !matches!(e.state, State::Running(_)) {
        return None;
    }
    let s = &e.samples;
    // A total only where every round measured the server (or it is in process).
    let in_process = matches!(e.server, Some(Server::InProcess));
    let server = if s.iter().all(|x| x.server_us.is_some()) {
        Stat::of(s.iter().filter_map(|x| x.server_us))
    } else {
        None
    };
    let total = if in_process {
        Stat::of(s.iter().map(|x| x.client_us))
    } else if server.is_some() {
        Stat::of(
            s.iter()
                .map(|x| x.client_us + x.server_us.unwrap_or_default()),
        )
    } else {
        None
    };
    Some(Measured {
        takes: median(&s.iter().map(|x| x.takes).collect::<Vec<_>>()),
        empty: median(&s.iter().map(|x| x.empty).collect::<Vec<_>>()),
        rate: Stat::of(s.iter().map(|x| x.rate))?,
        client: Stat::of(s.iter().map(|x| x.client_us))?,
        server,
        total: total.unwrap_or(Stat {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        }),
    })
}

/// The peer table, the JSON rows, and an outcome per skipped or failed system.
pub(super) fn outcomes(entries: &[Entry], n: usize, runs: usize) -> Vec<Outcome> {
    let by_key = |key: &str| entries.iter().find(|e| e.row.key == key);
    let header = [
        "system",
        "durability",
        "msgs/s",
        "min–max",
        "client µs/msg",
        "server µs/msg",
        "total µs/msg",
        "vs",
        "ratio",
        "CPU ratio",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut json_rows = Vec::new();
    let mut out = Vec::new();
    let mut goals = Vec::new();
    let mut notes = Vec::new();
    for e in entries {
        let m = measured(e);
        let versus = e
            .row
            .versus
            .and_then(|(key, goal, text)| Some((by_key(key)?, goal, text)));
        let peer = versus.and_then(|(p, ..)| measured(p).map(|m| (p, m)));
        let ratio = match (&m, &peer) {
            (Some(m), Some((_, p))) => Some(m.rate.median / p.rate.median),
            _ => None,
        };
        let cpu_ratio = match (&m, &peer) {
            (Some(m), Some((_, p))) => {
                Some(p.total.median / m.total.median).filter(|r| r.is_finite())
            }
            _ => None,
        };
        let status = match &e.state {
            State::Running(_) => None,
            State::Skipped(why) => {
                out.push(Outcome::skipped(e.scenario(), why.clone()));
                Some("skipped")
            }
            State::Failed(why) => {
                out.push(Outcome::Failed {
                    scenario: e.scenario(),
                    error: why.clone(),
                });
                Some("FAILED")
            }
        };
        let num = |x: f64| {
            if x.is_finite() {
                format!("{x:.1}")
            } else {
                "–".to_owned()
            }
        };
        let mut row = vec![e.row.label.to_owned(), e.durability.clone()];
        match (&m, status) {
            (Some(m), _) => row.extend([
                human(m.rate.median),
                format!("{}–{}", human(m.rate.min), human(m.rate.max)),
                num(m.client.median),
                m.server.map_or_else(
                    || {
                        if matches!(e.server, Some(Server::InProcess)) {
                            "(in process)".to_owned()
                        } else {
                            "–".to_owned()
                        }
                    },
                    |s| num(s.median),
                ),
                num(m.total.median),
            ]),
            (None, status) => {
                row.push(status.unwrap_or("-").to_owned());
                row.extend(std::iter::repeat_n(String::new(), 4));
            }
        }
        row.push(versus.map_or_else(String::new, |(p, ..)| p.row.key.to_owned()));
        row.push(ratio.map_or_else(String::new, |r| format!("{r:.2}")));
        row.push(cpu_ratio.map_or_else(String::new, |r| format!("{r:.2}")));
        rows.push(row);

        let goal_met = ratio.zip(versus).map(|(r, (_, g, _))| r >= g);
        if let Some((p, _, text)) = versus {
            let verdict = match (ratio, goal_met) {
                (Some(r), Some(true)) => format!("{r:.2}×: met"),
                (Some(r), _) => format!("{r:.2}×: MISSED"),
                (None, _) if m.is_none() => "n/a (this row did not run)".to_owned(),
                (None, _) => format!("n/a ({} did not run)", p.row.label),
            };
            goals.push(format!("goal (#16) {text}: {verdict}"));
        }
        if let (Some(m), Some(server)) = (&m, &e.server) {
            notes.push(format!(
                "{}: server CPU = {}; consumer takes per message {:.2} (empty ones {:.2})",
                e.row.key,
                server.describe(),
                m.takes,
                m.empty
            ));
            json_rows.push(json!({
                "scenario": e.scenario(),
                "system": e.row.label,
                "durability": e.durability,
                "unit": "msgs/s",
                "median": m.rate.median,
                "min": m.rate.min,
                "max": m.rate.max,
                "runs": e.samples.len(),
                "messages": n,
                "client_us_per_msg": m.client.json(),
                "server_us_per_msg": m.server.map(|s| s.json()),
                "total_us_per_msg": m.total.median.is_finite().then(|| m.total.json()),
                "server_counted": server.describe(),
                "takes_per_msg": m.takes,
                "empty_takes_per_msg": m.empty,
                "compared_with": versus.map(|(p, ..)| p.scenario()),
                "ratio": ratio,
                "ratio_is": versus.map(|_| "ours / compared (msgs/s medians)"),
                "cpu_ratio": cpu_ratio,
                "cpu_ratio_is": versus.map(|_| "compared / ours (total µs/msg medians)"),
                "goal": versus.map(|(_, _, t)| t),
                "goal_met": goal_met,
            }));
        }
    }
    let mut text = format!(
        "peer table (issue 16): {n} messages, {PRODUCERS} producers (1 message per call, each confirmed), {CONSUMERS} consumers (take up to {TAKE}, ack each batch); median of {runs} rounds, interleaved\n\n"
    );
    text += &crate::report::grid(&header.map(str::to_owned), &rows, &[2, 3, 4, 5, 6, 8, 9]);
    text.push('\n');
    for g in &goals {
        let _ = writeln!(text, "{g}");
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "- ratio = msgs/s of the row / msgs/s of the row named under vs; CPU ratio = total µs/msg of that row / of this one (higher is better for both). sssn memory is compared with a raw tokio channel in the `workqueue` figure."
    );
    let _ = writeln!(
        text,
        "- client CPU = this benchmark process (CLOCK_PROCESS_CPUTIME_ID, every thread) over the round; server CPU = every thread of the processes below (/proc/PID/task/*/schedstat) over the same window; per message = CPU time / {n}."
    );
    for note in notes {
        let _ = writeln!(text, "- {note}");
    }
    out.insert(
        0,
        Outcome::Section(Section {
            scenario: "peers".to_owned(),
            text,
            rows: json_rows,
        }),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A queue in a `VecDeque`, to test the driver without a service.
    #[derive(Clone, Default)]
    struct Fake {
        items: Arc<Mutex<VecDeque<u64>>>,
        /// Deliver the first message twice.
        duplicate: bool,
    }

    #[async_trait]
    impl System for Fake {
        fn durability(&self) -> String {
            "none".to_owned()
        }
        async fn open(&self, _: usize) -> anyhow::Result<Box<dyn Queue>> {
            Ok(Box::new(self.clone()))
        }
    }

    #[async_trait]
    impl Queue for Fake {
        async fn producer(&self) -> anyhow::Result<Box<dyn Producer>> {
            Ok(Box::new(self.clone()))
        }
        async fn consumer(&self) -> anyhow::Result<Box<dyn Consumer>> {
            Ok(Box::new(self.clone()))
        }
        fn server(&self) -> Server {
            Server::InProcess
        }
        async fn close(self: Box<Self>) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[async_trait]
    impl Producer for Fake {
        async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
            let i = Index::of(&serde_json::to_vec(message)?)?;
            self.items.lock().unwrap().push_back(i);
            Ok(())
        }
    }

    #[async_trait]
    impl Consumer for Fake {
        async fn take(&mut self, max: usize) -> anyhow::Result<Vec<u64>> {
            let mut items = self.items.lock().unwrap();
            let n = max.min(items.len());
            let mut taken: Vec<u64> = items.drain(..n).collect();
            if self.duplicate && taken.first() == Some(&0) {
                taken.truncate(max - 1);
                taken.push(0);
            }
            Ok(taken)
        }
        async fn ack(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_driver_counts_every_message_once() {
        let (sample, server) = round(&Fake::default(), 1, 1_000).await.unwrap();
        assert!(sample.rate > 0.0);
        assert!(sample.server_us.is_none());
        assert!(matches!(server, Server::InProcess));
    }

    #[tokio::test]
    async fn a_message_delivered_twice_fails_the_round() {
        let fake = Fake {
            duplicate: true,
            ..Fake::default()
        };
        let e = round(&fake, 1, 100).await.unwrap_err();
        assert!(format!("{e:#}").contains("delivered twice"), "{e:#}");
    }

    #[test]
    fn the_table_compares_and_says_what_did_not_run() {
        let sample = |rate| Sample {
            rate,
            client_us: 10.0,
            server_us: Some(5.0),
            takes: 0.2,
            empty: 0.1,
        };
        let entry = |key: &str, state, samples: Vec<Sample>| Entry {
            row: ROWS.iter().find(|r| r.key == key).unwrap(),
            state,
            durability: "none".to_owned(),
            server: Some(Server::Processes {
                what: "test".to_owned(),
                pids: vec![1],
            }),
            samples,
        };
        let running = || State::Running(Box::new(Fake::default()));
        let entries = vec![
            entry("redis", running(), vec![sample(100.0), sample(300.0)]),
            entry("sssn-http-memory", running(), vec![sample(150.0)]),
            entry("jetstream", State::Skipped("not listening".into()), vec![]),
            entry("sssn-jetstream", running(), vec![sample(1.0)]),
        ];
        let out = outcomes(&entries, 10, 2);
        let Outcome::Section(s) = &out[0] else {
            panic!("no section first");
        };
        assert!(
            s.text
                .contains("remote (HTTP) client ≥ 1.0× Redis: 0.75×: MISSED")
        );
        assert!(s.text.contains("n/a (raw JetStream"));
        assert_eq!(s.rows.len(), 3);
        assert_eq!(s.rows[1]["ratio"], 0.75);
        assert_eq!(s.rows[1]["total_us_per_msg"]["median"], 15.0);
        assert!(out.iter().any(
            |o| matches!(o, Outcome::Skipped { scenario, .. } if scenario == "peers/jetstream")
        ));
    }

    #[test]
    fn server_cpu_is_the_sum_of_what_each_process_used() {
        let ms = Duration::from_millis;
        let before = BTreeMap::from([(1, ms(5)), (2, ms(3))]);
        let after = BTreeMap::from([(1, ms(8)), (3, ms(2))]);
        assert_eq!(server_delta(&before, &after), ms(5));
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("127.0.0.1:6379", 1), ("127.0.0.1".into(), 6379));
        assert_eq!(host_port("[::1]:4222", 1), ("[::1]".into(), 4222));
        assert_eq!(host_port("redis", 6379), ("redis".into(), 6379));
        assert!(is_loopback("localhost") && is_loopback("127.0.0.2") && is_loopback("[::1]"));
        assert!(!is_loopback("10.1.2.3") && !is_loopback("db.example"));
    }

    #[test]
    fn proc_meters_find_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
        let before = process_cpu(std::process::id()).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(t.elapsed());
        }
        assert!(process_cpu(std::process::id()).unwrap() > before);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(children(std::process::id()).contains(&child.id()));
        // Until the child has exec'd, its command line is still this test's.
        let t = Instant::now();
        while !cmdline(child.id()).starts_with("sleep 5") && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(cmdline(child.id()).starts_with("sleep 5"));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
