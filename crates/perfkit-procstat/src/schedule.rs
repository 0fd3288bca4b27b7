//! When the samples of a run are due.

use std::time::{Duration, Instant};

/// Where an interval's end would overflow: past any real run.
const FAR: Duration = Duration::from_secs(1 << 32);

/// When the samples of a run are due, as the sysstat tools take them:
/// the `k`th interval ends at start + `k` × interval however long each
/// collection took (no drift), for COUNT intervals or without end.
///
/// ```
/// use std::time::Duration;
/// use perfkit_procstat::Schedule;
/// let mut s = Schedule::start(Duration::from_secs(1), Some(2));
/// assert_eq!(s.next_due(), Some(s.started() + Duration::from_secs(1)));
/// assert_eq!(s.next_due(), Some(s.started() + Duration::from_secs(2)));
/// assert_eq!(s.next_due(), None);
/// ```
#[derive(Clone, Debug)]
pub struct Schedule {
    started: Instant,
    interval: Duration,
    count: Option<u64>,
    given: u64,
}

impl Schedule {
    /// A schedule starting now: `count` intervals of `interval`, or
    /// without end (`None`).
    pub fn start(interval: Duration, count: Option<u64>) -> Self {
        Self { started: Instant::now(), interval, count, given: 0 }
    }

    /// When the schedule started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The end of the next interval; `None` once COUNT intervals were
    /// given.
    pub fn next_due(&mut self) -> Option<Instant> {
        if self.count.is_some_and(|c| self.given >= c) {
            return None;
        }
        self.given += 1;
        let offset = u32::try_from(self.given).ok().and_then(|n| self.interval.checked_mul(n)).unwrap_or(FAR);
        Some(self.started + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_do_not_drift_and_stop_after_count() {
        let mut s = Schedule::start(Duration::from_millis(250), None);
        let due: Vec<Duration> = (0..5).map(|_| s.next_due().unwrap() - s.started()).collect();
        assert_eq!(due, [250, 500, 750, 1000, 1250].map(Duration::from_millis));
        let mut s = Schedule::start(Duration::from_secs(1), Some(1));
        assert!(s.next_due().is_some());
        assert_eq!(s.next_due(), None);
        assert_eq!(s.next_due(), None);
        // Past u32 intervals: far away, not a panic.
        let mut s = Schedule { given: u64::from(u32::MAX), ..Schedule::start(Duration::from_secs(1 << 40), None) };
        assert_eq!(s.next_due().unwrap() - s.started(), FAR);
    }
}
