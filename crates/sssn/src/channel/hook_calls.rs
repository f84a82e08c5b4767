//! How a channel calls its hooks: each call guarded, so a panicking hook becomes an
//! [`Error`] and a slow async one is abandoned after the channel's `hook_timeout`. No lock
//! is held across a hook: a slow hook delays only the call that runs it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::Channel;
use super::hooks::{
    AsyncConvertFn, BeforeStoreFn, ChannelHooks, ConvertFn, ErrorFn, MessageFn, ProcessReport,
    default_convert,
};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{ChannelMessage, Payload};

/// How long one hook call may run unless the builder says otherwise.
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel's hooks: the [`ChannelHooks`] object, and the closures of the builder's
/// single-hook setters, each taking the place of the object's hook of the same name.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) object: Option<Arc<dyn ChannelHooks>>,
    pub(crate) convert: Option<ConvertFn>,
    pub(crate) convert_async: Option<AsyncConvertFn>,
    pub(crate) before_store: Option<BeforeStoreFn>,
    pub(crate) on_message: Option<MessageFn>,
    pub(crate) on_error: Option<ErrorFn>,
    pub(crate) timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            object: None,
            convert: None,
            convert_async: None,
            before_store: None,
            on_message: None,
            on_error: None,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

fn panicked(channel_id: &str, hook: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!(
            "the {hook} hook of channel '{channel_id}' panicked: {}",
            panic_text(payload)
        ),
    )
}

/// A hook's malfunction (it panicked or timed out), as opposed to an answer it gave.
struct Malfunction(Error);

/// What a guarded hook call came to: the hook's answer, or its malfunction.
type Guarded<T> = std::result::Result<Result<T>, Malfunction>;

/// Runs a synchronous hook with its panic caught.
fn sync_guard<T>(channel_id: &str, hook: &str, f: impl FnOnce() -> Result<T>) -> Guarded<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|panic| Malfunction(panicked(channel_id, hook, &*panic)))
}

fn flatten<T>(r: Guarded<T>) -> Result<T> {
    r.unwrap_or_else(|Malfunction(e)| Err(e))
}

impl Hooks {
    /// Nothing on the write path but the default conversion: writes take the fast path.
    pub(crate) fn plain_writes(&self) -> bool {
        self.object.is_none()
            && self.convert.is_none()
            && self.convert_async.is_none()
            && self.before_store.is_none()
    }

    /// The default conversion applies (no `convert` of any form): a write may hand its
    /// data over already serialised as `{"data": …}`.
    pub(crate) fn default_conversion(&self) -> bool {
        self.object.is_none() && self.convert.is_none() && self.convert_async.is_none()
    }

    /// Runs an async hook with its panic caught and its time bounded.
    async fn guard<T>(
        &self,
        channel_id: &str,
        hook: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Guarded<T> {
        match tokio::time::timeout(self.timeout, AssertUnwindSafe(fut).catch_unwind()).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => Err(Malfunction(panicked(channel_id, hook, &*panic))),
            Err(_) => Err(Malfunction(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the {hook} hook of channel '{channel_id}' did not finish within {:?}",
                    self.timeout
                ),
            ))),
        }
    }

    /// A write-path hook's outcome: a malfunction is reported to `on_error` when `report`
    /// (the writer gets it too); an answer is returned as it is.
    fn write_outcome<T>(
        &self,
        channel_id: &str,
        hook: &str,
        report: bool,
        r: Guarded<T>,
    ) -> Result<T> {
        r.unwrap_or_else(|Malfunction(e)| {
            if report {
                self.error(channel_id, hook, &e);
            }
            Err(e)
        })
    }

    /// Converts a payload: the `convert` closure, else the async one, else the object's,
    /// else [`default_convert`]. `report`: tell `on_error` of a panic or timeout.
    pub(crate) async fn convert(
        &self,
        channel_id: &str,
        sender: &str,
        payload: Payload,
        report: bool,
    ) -> Result<Option<ChannelMessage>> {
        let r = if let Some(f) = &self.convert {
            sync_guard(channel_id, "convert", || f(sender, payload))
        } else if let Some(f) = &self.convert_async {
            let fut = f(sender.to_owned(), payload);
            self.guard(channel_id, "convert", fut).await
        } else if let Some(h) = &self.object {
            self.guard(channel_id, "convert", h.convert(sender, payload))
                .await
        } else {
            return default_convert(sender, payload);
        };
        self.write_outcome(channel_id, "convert", report, r)
    }

    /// Filters or changes a converted message before it is stored.
    pub(crate) async fn before_store(
        &self,
        channel_id: &str,
        message: ChannelMessage,
        report: bool,
    ) -> Result<Option<ChannelMessage>> {
        let r = if let Some(f) = &self.before_store {
            sync_guard(channel_id, "before_store", || f(message))
        } else if let Some(h) = &self.object {
            self.guard(channel_id, "before_store", h.before_store(message))
                .await
        } else {
            return Ok(Some(message));
        };
        self.write_outcome(channel_id, "before_store", report, r)
    }

    /// Whether anything observes stored messages.
    pub(crate) fn observes_messages(&self) -> bool {
        self.on_message.is_some() || self.object.is_some()
    }

    /// Observes a stored message; a failure goes to `on_error` (the write stands).
    pub(crate) async fn on_message(&self, channel_id: &str, message: &ChannelMessage) {
        let r = if let Some(f) = &self.on_message {
            flatten(sync_guard(channel_id, "on_message", || {
                f(message);
                Ok(())
            }))
        } else if let Some(h) = &self.object {
            flatten(
                self.guard(channel_id, "on_message", h.on_message(message))
                    .await,
            )
        } else {
            return;
        };
        if let Err(e) = r {
            self.error(channel_id, "on_message", &e);
        }
    }

    /// `on_start`: its failure (answer or malfunction) is returned, and reported.
    pub(crate) async fn on_start(&self, channel: &Channel) -> Result<()> {
        let Some(h) = &self.object else { return Ok(()) };
        let r = flatten(
            self.guard(channel.id(), "on_start", h.on_start(channel))
                .await,
        );
        if let Err(e) = &r {
            self.error(channel.id(), "on_start", e);
        }
        r
    }

    /// A background hook: its failure goes to `on_error` under the hook's name.
    async fn background(
        &self,
        channel_id: &str,
        hook: &str,
        fut: impl Future<Output = Result<()>>,
    ) {
        if let Err(e) = flatten(self.guard(channel_id, hook, fut).await) {
            self.error(channel_id, hook, &e);
        }
    }

    pub(crate) async fn on_stop(&self, channel: &Channel) {
        if let Some(h) = &self.object {
            self.background(channel.id(), "on_stop", h.on_stop(channel))
                .await;
        }
    }

    pub(crate) async fn on_pull(&self, channel: &Channel, pulled: usize) {
        if let Some(h) = &self.object {
            self.background(channel.id(), "on_pull", h.on_pull(channel, pulled))
                .await;
        }
    }

    pub(crate) async fn on_process(&self, channel: &Channel, report: &ProcessReport) {
        if let Some(h) = &self.object {
            self.background(channel.id(), "on_process", h.on_process(channel, report))
                .await;
        }
    }

    pub(crate) async fn on_maintain(&self, channel: &Channel) -> Result<()> {
        let Some(h) = &self.object else { return Ok(()) };
        let r = flatten(
            self.guard(channel.id(), "on_maintain", h.on_maintain(channel))
                .await,
        );
        if let Err(e) = &r {
            self.error(channel.id(), "on_maintain", e);
        }
        r
    }

    /// Reports a failure: the `on_error` closure, else the object's, else a log event. A
    /// panic in the reporter is logged, never propagated.
    pub(crate) fn error(&self, channel_id: &str, phase: &str, error: &Error) {
        let reported =
            std::panic::catch_unwind(AssertUnwindSafe(|| match (&self.on_error, &self.object) {
                (Some(f), _) => f(phase, error),
                (None, Some(h)) => h.on_error(channel_id, phase, error),
                (None, None) => {
                    tracing::error!(channel = channel_id, phase, %error, "channel error");
                }
            }));
        if let Err(panic) = reported {
            tracing::error!(
                channel = channel_id,
                phase,
                %error,
                panic = panic_text(&*panic),
                "the on_error hook panicked while reporting a channel error"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(String, ErrorKind)>>>;

    fn reported() -> (Hooks, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let hooks = Hooks {
            on_error: Some(Arc::new(move |phase: &str, e: &Error| {
                s.lock().unwrap().push((phase.to_owned(), e.kind()));
            })),
            ..Hooks::default()
        };
        (hooks, seen)
    }

    #[tokio::test]
    async fn a_panicking_sync_convert_is_an_internal_error_reported_once() {
        let (mut hooks, seen) = reported();
        hooks.convert = Some(Arc::new(|_: &str, _| panic!("bad input")));
        let err = hooks
            .convert("ch", "w", Payload::Data(serde_json::json!(1)), true)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.message(),
            "the convert hook of channel 'ch' panicked: bad input"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [("convert".into(), ErrorKind::Internal)]
        );
    }

    #[tokio::test]
    async fn an_answer_of_a_hook_is_not_reported_as_a_malfunction() {
        let (mut hooks, seen) = reported();
        hooks.convert = Some(Arc::new(|_: &str, _| {
            Err(Error::new(ErrorKind::InvalidMessage, "no"))
        }));
        let err = hooks
            .convert("ch", "w", Payload::Data(serde_json::json!(1)), true)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidMessage);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_async_convert_times_out() {
        let (mut hooks, seen) = reported();
        hooks.timeout = Duration::from_millis(50);
        hooks.convert_async = Some(super::super::hooks::async_convert(|_, _| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(None)
        }));
        let started = tokio::time::Instant::now();
        let err = hooks
            .convert("ch", "w", Payload::Data(serde_json::json!(1)), true)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(
            *seen.lock().unwrap(),
            [("convert".into(), ErrorKind::Timeout)]
        );
    }

    #[test]
    fn a_panicking_on_error_is_contained() {
        let hooks = Hooks {
            on_error: Some(Arc::new(|_: &str, _: &Error| panic!("reporter broke"))),
            ..Hooks::default()
        };
        hooks.error("ch", "pull", &Error::new(ErrorKind::Remote, "down"));
    }
}
