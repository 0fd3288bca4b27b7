//! hardirqs and softirqs: time in each hard IRQ handler (per IRQ number
//! and handler name) and in each softirq vector, as log2 histograms kept
//! per CPU. Raw tracepoints: a handler is missed only while this same
//! program already runs on the CPU, which an IRQ cannot interrupt.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel_str_bytes},
    macros::{map, raw_tracepoint},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::RawTracePointContext,
};
use perfkit_probes_common::{
    irqs::{AGG_HARDIRQS, AGG_SLOTS, AGG_SOFTIRQS, IRQ_NAME_LEN, IrqConfig, IrqKey, IrqStart, KIND_HARD, KIND_SOFT},
    tools::{HistValue, ToolStats, log2_slot},
};

use crate::kernel;

/// Set by the loader: the `irqaction.name` offset, the CPU filter, the
/// unit of the slots.
#[unsafe(no_mangle)]
static IRQ_CONFIG: IrqConfig = IrqConfig { irqaction_name: 0, cpu: -1, ns_slots: 0, _pad: 0 };

/// What each CPU runs now.
#[map]
static IRQ_START: PerCpuArray<IrqStart> = PerCpuArray::with_max_entries(1, 0);

/// Time histograms by handler or vector, one copy per CPU.
#[map]
static IRQ_HIST: PerCpuHashMap<IrqKey, HistValue> = PerCpuHashMap::with_max_entries(2048, 0);

/// Counters of the aggregating tools (`AGG_*`).
#[map]
pub(crate) static AGG_STATS: PerCpuArray<ToolStats> = PerCpuArray::with_max_entries(AGG_SLOTS, 0);

#[inline(always)]
fn config() -> IrqConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&IRQ_CONFIG) }
}

/// This CPU's counters of an aggregating tool.
#[inline(always)]
pub(crate) fn stats(slot: u32) -> Option<&'static mut ToolStats> {
    // SAFETY: the per-CPU slot belongs to this CPU, and a BPF program is
    // not re-entered on the CPU it runs on while it holds it.
    AGG_STATS.get_ptr_mut(slot).map(|p| unsafe { &mut *p })
}

/// This CPU's state, when the CPU is watched.
#[inline(always)]
fn here() -> Option<&'static mut IrqStart> {
    let cpu = config().cpu;
    // SAFETY: the helper has no preconditions.
    if cpu >= 0 && unsafe { bpf_get_smp_processor_id() } != cpu as u32 {
        return None;
    }
    // SAFETY: as `stats`.
    IRQ_START.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

#[inline(always)]
fn record(mut key: IrqKey, ns: u64, stats: &mut ToolStats) {
    stats.events += 1;
    key.slot = log2_slot(if config().ns_slots != 0 { ns } else { ns / 1000 });
    if let Some(p) = IRQ_HIST.get_ptr_mut(&key) {
        // SAFETY: this CPU's value; a BPF program is not re-entered on its
        // CPU while it runs.
        unsafe {
            (*p).count += 1;
            (*p).sum_ns += ns;
        }
        return;
    }
    if IRQ_HIST.insert(&key, &HistValue { count: 1, sum_ns: ns }, BPF_NOEXIST as u64).is_err() {
        stats.updates_lost += 1;
    }
}

/// irq_handler_entry(irq, action): a handler starts.
#[raw_tracepoint(tracepoint = "irq_handler_entry")]
pub fn hardirq_entry(ctx: RawTracePointContext) -> i32 {
    let Some(s) = here() else { return 0 };
    let (irq, action) = (ctx.arg::<u64>(0) as u32, ctx.arg::<u64>(1));
    s.hard_irq = irq;
    s.hard_name = [0; IRQ_NAME_LEN];
    if let Some(name) = kernel::read::<u64>(action, config().irqaction_name)
        && name != 0
    {
        // SAFETY: the helper checks the address; the destination is the
        // map value's own array.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut s.hard_name) };
    }
    // SAFETY: the helper has no preconditions.
    s.hard_ns = unsafe { bpf_ktime_get_ns() };
    0
}

/// irq_handler_exit(irq, action, ret): the handler returns.
#[raw_tracepoint(tracepoint = "irq_handler_exit")]
pub fn hardirq_exit(ctx: RawTracePointContext) -> i32 {
    let Some(s) = here() else { return 0 };
    let Some(stats) = stats(AGG_HARDIRQS) else { return 0 };
    let irq = ctx.arg::<u64>(0) as u32;
    if s.hard_ns == 0 || s.hard_irq != irq {
        stats.unmatched += 1;
        return 0;
    }
    // SAFETY: the helper has no preconditions.
    let ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(s.hard_ns);
    s.hard_ns = 0;
    let key = IrqKey { kind: KIND_HARD, number: irq, slot: 0, _pad: 0, name: s.hard_name };
    record(key, ns, stats);
    0
}

/// softirq_entry(vec): a softirq vector's handler starts.
#[raw_tracepoint(tracepoint = "softirq_entry")]
pub fn softirq_entry(ctx: RawTracePointContext) -> i32 {
    let Some(s) = here() else { return 0 };
    s.soft_vec = ctx.arg::<u64>(0) as u32;
    // SAFETY: the helper has no preconditions.
    s.soft_ns = unsafe { bpf_ktime_get_ns() };
    0
}

/// softirq_exit(vec): it returns.
#[raw_tracepoint(tracepoint = "softirq_exit")]
pub fn softirq_exit(ctx: RawTracePointContext) -> i32 {
    let Some(s) = here() else { return 0 };
    let Some(stats) = stats(AGG_SOFTIRQS) else { return 0 };
    let vec = ctx.arg::<u64>(0) as u32;
    if s.soft_ns == 0 || s.soft_vec != vec {
        stats.unmatched += 1;
        return 0;
    }
    // SAFETY: the helper has no preconditions.
    let ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(s.soft_ns);
    s.soft_ns = 0;
    let key = IrqKey { kind: KIND_SOFT, number: vec, slot: 0, _pad: 0, name: [0; IRQ_NAME_LEN] };
    record(key, ns, stats);
    0
}
