//! Durations as people type them, through `jiff`: one parser for every
//! option that takes a time (perfkit's `-d`, intervals, off-CPU block
//! times). Parsing only: no clock or time zone is read here.
//!
//! ```
//! use std::time::Duration;
//! use perfkit_model::time::{Bare, parse_duration};
//!
//! assert_eq!(parse_duration("1.5s", Bare::Seconds).unwrap(), Duration::from_millis(1500));
//! assert_eq!(parse_duration("250", Bare::Micros).unwrap(), Duration::from_micros(250));
//! assert!(parse_duration("soon", Bare::Seconds).is_err());
//! ```

use std::time::Duration;

use jiff::SignedDuration;

/// The unit of a bare number: seconds for durations and intervals (as
/// perf, bcc and sysstat take them), milliseconds for perf's `stat -I`,
/// and microseconds for off-CPU block times (bcc's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bare {
    /// A bare number is seconds.
    Seconds,
    /// A bare number is milliseconds.
    Millis,
    /// A bare number is microseconds.
    Micros,
}

/// The longest interval between reports: a day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Why a text is not the duration asked for. Each variant holds the text
/// as given; the messages quote it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Neither a number nor a duration jiff reads.
    #[error("{0:?} is not a duration (examples: 10, 2.5, 500ms, 1.5s, 2m, 1h30m)")]
    NotADuration(String),
    /// A negative duration.
    #[error("a duration cannot be negative, got {0:?}")]
    Negative(String),
    /// Longer than a `std::time::Duration` holds.
    #[error("the duration {0:?} is too long")]
    TooLong(String),
    /// Zero or negative where only a positive duration will do.
    #[error("the duration must be positive, got {0:?}")]
    NotPositive(String),
    /// An interval outside `min` to a day.
    #[error("the interval must be from {min:?} to a day (86400 s), got {text:?}")]
    IntervalRange {
        /// The shortest interval allowed.
        min: Duration,
        /// The text as given.
        text: String,
    },
}

/// A duration of zero or more: a bare number (fractions allowed) in the
/// `bare` unit, or jiff's friendly format (`500ms`, `1.5s`, `2m`, `1h30m`,
/// `250us`, `2 minutes`) or ISO 8601 (`PT2M`).
pub fn parse_duration(s: &str, bare: Bare) -> Result<Duration, DurationError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(DurationError::Negative(s.to_owned()));
    }
    if let Ok(v) = t.parse::<f64>() {
        if !v.is_finite() {
            return Err(DurationError::NotADuration(s.to_owned()));
        }
        let secs = match bare {
            Bare::Seconds => v,
            Bare::Millis => v / 1e3,
            Bare::Micros => v / 1e6,
        };
        return Duration::try_from_secs_f64(secs).map_err(|_| DurationError::TooLong(s.to_owned()));
    }
    let d: SignedDuration = t.parse().map_err(|_| DurationError::NotADuration(s.to_owned()))?;
    Duration::try_from(d).map_err(|_| DurationError::TooLong(s.to_owned()))
}

/// A duration above zero: a bare number is seconds.
pub fn positive_duration(s: &str) -> Result<Duration, DurationError> {
    let d = parse_duration(s, Bare::Seconds).map_err(|e| match e {
        DurationError::Negative(text) => DurationError::NotPositive(text),
        e => e,
    })?;
    if d.is_zero() {
        return Err(DurationError::NotPositive(s.to_owned()));
    }
    Ok(d)
}

/// An interval between reports, from `min` (and above zero) to a day
/// ([`MAX_INTERVAL`]): a bare number is in `bare` units.
pub fn parse_interval(s: &str, bare: Bare, min: Duration) -> Result<Duration, DurationError> {
    let d = parse_duration(s, bare)?;
    if d < min || d > MAX_INTERVAL || d.is_zero() {
        return Err(DurationError::IntervalRange { min, text: s.to_owned() });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_time(s: &str) -> Result<Duration, DurationError> {
        parse_duration(s, Bare::Micros)
    }

    #[test]
    fn durations_with_and_without_units() {
        let positive = positive_duration;
        assert_eq!(positive("10").unwrap(), Duration::from_secs(10));
        assert_eq!(positive("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(positive("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(positive("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(positive("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(positive("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(positive("2 minutes").unwrap(), Duration::from_secs(120));
        assert_eq!(positive("PT2M").unwrap(), Duration::from_secs(120));
        for bad in ["", "inf", "NaN", "1e300", "0", "0s", "-1", "-3s", "soon", "1d", "2mo", "10 parsecs"] {
            assert!(positive(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(positive("-1").unwrap_err().to_string(), "the duration must be positive, got \"-1\"");
        assert_eq!(block_time("-1").unwrap_err().to_string(), "a duration cannot be negative, got \"-1\"");
        assert!(positive("0").unwrap_err().to_string().contains("must be positive"));
        assert_eq!(
            positive("soon").unwrap_err().to_string(),
            "\"soon\" is not a duration (examples: 10, 2.5, 500ms, 1.5s, 2m, 1h30m)"
        );
        assert_eq!(positive("1e300").unwrap_err(), DurationError::TooLong("1e300".into()));
    }

    #[test]
    fn bare_units_and_interval_bounds() {
        let ms10 = Duration::from_millis(10);
        assert_eq!(block_time("250").unwrap(), Duration::from_micros(250));
        assert_eq!(block_time("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(block_time("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(block_time("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_interval("500", Bare::Millis, ms10).unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2s", Bare::Millis, ms10).unwrap(), Duration::from_secs(2));
        assert!(parse_interval("5", Bare::Millis, ms10).is_err(), "under 10 ms");
        assert_eq!(parse_interval("0.5", Bare::Seconds, ms10).unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("1m", Bare::Seconds, ms10).unwrap(), Duration::from_secs(60));
        assert!(parse_interval("0.001", Bare::Seconds, ms10).is_err());
        assert!(parse_interval("1e20", Bare::Seconds, ms10).is_err());
        assert_eq!(
            parse_interval("86401", Bare::Seconds, ms10).unwrap_err().to_string(),
            "the interval must be from 10ms to a day (86400 s), got \"86401\""
        );
        let any = Duration::from_nanos(1);
        assert_eq!(parse_interval("0.5", Bare::Seconds, any).unwrap(), Duration::from_millis(500));
        for bad in ["0", "1e20", "nan", "-1", "abc"] {
            assert!(parse_interval(bad, Bare::Seconds, any).is_err(), "{bad:?} was accepted");
        }
    }
}
