//! The console in a real browser (headless Chromium through chromedriver, WebDriver over
//! plain HTTP): it shows nothing without a token, loads with one, sees the channels, sees a
//! counter move after writes, redrives a dead letter after the confirmation, shows one
//! record's path, and keeps a screenshot (`target/console-screenshot.png`).
//!
//! Without chromium or chromedriver it prints one `SKIPPED` line and passes, unless
//! `SSSN_REQUIRE_BROWSER=1` (CI), where it fails.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use sssn::Result;
use sssn::channel::{BroadcastChannel, WorkQueueChannel};
use sssn::network::Network;
use sssn::security::AclSecurity;
use sssn::store::Entry;
use sssn::system::{System, SystemContext, SystemSpec};
use sssn_http::Server;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);

/// A bare WebDriver client.
struct Driver {
    http: reqwest::Client,
    base: String,
    child: Child,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "webdriver {path}: {status} {v}");
        v["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session {
    driver: Driver,
    id: String,
}

impl Session {
    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.id)
    }
    async fn post(&self, rest: &str, body: Value) -> Value {
        self.driver
            .call(reqwest::Method::POST, &self.path(rest), Some(body))
            .await
    }
    async fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }
    /// The text of the first element matching `css`, if any.
    async fn text(&self, css: &str) -> Option<String> {
        let v = self
            .script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                json!([css]),
            )
            .await;
        v.as_str().map(str::to_owned)
    }
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(t) = self.text(css).await
                && ok(&t)
            {
                return t;
            }
            assert!(
                start.elapsed() < WAIT,
                "{what}: `{css}` is {:?}",
                self.text(css).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    /// Clicks the first element matching `css` as a user would.
    async fn click(&self, css: &str) {
        self.wait_text(css, "to click", |_| true).await;
        let e = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        let id = e[ELEMENT].as_str().unwrap().to_owned();
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }
    async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        let id = e[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {e}"))
            .to_owned();
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        let ok = Command::new("which")
            .arg(n)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| (*n).to_owned())
    })
}

/// A headless Chromium session, or `None` (after the SKIPPED line) when there is none.
async fn browser(test: &str) -> Option<Session> {
    let (Some(chromium), Some(chromedriver)) = (
        find(&["chromium", "chromium-browser", "google-chrome"]),
        find(&["chromedriver"]),
    ) else {
        assert!(
            std::env::var("SSSN_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "{test}: chromium and chromedriver are required (SSSN_REQUIRE_BROWSER=1)"
        );
        println!("SKIPPED {test}: chromium or chromedriver not installed");
        return None;
    };
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
        child,
    };
    let start = Instant::now();
    while driver
        .http
        .get(format!("{}/status", driver.base))
        .send()
        .await
        .is_err()
    {
        assert!(start.elapsed() < WAIT, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let binary = String::from_utf8(
        Command::new("which")
            .arg(&chromium)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": binary.trim(), "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1400,2000"]}}}});
    let v = driver
        .call(reqwest::Method::POST, "/session", Some(caps))
        .await;
    let id = v["sessionId"].as_str().unwrap().to_owned();
    Some(Session { driver, id })
}

/// Rejects each message whose data is "poison" the first time it sees it, handles the
/// rest: publishes a result, acknowledges.
struct Worker(HashSet<String>);

#[async_trait]
impl System for Worker {
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let (jobs, results) = (ctx.work_queue("jobs")?, ctx.broadcast("results")?);
        for c in jobs.claim(10).await? {
            let data: String = c.message.data()?;
            if data == "poison" && self.0.insert(c.message.id.clone()) {
                jobs.reject(&c, "poison").await?.into_result()?;
                continue;
            }
            results.write(&format!("done: {data}")).await?;
            jobs.ack(&c).await?.into_result()?;
        }
        Ok(())
    }
}

struct Sink(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl System for Sink {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("results").await
    }
    async fn on_message(&mut self, _: &mut SystemContext, _: &str, e: Entry) -> Result<()> {
        self.0.lock().unwrap().push(e.message.data()?);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_shows_counts_redrives_and_a_records_path() {
    let test = "the_console_in_a_browser_shows_counts_redrives_and_a_records_path";
    let Some(b) = browser(test).await else { return };

    let acl = Arc::new(AclSecurity::new(
        &["viewer"],
        &["worker", "sink"],
        &["admin"],
    ));
    acl.add_token("admin-token", "admin");
    let mut net = Network::new("console");
    let jobs = net
        .add_channel(
            WorkQueueChannel::new("jobs")
                .public()
                .security(acl.clone())
                .build(),
        )
        .unwrap();
    net.add_channel(
        BroadcastChannel::new("results")
            .public()
            .security(acl.clone())
            .build(),
    )
    .unwrap();
    net.add_system(
        SystemSpec::new("worker")
            .tick_rate(20.0)
            .reads(["jobs"])
            .writes(["results"]),
        Worker(HashSet::new()),
    )
    .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    net.add_system(
        SystemSpec::new("sink").tick_rate(0.0).reads(["results"]),
        Sink(got.clone()),
    )
    .unwrap();
    let running = net.start().await.unwrap();
    let server = Server::builder()
        .network(&running)
        .drain_on_shutdown(false)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let write = |data: &'static str| {
        // A traced client: its traceparent header starts the record's path.
        let ctx = sssn::trace::TraceContext::root();
        let req = http
            .put(server.channel_url("jobs"))
            .header("authorization", "Bearer admin-token")
            .header("traceparent", ctx.traceparent())
            .json(&json!(data));
        async move { assert!(req.send().await.unwrap().status().is_success()) }
    };

    // Without a token the page shows nothing but the token form.
    b.post("/url", json!({"url": format!("{}/ui/", server.url())}))
        .await;
    b.wait_text("#status", "the prompt", |t| t.contains("token"))
        .await;
    let hidden = b
        .script("return document.querySelector('#main').hidden", json!([]))
        .await;
    assert_eq!(hidden, json!(true), "nothing shown before a token");
    b.type_into("#token", "wrong-token").await;
    b.click("#login button[type=submit]").await;
    b.wait_text("#status", "a refused token", |t| t.contains("not accepted"))
        .await;

    b.script("document.querySelector('#token').value = ''", json!([]))
        .await;
    b.type_into("#token", "admin-token").await;
    b.click("#login button[type=submit]").await;
    // Sees the channels, in the table and in the graph.
    b.wait_text(
        "#channels tr[data-channel=jobs] td.writes",
        "jobs row",
        |t| t == "0",
    )
    .await;
    b.wait_text(
        "#channels tr[data-channel=results] td.writes",
        "results row",
        |_| true,
    )
    .await;
    b.wait_text(
        "#topology g[data-node='s:worker'] text",
        "worker node",
        |t| t == "worker",
    )
    .await;

    // A counter moves after writes.
    for data in ["a", "b", "c"] {
        write(data).await;
    }
    b.wait_text(
        "#channels tr[data-channel=jobs] td.writes",
        "writes after 3",
        |t| t == "3",
    )
    .await;
    b.wait_text(
        "#channels tr[data-channel=results] td.writes",
        "results after 3",
        |t| t == "3",
    )
    .await;

    // A dead letter, browsed and redriven after the confirmation.
    write("poison").await;
    b.wait_text(
        "#channels tr[data-channel=jobs] td.dead",
        "a dead letter",
        |t| t == "1",
    )
    .await;
    b.click("button.browse-dead[data-channel=jobs]").await;
    b.click("#dead-rows button.redrive").await;
    b.wait_text("#confirm-text", "the confirmation", |t| {
        t.contains("Put dead letter")
    })
    .await;
    assert_eq!(
        jobs.stats().await.unwrap().dead_lettered,
        1,
        "nothing before confirming"
    );
    b.click("#confirm-yes").await;
    b.wait_text("#status", "redriven", |t| t.contains("Redriven: 1"))
        .await;
    let start = Instant::now();
    while !got.lock().unwrap().iter().any(|d| d == "done: poison") {
        assert!(start.elapsed() < WAIT, "the redriven job was not handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(jobs.stats().await.unwrap().dead_lettered, 0);

    // One record's path: click it in the live tail of `results`.
    b.wait_text("#tail tbody tr td.content", "the tail", |t| {
        t.contains("done:")
    })
    .await;
    b.click("#tail tbody tr").await;
    b.wait_text("#hops tbody", "the path", |t| t.contains("sink"))
        .await;
    let actors = b
        .script(
            "return [...document.querySelectorAll('#hops tbody tr')].map(r => r.cells[1].textContent + ' ' + r.cells[2].textContent + ' ' + r.cells[3].textContent)",
            json!([]),
        )
        .await;
    let hops: Vec<&str> = actors
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "write jobs admin",
        "claim #",
        "write results worker",
        "deliver results sink",
    ] {
        assert!(
            hops.iter().any(|h| h.starts_with(want)),
            "{want} in {hops:?}"
        );
    }

    // The pause holds the tail; resuming shows what came meanwhile.
    b.click("#tail-toggle").await;
    b.wait_text("#tail-state", "paused", |t| t.starts_with("paused"))
        .await;
    let rows = || async {
        b.script(
            "return document.querySelectorAll('#tail tbody tr').length",
            json!([]),
        )
        .await
        .as_u64()
        .unwrap()
    };
    let before = rows().await;
    write("d").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rows().await, before, "a paused tail shows nothing new");
    b.click("#tail-toggle").await;
    let start = Instant::now();
    while rows().await <= before {
        assert!(start.elapsed() < WAIT, "resuming shows what came meanwhile");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let shot = b
        .driver
        .call(reqwest::Method::GET, &b.path("/screenshot"), None)
        .await;
    let png = decode_base64(shot.as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/console-screenshot.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {} ({} bytes)", path.display(), png.len());

    let _ = b
        .driver
        .call(reqwest::Method::DELETE, &b.path(""), None)
        .await;
    server.shutdown().await.unwrap();
    running.stop().await.unwrap();
}

/// Standard base64 (WebDriver screenshots).
fn decode_base64(text: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (val(c) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
