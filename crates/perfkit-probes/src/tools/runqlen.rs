//! runqlen: run-queue lengths, sampled on every CPU.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    time::Duration,
};

use aya::{
    maps::{MapData, PerCpuArray},
    programs::{
        PerfEvent,
        perf_event::{PerfEventConfig, PerfEventLinkId, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use perfkit_probes_common::{
    irqs::AGG_RUNQLEN,
    names,
    runqlen::RUNQLEN_SLOTS,
    tools::{ToolConfig, ToolStats},
};
use serde::Serialize;

use super::{
    Globals, Histogram, Probe,
    irqs::aggregate_stats,
    text::{SCHEMA_VERSION, round3},
};
use crate::{ProbeError, object};

/// bcc's sampling frequency: 99 Hz, off the beat of timers.
pub const DEFAULT_RUNQLEN_HZ: u64 = 99;

/// How runqlen samples.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunqlenConfig {
    /// Samples per second on each CPU (bcc's 99 by default).
    pub frequency_hz: u64,
}

impl Default for RunqlenConfig {
    fn default() -> Self {
        Self { frequency_hz: DEFAULT_RUNQLEN_HZ }
    }
}

/// Run-queue lengths: at each sample, the tasks runnable on the CPU (its
/// `struct rq`'s `nr_running`: every scheduling class) less the one
/// running. bcc reads the CFS queue of the running task (its cgroup's
/// queue under group scheduling); perfkit reads the CPU's own count, so a
/// hog in another cgroup or an RT task counts too.
#[derive(Debug)]
pub struct Runqlen {
    probe: Probe,
    links: Vec<PerfEventLinkId>,
    cpus: Vec<u32>,
}

impl Runqlen {
    /// Loads and starts sampling every online CPU.
    pub fn start(config: RunqlenConfig) -> Result<Self, ProbeError> {
        let hz = config.frequency_hz;
        if hz == 0 {
            return Err(ProbeError::InvalidConfig("a sampling frequency of 0 Hz".into()));
        }
        let (_, runq) = crate::btf::aggregate_offsets()?;
        let g = Globals { selection: None, config: ToolConfig::default(), keep: vec![] };
        let probe = Probe::load_with(u32::MAX, g, &[(names::RUNQLEN_CONFIG, &super::tcpconn::bytes_of(&runq))])?;
        let mut me = Self { probe, links: Vec::new(), cpus: Vec::new() };
        let program: &mut PerfEvent = object::program(&mut me.probe.ebpf, names::RUNQLEN_PROGRAM)?;
        program.load().map_err(object::load_error)?;
        me.cpus = aya::util::online_cpus().map_err(|(path, source)| ProbeError::OnlineCpus { path, source })?;
        for &cpu in &me.cpus {
            let link = program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(|source| ProbeError::Attach { program: names::RUNQLEN_PROGRAM, cpu, source })?;
            me.links.push(link);
        }
        Ok(me)
    }

    /// Samples since the start, one histogram per online CPU (`id`: the
    /// CPU): `counts[n]` is the number of samples that found `n` tasks
    /// waiting (a linear histogram; 63 counts 63 or more).
    pub fn per_cpu(&self) -> Result<Vec<Histogram>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::RUNQLEN_HIST, source };
        let hist: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.probe.map(names::RUNQLEN_HIST)?).map_err(map_err)?;
        let possible = aya::util::nr_cpus().map_err(|(path, source)| ProbeError::OnlineCpus { path, source })?;
        let mut out: Vec<Histogram> = (0..possible).map(|cpu| Histogram::new(cpu as u64, 0)).collect();
        for len in 0..RUNQLEN_SLOTS {
            for (cpu, n) in hist.get(&len, 0).map_err(map_err)?.iter().enumerate() {
                if let Some(h) = out.get_mut(cpu) {
                    h.counts[len as usize] = *n;
                }
            }
        }
        out.retain(|h| self.cpus.contains(&(h.id as u32)));
        Ok(out)
    }

    /// Every CPU's samples in one histogram.
    pub fn all(&self) -> Result<Histogram, ProbeError> {
        let mut total = Histogram::new(0, 0);
        for h in self.per_cpu()? {
            for (t, c) in total.counts.iter_mut().zip(h.counts) {
                *t = t.saturating_add(c);
            }
        }
        Ok(total)
    }

    /// Counters since the start: samples taken (`events`), samples whose
    /// queue could not be read (`unmatched`).
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        aggregate_stats(&self.probe, AGG_RUNQLEN)
    }
}

impl Drop for Runqlen {
    fn drop(&mut self) {
        if let Some(p) = self.probe.ebpf.program_mut(names::RUNQLEN_PROGRAM)
            && let Ok(p) = <&mut PerfEvent>::try_from(p)
        {
            for link in self.links.drain(..) {
                let _ = p.detach(link);
            }
        }
    }
}

/// The share of samples, in percent, that found a task waiting (bcc's
/// runqlen `-O`, occupancy).
pub fn occupancy_percent(h: &Histogram) -> f64 {
    let total = h.count();
    if total == 0 { 0.0 } else { 100.0 * (total - h.counts[0]) as f64 / total as f64 }
}

/// An interval's samples: of one CPU, or (`cpu` `None`) of all.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunqlenHist {
    /// The CPU, or `None` for the whole machine.
    pub cpu: Option<u64>,
    /// Samples by tasks waiting.
    pub hist: Histogram,
}

/// Turns [`Runqlen::per_cpu`]'s totals into intervals.
#[derive(Clone, Debug, Default)]
pub struct RunqlenIntervals {
    previous: BTreeMap<u64, Histogram>,
}

impl RunqlenIntervals {
    /// Intervals from the start.
    pub fn new() -> Self {
        Self::default()
    }

    /// The samples since the last call: per CPU (`per_cpu`) or one
    /// histogram for all.
    pub fn next(&mut self, now: Vec<Histogram>, per_cpu: bool) -> Vec<RunqlenHist> {
        let interval: Vec<Histogram> =
            now.iter().map(|h| self.previous.get(&h.id).map_or_else(|| h.clone(), |p| h.since(p))).collect();
        self.previous = now.into_iter().map(|h| (h.id, h)).collect();
        if per_cpu {
            return interval.into_iter().map(|hist| RunqlenHist { cpu: Some(hist.id), hist }).collect();
        }
        let mut all = Histogram::new(0, 0);
        for h in &interval {
            all.merge(h);
        }
        vec![RunqlenHist { cpu: None, hist: all }]
    }
}

/// Writes a linear histogram of run queue lengths, as bcc's runqlen.
pub fn write_runqlen_hist(out: &mut dyn Write, h: &Histogram) -> io::Result<()> {
    writeln!(out, "     {:<13} : count     distribution", "runqlen")?;
    let (Some(first), Some(last)) = (h.counts.iter().position(|&c| c > 0), h.counts.iter().rposition(|&c| c > 0))
    else {
        return writeln!(out, "     (no samples)");
    };
    let max = h.counts.iter().copied().max().unwrap_or(1).max(1);
    for (i, &c) in h.counts.iter().enumerate().take(last + 1).skip(first) {
        let stars = ((c as u128 * 40) / max as u128) as usize;
        writeln!(out, "        {i:<3}      : {c:<8} |{:<40}|", "*".repeat(stars))?;
    }
    Ok(())
}

/// Writes an interval as bcc's runqlen: the occupancy lines
/// (`occupancy`), and the histograms unless only the occupancy was asked
/// for (`histograms` asks for both).
pub fn write_runqlen(out: &mut dyn Write, hists: &[RunqlenHist], occupancy: bool, histograms: bool) -> io::Result<()> {
    if occupancy {
        for h in hists {
            match h.cpu {
                Some(c) => writeln!(out, "runqocc, CPU {c:<3} {:6.2}%", occupancy_percent(&h.hist))?,
                None => writeln!(out, "runqocc: {:0.2}%", occupancy_percent(&h.hist))?,
            }
        }
    }
    if !occupancy || histograms {
        for h in hists {
            if let Some(c) = h.cpu {
                writeln!(out, "\ncpu = {c}")?;
            }
            write_runqlen_hist(out, &h.hist)?;
        }
    }
    Ok(())
}

/// A bucket of [`RunqlenHistJson`]: the samples that found `length`
/// tasks waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LengthJson {
    /// Samples.
    pub count: u64,
    /// Tasks waiting (63: 63 or more).
    pub length: usize,
}

/// A histogram of [`RunqlenReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunqlenHistJson {
    /// From length 0 to the longest seen.
    pub buckets: Vec<LengthJson>,
    /// The CPU, `null` for the whole machine.
    pub cpu: Option<u64>,
    /// The share of samples with a task waiting, percent.
    pub occupancy_percent: f64,
    /// Samples.
    pub samples: u64,
}

/// One interval of runqlen as a JSON document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunqlenReport {
    /// Samples per second per CPU.
    pub frequency_hz: u64,
    /// The histograms.
    pub histograms: Vec<RunqlenHistJson>,
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When (RFC 3339).
    pub time: String,
    /// `runqlen`.
    pub tool: &'static str,
    /// `tasks`.
    pub unit: &'static str,
}

impl RunqlenReport {
    /// The report of `hists`, sampled at `frequency_hz`, at `time`.
    pub fn new(time: String, interval: Option<Duration>, frequency_hz: u64, hists: &[RunqlenHist]) -> Self {
        let histograms = hists
            .iter()
            .map(|RunqlenHist { cpu, hist }| {
                let last = hist.counts.iter().rposition(|&c| c > 0).map_or(0, |l| l + 1);
                RunqlenHistJson {
                    buckets: hist.counts[..last]
                        .iter()
                        .enumerate()
                        .map(|(length, &count)| LengthJson { count, length })
                        .collect(),
                    cpu: *cpu,
                    occupancy_percent: round3(occupancy_percent(hist)),
                    samples: hist.count(),
                }
            })
            .collect();
        Self {
            frequency_hz,
            histograms,
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            schema_version: SCHEMA_VERSION,
            time,
            tool: "runqlen",
            unit: "tasks",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_is_the_share_of_samples_with_a_waiting_task() {
        let mut h = Histogram::new(0, 0);
        h.counts[0] = 75;
        h.counts[2] = 25;
        assert_eq!(occupancy_percent(&h), 25.0);
        assert_eq!(occupancy_percent(&Histogram::new(0, 0)), 0.0);
        let mut out = Vec::new();
        write_runqlen_hist(&mut out, &h).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("        2        : 25       |*************"), "{text}");
    }

    #[test]
    fn intervals_per_cpu_or_merged_and_their_json() {
        let cpu = |id: u64, waiting: [u64; 2]| {
            let mut h = Histogram::new(id, 0);
            h.counts[..2].copy_from_slice(&waiting);
            h
        };
        let mut intervals = RunqlenIntervals::new();
        intervals.next(vec![cpu(0, [10, 0]), cpu(1, [5, 5])], false);
        let all = intervals.next(vec![cpu(0, [20, 2]), cpu(1, [5, 9])], false);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].cpu, &all[0].hist.counts[..3]), (None, &[10, 6, 0][..]));
        let doc = RunqlenReport::new("T".into(), Some(Duration::from_secs(1)), 99, &all);
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"frequency_hz":99,"histograms":[{"buckets":[{"count":10,"length":0},{"count":6,"length":1}],"cpu":null,"occupancy_percent":37.5,"samples":16}],"interval_seconds":1.0,"schema_version":2,"time":"T","tool":"runqlen","unit":"tasks"}"#
        );
        let per_cpu = RunqlenIntervals::new().next(vec![cpu(3, [1, 1])], true);
        let mut out = Vec::new();
        write_runqlen(&mut out, &per_cpu, true, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "runqocc, CPU 3    50.00%\n");
    }
}
