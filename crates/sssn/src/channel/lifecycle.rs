//! The life cycle of every channel: start (opening the store), background maintenance,
//! stop and drain.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::core::lock;
use super::kind::Kind;
use super::{Channel, ChannelState};
use crate::error::{Error, ErrorKind, Result};
use crate::message::ChannelKind;

impl<K: Kind> Channel<K> {
    /// Opens the store (the first time), starts accepting writes, calls the `on_start`
    /// hook and starts the background loops (maintenance on every kind; the pull loop on
    /// periodic channels). Idempotent: a running channel is left as it is, and `on_start`
    /// runs once per start. When `on_start` fails, `start` fails with its error and the
    /// channel is back in its former state (not accepting writes, no loops).
    pub async fn start(&self) -> Result<()> {
        let core = &self.core;
        let _guard = core.lifecycle.lock().await;
        let before = self.state();
        if before == ChannelState::Running {
            return Ok(());
        }
        core.open_storage().await?;
        let cancel = CancellationToken::new();
        core.tasks.reopen();
        // Before accepting operations (and before `on_start`, which may query): queries
        // are answered from the index.
        super::discovery::open_registry(&self.erased(), cancel.clone()).await?;
        *lock(&core.cancel) = cancel.clone();
        core.state.store(1, Ordering::Release);
        if let Err(e) = core.hooks.on_start(&self.erased()).await {
            core.state.store(before.to_u8(), Ordering::Release);
            cancel.cancel();
            return Err(e);
        }
        let this = self.erased();
        let token = cancel.clone();
        core.tasks
            .spawn(async move { this.maintenance_loop(token).await });
        if self.has_loop() {
            let this = self.erased();
            core.tasks
                .spawn(async move { this.pull_loop(cancel).await });
        }
        Ok(())
    }

    /// Stops at once: refuses writes, ends the loops and subscriptions. Buffered raw items
    /// of a periodic channel that were not processed yet are reported through `on_error`.
    pub async fn stop(&self) {
        let _guard = self.core.lifecycle.lock().await;
        self.shutdown().await;
    }

    /// Refuses new writes, processes what is buffered (periodic channels) for up to
    /// `timeout` (forever with `None`), then stops.
    pub async fn drain(&self, timeout: Option<Duration>) -> Result<()> {
        let core = &self.core;
        let _guard = core.lifecycle.lock().await;
        if self.state() != ChannelState::Running {
            core.state.store(3, Ordering::Release);
            return Ok(());
        }
        core.state.store(2, Ordering::Release);
        // End the loops first, so no new pull refills the buffer while it drains.
        self.stop_tasks().await;
        let mut outcome = Ok(());
        if let Some(raw) = &core.raw {
            // Checked between batches only: a batch taken from the buffer is always stored.
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            while !raw.is_empty() {
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    outcome = Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "[{}] drain() timed out; {} raw buffer items abandoned.",
                            self.id(),
                            raw.len()
                        ),
                    ));
                    break;
                }
                self.erased().process_buffer().await;
            }
        }
        self.shutdown().await;
        outcome
    }

    /// Cancels the background loops and waits for them to end.
    async fn stop_tasks(&self) {
        lock(&self.core.cancel).cancel();
        self.core.tasks.close();
        self.core.tasks.wait().await;
    }

    /// Stops: refuses writes, ends the loops, then `on_stop` (once per start; never
    /// while a loop could still run a cycle).
    async fn shutdown(&self) {
        let was_live = matches!(self.state(), ChannelState::Running | ChannelState::Draining);
        self.core.state.store(3, Ordering::Release);
        self.stop_tasks().await;
        if was_live {
            self.core.hooks.on_stop(&self.erased()).await;
        }
        if let Some(raw) = &self.core.raw {
            let left = raw.len();
            if left > 0 {
                self.core.error_hook(
                    "stop",
                    &Error::new(
                        ErrorKind::ShuttingDown,
                        format!("{left} raw buffer items were not processed"),
                    ),
                );
            }
        }
    }

    /// One maintenance pass: retention, lease reclaim, discovery TTL expiry, then the
    /// `on_maintain` hook (which runs even when the default pass failed). Returns the
    /// default pass's error, else the hook's (which `on_error` hears of too).
    pub async fn maintain(&self) -> Result<()> {
        let default = self.maintain_default().await;
        let hook = self.core.hooks.on_maintain(&self.erased()).await;
        default.and(hook)
    }

    async fn maintain_default(&self) -> Result<()> {
        let core = &self.core;
        let storage = core.storage()?;
        let (max_age, max_count) = (core.retention.max_age(), core.retention.max_count());
        if max_age.is_some() || max_count.is_some() {
            let before = max_age.map(|age| crate::clock::now_secs() - age.as_secs_f64());
            storage.log.evict(before, max_count).await?;
        }
        if let Some(queue) = &storage.claims {
            queue.reclaim_expired().await?;
        }
        if core.kind == ChannelKind::Discovery {
            super::discovery::purge_expired(&self.erased()).await?;
        }
        Ok(())
    }

    async fn maintenance_loop(self, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.core.maintenance_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate; maintenance starts one interval in
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            // Failures go to `on_error`; maintenance goes on (v1 defect D25).
            if let Err(e) = self.maintain_default().await {
                self.core.error_hook("maintain", &e);
            }
            let _ = self.core.hooks.on_maintain(&self.erased()).await;
        }
    }
}
