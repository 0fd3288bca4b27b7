//! funccount and funclatency: calls of user functions, USDT probes and
//! tracepoints counted exactly in the kernel, and the latency of user
//! functions as a log2 histogram.
//!
//! Uprobes are attached through perf_event_open(2)'s `uprobe` PMU (what
//! libbpf does): the file through `/proc/self/fd/N` of the descriptor the
//! probe was resolved from, and, for a USDT probe with a semaphore, its
//! file offset as `ref_ctr_offset` (Linux 4.20): the kernel then increments
//! the semaphore in every process that maps the file, those that start
//! later included, and decrements it when the probe is detached.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use aya::{
    maps::{MapData, PerCpuArray},
    programs::{TracePoint, UProbe},
};
use perfkit_probes_common::{
    tools::{HIST_SLOTS, ToolStats},
    ufunc::{self, COUNT_PROGRAMS, MAX_PROBES, TP_COUNT_PROGRAMS, UfuncConfig},
};

use serde::Serialize;

use super::{
    Globals, Histogram, Probe, ProbeTarget, ResolvedProbe,
    text::{BucketJson, HistogramJson, SCHEMA_VERSION, write_log2_hist},
};
use crate::{ProbeError, Selection, object};

/// The uprobe PMU's sysfs directory.
const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe";

/// An attached uprobe: closing the perf event detaches it.
#[derive(Debug)]
pub(super) struct UprobeLink(#[allow(dead_code)] OwnedFd);

/// Reads a `config:N` (or `config:N-M`) bit position from a PMU format file.
fn format_bit(name: &str) -> io::Result<u32> {
    let text = std::fs::read_to_string(format!("{UPROBE_PMU}/format/{name}"))?;
    text.trim()
        .strip_prefix("config:")
        .and_then(|b| b.split('-').next())
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{UPROBE_PMU}/format/{name}: {text:?}")))
}

/// Attaches the loaded uprobe program `program` to `probe`, as a return
/// probe with `ret`.
pub(super) fn attach_uprobe(
    probe: &mut Probe,
    program: &'static str,
    target: &ResolvedProbe,
    ret: bool,
) -> Result<UprobeLink, ProbeError> {
    let ProbeTarget::Uprobe { file, offset, semaphore } = &target.target else {
        return Err(ProbeError::InvalidConfig(format!("{} is not a uprobe", target.name)));
    };
    let fail = |e: io::Error| ProbeError::AttachUprobe { probe: format!("{}:{}", file.path(), target.name), source: e };
    let p: &mut UProbe = object::program(&mut probe.ebpf, program)?;
    if p.fd().is_err() {
        p.load().map_err(object::load_error)?;
    }
    let prog_fd = p.fd().map_err(|e| ProbeError::Load(Box::new(e)))?.as_fd().as_raw_fd();
    let pmu_type: u32 = std::fs::read_to_string(format!("{UPROBE_PMU}/type"))
        .map_err(|e| {
            fail(io::Error::new(e.kind(), format!("{UPROBE_PMU}/type: {e} (a kernel without CONFIG_UPROBE_EVENTS)")))
        })?
        .trim()
        .parse()
        .map_err(|_| fail(io::Error::new(io::ErrorKind::InvalidData, format!("{UPROBE_PMU}/type"))))?;
    let mut config = 0u64;
    if ret {
        config |= 1 << format_bit("retprobe").map_err(fail)?;
    }
    if *semaphore != 0 {
        let shift = format_bit("ref_ctr_offset").map_err(|e| {
            fail(io::Error::new(
                e.kind(),
                format!("USDT semaphores need the kernel's ref_ctr_offset (Linux 4.20): {e}"),
            ))
        })?;
        if *semaphore >> (64 - shift) != 0 {
            return Err(fail(io::Error::new(io::ErrorKind::InvalidInput, "semaphore offset out of range")));
        }
        config |= semaphore << shift;
    }
    let path = CString::new(file.fd_path()).map_err(|_| fail(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: the attribute is plain data; zero is a valid value of every
    // field.
    let mut attr: perf_event_open_sys::bindings::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = pmu_type;
    attr.size = std::mem::size_of_val(&attr) as u32;
    attr.config = config;
    attr.__bindgen_anon_3.uprobe_path = path.as_ptr() as u64;
    attr.__bindgen_anon_4.probe_offset = *offset;
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = 1;
    // Every process (pid -1), counted from one CPU's event: BPF programs
    // on a uprobe run on whichever CPU hits it.
    // SAFETY: a valid attribute; `path` outlives the call.
    let fd = unsafe {
        perf_event_open_sys::perf_event_open(
            &mut attr,
            -1,
            0,
            -1,
            perf_event_open_sys::bindings::PERF_FLAG_FD_CLOEXEC as u64,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(crate::error::classify("attaching uprobes", &e).unwrap_or_else(|| fail(e)));
    }
    // SAFETY: a new descriptor nobody else owns.
    let link = UprobeLink(unsafe { OwnedFd::from_raw_fd(fd) });
    // SAFETY: ioctls on our own perf event descriptor, with a program
    // descriptor that stays open while the object is loaded.
    let rc = unsafe { perf_event_open_sys::ioctls::SET_BPF(fd, prog_fd as u32) };
    if rc < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // SAFETY: as above.
    if unsafe { perf_event_open_sys::ioctls::ENABLE(fd, 0) } < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(link)
}

/// Attaches tracepoint program `program` to `category:name`.
pub(super) fn attach_tracepoint(
    probe: &mut Probe,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<(), ProbeError> {
    let p: &mut TracePoint = object::program(&mut probe.ebpf, program)?;
    if p.fd().is_err() {
        p.load().map_err(object::load_error)?;
    }
    let link = p.attach(category, name).map_err(|source| {
        crate::error::classify("attaching tracepoints", &source).unwrap_or_else(|| {
            ProbeError::Tracefs(format!("attaching to tracepoint {category}:{name} failed: {source}"))
        })
    })?;
    probe.tps.push((program, link));
    Ok(())
}

fn read_stats(probe: &Probe) -> Result<ToolStats, ProbeError> {
    let map_err = |source| ProbeError::Map { map: ufunc::STATS, source };
    let stats: PerCpuArray<&MapData, ToolStats> = PerCpuArray::try_from(probe.map(ufunc::STATS)?).map_err(map_err)?;
    let mut total = ToolStats::default();
    for cpu in stats.get(&0, 0).map_err(map_err)?.iter() {
        total.merge(cpu);
    }
    Ok(total)
}

/// One probe's count.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FuncCount {
    /// The function, USDT probe or tracepoint.
    pub name: String,
    /// Calls (hits) since the start.
    pub count: u64,
}

/// Counts calls of user functions, USDT probes and tracepoints (funccount).
#[derive(Debug)]
pub struct FuncCounter {
    // Detached (closed) before the object is dropped.
    links: Vec<UprobeLink>,
    probe: Probe,
    probes: Vec<ResolvedProbe>,
}

/// What funccount counts.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FuncCountConfig {
    /// The processes whose calls count (`None`: every process).
    pub selection: Option<Selection>,
    /// The probes, one counter each (at most [`MAX_PROBES`]).
    pub probes: Vec<ResolvedProbe>,
}

/// What funclatency times.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FuncLatencyConfig {
    /// The processes whose calls are timed (`None`: every process).
    pub selection: Option<Selection>,
    /// The user functions (one histogram for all).
    pub probes: Vec<ResolvedProbe>,
    /// The unit of the buckets.
    pub unit: LatencyUnit,
}

impl FuncCounter {
    /// Loads and attaches one counter per probe (at most
    /// [`MAX_PROBES`]).
    pub fn start(config: FuncCountConfig) -> Result<Self, ProbeError> {
        let FuncCountConfig { selection, probes } = config;
        if probes.is_empty() || probes.len() > MAX_PROBES {
            return Err(ProbeError::InvalidConfig(format!(
                "{} probes: funccount attaches 1 to {MAX_PROBES}",
                probes.len()
            )));
        }
        let mut probe = load(selection, UfuncConfig { unit_div: 1 }, vec![ufunc::COUNTS, ufunc::STATS])?;
        let mut links = Vec::new();
        for (i, p) in probes.iter().enumerate() {
            match &p.target {
                ProbeTarget::Uprobe { .. } => links.push(attach_uprobe(&mut probe, COUNT_PROGRAMS[i], p, false)?),
                ProbeTarget::Tracepoint { category, name } => {
                    attach_tracepoint(&mut probe, TP_COUNT_PROGRAMS[i], category, name)?
                }
            }
        }
        Ok(Self { links, probe, probes })
    }

    /// The probes counted, in attach order.
    pub fn probes(&self) -> &[ResolvedProbe] {
        &self.probes
    }

    /// Each probe's count since the start, in attach order.
    pub fn counts(&self) -> Result<Vec<FuncCount>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: ufunc::COUNTS, source };
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.probe.map(ufunc::COUNTS)?).map_err(map_err)?;
        let mut out = Vec::with_capacity(self.probes.len());
        for (i, p) in self.probes.iter().enumerate() {
            let per_cpu = array.get(&(i as u32), 0).map_err(map_err)?;
            let count = per_cpu.iter().fold(0u64, |a, c| a.saturating_add(*c));
            out.push(FuncCount { name: p.name.clone(), count });
        }
        Ok(out)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        read_stats(&self.probe)
    }

    /// Uprobes attached (the rest are tracepoints).
    pub fn uprobes(&self) -> usize {
        self.links.len()
    }
}

/// The unit of funclatency's buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LatencyUnit {
    /// Nanoseconds (bcc's default).
    #[default]
    Nanoseconds,
    /// Microseconds (bcc's `-u`).
    Microseconds,
    /// Milliseconds (bcc's `-m`).
    Milliseconds,
}

impl LatencyUnit {
    /// Nanoseconds per unit.
    pub fn divisor(self) -> u64 {
        match self {
            Self::Nanoseconds => 1,
            Self::Microseconds => 1_000,
            Self::Milliseconds => 1_000_000,
        }
    }

    /// bcc's column name: `nsecs`, `usecs`, `msecs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nanoseconds => "nsecs",
            Self::Microseconds => "usecs",
            Self::Milliseconds => "msecs",
        }
    }
}

/// A latency histogram: bucket `i` counts calls that took `[2^i,
/// 2^(i+1))` units (bucket 0 also counts 0).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// The unit of the buckets.
    pub unit: LatencyUnit,
    /// Counts by log2 slot.
    pub counts: [u64; HIST_SLOTS],
    /// The sum of the latencies, in nanoseconds.
    pub sum_ns: u64,
}

impl LatencyHistogram {
    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// This histogram minus an earlier reading of it.
    pub fn since(&self, earlier: &Self) -> Self {
        let mut out = self.clone();
        for (c, e) in out.counts.iter_mut().zip(&earlier.counts) {
            *c = c.saturating_sub(*e);
        }
        out.sum_ns = out.sum_ns.saturating_sub(earlier.sum_ns);
        out
    }
}

/// Times the calls of user functions (funclatency): a uprobe records each
/// thread's entry, a uretprobe the latency.
#[derive(Debug)]
pub struct FuncLatency {
    links: Vec<UprobeLink>,
    probe: Probe,
    unit: LatencyUnit,
}

impl FuncLatency {
    /// Loads and attaches to every function of `probes` (one histogram for
    /// all), timing the calls of `selection` (`None`: every process).
    pub fn start(config: FuncLatencyConfig) -> Result<Self, ProbeError> {
        let FuncLatencyConfig { selection, probes, unit } = config;
        let probes = &probes[..];
        if probes.is_empty() || probes.len() > MAX_PROBES {
            return Err(ProbeError::InvalidConfig(format!(
                "{} functions: funclatency attaches 1 to {MAX_PROBES}",
                probes.len()
            )));
        }
        if let Some(p) = probes.iter().find(|p| !matches!(p.target, ProbeTarget::Uprobe { .. })) {
            return Err(ProbeError::InvalidConfig(format!(
                "{}: funclatency times user functions; a tracepoint has no return",
                p.name
            )));
        }
        let mut probe =
            load(selection, UfuncConfig { unit_div: unit.divisor() }, vec![ufunc::START, ufunc::HIST, ufunc::STATS])?;
        let mut links = Vec::new();
        for p in probes {
            // The return probe first: an entry without its return would
            // leave a start behind.
            links.push(attach_uprobe(&mut probe, ufunc::RETURN_PROGRAM, p, true)?);
            links.push(attach_uprobe(&mut probe, ufunc::ENTRY_PROGRAM, p, false)?);
        }
        Ok(Self { links, probe, unit })
    }

    /// The histogram since the start.
    pub fn histogram(&self) -> Result<LatencyHistogram, ProbeError> {
        let map_err = |source| ProbeError::Map { map: ufunc::HIST, source };
        let array: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(self.probe.map(ufunc::HIST)?).map_err(map_err)?;
        let mut h = LatencyHistogram { unit: self.unit, counts: [0; HIST_SLOTS], sum_ns: 0 };
        for slot in 0..=HIST_SLOTS {
            let total = array.get(&(slot as u32), 0).map_err(map_err)?.iter().fold(0u64, |a, c| a.saturating_add(*c));
            if slot == HIST_SLOTS {
                h.sum_ns = total;
            } else {
                h.counts[slot] = total;
            }
        }
        Ok(h)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        read_stats(&self.probe)
    }

    /// Uprobes attached (two per function).
    pub fn uprobes(&self) -> usize {
        self.links.len()
    }
}

fn load(selection: Option<Selection>, config: UfuncConfig, keep: Vec<&'static str>) -> Result<Probe, ProbeError> {
    Probe::load_with(
        // No TOOL_STATS slot: these tools keep their own counters.
        u32::MAX,
        Globals { selection, config: Default::default(), keep },
        &[(ufunc::CONFIG, &super::tcpconn::bytes_of(&config))],
    )
}

/// funccount's counts by interval: each call gives the hits of each probe
/// since the previous one.
#[derive(Clone, Debug, Default)]
pub struct FuncCountIntervals {
    previous: Vec<u64>,
}

impl FuncCountIntervals {
    /// Intervals from the start.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hits since the last call, one per probe in [`FuncCounter::counts`]'
    /// order.
    pub fn next(&mut self, counts: &[FuncCount]) -> Vec<FuncCount> {
        let rows = counts
            .iter()
            .enumerate()
            .map(|(i, c)| FuncCount {
                name: c.name.clone(),
                count: c.count.saturating_sub(self.previous.get(i).copied().unwrap_or(0)),
            })
            .collect();
        self.previous = counts.iter().map(|c| c.count).collect();
        rows
    }
}

/// Writes funccount's table as bcc: the probes hit, by count, the largest
/// last.
pub fn write_funccount(out: &mut dyn io::Write, rows: &[FuncCount]) -> io::Result<()> {
    let mut rows: Vec<&FuncCount> = rows.iter().filter(|r| r.count > 0).collect();
    rows.sort_by(|a, b| a.count.cmp(&b.count).then_with(|| a.name.cmp(&b.name)));
    writeln!(out, "{:<36} {:>8}", "FUNC", "COUNT")?;
    for r in rows {
        writeln!(out, "{:<36} {:>8}", perfkit_model::printable(&r.name), r.count)?;
    }
    Ok(())
}

/// A probe of [`FuncCountReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeCountJson<'a> {
    /// Hits in the interval.
    pub count: u64,
    /// The function, USDT probe or tracepoint.
    pub probe: &'a str,
}

/// One interval of funccount as a JSON document: every probe, hit or not.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuncCountReport<'a> {
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// The pattern as given.
    pub pattern: String,
    /// The probes.
    pub probes: Vec<ProbeCountJson<'a>>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When (RFC 3339).
    pub time: String,
    /// `funccount`.
    pub tool: &'static str,
}

impl<'a> FuncCountReport<'a> {
    /// The report of `rows` for `pattern` at `time`.
    pub fn new(time: String, interval: Option<Duration>, pattern: String, rows: &'a [FuncCount]) -> Self {
        Self {
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            pattern,
            probes: rows.iter().map(|r| ProbeCountJson { count: r.count, probe: &r.name }).collect(),
            schema_version: SCHEMA_VERSION,
            time,
            tool: "funccount",
        }
    }
}

impl LatencyHistogram {
    /// The buckets as a [`Histogram`] (in the histogram's unit).
    pub fn as_histogram(&self) -> Histogram {
        let mut h = Histogram::new(0, 0);
        h.counts = self.counts;
        h.sum_ns = self.sum_ns;
        h
    }

    /// Writes the histogram as bcc's funclatency: log2 buckets in its
    /// unit, then the average, total and count of the calls.
    pub fn write(&self, out: &mut dyn io::Write) -> io::Result<()> {
        let name = self.unit.name();
        write_log2_hist(out, name, &self.as_histogram(), 1)?;
        let count = self.count();
        let total = self.sum_ns / self.unit.divisor();
        if let Some(avg) = total.checked_div(count) {
            writeln!(out, "\navg = {avg} {name}, total: {total} {name}, count: {count}")?;
        }
        Ok(())
    }
}

/// One interval of funclatency as a JSON document (buckets of the
/// histogram's unit: microseconds when it is read for JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FuncLatencyReport<'a> {
    /// The buckets, up to the last used.
    pub buckets: Vec<BucketJson>,
    /// Calls.
    pub count: u64,
    /// The functions timed.
    pub functions: Vec<&'a str>,
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// The pattern as given.
    pub pattern: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The sum of the latencies, nanoseconds.
    pub sum_nsecs: u64,
    /// When (RFC 3339).
    pub time: String,
    /// `funclatency`.
    pub tool: &'static str,
}

impl<'a> FuncLatencyReport<'a> {
    /// The report of `h` for `pattern` and its `functions` at `time`.
    pub fn new(
        time: String,
        interval: Option<Duration>,
        pattern: String,
        functions: &'a [ResolvedProbe],
        h: &LatencyHistogram,
    ) -> Self {
        Self {
            buckets: HistogramJson::new(&h.as_histogram(), ()).buckets,
            count: h.count(),
            functions: functions.iter().map(|p| p.name.as_str()).collect(),
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            pattern,
            schema_version: SCHEMA_VERSION,
            sum_nsecs: h.sum_ns,
            time,
            tool: "funclatency",
        }
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn funccount_intervals_and_bccs_order() {
        let c = |name: &str, count| FuncCount { name: name.into(), count };
        let mut intervals = FuncCountIntervals::new();
        intervals.next(&[c("read", 5), c("write", 1)]);
        let rows = intervals.next(&[c("read", 6), c("write", 4)]);
        assert_eq!(rows, [c("read", 1), c("write", 3)]);
        let mut out = Vec::new();
        write_funccount(&mut out, &[c("b", 3), c("never", 0), c("a", 3), c("z", 1)]).unwrap();
        let names: Vec<String> =
            String::from_utf8(out).unwrap().lines().map(|l| l.split_whitespace().next().unwrap().to_owned()).collect();
        assert_eq!(names, ["FUNC", "z", "a", "b"]);
        let doc = FuncCountReport::new("T".into(), None, "c:read".into(), &rows);
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"interval_seconds":null,"pattern":"c:read","probes":[{"count":1,"probe":"read"},{"count":3,"probe":"write"}],"schema_version":2,"time":"T","tool":"funccount"}"#
        );
    }

    #[test]
    fn latency_in_its_unit_with_average() {
        let mut h = LatencyHistogram { unit: LatencyUnit::Microseconds, counts: [0; HIST_SLOTS], sum_ns: 30_000 };
        h.counts[3] = 2;
        let mut out = Vec::new();
        h.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("     usecs               : count     distribution\n"), "{text}");
        assert!(text.ends_with("\navg = 15 usecs, total: 30 usecs, count: 2\n"), "{text}");
    }
}
