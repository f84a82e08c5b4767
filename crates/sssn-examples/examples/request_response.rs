//! Request/response over two channels: a compute service adds numbers.
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
use sssn::{ChannelClient, Network, Result, System, SystemContext, SystemSpec};

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
pub async fn run(args: Args) -> Result<(i64, usize)> {
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

    let answer = requester
        .request(&json!({"a": 7, "b": 35}), Duration::from_secs(5))
        .await?;
    let result: Value = answer.data()?;
    let first = result["result"].as_i64().unwrap_or_default();
    println!("7 + 35 = {first}");

    // Ten concurrent requests from the same sender: each gets its own answer.
    let mut calls = Vec::new();
    for i in 0..10 {
        let requester = requester.clone();
        calls.push(tokio::spawn(async move {
            let answer = requester
                .request(&json!({"a": i, "b": i * 10}), Duration::from_secs(5))
                .await?;
            let result: Value = answer.data()?;
            Ok::<_, sssn::Error>((i, result["result"].as_i64().unwrap_or_default()))
        }));
    }
    let mut ok = 0;
    for call in calls {
        let (i, sum) = call.await.expect("request task")?;
        println!("{i} + {} = {sum}", i * 10);
        if sum == i * 11 {
            ok += 1;
        }
    }
    println!("{ok}/10 concurrent requests answered");
    running.stop().await?;
    Ok((first, ok))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse()).await)
}
