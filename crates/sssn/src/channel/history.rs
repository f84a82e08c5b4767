//! History queries (v1's `get`, `get_range`, `get_latest`) on every kind: reads of stored
//! messages by id, by arrival time and the newest N, which move no cursor and take no claim.

use std::sync::Arc;

use super::kind::Kind;
use super::{Caller, Channel, Who};
use crate::error::Result;
use crate::message::ChannelMessage;
use crate::security::Operation;
use crate::store::{Entry, History};

impl<K: Kind> Channel<K> {
    /// Runs a history query. Needs read rights, as a shared read does; a mailbox shows
    /// each reader only its own messages and those addressed to nobody.
    pub async fn history(&self, caller: impl Caller, query: &History) -> Result<Vec<Entry>> {
        let core = &self.core;
        let caller = Who::of(&caller);
        core.authorize(&caller, Operation::Read)?;
        let log = core.log()?;
        query
            .run(log.as_ref(), &core.read_filter(caller.id()))
            .await
    }

    /// The stored message with this id, if any (v1's `get`).
    pub async fn get_message(
        &self,
        caller: impl Caller,
        id: &str,
    ) -> Result<Option<Arc<ChannelMessage>>> {
        let found = self.history(caller, &History::Id(id.to_owned())).await?;
        Ok(found.into_iter().next().map(|e| e.message))
    }

    /// Up to `limit` messages that arrived between `start` and `end` (epoch seconds, both
    /// inclusive), oldest first (v1's `get_range`).
    pub async fn get_range(
        &self,
        caller: impl Caller,
        start: f64,
        end: f64,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        let query = History::Between { start, end, limit };
        Ok(messages(self.history(caller, &query).await?))
    }

    /// The newest `limit` messages, newest first (v1's `get_latest`).
    pub async fn get_latest(
        &self,
        caller: impl Caller,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        let query = History::Latest { limit };
        Ok(messages(self.history(caller, &query).await?))
    }
}

fn messages(entries: Vec<Entry>) -> Vec<Arc<ChannelMessage>> {
    entries.into_iter().map(|e| e.message).collect()
}
