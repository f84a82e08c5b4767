//! Host operations (clear, evict, remove) and the authorised identity snapshot, on every
//! kind.

use super::kind::Kind;
use super::{Caller, Channel, Who};
use crate::error::Result;
use crate::message::{ChannelInfo, ChannelMessage};

/// Messages `clear_where` looks at per store call.
const CLEAR_PAGE: usize = 1000;
use crate::security::Operation;

impl<K: Kind> Channel<K> {
    /// Identity snapshot for `caller`, who needs read rights (what a remote client sees).
    pub fn info_for(&self, caller: impl Caller) -> Result<ChannelInfo> {
        self.core.authorize(&Who::of(&caller), Operation::Read)?;
        Ok(self.info())
    }

    /// Removes every message (admin). Cursors stay valid.
    pub async fn clear(&self, caller: impl Caller) -> Result<usize> {
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        self.core.log()?.clear().await
    }

    /// Removes the messages `predicate` matches (admin; v1's `clear(filter)`); the others
    /// keep their order and every cursor stays valid. Returns how many were removed. It
    /// looks at every stored message (in pages), as a predicate must.
    pub async fn clear_where(
        &self,
        caller: impl Caller,
        predicate: impl Fn(&ChannelMessage) -> bool,
    ) -> Result<usize> {
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        let log = self.core.log()?;
        let (mut after, mut removed) = (0, 0);
        loop {
            let page = log.range(after, CLEAR_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(removed);
            };
            after = last.seq;
            let ids: Vec<&str> = page
                .iter()
                .filter(|e| predicate(&e.message))
                .map(|e| e.message.id.as_str())
                .collect();
            if !ids.is_empty() {
                removed += log.remove(&ids).await?;
            }
        }
    }

    /// Removes messages stored before `before` (epoch seconds), then all but the newest
    /// `max_count` (admin).
    pub async fn evict(
        &self,
        caller: impl Caller,
        before: Option<f64>,
        max_count: Option<usize>,
    ) -> Result<usize> {
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        self.core.log()?.evict(before, max_count).await
    }

    /// Removes messages by id (admin).
    pub async fn remove(
        &self,
        caller: impl Caller,
        ids: &(impl super::MessageIds + ?Sized),
    ) -> Result<usize> {
        self.core.authorize(&Who::of(&caller), Operation::Admin)?;
        self.core.log()?.remove(&ids.message_ids()).await
    }
}
