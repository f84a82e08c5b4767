//! The remote client gives the same operations, semantics and error kinds as a local
//! channel, over plain HTTP (one request per operation). `remote_stream.rs` runs the same
//! cases over the stream transport.

mod common;

const TRANSPORT: sssn_http::Transport = sssn_http::Transport::Http;

include!("common/remote_cases.rs");
