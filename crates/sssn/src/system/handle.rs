//! [`SystemHandle`]: observe and control a running system from outside.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::SystemState;

/// Shared between a system's runner and its handles.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) state: watch::Sender<SystemState>,
    pub(crate) paused: watch::Sender<bool>,
    pub(crate) stop: CancellationToken,
    pub(crate) steps: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// The last error of a step or hook (kept for observers, such as a console).
    pub(crate) last_error: std::sync::Mutex<Option<String>>,
    /// The channels the system reads and writes, from its spec (for topology views).
    pub(crate) reads: Vec<String>,
    /// See `reads`.
    pub(crate) writes: Vec<String>,
}

/// A handle to one system: its state, and pause / resume / stop. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SystemHandle {
    pub(crate) id: String,
    pub(crate) control: Arc<Control>,
}

impl SystemHandle {
    /// The system id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Current state.
    pub fn state(&self) -> SystemState {
        *self.control.state.borrow()
    }

    /// Completed steps.
    pub fn steps(&self) -> u64 {
        self.control.steps.load(Ordering::Relaxed)
    }

    /// Restarts after failures so far.
    pub fn restarts(&self) -> u64 {
        self.control.restarts.load(Ordering::Relaxed)
    }

    /// The last error a step or hook returned (or the panic), if any.
    pub fn last_error(&self) -> Option<String> {
        self.control
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Channels the system reads (its spec's `reads`).
    pub fn reads(&self) -> &[String] {
        &self.control.reads
    }

    /// Channels the system writes (its spec's `writes`).
    pub fn writes(&self) -> &[String] {
        &self.control.writes
    }

    /// Stops stepping (and delivering messages) until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.control.paused.send_replace(true);
    }

    /// Resumes after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.control.paused.send_replace(false);
    }

    /// Stops the system after its current step.
    pub fn stop(&self) {
        self.control.stop.cancel();
    }

    /// Waits until the state satisfies `pred`; returns the state.
    pub async fn wait_for(&self, pred: impl Fn(SystemState) -> bool) -> SystemState {
        let mut rx = self.control.state.subscribe();
        let state = rx.wait_for(|s| pred(*s)).await.map(|s| *s);
        state.unwrap_or_else(|_| self.state())
    }

    /// Waits until the system has finished (stopped or failed for good).
    pub async fn finished(&self) -> SystemState {
        self.wait_for(|s| matches!(s, SystemState::Stopped | SystemState::Error))
            .await
    }
}
