//! The bcc-style tools whose reports are stacks: wakeuptime
//! ([`wakeuptime`]), stackcount ([`stackcount`]) and memleak ([`memleak`]),
//! run with a [`Driver`] as `perfkit_probes::tools::drive` runs the others,
//! and symbolized as profiles are (`perfkit_symbols`: ELF symbols and debug
//! information, kallsyms, perf maps) by a [`StackNamer`]. They live here,
//! not in `perfkit-probes`, because naming stacks needs the symbolizer.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    path::Path,
    time::{Duration, Instant},
};

use perfkit_model::{
    Frame,
    raw::{RawSample, RawStack, SampleKind, StackEnd},
};
use perfkit_probes::tools::{
    Memleak, MemleakReport, MemleakStats, ProbeSpec, StackCountReport, StackCountRow, StackCounter, StackGroup,
    StackGroupJson, ToolStats, WakerRow, WakeupTime, WakeuptimeReport,
    drive::{DriveError, Driver, Notice, Output},
    oldest_first,
    run::{Schedule, memleak_losses, run_intervals},
    stack_addresses, write_memleak, write_stackcount, write_stackcount_folded, write_wakeuptime,
    write_wakeuptime_folded,
};
use perfkit_symbols::{SymbolizeOptions, Symbolizer};
use perfkit_target::{ExitStatus, MapsTracker, Modules};

/// Names the stacks of processes a tool counted: each process's mappings
/// are read when it is first [noted](StackNamer::note) (and again at the
/// end), so that processes that exit before the report keep their names.
pub struct StackNamer {
    symbolizer: Symbolizer,
    modules: Modules,
    seen: HashSet<u32>,
    last_scan: Instant,
}

impl std::fmt::Debug for StackNamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackNamer").field("seen", &self.seen.len()).finish_non_exhaustive()
    }
}

impl Default for StackNamer {
    fn default() -> Self {
        Self::new()
    }
}

impl StackNamer {
    /// A namer with the default symbolization options.
    pub fn new() -> Self {
        Self {
            symbolizer: Symbolizer::new(&SymbolizeOptions::default()),
            modules: Modules::default(),
            seen: HashSet::new(),
            last_scan: Instant::now(),
        }
    }

    /// Reads the mappings of the processes not seen yet (PID 0, the
    /// kernel, has none).
    pub fn note(&mut self, pids: impl IntoIterator<Item = u32>) {
        for pid in pids {
            if pid == 0 || !self.seen.insert(pid) {
                continue;
            }
            let mut t = MapsTracker::new(pid);
            if t.refresh().is_ok() {
                self.modules.note_uid(Path::new("/proc"), pid);
                self.modules.add_tracker(t);
            }
        }
    }

    /// Whether half a second passed since the last scan (then it starts
    /// again).
    fn due(&mut self) -> bool {
        if self.last_scan.elapsed() < Duration::from_millis(500) {
            return false;
        }
        self.last_scan = Instant::now();
        true
    }

    /// The frames of one process's stacks, outermost first (user, then
    /// kernel, with the tracing hook's own frames cut), merged by function:
    /// calls from two lines of one function are one stack, as in a folded
    /// profile.
    pub fn frames(&self, pid: u32, comm: &str, user: &RawStack, kernel: &RawStack) -> Vec<Frame> {
        let sample = raw_sample(pid, comm, user.clone(), kernel.clone());
        let (profile, _) = self.symbolizer.profile(&[sample], &self.modules);
        let mut frames = profile.stacks.into_iter().next().map(|s| s.frames).unwrap_or_default();
        for f in &mut frames {
            f.location = None;
        }
        frames
    }
}

fn raw_sample(tgid: u32, comm: &str, user: RawStack, kernel: RawStack) -> RawSample {
    RawSample {
        tgid,
        tid: tgid,
        comm: comm.to_owned(),
        process: comm.to_owned(),
        user,
        kernel,
        count: 1,
        kind: SampleKind::OnCpu,
        user_end: StackEnd::Complete,
        interpreted: Vec::new(),
    }
}

/// How wakeuptime reports (once, at the end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeuptimeView {
    /// A JSON document.
    pub json: bool,
    /// Folded lines (flamegraph.pl's input), else bcc's layout.
    pub folded: bool,
    /// Each stack's raw addresses too.
    pub addresses: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// A wakeuptime row's key: waker, target and the waker's frames.
type WakerKey = (String, String, Vec<Frame>);

/// Runs wakeuptime until the duration, the stop flag or the command's
/// exit, then reports the blocked time by waker stack, merged by names and
/// symbolized frames (one waker stack of many processes of one program is
/// one row, as bcc's), the largest last.
pub fn wakeuptime(
    tool: &WakeupTime,
    view: &WakeuptimeView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut namer = StackNamer::new();
    let schedule = Schedule { duration: view.duration, ..Schedule::default() };
    let (watch, stop, mut out) = d.split();
    let tick = || {
        if namer.due() {
            namer.note(tool.stacks()?.iter().map(|s| s.waker_pid));
        }
        Ok::<(), DriveError>(())
    };
    let exited = run_intervals(&schedule, watch, stop, tick, |_| Ok(()))?;
    let stacks = tool.stacks()?;
    namer.note(stacks.iter().map(|s| s.waker_pid));
    out.losses(&tool.stats()?, &mut ToolStats::default());
    let mut rows: HashMap<WakerKey, (u64, Option<String>)> = HashMap::new();
    let mut lost = 0u64;
    for s in &stacks {
        if matches!(s.user, RawStack::Lost) || matches!(s.kernel, RawStack::Lost) {
            lost += s.blocked_ns;
        }
        let frames = namer.frames(s.waker_pid, &s.waker, &s.user, &s.kernel);
        let e = rows.entry((s.waker.clone(), s.target.clone(), frames)).or_default();
        e.0 += s.blocked_ns;
        if view.addresses && e.1.is_none() {
            e.1 = Some(stack_addresses(&s.user, &s.kernel));
        }
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| a.0.cmp(&b.0)));
    let rows: Vec<WakerRow> = rows
        .into_iter()
        .map(|((waker, target, frames), (ns, addrs))| WakerRow::new(waker, target, frames, ns, addrs))
        .collect();
    if view.json {
        out.json_line(&WakeuptimeReport::new(out.clock.rfc3339(), &rows, lost))?;
    } else if view.folded {
        write_wakeuptime_folded(out.write, &rows)?;
    } else {
        write_wakeuptime(out.write, &rows)?;
    }
    out.write.flush()?;
    Ok(exited)
}

/// How stackcount reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackcountView {
    /// A stack per process (`comm [PID]`).
    pub per_pid: bool,
    /// Each stack's raw addresses too.
    pub addresses: bool,
    /// A delimiter between the kernel and the user stack.
    pub delimited: bool,
    /// Folded lines (flamegraph.pl's input).
    pub folded: bool,
    /// A JSON document per report.
    pub json: bool,
    /// The clock time over each text report.
    pub timestamp: bool,
    /// When to report and stop.
    pub schedule: Schedule,
}

/// One row of stackcount: (process root, user frames, kernel frames).
type StackRow = (String, Vec<Frame>, Vec<Frame>);

/// Runs stackcount for `spec`: every interval (or once at the end) the
/// hits of the interval by stack, the largest last.
pub fn stackcount(
    tool: &StackCounter,
    spec: &ProbeSpec,
    view: &StackcountView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let namer = RefCell::new(StackNamer::new());
    let mut previous: HashMap<StackRow, u64> = HashMap::new();
    let mut reported = ToolStats::default();
    let (watch, stop, mut out) = d.split();
    let tick = || {
        let mut namer = namer.borrow_mut();
        if namer.due() {
            namer.note(tool.stacks()?.iter().map(|s| s.pid));
        }
        Ok::<(), DriveError>(())
    };
    run_intervals(&view.schedule, watch, stop, tick, |_| {
        let mut namer = namer.borrow_mut();
        let stacks = tool.stacks()?;
        namer.note(stacks.iter().map(|s| s.pid));
        out.losses(&tool.stats()?, &mut reported);
        let mut totals: HashMap<StackRow, u64> = HashMap::new();
        let mut addrs: HashMap<StackRow, String> = HashMap::new();
        for s in &stacks {
            let root = if view.per_pid { format!("{} [{}]", s.comm, s.pid) } else { s.comm.clone() };
            let user = namer.frames(s.pid, &s.comm, &s.user, &RawStack::None);
            let kernel = namer.frames(s.pid, &s.comm, &RawStack::None, &s.kernel);
            let key = (root, user, kernel);
            if view.addresses {
                addrs.entry(key.clone()).or_insert_with(|| stack_addresses(&s.user, &s.kernel));
            }
            *totals.entry(key).or_default() += s.count;
        }
        let mut rows: Vec<(StackRow, u64)> = totals
            .iter()
            .map(|(k, &c)| (k.clone(), c.saturating_sub(previous.get(k).copied().unwrap_or(0))))
            .filter(|(_, c)| *c > 0)
            .collect();
        previous = totals;
        rows.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let rows: Vec<StackCountRow> = rows
            .into_iter()
            .map(|(key, count)| {
                let addresses = addrs.get(&key).cloned();
                let (comm, user, kernel) = key;
                StackCountRow::new(comm, user, kernel, count, addresses)
            })
            .collect();
        write_stackcount_report(&mut out, spec, view, &rows)
    })
}

fn write_stackcount_report(
    out: &mut Output<'_, '_>,
    spec: &ProbeSpec,
    view: &StackcountView,
    rows: &[StackCountRow],
) -> Result<(), DriveError> {
    if view.json {
        let doc = StackCountReport::new(out.clock.rfc3339(), view.schedule.interval, spec.to_string(), rows);
        out.json_line(&doc)?;
    } else if view.folded {
        write_stackcount_folded(out.write, rows, view.delimited)?;
    } else {
        if view.timestamp {
            writeln!(out.write, "{}", out.clock.hms())?;
        }
        write_stackcount(out.write, rows, view.delimited, view.per_pid)?;
    }
    out.write.flush()?;
    Ok(())
}

/// How memleak reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemleakView {
    /// Each outstanding allocation too.
    pub show_allocs: bool,
    /// Leave out allocations younger than this.
    pub older: Duration,
    /// Each stack's totals only, as the kernel keeps them (no ages).
    pub combined_only: bool,
    /// Stacks shown, the biggest first.
    pub top: usize,
    /// A JSON document per report.
    pub json: bool,
    /// The clock time over each text report.
    pub timestamp: bool,
    /// Time between reports.
    pub interval: Duration,
    /// Reports before stopping (`None`: no limit).
    pub count: Option<u64>,
}

impl Default for MemleakView {
    /// bcc's: every 5 s, the top 10 stacks of allocations of 500 ms or
    /// older.
    fn default() -> Self {
        Self {
            show_allocs: false,
            older: Duration::from_millis(500),
            combined_only: false,
            top: 10,
            json: false,
            timestamp: false,
            interval: Duration::from_secs(5),
            count: None,
        }
    }
}

/// Runs memleak: every interval the allocations not freed, by stack,
/// biggest first. `pids` are the processes watched in user mode (`user`:
/// a user allocator, else the kernel's), whose mappings are read again
/// every 100 ms to name their stacks. Losses are warning notices.
pub fn memleak(
    tool: &Memleak,
    pids: &[u32],
    user: bool,
    view: &MemleakView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let trackers: HashMap<u32, MapsTracker> = pids.iter().map(|&p| (p, MapsTracker::new(p))).collect();
    let trackers = RefCell::new(trackers);
    refresh(&mut trackers.borrow_mut());
    let symbolizer = Symbolizer::new(&SymbolizeOptions::default());
    let mut reported = MemleakStats::default();
    let schedule = Schedule { interval: Some(view.interval), count: view.count, duration: None };
    let (watch, stop, mut out) = d.split();
    let tick = || {
        refresh(&mut trackers.borrow_mut());
        Ok::<(), DriveError>(())
    };
    run_intervals(&schedule, watch, stop, tick, |_| {
        let trackers = &mut *trackers.borrow_mut();
        refresh(trackers);
        memleak_report(tool, &symbolizer, trackers, user, view, &mut out)?;
        let stats = tool.memleak_stats()?;
        for loss in memleak_losses(&stats, &reported) {
            (out.notify)(Notice::AllocationsLost(loss));
        }
        reported = stats;
        Ok(())
    })
}

/// Reads the mappings of the watched processes again (new libraries).
fn refresh(trackers: &mut HashMap<u32, MapsTracker>) {
    for t in trackers.values_mut() {
        let _ = t.refresh();
    }
}

fn memleak_report(
    tool: &Memleak,
    symbolizer: &Symbolizer,
    trackers: &HashMap<u32, MapsTracker>,
    user: bool,
    view: &MemleakView,
    out: &mut Output<'_, '_>,
) -> Result<(), DriveError> {
    let mut allocations = Vec::new();
    let groups = if view.combined_only {
        StackGroup::from_totals(&tool.combined()?)
    } else {
        allocations = tool.allocations()?;
        allocations.retain(|a| a.age >= view.older);
        StackGroup::from_allocations(&allocations)
    };
    let groups = StackGroup::top(groups, view.top);
    // In combined mode stacks carry no process: in user mode they belong to
    // the watched processes, whose mappings symbolize them.
    let frames = symbolize(tool, symbolizer, trackers, &groups, user)?;
    oldest_first(&mut allocations);
    let shown = view.show_allocs.then_some(&allocations[..]);
    if view.json {
        let with_pid = user && !view.combined_only;
        let stacks = groups.iter().zip(&frames).map(|(g, f)| StackGroupJson::new(g, f, with_pid)).collect();
        let older = (!view.combined_only).then_some(view.older.as_millis() as u64);
        let stats = tool.memleak_stats()?;
        let doc = MemleakReport::new(out.clock.rfc3339(), user, view.interval, older, stacks, shown, &stats);
        out.json_line(&doc)?;
    } else {
        if view.timestamp {
            writeln!(out.write, "{}", out.clock.hms())?;
        }
        write_memleak(out.write, shown, &groups, &frames, &out.clock.hms())?;
    }
    out.write.flush()?;
    Ok(())
}

/// Each group's frames, innermost first.
fn symbolize(
    tool: &Memleak,
    symbolizer: &Symbolizer,
    trackers: &HashMap<u32, MapsTracker>,
    groups: &[StackGroup],
    user: bool,
) -> Result<Vec<Vec<String>>, DriveError> {
    let mut modules = Modules::default();
    for (&pid, t) in trackers {
        modules.processes.insert(pid, t.mappings().to_vec());
    }
    // In combined mode the process is not known: the first watched one.
    let default_pid = trackers.keys().min().copied().unwrap_or(0);
    let mut samples = Vec::with_capacity(groups.len());
    for g in groups {
        let stack = match g.stack_id {
            Some(id) => RawStack::Frames(tool.stack(id)?),
            None => RawStack::Lost,
        };
        let (user_stack, kernel_stack) = if user { (stack, RawStack::None) } else { (RawStack::None, stack) };
        let tgid = if user && g.tgid == 0 { default_pid } else { g.tgid };
        samples.push(raw_sample(tgid, "", user_stack, kernel_stack));
    }
    let (profile, _) = symbolizer.profile(&samples, &modules);
    Ok(profile.stacks.iter().map(|s| s.frames.iter().rev().map(|f| f.name.to_string()).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_of_no_frames_names_nothing_and_the_kernel_is_not_read() {
        let mut namer = StackNamer::new();
        namer.note([0, u32::MAX]);
        assert!(namer.seen.contains(&u32::MAX) && !namer.seen.contains(&0));
        assert!(namer.frames(u32::MAX, "x", &RawStack::None, &RawStack::None).is_empty());
        assert!(!namer.due(), "a scan is due half a second after the last");
        namer.last_scan -= Duration::from_secs(1);
        assert!(namer.due() && !namer.due());
    }

    #[test]
    fn memleak_defaults_are_bccs() {
        let v = MemleakView::default();
        assert_eq!((v.interval, v.older, v.top), (Duration::from_secs(5), Duration::from_millis(500), 10));
    }
}
