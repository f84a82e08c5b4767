//! Shared (cursor) reads, on kinds that have them; v1's combined `read` on every kind.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::kind::{Kind, SharedReads};
use super::{Caller, Channel, ReadOptions, Who};
use crate::error::Result;
use crate::message::ChannelMessage;
use crate::security::Operation;
use crate::store::{Entry, ReadFrom, Seq};

impl<K: SharedReads> Channel<K> {
    /// Shared read of up to `limit` messages from the caller's cursor, which advances.
    pub async fn read(
        &self,
        caller: impl Caller,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_from(caller, ReadFrom::Cursor, limit).await
    }

    /// Shared read starting after the message `after` (moves the caller's cursor there).
    pub async fn read_after(
        &self,
        caller: impl Caller,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        self.read_from(caller, ReadFrom::AfterId(after.to_owned()), limit)
            .await
    }

    /// Up to `limit` messages after sequence `after`, with their sequences, without moving
    /// any cursor (catch-up, browsing). Needs read rights.
    pub async fn entries_after(
        &self,
        caller: impl Caller,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let core = &self.core;
        core.require_shared_reads()?;
        let caller = Who::of(&caller);
        core.authorize(&caller, Operation::Read)?;
        let filter = core.read_filter(caller.id());
        let mut out = core.log()?.range(after, limit).await?;
        out.retain(|e| filter.matches(&e.message));
        Ok(out)
    }
}

impl<K: Kind> Channel<K> {
    /// v1's `read(reader, limit, exclusive, after)`: a shared read, or a claim when
    /// `exclusive` (claims are returned as plain messages). Each half needs its kind's
    /// capability, checked at run time.
    pub async fn read_with(
        &self,
        caller: impl Caller,
        options: ReadOptions,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        if options.exclusive {
            let claimed = self.claim_any(caller, options.limit).await?;
            return Ok(claimed.into_iter().map(|c| c.message).collect());
        }
        let from = options.after.map_or(ReadFrom::Cursor, ReadFrom::AfterId);
        self.read_from(caller, from, options.limit).await
    }

    pub(crate) async fn read_from(
        &self,
        caller: impl Caller,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<Arc<ChannelMessage>>> {
        let core = &self.core;
        core.require_shared_reads()?;
        let caller = Who::of(&caller);
        core.authorize(&caller, Operation::Read)?;
        let entries = core
            .log()?
            .read(caller.id(), from, limit, &core.read_filter(caller.id()))
            .await?;
        core.counters
            .reads
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(entries.into_iter().map(|e| e.message).collect())
    }
}
