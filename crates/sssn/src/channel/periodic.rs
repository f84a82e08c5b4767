//! [`PeriodicChannel`]: a channel with its own loop that pulls a source every period.
//!
//! Each cycle: `pull` the [`Source`] (its items join the raw buffer), then convert every
//! buffered item (the `convert` hook; default `{"data": …}`) and append the results in one
//! batch. Writes from outside are buffered too and processed in the next cycle; when the
//! buffer holds `max_raw_buffer_size` items, writes are refused with
//! [`ErrorKind::Backpressure`](crate::ErrorKind::Backpressure) and the data is handed back.
//! A failing pull or conversion is reported to `on_error` and the loop goes on (v1's loop
//! died silently, defect D25). Up to `max_workers` conversions run at once; the messages
//! are stored in buffer order. With [`ChannelHooks`](super::ChannelHooks), each cycle also
//! calls `on_pull` (after the source's pull) and `on_process` (after the processing). A
//! channel without a source ([`PeriodicChannel::buffered`], or one from a serve config)
//! runs the same loop: it converts what was written, once per period.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::hooks::ProcessReport;
use super::kind::kind;
use super::{Channel, ChannelBuilder};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelKind, ChannelMessage, Content, Payload};
use crate::policy::ClaimPolicy;
use crate::store::{ChannelSpec, ChannelStorage, ClaimQueue, Settle, Store};

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

/// The claimer name of a periodic channel's own processing.
const PROCESSOR: &str = "_periodic";
/// Which [`Payload`] a buffered item was (metadata key of the raw queue's messages).
const RAW_KIND: &str = "sssn_raw";
/// How long a batch taken for processing is held. Only the pull loop takes batches, so a
/// batch outliving this is merely taken again (appends are idempotent by id); after a
/// crash, the batch that was being processed is taken again this long after the restart.
const PROCESSING_LEASE: Duration = Duration::from_secs(10);

/// The raw buffer and source of a periodic channel.
///
/// Buffered items live in a claim queue of their own in the channel's store (id
/// `<channel>/raw`, which no user channel can have), so a write is accepted only once it
/// is as durable as the store: a SIGKILL loses nothing accepted. Each cycle takes the
/// buffered items, converts them, appends the messages, and only then acknowledges the
/// items; a crash in between converts them again, and the appends are idempotent because a
/// converted message takes its buffered item's id.
pub(crate) struct RawBuffer {
    max: usize,
    /// Conversions one pass runs at once.
    workers: usize,
    source: tokio::sync::Mutex<Option<Box<dyn Source>>>,
    queue: OnceLock<ChannelStorage>,
    /// Items buffered and not yet processed (read from the queue at start).
    pending: AtomicUsize,
    /// One processing at a time (the pull loop, or a drain).
    processing: tokio::sync::Mutex<()>,
}

impl RawBuffer {
    pub(crate) fn new(max: usize, workers: usize, source: Option<Box<dyn Source>>) -> Self {
        Self {
            max,
            workers,
            source: tokio::sync::Mutex::new(source),
            queue: OnceLock::new(),
            pending: AtomicUsize::new(0),
            processing: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens the buffer's queue in the channel's store (at the channel's first start).
    pub(crate) async fn open(&self, store: &Arc<dyn Store>, channel_id: &str) -> Result<()> {
        if self.queue.get().is_some() {
            return Ok(());
        }
        let spec = ChannelSpec {
            feed_capacity: 1,
            ..ChannelSpec::with_claims(
                format!("{channel_id}/raw"),
                ClaimPolicy::with_lease(PROCESSING_LEASE),
            )
        };
        let storage = store.open_channel(&spec).await?;
        let waiting = match &storage.claims {
            Some(queue) => {
                let stats = queue.stats().await?;
                stats.backlog + stats.in_flight
            }
            None => 0,
        };
        self.pending.store(
            usize::try_from(waiting).unwrap_or(usize::MAX),
            Ordering::Release,
        );
        let _ = self.queue.set(storage);
        Ok(())
    }

    fn storage(&self) -> Result<&ChannelStorage> {
        self.queue
            .get()
            .ok_or_else(|| Error::new(ErrorKind::ShuttingDown, "the raw buffer is not open"))
    }

    fn claims(&self) -> Result<&Arc<dyn ClaimQueue>> {
        self.storage()?.claims.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "the raw buffer's store opened no claims",
            )
        })
    }

    /// Buffers payloads durably; returns their item ids. All or nothing: a refused batch
    /// hands every payload back.
    pub(crate) async fn push(
        &self,
        channel_id: &str,
        sender: &str,
        payloads: Vec<Payload>,
    ) -> Result<Vec<String>> {
        let n = payloads.len();
        let before = self.pending.fetch_add(n, Ordering::AcqRel);
        if before + n > self.max {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            let err = Error::new(
                ErrorKind::Backpressure,
                format!(
                    "Channel '{channel_id}' raw buffer full ({} items). Producer is faster than the ingestion pipeline. Slow down writes or increase max_raw_buffer_size.",
                    self.max
                ),
            );
            return Err(err.with_rejected_all(payloads));
        }
        let stored = async {
            let items = payloads
                .iter()
                .map(|p| encode(sender, p))
                .collect::<Result<Vec<_>>>()?;
            self.storage()?.log.append(items).await
        };
        match stored.await {
            Ok(entries) => Ok(entries.into_iter().map(|e| e.message.id.clone()).collect()),
            Err(e) => {
                self.pending.fetch_sub(n, Ordering::AcqRel);
                Err(e.with_rejected_all(payloads))
            }
        }
    }
}

/// A buffered item as a message of the raw queue: the sender, and the payload tagged with
/// its kind.
fn encode(sender: &str, payload: &Payload) -> Result<ChannelMessage> {
    let (kind, content) = match payload {
        Payload::Data(v) => ("data", Content::data(v)?),
        Payload::Content(c) => ("content", c.clone()),
        Payload::Message(m) => ("message", Content::new(m)?),
    };
    Ok(ChannelMessage::new(sender, content).meta(RAW_KIND, kind))
}

/// The payload a raw queue message holds.
fn decode(item: &ChannelMessage) -> Result<Payload> {
    Ok(match item.metadata.get(RAW_KIND).and_then(|k| k.as_str()) {
        Some("message") => Payload::Message(item.content.get()?),
        Some("content") => Payload::Content(item.content.clone()),
        _ => Payload::Data(item.data()?),
    })
}

impl Channel {
    /// One pull: fetch from the source into the raw buffer. Returns how many items it
    /// buffered.
    async fn pull_once(&self) -> usize {
        let Some(raw) = &self.core.raw else { return 0 };
        let mut source = raw.source.lock().await;
        let Some(source) = source.as_mut() else {
            return 0;
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
            Ok(items) if !items.is_empty() => match raw.push(self.id(), self.id(), items).await {
                Ok(ids) => ids.len(),
                Err(e) => {
                    self.core.error_hook("pull", &e);
                    0
                }
            },
            Ok(_) => 0,
            Err(e) => {
                self.core.error_hook("pull", &e);
                0
            }
        }
    }

    /// Converts and stores one batch of what the raw buffer holds (up to its capacity),
    /// then acknowledges the batch. A batch whose append fails is released, to be tried
    /// again next cycle; an item that fails to convert is reported and dropped.
    pub(crate) async fn process_buffer(&self) {
        let Some(raw) = &self.core.raw else { return };
        let _one = raw.processing.lock().await;
        match self.process_batch(raw).await {
            Ok(report) => self.core.hooks.on_process(self, &report).await,
            Err(e) => self.core.error_hook("process", &e),
        }
    }

    /// Converts one buffered item (`convert`, then `before_store`).
    async fn convert_item(&self, item: &ChannelMessage) -> Result<Option<ChannelMessage>> {
        let payload = decode(item)?;
        let direct = matches!(payload, Payload::Message(_));
        let converted = self.core.prepare(&item.sender_id, payload, false).await?;
        Ok(converted.map(|mut m| {
            // The item's id: what the writer was given, and what makes a conversion
            // repeated after a crash an idempotent append.
            if !direct {
                m.id.clone_from(&item.id);
            }
            m
        }))
    }

    async fn process_batch(&self, raw: &RawBuffer) -> Result<ProcessReport> {
        use futures::StreamExt;
        let core = &self.core;
        let queue = raw.claims()?;
        let taken = queue.claim(PROCESSOR, raw.max).await?;
        let mut report = ProcessReport {
            taken: taken.len(),
            ..ProcessReport::default()
        };
        if taken.is_empty() {
            return Ok(report);
        }
        // Up to `workers` conversions at once; `buffered` yields them in buffer order.
        // (The futures are made first: a closure in the stream would not be `Send` for
        // every lifetime, which the spawned loop needs.)
        let conversions: Vec<_> = taken
            .iter()
            .map(|item| self.convert_item(&item.message))
            .collect();
        let converted: Vec<_> = futures::stream::iter(conversions)
            .buffered(raw.workers)
            .collect()
            .await;
        let mut messages = Vec::with_capacity(taken.len());
        for c in converted {
            match c {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => report.dropped += 1,
                Err(e) => {
                    report.failed += 1;
                    core.error_hook("process", &e);
                }
            }
        }
        report.stored = messages.len();
        let ids: Vec<&str> = taken.iter().map(|c| c.message.id.as_str()).collect();
        if let Err(e) = core.append(messages).await {
            let _ = queue
                .settle(PROCESSOR, &ids, Settle::Nack { delay: None })
                .await;
            return Err(e);
        }
        let settled = queue.settle(PROCESSOR, &ids, Settle::Ack).await?;
        raw.pending.fetch_sub(settled.done.len(), Ordering::AcqRel);
        Ok(report)
    }

    /// The pull loop: pull (then `on_pull`), process (then `on_process`), wait for the
    /// next period (drift-compensated).
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
                () = async {
                    let pulled = self.pull_once().await;
                    self.core.hooks.on_pull(&self, pulled).await;
                } => {}
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
