//! Writes, on every kind.

use serde::Serialize;
use tracing::Instrument;

use super::kind::Kind;
use super::{Caller, Channel, Who};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelMessage, Content, Payload};
use crate::security::Operation;

impl<K: Kind> Channel<K> {
    /// Writes raw data (stored as `{"data": data}` by the default conversion). Returns the
    /// message id, or on a periodic channel the id of the buffered item.
    pub async fn write<T: Serialize + ?Sized>(
        &self,
        caller: impl Caller,
        data: &T,
    ) -> Result<String> {
        let to_value = || {
            serde_json::to_value(data)
                .map_err(|e| Error::new(ErrorKind::InvalidMessage, format!("data: {e}")))
        };
        let core = &self.core;
        if !core.hooks.default_conversion() || core.raw.is_some() || !self.is_accepting_writes() {
            return self.write_payload(caller, Payload::Data(to_value()?)).await;
        }
        // Fast path (default conversion, no raw buffer): serialise straight into
        // `{"data": …}`, and go to the one-payload write without `write_payload`'s layer.
        let payload = Payload::Content(Content::data(data)?);
        let span = crate::trace::channel_span("write", self.id(), core.kind.as_str());
        self.write_one(caller, payload).instrument(span).await
    }

    /// Writes content as is (typed content).
    pub async fn write_content(&self, caller: impl Caller, content: Content) -> Result<String> {
        self.write_payload(caller, Payload::Content(content)).await
    }

    /// Direct write of a complete message. Its `sender_id` must be the caller's id (an
    /// empty one is filled in): nobody can write in another's name.
    pub async fn write_message(
        &self,
        caller: impl Caller,
        message: ChannelMessage,
    ) -> Result<String> {
        self.write_payload(caller, Payload::Message(message)).await
    }

    /// Writes one payload (see [`Payload`]).
    pub async fn write_payload(&self, caller: impl Caller, payload: Payload) -> Result<String> {
        if self.core.raw.is_some() {
            // A periodic channel buffers what is written: the batch path does that.
            let mut ids = self.write_batch(caller, vec![payload]).await?;
            return Ok(ids.pop().unwrap_or_default());
        }
        let span = crate::trace::channel_span("write", self.id(), self.core.kind.as_str());
        self.write_one(caller, payload).instrument(span).await
    }

    /// [`write_batch_in`](Self::write_batch_in) of one payload on a channel without a raw
    /// buffer, with the same checks and outcomes, minus the vectors a batch needs.
    async fn write_one(&self, caller: impl Caller, payload: Payload) -> Result<String> {
        let core = &self.core;
        let caller = Who::of(&caller);
        if let Err(e) = core
            .check_accepting()
            .and_then(|()| core.authorize(&caller, Operation::Write))
        {
            return Err(e.with_rejected(payload));
        }
        let prepared = if core.hooks.plain_writes() {
            core.prepare_plain(caller.id(), payload)?
        } else {
            core.prepare(caller.id(), payload, true).await?
        };
        let Some(message) = prepared else {
            return Ok(String::new());
        };
        let entry = core.append_one(message).await?;
        Ok(entry.message.id.clone())
    }

    /// Writes several payloads in one store append. Returns one id per payload (`""` where
    /// the conversion dropped the item). All or nothing: a bad payload fails the batch, and
    /// a refused batch hands every payload back ([`Error::into_rejected_all`]).
    pub async fn write_batch(
        &self,
        caller: impl Caller,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>> {
        let span = crate::trace::channel_span("write", self.id(), self.core.kind.as_str());
        self.write_batch_in(caller, payloads).instrument(span).await
    }

    async fn write_batch_in(
        &self,
        caller: impl Caller,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>> {
        let core = &self.core;
        let caller = Who::of(&caller);
        if let Err(e) = core.check_accepting() {
            return Err(e.with_rejected_all(payloads));
        }
        if let Err(e) = core.authorize(&caller, Operation::Write) {
            return Err(e.with_rejected_all(payloads));
        }
        if let Some(raw) = &core.raw {
            // Checked before buffering, so a refused write is refused now, not dropped later.
            if let Err(e) = payloads
                .iter()
                .try_for_each(|p| core.check_sender(caller.id(), p))
            {
                return Err(e.with_rejected_all(payloads));
            }
            return raw.push(self.id(), caller.id(), payloads).await;
        }
        let mut messages = Vec::with_capacity(payloads.len());
        let mut slots = Vec::with_capacity(payloads.len());
        for payload in payloads {
            match core.prepare(caller.id(), payload, true).await? {
                Some(m) => {
                    slots.push(Some(messages.len()));
                    messages.push(m);
                }
                None => slots.push(None),
            }
        }
        let entries = core.append(messages).await?;
        Ok(slots
            .into_iter()
            .map(|s| s.map_or_else(String::new, |i| entries[i].message.id.clone()))
            .collect())
    }
}
