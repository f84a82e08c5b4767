//! [`Out`]: where an example prints its lines: standard output when run, a buffer in
//! tests, so a test checks the very lines a user sees.

use std::sync::{Arc, Mutex};

/// A line printer. Cheap to clone; clones share the buffer.
#[derive(Clone, Debug, Default)]
pub struct Out {
    /// `None`: print to stdout. `Some`: collect (tests).
    captured: Option<Arc<Mutex<Vec<String>>>>,
}

impl Out {
    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::default()
    }

    /// Collects the lines instead of printing them.
    pub fn capture() -> Self {
        Self {
            captured: Some(Arc::default()),
        }
    }

    /// Prints one line (a text with newlines counts as several).
    pub fn line(&self, text: impl AsRef<str>) {
        match &self.captured {
            None => println!("{}", text.as_ref()),
            Some(lines) => lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(text.as_ref().split('\n').map(str::to_owned)),
        }
    }

    /// The lines collected so far (empty when printing to stdout).
    pub fn lines(&self) -> Vec<String> {
        self.captured
            .as_ref()
            .map(|l| {
                l.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default()
    }
}

/// `say!(out, "format {}", args)`: [`Out::line`] with `format!`.
#[macro_export]
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        $out.line(format!($($arg)*))
    };
}
