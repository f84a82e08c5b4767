//! How one operation travels: over the stream transport when the server offers it, as one
//! HTTP request otherwise; the bodies it sends and the errors its answers become.

use super::*;

pub(super) fn bearer(token: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| invalid("the token contains characters not allowed in a header"))
}

pub(super) fn ids_body(
    ids: &[&str],
    delay: Option<Duration>,
    reason: Option<&str>,
) -> Result<Vec<u8>, Error> {
    let body = IdsRequest {
        message_ids: ids.iter().map(|&id| id.to_owned()).collect(),
        delay_ms: delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        reason: reason.map(str::to_owned),
    };
    serde_json::to_vec(&body).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
}

pub(super) fn transport_error(op: &str, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Remote
    };
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    Error::new(kind, format!("HTTP request '{op}' failed: {text}"))
}

/// The error a non-success response stands for.
pub(super) async fn error_of(op: &str, response: reqwest::Response) -> Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    error_from(op, status.as_u16(), &text)
}

/// The error a non-success status and its body stand for (HTTP and stream answers alike).
pub(crate) fn error_from(op: &str, status: u16, text: &str) -> Error {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => {
            let kind = body
                .kind
                .as_deref()
                .and_then(parse_kind)
                .unwrap_or_else(|| kind_for_status(status));
            Error::new(kind, body.detail)
        }
        Err(_) => Error::new(
            kind_for_status(status),
            format!("HTTP {} during '{op}': {text}", status.as_u16()),
        ),
    }
}

impl Inner {
    /// The method and URL of a channel operation, from the route table.
    pub(super) fn route(&self, op: ChannelOp, query: &[(&str, &str)]) -> (Method, Url) {
        let route = op.route();
        (
            route.verb.into(),
            self.url_for(route.channel_suffix(), query),
        )
    }

    pub(super) fn url_for(&self, suffix: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.url.clone();
        if !suffix.is_empty() {
            let path = format!("{}{suffix}", url.path());
            url.set_path(&path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(super) fn auth(&self, caller: &Principal) -> Result<HeaderValue, Error> {
        match &self.auth {
            Some(h) => Ok(h.clone()),
            None => bearer(&caller.id),
        }
    }

    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        auth: &HeaderValue,
        body: Option<Vec<u8>>,
        op: &str,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, auth.clone())
            .timeout(self.timeout);
        if op == "write" || op == "writeBatch" {
            request = crate::trace_header::outgoing(request);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let response = request.send().await.map_err(|e| transport_error(op, &e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_of(op, response).await)
        }
    }

    /// Calls a channel operation on the stream when the server offers it, over HTTP
    /// otherwise, and decodes its JSON answer.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        op: ChannelOp,
        query: &[(&str, &str)],
        caller: &Principal,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let route = op.route();
        let name = route.operation;
        let auth = self.auth(caller)?;
        let body_len = body.as_ref().map_or(0, Vec::len);
        // A write that continues a trace goes over plain HTTP, where the `traceparent`
        // header travels (stream calls carry no headers).
        let traced = matches!(op, ChannelOp::Write | ChannelOp::WriteBatch)
            && sssn::trace::TraceContext::for_write().is_some();
        let link = if traced {
            None
        } else {
            self.over_stream(&auth, body_len).await?
        };
        let bytes = match link {
            Some(link) => {
                let q = stream::query_string(query);
                let b = body.as_deref().unwrap_or_default();
                let channel = Some(self.channel_id.as_str());
                let mut answer = link.call(name, channel, &q, b, self.timeout).await;
                if matches!(answer, Err(CallError::Gone)) {
                    // The connection had ended before the request left: one new one.
                    answer = match self.over_stream(&auth, body_len).await? {
                        Some(link) => link.call(name, channel, &q, b, self.timeout).await,
                        None => Err(CallError::Gone),
                    };
                }
                match answer {
                    Ok(a) if (200..300).contains(&a.status) => a.body,
                    Ok(a) => {
                        return Err(error_from(
                            name,
                            a.status,
                            &String::from_utf8_lossy(&a.body),
                        ));
                    }
                    Err(CallError::Failed(e)) => return Err(e),
                    Err(CallError::Gone) => self.http_bytes(op, query, &auth, body).await?,
                }
            }
            None => self.http_bytes(op, query, &auth, body).await?,
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Remote,
                format!("unexpected response to '{name}': {e}"),
            )
        })
    }

    /// The stream link to use for a call, or `None` for plain HTTP (the server offers no
    /// stream, HTTP was asked for, the body is large, or opening a stream failed in a way
    /// HTTP may not).
    pub(super) async fn over_stream(
        &self,
        auth: &HeaderValue,
        body_len: usize,
    ) -> Result<Option<Arc<stream::client::Link>>, Error> {
        if self.transport == Transport::Http || body_len >= stream::LARGE_BODY {
            return Ok(None);
        }
        let forced = self.transport == Transport::Stream;
        match self.links.get(&self.server, auth, self.timeout).await {
            Ok(link) => Ok(Some(link)),
            Err(OpenError::Refused(e)) => Err(e),
            Err(OpenError::NotOffered(why)) if forced => Err(Error::new(
                ErrorKind::UnsupportedOperation,
                format!("the server offers no stream transport ({why})"),
            )),
            Err(OpenError::Failed(e)) if forced => Err(e),
            Err(OpenError::NotOffered(_) | OpenError::Failed(_)) => Ok(None),
        }
    }

    /// One request over plain HTTP; the body of a success.
    pub(super) async fn http_bytes(
        &self,
        op: ChannelOp,
        query: &[(&str, &str)],
        auth: &HeaderValue,
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, Error> {
        let (method, url) = self.route(op, query);
        let name = op.route().operation;
        let response = self.send(method, url, auth, body, name).await?;
        response
            .bytes()
            .await
            .map_err(|e| transport_error(name, &e))
    }

    /// Calls a settling operation and reads a [`wire::SettledResponse`].
    pub(super) async fn settle(
        &self,
        op: ChannelOp,
        caller: &Principal,
        body: Option<Vec<u8>>,
    ) -> Result<wire::SettledResponse, Error> {
        self.call(op, &[], caller, body).await
    }

    pub(super) async fn open_events(
        &self,
        auth: &HeaderValue,
        after: Option<Seq>,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self
            .http
            .get(self.route(ChannelOp::Events, &[]).1)
            .header(AUTHORIZATION, auth.clone())
            .header("accept", "text/event-stream");
        if let Some(seq) = after {
            request = request.header("last-event-id", seq.to_string());
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "opening the event stream timed out"))?
            .map_err(|e| transport_error("events", &e))?;
        if response.status() == StatusCode::OK {
            Ok(response)
        } else {
            Err(error_of("events", response).await)
        }
    }
}

/// A payload as it goes on the wire, by batch kind.
pub(super) struct WireItem<'a>(pub(super) &'a Payload, pub(super) PayloadKind);

impl Serialize for WireItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let inner = |s: S| match self.0 {
            Payload::Data(v) => v.serialize(s),
            Payload::Content(c) => c.serialize(s),
            Payload::Message(m) => m.serialize(s),
        };
        if self.1 != PayloadKind::Mixed {
            return inner(s);
        }
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Payload::Data(v) => map.serialize_entry("data", v)?,
            Payload::Content(c) => map.serialize_entry("content", c)?,
            Payload::Message(m) => map.serialize_entry("message", m)?,
        }
        map.end()
    }
}

pub(super) fn kind_of(p: &Payload) -> PayloadKind {
    match p {
        Payload::Data(_) => PayloadKind::Data,
        Payload::Content(_) => PayloadKind::Content,
        Payload::Message(_) => PayloadKind::Message,
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::new(ErrorKind::InvalidMessage, e.to_string()))
}

/// Hands every payload back on the errors where a local channel does.
pub(super) fn with_rejected(e: Error, payloads: Vec<Payload>) -> Error {
    if matches!(
        e.kind(),
        ErrorKind::Backpressure | ErrorKind::ShuttingDown | ErrorKind::PermissionDenied
    ) {
        return e.with_rejected_all(payloads);
    }
    e
}

/// A claim as the client API has it.
pub(super) fn claimed(c: wire::ClaimedMessage) -> Claimed {
    Claimed {
        seq: c.seq,
        message: Arc::new(c.message),
        attempt: c.attempt,
        lease_until_ms: c.lease_until_ms,
    }
}
