//! Tutorial 1 · First Channel (sssn 0.0.1's `tutorials/01-first-channel.md`): a
//! passthrough channel, a write, reads with per-reader cursors.
//!
//! ```text
//! cargo run --example tutorial_01_first_channel -- [--store URL]
//! ```
//!
//! Prints what the Python prints. Steps 1–4 run on one channel, in order, so step 4's
//! readers see the five messages written so far: the Python prints `5 5` there, although
//! its comment says `3, 3`. The complete program runs on a channel of its own.

use clap::Parser;
use serde_json::json;
use sssn::Result;
use sssn::channel::PassthroughChannel;
use sssn_examples::{Out, py_data, say};

/// Command-line options.
#[derive(Parser)]
#[command(
    about = "Tutorial 1: a passthrough channel, a write, and reads with independent cursors."
)]
pub struct Args {
    /// Where the channels keep their data: memory, sqlite:PATH or nats://HOST:PORT.
    #[arg(long, default_value = "memory")]
    pub store: String,
}

/// Runs the tutorial, printing to `out`.
pub async fn run(args: Args, out: &Out) -> Result<()> {
    let store = sssn_examples::open_store(&args.store).await?;

    // Step 1 — create and start a channel.
    let channel = PassthroughChannel::new("notes")
        .name("Notes")
        .description("A simple note-taking channel")
        .store(store.clone())
        .build();
    channel.start().await?;

    // Step 2 — write a message.
    let msg_id = channel
        .write("tutorial-user", &json!({"note": "Hello, SSSN!"}))
        .await?;
    say!(out, "Wrote message: {msg_id}");

    // Step 3 — read it; the cursor advances.
    let msgs = channel.read("tutorial-user", 10).await?;
    say!(out, "Read {} message(s)", msgs.len());
    for msg in &msgs {
        say!(out, "  {}: {}", msg.sender_id, py_data(&msg.content));
    }
    let msgs2 = channel.read("tutorial-user", 10).await?;
    say!(out, "Second read: {} message(s)", msgs2.len());
    channel
        .write("tutorial-user", &json!({"note": "Second note"}))
        .await?;
    let msgs3 = channel.read("tutorial-user", 10).await?;
    say!(out, "Third read: {} message(s)", msgs3.len());

    // Step 4 — multiple independent readers.
    for text in ["first", "second", "third"] {
        channel.write("system-a", &text).await?;
    }
    let msgs_a = channel.read("reader-a", 10).await?;
    let msgs_b = channel.read("reader-b", 10).await?;
    say!(out, "{} {}", msgs_a.len(), msgs_b.len());
    channel.stop().await;

    // The complete program.
    let channel = PassthroughChannel::new("notes-complete")
        .name("Notes")
        .store(store)
        .build();
    channel.start().await?;
    channel
        .write("alice", &json!({"text": "Meeting at 3pm"}))
        .await?;
    channel.write("bob", &json!({"text": "Confirmed"})).await?;
    channel
        .write("alice", &json!({"text": "See you then"}))
        .await?;
    let msgs_alice = channel.read("alice", 10).await?;
    let msgs_bob = channel.read("bob", 10).await?;
    let msgs_carol = channel.read("carol", 10).await?;
    say!(out, "Alice sees {} messages", msgs_alice.len());
    say!(out, "Bob sees   {}   messages", msgs_bob.len());
    say!(out, "Carol sees {} messages", msgs_carol.len());
    channel.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sssn_examples::init_logging();
    sssn_examples::exit_code(run(Args::parse(), &Out::stdout()).await)
}
