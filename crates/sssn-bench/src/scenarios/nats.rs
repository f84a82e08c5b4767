//! `nats`: the JetStream-backed store against raw async-nats. Needs the `sssn-nats` crate
//! and a NATS server with JetStream on 127.0.0.1:4222.

use super::Config;
use crate::report::Outcome;

/// Where the scenario expects NATS.
pub const NATS_ADDR: &str = "127.0.0.1:4222";

/// Runs the scenario.
pub async fn run(_cfg: Config) -> anyhow::Result<Vec<Outcome>> {
    if tokio::net::TcpStream::connect(NATS_ADDR).await.is_err() {
        return Ok(vec![Outcome::skipped(
            "nats",
            format!("NATS is not listening on {NATS_ADDR}"),
        )]);
    }
    Ok(vec![Outcome::skipped(
        "nats",
        "the sssn-nats crate (JetStreamStore) is not in the tree yet",
    )])
}
