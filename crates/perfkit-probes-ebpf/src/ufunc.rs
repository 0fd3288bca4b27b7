//! funccount and funclatency on user functions, USDT probes and
//! tracepoints.
//!
//! Counting: program `ufunc_count_N` (a uprobe) or `tp_count_N` (a
//! tracepoint) adds one to probe N's per-CPU count; the loader attaches
//! program N to the N-th probe it resolved, so no attach cookie (5.15) is
//! needed. Latency: `ufunc_entry` keeps each thread's start, and
//! `ufunc_return` puts the call's duration in a per-CPU log2 histogram.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::{HashMap, PerCpuArray},
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use perfkit_probes_common::{
    tools::{HIST_SLOTS, ToolStats, log2_slot},
    ufunc::{MAX_PROBES, UfuncConfig},
};

use crate::filter;

/// What funclatency does, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static UFUNC_CONFIG: UfuncConfig = UfuncConfig { unit_div: 1 };

/// Calls counted, by probe index, one copy per CPU.
#[map]
static UFUNC_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_PROBES as u32, 0);

/// When each thread entered the timed function.
#[map]
static UFUNC_START: HashMap<u64, u64> = HashMap::with_max_entries(16_384, 0);

/// Latency log2 slots (in the configured unit), then the sum in
/// nanoseconds, one copy per CPU.
#[map]
static UFUNC_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(HIST_SLOTS as u32 + 1, 0);

/// The tools' counters (one slot).
#[map]
static UFUNC_STATS: PerCpuArray<ToolStats> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn config() -> UfuncConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&UFUNC_CONFIG) }
}

#[inline(always)]
fn stats() -> Option<&'static mut ToolStats> {
    // SAFETY: this CPU's slot; a BPF program is not re-entered on its CPU
    // while it holds it.
    UFUNC_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// Whether the current task is selected.
#[inline(always)]
fn current_selected() -> bool {
    let pid_tgid = bpf_get_current_pid_tgid();
    filter::selected((pid_tgid >> 32) as u32, pid_tgid as u32)
}

/// Adds one to probe `index`'s count on this CPU.
#[inline(always)]
fn count(index: u32) {
    if !current_selected() {
        return;
    }
    if let Some(p) = UFUNC_COUNTS.get_ptr_mut(index) {
        // SAFETY: this CPU's copy; not shared with another CPU.
        unsafe { *p += 1 };
    }
    if let Some(s) = stats() {
        s.events += 1;
    }
}

/// One uprobe and one tracepoint program per probe index.
macro_rules! counters {
    ($($uprobe:ident, $tp:ident, $index:literal;)*) => {
        $(
            #[uprobe]
            pub fn $uprobe(_ctx: ProbeContext) -> u32 {
                count($index);
                0
            }

            #[tracepoint]
            pub fn $tp(_ctx: TracePointContext) -> u32 {
                count($index);
                0
            }
        )*
    };
}

counters! {
    ufunc_count_0, tp_count_0, 0;
    ufunc_count_1, tp_count_1, 1;
    ufunc_count_2, tp_count_2, 2;
    ufunc_count_3, tp_count_3, 3;
    ufunc_count_4, tp_count_4, 4;
    ufunc_count_5, tp_count_5, 5;
    ufunc_count_6, tp_count_6, 6;
    ufunc_count_7, tp_count_7, 7;
    ufunc_count_8, tp_count_8, 8;
    ufunc_count_9, tp_count_9, 9;
    ufunc_count_10, tp_count_10, 10;
    ufunc_count_11, tp_count_11, 11;
    ufunc_count_12, tp_count_12, 12;
    ufunc_count_13, tp_count_13, 13;
    ufunc_count_14, tp_count_14, 14;
    ufunc_count_15, tp_count_15, 15;
    ufunc_count_16, tp_count_16, 16;
    ufunc_count_17, tp_count_17, 17;
    ufunc_count_18, tp_count_18, 18;
    ufunc_count_19, tp_count_19, 19;
    ufunc_count_20, tp_count_20, 20;
    ufunc_count_21, tp_count_21, 21;
    ufunc_count_22, tp_count_22, 22;
    ufunc_count_23, tp_count_23, 23;
    ufunc_count_24, tp_count_24, 24;
    ufunc_count_25, tp_count_25, 25;
    ufunc_count_26, tp_count_26, 26;
    ufunc_count_27, tp_count_27, 27;
    ufunc_count_28, tp_count_28, 28;
    ufunc_count_29, tp_count_29, 29;
    ufunc_count_30, tp_count_30, 30;
    ufunc_count_31, tp_count_31, 31;
    ufunc_count_32, tp_count_32, 32;
    ufunc_count_33, tp_count_33, 33;
    ufunc_count_34, tp_count_34, 34;
    ufunc_count_35, tp_count_35, 35;
    ufunc_count_36, tp_count_36, 36;
    ufunc_count_37, tp_count_37, 37;
    ufunc_count_38, tp_count_38, 38;
    ufunc_count_39, tp_count_39, 39;
    ufunc_count_40, tp_count_40, 40;
    ufunc_count_41, tp_count_41, 41;
    ufunc_count_42, tp_count_42, 42;
    ufunc_count_43, tp_count_43, 43;
    ufunc_count_44, tp_count_44, 44;
    ufunc_count_45, tp_count_45, 45;
    ufunc_count_46, tp_count_46, 46;
    ufunc_count_47, tp_count_47, 47;
    ufunc_count_48, tp_count_48, 48;
    ufunc_count_49, tp_count_49, 49;
    ufunc_count_50, tp_count_50, 50;
    ufunc_count_51, tp_count_51, 51;
    ufunc_count_52, tp_count_52, 52;
    ufunc_count_53, tp_count_53, 53;
    ufunc_count_54, tp_count_54, 54;
    ufunc_count_55, tp_count_55, 55;
    ufunc_count_56, tp_count_56, 56;
    ufunc_count_57, tp_count_57, 57;
    ufunc_count_58, tp_count_58, 58;
    ufunc_count_59, tp_count_59, 59;
    ufunc_count_60, tp_count_60, 60;
    ufunc_count_61, tp_count_61, 61;
    ufunc_count_62, tp_count_62, 62;
    ufunc_count_63, tp_count_63, 63;
}

/// funclatency: a call starts.
#[uprobe]
pub fn ufunc_entry(_ctx: ProbeContext) -> u32 {
    if !current_selected() {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if UFUNC_START.insert(&pid_tgid, &now, BPF_ANY as u64).is_err()
        && let Some(s) = stats()
    {
        s.starts_lost += 1;
    }
    0
}

/// funclatency: the call returns; its duration goes in the histogram.
#[uretprobe]
pub fn ufunc_return(_ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a plain read of a map value.
    let Some(&start) = (unsafe { UFUNC_START.get(&pid_tgid) }) else {
        return 0;
    };
    let _ = UFUNC_START.remove(&pid_tgid);
    // SAFETY: the helper has no preconditions.
    let ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(start);
    let div = config().unit_div;
    let value = if div > 1 { ns / div } else { ns };
    let slot = log2_slot(value).min(HIST_SLOTS as u32 - 1);
    if let Some(p) = UFUNC_HIST.get_ptr_mut(slot) {
        // SAFETY: this CPU's copy; not shared with another CPU.
        unsafe { *p += 1 };
    }
    if let Some(p) = UFUNC_HIST.get_ptr_mut(HIST_SLOTS as u32) {
        // SAFETY: as above.
        unsafe { *p += ns };
    }
    if let Some(s) = stats() {
        s.events += 1;
    }
    0
}
