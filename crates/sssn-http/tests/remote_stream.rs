//! The remote client's cases of `remote.rs`, over the stream transport (WebSocket): the
//! same operations, semantics and error kinds as a local channel. `Transport::Stream`
//! makes a call fail rather than fall back to HTTP, so every case really ran on frames.

mod common;

const TRANSPORT: sssn_http::Transport = sssn_http::Transport::Stream;

include!("common/remote_cases.rs");
