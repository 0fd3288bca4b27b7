//! Counting events like `perf stat`, with the `perf-event2` crate's
//! counters; [`text`] prints them as perf does.

use std::{
    fmt, io,
    str::FromStr,
    time::{Duration, Instant},
};

use perf_event::{
    Builder, Counter, ReadFormat,
    events::{Cache, CacheId, CacheOp, CacheResult, Hardware, Software},
};

use crate::{
    error::{PerfError, classify},
    sampler::{online_cpus, threads_of},
};

pub mod json;
pub mod text;

/// An event `perfkit stat` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatEvent {
    /// CPU time of the target's threads, nanoseconds.
    TaskClock,
    /// CPU clock, nanoseconds.
    CpuClock,
    /// Context switches.
    ContextSwitches,
    /// Migrations between CPUs.
    CpuMigrations,
    /// Page faults.
    PageFaults,
    /// Minor page faults.
    MinorFaults,
    /// Major page faults.
    MajorFaults,
    /// CPU cycles (hardware).
    Cycles,
    /// Instructions retired (hardware).
    Instructions,
    /// Branch instructions (hardware).
    Branches,
    /// Mispredicted branches (hardware).
    BranchMisses,
    /// Last-level cache references (hardware).
    CacheReferences,
    /// Last-level cache misses (hardware).
    CacheMisses,
    /// L1 data cache loads (hardware cache event).
    L1dLoads,
    /// L1 data cache load misses (hardware cache event).
    L1dLoadMisses,
}

impl StatEvent {
    /// Every event, with perf's names.
    pub const ALL: [StatEvent; 15] = [
        StatEvent::TaskClock,
        StatEvent::CpuClock,
        StatEvent::ContextSwitches,
        StatEvent::CpuMigrations,
        StatEvent::PageFaults,
        StatEvent::MinorFaults,
        StatEvent::MajorFaults,
        StatEvent::Cycles,
        StatEvent::Instructions,
        StatEvent::Branches,
        StatEvent::BranchMisses,
        StatEvent::CacheReferences,
        StatEvent::CacheMisses,
        StatEvent::L1dLoads,
        StatEvent::L1dLoadMisses,
    ];

    /// What `perf stat` counts without `-e`.
    pub const DEFAULT: [StatEvent; 8] = [
        StatEvent::TaskClock,
        StatEvent::ContextSwitches,
        StatEvent::CpuMigrations,
        StatEvent::PageFaults,
        StatEvent::Cycles,
        StatEvent::Instructions,
        StatEvent::Branches,
        StatEvent::BranchMisses,
    ];

    /// perf's name for the event.
    pub fn name(self) -> &'static str {
        match self {
            StatEvent::TaskClock => "task-clock",
            StatEvent::CpuClock => "cpu-clock",
            StatEvent::ContextSwitches => "context-switches",
            StatEvent::CpuMigrations => "cpu-migrations",
            StatEvent::PageFaults => "page-faults",
            StatEvent::MinorFaults => "minor-faults",
            StatEvent::MajorFaults => "major-faults",
            StatEvent::Cycles => "cycles",
            StatEvent::Instructions => "instructions",
            StatEvent::Branches => "branches",
            StatEvent::BranchMisses => "branch-misses",
            StatEvent::CacheReferences => "cache-references",
            StatEvent::CacheMisses => "cache-misses",
            StatEvent::L1dLoads => "L1-dcache-loads",
            StatEvent::L1dLoadMisses => "L1-dcache-load-misses",
        }
    }

    /// Whether the count is a time in nanoseconds.
    pub fn is_clock(self) -> bool {
        matches!(self, StatEvent::TaskClock | StatEvent::CpuClock)
    }

    fn configure(self, b: &mut Builder<'_>) {
        let cache = |which, result| Cache { which, operation: CacheOp::READ, result };
        match self {
            StatEvent::TaskClock => b.event(Software::TASK_CLOCK),
            StatEvent::CpuClock => b.event(Software::CPU_CLOCK),
            StatEvent::ContextSwitches => b.event(Software::CONTEXT_SWITCHES),
            StatEvent::CpuMigrations => b.event(Software::CPU_MIGRATIONS),
            StatEvent::PageFaults => b.event(Software::PAGE_FAULTS),
            StatEvent::MinorFaults => b.event(Software::PAGE_FAULTS_MIN),
            StatEvent::MajorFaults => b.event(Software::PAGE_FAULTS_MAJ),
            StatEvent::Cycles => b.event(Hardware::CPU_CYCLES),
            StatEvent::Instructions => b.event(Hardware::INSTRUCTIONS),
            StatEvent::Branches => b.event(Hardware::BRANCH_INSTRUCTIONS),
            StatEvent::BranchMisses => b.event(Hardware::BRANCH_MISSES),
            StatEvent::CacheReferences => b.event(Hardware::CACHE_REFERENCES),
            StatEvent::CacheMisses => b.event(Hardware::CACHE_MISSES),
            StatEvent::L1dLoads => b.event(cache(CacheId::L1D, CacheResult::ACCESS)),
            StatEvent::L1dLoadMisses => b.event(cache(CacheId::L1D, CacheResult::MISS)),
        };
    }
}

impl fmt::Display for StatEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StatEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let alias = match s {
            "cpu-cycles" => "cycles",
            "branch-instructions" => "branches",
            "cs" => "context-switches",
            "migrations" => "cpu-migrations",
            "faults" => "page-faults",
            other => other,
        };
        StatEvent::ALL.into_iter().find(|e| e.name() == alias).ok_or_else(|| {
            let names: Vec<&str> = StatEvent::ALL.iter().map(|e| e.name()).collect();
            format!("unknown event {s:?} (one of: {})", names.join(", "))
        })
    }
}

/// One event's total over the target's threads.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct EventCount {
    /// The event.
    pub event: StatEvent,
    /// The count, scaled up when the kernel had to multiplex counters;
    /// `None` when the machine cannot count this event.
    pub value: Option<u64>,
    /// Share of the time the counter was running (1.0 without
    /// multiplexing).
    pub running: f64,
    /// Counted in user mode only (`:u`): kernel counting was not permitted
    /// (`kernel.perf_event_paranoid` ≥ 2 without CAP_PERFMON).
    pub user_only: bool,
    /// Time the counters were enabled, summed over the threads or CPUs
    /// counted (nanoseconds; perf's `run_time` with `-x`).
    pub enabled_ns: u64,
}

impl EventCount {
    /// A count read elsewhere (or made up for a test): counted the whole
    /// time (`running` 1.0), kernel mode included, no enabled time.
    pub fn new(event: StatEvent, value: Option<u64>) -> Self {
        Self { event, value, running: 1.0, user_only: false, enabled_ns: 0 }
    }

    /// What was counted since `earlier`, a reading of the same counter
    /// (an interval of `perf stat -I`): the count and the enabled time
    /// less `earlier`'s.
    pub fn since(&self, earlier: &EventCount) -> EventCount {
        let mut d = *self;
        d.value = match (self.value, earlier.value) {
            (Some(n), Some(b)) => Some(n.saturating_sub(b)),
            (n, _) => n,
        };
        d.enabled_ns = self.enabled_ns.saturating_sub(earlier.enabled_ns);
        d
    }
}

/// What a [`StatSession`] counts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatTarget {
    /// Every thread of these processes, threads and child processes
    /// created later included (`perf stat -p`).
    Processes(Vec<u32>),
    /// Every CPU, whatever runs there (`perf stat -a`): one counter per
    /// online CPU.
    All,
}

/// Counters on every thread of a list of processes, threads created later
/// included, or on every CPU.
pub struct StatSession {
    counters: Vec<(StatEvent, Option<Vec<Counter>>, bool)>,
}

impl fmt::Debug for StatSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatSession").field("events", &self.counters.len()).finish()
    }
}

/// Where one counter is opened: a thread on any CPU, or any thread on one
/// CPU.
#[derive(Clone, Copy)]
enum Slot {
    /// A thread; `required`: the main thread of a process given, which
    /// must exist (another thread may exit meanwhile).
    Thread {
        tid: u32,
        required: bool,
    },
    Cpu(usize),
}

impl StatSession {
    /// Starts counting `events` on every thread of `pid` (at its exec with
    /// `enable_on_exec`). An event the machine cannot count is reported
    /// as not supported, as perf does; a missing privilege is an error.
    pub fn start(pid: u32, events: &[StatEvent], enable_on_exec: bool) -> Result<Self, PerfError> {
        Self::start_target(&StatTarget::Processes(vec![pid]), events, enable_on_exec)
    }

    /// Starts counting `events` on `target` (at the exec of its single
    /// process with `enable_on_exec`). An event the machine cannot count
    /// is reported as not supported, as perf does; a missing privilege is
    /// an error (counting every CPU needs CAP_PERFMON, or
    /// `kernel.perf_event_paranoid` of 0 or less).
    pub fn start_target(target: &StatTarget, events: &[StatEvent], enable_on_exec: bool) -> Result<Self, PerfError> {
        let slots: Vec<Slot> = match target {
            StatTarget::Processes(pids) => {
                if pids.is_empty() {
                    return Err(PerfError::InvalidConfig("no process to count".to_owned()));
                }
                let mut slots = Vec::new();
                for &pid in pids {
                    let tids = threads_of(pid);
                    if tids.is_empty() {
                        return Err(PerfError::NoSuchProcess(pid));
                    }
                    slots.extend(tids.into_iter().map(|tid| Slot::Thread { tid, required: tid == pid }));
                }
                slots
            }
            StatTarget::All => online_cpus()?.into_iter().map(Slot::Cpu).collect(),
        };
        let mut counters = Vec::with_capacity(events.len());
        let mut user_only = false;
        for &event in events {
            let mut per_slot = Vec::with_capacity(slots.len());
            let mut supported = true;
            for &slot in &slots {
                let build = |user_only: bool| {
                    let mut b = Builder::new(Software::DUMMY);
                    event.configure(&mut b);
                    match slot {
                        Slot::Thread { tid, .. } => {
                            b.observe_pid(tid as i32).any_cpu().inherit(true);
                        }
                        Slot::Cpu(cpu) => {
                            b.any_pid().one_cpu(cpu);
                        }
                    }
                    b.enabled(!enable_on_exec)
                        .enable_on_exec(enable_on_exec)
                        .exclude_kernel(user_only)
                        .exclude_hv(true)
                        .read_format(ReadFormat::TOTAL_TIME_ENABLED | ReadFormat::TOTAL_TIME_RUNNING);
                    b.build()
                };
                let mut built = build(user_only);
                // As perf does: without permission to count in the kernel,
                // count user mode only (a process's threads; every CPU
                // needs the permission either way).
                if !user_only
                    && matches!(slot, Slot::Thread { .. })
                    && matches!(built.as_ref().map_err(|e| e.raw_os_error()), Err(Some(libc::EACCES | libc::EPERM)))
                {
                    user_only = true;
                    built = build(true);
                }
                let tid = match slot {
                    Slot::Thread { tid, .. } => Some(tid),
                    Slot::Cpu(_) => None,
                };
                match built {
                    Ok(c) => per_slot.push(c),
                    Err(e) => match classify("opening a counting event", tid, e) {
                        PerfError::Unsupported { .. } => {
                            supported = false;
                            break;
                        }
                        // A thread that exited meanwhile.
                        PerfError::NoSuchProcess(_) if matches!(slot, Slot::Thread { required: false, .. }) => {}
                        PerfError::Io { source, .. }
                            if source.raw_os_error() == Some(libc::EINVAL) && !is_software(event) =>
                        {
                            supported = false;
                            break;
                        }
                        other => return Err(other),
                    },
                }
            }
            counters.push((event, supported.then_some(per_slot), user_only));
        }
        Ok(Self { counters })
    }

    /// Counts in intervals, as `perf stat -I` does: every `every` from
    /// `started` (and at `last`, the end of the count, if any), reads the
    /// counters and writes the interval's counts to `out` in `layout`,
    /// after its header. `wait(until)` blocks until the instant `until`
    /// and returns true, or returns false as soon as the count ends early
    /// (the target exited, an interrupt); the interval cut short is written
    /// too, and is the last. A failed write (standard error gone) does not
    /// stop the count: the first one is returned at its end.
    pub fn write_intervals(
        &mut self,
        out: &mut impl io::Write,
        layout: text::Layout,
        started: Instant,
        every: Duration,
        last: Option<Instant>,
        mut wait: impl FnMut(Instant) -> bool,
    ) -> io::Result<()> {
        let mut intervals = text::Intervals::new(layout);
        let mut result = intervals.write_header(out);
        let mut k = 0u32;
        loop {
            k = k.saturating_add(1);
            let due = started + every * k;
            let until = last.map_or(due, |l| l.min(due));
            let ran = wait(until);
            let written = intervals.write(out, started.elapsed(), self.read());
            result = result.and(written);
            if !ran || last.is_some_and(|l| until >= l) {
                return result;
            }
        }
    }

    /// The counts so far, in the order the events were given.
    pub fn read(&mut self) -> Vec<EventCount> {
        self.counters
            .iter_mut()
            .map(|(event, counters, user_only)| {
                let user_only = *user_only;
                let Some(counters) = counters else {
                    return EventCount { event: *event, value: None, running: 0.0, user_only, enabled_ns: 0 };
                };
                let (mut value, mut enabled, mut running) = (0u128, 0u128, 0u128);
                for c in counters.iter_mut() {
                    if let Ok(data) = c.read_full() {
                        let (e, r) = (
                            data.time_enabled().map_or(0, |d| d.as_nanos()),
                            data.time_running().map_or(0, |d| d.as_nanos()),
                        );
                        // Scale a multiplexed counter to its enabled time.
                        let v = u128::from(data.count());
                        value += if r > 0 && r < e { v * e / r } else { v };
                        enabled += e;
                        running += r;
                    }
                }
                // A hardware event the kernel accepted but never scheduled
                // (no PMU in this VM) counts as not supported.
                let never_ran = enabled > 0 && running == 0 && !is_software(*event);
                EventCount {
                    event: *event,
                    value: (!never_ran).then_some(value.min(u128::from(u64::MAX)) as u64),
                    running: if enabled > 0 { running as f64 / enabled as f64 } else { 1.0 },
                    user_only,
                    enabled_ns: enabled.min(u128::from(u64::MAX)) as u64,
                }
            })
            .collect()
    }
}

fn is_software(e: StatEvent) -> bool {
    matches!(
        e,
        StatEvent::TaskClock
            | StatEvent::CpuClock
            | StatEvent::ContextSwitches
            | StatEvent::CpuMigrations
            | StatEvent::PageFaults
            | StatEvent::MinorFaults
            | StatEvent::MajorFaults
    )
}

/// A figure derived from counts, as perf prints after `#`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Derived {
    /// The value.
    pub value: f64,
    /// What it is: `CPUs utilized`, `/sec`, `insn per cycle`, `of all branches`.
    pub unit: &'static str,
}

/// perf's derived figure for `event`, given all counts and the wall time.
pub fn derived(event: StatEvent, counts: &[EventCount], elapsed_ns: u64) -> Option<Derived> {
    let get = |e: StatEvent| counts.iter().find(|c| c.event == e).and_then(|c| c.value);
    let task_ns = get(StatEvent::TaskClock).or(get(StatEvent::CpuClock));
    let value = get(event)?;
    match event {
        StatEvent::TaskClock | StatEvent::CpuClock if elapsed_ns > 0 => {
            Some(Derived { value: value as f64 / elapsed_ns as f64, unit: "CPUs utilized" })
        }
        StatEvent::Instructions => {
            let cycles = get(StatEvent::Cycles).filter(|&c| c > 0)?;
            Some(Derived { value: value as f64 / cycles as f64, unit: "insn per cycle" })
        }
        StatEvent::BranchMisses => {
            let b = get(StatEvent::Branches).filter(|&b| b > 0)?;
            Some(Derived { value: 100.0 * value as f64 / b as f64, unit: "% of all branches" })
        }
        StatEvent::CacheMisses => {
            let r = get(StatEvent::CacheReferences).filter(|&r| r > 0)?;
            Some(Derived { value: 100.0 * value as f64 / r as f64, unit: "% of all cache refs" })
        }
        StatEvent::L1dLoadMisses => {
            let r = get(StatEvent::L1dLoads).filter(|&r| r > 0)?;
            Some(Derived { value: 100.0 * value as f64 / r as f64, unit: "% of all L1-dcache accesses" })
        }
        _ => {
            // Rates per second of CPU time, as perf prints them.
            let secs = task_ns? as f64 / 1e9;
            (secs > 0.0).then(|| Derived { value: value as f64 / secs, unit: "/sec" })
        }
    }
}

/// The mean of repeated runs' values and its relative standard deviation
/// in percent, as `perf stat -r` prints them (`( +-  1.30% )`): perf's
/// figure is the standard deviation of the mean (the sample variance over
/// the number of runs), relative to the mean; 0 for fewer than two runs or
/// a mean of 0.
pub fn mean_and_rel_stddev(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 || mean == 0.0 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, 100.0 * (variance / n).sqrt() / mean.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_parse_with_perf_aliases() {
        assert_eq!("cycles".parse::<StatEvent>().unwrap(), StatEvent::Cycles);
        assert_eq!("cs".parse::<StatEvent>().unwrap(), StatEvent::ContextSwitches);
        assert!("flops".parse::<StatEvent>().unwrap_err().contains("task-clock"));
    }

    #[test]
    fn derived_figures_follow_perf() {
        let c = |event, value| EventCount { event, value, running: 1.0, user_only: false, enabled_ns: 0 };
        let counts = [
            c(StatEvent::TaskClock, Some(2_000_000_000)),
            c(StatEvent::ContextSwitches, Some(10)),
            c(StatEvent::Cycles, Some(1000)),
            c(StatEvent::Instructions, Some(2500)),
            c(StatEvent::Branches, None),
            c(StatEvent::BranchMisses, Some(5)),
        ];
        let d = |e| derived(e, &counts, 1_000_000_000);
        assert_eq!(d(StatEvent::TaskClock), Some(Derived { value: 2.0, unit: "CPUs utilized" }));
        assert_eq!(d(StatEvent::ContextSwitches), Some(Derived { value: 5.0, unit: "/sec" }));
        assert_eq!(d(StatEvent::Instructions), Some(Derived { value: 2.5, unit: "insn per cycle" }));
        assert_eq!(d(StatEvent::BranchMisses), None, "no branch count to divide by");
    }

    /// The test's own task clock: a software event, counted on any machine
    /// where perf_event_open is allowed. Where it is not (an unprivileged
    /// user under a strict `kernel.perf_event_paranoid`), `None`, said as a
    /// skip; strict mode (`PERFKIT_REQUIRE_PRIVILEGED=1`, as `cargo xtask
    /// test` sets) fails instead.
    fn own_task_clock(name: &str) -> Option<StatSession> {
        match StatSession::start_target(
            &StatTarget::Processes(vec![std::process::id()]),
            &[StatEvent::TaskClock],
            false,
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                assert!(
                    std::env::var("PERFKIT_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                    "{name}: perf_event_open failed in strict mode: {e}"
                );
                eprintln!("perfkit-test: skipped {name}: perf_event_open refused ({e}); `cargo xtask test` runs it");
                None
            }
        }
    }

    #[test]
    fn intervals_until_the_end_or_until_the_wait_says_stop() {
        const NAME: &str = "intervals_until_the_end_or_until_the_wait_says_stop";
        let (Some(mut first), Some(mut second)) = (own_task_clock(NAME), own_task_clock(NAME)) else { return };
        // As perf names it: `task-clock`, or `task-clock:u` where the kernel
        // refused counting kernel time (an unprivileged user).
        let field = if first.read()[0].user_only { ",task-clock:u," } else { ",task-clock," };
        let (started, every) = (Instant::now(), Duration::from_millis(10));
        let mut out = Vec::new();
        let mut waits = Vec::new();
        let sleep_until = |until: Instant| std::thread::sleep(until.saturating_duration_since(Instant::now()));
        first
            .write_intervals(
                &mut out,
                text::Layout::Csv(",".into()),
                started,
                every,
                Some(started + every * 3 + every / 2),
                |u| {
                    waits.push(u - started);
                    sleep_until(u);
                    true
                },
            )
            .unwrap();
        // 10, 20, 30 ms, and the short last one at 35 ms; CSV has no header.
        assert_eq!(waits, [every, every * 2, every * 3, every * 3 + every / 2]);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.lines().all(|l| l.contains(field)), "{text}");
        // Ended early: the interval cut short is the last.
        let mut out = Vec::new();
        let mut calls = 0;
        second
            .write_intervals(&mut out, text::Layout::Table, Instant::now(), every, None, |_| {
                calls += 1;
                calls < 2
            })
            .unwrap();
        assert_eq!(calls, 2);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "the header and two intervals: {text}");
    }

    #[test]
    fn repeat_stats_follow_perf() {
        // perf stat -r 4 of values 10, 12, 14, 16: mean 13, sample
        // stddev 2.582, of the mean 1.291: 9.93 %.
        let (mean, rel) = mean_and_rel_stddev(&[10.0, 12.0, 14.0, 16.0]);
        assert_eq!(mean, 13.0);
        assert!((rel - 9.93).abs() < 0.01, "{rel}");
        assert_eq!(mean_and_rel_stddev(&[5.0]), (5.0, 0.0));
        assert_eq!(mean_and_rel_stddev(&[]), (0.0, 0.0));
        assert_eq!(mean_and_rel_stddev(&[0.0, 0.0]), (0.0, 0.0));
    }
}
