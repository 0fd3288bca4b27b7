//! Durations on the command line (parsed by `perfkit_model::time`, one
//! parser for every flag that takes a time) and clock times on the
//! terminal through `jiff`: the local time zone (`TZ`, `/etc/localtime`)
//! without `localtime_r`.

use std::time::Duration;

use jiff::{Timestamp, tz::TimeZone};
use perfkit_model::time::{Bare, parse_duration, parse_interval, positive_duration};

/// A duration above zero (`-d`): a bare number is seconds.
pub(crate) fn positive(s: &str) -> Result<Duration, String> {
    positive_duration(s).map_err(|e| e.to_string())
}

/// The tools' INTERVAL: above zero, at most a day; bare numbers are seconds.
pub(crate) fn tool_interval(s: &str) -> Result<Duration, String> {
    parse_interval(s, Bare::Seconds, Duration::from_nanos(1)).map_err(|e| e.to_string())
}

/// An off-CPU block time: bare numbers are microseconds (bcc's unit).
pub(crate) fn block_time(s: &str) -> Result<Duration, String> {
    parse_duration(s, Bare::Micros).map_err(|e| e.to_string())
}

/// Now as an RFC 3339 timestamp in UTC, the `time` of JSON documents.
pub(crate) fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

/// The local clock time now, `HH:MM:SS`.
pub(crate) fn now_hms() -> String {
    Timestamp::now().to_zoned_datetime(TimeZone::system()).strftime("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' bare units (the parser's own tests are in perfkit-model).
    #[test]
    fn bare_units_per_flag() {
        assert_eq!(positive("10").unwrap(), Duration::from_secs(10));
        assert!(positive("0").unwrap_err().contains("must be positive"));
        assert_eq!(block_time("250").unwrap(), Duration::from_micros(250));
        assert_eq!(tool_interval("0.5").unwrap(), Duration::from_millis(500));
        assert!(tool_interval("0").is_err());
    }

    #[test]
    fn clock_times_follow_the_local_zone() {
        assert_eq!(now_hms().len(), 8);
        assert!(now_rfc3339().ends_with('Z'));
    }
}
