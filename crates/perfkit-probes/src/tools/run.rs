//! Running a tool as bcc's tools run: what it watches ([`Watch`]: a
//! selection and the command it started), reports every interval
//! ([`run_intervals`] with a [`Schedule`]: `runqlat 1 10`, `funccount -i 1
//! -d 10`), or events as they come ([`run_events`]: `execsnoop -d 5`),
//! until the schedule ends, a stop flag is set (the caller's Ctrl-C
//! handler) or the watched command exits; and what was lost since the last
//! report ([`losses`]).
//!
//! Every loop here takes the stop flag from its caller: the library installs
//! no signal handler.
//!
//! "runqlat every second for 10 s", in an in-house tool:
//!
//! ```no_run
//! use std::{sync::atomic::AtomicBool, time::Duration};
//! use perfkit_probes::tools::{Runqlat, RunqlatConfig, Tool, run::{Schedule, Watch, run_intervals}};
//!
//! let runqlat = Runqlat::start(RunqlatConfig::default())?;
//! let stop = AtomicBool::new(false); // set it from a signal handler
//! let schedule = Schedule { interval: Some(Duration::from_secs(1)), count: Some(10), ..Schedule::default() };
//! run_intervals(&schedule, &mut Watch::machine(), &stop, || Ok(()), |_| {
//!     for h in runqlat.histograms()? {
//!         println!("p99 {:?} us", h.quantile_us(0.99));
//!     }
//!     Ok::<(), perfkit_probes::ProbeError>(())
//! })?;
//! # Ok::<(), perfkit_probes::ProbeError>(())
//! ```

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use perfkit_target::{ExitStatus, HeldCommand, TargetError};

use super::{MemleakStats, ToolStats};
use crate::Selection;

/// What a tool watches: the tasks (a [`Selection`] for the tool's
/// configuration, `None` for every task) and the command it started, if
/// any (held until the tool is attached, then [`released`](Watch::release);
/// the loops end when it exits).
#[derive(Debug, Default)]
pub struct Watch {
    selection: Option<Selection>,
    command: Option<HeldCommand>,
}

impl Watch {
    /// The tasks of `selection` (`None`: every task), and the held
    /// `command` among them (as `perfkit_profiler::Target::into_tool_target`
    /// gives both).
    pub fn new(selection: Option<Selection>, command: Option<HeldCommand>) -> Self {
        Self { selection, command }
    }

    /// Every task of the machine, and no command.
    pub fn machine() -> Self {
        Self::default()
    }

    /// The selection, for the tool's configuration.
    pub fn selection(&self) -> Option<Selection> {
        self.selection.clone()
    }

    /// The command's process ID, if there is a command.
    pub fn command_pid(&self) -> Option<u32> {
        self.command.as_ref().map(HeldCommand::pid)
    }

    /// Lets the command run: call it once the tool is attached, so that
    /// nothing the command does is missed.
    pub fn release(&mut self) -> Result<(), TargetError> {
        match &mut self.command {
            Some(c) => c.release(),
            None => Ok(()),
        }
    }

    /// The command's exit status, once it has exited (`None` while it runs,
    /// or without a command).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.command.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Ends the run: a command still running is terminated (SIGTERM, then
    /// SIGKILL after `grace`). Returns the exit code to pass on, as perf
    /// does: the command's own (as a shell reports it, 128 + signal for a
    /// signal) if it exited, else 0.
    pub fn finish(mut self, exited: Option<ExitStatus>, grace: Duration) -> u8 {
        match (exited, self.command.as_mut()) {
            (Some(s), _) => s.shell_code().clamp(0, 255) as u8,
            (None, Some(c)) => {
                let _ = c.terminate(grace);
                0
            }
            (None, None) => 0,
        }
    }
}

/// When [`run_intervals`] reports and when it stops. The default: one
/// report, at the stop flag or the command's exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Time between reports; `None`: one report at the end.
    pub interval: Option<Duration>,
    /// Reports before stopping (bcc's COUNT); `None`: no limit.
    pub count: Option<u64>,
    /// Stop this long after the start, with a last report (bcc's `-d`).
    pub duration: Option<Duration>,
}

/// Whether a report is the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// An interval ended and another follows.
    Interval,
    /// The last report: the stop flag, the count, the duration or the
    /// command's exit.
    Last,
}

/// How often the loops look at the stop flag and the command.
const TICK: Duration = Duration::from_millis(100);

/// Why a wait ended.
enum End {
    Interval,
    Stop,
    Exited(ExitStatus),
}

/// Waits until `until` (or the stop flag, or the command's exit), calling
/// `tick` every 100 ms.
fn wait<E>(
    until: Option<Instant>,
    watch: &mut Watch,
    stop: &AtomicBool,
    tick: &mut impl FnMut() -> Result<(), E>,
) -> Result<End, E> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(End::Stop);
        }
        if let Some(s) = watch.exited() {
            return Ok(End::Exited(s));
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return Ok(End::Interval);
        }
        tick()?;
        std::thread::sleep(
            TICK.min(until.map_or(Duration::MAX, |u| u.saturating_duration_since(Instant::now())))
                .max(Duration::from_millis(1)),
        );
    }
}

/// Runs a reporting tool: calls `report` at the end of every interval of
/// `schedule` and once more at the end (the stop flag, the count reached,
/// the duration over, or the watched command's exit), and `tick` every
/// 100 ms in between (to drain a ring buffer, refresh mappings...).
/// Returns the command's exit status if it exited; the first error of a
/// callback ends the run and is returned.
pub fn run_intervals<E>(
    schedule: &Schedule,
    watch: &mut Watch,
    stop: &AtomicBool,
    mut tick: impl FnMut() -> Result<(), E>,
    mut report: impl FnMut(Report) -> Result<(), E>,
) -> Result<Option<ExitStatus>, E> {
    let deadline = schedule.duration.map(|d| Instant::now() + d);
    let mut reports = 0u64;
    loop {
        let next = schedule.interval.map(|i| Instant::now() + i);
        let until = match (next, deadline) {
            (Some(n), Some(d)) => Some(n.min(d)),
            (n, d) => n.or(d),
        };
        let end = wait(until, watch, stop, &mut tick)?;
        reports += 1;
        let more = matches!(end, End::Interval)
            && schedule.interval.is_some()
            && schedule.count.is_none_or(|c| reports < c)
            && deadline.is_none_or(|d| Instant::now() < d);
        report(if more { Report::Interval } else { Report::Last })?;
        match end {
            _ if more => continue,
            End::Exited(s) => return Ok(Some(s)),
            _ => return Ok(None),
        }
    }
}

/// Runs an event tool: calls `poll` with a timeout (100 ms) and the time
/// of the start, over and over, until `duration` is over, the stop flag is
/// set, the watched command has exited or `poll` returned `false` (it
/// wants no more); then once more with a short timeout, for the events of
/// the last moments. Returns the command's exit status if it exited.
pub fn run_events<E>(
    duration: Option<Duration>,
    watch: &mut Watch,
    stop: &AtomicBool,
    mut poll: impl FnMut(Duration, Instant) -> Result<bool, E>,
) -> Result<Option<ExitStatus>, E> {
    let started = Instant::now();
    let mut exited = None;
    let mut more = true;
    loop {
        let done = !more
            || stop.load(Ordering::Relaxed)
            || duration.is_some_and(|d| started.elapsed() >= d)
            || exited.is_some();
        more = poll(if done { Duration::from_millis(20) } else { TICK }, started)?;
        if done {
            return Ok(exited);
        }
        if let Some(s) = watch.exited() {
            // One more round for the events of its last moments.
            exited = Some(s);
        }
    }
}

/// What a tool could not record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LossKind {
    /// Events lost: the ring buffer was full (the reader fell behind).
    RingFull,
    /// Events not timed: the map of starts was full.
    StartsLost,
    /// Histogram or counter updates lost: the map was full.
    UpdatesLost,
    /// memleak: allocations not recorded, the map of outstanding
    /// allocations was full.
    AllocationsLost,
    /// memleak: allocations not recorded, the map of threads in an
    /// allocator was full.
    AllocatorThreadsLost,
    /// memleak: allocations left out of the combined totals, the map of
    /// stacks was full.
    CombinedLost,
    /// memleak: allocations recorded without their stack, the stack map
    /// was full.
    StacksLost,
}

/// Something a tool could not record, counted since the previous report;
/// its `Display` says what and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Loss {
    /// What was lost.
    pub kind: LossKind,
    /// How many (events, updates or allocations).
    pub count: u64,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.count;
        match self.kind {
            LossKind::RingFull => write!(f, "{n} events lost: the ring buffer was full (the reader fell behind)"),
            LossKind::StartsLost => write!(f, "{n} events not timed: the map of starts was full"),
            LossKind::UpdatesLost => write!(f, "{n} updates lost: the histogram map was full"),
            LossKind::AllocationsLost => {
                write!(f, "{n} allocations not recorded: the map of outstanding allocations was full")
            }
            LossKind::AllocatorThreadsLost => {
                write!(f, "{n} allocations not recorded: the map of threads in an allocator was full")
            }
            LossKind::CombinedLost => {
                write!(f, "{n} allocations left out of the combined totals: the map of stacks was full")
            }
            LossKind::StacksLost => {
                write!(f, "{n} allocations recorded without their stack (the stack map was full)")
            }
        }
    }
}

/// The losses among `counts` (kind, now, before) that grew.
fn grown(counts: impl IntoIterator<Item = (LossKind, u64, u64)>) -> Vec<Loss> {
    counts
        .into_iter()
        .filter(|(_, now, before)| now > before)
        .map(|(kind, now, before)| Loss { kind, count: now - before })
        .collect()
}

/// What `now` counts as lost beyond `before` (the counters at the previous
/// report): nothing lost goes unsaid.
pub fn losses(now: &ToolStats, before: &ToolStats) -> Vec<Loss> {
    grown([
        (LossKind::RingFull, now.ring_full, before.ring_full),
        (LossKind::StartsLost, now.starts_lost, before.starts_lost),
        (LossKind::UpdatesLost, now.updates_lost, before.updates_lost),
    ])
}

/// memleak's losses beyond `before`, as [`losses`].
pub fn memleak_losses(now: &MemleakStats, before: &MemleakStats) -> Vec<Loss> {
    grown([
        (LossKind::AllocationsLost, now.allocs_lost, before.allocs_lost),
        (LossKind::AllocatorThreadsLost, now.sizes_lost, before.sizes_lost),
        (LossKind::CombinedLost, now.combined_lost, before.combined_lost),
        (LossKind::StacksLost, now.stacks_lost, before.stacks_lost),
    ])
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn intervals_report_count_times_then_stop() {
        let schedule = Schedule { interval: Some(Duration::from_millis(5)), count: Some(3), duration: None };
        let mut kinds = Vec::new();
        let exited = run_intervals(
            &schedule,
            &mut Watch::machine(),
            &AtomicBool::new(false),
            || Ok::<_, ()>(()),
            |r| {
                kinds.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(exited, None);
        assert_eq!(kinds, [Report::Interval, Report::Interval, Report::Last]);
    }

    #[test]
    fn the_duration_ends_the_intervals_with_a_last_report() {
        let schedule = Schedule {
            interval: Some(Duration::from_millis(20)),
            count: None,
            duration: Some(Duration::from_millis(110)),
        };
        let started = Instant::now();
        let mut kinds = Vec::new();
        run_intervals(
            &schedule,
            &mut Watch::machine(),
            &AtomicBool::new(false),
            || Ok::<_, ()>(()),
            |r| {
                kinds.push(r);
                Ok(())
            },
        )
        .unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(110) && took < Duration::from_secs(5), "{took:?}");
        assert_eq!(kinds.last(), Some(&Report::Last));
        assert_eq!(kinds.iter().filter(|k| **k == Report::Last).count(), 1);
        assert!(kinds.len() >= 5 && kinds.len() <= 7, "{kinds:?}");
    }

    #[test]
    fn the_stop_flag_gives_one_last_report_and_errors_end_the_run() {
        let stop = AtomicBool::new(false);
        let ticks = Cell::new(0);
        let mut kinds = Vec::new();
        run_intervals(
            &Schedule::default(),
            &mut Watch::machine(),
            &stop,
            || {
                ticks.set(ticks.get() + 1);
                if ticks.get() == 3 {
                    stop.store(true, Ordering::Relaxed);
                }
                Ok::<_, ()>(())
            },
            |r| {
                kinds.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(kinds, [Report::Last]);
        assert_eq!(ticks.get(), 3);
        let schedule = Schedule { interval: Some(Duration::from_millis(1)), ..Schedule::default() };
        let r = run_intervals(&schedule, &mut Watch::machine(), &AtomicBool::new(false), || Ok(()), |_| Err("full"));
        assert_eq!(r, Err("full"));
    }

    #[test]
    fn events_poll_once_more_after_the_end() {
        let mut polls = 0;
        run_events(None, &mut Watch::machine(), &AtomicBool::new(false), |timeout, _| {
            polls += 1;
            assert_eq!(timeout, if polls == 3 { Duration::from_millis(20) } else { TICK });
            Ok::<_, ()>(polls < 2)
        })
        .unwrap();
        assert_eq!(polls, 3);
        let stop = AtomicBool::new(true);
        let mut polls = 0;
        run_events(Some(Duration::from_secs(60)), &mut Watch::machine(), &stop, |_, _| {
            polls += 1;
            Ok::<_, ()>(true)
        })
        .unwrap();
        assert_eq!(polls, 1);
    }

    #[test]
    fn losses_are_the_new_ones_only() {
        let before = ToolStats { ring_full: 2, starts_lost: 1, ..ToolStats::default() };
        let now = ToolStats { events: 9, ring_full: 5, starts_lost: 1, updates_lost: 4, unmatched: 3 };
        let l = losses(&now, &before);
        assert_eq!(l, [Loss { kind: LossKind::RingFull, count: 3 }, Loss { kind: LossKind::UpdatesLost, count: 4 }]);
        assert_eq!(l[0].to_string(), "3 events lost: the ring buffer was full (the reader fell behind)");
        assert!(losses(&now, &now).is_empty());
        let m = MemleakStats { stacks_lost: 2, ..MemleakStats::default() };
        assert_eq!(memleak_losses(&m, &MemleakStats::default()), [Loss { kind: LossKind::StacksLost, count: 2 }]);
    }
}
