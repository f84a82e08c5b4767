//! Systems: autonomous agents with a tick loop that talk only through channels.
//!
//! A system implements [`System`]; every hook has an empty default. The runtime drives
//! each system on its own tokio task:
//!
//! 1. `setup` runs exactly once, before any system in the network takes its first step
//!    (subscribe to channels here);
//! 2. then, until stopped: `step` every `1 / tick_rate` seconds (drift-compensated; an
//!    overrunning step delays the next tick instead of bursting), and `on_message` for
//!    every delivery of the system's subscriptions — both on the system's own task, so the
//!    system mutates its own state without locks. The task yields after every step.
//! 3. `on_stop` runs once at the end.
//!
//! A step error goes to `on_step_error` (default: log and continue). A panicking step, or
//! too many consecutive errors, fails the system; its [`RestartPolicy`] then decides:
//! restart with exponential backoff within a budget, or stay failed in
//! [`SystemState::Error`]. The network hears about every failure and restart
//! ([`NetworkEvent`](crate::network::NetworkEvent)).
//!
//! ```
//! use sssn::system::{System, SystemContext};
//!
//! struct Sensor { reading: f64 }
//!
//! #[async_trait::async_trait]
//! impl System for Sensor {
//!     async fn step(&mut self, ctx: &mut SystemContext) -> sssn::Result<()> {
//!         self.reading += 0.1;
//!         let readings = ctx.broadcast("readings")?;
//!         readings.write(&serde_json::json!({"temp": self.reading})).await?;
//!         Ok(())
//!     }
//! }
//! ```

mod context;
mod handle;
mod runner;
mod spec;
mod standalone;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use context::SystemContext;
pub(crate) use handle::Control;
pub use handle::SystemHandle;
pub(crate) use runner::Runner;
pub use spec::{RestartPolicy, SystemSpec};
pub use standalone::{RunningSystem, spawn, spawn_with_client};

use crate::descriptor::ServiceMethod;
use crate::error::{Error, Result};
use crate::store::Entry;

/// Life-cycle state of a system (v1 values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SystemState {
    /// Added, not running yet.
    Init,
    /// Stepping.
    Running,
    /// Paused: no steps, deliveries wait.
    Paused,
    /// Stopped normally.
    Stopped,
    /// Failed and not restarted (restart budget used up, or policy `Never`).
    Error,
}

/// What to do after a step error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorAction {
    /// Log it and keep stepping (the default).
    Continue,
    /// Stop the system normally.
    Stop,
    /// Fail the system (its restart policy applies).
    Fail,
}

/// An autonomous agent. Implement the hooks you need. A network hands its systems back
/// when it stops ([`StoppedNetwork::take`](crate::network::StoppedNetwork::take)), so
/// results need no shared state.
#[async_trait]
pub trait System: std::any::Any + Send {
    /// Runs once before the first step of any system in the network.
    async fn setup(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Runs every tick.
    async fn step(&mut self, ctx: &mut SystemContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Runs for every message delivered by the system's subscriptions.
    async fn on_message(
        &mut self,
        ctx: &mut SystemContext,
        channel_id: &str,
        entry: Entry,
    ) -> Result<()> {
        let _ = (ctx, channel_id, entry);
        Ok(())
    }

    /// Decides what a step (or `on_message`) error means. Default: log and continue.
    async fn on_step_error(&mut self, ctx: &mut SystemContext, error: Error) -> ErrorAction {
        tracing::error!(system = ctx.id(), %error, "[{}] Error in step(): {error}", ctx.id());
        ErrorAction::Continue
    }

    /// Runs before a restart after a failure (reset state here). Default: nothing.
    async fn on_restart(&mut self, ctx: &mut SystemContext, error: &Error) {
        let _ = (ctx, error);
    }

    /// Runs once when the system stops.
    async fn on_stop(&mut self, ctx: &mut SystemContext) {
        let _ = ctx;
    }

    /// Services this system exposes (published in its descriptor).
    fn services(&self) -> Vec<ServiceMethod> {
        Vec::new()
    }
}
