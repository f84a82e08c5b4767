//! A remote subscription: the background task that reads the channel's event stream
//! (SSE) and reconnects with `Last-Event-ID`.

use super::*;

/// The background task behind a remote subscription.
pub(super) struct Pump {
    pub(super) inner: Arc<Inner>,
    pub(super) auth: HeaderValue,
    /// The last sequence delivered (or the one delivery starts after).
    pub(super) last: Option<Seq>,
    pub(super) tx: mpsc::Sender<Result<Entry, RecvError>>,
    pub(super) cancel: CancellationToken,
}

/// Why one connection's stream ended.
enum Ended {
    /// The subscriber is gone: stop.
    Stop,
    /// The connection ended or went silent: reconnect.
    Reconnect,
}

impl Pump {
    pub(super) async fn run(mut self, mut response: reqwest::Response) {
        const FIRST_BACKOFF: Duration = Duration::from_millis(50);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let before = self.last;
            if let Ended::Stop = self.stream(response).await {
                return;
            }
            if self.last != before {
                backoff = FIRST_BACKOFF; // that connection delivered: the next may too
            }
            loop {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(self.inner.backoff_max);
                match self.inner.open_events(&self.auth, self.last).await {
                    Ok(r) => {
                        response = r;
                        break;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Unauthenticated
                                | ErrorKind::PermissionDenied
                                | ErrorKind::NotFound
                                | ErrorKind::InvalidArgument
                                | ErrorKind::UnsupportedOperation
                        ) =>
                    {
                        tracing::warn!(channel = %self.inner.channel_id, error = %e, "event stream refused; subscription closed");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(channel = %self.inner.channel_id, error = %e, "event stream reconnect failed; retrying");
                    }
                }
            }
        }
    }

    async fn stream(&mut self, response: reqwest::Response) -> Ended {
        let mut parser = SseParser::new();
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::select! {
                () = self.cancel.cancelled() => return Ended::Stop,
                () = self.tx.closed() => return Ended::Stop,
                r = tokio::time::timeout(self.inner.idle_timeout, body.next()) => r,
            };
            let bytes = match next {
                Ok(Some(Ok(bytes))) => bytes,
                Ok(Some(Err(e))) => {
                    tracing::debug!(channel = %self.inner.channel_id, error = %e, "event stream broke; reconnecting");
                    return Ended::Reconnect;
                }
                Ok(None) | Err(_) => return Ended::Reconnect,
            };
            for event in parser.push(&bytes) {
                let Some(seq) = event.id.as_deref().and_then(|id| id.parse::<Seq>().ok()) else {
                    continue;
                };
                match event.event.as_deref() {
                    Some("ready") => self.last = Some(seq),
                    Some("gap") => {
                        if self.last.is_some_and(|last| seq <= last) {
                            continue;
                        }
                        self.last = Some(seq);
                        let Ok(gap) = serde_json::from_str::<wire::GapEvent>(&event.data) else {
                            continue;
                        };
                        let lost = RecvError::Gap {
                            from: gap.from,
                            to: gap.to,
                        };
                        let sent = tokio::select! {
                            () = self.cancel.cancelled() => return Ended::Stop,
                            r = self.tx.send(Err(lost)) => r,
                        };
                        if sent.is_err() {
                            return Ended::Stop;
                        }
                    }
                    None | Some("message") => {
                        if self.last.is_some_and(|last| seq <= last) {
                            continue; // already delivered before a reconnect
                        }
                        self.last = Some(seq);
                        let message = match ChannelMessage::from_json(&event.data) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(channel = %self.inner.channel_id, seq, error = %e, "undecodable event skipped");
                                continue;
                            }
                        };
                        let entry = Entry {
                            seq,
                            message: Arc::new(message),
                        };
                        let sent = tokio::select! {
                            () = self.cancel.cancelled() => return Ended::Stop,
                            r = self.tx.send(Ok(entry)) => r,
                        };
                        if sent.is_err() {
                            return Ended::Stop;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }
}
