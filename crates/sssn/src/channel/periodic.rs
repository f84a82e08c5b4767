//! [`PeriodicChannel`]: a channel with its own loop that pulls a source every period.
//!
//! Each cycle: `pull` the [`Source`] (its items join the raw buffer), then convert every
//! buffered item (the `convert` hook; default `{"data": …}`) and append the results in one
//! batch. Writes from outside are buffered too and processed in the next cycle; when the
//! buffer holds `max_raw_buffer_size` items, writes are refused with
//! [`ErrorKind::Backpressure`](crate::ErrorKind::Backpressure) and the data is handed back.
//! A failing pull or conversion is reported to `on_error` and the loop goes on (v1's loop
//! died silently, defect D25).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelKind, Payload};

/// Where a periodic channel's data comes from.
#[async_trait]
pub trait Source: Send + 'static {
    /// Fetches new raw items; called once per period, the first time at start.
    async fn pull(&mut self) -> Result<Vec<Payload>>;
}

struct FnSource<F>(F);

#[async_trait]
impl<F, Fut> Source for FnSource<F>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Payload>>> + Send + 'static,
{
    async fn pull(&mut self) -> Result<Vec<Payload>> {
        (self.0)().await
    }
}

/// A [`Source`] from a closure returning a future.
pub fn source_fn<F, Fut>(f: F) -> impl Source
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Payload>>> + Send + 'static,
{
    FnSource(f)
}

/// A channel with its own loop: every `period` it pulls a [`Source`] (if it has one) and
/// converts what it buffered. Besides the loop it offers what a passthrough offers.
#[derive(Debug, Clone, Copy)]
pub struct Periodic;

kind!(
    Periodic,
    ChannelKind::Periodic,
    SharedReads,
    Claims,
    Subscriptions,
    PullLoop
);

/// A periodic channel handle.
pub type PeriodicChannel = Channel<Periodic>;

/// v1's name for [`PeriodicChannel`].
pub type PeriodicSourceChannel = PeriodicChannel;

impl Channel<Periodic> {
    /// A builder for a periodic channel with id `id` pulling `source`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>, source: impl Source) -> ChannelBuilder<Periodic> {
        ChannelBuilder::typed(id).source(source)
    }

    /// A builder for a periodic channel with no source: it buffers what is written and
    /// converts it once per period.
    pub fn buffered(id: impl Into<String>) -> ChannelBuilder<Periodic> {
        ChannelBuilder::typed(id)
    }
}

struct RawItem {
    sender: String,
    payload: Payload,
}

/// The raw buffer and source of a periodic channel.
pub(crate) struct RawBuffer {
    items: Mutex<VecDeque<RawItem>>,
    max: usize,
    source: tokio::sync::Mutex<Option<Box<dyn Source>>>,
    has_source: bool,
}

impl RawBuffer {
    pub(crate) fn new(max: usize, source: Option<Box<dyn Source>>) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            max,
            has_source: source.is_some(),
            source: tokio::sync::Mutex::new(source),
        }
    }

    pub(crate) fn has_source(&self) -> bool {
        self.has_source
    }

    pub(crate) fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buffers payloads; returns their item ids. All or nothing.
    pub(crate) fn push(
        &self,
        channel_id: &str,
        sender: &str,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() + payloads.len() > self.max {
            let err = Error::new(
                ErrorKind::Backpressure,
                format!(
                    "Channel '{channel_id}' raw buffer full ({} items). Producer is faster than the ingestion pipeline. Slow down writes or increase max_raw_buffer_size.",
                    self.max
                ),
            );
            return Err(err.with_rejected_all(payloads));
        }
        let now = crate::clock::now_secs();
        Ok(payloads
            .into_iter()
            .map(|payload| {
                items.push_back(RawItem {
                    sender: sender.to_owned(),
                    payload,
                });
                format!("{now:.7}_{:08x}", rand::random::<u32>())
            })
            .collect())
    }

    fn take_all(&self) -> VecDeque<RawItem> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Channel {
    /// One pull: fetch from the source into the raw buffer.
    async fn pull_once(&self) {
        let Some(raw) = &self.core.raw else { return };
        let mut source = raw.source.lock().await;
        let Some(source) = source.as_mut() else {
            return;
        };
        let pulled = AssertUnwindSafe(source.pull())
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Internal,
                    "the source's pull panicked",
                ))
            });
        match pulled {
            Ok(items) if !items.is_empty() => {
                if let Err(e) = raw.push(self.id(), self.id(), items) {
                    self.core.error_hook("pull", &e);
                }
            }
            Ok(_) => {}
            Err(e) => self.core.error_hook("pull", &e),
        }
    }

    /// Converts and stores everything in the raw buffer.
    pub(crate) async fn process_buffer(&self) {
        let Some(raw) = &self.core.raw else { return };
        let items = raw.take_all();
        if items.is_empty() {
            return;
        }
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            match self.core.prepare(&item.sender, item.payload) {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => {}
                Err(e) => self.core.error_hook("process", &e),
            }
        }
        if let Err(e) = self.core.append(messages).await {
            self.core.error_hook("process", &e);
        }
    }

    /// The pull loop: pull, process, wait for the next period (drift-compensated).
    pub(crate) async fn pull_loop(self, cancel: CancellationToken) {
        let period = std::time::Duration::from_secs_f64(self.core.info.period.max(0.001));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            // Cancelling a pull loses nothing; processing runs to completion so items taken
            // from the buffer are always stored.
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.pull_once() => {}
            }
            // User conversion code runs here: a panic must not end the loop (v1 defect D25).
            if AssertUnwindSafe(self.process_buffer())
                .catch_unwind()
                .await
                .is_err()
            {
                self.core.error_hook(
                    "process",
                    &Error::new(ErrorKind::Internal, "conversion panicked"),
                );
            }
        }
    }
}
