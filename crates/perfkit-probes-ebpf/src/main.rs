//! perfkit's eBPF programs, kernel side.
//!
//! - `on_cpu_sample` runs on every cpu-clock sample on every CPU. For a
//!   selected task ([`filter`]) it walks the user stack ([`walk`]: unwind
//!   tables compiled from DWARF CFI, or frame pointers) and the kernel
//!   stack, stores each distinct stack once by its hash, and counts
//!   samples per (process, thread, names, stacks) ([`stacks`]). Nothing is
//!   streamed per sample: user space reads the counts and stacks at the
//!   end.
//! - `track_fork` and `track_exit` keep the set of selected processes as
//!   they create children and exit.
//! - `off_cpu_switch` measures how long threads wait off CPU, under the
//!   stacks they left with ([`offcpu`]).
//! - The bcc-style tools ([`tools`]): run-queue latency ([`runqlat`]),
//!   block I/O latency and events ([`bio`]), syscall counts and names
//!   ([`syscalls`]), exec and open events ([`snoop`]), TCP sessions and
//!   retransmissions ([`tcp`]).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod bio;
mod filter;
mod kernel;
mod offcpu;
mod runqlat;
mod snoop;
mod stacks;
mod syscalls;
mod tcp;
mod tools;
mod walk;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task_btf},
    macros::{perf_event, raw_tracepoint},
    programs::{PerfEventContext, RawTracePointContext},
};

/// Adds one to a counter shared between CPUs.
#[inline(always)]
pub(crate) fn atomic_add(counter: *mut u64, n: u64) {
    // SAFETY: `counter` points at a live map value; the atomic add keeps
    // counts exact when several CPUs update it at once.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(counter, n);
    }
}

#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    let Some(stats) = stacks::stats() else { return 0 };
    if tid == 0 {
        // The idle task: counted in system-wide runs, never drawn.
        if filter::config().mode == perfkit_probes_common::filter::MODE_ALL {
            stats.idle += 1;
        }
        return 0;
    }
    if !filter::selected(tgid, tid) {
        return 0;
    }
    stats.samples += 1;
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let mut key = stacks::new_key(tgid, tid, task);
    let regs = ctx.ctx as u64;
    // SAFETY: the context of a perf_event program starts with the sampled
    // registers (`struct pt_regs` on x86-64).
    let user_mode = unsafe { kernel::user_mode(regs) };
    if stacks::config().kernel_stacks != 0 && !user_mode {
        key.kernel_stack = stacks::kernel_stack(0, ctx.ctx.cast(), stats);
    }
    stacks::user_stack(0, &mut key, task, if user_mode { regs } else { 0 }, stats);
    stacks::count(&key, 1, stats);
    0
}

/// sched_process_fork(parent, child): a selected process's new child
/// process is selected too.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn track_fork(ctx: RawTracePointContext) -> i32 {
    filter::on_fork(ctx.arg::<u64>(1));
    0
}

/// sched_process_exit(task, group_dead): an exited process leaves the set,
/// so that its id, once reused, selects nothing.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn track_exit(ctx: RawTracePointContext) -> i32 {
    filter::on_exit(ctx.arg::<u64>(0), ctx.arg::<u64>(1));
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
    offcpu::on_switch(&ctx, ctx.arg::<u64>(1), ctx.arg::<u64>(2));
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
