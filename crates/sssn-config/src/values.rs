//! Values of a configuration file: durations (`250ms`, `30s`, `5m`, `2h`, `1d`, or seconds
//! as a number) and counts (whole numbers, at least 1), with the serde deserializers the
//! tables use, so every file refuses a bad value with the same clear message (which `toml`
//! places at the value's line and column).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest duration a config or flag may give: a century (beyond it, deadlines computed
/// from it could overflow the clock's arithmetic).
const MAX_DURATION_SECS: f64 = 100.0 * 365.0 * 86_400.0;

/// A duration: a number of seconds, or text with a unit (`250ms`, `30s`, `5m`, `2h`, `1d`),
/// zero or more, at most a century.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(sssn_config::parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(sssn_config::parse_duration("5 weeks").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        if t.starts_with('-') {
            format!("'{text}' is negative: a duration is zero or more")
        } else {
            format!("'{text}' is not a duration (e.g. 250ms, 30s, 5m, 2h, 1d)")
        }
    })?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit '{other}' in '{text}' (ms, s, m, h, d)"
            ));
        }
    };
    checked_secs(secs, text)
}

/// `secs` as a duration, if it is finite, not negative and at most a century.
fn checked_secs(secs: f64, shown: &str) -> Result<Duration, String> {
    if !secs.is_finite() {
        return Err(format!("'{shown}' is not a finite duration"));
    }
    if secs < 0.0 {
        return Err(format!("'{shown}' is negative: a duration is zero or more"));
    }
    if secs > MAX_DURATION_SECS {
        return Err(format!(
            "'{shown}' is longer than the longest duration accepted (100 years)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration in a config: seconds as a number, or text with a unit.
fn duration_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    let custom = serde::de::Error::custom;
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Secs(s)) => Some(checked_secs(s, &s.to_string()).map_err(custom)?),
        Some(Raw::Text(t)) => Some(parse_duration(&t).map_err(custom)?),
    })
}

/// Deserializes an optional duration that may be zero (a leeway).
pub fn opt_duration_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_value(d)
}

/// Deserializes an optional duration that must be longer than zero: a period, timeout,
/// interval or lifetime of zero would spin or expire at once.
pub fn opt_positive_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    match duration_value(d)? {
        Some(t) if t.is_zero() => Err(serde::de::Error::custom(
            "must be longer than zero (e.g. 250ms, 30s, 5m)",
        )),
        t => Ok(t),
    }
}

/// Deserializes an optional count (a size, a limit, a capacity): a whole number, at least 1.
pub fn opt_positive<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Whole(i64),
        Number(f64),
        Text(String),
    }
    let custom = serde::de::Error::custom;
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Whole(n)) if n >= 1 => u64::try_from(n)
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| custom(format!("{n} is too large"))),
        Some(Raw::Whole(n)) => Err(custom(format!("must be at least 1, not {n}"))),
        Some(Raw::Number(f)) => Err(custom(format!(
            "must be a whole number, at least 1, not {f}"
        ))),
        Some(Raw::Text(t)) => Err(custom(format!(
            "must be a whole number, at least 1, not the text \"{t}\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("1e300").is_err());
    }
}
