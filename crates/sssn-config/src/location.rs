//! Where in a configuration file something is: `file:line:column`, from the byte spans
//! `toml` records (`toml::Spanned`, and the span of a parse error), so an error about a
//! value points at it.

use std::fmt;
use std::ops::Range;

/// A configuration text and the name it is reported under (usually its path).
#[derive(Clone, Debug)]
pub struct Source {
    origin: String,
    text: String,
}

/// A place in a [`Source`]: 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The source's name (a path).
    pub origin: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

impl Source {
    /// `text`, reported as `origin`.
    pub fn new(origin: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            text: text.into(),
        }
    }

    /// The name errors are reported under.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the byte `span` starts.
    pub fn locate(&self, span: &Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let before = self.text.get(..start).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            origin: self.origin.clone(),
            line,
            column,
        }
    }

    /// Parses the text as `T`; a parse error becomes `origin:line:column: message`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        toml::from_str(&self.text).map_err(|e| {
            let at = match e.span() {
                Some(span) => self.locate(&span).to_string(),
                None => self.origin.clone(),
            };
            format!("{at}: {}", e.message())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_spans_and_parse_errors() {
        let src = Source::new("c.toml", "a = 1\n  b = \"é\"x\n");
        let at = src.locate(&(8..9));
        assert_eq!((at.line, at.column), (2, 3));
        assert_eq!(at.to_string(), "c.toml:2:3");
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let err = src.parse::<T>().unwrap_err();
        assert!(err.starts_with("c.toml:2:"), "{err}");
    }
}
