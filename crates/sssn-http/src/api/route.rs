//! [`Route`]: one entry of the table, with its builder methods.

use std::sync::Arc;

use axum::routing::{MethodFilter, MethodRouter};

use super::*;
use crate::openapi::schema;
use crate::server::AppState;

type Handler = fn(MethodFilter) -> MethodRouter<Arc<AppState>>;

/// One route of the API.
#[derive(Clone, Copy)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The method, typed.
    pub verb: Verb,
    /// Path (axum syntax), with `{id}` for the channel id.
    pub path: &'static str,
    /// The OpenAPI `operationId`.
    pub operation: &'static str,
    /// The channel operation it carries (channel routes).
    pub op: Option<ChannelOp>,
    /// OpenAPI summary.
    pub summary: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// Query and header parameters (the path's `{id}` aside).
    pub params: &'static [Param],
    /// Request body.
    pub body: Option<BodyDoc>,
    /// Success reply.
    pub reply: Reply,
    /// Error statuses.
    pub errors: &'static [Status],
    /// Whether one reply holds at most the server's response byte budget (and then says
    /// so with the `X-Sssn-Truncated` header).
    pub bounded: bool,
    /// Its `sssn` subcommand, if any.
    pub cli: Option<CliCommand>,
    handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl Route {
    pub(super) const fn new(
        verb: Verb,
        path: &'static str,
        operation: &'static str,
        handler: Handler,
    ) -> Self {
        Self {
            method: verb.as_str(),
            verb,
            path,
            operation,
            op: None,
            summary: "",
            auth: Auth::Bearer,
            params: &[],
            body: None,
            reply: Reply::json("OK.", schema::any_object),
            errors: &[],
            bounded: false,
            cli: None,
            handler,
        }
    }
    pub(super) const fn op(mut self, op: ChannelOp) -> Self {
        self.op = Some(op);
        self
    }
    pub(super) const fn summary(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }
    pub(super) const fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    pub(super) const fn params(mut self, params: &'static [Param]) -> Self {
        self.params = params;
        self
    }
    pub(super) const fn body(mut self, body: BodyDoc) -> Self {
        self.body = Some(body);
        self
    }
    pub(super) const fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }
    pub(super) const fn errors(mut self, errors: &'static [Status]) -> Self {
        self.errors = errors;
        self
    }
    pub(super) const fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }
    pub(super) const fn cli(
        mut self,
        name: &'static str,
        about: &'static str,
        args: &'static [CliArg],
    ) -> Self {
        self.cli = Some(CliCommand { name, about, args });
        self
    }

    /// The router entry of this route.
    pub(crate) fn method_router(&self) -> MethodRouter<Arc<AppState>> {
        (self.handler)(self.verb.filter())
    }

    /// The part of the path after `/channels/{id}` (`""`, `/claim`, …); the whole path for
    /// the routes that are not under a channel.
    pub fn channel_suffix(&self) -> &'static str {
        self.path
            .strip_prefix("/channels/{id}")
            .unwrap_or(self.path)
    }

    /// Whether the path names a channel.
    pub fn is_channel_route(&self) -> bool {
        self.path.starts_with("/channels/{id}")
    }
}
