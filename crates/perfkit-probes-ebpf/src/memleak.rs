//! memleak: outstanding allocations by stack.
//!
//! User mode: a uprobe on each allocator function keeps the size the
//! thread asked for (`MEMLEAK_SIZES`); its uretprobe takes the returned
//! address, the user stack (frame pointers, `bpf_get_stackid`) and the
//! time, and records the allocation under (process, address). `free` and
//! `munmap` remove it; `realloc` frees its old pointer at entry and
//! allocates at return. An `mmap` made inside another allocator function
//! of the same thread (glibc's large `malloc`) is the allocator's own and
//! is not recorded twice.
//!
//! Kernel mode: the `kmem` tracepoints, with the kernel stack; pages are
//! recorded by page frame number.
//!
//! Each stack's outstanding bytes and count are kept as allocations come
//! and go (`MEMLEAK_COMBINED`), for `--combined-only`. Every allocation
//! that could not be kept is counted ([`MemleakStats`]).

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_USER_STACK, BPF_NOEXIST},
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::{HashMap, PerCpuArray, StackTrace},
    programs::{ProbeContext, RetProbeContext, TracePointContext, tracing::StackIdContext},
};
use perfkit_probes_common::memleak::{
    AllocInfo, AllocKey, Combined, MAX_ALLOCS, MAX_STACKS, MAX_THREADS, MemleakConfig, MemleakStats, NO_STACK,
    PAGE_TGID,
};

use crate::{atomic_add, filter};

const EEXIST: i32 = 17;
const PAGE_SIZE: u64 = 4096;
/// The size kept for a thread inside an allocator function whose
/// allocation is not recorded (sampled out, or out of the size bounds).
const SKIPPED: u64 = u64::MAX;

/// What memleak records, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static MEMLEAK_CONFIG: MemleakConfig = MemleakConfig {
    min_size: 0,
    max_size: u64::MAX,
    sample_every: 1,
    kmalloc_ptr: 0,
    kmalloc_bytes: 0,
    cache_alloc_ptr: 0,
    cache_alloc_bytes: 0,
    kfree_ptr: 0,
    cache_free_ptr: 0,
    page_alloc_pfn: 0,
    page_alloc_order: 0,
    page_free_pfn: 0,
    page_free_order: 0,
};

/// Outstanding allocations. Preallocated: a map that allocates its
/// entries as they come refills its pool with kmalloc (`bpf_mem_refill`),
/// which the kmem tracepoints would record, which would take entries, in a
/// loop.
#[map]
static MEMLEAK_ALLOCS: HashMap<AllocKey, AllocInfo> = HashMap::with_max_entries(MAX_ALLOCS, 0);

/// Outstanding bytes and allocations per stack id.
#[map]
static MEMLEAK_COMBINED: HashMap<u64, Combined> = HashMap::with_max_entries(MAX_STACKS, 0);

/// The allocations' stacks.
#[map]
static MEMLEAK_STACKS: StackTrace = StackTrace::with_max_entries(MAX_STACKS, 0);

/// The size each thread inside an allocator function asked for.
#[map]
static MEMLEAK_SIZES: HashMap<u64, u64> = HashMap::with_max_entries(MAX_THREADS, 0);

/// `posix_memalign`'s `memptr`, per thread inside it.
#[map]
static MEMLEAK_MEMPTRS: HashMap<u64, u64> = HashMap::with_max_entries(MAX_THREADS, 0);

/// Allocations seen on this CPU, for `-s` sampling.
#[map]
static MEMLEAK_SEEN: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static MEMLEAK_STATS: PerCpuArray<MemleakStats> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn config() -> MemleakConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&MEMLEAK_CONFIG) }
}

#[inline(always)]
fn stats() -> Option<&'static mut MemleakStats> {
    // SAFETY: this CPU's slot; a BPF program is not re-entered on its CPU
    // while it holds it.
    MEMLEAK_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// Whether an allocation of `size` bytes is recorded: within the size
/// bounds, and the N-th of this CPU's allocations with `-s N`.
#[inline(always)]
fn wanted(size: u64) -> bool {
    let c = config();
    let keep = size >= c.min_size && size <= c.max_size && {
        if c.sample_every > 1 {
            match MEMLEAK_SEEN.get_ptr_mut(0) {
                Some(p) => {
                    // SAFETY: this CPU's copy; not shared with another CPU.
                    let n = unsafe {
                        *p += 1;
                        *p
                    };
                    n % c.sample_every == 0
                }
                None => false,
            }
        } else {
            true
        }
    };
    if !keep && let Some(s) = stats() {
        s.skipped += 1;
    }
    keep
}

/// Adds one allocation to its stack's totals, or (`add` false) takes it
/// away.
#[inline(always)]
fn combine(stack_id: u64, size: u64, add: bool) {
    let (bytes, count) = if add { (size, 1u64) } else { (size.wrapping_neg(), u64::MAX) };
    if let Some(c) = MEMLEAK_COMBINED.get_ptr_mut(&stack_id) {
        // SAFETY: a live map value; the adds are atomic.
        unsafe {
            atomic_add(&raw mut (*c).bytes, bytes);
            atomic_add(&raw mut (*c).count, count);
        }
        return;
    }
    if !add {
        return;
    }
    let new = Combined { bytes, count };
    match MEMLEAK_COMBINED.insert(&stack_id, &new, BPF_NOEXIST as u64) {
        Ok(()) => {}
        Err(e) if e == -EEXIST => {
            if let Some(c) = MEMLEAK_COMBINED.get_ptr_mut(&stack_id) {
                // SAFETY: as above.
                unsafe {
                    atomic_add(&raw mut (*c).bytes, bytes);
                    atomic_add(&raw mut (*c).count, count);
                }
            }
        }
        Err(_) => {
            if let Some(s) = stats() {
                s.combined_lost += 1;
            }
        }
    }
}

/// Removes an outstanding allocation, if recorded.
#[inline(always)]
fn release(key: &AllocKey) {
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(info) = (unsafe { MEMLEAK_ALLOCS.get(key) }).copied() else { return };
    if MEMLEAK_ALLOCS.remove(key).is_err() {
        // Another CPU removed it first (a double free): counted there.
        return;
    }
    combine(info.stack_id, info.size, false);
    if let Some(s) = stats() {
        s.frees += 1;
    }
}

/// Records an allocation of `size` bytes at `addr`, under `stack_id`.
#[inline(always)]
fn record(key: AllocKey, size: u64, stack_id: u64, tid: u32) {
    let Some(s) = stats() else { return };
    if stack_id == NO_STACK {
        s.stacks_lost += 1;
    }
    // An allocation at an address still outstanding: its free was missed.
    // SAFETY: a plain read of a map value.
    if unsafe { MEMLEAK_ALLOCS.get(&key) }.is_some() {
        s.replaced += 1;
        release(&key);
    }
    // SAFETY: the helper has no preconditions.
    let time_ns = unsafe { bpf_ktime_get_ns() };
    let info = AllocInfo { size, time_ns, stack_id, tid, _pad: 0 };
    if MEMLEAK_ALLOCS.insert(&key, &info, BPF_ANY as u64).is_err() {
        s.allocs_lost += 1;
        return;
    }
    s.allocs += 1;
    combine(stack_id, size, true);
}

// ---------------------------------------------------------------- user mode

/// The current thread, when selected.
#[inline(always)]
fn selected_thread() -> Option<u64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    filter::selected((pid_tgid >> 32) as u32, pid_tgid as u32).then_some(pid_tgid)
}

/// An allocator function is entered, asking for `size` bytes.
#[inline(always)]
fn enter(size: u64) -> Option<u64> {
    let pid_tgid = selected_thread()?;
    // Kept even when not recorded: an `mmap` inside this call is then
    // known as the allocator's own.
    let want = wanted(size);
    let kept = if want { size } else { SKIPPED };
    if MEMLEAK_SIZES.insert(&pid_tgid, &kept, BPF_ANY as u64).is_err() {
        if let Some(s) = stats() {
            s.sizes_lost += 1;
        }
        return None;
    }
    want.then_some(pid_tgid)
}

/// An allocator function returns `addr` (0: failed).
#[inline(always)]
fn exit<C: StackIdContext>(ctx: &C, addr: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(size) = (unsafe { MEMLEAK_SIZES.get(&pid_tgid) }).copied() else { return };
    let _ = MEMLEAK_SIZES.remove(&pid_tgid);
    if addr == 0 || size == SKIPPED {
        return;
    }
    let stack_id = match ctx.get_stackid(&MEMLEAK_STACKS, BPF_F_USER_STACK as u64) {
        Ok(id) => id as u64,
        Err(_) => NO_STACK,
    };
    let key = AllocKey { addr, tgid: (pid_tgid >> 32) as u32, _pad: 0 };
    record(key, size, stack_id, pid_tgid as u32);
}

/// A user pointer is freed.
#[inline(always)]
fn user_free(addr: u64) {
    if addr == 0 {
        return;
    }
    let Some(pid_tgid) = selected_thread() else { return };
    release(&AllocKey { addr, tgid: (pid_tgid >> 32) as u32, _pad: 0 });
}

#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg::<u64>(n).unwrap_or(0)
}

/// `malloc(size)`, `valloc(size)`, `pvalloc(size)`.
#[uprobe]
pub fn memleak_malloc_enter(ctx: ProbeContext) -> u32 {
    enter(arg(&ctx, 0));
    0
}

/// `calloc(nmemb, size)`.
#[uprobe]
pub fn memleak_calloc_enter(ctx: ProbeContext) -> u32 {
    let (n, size) = (arg(&ctx, 0), arg(&ctx, 1));
    // No 128-bit multiply (an overflow check) in BPF: exact when both
    // factors fit in 32 bits or one is 0 or 1, else saturated (calloc
    // fails on an overflowing product).
    let total = if (n | size) >> 32 == 0 {
        n * size
    } else if n == 0 || size == 0 {
        0
    } else if n == 1 {
        size
    } else if size == 1 {
        n
    } else {
        u64::MAX
    };
    enter(total);
    0
}

/// `realloc(ptr, size)`: the old block is freed, the new one allocated at
/// return.
#[uprobe]
pub fn memleak_realloc_enter(ctx: ProbeContext) -> u32 {
    user_free(arg(&ctx, 0));
    enter(arg(&ctx, 1));
    0
}

/// `aligned_alloc(alignment, size)`, `memalign(alignment, size)`.
#[uprobe]
pub fn memleak_memalign_enter(ctx: ProbeContext) -> u32 {
    enter(arg(&ctx, 1));
    0
}

/// `posix_memalign(memptr, alignment, size)`.
#[uprobe]
pub fn memleak_posix_memalign_enter(ctx: ProbeContext) -> u32 {
    let memptr = arg(&ctx, 0);
    if let Some(pid_tgid) = enter(arg(&ctx, 2))
        && MEMLEAK_MEMPTRS.insert(&pid_tgid, &memptr, BPF_ANY as u64).is_err()
    {
        let _ = MEMLEAK_SIZES.remove(&pid_tgid);
        if let Some(s) = stats() {
            s.sizes_lost += 1;
        }
    }
    0
}

/// `mmap(addr, length, ...)`, unless the thread is inside another
/// allocator function (whose own block it maps).
#[uprobe]
pub fn memleak_mmap_enter(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if MEMLEAK_SIZES.get_ptr(&pid_tgid).is_some() {
        return 0;
    }
    enter(arg(&ctx, 1));
    0
}

/// The return of every allocator function but `mmap` and
/// `posix_memalign`: the address.
#[uretprobe]
pub fn memleak_alloc_exit(ctx: RetProbeContext) -> u32 {
    let addr: u64 = ctx.ret();
    exit(&ctx, addr);
    0
}

/// `mmap`'s return: `MAP_FAILED` (-1) is no address.
#[uretprobe]
pub fn memleak_mmap_exit(ctx: RetProbeContext) -> u32 {
    let addr: u64 = ctx.ret();
    exit(&ctx, if addr == u64::MAX { 0 } else { addr });
    0
}

/// `posix_memalign`'s return: 0 and the address in `*memptr`.
#[uretprobe]
pub fn memleak_posix_memalign_exit(ctx: RetProbeContext) -> u32 {
    let rc: u64 = ctx.ret();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a plain read of a map value, copied before the removal.
    let memptr = (unsafe { MEMLEAK_MEMPTRS.get(&pid_tgid) }).copied().unwrap_or(0);
    let _ = MEMLEAK_MEMPTRS.remove(&pid_tgid);
    let addr = if rc as u32 == 0 && memptr != 0 {
        // SAFETY: the helper reads user memory and fails cleanly on a bad
        // address.
        unsafe { bpf_probe_read_user(memptr as *const u64) }.unwrap_or(0)
    } else {
        0
    };
    exit(&ctx, addr);
    0
}

/// `free(ptr)`.
#[uprobe]
pub fn memleak_free_enter(ctx: ProbeContext) -> u32 {
    user_free(arg(&ctx, 0));
    0
}

/// `munmap(addr, length)`.
#[uprobe]
pub fn memleak_munmap_enter(ctx: ProbeContext) -> u32 {
    user_free(arg(&ctx, 0));
    0
}

// -------------------------------------------------------------- kernel mode

#[inline(always)]
fn field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    // SAFETY: read_at copies with bpf_probe_read from the record; a bad
    // offset is an error, not a fault.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

/// A kernel allocation of `size` bytes at `addr` (`tgid` 0, or
/// [`PAGE_TGID`] for a page frame number).
#[inline(always)]
fn kernel_alloc(ctx: &TracePointContext, addr: u64, size: u64, tgid: u32) {
    if addr == 0 || !wanted(size) {
        return;
    }
    let stack_id = match ctx.get_stackid(&MEMLEAK_STACKS, 0) {
        Ok(id) => id as u64,
        Err(_) => NO_STACK,
    };
    record(AllocKey { addr, tgid, _pad: 0 }, size, stack_id, bpf_get_current_pid_tgid() as u32);
}

/// kmem:kmalloc(_node).
#[tracepoint]
pub fn memleak_kmalloc(ctx: TracePointContext) -> u32 {
    let c = config();
    if let (Some(ptr), Some(bytes)) = (field::<u64>(&ctx, c.kmalloc_ptr), field::<u64>(&ctx, c.kmalloc_bytes)) {
        kernel_alloc(&ctx, ptr, bytes, 0);
    }
    0
}

/// kmem:kmem_cache_alloc(_node).
#[tracepoint]
pub fn memleak_cache_alloc(ctx: TracePointContext) -> u32 {
    let c = config();
    if let (Some(ptr), Some(bytes)) = (field::<u64>(&ctx, c.cache_alloc_ptr), field::<u64>(&ctx, c.cache_alloc_bytes))
    {
        kernel_alloc(&ctx, ptr, bytes, 0);
    }
    0
}

/// kmem:kfree.
#[tracepoint]
pub fn memleak_kfree(ctx: TracePointContext) -> u32 {
    if let Some(ptr) = field::<u64>(&ctx, config().kfree_ptr) {
        release(&AllocKey { addr: ptr, tgid: 0, _pad: 0 });
    }
    0
}

/// kmem:kmem_cache_free.
#[tracepoint]
pub fn memleak_cache_free(ctx: TracePointContext) -> u32 {
    if let Some(ptr) = field::<u64>(&ctx, config().cache_free_ptr) {
        release(&AllocKey { addr: ptr, tgid: 0, _pad: 0 });
    }
    0
}

/// kmem:mm_page_alloc: `PAGE_SIZE << order` bytes at a page frame.
#[tracepoint]
pub fn memleak_page_alloc(ctx: TracePointContext) -> u32 {
    let c = config();
    if let (Some(pfn), Some(order)) = (field::<u64>(&ctx, c.page_alloc_pfn), field::<u32>(&ctx, c.page_alloc_order)) {
        kernel_alloc(&ctx, pfn, PAGE_SIZE << (order & 31), PAGE_TGID);
    }
    0
}

/// kmem:mm_page_free.
#[tracepoint]
pub fn memleak_page_free(ctx: TracePointContext) -> u32 {
    if let Some(pfn) = field::<u64>(&ctx, config().page_free_pfn) {
        release(&AllocKey { addr: pfn, tgid: PAGE_TGID, _pad: 0 });
    }
    0
}
