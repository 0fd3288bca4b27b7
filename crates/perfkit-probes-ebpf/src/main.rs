//! perfkit's eBPF programs, kernel side.
//!
//! `on_cpu_sample` runs on every cpu-clock sample on every CPU. It keeps only
//! samples of the target process (all its threads), records the user and
//! kernel stacks in `STACKS`, and counts samples per unique
//! (tgid, comm, user stack, kernel stack) in `COUNTS`. Nothing is streamed to
//! user space: the loader reads the unique stacks and their counts at the end.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{map, perf_event},
    maps::{HashMap, PerCpuArray, StackTrace},
    programs::{PerfEventContext, tracing::StackIdContext},
};
use perfkit_probes_common::{
    DEFAULT_COUNTS_ENTRIES, DEFAULT_STACK_ENTRIES, STACK_ID_LOST, STACK_ID_NONE, SampleStats, StackKey,
};

const EFAULT: i32 = 14;
const EEXIST: i32 = 17;
const ENOMEM: i32 = 12;

/// Thread group id to sample, set by the loader before the program loads.
/// Zero (never a user process) samples nothing.
#[unsafe(no_mangle)]
static TARGET_TGID: u32 = 0;

#[map]
static COUNTS: HashMap<StackKey, u64> = HashMap::with_max_entries(DEFAULT_COUNTS_ENTRIES, 0);

#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(DEFAULT_STACK_ENTRIES, 0);

#[map]
static STATS: PerCpuArray<SampleStats> = PerCpuArray::with_max_entries(1, 0);

#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if target == 0 || tgid != target {
        return 0;
    }
    let Some(stats) = STATS.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the per-CPU slot belongs to this CPU, and a BPF program cannot
    // be re-entered on the CPU it runs on, so this is the only reference.
    let stats = unsafe { &mut *stats };
    stats.samples += 1;

    let user_stack_id = stack_id(&ctx, BPF_F_USER_STACK as u64, stats, true);
    let kernel_stack_id = stack_id(&ctx, 0, stats, false);
    let key =
        StackKey { tgid, user_stack_id, kernel_stack_id, _pad: 0, comm: bpf_get_current_comm().unwrap_or([0; 16]) };
    count(&key, stats);
    0
}

/// Records one stack and returns its id, or a `STACK_ID_*` marker.
#[inline(always)]
fn stack_id(ctx: &PerfEventContext, flags: u64, stats: &mut SampleStats, user: bool) -> i32 {
    match ctx.get_stackid(&STACKS, flags) {
        Ok(id) => id as i32,
        Err(err) if err == -EFAULT => STACK_ID_NONE,
        Err(err) if err == -EEXIST => {
            if user {
                stats.user_stack_collisions += 1;
            } else {
                stats.kernel_stack_collisions += 1;
            }
            STACK_ID_LOST
        }
        Err(err) if err == -ENOMEM => {
            stats.stack_map_full += 1;
            STACK_ID_LOST
        }
        Err(err) => {
            stats.stack_errors += 1;
            stats.last_stack_error = err as i64;
            STACK_ID_LOST
        }
    }
}

/// Adds one sample to the key's count, inserting it when new.
#[inline(always)]
fn count(key: &StackKey, stats: &mut SampleStats) {
    if let Some(count) = COUNTS.get_ptr_mut(key) {
        add_one(count);
        return;
    }
    match COUNTS.insert(key, 1, BPF_NOEXIST as u64) {
        Ok(()) => {}
        // Another CPU inserted the same key since the lookup.
        Err(err) if err as i32 == -EEXIST => {
            if let Some(count) = COUNTS.get_ptr_mut(key) {
                add_one(count);
            }
        }
        Err(_) => stats.counts_map_full += 1,
    }
}

#[inline(always)]
fn add_one(count: *mut u64) {
    // SAFETY: `count` points at a live map value; the atomic add keeps counts
    // exact when several CPUs sample the same stack at once.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(count, 1);
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
