//! runqlat: how long runnable threads wait for a CPU, from their wakeup
//! (or preemption) to the moment they run, as log2 histograms.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC},
    helpers::bpf_ktime_get_ns,
    macros::{map, raw_tracepoint},
    maps::HashMap,
    programs::RawTracePointContext,
};
use perfkit_probes_common::tools::{HistKey, PER_CGROUP, PER_PIDNS, PER_PROCESS, PER_THREAD, TOOL_RUNQLAT};

use crate::{kernel, tools};

/// When each runnable thread was enqueued.
#[map]
static RUNQ_START: HashMap<u32, u64> = HashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// Latency histograms (microsecond log2 slots, and the sum in ns).
#[map]
static RUNQ_HIST: HashMap<HistKey, u64> = HashMap::with_max_entries(16_384, BPF_F_NO_PREALLOC);

#[inline(always)]
fn enqueue(task: u64) {
    if !tools::task_selected(task) {
        return;
    }
    let tid = tools::task_pid(task);
    if tid == 0 {
        return;
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if RUNQ_START.insert(&tid, &now, BPF_ANY as u64).is_err()
        && let Some(s) = tools::stats(TOOL_RUNQLAT)
    {
        s.starts_lost += 1;
    }
}

/// sched_wakeup(p): p becomes runnable.
#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn runq_wakeup(ctx: RawTracePointContext) -> i32 {
    enqueue(ctx.arg::<u64>(0));
    0
}

/// sched_wakeup_new(p): a new task becomes runnable.
#[raw_tracepoint(tracepoint = "sched_wakeup_new")]
pub fn runq_wakeup_new(ctx: RawTracePointContext) -> i32 {
    enqueue(ctx.arg::<u64>(0));
    0
}

/// sched_switch(preempt, prev, next): a preempted `prev` is runnable
/// again at once; `next` has waited since it was enqueued.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn runq_switch(ctx: RawTracePointContext) -> i32 {
    let (prev, next) = (ctx.arg::<u64>(1), ctx.arg::<u64>(2));
    // TASK_RUNNING is 0: prev was preempted, not blocked.
    if kernel::read::<u32>(prev, kernel::offsets().task_state).unwrap_or(1) == 0 {
        enqueue(prev);
    }
    let tid = tools::task_pid(next);
    if tid == 0 {
        return 0;
    }
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(start) = (unsafe { RUNQ_START.get(&tid) }).copied() else { return 0 };
    let _ = RUNQ_START.remove(&tid);
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(stats) = tools::stats(TOOL_RUNQLAT) else { return 0 };
    stats.events += 1;
    let id = match tools::config().runq_per {
        PER_PROCESS => tools::task_tgid(next) as u64,
        PER_THREAD => tid as u64,
        PER_CGROUP => tools::task_cgroup(next, None),
        PER_PIDNS => tools::task_pidns(next),
        _ => 0,
    };
    tools::record_latency(&RUNQ_HIST, id, 0, now.saturating_sub(start), stats);
    0
}
