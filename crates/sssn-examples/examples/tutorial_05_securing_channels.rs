//! Tutorial 5 · Securing Channels (sssn 0.0.1's `tutorials/05-securing-channels.md`): ACL
//! roles in process, then JWT tokens, over HTTP with a v1-shaped client and with a
//! `ChannelClient`.
//!
//! ```text
//! cargo run --example tutorial_05_securing_channels -- [--listen HOST:PORT] [--store URL]
//! ```
//!
//! The Python prints one line, the refusal of the rogue reader. Here a claim is its own
//! operation, so the refusal says "claim from" where v1 said "read from"; the other lines
//! report what each part shows (the Python left those as comments). Over HTTP, a token
//! without the role gets 403 and a tampered one 401 (v1 answered 403 to both, D18).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use sssn::channel::WorkQueueChannel;
use sssn::security::{AclSecurity, JwtSecurity, Role, Security};
use sssn::{ChannelClient, Error, ErrorKind, Result};
use sssn_examples::{Out, say};
use sssn_http::{ConnectRemote, Server};

/// Command-line options.
#[derive(Parser)]
#[command(about = "Tutorial 5: ACL roles, JWT tokens, and JWT over HTTP.")]
pub struct Args {
    /// Where part 3 serves the JWT-secured queue (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "HOST:PORT")]
    pub listen: String,
    /// Where the channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

const SECRET: &str = "your-32-byte-production-secret-key";

fn failed(what: &str) -> Error {
    Error::new(ErrorKind::Internal, format!("tutorial 5: {what}"))
}

async fn part_1_acl(store: Arc<dyn sssn::store::Store>, out: &Out) -> Result<()> {
    let sec = Arc::new(AclSecurity::new::<&str>(&[], &[], &[]));
    sec.grant("scheduler", Role::Write); // scheduler can enqueue
    sec.grant("worker-1", Role::Write); // workers need write for acknowledge/nack
    sec.grant("worker-2", Role::Write);
    sec.grant("ops-dashboard", Role::Admin); // admin can clear, evict, remove
    let queue = WorkQueueChannel::new("jobs")
        .name("Job Queue")
        .security(sec.clone())
        .store(store)
        .build();
    queue.start().await?;

    queue
        .write(
            "scheduler",
            &json!({"task": "compress", "file": "video.mp4"}),
        )
        .await?;
    let claims = queue.claim("worker-1", 5).await?;
    let settled = queue
        .ack("worker-1", &[claims[0].message.id.as_str()])
        .await?;
    say!(
        out,
        "worker-1 claimed {} and acknowledged {}",
        claims.len(),
        settled.done.len()
    );
    match queue.claim("rogue-process", 10).await {
        Err(e) => say!(out, "{}", e.message()),
        Ok(_) => return Err(failed("the rogue process claimed")),
    }

    // Changes take effect on the next call, no restart.
    sec.grant("worker-3", Role::Write);
    sec.revoke("worker-1");
    queue
        .write("scheduler", &json!({"task": "thumbnail"}))
        .await?;
    let claimed = queue.claim("worker-3", 5).await?;
    say!(
        out,
        "worker-3 (granted at run time) claimed {}",
        claimed.len()
    );
    let _ = queue.ack("worker-3", &claimed).await?;
    match queue.claim("worker-1", 5).await {
        Err(e) => say!(out, "{}", e.message()),
        Ok(_) => return Err(failed("revoked worker-1 still claims")),
    }
    queue.stop().await;
    Ok(())
}

/// `GET`/`POST` with a bearer token, as sssn 0.0.1's clients sent them.
async fn call(
    http: &reqwest::Client,
    request: reqwest::RequestBuilder,
    token: &str,
) -> Result<(u16, Value)> {
    let _ = http;
    let resp = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| failed("HTTP request").with_source(e))?;
    let status = resp.status().as_u16();
    let body = resp
        .json()
        .await
        .map_err(|e| failed("HTTP body").with_source(e))?;
    Ok((status, body))
}

async fn parts_2_to_4_jwt(
    args: &Args,
    store: Arc<dyn sssn::store::Store>,
    out: &Out,
) -> Result<()> {
    // Part 2 — JWT, local: systems in one process are trusted.
    let sec = Arc::new(JwtSecurity::new(SECRET)?);
    let worker_token = sec.generate_token(
        "worker-1",
        Role::Write,
        Some(&["jobs".to_owned()]),
        Duration::from_secs(8 * 3600),
    )?;
    let admin_token =
        sec.generate_token("ops-tool", Role::Admin, None, Duration::from_secs(3600))?;
    let reader_token = sec.generate_token("viewer", Role::Read, None, Duration::from_secs(3600))?;
    let queue = WorkQueueChannel::new("jobs")
        .name("Job Queue")
        .public()
        .security(sec.clone())
        .store(store)
        .build();
    queue.start().await?;
    queue
        .write("any-local-system", &json!({"task": "resize"}))
        .await?;
    say!(out, "any-local-system wrote in process without a token");

    // Part 3 — JWT over HTTP: the queue on a server, remote workers with tokens.
    let server = Server::builder()
        .channel(queue.clone())
        .bind(args.listen.as_str())
        .await?;
    let url = server.channel_url("jobs");
    let http = reqwest::Client::new();
    let (status, body) = call(
        &http,
        http.get(format!("{url}?exclusive=true&limit=5")),
        &worker_token,
    )
    .await?;
    let ids: Vec<Value> = body["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| m["id"].clone()).collect())
        .unwrap_or_default();
    say!(
        out,
        "HTTP claim with worker-1's token: {status}, {} message(s)",
        ids.len()
    );
    let (status, body) = call(
        &http,
        http.post(format!("{url}/acknowledge"))
            .json(&json!({"message_ids": ids})),
        &worker_token,
    )
    .await?;
    say!(
        out,
        "HTTP acknowledge: {status}, acknowledged {}",
        body["acknowledged"]
    );
    let (status, body) = call(
        &http,
        http.put(&url).json(&json!({"task": "x"})),
        &reader_token,
    )
    .await?;
    say!(
        out,
        "HTTP write with a read token: {status} {}",
        body["detail"].as_str().unwrap_or_default()
    );
    let mut tampered = admin_token.clone();
    tampered.pop();
    tampered.push(if admin_token.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = call(&http, http.get(format!("{url}/info")), &tampered).await?;
    say!(out, "HTTP info with a tampered token: {status}");
    let (status, body) = call(&http, http.get(format!("{url}/info")), &admin_token).await?;
    say!(
        out,
        "HTTP info with the admin token: {status}, visibility {}",
        body["visibility"].as_str().unwrap_or_default()
    );

    // Part 4 — a ChannelClient with the token sends it on every call.
    queue
        .write("scheduler", &json!({"task": "archive"}))
        .await?;
    let worker_3_token = sec.generate_token(
        "worker-3",
        Role::Write,
        Some(&["jobs".to_owned()]),
        Duration::from_secs(3600),
    )?;
    let client = ChannelClient::new("worker-3");
    client.connect_remote("jobs", &server.url(), Some(&worker_3_token))?;
    let claims = client.work_queue("jobs")?.claim(5).await?;
    say!(
        out,
        "worker-3 claimed {} remotely as '{}'",
        claims.len(),
        claims
            .first()
            .map(|c| c
                .message
                .data::<Value>()
                .map(|d| d["task"].as_str().unwrap_or_default().to_owned()))
            .transpose()?
            .unwrap_or_default()
    );
    let _ = client.work_queue("jobs")?.ack(&claims).await?;
    server.shutdown().await?;
    Ok(())
}

/// Runs the tutorial, printing to `out`.
pub async fn run(args: Args, out: &Out) -> Result<()> {
    let store = sssn_examples::open_store(&args.store).await?;
    part_1_acl(store.clone(), out).await?;
    parts_2_to_4_jwt(&args, store, out).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
