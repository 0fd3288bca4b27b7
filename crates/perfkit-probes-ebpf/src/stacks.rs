//! Stacks stored once by hash, and samples counted per key.

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    helpers::{bpf_get_current_comm, generated::bpf_get_stack},
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use perfkit_probes_common::{
    kernel::PF_KTHREAD,
    sampler::{
        DEFAULT_COUNTS_ENTRIES, DEFAULT_STACK_ENTRIES, END_NO_USER, KIND_ON_CPU, MAX_FRAMES, OffCpuStart, SampleKey, SampleStats,
        SamplerConfig, StackTrace, UNWIND_TABLES,
    },
};

use crate::{atomic_add, kernel, walk};

const EEXIST: i32 = 17;
const E2BIG: i32 = 7;

/// How the sampler works, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static SAMPLER: SamplerConfig =
    SamplerConfig { unwind: UNWIND_TABLES, kernel_stacks: 1, min_block_ns: 0, max_block_ns: u64::MAX, states: 3, _pad: 0 };

/// Samples (or, off CPU, nanoseconds) per key.
#[map]
static COUNTS: HashMap<SampleKey, u64> = HashMap::with_max_entries(DEFAULT_COUNTS_ENTRIES, BPF_F_NO_PREALLOC);

/// Each distinct stack once, by its hash.
#[map]
static STACKS: HashMap<u64, StackTrace> = HashMap::with_max_entries(DEFAULT_STACK_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
static STATS: PerCpuArray<SampleStats> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU room to build a kernel stack in (too big for the 512-byte BPF
/// stack), one per kind of program (0: the perf event, 1: tracepoints).
#[map]
static KERNEL_SCRATCH: PerCpuArray<StackTrace> = PerCpuArray::with_max_entries(2, 0);

#[inline(always)]
pub(crate) fn config() -> SamplerConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&SAMPLER) }
}

/// This CPU's counters.
#[inline(always)]
pub(crate) fn stats() -> Option<&'static mut SampleStats> {
    // SAFETY: the per-CPU slot belongs to this CPU, and a BPF program
    // cannot be re-entered on the CPU it runs on while it holds it.
    STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// A key for the current task with its names and no stacks yet.
#[inline(always)]
pub(crate) fn new_key(tgid: u32, tid: u32, task: u64) -> SampleKey {
    let off = kernel::offsets();
    let leader = kernel::read::<u64>(task, off.task_group_leader).unwrap_or(0);
    SampleKey {
        tgid,
        tid,
        user_stack: 0,
        kernel_stack: 0,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        process_comm: kernel::comm(leader),
        user_end: 0,
        kind: 0,
        user_lost: 0,
        _pad: [0; 5],
    }
}

/// Mixes one frame into a stack hash.
#[inline(always)]
pub(crate) fn mix(hash: u64, frame: u64) -> u64 {
    (hash.rotate_left(5) ^ frame).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Stores a built stack under its hash; returns the hash, or 0 when the
/// stack could not be kept (counted).
#[inline(always)]
pub(crate) fn store(trace: &StackTrace, hash: u64, stats: &mut SampleStats) -> u64 {
    let hash = if hash == 0 { 1 } else { hash };
    if STACKS.get_ptr(hash).is_some() {
        return hash;
    }
    match STACKS.insert(hash, trace, BPF_NOEXIST as u64) {
        Ok(()) => hash,
        Err(e) if e == -EEXIST => hash,
        Err(e) if e == -E2BIG => {
            stats.stacks_full += 1;
            0
        }
        Err(e) => {
            stats.stack_errors += 1;
            stats.last_error = e as i64;
            0
        }
    }
}

/// The current kernel stack, stored; its hash or 0.
#[inline(always)]
pub(crate) fn kernel_stack(which: u32, ctx: *mut core::ffi::c_void, stats: &mut SampleStats) -> u64 {
    let Some(trace) = KERNEL_SCRATCH.get_ptr_mut(which & 1) else { return 0 };
    // SAFETY: this CPU's scratch slot, used by nothing else meanwhile.
    let trace = unsafe { &mut *trace };
    // SAFETY: the destination is the scratch slot's frames, of this size.
    let bytes = unsafe {
        bpf_get_stack(ctx, trace.frames.as_mut_ptr().cast(), (MAX_FRAMES * 8) as u32, 0)
    };
    if bytes <= 0 {
        if bytes < 0 {
            stats.stack_errors += 1;
            stats.last_error = bytes;
        }
        return 0;
    }
    let n = (bytes as usize / 8).min(MAX_FRAMES);
    trace.len = n as u32;
    let mut hash = 0x6b65_726e_656c_u64; // "kernel": kernel and user hashes never meet.
    for i in 0..MAX_FRAMES {
        if i >= n {
            break;
        }
        hash = mix(hash, trace.frames[i]);
    }
    store(trace, mix(hash, n as u64), stats)
}

/// Whether `task` has a user stack: not a kernel thread, and with an mm.
#[inline(always)]
fn has_user_stack(task: u64) -> bool {
    let off = kernel::offsets();
    let flags = kernel::read::<u32>(task, off.task_flags).unwrap_or(0);
    flags & PF_KTHREAD == 0 && kernel::read::<u64>(task, off.task_mm).unwrap_or(0) != 0
}

/// Records in `key` how the walk in slot `which` ended, and stores its
/// stack.
#[inline(always)]
fn finish_user(which: u32, key: &mut SampleKey, hash: u64, end: u8, stats: &mut SampleStats) {
    key.user_end = end;
    // END_REASONS is 8: the mask keeps the index provably in range.
    stats.user_end[(end & 7) as usize] += 1;
    if hash != 0
        && let Some(w) = walk::slot(which)
    {
        key.user_stack = store(&w.trace, hash, stats);
        key.user_lost = (key.user_stack == 0) as u8;
        // On CPU, a walk that met a mapping or table not known yet is
        // finished in user space once they are (the count stays here,
        // under this key, until user space moves it).
        if key.kind == KIND_ON_CPU && key.user_stack != 0 {
            walk::send_late(which, key, stats);
        }
    }
}

/// Walks and stores the current task's user stack into `key`, with
/// `bpf_loop`. `regs` is the address of the user registers when the sample
/// was taken in user mode, else 0 (they are then read from the task).
#[inline(always)]
pub(crate) fn user_stack(which: u32, key: &mut SampleKey, task: u64, regs: u64, stats: &mut SampleStats) {
    if !has_user_stack(task) {
        key.user_end = END_NO_USER;
        stats.user_end[END_NO_USER as usize] += 1;
        return;
    }
    let (hash, end) = walk::user(which, task, regs, config().unwind, stats);
    finish_user(which, key, hash, end, stats);
}

/// Walks in progress across tail calls (kernels without `bpf_loop`): the
/// key (and, off CPU, the time) each waits to be counted under, per slot.
#[map]
static WALK_PENDING: PerCpuArray<OffCpuStart> = PerCpuArray::with_max_entries(2, 0);

/// Begins a walk of the current task's user stack that
/// [`walk::walk_some`] continues and [`end_user_stack`] ends (kernels
/// without `bpf_loop`). False when there is no room to keep `key`.
#[inline(always)]
pub(crate) fn begin_user_stack(which: u32, key: SampleKey, start_ns: u64, task: u64, regs: u64) -> bool {
    let Some(pending) = WALK_PENDING.get_ptr_mut(which & 1) else { return false };
    // SAFETY: this CPU's slot, used by nothing else until the walk ends
    // (the programs sharing a slot cannot interrupt each other).
    unsafe {
        (*pending).key = key;
        (*pending).start_ns = start_ns;
    }
    walk::begin(which, task, regs, config().unwind, has_user_stack(task)).is_some()
}

/// Ends the walk [`begin_user_stack`] began: the key with its user stack,
/// and the time kept with it.
#[inline(always)]
pub(crate) fn end_user_stack(which: u32, stats: &mut SampleStats) -> Option<OffCpuStart> {
    let (hash, end) = walk::end(which, stats);
    let pending = WALK_PENDING.get_ptr_mut(which & 1)?;
    // SAFETY: as in `begin_user_stack`.
    let pending = unsafe { &mut *pending };
    finish_user(which, &mut pending.key, hash, end, stats);
    Some(*pending)
}

/// Adds `n` to the key's count, inserting it when new.
#[inline(always)]
pub(crate) fn count(key: &SampleKey, n: u64, stats: &mut SampleStats) {
    if let Some(c) = COUNTS.get_ptr_mut(key) {
        atomic_add(c, n);
        return;
    }
    match COUNTS.insert(key, n, BPF_NOEXIST as u64) {
        Ok(()) => {}
        // Another CPU inserted the same key since the lookup.
        Err(e) if e == -EEXIST => {
            if let Some(c) = COUNTS.get_ptr_mut(key) {
                atomic_add(c, n);
            }
        }
        Err(e) if e == -E2BIG => stats.counts_full += 1,
        Err(e) => {
            stats.counts_full += 1;
            stats.last_error = e as i64;
        }
    }
}
