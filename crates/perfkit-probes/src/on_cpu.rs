use std::{collections::HashMap, fs};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, StackTraceMap},
    programs::{
        PerfEvent,
        perf_event::{PerfEventConfig, PerfEventLinkId, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use perfkit_probes_common::{
    COMM_LEN, DEFAULT_COUNTS_ENTRIES, DEFAULT_STACK_ENTRIES, STACK_ID_LOST, STACK_ID_NONE, SampleStats, StackKey, names,
};

use perfkit_profile::raw::{RawSample, RawStack};

use crate::error::{ProbeError, classify, io_errno, libc_errno};

/// The compiled kernel side, built by `cargo xtask build-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/perfkit-probes.bpf.o");

/// What to sample and how.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OnCpuConfig {
    /// Process (thread group) to sample, with all its threads.
    pub tgid: u32,
    /// Samples per second per CPU.
    pub frequency_hz: u64,
    /// Entries in the stack trace map: distinct user and kernel stacks kept.
    pub stack_entries: u32,
    /// Entries in the counts map: distinct (thread name, stacks) tuples kept.
    pub counts_entries: u32,
}

impl OnCpuConfig {
    /// Samples `tgid` at 99 Hz with the default map sizes.
    pub fn new(tgid: u32) -> Self {
        Self { tgid, frequency_hz: 99, stack_entries: DEFAULT_STACK_ENTRIES, counts_entries: DEFAULT_COUNTS_ENTRIES }
    }

    fn validate(&self) -> Result<(), ProbeError> {
        let invalid = |msg: &str| Err(ProbeError::InvalidConfig(msg.to_owned()));
        if self.tgid == 0 {
            return invalid("the target process id must not be 0");
        }
        if self.frequency_hz == 0 {
            return invalid("the sampling frequency must be at least 1 Hz");
        }
        if self.stack_entries == 0 || self.counts_entries == 0 {
            return invalid("map sizes must be at least 1");
        }
        if let Some(max) = max_sample_rate()
            && self.frequency_hz > max
        {
            return Err(ProbeError::FrequencyTooHigh { hz: self.frequency_hz, max });
        }
        Ok(())
    }
}

fn max_sample_rate() -> Option<u64> {
    fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").ok()?.trim().parse().ok()
}

/// Everything a sampling run aggregated.
#[derive(Clone, Debug, Default)]
pub struct RawProfile {
    /// Unique stacks with their counts, in no particular order.
    pub samples: Vec<RawSample>,
    /// Sample and loss counters summed over CPUs.
    pub stats: SampleStats,
}

impl RawProfile {
    /// Samples that are in [`samples`](Self::samples); smaller than
    /// `stats.samples` by the samples the full counts map dropped.
    pub fn counted_samples(&self) -> u64 {
        self.samples.iter().map(|s| s.count).sum()
    }
}

/// A running on-CPU sampler. Sampling starts in [`start`](Self::start) and
/// stops in [`finish`](Self::finish), or when the sampler is dropped.
pub struct OnCpuSampler {
    ebpf: Ebpf,
    links: Vec<PerfEventLinkId>,
}

impl std::fmt::Debug for OnCpuSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnCpuSampler").field("cpus", &self.links.len()).finish()
    }
}

impl OnCpuSampler {
    /// Loads the program and attaches it to the cpu-clock event on every
    /// online CPU.
    pub fn start(config: &OnCpuConfig) -> Result<Self, ProbeError> {
        config.validate()?;
        if let Some(missing) = crate::privileges::missing_for_bpf() {
            return Err(ProbeError::PermissionDenied { what: "loading BPF programs", missing });
        }
        let mut ebpf = EbpfLoader::new()
            .override_global(names::TARGET_TGID, &config.tgid, true)
            .map_max_entries(names::COUNTS, config.counts_entries)
            .map_max_entries(names::STACKS, config.stack_entries)
            .load(OBJECT)
            .map_err(|e| classify("loading BPF programs", &e).unwrap_or_else(|| ProbeError::Load(Box::new(e))))?;

        let program: &mut PerfEvent = ebpf
            .program_mut(names::ON_CPU_PROGRAM)
            .ok_or_else(|| ProbeError::Load(format!("the object has no program {}", names::ON_CPU_PROGRAM).into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| ProbeError::Load(Box::new(e)))?;
        program
            .load()
            .map_err(|e| classify("loading BPF programs", &e).unwrap_or_else(|| ProbeError::Load(Box::new(e))))?;

        let cpus = aya::util::online_cpus().map_err(|(path, source)| ProbeError::OnlineCpus { path, source })?;
        let mut links = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let link = program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(config.frequency_hz),
                    false,
                )
                .map_err(|source| {
                    if io_errno(&source) == Some(libc_errno::EINVAL)
                        && let Some(max) = max_sample_rate().filter(|max| config.frequency_hz > *max)
                    {
                        return ProbeError::FrequencyTooHigh { hz: config.frequency_hz, max };
                    }
                    classify("attaching perf events", &source).unwrap_or(ProbeError::Attach {
                        program: names::ON_CPU_PROGRAM,
                        cpu,
                        source,
                    })
                })?;
            links.push(link);
        }
        tracing::debug!(tgid = config.tgid, cpus = links.len(), hz = config.frequency_hz, "on-cpu sampler attached");
        Ok(Self { ebpf, links })
    }

    /// Counters so far, summed over CPUs; cheap enough for a progress line.
    pub fn stats(&self) -> Result<SampleStats, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::STATS, source };
        let map = self
            .ebpf
            .map(names::STATS)
            .ok_or_else(|| map_err(aya::maps::MapError::InvalidName { name: names::STATS.into() }))?;
        let stats: PerCpuArray<&MapData, SampleStats> = PerCpuArray::try_from(map).map_err(map_err)?;
        let per_cpu = stats.get(&0, 0).map_err(map_err)?;
        let mut total = SampleStats::default();
        for cpu in per_cpu.iter() {
            total.merge(cpu);
        }
        Ok(total)
    }

    /// Stops sampling and reads the unique stacks and their counts.
    pub fn finish(mut self) -> Result<RawProfile, ProbeError> {
        self.detach();
        let stats = self.stats()?;

        let stack_err = |source| ProbeError::Map { map: names::STACKS, source };
        let stacks: StackTraceMap<&MapData> = self
            .ebpf
            .map(names::STACKS)
            .ok_or_else(|| stack_err(aya::maps::MapError::InvalidName { name: names::STACKS.into() }))?
            .try_into()
            .map_err(stack_err)?;
        let count_err = |source| ProbeError::Map { map: names::COUNTS, source };
        let counts: BpfHashMap<&MapData, StackKey, u64> = self
            .ebpf
            .map(names::COUNTS)
            .ok_or_else(|| count_err(aya::maps::MapError::InvalidName { name: names::COUNTS.into() }))?
            .try_into()
            .map_err(count_err)?;

        let mut frames_by_id: HashMap<i32, RawStack> = HashMap::new();
        let mut lookup = |id: i32| -> RawStack {
            match id {
                STACK_ID_NONE => RawStack::None,
                STACK_ID_LOST => RawStack::Lost,
                id => frames_by_id
                    .entry(id)
                    .or_insert_with(|| match stacks.get(&(id as u32), 0) {
                        Ok(trace) => RawStack::Frames(trace.frames().iter().map(|f| f.ip).collect()),
                        Err(err) => {
                            tracing::warn!(id, %err, "stack id counted but missing from the stack map");
                            RawStack::Lost
                        }
                    })
                    .clone(),
            }
        };

        let mut samples = Vec::new();
        for entry in counts.iter() {
            let (key, count) = entry.map_err(count_err)?;
            samples.push(RawSample {
                tgid: key.tgid,
                comm: comm_to_string(&key.comm),
                user: lookup(key.user_stack_id),
                kernel: lookup(key.kernel_stack_id),
                count,
            });
        }
        Ok(RawProfile { samples, stats })
    }

    fn detach(&mut self) {
        let Some(program) = self.ebpf.program_mut(names::ON_CPU_PROGRAM) else { return };
        let Ok(program): Result<&mut PerfEvent, _> = program.try_into() else { return };
        for link in self.links.drain(..) {
            if let Err(err) = program.detach(link) {
                tracing::warn!(%err, "detaching a perf event failed");
            }
        }
    }
}

fn comm_to_string(comm: &[u8; COMM_LEN]) -> String {
    let len = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&comm[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_stops_at_nul() {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"work");
        assert_eq!(comm_to_string(&comm), "work");
        assert_eq!(comm_to_string(b"0123456789abcdef"), "0123456789abcdef");
    }

    #[test]
    fn config_rejects_zeroes() {
        let mut c = OnCpuConfig::new(0);
        assert!(matches!(c.validate(), Err(ProbeError::InvalidConfig(_))));
        c.tgid = 1;
        c.frequency_hz = 0;
        assert!(matches!(c.validate(), Err(ProbeError::InvalidConfig(_))));
        c.frequency_hz = 99;
        c.stack_entries = 0;
        assert!(matches!(c.validate(), Err(ProbeError::InvalidConfig(_))));
    }

    #[test]
    fn shipped_object_is_an_elf_bpf_object() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        // e_machine at offset 18: EM_BPF = 247.
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }
}
