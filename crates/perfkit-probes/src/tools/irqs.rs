//! hardirqs and softirqs: time in hard IRQ handlers and softirq vectors.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use perfkit_probes_common::{
    irqs::{AGG_HARDIRQS, AGG_SOFTIRQS, IrqConfig, IrqKey, KIND_HARD, KIND_SOFT},
    names,
    tools::{HIST_SLOTS, HistValue, ToolConfig, ToolStats},
};

use perfkit_model::printable;
use serde::Serialize;

use super::{
    Globals, Histogram, Probe,
    text::{BucketJson, HistogramJson, SCHEMA_VERSION, round3, write_log2_hist},
};
use crate::ProbeError;

/// The `Probe::tool` of tools whose counters live in `AGG_STATS`.
const NO_TOOL_STATS: u32 = u32::MAX;

/// The kernel's softirq vector names, as `/proc/softirqs` prints them
/// (bcc prints them in lower case).
const SOFTIRQ_NAMES: [&str; 10] =
    ["HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"];

/// A softirq vector's name in lower case, as bcc prints it (`net_rx`), or
/// its number.
pub fn softirq_name(vec: u32) -> String {
    SOFTIRQ_NAMES.get(vec as usize).map_or_else(|| vec.to_string(), |n| n.to_ascii_lowercase())
}

/// Hard IRQ handler or softirq vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum IrqKind {
    /// A hard IRQ handler (irq_handler_entry to irq_handler_exit).
    Hard,
    /// A softirq vector (softirq_entry to softirq_exit).
    Soft,
}

/// What to time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IrqsConfig {
    /// Hard IRQ handlers (hardirqs).
    pub hard: bool,
    /// Softirq vectors (softirqs).
    pub soft: bool,
    /// Only this CPU (libbpf-tools' `-c`).
    pub cpu: Option<u32>,
    /// Histogram slots of log2 nanoseconds rather than microseconds.
    pub ns_slots: bool,
}

impl IrqsConfig {
    /// Times hard IRQ handlers, softirq vectors, or both.
    pub fn new(hard: bool, soft: bool) -> Self {
        Self { hard, soft, ..Self::default() }
    }
}

/// The time spent in one handler or vector since the start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IrqTime {
    /// Handler or vector.
    pub kind: IrqKind,
    /// The IRQ number, or the softirq vector.
    pub number: u32,
    /// The handler's name as the kernel registered it (the last column
    /// of `/proc/interrupts`), or the vector's name in lower case.
    pub name: String,
    /// Runs by log2 slot (of microseconds, or of nanoseconds with
    /// [`IrqsConfig::ns_slots`]); `count()` is the number of runs and
    /// `sum_ns` the total time. `id` is the number.
    pub hist: Histogram,
}

/// Time in hard IRQ handlers and softirq vectors, from raw tracepoints.
#[derive(Debug)]
pub struct Irqs {
    probe: Probe,
}

impl Irqs {
    /// Loads and attaches. Interrupts are not filtered by process: they
    /// run in whichever task they interrupt.
    pub fn start(config: IrqsConfig) -> Result<Self, ProbeError> {
        if !config.hard && !config.soft {
            return Err(ProbeError::InvalidConfig("neither hard IRQs nor softirqs asked for".into()));
        }
        let (irqaction_name, _) = crate::btf::aggregate_offsets()?;
        let cpu = match config.cpu {
            None => -1,
            Some(c) => {
                let online =
                    aya::util::online_cpus().map_err(|(path, source)| ProbeError::OnlineCpus { path, source })?;
                if !online.contains(&c) || c >= i32::MAX as u32 {
                    return Err(ProbeError::InvalidConfig(format!("CPU {c} is not online (online: {online:?})")));
                }
                c as i32
            }
        };
        let irq = IrqConfig { irqaction_name, cpu, ns_slots: u32::from(config.ns_slots), _pad: 0 };
        let g = Globals { selection: None, config: ToolConfig::default(), keep: vec![names::IRQ_HIST] };
        let mut probe = Probe::load_with(NO_TOOL_STATS, g, &[(names::IRQ_CONFIG, &super::tcpconn::bytes_of(&irq))])?;
        if config.hard {
            probe.attach_raw(names::HARDIRQ_ENTRY_PROGRAM, "irq_handler_entry")?;
            probe.attach_raw(names::HARDIRQ_EXIT_PROGRAM, "irq_handler_exit")?;
        }
        if config.soft {
            probe.attach_raw(names::SOFTIRQ_ENTRY_PROGRAM, "softirq_entry")?;
            probe.attach_raw(names::SOFTIRQ_EXIT_PROGRAM, "softirq_exit")?;
        }
        Ok(Self { probe })
    }

    /// The time of every handler and vector that ran since the start,
    /// hard IRQs first, each by number then name.
    pub fn times(&self) -> Result<Vec<IrqTime>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::IRQ_HIST, source };
        let hist: PerCpuHashMap<&MapData, IrqKey, HistValue> =
            PerCpuHashMap::try_from(self.probe.map(names::IRQ_HIST)?).map_err(map_err)?;
        let mut out: BTreeMap<(IrqKind, u32, [u8; perfkit_probes_common::irqs::IRQ_NAME_LEN]), Histogram> =
            BTreeMap::new();
        for item in hist.iter() {
            let (key, values) = item.map_err(map_err)?;
            let kind = match key.kind {
                KIND_HARD => IrqKind::Hard,
                KIND_SOFT => IrqKind::Soft,
                _ => continue,
            };
            let h =
                out.entry((kind, key.number, key.name)).or_insert_with(|| Histogram::new(key.number as u64, key.kind));
            for v in values.iter() {
                if (key.slot as usize) < HIST_SLOTS {
                    h.counts[key.slot as usize] = h.counts[key.slot as usize].saturating_add(v.count);
                }
                h.sum_ns = h.sum_ns.saturating_add(v.sum_ns);
            }
        }
        Ok(out
            .into_iter()
            .map(|((kind, number, name), hist)| {
                let name = match kind {
                    IrqKind::Hard => {
                        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                        perfkit_model::escape_bytes(&name[..len])
                    }
                    IrqKind::Soft => softirq_name(number),
                };
                IrqTime { kind, number, name, hist }
            })
            .collect())
    }

    /// Counters since the start: runs timed (`events`), exits whose entry
    /// was not seen (`unmatched`: begun before the tool), updates lost to a
    /// full map.
    pub fn stats(&self, kind: IrqKind) -> Result<ToolStats, ProbeError> {
        aggregate_stats(&self.probe, if kind == IrqKind::Hard { AGG_HARDIRQS } else { AGG_SOFTIRQS })
    }

    /// Both kinds' counters together.
    pub fn total_stats(&self) -> Result<ToolStats, ProbeError> {
        let mut total = self.stats(IrqKind::Hard)?;
        total.merge(&self.stats(IrqKind::Soft)?);
        Ok(total)
    }
}

/// One slot of `AGG_STATS`, summed over CPUs.
pub(super) fn aggregate_stats(probe: &Probe, slot: u32) -> Result<ToolStats, ProbeError> {
    let map_err = |source| ProbeError::Map { map: names::AGG_STATS, source };
    let stats: PerCpuArray<&MapData, ToolStats> =
        PerCpuArray::try_from(probe.map(names::AGG_STATS)?).map_err(map_err)?;
    let mut total = ToolStats::default();
    for cpu in stats.get(&slot, 0).map_err(map_err)?.iter() {
        total.merge(cpu);
    }
    Ok(total)
}

/// One row of hardirqs and softirqs: the handlers registered under one
/// name (or one softirq vector), in an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IrqRow {
    /// The handler's or vector's name.
    pub name: String,
    /// The IRQ numbers of that name (a vector: its number).
    pub numbers: Vec<u32>,
    /// Their runs in the interval, merged.
    pub hist: Histogram,
}

impl IrqRow {
    /// The total time in the unit of the tool's slots: nanoseconds with
    /// [`IrqsConfig::ns_slots`], else microseconds.
    pub fn total(&self, nanoseconds: bool) -> u64 {
        if nanoseconds { self.hist.sum_ns } else { self.hist.sum_ns / 1000 }
    }
}

/// Turns the running totals of [`Irqs::times`] into intervals: each call
/// gives what ran since the previous one, by name.
#[derive(Clone, Debug, Default)]
pub struct IrqIntervals {
    previous: BTreeMap<(u32, String), Histogram>,
}

impl IrqIntervals {
    /// Intervals from the start.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows that ran since the last call, by name; as bcc sorts them,
    /// smallest first: by runs (`by_count`) or by total time.
    pub fn next(&mut self, times: Vec<IrqTime>, by_count: bool, nanoseconds: bool) -> Vec<IrqRow> {
        let mut by_name: BTreeMap<String, IrqRow> = BTreeMap::new();
        for t in &times {
            let h = self.previous.get(&(t.number, t.name.clone())).map_or_else(|| t.hist.clone(), |p| t.hist.since(p));
            let row = by_name.entry(t.name.clone()).or_insert_with(|| IrqRow {
                name: t.name.clone(),
                numbers: Vec::new(),
                hist: Histogram::new(0, 0),
            });
            row.numbers.push(t.number);
            row.hist.merge(&h);
        }
        self.previous = times.into_iter().map(|t| ((t.number, t.name), t.hist)).collect();
        let mut rows: Vec<IrqRow> = by_name.into_values().filter(|r| r.hist.count() > 0).collect();
        if by_count {
            rows.sort_by_key(|r| (r.hist.count(), r.name.clone()));
        } else {
            rows.sort_by_key(|r| (r.total(nanoseconds), r.name.clone()));
        }
        rows
    }
}

/// Writes hardirqs' or softirqs' table in bcc's layout: a row per name,
/// its runs (`counts`) or its total time (nanoseconds or microseconds).
pub fn write_irq_table(
    out: &mut dyn Write,
    kind: IrqKind,
    rows: &[IrqRow],
    counts: bool,
    nanoseconds: bool,
) -> io::Result<()> {
    let (column, width) = if kind == IrqKind::Hard { ("HARDIRQ", 26) } else { ("SOFTIRQ", 16) };
    let unit = if nanoseconds { "nsecs" } else { "usecs" };
    let label = if counts { "TOTAL_count".to_owned() } else { format!("TOTAL_{unit}") };
    writeln!(out, "{column:<width$} {label:>11}")?;
    for r in rows {
        let v = if counts { r.hist.count() } else { r.total(nanoseconds) };
        writeln!(out, "{:<width$} {v:>11}", printable(&r.name))?;
    }
    Ok(())
}

/// Writes a log2 histogram per row (bcc's `-d`), in the slots' unit.
pub fn write_irq_dists(out: &mut dyn Write, kind: IrqKind, rows: &[IrqRow], nanoseconds: bool) -> io::Result<()> {
    let section = if kind == IrqKind::Hard { "hardirq" } else { "softirq" };
    let unit = if nanoseconds { "nsecs" } else { "usecs" };
    for r in rows {
        writeln!(out, "\n{section} = {}", printable(&r.name))?;
        write_log2_hist(out, unit, &r.hist, 1)?;
    }
    Ok(())
}

/// A row of [`IrqReport`]: `irqs` for a handler name, `vector` for a
/// softirq; `buckets` with `-d`. Always in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IrqRowJson {
    /// The log2 buckets, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketJson>>,
    /// Runs.
    pub count: u64,
    /// A handler name's IRQ numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irqs: Option<Vec<u32>>,
    /// The name.
    pub name: String,
    /// Total time, microseconds.
    pub total_usecs: f64,
    /// A softirq's vector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<u32>,
}

/// One interval of hardirqs or softirqs as a JSON document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IrqReport {
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// The rows.
    pub rows: Vec<IrqRowJson>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When (RFC 3339).
    pub time: String,
    /// `hardirqs` or `softirqs`.
    pub tool: &'static str,
}

impl IrqReport {
    /// The report of `rows` (of microsecond slots) at `time`, with their
    /// buckets if `dist`.
    pub fn new(kind: IrqKind, time: String, interval: Option<Duration>, rows: &[IrqRow], dist: bool) -> Self {
        let hard = kind == IrqKind::Hard;
        let rows = rows
            .iter()
            .map(|r| IrqRowJson {
                buckets: dist.then(|| HistogramJson::new(&r.hist, ()).buckets),
                count: r.hist.count(),
                irqs: hard.then(|| r.numbers.clone()),
                name: r.name.clone(),
                total_usecs: round3(r.hist.sum_ns as f64 / 1000.0),
                vector: if hard { None } else { r.numbers.first().copied() },
            })
            .collect();
        Self {
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            rows,
            schema_version: SCHEMA_VERSION,
            time,
            tool: if hard { "hardirqs" } else { "softirqs" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softirq_vectors_are_named_as_bcc_names_them() {
        assert_eq!(softirq_name(0), "hi");
        assert_eq!(softirq_name(3), "net_rx");
        assert_eq!(softirq_name(9), "rcu");
        assert_eq!(softirq_name(12), "12");
    }
    fn time(number: u32, name: &str, runs: u64, sum_ns: u64) -> IrqTime {
        let mut hist = Histogram::new(u64::from(number), 0);
        hist.counts[3] = runs;
        hist.sum_ns = sum_ns;
        IrqTime { kind: IrqKind::Hard, number, name: name.to_owned(), hist }
    }

    #[test]
    fn rows_merge_handlers_of_one_name_per_interval() {
        let mut intervals = IrqIntervals::new();
        let first = intervals.next(vec![time(36, "virtio", 2, 4000), time(37, "virtio", 1, 1000)], false, false);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].numbers.clone(), first[0].hist.count(), first[0].total(false)), (vec![36, 37], 3, 5));
        // The next interval holds only what ran since; a name that did not
        // run is left out, and rows sort smallest first.
        let next = intervals.next(
            vec![time(36, "virtio", 2, 4000), time(37, "virtio", 4, 9000), time(1, "i8042", 9, 500)],
            false,
            false,
        );
        let names: Vec<(&str, u64)> = next.iter().map(|r| (r.name.as_str(), r.total(false))).collect();
        assert_eq!(names, [("i8042", 0), ("virtio", 8)]);
        let by_count = IrqIntervals::new().next(vec![time(1, "a", 5, 1), time(2, "b", 1, 9000)], true, true);
        assert_eq!(by_count[0].name, "b");

        let mut out = Vec::new();
        write_irq_table(&mut out, IrqKind::Hard, &next, false, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!("{:<26} {:>11}\n{:<26} {:>11}\n{:<26} {:>11}\n", "HARDIRQ", "TOTAL_usecs", "i8042", 0, "virtio", 8)
        );
        let doc = IrqReport::new(IrqKind::Hard, "T".into(), None, &next[1..], false);
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"interval_seconds":null,"rows":[{"count":3,"irqs":[36,37],"name":"virtio","total_usecs":8.0}],"schema_version":2,"time":"T","tool":"hardirqs"}"#
        );
        let soft = IrqReport::new(IrqKind::Soft, "T".into(), None, &next[1..], true);
        let soft = serde_json::to_string(&soft.rows[0]).unwrap();
        assert!(soft.starts_with(r#"{"buckets":[{"count":0,"high_usecs":1,"low_usecs":0}"#), "{soft}");
        assert!(soft.ends_with(r#""name":"virtio","total_usecs":8.0,"vector":36}"#), "{soft}");
    }
}
