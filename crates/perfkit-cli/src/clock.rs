//! Clock times on the terminal through `jiff`: the local time zone (`TZ`,
//! `/etc/localtime`) without `localtime_r`. (Durations on the command
//! line are the flags modules' `perfkit_model::time`.)

use jiff::{Timestamp, tz::TimeZone};

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

    #[test]
    fn clock_times_follow_the_local_zone() {
        assert_eq!(now_hms().len(), 8);
        assert!(now_rfc3339().ends_with('Z'));
    }
}
