//! Off-CPU time: when a selected thread leaves the CPU, its stacks and the
//! time are kept; when it runs again, the time it waited is added to those
//! stacks' count (in nanoseconds).

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_get_current_task},
    macros::map,
    maps::HashMap,
    programs::RawTracePointContext,
    EbpfContext,
};
use perfkit_probes_common::sampler::{
    KIND_OFF_CPU, OffCpuStart, STATE_INTERRUPTIBLE, STATE_PREEMPTED, STATE_UNINTERRUPTIBLE, WALK_OFF_CPU,
};

use crate::{filter, kernel, stacks};

/// Threads off CPU now: when they left and with which stacks.
#[map]
static OFF_CPU_START: HashMap<u32, OffCpuStart> = HashMap::with_max_entries(1 << 16, 0);

/// sched_switch from `prev` (the current task) to `next`. With `LOOP`
/// (kernels with `bpf_loop`) the whole switch is handled here; without,
/// true means that `prev`'s user stack walk has begun and goes on in tail
/// calls, ending in [`left`].
#[inline(always)]
pub(crate) fn on_switch<const LOOP: bool>(ctx: &RawTracePointContext, prev: u64, next: u64) -> bool {
    let Some(stats) = stacks::stats() else { return false };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let off = kernel::offsets();
    let config = stacks::config();

    // `next` runs again: add the time it was off CPU.
    if let Some(next_tid) = kernel::read::<u32>(next, off.task_pid)
        && next_tid != 0
    {
        // SAFETY: a plain read of a map value, copied before the removal.
        if let Some(start) = unsafe { OFF_CPU_START.get(next_tid) }.copied() {
            let _ = OFF_CPU_START.remove(next_tid);
            let blocked = now.saturating_sub(start.start_ns);
            if blocked >= config.min_block_ns && blocked <= config.max_block_ns {
                stats.blocks += 1;
                stacks::count(&start.key, blocked, stats);
            }
        }
    }

    // `prev` leaves: keep its stacks, if it is selected and blocks in a
    // state asked for.
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tid == 0 || !filter::selected(tgid, tid) {
        return false;
    }
    let state = kernel::read::<u32>(prev, off.task_state).unwrap_or(0);
    let class = match state & 3 {
        0 => STATE_PREEMPTED,
        1 => STATE_INTERRUPTIBLE,
        _ => STATE_UNINTERRUPTIBLE,
    };
    if config.states & class == 0 {
        return false;
    }
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    let mut key = stacks::new_key(tgid, tid, task);
    key.kind = KIND_OFF_CPU;
    if config.kernel_stacks != 0 {
        key.kernel_stack = stacks::kernel_stack(WALK_OFF_CPU, ctx.as_ptr(), stats);
    }
    if !LOOP {
        return stacks::begin_user_stack(WALK_OFF_CPU, key, now, task, 0);
    }
    stacks::user_stack(WALK_OFF_CPU, &mut key, task, 0, stats);
    left(OffCpuStart { start_ns: now, key });
    false
}

/// A selected thread left the CPU with these stacks.
#[inline(always)]
pub(crate) fn left(start: OffCpuStart) {
    if OFF_CPU_START.insert(start.key.tid, start, BPF_ANY as u64).is_err()
        && let Some(stats) = stacks::stats()
    {
        stats.blocks_lost += 1;
    }
}
