//! [`SystemSpec`]: a system's identity, wiring, tick rate and restart policy.

use std::time::Duration;

/// What happens when a system fails (panics, or exceeds its consecutive-error limit).
#[derive(Clone, Debug, PartialEq)]
pub enum RestartPolicy {
    /// Stay failed ([`SystemState::Error`](super::SystemState::Error)).
    Never,
    /// Restart after an exponential backoff, at most `max_restarts` times within `window`.
    OnFailure {
        /// Restarts allowed within `window`.
        max_restarts: u32,
        /// The budget window.
        window: Duration,
        /// Delay before the first restart; doubles each time up to `max_backoff`.
        initial_backoff: Duration,
        /// Upper bound of the backoff.
        max_backoff: Duration,
    },
}

impl RestartPolicy {
    /// Restart on failure: 5 restarts per minute, backoff 100 ms doubling to 10 s.
    pub fn on_failure() -> Self {
        Self::OnFailure {
            max_restarts: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A system's identity and runtime options.
#[derive(Clone, Debug)]
pub struct SystemSpec {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) description: String,
    pub(crate) tick_rate: f64,
    pub(crate) reads: Vec<String>,
    pub(crate) writes: Vec<String>,
    pub(crate) channels: Vec<String>,
    pub(crate) restart: RestartPolicy,
    pub(crate) max_consecutive_errors: Option<u32>,
    pub(crate) mailbox: usize,
}

impl SystemSpec {
    /// A spec for system `id`: 1 tick per second, no channels, never restarted.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            description: String::new(),
            tick_rate: 1.0,
            reads: Vec::new(),
            writes: Vec::new(),
            channels: Vec::new(),
            restart: RestartPolicy::Never,
            max_consecutive_errors: None,
            mailbox: 1024,
        }
    }

    /// Human name (defaults to the id).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Free-text description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Steps per second (default 1). Zero or less means: step only on deliveries.
    #[must_use]
    pub fn tick_rate(mut self, rate: f64) -> Self {
        self.tick_rate = rate;
        self
    }

    /// Channels the system reads (wired, and listed in its descriptor).
    #[must_use]
    pub fn reads<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.reads.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Channels the system writes (wired, and listed in its descriptor).
    #[must_use]
    pub fn writes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.writes.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Further channels to wire (v1's `add_subsystem(sys, channels=[…])`).
    #[must_use]
    pub fn channels<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.channels.extend(ids.into_iter().map(Into::into));
        self
    }

    /// What happens when the system fails.
    #[must_use]
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// Fail the system after this many step errors in a row (default: never).
    #[must_use]
    pub fn max_consecutive_errors(mut self, n: u32) -> Self {
        self.max_consecutive_errors = Some(n.max(1));
        self
    }

    /// Deliveries buffered for `on_message` before subscriptions lag (default 1024).
    #[must_use]
    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity.max(1);
        self
    }

    /// The system id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every channel id wired to the system, without duplicates, in declaration order.
    pub fn wired(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in self.reads.iter().chain(&self.writes).chain(&self.channels) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }
}
