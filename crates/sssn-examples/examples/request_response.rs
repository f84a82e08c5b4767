//! Request/response over two channels (sssn 0.0.1's `examples/request-response.md`): a
//! compute service adds numbers.
//!
//! Prints what the Python prints, and then how many of the concurrent requests got their
//! own answer. Replies go to a mailbox addressed to the requester (v1 used a passthrough
//! channel that every requester polled, so concurrent requests could take each other's
//! replies, D24); `Requester` routes them by correlation id.
//!
//! ```text
//! cargo run --release --example request_response -- [--store URL]
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde_json::{Value, json};
use sssn::channel::{MailboxChannel, PassthroughChannel};
use sssn::request::{Requester, reply};
use sssn::store::Entry;
use sssn::{ChannelClient, ErrorKind, Network, Result, System, SystemContext, SystemSpec};
use sssn_examples::{Out, say};

/// Command-line options.
#[derive(Parser)]
#[command(about = "Request/response over two channels: a compute service adds numbers.")]
pub struct Args {
    /// Where channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

/// Answers `{"a": x, "b": y}` with `{"result": x + y}`.
struct ComputeService;

#[async_trait]
impl System for ComputeService {
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        ctx.subscribe("compute-request").await
    }

    async fn on_message(&mut self, ctx: &mut SystemContext, _: &str, entry: Entry) -> Result<()> {
        let req: Value = entry.message.data()?;
        let sum = req["a"].as_i64().unwrap_or(0) + req["b"].as_i64().unwrap_or(0);
        reply(ctx.client(), &entry.message, &json!({ "result": sum })).await?;
        Ok(())
    }
}

/// Runs the demo; returns the answer to 7 + 35 and how many of the 10 concurrent requests
/// were answered correctly.
pub async fn run(args: Args, out: &Out) -> Result<(i64, usize)> {
    let mut net = Network::new("compute").with_store(sssn_examples::open_store(&args.store).await?);
    let requests = net.add_channel(PassthroughChannel::new("compute-request").build())?;
    let responses = net.add_channel(MailboxChannel::new("compute-response").build())?;
    net.add_system(
        SystemSpec::new("compute-service")
            .tick_rate(0.0)
            .reads(["compute-request"])
            .writes(["compute-response"]),
        ComputeService,
    )?;
    let running = net.start().await?;

    let client = ChannelClient::new("client-a");
    client.connect("compute-request", requests);
    client.connect("compute-response", responses);
    let requester = Arc::new(Requester::new(&client, "compute-request", "compute-response").await?);

    let first = match requester
        .request(&json!({"a": 7, "b": 35}), Duration::from_secs(5))
        .await
    {
        Ok(answer) => {
            let result: Value = answer.data()?;
            let sum = result["result"].as_i64().unwrap_or_default();
            say!(out, "7 + 35 = {sum}");
            sum
        }
        Err(e) if e.kind() == ErrorKind::Timeout => {
            say!(out, "Request timed out");
            running.stop().await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };

    // Ten concurrent requests from the same sender: each gets its own answer.
    let mut calls = Vec::new();
    for i in 0..10 {
        let requester = requester.clone();
        calls.push(tokio::spawn(async move {
            let answer = requester
                .request(&json!({"a": i, "b": i * 2}), Duration::from_secs(5))
                .await?;
            let result: Value = answer.data()?;
            Ok::<_, sssn::Error>((i, result["result"].as_i64().unwrap_or_default()))
        }));
    }
    let mut ok = 0;
    for call in calls {
        let (i, sum) = call.await.expect("request task")?;
        say!(out, "{i} + {} = {sum}", i * 2);
        if sum == i * 3 {
            ok += 1;
        }
    }
    say!(out, "{ok}/10 concurrent requests answered");
    running.stop().await?;
    Ok((first, ok))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
