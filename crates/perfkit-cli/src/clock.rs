//! Durations on the command line and clock times on the terminal, both
//! through `jiff`: one parser for every flag that takes a time, and the
//! local time zone (`TZ`, `/etc/localtime`) without `localtime_r`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

/// The unit of a bare number: seconds for `-d` and intervals (as perf,
/// bcc and sysstat take them), milliseconds for `stat -I` (perf's), and
/// microseconds for off-CPU block times (bcc's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bare {
    Seconds,
    Millis,
    Micros,
}

/// The longest interval between reports: a day.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// A duration of zero or more: a bare number (fractions allowed) in the
/// `bare` unit, or jiff's friendly format (`500ms`, `1.5s`, `2m`, `1h30m`,
/// `250us`, `2 minutes`) or ISO 8601 (`PT2M`).
pub(crate) fn parse(s: &str, bare: Bare) -> Result<Duration, String> {
    let t = s.trim();
    let not_a_duration = || format!("{s:?} is not a duration (examples: 10, 2.5, 500ms, 1.5s, 2m, 1h30m)");
    if t.starts_with('-') {
        return Err(format!("a duration cannot be negative, got {s:?}"));
    }
    let too_long = || format!("the duration {s:?} is too long");
    if let Ok(v) = t.parse::<f64>() {
        if !v.is_finite() {
            return Err(not_a_duration());
        }
        let secs = match bare {
            Bare::Seconds => v,
            Bare::Millis => v / 1e3,
            Bare::Micros => v / 1e6,
        };
        return Duration::try_from_secs_f64(secs).map_err(|_| too_long());
    }
    let d: SignedDuration = t.parse().map_err(|_| not_a_duration())?;
    Duration::try_from(d).map_err(|_| too_long())
}

/// A duration above zero (`-d`): a bare number is seconds.
pub(crate) fn positive(s: &str) -> Result<Duration, String> {
    let d = parse(s, Bare::Seconds)
        .map_err(|e| if s.trim().starts_with('-') { format!("the duration must be positive, got {s:?}") } else { e })?;
    if d.is_zero() {
        return Err(format!("the duration must be positive, got {s:?}"));
    }
    Ok(d)
}

/// An interval between reports, from `min` to a day: a bare number is in
/// `bare` units.
pub(crate) fn interval(s: &str, bare: Bare, min: Duration) -> Result<Duration, String> {
    let d = parse(s, bare)?;
    if d < min || d > MAX_INTERVAL || d.is_zero() {
        return Err(format!("the interval must be from {min:?} to a day (86400 s), got {s:?}"));
    }
    Ok(d)
}

/// The tools' INTERVAL: above zero, at most a day; bare numbers are seconds.
pub(crate) fn tool_interval(s: &str) -> Result<Duration, String> {
    interval(s, Bare::Seconds, Duration::from_nanos(1))
}

/// The sys views' INTERVAL: 10 ms to a day; bare numbers are seconds.
pub(crate) fn sys_interval(s: &str) -> Result<Duration, String> {
    interval(s, Bare::Seconds, Duration::from_millis(10))
}

/// `stat -I`: 10 ms to a day; bare numbers are milliseconds, as perf's.
pub(crate) fn stat_interval(s: &str) -> Result<Duration, String> {
    interval(s, Bare::Millis, Duration::from_millis(10))
}

/// An off-CPU block time: bare numbers are microseconds (bcc's unit).
pub(crate) fn block_time(s: &str) -> Result<Duration, String> {
    parse(s, Bare::Micros)
}

/// Now as an RFC 3339 timestamp in UTC, the `time` of JSON documents.
pub(crate) fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

/// The local clock time now, `HH:MM:SS`.
pub(crate) fn now_hms() -> String {
    hms(Timestamp::now())
}

fn hms(t: Timestamp) -> String {
    t.to_zoned_datetime(TimeZone::system()).strftime("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_and_without_units() {
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
        assert!(positive("-1").unwrap_err().contains("must be positive"));
        assert!(block_time("-1").unwrap_err().contains("negative"));
        assert!(positive("0").unwrap_err().contains("must be positive"));
    }

    #[test]
    fn bare_units_per_flag() {
        assert_eq!(block_time("250").unwrap(), Duration::from_micros(250));
        assert_eq!(block_time("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(block_time("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(block_time("0").unwrap(), Duration::ZERO);
        assert_eq!(stat_interval("500").unwrap(), Duration::from_millis(500));
        assert_eq!(stat_interval("2s").unwrap(), Duration::from_secs(2));
        assert!(stat_interval("5").is_err(), "under 10 ms");
        assert_eq!(sys_interval("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(sys_interval("1m").unwrap(), Duration::from_secs(60));
        assert!(sys_interval("0.001").is_err());
        assert!(sys_interval("1e20").is_err());
        assert!(sys_interval("86401").is_err());
        assert_eq!(tool_interval("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "1e20", "nan", "-1", "abc"] {
            assert!(tool_interval(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn clock_times_follow_the_local_zone() {
        assert_eq!(now_hms().len(), 8);
    }
}
