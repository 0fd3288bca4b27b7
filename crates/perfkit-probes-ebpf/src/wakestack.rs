//! wakeuptime and stackcount: stacks taken with `bpf_get_stackid` into one
//! stack-trace map (frame pointers for user stacks, as bcc's tools).
//!
//! wakeuptime: `wakeuptime_switch` (sched_switch) notes when a selected
//! thread leaves the CPU blocked (not preempted); `wakeuptime_waking`
//! (sched_waking, which runs in the waker's context) adds the time that
//! thread was blocked to the key of the waker's stacks and both names.
//! stackcount: each hit of a uprobe or tracepoint adds one to the key of
//! the current thread's stacks.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC, BPF_F_USER_STACK, BPF_NOEXIST},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, raw_tracepoint, tracepoint, uprobe},
    maps::{HashMap, PerCpuArray, StackTrace},
    programs::{ProbeContext, RawTracePointContext, TracePointContext, tracing::StackIdContext},
};
use perfkit_probes_common::{
    kernel::PF_KTHREAD,
    tools::ToolStats,
    wakestack::{COUNTS_ENTRIES, NOT_TAKEN, START_ENTRIES, StackCountKey, WakeKey, WakeStackConfig},
};

use crate::{atomic_add, filter, kernel, tools};

/// What the programs do, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static WAKESTACK_CONFIG: WakeStackConfig = WakeStackConfig {
    min_block_ns: 0,
    max_block_ns: u64::MAX,
    user_threads_only: 0,
    user_stacks: 1,
    kernel_stacks: 1,
    _pad: 0,
};

/// When each blocked thread left the CPU (preallocated: the scheduler's
/// hot path allocates nothing).
#[map]
static WAKE_START: HashMap<u32, u64> = HashMap::with_max_entries(START_ENTRIES, 0);

/// Nanoseconds blocked, by waker's stacks and names.
#[map]
static WAKE_COUNTS: HashMap<WakeKey, u64> = HashMap::with_max_entries(COUNTS_ENTRIES, BPF_F_NO_PREALLOC);

/// Hits, by stacks.
#[map]
static STACKCOUNT_COUNTS: HashMap<StackCountKey, u64> =
    HashMap::with_max_entries(COUNTS_ENTRIES, BPF_F_NO_PREALLOC);

/// The stacks, by id. The loader sizes it (`--stack-storage-size`).
#[map]
static WAKESTACK_IDS: StackTrace = StackTrace::with_max_entries(1024, 0);

/// The tools' counters (one slot).
#[map]
static WAKESTACK_STATS: PerCpuArray<ToolStats> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn config() -> WakeStackConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&WAKESTACK_CONFIG) }
}

#[inline(always)]
fn stats() -> Option<&'static mut ToolStats> {
    // SAFETY: this CPU's slot; a BPF program is not re-entered on its CPU
    // while it holds it.
    WAKESTACK_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// The current task's stacks, as configured: (user, kernel) ids, a
/// negative errno when one was not stored, [`NOT_TAKEN`] when not asked.
#[inline(always)]
fn stacks<C: StackIdContext>(ctx: &C, c: &WakeStackConfig) -> (i32, i32) {
    let user = if c.user_stacks != 0 {
        match ctx.get_stackid(&WAKESTACK_IDS, BPF_F_USER_STACK as u64) {
            Ok(id) => id as i32,
            Err(e) => e,
        }
    } else {
        NOT_TAKEN
    };
    let kernel = if c.kernel_stacks != 0 {
        match ctx.get_stackid(&WAKESTACK_IDS, 0) {
            Ok(id) => id as i32,
            Err(e) => e,
        }
    } else {
        NOT_TAKEN
    };
    (user, kernel)
}

/// Adds `n` to a key's count, inserting it when new.
#[inline(always)]
fn add<K>(map: &HashMap<K, u64>, key: &K, n: u64) {
    if let Some(p) = map.get_ptr_mut(key) {
        atomic_add(p, n);
    } else if map.insert(key, &n, BPF_NOEXIST as u64).is_err() {
        // Another CPU may have inserted it since the lookup.
        match map.get_ptr_mut(key) {
            Some(p) => atomic_add(p, n),
            None => {
                if let Some(s) = stats() {
                    s.updates_lost += 1;
                }
            }
        }
    }
}

/// sched_switch(preempt, prev, next): `prev` (the current task) leaves the
/// CPU; when it blocks (not preempted, not runnable), note the time.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn wakeuptime_switch(ctx: RawTracePointContext) -> i32 {
    let preempt = ctx.arg::<u64>(0) & 0xff;
    let prev = ctx.arg::<u64>(1);
    if preempt != 0 {
        return 0;
    }
    let off = kernel::offsets();
    if kernel::read::<u32>(prev, off.task_state).unwrap_or(0) == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tid == 0 || !filter::selected(tgid, tid) {
        return 0;
    }
    if config().user_threads_only != 0 && kernel::read::<u32>(prev, off.task_flags).unwrap_or(0) & PF_KTHREAD != 0 {
        return 0;
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if WAKE_START.insert(&tid, &now, BPF_ANY as u64).is_err()
        && let Some(s) = stats()
    {
        s.starts_lost += 1;
    }
    0
}

/// sched_waking(p), in the waker's context: `p` was blocked since its
/// switch; its time goes under the waker's stacks.
#[raw_tracepoint(tracepoint = "sched_waking")]
pub fn wakeuptime_waking(ctx: RawTracePointContext) -> i32 {
    let task = ctx.arg::<u64>(0);
    let tid = tools::task_pid(task);
    if tid == 0 {
        return 0;
    }
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(start) = (unsafe { WAKE_START.get(&tid) }).copied() else { return 0 };
    let _ = WAKE_START.remove(&tid);
    // SAFETY: the helper has no preconditions.
    let blocked = unsafe { bpf_ktime_get_ns() }.saturating_sub(start);
    let c = config();
    if blocked < c.min_block_ns || blocked > c.max_block_ns {
        return 0;
    }
    let (user_stack, kernel_stack) = stacks(&ctx, &c);
    let key = WakeKey {
        waker_tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        target_tgid: tools::task_tgid(task),
        user_stack,
        kernel_stack,
        waker: bpf_get_current_comm().unwrap_or([0; 16]),
        target: kernel::comm(task),
    };
    add(&WAKE_COUNTS, &key, blocked);
    if let Some(s) = stats() {
        s.events += 1;
    }
    0
}

/// Counts one hit under the current thread's stacks.
#[inline(always)]
fn count<C: StackIdContext>(ctx: &C, entry_return: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !filter::selected(tgid, tid) {
        return;
    }
    let (user_stack, kernel_stack) = stacks(ctx, &config());
    let key = StackCountKey {
        tgid,
        tid,
        user_stack,
        kernel_stack,
        entry_return,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    add(&STACKCOUNT_COUNTS, &key, 1);
    if let Some(s) = stats() {
        s.events += 1;
    }
}

/// stackcount: a uprobe at a function's first instruction. The caller's
/// return address is still on top of the stack, where a frame-pointer walk
/// (on kernels before 6.10) does not see it: it is kept with the key.
#[uprobe]
pub fn stackcount_entry(ctx: ProbeContext) -> u32 {
    // SAFETY: the context of a uprobe is the probed task's registers.
    let sp = unsafe { (*ctx.regs).rsp };
    // SAFETY: a user address read through the helper, which faults safely.
    let ret = unsafe { bpf_probe_read_user(sp as *const u64) }.unwrap_or(0);
    count(&ctx, ret);
    0
}

/// stackcount: a uprobe inside a function (a USDT probe): the frame
/// pointers already chain through its caller.
#[uprobe]
pub fn stackcount_uprobe(ctx: ProbeContext) -> u32 {
    count(&ctx, 0);
    0
}

/// stackcount: a tracepoint.
#[tracepoint]
pub fn stackcount_tp(ctx: TracePointContext) -> u32 {
    count(&ctx, 0);
    0
}
