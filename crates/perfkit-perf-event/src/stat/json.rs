//! `perf stat`'s counts as one JSON document (docs/JSON.md, schema
//! version 1): the events with perf's derived figures, the process
//! counted, and how the command ended.
//!
//! ```
//! use perfkit_perf_event::stat::{EventCount, StatEvent, json::StatReport};
//! let mut task = EventCount::new(StatEvent::TaskClock, Some(2_000_000));
//! task.enabled_ns = 2_000_000;
//! let report = StatReport::new(&[task], std::time::Duration::from_millis(4), None, &[], true, None);
//! assert_eq!(report.events[0].derived, Some(0.5));
//! ```

use std::time::Duration;

use perfkit_target::{ExitStatus, ProcessInfo};
use serde::Serialize;

use super::{EventCount, derived};

/// One event of [`StatReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventJson {
    /// perf's derived figure (`CPUs utilized`...), if the event has one.
    pub derived: Option<f64>,
    /// Its unit.
    pub derived_unit: Option<&'static str>,
    /// The event's name, as perf names it.
    pub event: &'static str,
    /// The share of time the counter was scheduled (multiplexing).
    pub running: f64,
    /// Whether the machine counts it.
    pub supported: bool,
    /// `ns` for the clocks, else empty.
    pub unit: &'static str,
    /// Counted in user space only.
    pub user_only: bool,
    /// The count (`None` when not supported).
    pub value: Option<u64>,
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExitJson {
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl From<ExitStatus> for ExitJson {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Code(c) => Self { code: Some(c), signal: None },
            ExitStatus::Signal(sig) => Self { code: None, signal: Some(sig) },
        }
    }
}

/// `perfkit stat --json`'s document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatReport {
    /// The first process's command line, control characters as `\xNN`.
    pub command: Option<String>,
    /// Wall time, seconds (to the nanosecond).
    pub elapsed_seconds: f64,
    /// The events, in the order counted.
    pub events: Vec<EventJson>,
    /// How the command ended (`None` for `-p`, `-a`).
    pub exit: Option<ExitJson>,
    /// The first process counted.
    pub pid: Option<u32>,
    /// The processes counted.
    pub pids: Vec<u32>,
    /// Always 1.
    pub schema_version: u32,
    /// Every CPU counted (`-a`).
    pub system_wide: bool,
}

impl StatReport {
    /// The report of `counts` over `elapsed`: `info` is the process counted
    /// first (the command's, or the first PID), `pids` those given (the
    /// command's own when empty), `exit` how the command ended.
    pub fn new(
        counts: &[EventCount],
        elapsed: Duration,
        info: Option<&ProcessInfo>,
        pids: &[u32],
        system_wide: bool,
        exit: Option<ExitStatus>,
    ) -> Self {
        let elapsed_ns = elapsed.as_nanos() as u64;
        let events = counts
            .iter()
            .map(|c| {
                let d = derived(c.event, counts, elapsed_ns);
                EventJson {
                    derived: d.as_ref().map(|d| d.value),
                    derived_unit: d.as_ref().map(|d| d.unit),
                    event: c.event.name(),
                    running: c.running,
                    supported: c.value.is_some(),
                    unit: if c.event.is_clock() { "ns" } else { "" },
                    user_only: c.user_only,
                    value: c.value,
                }
            })
            .collect();
        let pids = match info {
            Some(info) if pids.is_empty() => vec![info.pid],
            _ => pids.to_vec(),
        };
        Self {
            command: info.map(|i| perfkit_model::escape_control(&i.display_command()).into_owned()),
            elapsed_seconds: (elapsed.as_secs_f64() * 1e9).round() / 1e9,
            events,
            exit: exit.map(ExitJson::from),
            pid: info.map(|i| i.pid),
            pids,
            schema_version: 1,
            system_wide,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::StatEvent;

    #[test]
    fn keys_and_values_as_documented() {
        let mut task = EventCount::new(StatEvent::TaskClock, Some(3_000_000));
        task.enabled_ns = 3_000_000;
        let cycles = EventCount::new(StatEvent::Cycles, None);
        let report = StatReport::new(
            &[task, cycles],
            Duration::from_millis(2),
            None,
            &[7, 8],
            false,
            Some(ExitStatus::Signal(9)),
        );
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"command":null,"elapsed_seconds":0.002,"events":[{"derived":1.5,"derived_unit":"CPUs utilized","event":"task-clock","running":1.0,"supported":true,"unit":"ns","user_only":false,"value":3000000},{"derived":null,"derived_unit":null,"event":"cycles","running":1.0,"supported":false,"unit":"","user_only":false,"value":null}],"exit":{"code":null,"signal":9},"pid":null,"pids":[7,8],"schema_version":1,"system_wide":false}"#
        );
    }
}
