//! [`ChannelView`]: a typed view of a connected channel with the caller bound, what a
//! system gets from `ctx.work_queue("jobs")?`, `ctx.broadcast("results")?`, …

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::ChannelEndpoint;
use crate::channel::kind::{Any, Claims, Kind, SharedReads, Subscriptions};
use crate::channel::{ChannelStats, MessageIds, ReadOptions, Subscription};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelInfo, ChannelMessage, Content, Payload};
use crate::security::Principal;
use crate::store::{Claimed, DeadLetter, Entry, History, Seq, Settle, Settled};

/// A connected channel (local or remote) seen as kind `K`, acting as one caller. Offers
/// the operations of `K`, like the channel handle of that kind, without the caller
/// argument. Cheap to create and to clone.
pub struct ChannelView<K: Kind = Any> {
    endpoint: Arc<dyn ChannelEndpoint>,
    caller: Principal,
    kind: PhantomData<fn() -> K>,
}

impl<K: Kind> Clone for ChannelView<K> {
    fn clone(&self) -> Self {
        Self {
            endpoint: self.endpoint.clone(),
            caller: self.caller.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> std::fmt::Debug for ChannelView<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelView")
            .field("channel", &self.endpoint.channel_id())
            .field("caller", &self.caller.id)
            .field("remote", &self.endpoint.is_remote())
            .finish()
    }
}

impl<K: Kind> ChannelView<K> {
    /// A view of `endpoint` as `caller`. Fails when the endpoint's kind is known and is not
    /// `K`: a wiring mistake shows where the view is taken, not at the first call.
    pub fn new(endpoint: Arc<dyn ChannelEndpoint>, caller: Principal) -> Result<Self> {
        if let (Some(want), Some(have)) = (K::KIND, endpoint.kind())
            && want != have
        {
            return Err(Error::new(
                ErrorKind::UnsupportedOperation,
                format!(
                    "channel '{}' is a {} channel, not a {} channel",
                    endpoint.channel_id(),
                    have.as_str(),
                    want.as_str()
                ),
            ));
        }
        Ok(Self {
            endpoint,
            caller,
            kind: PhantomData,
        })
    }

    /// The channel id.
    pub fn id(&self) -> &str {
        self.endpoint.channel_id()
    }

    /// The identity this view acts as.
    pub fn caller(&self) -> &Principal {
        &self.caller
    }

    /// The endpoint behind the view.
    pub fn endpoint(&self) -> &Arc<dyn ChannelEndpoint> {
        &self.endpoint
    }

    /// Channel identity.
    pub async fn info(&self) -> Result<ChannelInfo> {
        self.endpoint.info(&self.caller).await
    }

    /// Channel health.
    pub async fn stats(&self) -> Result<ChannelStats> {
        self.endpoint.stats(&self.caller).await
    }

    /// Writes raw data (stored as `{"data": …}` by the default conversion; a channel's
    /// `convert` hook sees it as raw data); returns the message id.
    pub async fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<String> {
        let value = serde_json::to_value(data)
            .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("data: {e}")))?;
        self.write_payload(Payload::Data(value)).await
    }

    /// Writes content as is.
    pub async fn write_content(&self, content: Content) -> Result<String> {
        self.write_payload(Payload::Content(content)).await
    }

    /// Direct write of a complete message (its sender must be this caller).
    pub async fn write_message(&self, message: ChannelMessage) -> Result<String> {
        self.write_payload(Payload::Message(message)).await
    }

    /// Writes one payload.
    pub async fn write_payload(&self, payload: Payload) -> Result<String> {
        let mut ids = self.write_batch(vec![payload]).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Writes several payloads at once.
    pub async fn write_batch(&self, payloads: Vec<Payload>) -> Result<Vec<String>> {
        self.endpoint.write_batch(&self.caller, payloads).await
    }

    /// v1 read with all options (a claim when `exclusive`).
    pub async fn read_with(&self, options: ReadOptions) -> Result<Vec<Arc<ChannelMessage>>> {
        self.endpoint.read(&self.caller, options).await
    }

    /// A history query (read rights; moves no cursor).
    pub async fn history(&self, query: &History) -> Result<Vec<Entry>> {
        self.endpoint.history(&self.caller, query).await
    }

    /// The stored message with this id, if any (v1's `get`).
    pub async fn get_message(&self, id: &str) -> Result<Option<Arc<ChannelMessage>>> {
        let found = self.history(&History::Id(id.to_owned())).await?;
        Ok(found.into_iter().next().map(|e| e.message))
    }

    /// Up to `limit` messages that arrived between `start` and `end` (epoch seconds, both
    /// inclusive), oldest first (v1's `get_range`).
    pub async fn get_range(
        &self,
        start: f64,
        end: f64,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        let query = History::Between { start, end, limit };
        Ok(self
            .history(&query)
            .await?
            .into_iter()
            .map(|e| e.message)
            .collect())
    }

    /// The newest `limit` messages, newest first (v1's `get_latest`).
    pub async fn get_latest(&self, limit: usize) -> Result<Vec<Arc<ChannelMessage>>> {
        let query = History::Latest { limit };
        Ok(self
            .history(&query)
            .await?
            .into_iter()
            .map(|e| e.message)
            .collect())
    }

    /// Removes every message (admin).
    pub async fn clear(&self) -> Result<usize> {
        self.endpoint.clear(&self.caller).await
    }

    /// Removes messages stored before `before`, then all but the newest `max_count`
    /// (admin).
    pub async fn evict(&self, before: Option<f64>, max_count: Option<usize>) -> Result<usize> {
        self.endpoint.evict(&self.caller, before, max_count).await
    }

    /// Removes messages by id (admin).
    pub async fn remove(&self, ids: &(impl MessageIds + ?Sized)) -> Result<usize> {
        self.endpoint.remove(&self.caller, &ids.message_ids()).await
    }
}

impl<K: SharedReads> ChannelView<K> {
    /// Shared read of up to `limit` messages from this caller's cursor.
    pub async fn read(&self, limit: usize) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_with(ReadOptions {
            limit,
            ..ReadOptions::default()
        })
        .await
    }

    /// Shared read starting after the message `after` (moves the cursor there).
    pub async fn read_after(&self, after: &str, limit: usize) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_with(ReadOptions {
            limit,
            exclusive: false,
            after: Some(after.to_owned()),
        })
        .await
    }
}

impl<K: Claims> ChannelView<K> {
    /// Claims up to `limit` messages.
    pub async fn claim(&self, limit: usize) -> Result<Vec<Claimed>> {
        let claimed = self.endpoint.claim(&self.caller, limit).await?;
        // A local channel notes its claims itself; a remote one is noted here, so writes
        // made while handling them continue their traces either way (crate::trace).
        if self.endpoint.is_remote() {
            crate::trace::note_claimed(&claimed);
        }
        Ok(claimed)
    }

    async fn settle(&self, ids: &(impl MessageIds + ?Sized), how: Settle) -> Result<Settled> {
        let ids = ids.message_ids();
        let finished = !matches!(how, Settle::Extend);
        let settled = self.endpoint.settle(&self.caller, &ids, how).await?;
        if finished && self.endpoint.is_remote() {
            crate::trace::note_settled(&ids);
        }
        Ok(settled)
    }

    /// Acknowledges claims (ids or the claimed items).
    pub async fn ack(&self, ids: &(impl MessageIds + ?Sized)) -> Result<Settled> {
        self.settle(ids, Settle::Ack).await
    }

    /// Releases claims now.
    pub async fn nack(&self, ids: &(impl MessageIds + ?Sized)) -> Result<Settled> {
        self.settle(ids, Settle::Nack { delay: None }).await
    }

    /// Releases claims, claimable again after `delay`.
    pub async fn nack_after(
        &self,
        ids: &(impl MessageIds + ?Sized),
        delay: Duration,
    ) -> Result<Settled> {
        self.settle(ids, Settle::Nack { delay: Some(delay) }).await
    }

    /// Dead-letters claims with `reason`.
    pub async fn reject(&self, ids: &(impl MessageIds + ?Sized), reason: &str) -> Result<Settled> {
        let reason = reason.to_owned();
        self.settle(ids, Settle::Reject { reason }).await
    }

    /// Renews leases.
    pub async fn extend(&self, ids: &(impl MessageIds + ?Sized)) -> Result<Settled> {
        self.settle(ids, Settle::Extend).await
    }

    /// Dead letters, oldest first (admin).
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.endpoint.dead_letters(&self.caller, limit).await
    }

    /// Puts dead letters back as new messages (admin).
    pub async fn redrive(&self, ids: &(impl MessageIds + ?Sized)) -> Result<usize> {
        self.endpoint
            .redrive(&self.caller, &ids.message_ids())
            .await
    }
}

impl<K: Subscriptions> ChannelView<K> {
    /// Subscribes to new messages.
    pub async fn subscribe(&self) -> Result<Subscription> {
        self.endpoint.subscribe(&self.caller, None).await
    }

    /// Subscribes starting after sequence `after`.
    pub async fn subscribe_after(&self, after: Seq) -> Result<Subscription> {
        self.endpoint.subscribe(&self.caller, Some(after)).await
    }

    /// Ends this caller's subscriptions on the channel.
    pub async fn unsubscribe(&self) {
        self.endpoint.unsubscribe(&self.caller).await;
    }
}
