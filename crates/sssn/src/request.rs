//! Request/response over channels.
//!
//! A [`Requester`] subscribes once to a response channel and routes each reply to the
//! request waiting for its `correlation_id`, so any number of concurrent requests from one
//! sender each get their own answer (v1 polled a shared cursor and lost other requests'
//! replies, defect D24). Replies are pushed, not polled. A responder answers with
//! [`reply`] (or [`reply_content`]), which copies the correlation id, writes to the
//! request's `reply_to` channel and addresses the requester (so a mailbox works as the
//! response channel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::channel::RecvError;
use crate::client::ChannelClient;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelMessage, Content, new_message_id};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Arc<ChannelMessage>>>>>;

/// Sends requests on one channel and awaits replies on another.
pub struct Requester {
    client: ChannelClient,
    request_channel: String,
    response_channel: String,
    pending: Pending,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("request_channel", &self.request_channel)
            .field("response_channel", &self.response_channel)
            .finish_non_exhaustive()
    }
}

impl Requester {
    /// Subscribes to `response_channel` (through `client`) and routes replies from then on.
    pub async fn new(
        client: &ChannelClient,
        request_channel: impl Into<String>,
        response_channel: impl Into<String>,
    ) -> Result<Self> {
        let response_channel = response_channel.into();
        let mut sub = client.channel(&response_channel)?.subscribe().await?;
        let pending: Pending = Arc::default();
        let cancel = CancellationToken::new();
        let (routes, stop) = (pending.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    r = sub.recv() => r,
                };
                match next {
                    Ok(entry) => {
                        let Some(cid) = entry.message.correlation_id.as_deref() else {
                            continue;
                        };
                        let waiter = routes.lock().unwrap_or_else(|e| e.into_inner()).remove(cid);
                        if let Some(tx) = waiter {
                            let _ = tx.send(entry.message);
                        }
                    }
                    Err(RecvError::Closed) => return,
                    // A lag catches up from the store; a reply lost to a gap times out.
                    Err(_) => {}
                }
            }
        });
        Ok(Self {
            client: client.clone(),
            request_channel: request_channel.into(),
            response_channel,
            pending,
            cancel,
        })
    }

    /// Sends `data` (as `{"data": …}`) and waits up to `timeout` for the reply.
    pub async fn request<T: Serialize + ?Sized>(
        &self,
        data: &T,
        timeout: Duration,
    ) -> Result<Arc<ChannelMessage>> {
        self.request_content(Content::data(data)?, timeout).await
    }

    /// Sends typed content and waits up to `timeout` for the reply.
    pub async fn request_content(
        &self,
        content: Content,
        timeout: Duration,
    ) -> Result<Arc<ChannelMessage>> {
        let id = new_message_id();
        let message = ChannelMessage::new(self.client.system_id(), content)
            .correlation_id(id.clone())
            .reply_to(self.response_channel.clone());
        let message = ChannelMessage {
            id: id.clone(),
            ..message
        };
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let forget = || {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        };
        let sent = match self.client.channel(&self.request_channel) {
            Ok(requests) => requests.write_message(message).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            forget();
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => {
                forget();
                Err(Error::new(
                    ErrorKind::ShuttingDown,
                    "the response subscription closed",
                ))
            }
            Err(_) => {
                forget();
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no reply on '{}' within {timeout:?}", self.response_channel),
                ))
            }
        }
    }
}

impl Drop for Requester {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Answers `request` with `data` (as `{"data": …}`): same correlation id, written to the
/// request's `reply_to` channel, addressed to the requester.
pub async fn reply<T: Serialize + ?Sized>(
    client: &ChannelClient,
    request: &ChannelMessage,
    data: &T,
) -> Result<String> {
    reply_content(client, request, Content::data(data)?).await
}

/// Answers `request` with typed content.
pub async fn reply_content(
    client: &ChannelClient,
    request: &ChannelMessage,
    content: Content,
) -> Result<String> {
    let channel = request.reply_to.as_deref().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidMessage,
            format!("request '{}' has no reply_to", request.id),
        )
    })?;
    let correlation = request
        .correlation_id
        .clone()
        .unwrap_or_else(|| request.id.clone());
    let message = ChannelMessage::new(client.system_id(), content)
        .correlation_id(correlation)
        .recipient(request.sender_id.clone());
    client.channel(channel)?.write_message(message).await
}

/// v1's `request_via_channel`: one request, one reply, `None` on timeout.
pub async fn request_via_channel<T: Serialize + ?Sized>(
    client: &ChannelClient,
    request_channel: &str,
    response_channel: &str,
    data: &T,
    timeout: Duration,
) -> Result<Option<Arc<ChannelMessage>>> {
    let requester = Requester::new(client, request_channel, response_channel).await?;
    match requester.request(data, timeout).await {
        Ok(reply) => Ok(Some(reply)),
        Err(e) if e.kind() == ErrorKind::Timeout => Ok(None),
        Err(e) => Err(e),
    }
}
