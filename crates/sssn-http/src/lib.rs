//! sssn channels over HTTP: a server, a remote client, and server push.
//!
//! * [`Server`] hosts channels with sssn 0.0.1's routes and JSON shapes, so v1 clients
//!   work unchanged (`GET`/`PUT /channels/{id}`, `POST …/acknowledge`, `POST …/nack`,
//!   `GET …/info`), plus batch writes and claims, lease extension, nack with delay,
//!   rejection and dead letters, Server-Sent Events (`GET …/events`), stats, health,
//!   Prometheus metrics and an OpenAPI document. See `docs/http-api.md` in the
//!   repository for the API with curl examples.
//! * [`RemoteChannel`] implements [`sssn::ChannelEndpoint`] over the [`stream`] transport
//!   (the routes as frames on one WebSocket, many calls in flight) when the server offers
//!   it, and over keep-alive HTTP otherwise, so a
//!   [`sssn::ChannelClient`] uses a channel on another machine exactly like a local one
//!   ([`ConnectRemote::connect_remote`]); its subscriptions follow the event stream and
//!   resume after a dropped connection without gaps or duplicates.
//! * [`ClientConfig`] wires a [`sssn::ChannelClient`] from a TOML file: remote channels
//!   (tokens inline or from the environment), channels the program passes in, channels
//!   declared like `sssn serve`'s (v1's `connect_from_config`,
//!   [`ConnectFromConfig::connect_from_config`]).
//! * [`Publish`] serves a network's public channels in one call (v1's `publish`), with
//!   interactive API docs (Swagger UI, embedded) at `/docs`.
//! * [`api`] is the one route table: the router, the OpenAPI document, the remote
//!   client's paths and the `sssn` command's client subcommands are built from it.
//! * [`error`] holds the single mapping between [`sssn::ErrorKind`] and HTTP statuses.

pub mod api;
pub mod client_config;
mod console;
pub mod error;
pub mod openapi;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod publish;
pub mod remote;
pub mod server;
pub mod sse;
pub mod stream;
mod trace_header;
pub mod wire;

pub use client_config::{ClientConfig, ConnectFromConfig, Wired};
pub use error::ApiError;
pub use publish::{Publish, PublishedNetwork};
pub use remote::{ConnectRemote, RemoteChannel, connect_remote, shared_client};
pub use server::{Server, ServerBuilder, ServerHandle};
pub use stream::Transport;
