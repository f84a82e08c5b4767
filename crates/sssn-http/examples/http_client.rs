//! The Rust client of `docs/http-api.md` ("Clients", "Rust"), which the doc's walkthrough
//! runs against the server it started. The code between the `walkthrough` markers is the
//! doc's snippet; `.ci/walkthrough` checks that the two are the same.
//!
//! ```text
//! cargo run -q -p sssn-http --example http_client -- http://127.0.0.1:8000 "$W"
//! ```

use std::time::Duration;

use sssn::ChannelClient;
use sssn_http::ConnectRemote;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(token)) = (args.next(), args.next()) else {
        return Err("usage: http_client SERVER_URL TOKEN (a write token)".into());
    };
    // walkthrough:start
    let client = ChannelClient::new("worker-1");
    client.connect_remote("jobs", &format!("{server}/channels/jobs"), Some(&token))?;
    client.connect_remote("events", &format!("{server}/channels/events"), Some(&token))?;

    let jobs = client.work_queue("jobs")?;
    jobs.write(&serde_json::json!({"image": "c.png"})).await?;
    for claim in jobs.claim(10).await? {
        println!("claimed {}", claim.message.content);
        jobs.ack(&claim).await?.into_result()?; // a stale ack (lease ran out) is an error
    }

    let events = client.broadcast("events")?;
    let mut sub = events.subscribe().await?; // SSE; reconnects with Last-Event-ID
    events
        .write(&serde_json::json!({"temperature": 21.5}))
        .await?;
    let entry = tokio::time::timeout(Duration::from_secs(10), sub.next()).await?;
    let entry = entry.ok_or("the event stream ended")?;
    println!("event {}: {}", entry.seq, entry.message.content);
    // walkthrough:end
    Ok(())
}
