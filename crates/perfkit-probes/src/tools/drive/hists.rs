//! The reporting tools' runs: a report every interval (or one at the end),
//! as text in bcc's layout or as a JSON line.

use std::{cell::RefCell, collections::HashMap, time::Duration};

use perfkit_model::printable;
use perfkit_target::ExitStatus;

use super::{DriveError, Driver, Notice, Output, process_name};
use crate::tools::{
    ArgDist, BlockIo, FuncCountIntervals, FuncCountReport, FuncCounter, FuncLatency, FuncLatencyReport, Histogram,
    IrqIntervals, IrqKind, IrqReport, Irqs, LatencyHistogram, ProbeSpec, ResolvedProbe, Runqlat, RunqlatPer, Runqlen,
    RunqlenIntervals, RunqlenReport, Syscount, ToolStats, disk_name, kernel_dev, operation_name,
    run::{Schedule, run_intervals},
    syscount::{SyscountIntervals, SyscountReport, write_syscount_table},
    text::{HistogramJson, HistogramPer, HistogramReport, write_histograms},
    tracetext::{ArgdistReport, write_argdist},
    write_funccount, write_irq_dists, write_irq_table, write_runqlen,
};

/// How a reporting tool reports: as JSON or text, with the clock time
/// over each text report or not, and when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportView {
    /// One JSON document per report instead of text.
    pub json: bool,
    /// The clock time over each text report.
    pub timestamp: bool,
    /// When to report and stop.
    pub schedule: Schedule,
}

/// Runs a reporting tool: `report` at each interval of the view's
/// schedule (and at the end), `tick` in between.
fn intervals(
    view: &ReportView,
    d: &mut Driver<'_>,
    tick: impl FnMut() -> Result<(), DriveError>,
    mut report: impl FnMut(&mut Output<'_, '_>) -> Result<(), DriveError>,
) -> Result<Option<ExitStatus>, DriveError> {
    let (watch, stop, mut out) = d.split();
    run_intervals(&view.schedule, watch, stop, tick, |_| {
        report(&mut out)?;
        out.write.flush()?;
        Ok(())
    })
}

/// Writes one report of histograms of `tool` (runqlat, biolatency): as
/// JSON, or as bcc's text (a blank line, the time with `timestamp`, each
/// histogram in `unit`, its values divided by `scale`), each labelled.
pub fn write_histogram_report(
    out: &mut Output<'_, '_>,
    tool: &'static str,
    view: &ReportView,
    (unit, scale): (&str, u64),
    hists: &[Histogram],
    label: impl Fn(&Histogram) -> HistogramPer,
) -> Result<(), DriveError> {
    let labelled: Vec<(HistogramPer, &Histogram)> = hists.iter().map(|h| (label(h), h)).collect();
    if view.json {
        let hists = labelled.into_iter().map(|(per, h)| HistogramJson::new(h, per)).collect();
        let doc = HistogramReport::new(tool, out.clock.rfc3339(), view.schedule.interval, hists);
        out.json_line(&doc)
    } else {
        out.report_top(view.timestamp)?;
        let labelled = labelled.iter().map(|(per, h)| (printable(&per.label()).into_owned(), *h));
        Ok(write_histograms(out.write, unit, scale, labelled)?)
    }
}

/// The unit and divisor of microsecond histograms: `msecs` with
/// `milliseconds`, else `usecs`.
fn usecs_or_msecs(milliseconds: bool) -> (&'static str, u64) {
    if milliseconds { ("msecs", 1000) } else { ("usecs", 1) }
}

/// The histograms of an interval: each `now` less its `previous` value
/// (by `key`), those with no count left out unless `keep_empty`.
fn since<K: std::hash::Hash + Eq>(
    now: &[Histogram],
    previous: &HashMap<K, Histogram>,
    key: impl Fn(&Histogram) -> K,
    keep_empty: bool,
) -> Vec<Histogram> {
    now.iter()
        .map(|h| previous.get(&key(h)).map_or_else(|| h.clone(), |p| h.since(p)))
        .filter(|h| h.count() > 0 || keep_empty)
        .collect()
}

/// Runs runqlat (its histograms `per` process, thread...; microseconds,
/// or `milliseconds`) until the view's schedule, the stop flag or the
/// command's exit ends it.
pub fn runqlat(
    tool: &Runqlat,
    per: RunqlatPer,
    milliseconds: bool,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut previous: HashMap<u64, Histogram> = HashMap::new();
    let mut reported = ToolStats::default();
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let hists = tool.histograms()?;
            out.losses(&tool.stats()?, &mut reported);
            let interval = since(&hists, &previous, |h| h.id, per == RunqlatPer::All);
            let names =
                if matches!(per, RunqlatPer::Process | RunqlatPer::Thread) { tool.names()? } else { HashMap::new() };
            let comm_of = |id: u32| names.get(&id).cloned().unwrap_or_else(|| process_name(id));
            let label = |h: &Histogram| match per {
                RunqlatPer::Process => HistogramPer::Process { comm: comm_of(h.id as u32), pid: h.id },
                RunqlatPer::Thread => HistogramPer::Thread { comm: comm_of(h.id as u32), tid: h.id },
                RunqlatPer::PidNamespace => HistogramPer::PidNamespace { pidns: h.id },
                // A walk of the whole cgroup tree: once per group.
                RunqlatPer::Cgroup => HistogramPer::Cgroup {
                    cgroup: perfkit_target::cgroup::path_of_id(h.id).unwrap_or_default(),
                    cgroup_id: h.id,
                },
                _ => HistogramPer::All {},
            };
            write_histogram_report(out, "runqlat", view, usecs_or_msecs(milliseconds), &interval, label)?;
            previous = hists.into_iter().map(|h| (h.id, h)).collect();
            Ok(())
        },
    )
}

/// Runs biolatency: histograms per disk (`per_disk`) and operation
/// (`per_flags`) as the tool was started, in microseconds or
/// `milliseconds`.
pub fn biolatency(
    tool: &BlockIo,
    (per_disk, per_flags): (bool, bool),
    milliseconds: bool,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut previous: HashMap<(u64, u32), Histogram> = HashMap::new();
    let mut reported = ToolStats::default();
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let hists = tool.histograms()?;
            out.losses(&tool.stats()?, &mut reported);
            let interval = since(&hists, &previous, |h| (h.id, h.sub), !(per_disk || per_flags));
            let label = |h: &Histogram| {
                let (major, minor) = kernel_dev(h.id);
                HistogramPer::Block {
                    device: per_disk.then(|| format!("{major}:{minor}")),
                    disk: per_disk.then(|| disk_name(major, minor)),
                    flags: per_flags.then(|| operation_name(h.sub)),
                }
            };
            write_histogram_report(out, "biolatency", view, usecs_or_msecs(milliseconds), &interval, label)?;
            previous = hists.into_iter().map(|h| ((h.id, h.sub), h)).collect();
            Ok(())
        },
    )
}

/// How syscount's report is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscountView {
    /// Per process (as the tool was started) rather than per syscall.
    pub per_process: bool,
    /// With the time in the calls, ordered by it.
    pub latency: bool,
    /// Time in milliseconds rather than microseconds.
    pub milliseconds: bool,
    /// Rows shown.
    pub top: usize,
}

/// Runs syscount.
pub fn syscount(
    tool: &Syscount,
    s: SyscountView,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut intervals_ = SyscountIntervals::new(s.per_process);
    let mut reported = ToolStats::default();
    let (unit, div) = if s.milliseconds { ("ms", 1e6) } else { ("us", 1e3) };
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let rows = intervals_.next(tool.counts()?, s.latency, s.top);
            out.losses(&tool.stats()?, &mut reported);
            // Names as first counted: a process that has exited keeps its own.
            let names = if s.per_process { tool.process_names()? } else { HashMap::new() };
            let name = |k: u32| {
                if s.per_process { names.get(&k).cloned().unwrap_or_else(|| process_name(k)) } else { tool.name(k) }
            };
            if view.json {
                let interval = view.schedule.interval;
                out.json_line(&SyscountReport::new(
                    out.clock.rfc3339(),
                    interval,
                    &rows,
                    s.per_process,
                    s.latency,
                    name,
                ))
            } else {
                writeln!(out.write, "[{}]", out.clock.hms())?;
                let latency = s.latency.then_some((unit, div));
                write_syscount_table(out.write, &rows, s.per_process, latency, |k| printable(&name(k)).into_owned())?;
                Ok(writeln!(out.write)?)
            }
        },
    )
}

/// How hardirqs' and softirqs' report is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqView {
    /// Counts of runs instead of time.
    pub counts: bool,
    /// A histogram per handler or vector instead of totals.
    pub dist: bool,
    /// Text in nanoseconds (as the tool was started: `ns_slots`); JSON
    /// stays in microseconds.
    pub nanoseconds: bool,
}

/// Runs hardirqs or softirqs (`kind`).
pub fn irqs(
    tool: &Irqs,
    kind: IrqKind,
    v: IrqView,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut rows_ = IrqIntervals::new();
    let mut reported = ToolStats::default();
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let times = tool.times()?;
            out.losses(&tool.stats(kind)?, &mut reported);
            let rows = rows_.next(times, v.counts, v.nanoseconds);
            if view.json {
                out.json_line(&IrqReport::new(kind, out.clock.rfc3339(), view.schedule.interval, &rows, v.dist))
            } else {
                out.report_top(view.timestamp)?;
                if v.dist {
                    Ok(write_irq_dists(out.write, kind, &rows, v.nanoseconds)?)
                } else {
                    Ok(write_irq_table(out.write, kind, &rows, v.counts, v.nanoseconds)?)
                }
            }
        },
    )
}

/// How runqlen's report is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunqlenView {
    /// Samples per second on each CPU (as the tool was started).
    pub frequency: u64,
    /// A histogram per CPU.
    pub per_cpu: bool,
    /// The run queue's occupancy.
    pub occupancy: bool,
    /// With `occupancy`, the histograms too.
    pub histograms: bool,
}

/// Runs runqlen.
pub fn runqlen(
    tool: &Runqlen,
    v: RunqlenView,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut hists_ = RunqlenIntervals::new();
    let mut reported = ToolStats::default();
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let now = tool.per_cpu()?;
            let stats = tool.stats()?;
            if stats.unmatched > reported.unmatched {
                (out.notify)(Notice::QueueUnread(stats.unmatched - reported.unmatched));
            }
            out.losses(&stats, &mut reported);
            let hists = hists_.next(now, v.per_cpu);
            if view.json {
                out.json_line(&RunqlenReport::new(out.clock.rfc3339(), view.schedule.interval, v.frequency, &hists))
            } else {
                out.report_top(view.timestamp)?;
                Ok(write_runqlen(out.write, &hists, v.occupancy, v.histograms)?)
            }
        },
    )
}

/// Runs funccount for `spec`.
pub fn funccount(
    tool: &FuncCounter,
    spec: &ProbeSpec,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut rows_ = FuncCountIntervals::new();
    let mut reported = ToolStats::default();
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let counts = tool.counts()?;
            out.losses(&tool.stats()?, &mut reported);
            let rows = rows_.next(&counts);
            if view.json {
                out.json_line(&FuncCountReport::new(
                    out.clock.rfc3339(),
                    view.schedule.interval,
                    spec.to_string(),
                    &rows,
                ))
            } else {
                out.report_top(view.timestamp)?;
                Ok(write_funccount(out.write, &rows)?)
            }
        },
    )
}

/// Runs funclatency for `spec`, resolved to `probes`.
pub fn funclatency(
    tool: &FuncLatency,
    spec: &ProbeSpec,
    probes: &[ResolvedProbe],
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut previous: Option<LatencyHistogram> = None;
    let mut reported = ToolStats::default();
    intervals(
        view,
        d,
        || Ok(()),
        |out| {
            let now = tool.histogram()?;
            out.losses(&tool.stats()?, &mut reported);
            let h = previous.as_ref().map_or_else(|| now.clone(), |p| now.since(p));
            previous = Some(now);
            if view.json {
                let time = out.clock.rfc3339();
                out.json_line(&FuncLatencyReport::new(time, view.schedule.interval, spec.to_string(), probes, &h))
            } else {
                out.report_top(view.timestamp)?;
                Ok(h.write(out.write)?)
            }
        },
    )
}

/// Runs argdist: each report the aggregates of the interval (of the run
/// if `cumulative`), `top` keeping the most counted values; at the end,
/// the hits and the values not counted as notices.
pub fn argdist(
    tool: &mut ArgDist,
    cumulative: bool,
    top: Option<usize>,
    view: &ReportView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut reported = ToolStats::default();
    let interval = view.schedule.interval.unwrap_or(Duration::from_secs(1));
    let cell = RefCell::new(&mut *tool);
    let tick = || {
        cell.borrow_mut().poll(Duration::ZERO);
        Ok(())
    };
    let exited = intervals(view, d, tick, |out| {
        let mut tool = cell.borrow_mut();
        tool.poll(Duration::from_millis(20));
        out.losses(&tool.stats()?, &mut reported);
        let aggregates = tool.take(!cumulative);
        if view.json {
            let doc = ArgdistReport::new(out.clock.rfc3339(), interval, cumulative, tool.specs(), &aggregates, top);
            out.json_line(&doc)
        } else {
            writeln!(out.write, "[{}]", out.clock.hms())?;
            Ok(write_argdist(out.write, tool.specs(), &aggregates, top)?)
        }
    })?;
    let s = tool.trace_stats()?;
    (d.notify)(Notice::Hits { hits: s.tool.events, filtered: s.filtered, lost: s.tool.ring_full });
    if tool.uncounted() > 0 {
        (d.notify)(Notice::Uncounted { hits: tool.uncounted(), distinct: crate::tools::MAX_DISTINCT });
    }
    Ok(exited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_histograms_are_differences() {
        let zero = |id| Histogram { id, sub: 0, counts: [0; perfkit_probes_common::tools::HIST_SLOTS], sum_ns: 0 };
        let mut a = zero(1);
        a.counts[2] = 3;
        let mut b = a.clone();
        b.counts[2] = 5;
        let empty = zero(2);
        let previous: HashMap<u64, Histogram> = [(1, a)].into_iter().collect();
        let got = since(&[b.clone(), empty.clone()], &previous, |h| h.id, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].counts[2], 2);
        assert_eq!(since(&[b, empty], &HashMap::new(), |h| h.id, true).len(), 2);
        assert_eq!(usecs_or_msecs(true), ("msecs", 1000));
    }
}
