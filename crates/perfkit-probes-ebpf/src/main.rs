//! perfkit's eBPF programs, kernel side.
//!
//! - `on_cpu_sample` runs on every cpu-clock sample on every CPU. For a
//!   selected task ([`filter`]) it walks the user stack ([`walk`]: unwind
//!   tables compiled from DWARF CFI, or frame pointers) and the kernel
//!   stack, stores each distinct stack once by its hash, and counts
//!   samples per (process, thread, names, stacks) ([`stacks`]). Nothing is
//!   streamed per sample: user space reads the counts and stacks at the
//!   end.
//!   On kernels without `bpf_loop` (before 5.17), `on_cpu_sample_loopless`
//!   walks a few frames per run and tail-calls `on_cpu_walk_more` for the
//!   rest; the loader picks the variant the kernel runs.
//! - `track_fork` and `track_exit` keep the set of selected processes as
//!   they create children and exit (`track_exit_group_dead` where the
//!   exit tracepoint has a second argument).
//! - `off_cpu_switch` measures how long threads wait off CPU, under the
//!   stacks they left with ([`offcpu`]).
//! - The bcc-style tools ([`tools`]): run-queue latency ([`runqlat`]),
//!   block I/O latency and events ([`bio`]), syscall counts and names
//!   ([`syscalls`]), exec and open events ([`snoop`]), TCP sessions and
//!   retransmissions ([`tcp`]), TCP connects and accepts ([`tcpconn`]),
//!   OOM kills ([`oomkill`]), mounts ([`mountsnoop`]) and capability checks
//!   ([`capable`], a kprobe); time in hard IRQ handlers and softirqs
//!   ([`irqs`]) and run-queue lengths ([`runqlen`]).
//! - funccount and funclatency on user functions, USDT probes and
//!   tracepoints ([`ufunc`]).
//! - memleak: outstanding allocations by stack, from uprobes on a user
//!   allocator or the kernel's `kmem` tracepoints ([`memleak`]).
//! - trace and argdist: one event per hit of a uprobe, USDT probe or
//!   tracepoint, with registers, strings and record ([`trace`]).
//! - wakeuptime (time blocked by the waker's stacks) and stackcount (hits
//!   by stack) ([`wakestack`]).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod bio;
mod capable;
mod filter;
mod irqs;
mod kernel;
mod memleak;
mod mountsnoop;
mod offcpu;
mod oomkill;
mod runqlat;
mod runqlen;
mod snoop;
mod stacks;
mod syscalls;
mod tcp;
mod tcpconn;
mod tools;
mod trace;
mod ufunc;
mod wakestack;
mod walk;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_task},
    macros::{perf_event, raw_tracepoint},
    programs::{PerfEventContext, RawTracePointContext},
};
use perfkit_probes_common::sampler::{SampleKey, WALK_OFF_CPU, WALK_ON_CPU};

/// Adds one to a counter shared between CPUs.
#[inline(always)]
pub(crate) fn atomic_add(counter: *mut u64, n: u64) {
    // SAFETY: `counter` points at a live map value; the atomic add keeps
    // counts exact when several CPUs update it at once.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(counter, n);
    }
}

/// The prelude of an on-CPU sample: the current task, when it is selected,
/// with its key and kernel stack.
#[inline(always)]
fn on_cpu_begin(ctx: &PerfEventContext) -> Option<(SampleKey, u64, u64)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    let stats = stacks::stats()?;
    if tid == 0 {
        // The idle task: counted in system-wide runs, never drawn.
        if filter::config().mode == perfkit_probes_common::filter::MODE_ALL {
            stats.idle += 1;
        }
        return None;
    }
    if !filter::selected(tgid, tid) {
        return None;
    }
    stats.samples += 1;
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    let mut key = stacks::new_key(tgid, tid, task);
    let regs = ctx.ctx as u64;
    // SAFETY: the context of a perf_event program starts with the sampled
    // registers (`struct pt_regs` on x86-64).
    let user_mode = unsafe { kernel::user_mode(regs) };
    if stacks::config().kernel_stacks != 0 && !user_mode {
        key.kernel_stack = stacks::kernel_stack(0, ctx.ctx.cast(), stats);
    }
    Some((key, task, if user_mode { regs } else { 0 }))
}

/// On-CPU samples, on kernels with `bpf_loop` (5.17 and newer).
#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    let Some((mut key, task, regs)) = on_cpu_begin(&ctx) else { return 0 };
    let Some(stats) = stacks::stats() else { return 0 };
    stacks::user_stack(0, &mut key, task, regs, stats);
    stacks::count(&key, 1, stats);
    0
}

/// On-CPU samples, on kernels without `bpf_loop`: the user stack's walk
/// goes on in [`on_cpu_walk_more`] by tail calls.
#[perf_event]
pub fn on_cpu_sample_loopless(ctx: PerfEventContext) -> u32 {
    let Some((key, task, regs)) = on_cpu_begin(&ctx) else { return 0 };
    if stacks::begin_user_stack(WALK_ON_CPU, key, 0, task, regs) {
        on_cpu_walk(&ctx);
    }
    0
}

/// The rest of a loopless on-CPU walk (reached by tail call only).
#[perf_event]
pub fn on_cpu_walk_more(ctx: PerfEventContext) -> u32 {
    on_cpu_walk(&ctx);
    0
}

/// Walks some frames; then either goes on in a tail call or counts the
/// sample.
#[inline(always)]
fn on_cpu_walk(ctx: &PerfEventContext) {
    if walk::walk_some(WALK_ON_CPU) {
        // SAFETY: a tail call into the same kind of program; on success
        // it does not return.
        unsafe { walk::WALK_MORE_ON_CPU.tail_call(ctx, 0) };
    }
    let Some(stats) = stacks::stats() else { return };
    if let Some(pending) = stacks::end_user_stack(WALK_ON_CPU, stats) {
        stacks::count(&pending.key, 1, stats);
    }
}

/// sched_process_fork(parent, child): a selected process's new child
/// process is selected too.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn track_fork(ctx: RawTracePointContext) -> i32 {
    filter::on_fork(ctx.arg::<u64>(1));
    0
}

/// sched_process_exit(task): an exited process leaves the set, so that its
/// id, once reused, selects nothing. For kernels whose tracepoint has one
/// argument: reading a second one would fail the attach.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn track_exit(ctx: RawTracePointContext) -> i32 {
    filter::on_exit(ctx.arg::<u64>(0), None);
    0
}

/// sched_process_exit(task, group_dead), on the kernels that pass
/// `group_dead`.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn track_exit_group_dead(ctx: RawTracePointContext) -> i32 {
    filter::on_exit(ctx.arg::<u64>(0), Some(ctx.arg::<u64>(1)));
    0
}

/// sched_process_exec(task, old_pid, bprm): a selected process's mappings
/// are all new; user space reads them again.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn track_exec(_ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if filter::selected(tgid, tid) {
        let _ = walk::PROCS.remove(tgid);
        walk::request(perfkit_probes_common::unwind::REQUEST_EXEC, tgid);
    }
    0
}

/// sched_switch(preempt, prev, next, ...): off-CPU time.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn off_cpu_switch(ctx: RawTracePointContext) -> i32 {
    offcpu::on_switch::<true>(&ctx, ctx.arg::<u64>(1), ctx.arg::<u64>(2));
    0
}

/// sched_switch on kernels without `bpf_loop`: the user stack's walk goes
/// on in [`off_cpu_walk_more`] by tail calls.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn off_cpu_switch_loopless(ctx: RawTracePointContext) -> i32 {
    if offcpu::on_switch::<false>(&ctx, ctx.arg::<u64>(1), ctx.arg::<u64>(2)) {
        off_cpu_walk(&ctx);
    }
    0
}

/// The rest of a loopless off-CPU walk (reached by tail call only).
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn off_cpu_walk_more(ctx: RawTracePointContext) -> i32 {
    off_cpu_walk(&ctx);
    0
}

#[inline(always)]
fn off_cpu_walk(ctx: &RawTracePointContext) {
    if walk::walk_some(WALK_OFF_CPU) {
        // SAFETY: as in `on_cpu_walk`.
        unsafe { walk::WALK_MORE_OFF_CPU.tail_call(ctx, 0) };
    }
    let Some(stats) = stacks::stats() else { return };
    if let Some(pending) = stacks::end_user_stack(WALK_OFF_CPU, stats) {
        offcpu::left(pending);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
