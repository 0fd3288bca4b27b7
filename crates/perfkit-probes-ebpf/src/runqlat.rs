//! runqlat: how long runnable threads wait for a CPU, from their wakeup
//! (or preemption) to the moment they run, as log2 histograms.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::bpf_ktime_get_ns,
    macros::{map, raw_tracepoint},
    maps::{HashMap, PerCpuHashMap},
    programs::RawTracePointContext,
};
use perfkit_probes_common::tools::{HistKey, HistValue, PER_CGROUP, PER_PIDNS, PER_PROCESS, PER_THREAD, TOOL_RUNQLAT};

use crate::{kernel, tools};

/// When each runnable thread was enqueued (preallocated: the scheduler's
/// hot path allocates nothing).
#[map]
static RUNQ_START: HashMap<u32, u64> = HashMap::with_max_entries(16_384, 0);

/// Latency histograms (microsecond log2 slots, and the sum in ns), one copy
/// per CPU.
#[map]
static RUNQ_HIST: PerCpuHashMap<HistKey, HistValue> = PerCpuHashMap::with_max_entries(16_384, 0);

#[inline(always)]
fn enqueue(task: u64) {
    if !tools::task_selected(task) {
        return;
    }
    enqueue_tid(tools::task_pid(task));
}

#[inline(always)]
fn enqueue_tid(tid: u32) {
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
    // The name of a counted process as it leaves the CPU: after an exec,
    // its new one.
    match tools::config().runq_per {
        PER_PROCESS => tools::refresh_comm(tools::task_tgid(prev), prev, true),
        PER_THREAD => tools::refresh_comm(tools::task_pid(prev), prev, false),
        _ => {}
    }
    // TASK_RUNNING is 0: prev was preempted, not blocked. prev is still
    // the current task: its ids need no read of its task_struct.
    if kernel::read::<u32>(prev, kernel::offsets().task_state).unwrap_or(1) == 0 {
        let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
        if crate::filter::selected((pid_tgid >> 32) as u32, pid_tgid as u32) {
            enqueue_tid(pid_tgid as u32);
        }
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
        PER_PROCESS => {
            let tgid = tools::task_tgid(next);
            tools::remember_comm(tgid, next, true);
            tgid as u64
        }
        PER_THREAD => {
            tools::remember_comm(tid, next, false);
            tid as u64
        }
        PER_CGROUP => tools::task_cgroup(next, None),
        PER_PIDNS => tools::task_pidns(next),
        _ => 0,
    };
    tools::record_latency_per_cpu(&RUNQ_HIST, id, now.saturating_sub(start), stats);
    0
}
