//! The run loop of one system, with supervision.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::collections::BTreeMap;

use futures::FutureExt;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::{Delivery, SystemContext};
use super::handle::Control;
use super::{ErrorAction, RestartPolicy, System, SystemHandle, SystemSpec, SystemState};
use crate::channel::Channel;
use crate::client::ChannelClient;
use crate::error::{Error, ErrorKind, Result};
use crate::network::NetworkEvent;
use crate::trace::{
    self,
    journal::{self, HopKind},
};
use tracing::Instrument;

/// Everything a runner needs, assembled by the network.
pub(crate) struct RunnerParts {
    pub(crate) system: Box<dyn System>,
    pub(crate) ctx: SystemContext,
    pub(crate) deliveries: mpsc::Receiver<Delivery>,
    pub(crate) control: Arc<Control>,
    pub(crate) handle: super::SystemHandle,
    pub(crate) tick_rate: f64,
    pub(crate) restart: RestartPolicy,
    pub(crate) max_consecutive_errors: Option<u32>,
    pub(crate) events: broadcast::Sender<NetworkEvent>,
}

pub(crate) struct Runner {
    p: RunnerParts,
    set_up: bool,
}

enum Exit {
    Stopped,
    Failed(Error),
}

fn panic_error(what: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    Error::new(ErrorKind::Internal, format!("{what} panicked: {msg}"))
}

/// One step, panics caught; counts it.
async fn step_once(p: &mut RunnerParts) -> std::result::Result<Result<()>, Error> {
    let span = tracing::info_span!("sssn.step", system = p.ctx.id(), step = p.ctx.step);
    // A fresh handling context: what the step claims, its writes continue (crate::trace).
    let step = trace::handling(None, p.system.step(&mut p.ctx)).instrument(span);
    let r = AssertUnwindSafe(step)
        .catch_unwind()
        .await
        .map_err(|panic| panic_error("step", &*panic));
    note_error(p, &r);
    p.ctx.step += 1;
    p.control.steps.fetch_add(1, Ordering::Relaxed);
    r
}

/// Hands one delivered message to `on_message`, panics caught, inside the message's trace.
async fn deliver(
    p: &mut RunnerParts,
    channel: String,
    entry: crate::store::Entry,
) -> std::result::Result<Result<()>, Error> {
    let span = trace::channel_span("deliver", &channel, entry_kind(p, &channel));
    trace::record_message(&span, Some(&entry.message), Some(entry.seq), None, 1);
    span.record("system", p.ctx.id());
    journal::record(
        HopKind::Deliver,
        &channel,
        &entry.message,
        p.ctx.id(),
        Some(entry.seq),
        None,
    );
    let parent = trace::TraceContext::of(&entry.message);
    let hook = trace::handling(parent, p.system.on_message(&mut p.ctx, &channel, entry));
    AssertUnwindSafe(hook.instrument(span))
        .catch_unwind()
        .await
        .map_err(|panic| panic_error("on_message", &*panic))
}

/// The kind of a channel this system is wired to (for span fields; remote ones are not
/// known here).
fn entry_kind(p: &RunnerParts, channel: &str) -> &'static str {
    p.ctx
        .local
        .get(channel)
        .map_or("remote", |c| c.kind().as_str())
}

/// Keeps the last error of a hook for whoever watches the system.
fn note_error(p: &RunnerParts, r: &std::result::Result<Result<()>, Error>) {
    if let Err(e) | Ok(Err(e)) = r {
        *p.control
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
    }
}

impl Runner {
    pub(crate) fn new(parts: RunnerParts) -> Self {
        Self {
            p: parts,
            set_up: false,
        }
    }

    /// The runner of `system`: its context over `client` (wired to exactly its channels;
    /// `local` are the local ones among them), supervision settings from `spec`. It stops
    /// when asked through its handle, or when `parent_stop` fires.
    pub(crate) fn build(
        spec: SystemSpec,
        system: Box<dyn System>,
        handle: SystemHandle,
        client: ChannelClient,
        local: BTreeMap<String, Channel>,
        parent_stop: &CancellationToken,
        events: &broadcast::Sender<NetworkEvent>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(spec.mailbox);
        let stop = handle.control.stop.clone();
        let (parent_stop, linked) = (parent_stop.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = parent_stop.cancelled() => linked.cancel(),
                () = linked.cancelled() => {}
            }
        });
        let ctx = SystemContext {
            name: spec.name.clone().unwrap_or_else(|| spec.id().to_owned()),
            description: spec.description.clone(),
            client,
            local,
            reads: spec.reads.clone(),
            writes: spec.writes.clone(),
            services: system.services(),
            deliveries: tx,
            stop,
            forwarders: TaskTracker::new(),
            wake: Arc::default(),
            step: 0,
        };
        Self::new(RunnerParts {
            system,
            ctx,
            deliveries: rx,
            control: handle.control.clone(),
            handle,
            tick_rate: spec.tick_rate,
            restart: spec.restart.clone(),
            max_consecutive_errors: spec.max_consecutive_errors,
            events: events.clone(),
        })
    }

    fn id(&self) -> String {
        self.p.ctx.id().to_owned()
    }

    pub(crate) fn handle_id(&self) -> &str {
        self.p.handle.id()
    }

    pub(crate) fn handle(&self) -> super::SystemHandle {
        self.p.handle.clone()
    }

    fn set_state(&self, state: SystemState) {
        self.p.control.state.send_replace(state);
    }

    fn emit(&self, event: NetworkEvent) {
        let _ = self.p.events.send(event);
    }

    /// Runs `setup` once; a panic or error there fails the system before it starts.
    pub(crate) async fn setup(&mut self) -> Result<()> {
        if self.set_up {
            return Ok(());
        }
        self.set_up = true;
        let Runner { p, .. } = self;
        match AssertUnwindSafe(p.system.setup(&mut p.ctx))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(panic) => Err(panic_error("setup", &*panic)),
        }
    }

    /// Runs until stopped or failed for good; hands the system back.
    pub(crate) async fn run(mut self) -> (String, Box<dyn System>) {
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut backoff = match &self.p.restart {
            RestartPolicy::OnFailure {
                initial_backoff, ..
            } => *initial_backoff,
            RestartPolicy::Never => Duration::ZERO,
        };
        let final_state = loop {
            self.set_state(SystemState::Running);
            let error = match self.run_loop().await {
                Exit::Stopped => break SystemState::Stopped,
                Exit::Failed(e) => e,
            };
            tracing::error!(system = %self.id(), error = %error, "system failed");
            self.emit(NetworkEvent::SystemFailed {
                system: self.id(),
                error: error.to_string(),
            });
            let RestartPolicy::OnFailure {
                max_restarts,
                window,
                max_backoff,
                ..
            } = self.p.restart.clone()
            else {
                break SystemState::Error;
            };
            let now = Instant::now();
            while restarts
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                restarts.pop_front();
            }
            if restarts.len() as u32 >= max_restarts {
                tracing::error!(system = %self.id(), "restart budget used up; giving up");
                self.emit(NetworkEvent::SystemGaveUp {
                    system: self.id(),
                    error: error.to_string(),
                });
                break SystemState::Error;
            }
            tokio::select! {
                () = self.p.control.stop.cancelled() => break SystemState::Stopped,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
            restarts.push_back(Instant::now());
            let n = self.p.control.restarts.fetch_add(1, Ordering::Relaxed) + 1;
            let Runner { p, .. } = &mut self;
            let _ = AssertUnwindSafe(p.system.on_restart(&mut p.ctx, &error))
                .catch_unwind()
                .await;
            tracing::warn!(system = %self.id(), restarts = n, "system restarted");
            self.emit(NetworkEvent::SystemRestarted {
                system: self.id(),
                restarts: n,
            });
        };
        let Runner { p, .. } = &mut self;
        if AssertUnwindSafe(p.system.on_stop(&mut p.ctx))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(system = %p.ctx.id(), "on_stop panicked");
        }
        p.ctx.stop.cancel();
        p.ctx.forwarders.close();
        p.ctx.forwarders.wait().await;
        self.set_state(final_state);
        self.emit(NetworkEvent::SystemStopped {
            system: self.id(),
            state: final_state,
        });
        (self.id(), self.p.system)
    }

    async fn run_loop(&mut self) -> Exit {
        let period =
            (self.p.tick_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.p.tick_rate));
        let mut next_tick = Instant::now();
        let mut paused = self.p.control.paused.subscribe();
        let mut consecutive_errors = 0u32;
        loop {
            if *paused.borrow_and_update() {
                self.set_state(SystemState::Paused);
                tokio::select! {
                    () = self.p.control.stop.cancelled() => return Exit::Stopped,
                    _ = paused.wait_for(|p| !*p) => {}
                }
                self.set_state(SystemState::Running);
                next_tick = Instant::now();
                continue;
            }
            let Runner { p, .. } = self;
            let outcome = tokio::select! {
                biased;
                () = p.control.stop.cancelled() => return Exit::Stopped,
                _ = paused.changed() => continue,
                Some((channel, entry)) = p.deliveries.recv() => {
                    let r = deliver(p, channel, entry).await;
                    note_error(p, &r);
                    r
                }
                () = p.ctx.wake.notified() => step_once(p).await,
                () = tokio::time::sleep_until(next_tick), if period.is_some() => {
                    let r = step_once(p).await;
                    // Drift compensation without catch-up bursts.
                    next_tick += period.unwrap_or_default();
                    let now = Instant::now();
                    if next_tick < now {
                        next_tick = now;
                    }
                    r
                }
            };
            match outcome {
                Err(panic) => return Exit::Failed(panic),
                Ok(Ok(())) => consecutive_errors = 0,
                Ok(Err(error)) => {
                    consecutive_errors += 1;
                    let action = match AssertUnwindSafe(p.system.on_step_error(&mut p.ctx, error))
                        .catch_unwind()
                        .await
                    {
                        Ok(a) => a,
                        Err(panic) => return Exit::Failed(panic_error("on_step_error", &*panic)),
                    };
                    match action {
                        ErrorAction::Continue => {}
                        ErrorAction::Stop => return Exit::Stopped,
                        ErrorAction::Fail => {
                            return Exit::Failed(Error::new(
                                ErrorKind::Internal,
                                "failed by on_step_error",
                            ));
                        }
                    }
                    if p.max_consecutive_errors
                        .is_some_and(|max| consecutive_errors >= max)
                    {
                        return Exit::Failed(Error::new(
                            ErrorKind::Internal,
                            format!("{consecutive_errors} consecutive step errors"),
                        ));
                    }
                }
            }
            // Every tick yields, even when a step never suspends (v1 starved other tasks).
            tokio::task::yield_now().await;
        }
    }
}
