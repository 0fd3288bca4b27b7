//! runqlen: each CPU's run-queue length, sampled by a perf event on every
//! CPU: the runnable tasks of the CPU's `struct rq` (every scheduling
//! class), less the one running, counted per length in a per-CPU array.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_task},
    macros::{map, perf_event},
    maps::PerCpuArray,
    programs::PerfEventContext,
};
use perfkit_probes_common::{
    irqs::AGG_RUNQLEN,
    runqlen::{NO_RQ_FIELD, RUNQLEN_SLOTS, RunqlenConfig},
};

use crate::{irqs, kernel};

/// Set by the loader from BTF.
#[unsafe(no_mangle)]
static RUNQLEN_CONFIG: RunqlenConfig = RunqlenConfig { task_cfs_rq: 0, cfs_rq_rq: 0, rq_cfs: 0, rq_nr_running: 0 };

/// Samples by queue length, one copy per CPU (so per CPU as is).
#[map]
static RUNQLEN_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(RUNQLEN_SLOTS, 0);

/// One sample of this CPU's queue.
#[perf_event]
pub fn runqlen_sample(_ctx: PerfEventContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    let c = unsafe { core::ptr::read_volatile(&RUNQLEN_CONFIG) };
    let Some(stats) = irqs::stats(AGG_RUNQLEN) else { return 0 };
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    // Every task's CFS queue (the idle task's too) belongs to its CPU's rq.
    let Some(cfs_rq) = kernel::read::<u64>(task, c.task_cfs_rq) else {
        stats.unmatched += 1;
        return 0;
    };
    let rq = if c.cfs_rq_rq == NO_RQ_FIELD {
        cfs_rq.wrapping_sub(c.rq_cfs as u64)
    } else {
        kernel::read::<u64>(cfs_rq, c.cfs_rq_rq).unwrap_or(0)
    };
    let Some(running) = kernel::read::<u32>(rq, c.rq_nr_running) else {
        stats.unmatched += 1;
        return 0;
    };
    // The idle task is not counted in nr_running; any other current task is.
    let current = u32::from(bpf_get_current_pid_tgid() as u32 != 0);
    let len = running.saturating_sub(current).min(RUNQLEN_SLOTS - 1);
    stats.events += 1;
    if let Some(p) = RUNQLEN_HIST.get_ptr_mut(len) {
        // SAFETY: this CPU's slot; a BPF program is not re-entered on its
        // CPU while it runs.
        unsafe { *p += 1 };
    }
    0
}
