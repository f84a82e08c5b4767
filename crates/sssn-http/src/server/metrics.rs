//! `GET /metrics`: Prometheus text exposition rendered from [`Channel::stats`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use sssn::Channel;
use sssn::channel::{ChannelState, ChannelStats};

use super::AppState;

/// Escapes a label value (`\`, `"` and line feeds).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type Getter = fn(&ChannelStats) -> f64;

/// Per-channel series: name, type, help, value.
const SERIES: &[(&str, &str, &str, Getter)] = &[
    (
        "sssn_channel_writes_total",
        "counter",
        "Messages written.",
        |s| s.writes as f64,
    ),
    (
        "sssn_channel_reads_total",
        "counter",
        "Messages returned by shared reads.",
        |s| s.reads as f64,
    ),
    (
        "sssn_channel_claims_total",
        "counter",
        "Messages claimed.",
        |s| s.claims as f64,
    ),
    (
        "sssn_channel_acks_total",
        "counter",
        "Messages acknowledged.",
        |s| s.acks as f64,
    ),
    (
        "sssn_channel_nacks_total",
        "counter",
        "Messages nacked.",
        |s| s.nacks as f64,
    ),
    (
        "sssn_channel_stored",
        "gauge",
        "Messages stored now.",
        |s| s.stored as f64,
    ),
    (
        "sssn_channel_backlog",
        "gauge",
        "Messages waiting to be claimed.",
        |s| s.backlog as f64,
    ),
    (
        "sssn_channel_delayed",
        "gauge",
        "Backlog messages nacked with a delay not yet over.",
        |s| s.delayed as f64,
    ),
    (
        "sssn_channel_in_flight",
        "gauge",
        "Messages held by live claims.",
        |s| s.in_flight as f64,
    ),
    (
        "sssn_channel_dead_lettered",
        "gauge",
        "Dead letters kept.",
        |s| s.dead_lettered as f64,
    ),
    (
        "sssn_channel_head_seq",
        "gauge",
        "Sequence of the newest message.",
        |s| s.head_seq as f64,
    ),
    (
        "sssn_channel_raw_buffered",
        "gauge",
        "Raw items waiting in a periodic channel's buffer.",
        |s| s.raw_buffered as f64,
    ),
    (
        "sssn_channel_oldest_unacked_age_seconds",
        "gauge",
        "Age of the oldest stored message not yet acknowledged.",
        |s| s.oldest_unacked_age_secs.unwrap_or(0.0),
    ),
    (
        "sssn_channel_running",
        "gauge",
        "1 while the channel accepts writes.",
        |s| f64::from(u8::from(s.state == ChannelState::Running)),
    ),
];

/// Renders the metrics of `channels` (those that fail to report are skipped with a log).
pub(super) async fn render(channels: &[&Channel], state: &AppState) -> String {
    let mut stats = Vec::with_capacity(channels.len());
    for channel in channels {
        match channel.stats().await {
            Ok(s) => stats.push(s),
            Err(e) => tracing::warn!(channel = channel.id(), error = %e, "no stats for metrics"),
        }
    }
    let mut out = String::new();
    for (name, kind, help, get) in SERIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &stats {
            let _ = writeln!(
                out,
                "{name}{{channel=\"{}\",kind=\"{}\"}} {}",
                label(&s.id),
                s.kind.as_str(),
                get(s)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sssn_channel_subscriber_lag Messages committed but not yet delivered to a push subscriber.\n# TYPE sssn_channel_subscriber_lag gauge"
    );
    for s in &stats {
        for sub in &s.subscribers {
            let _ = writeln!(
                out,
                "sssn_channel_subscriber_lag{{channel=\"{}\",reader=\"{}\"}} {}",
                label(&s.id),
                label(&sub.reader),
                sub.queue_depth
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sssn_channel_reader_lag Messages written after a shared reader's cursor.\n# TYPE sssn_channel_reader_lag gauge"
    );
    for s in &stats {
        for r in &s.readers {
            let _ = writeln!(
                out,
                "sssn_channel_reader_lag{{channel=\"{}\",reader=\"{}\"}} {}",
                label(&s.id),
                label(&r.reader),
                r.lag
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sssn_http_event_streams Open event streams (SSE).\n# TYPE sssn_http_event_streams gauge\nsssn_http_event_streams {}",
        state.sse_streams.load(Ordering::Relaxed)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
