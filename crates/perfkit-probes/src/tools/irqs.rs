//! hardirqs and softirqs: time in hard IRQ handlers and softirq vectors.

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use perfkit_probes_common::{
    irqs::{AGG_HARDIRQS, AGG_SOFTIRQS, IrqConfig, IrqKey, KIND_HARD, KIND_SOFT},
    names,
    tools::{HIST_SLOTS, HistValue, ToolConfig, ToolStats},
};

use super::{Globals, Histogram, Probe};
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
}
