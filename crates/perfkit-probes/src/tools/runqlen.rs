//! runqlen: run-queue lengths, sampled on every CPU.

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

use super::{Globals, Histogram, Probe, irqs::aggregate_stats};
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
