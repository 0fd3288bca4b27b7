//! Walking user stacks: with the unwind tables user space compiled from
//! DWARF CFI, or with frame pointers where a file has no CFI (JIT code,
//! hand-written assembly) or when asked to.
//!
//! Each frame's mapping is found in `PROCS`, the process's executable
//! mappings as user space read them from `/proc/PID/maps` (asked for with
//! a request when a process or an address is new); a frame in a file is
//! recorded as (file id, file offset), so it can be symbolized later
//! whatever happened to the process since (exit, exec, unmap).
//! (`bpf_find_vma` cannot serve: in a perf event's interrupt it works once
//! per program run.)

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{
        bpf_ktime_get_ns, bpf_probe_read_user,
        generated::{bpf_loop, bpf_probe_read_user as bpf_probe_read_user_raw},
    },
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use perfkit_probes_common::{
    sampler::{
        END_DEPTH, END_NO_CFI, END_NO_USER, END_OTHER, END_PENDING, END_READ, END_ROOT, END_UNSUPPORTED,
        FRAMES_PER_RUN, LATE_STACK_PAGES, LateWalk, MAX_FRAMES, SampleKey, SampleStats, StackTrace, UNWIND_TABLES,
    },
    unwind::{
        CFA_END, CFA_NONE, CFA_PLT, CFA_RBP, CFA_RBP_X8, CFA_RSP, CFA_RSP_X8, CFA_STACK_SWITCH, CFA_UNSUPPORTED, FILE_LOADED,
        FILE_NO_CFI, FILE_ON_DEMAND, FILE_PENDING, MAX_FILES, MAX_MAPPINGS, MAX_ROWS_PER_PAGE, MAX_STACK_SWITCHES, PAGE_BITS,
        PageInfo, PageKey, ProcMaps, RBP_AT_CFA, REQUEST_MAPS, REQUEST_TABLE, Request,
        Row, encode_frame,
    },
};

use crate::{
    kernel::{self, PT_REGS_BP, PT_REGS_IP, PT_REGS_SP},
    stacks::mix,
};

/// Each process's executable file mappings, written by user space.
#[map]
pub(crate) static PROCS: HashMap<u32, ProcMaps> =
    HashMap::with_max_entries(1 << 13, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Each file's table state (`FILE_*`), by file id.
#[map]
static FILE_STATE: Array<u32> = Array::with_max_entries(MAX_FILES, 0);

/// The rows of each (file, 64 KiB page of file offsets).
#[map]
static PAGES: HashMap<PageKey, PageInfo> =
    HashMap::with_max_entries(1 << 19, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// All unwind rows; the loader sizes it.
#[map]
static ROWS: Array<Row> = Array::with_max_entries(1 << 20, aya_ebpf::bindings::BPF_F_MMAPABLE);

/// Requests to user space.
#[map]
pub(crate) static REQUESTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Walks to finish in user space ([`LateWalk`], about 16 KiB each): a
/// sample whose walk met a mapping or table not known yet.
#[map]
pub(crate) static LATE: RingBuf = RingBuf::with_byte_size(1 << 21, 0);

/// When each process last asked for its mappings (ns), to ask at most
/// every few milliseconds.
#[map]
static ASKED: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1 << 14, 0);

/// Still walking.
const CONTINUE: u8 = 0xff;

/// The walk's state, in a per-CPU map: the verifier tracks nothing of a
/// map value's content, so one check of a step holds for every step.
#[repr(C)]
pub(crate) struct Walk {
    pc: u64,
    sp: u64,
    bp: u64,
    hash: u64,
    /// The cached mapping: [vm_start, vm_end), and the file offset of
    /// vm_start.
    vm_start: u64,
    vm_end: u64,
    vm_offset: u64,
    tgid: u64,
    n: u32,
    file_id: u32,
    file_state: u32,
    /// Binary search over the process's mappings: bounds and target.
    lo: u32,
    hi: u32,
    target: u64,
    /// 0: no cached mapping; 1: a mapping of a file; 2: no known mapping
    /// (not read yet); 3: anonymous executable memory (JIT code).
    cached: u8,
    end: u8,
    tables: u8,
    /// A file's table was pending when its frames were walked.
    pending: u8,
    table_frames: u32,
    fp_frames: u32,
    unmapped: u32,
    /// Stack switches followed (`CFA_STACK_SWITCH` rows below SP).
    switches: u32,
    /// Non-zero once the walk met its first frame whose mapping or table
    /// was not known (`pending`): where it could resume from, kept before
    /// the frame-pointer step it took instead.
    resume_set: u32,
    resume_n: u32,
    resume_pc: u64,
    resume_sp: u64,
    resume_bp: u64,
    /// The row search of a loopless walk, kept here, in map memory, so
    /// that the verifier knows nothing of its bounds and checks each
    /// halving once rather than every path through fifteen.
    search: Search,
    _pad2: u32,
    /// The frames walked.
    pub(crate) trace: StackTrace,
}

/// One walk per CPU and per kind of program (0: the perf event, 1: the
/// tracepoints), since a perf event can interrupt a tracepoint's program.
#[map]
static WALKS: PerCpuArray<Walk> = PerCpuArray::with_max_entries(2, 0);

/// This CPU's walk in `slot`.
#[inline(always)]
pub(crate) fn slot(slot: u32) -> Option<&'static mut Walk> {
    // SAFETY: the per-CPU slot belongs to this CPU, and programs sharing a
    // slot cannot interrupt each other (see WALKS).
    WALKS.get_ptr_mut(slot & 1).map(|p| unsafe { &mut *p })
}

/// Sets up walk slot `which` for the current task's user stack. `regs` is
/// the address of the user registers when the sample was taken in user
/// mode, else 0 (they are then read from the top of the task's kernel
/// stack). Without a user stack (`user` false) or registers, the walk ends
/// before its first frame.
#[inline(always)]
pub(crate) fn begin(which: u32, task: u64, regs: u64, mode: u32, user: bool) -> Option<&'static mut Walk> {
    let (pc, sp, bp) = if !user {
        (0, 0, 0)
    } else if regs != 0 {
        // SAFETY: `regs` is the perf event context's register block.
        unsafe {
            (
                core::ptr::read_volatile((regs + PT_REGS_IP) as *const u64),
                core::ptr::read_volatile((regs + PT_REGS_SP) as *const u64),
                core::ptr::read_volatile((regs + PT_REGS_BP) as *const u64),
            )
        }
    } else {
        let pt = kernel::user_regs(task);
        (
            kernel::read::<u64>(pt, PT_REGS_IP as u32).unwrap_or(0),
            kernel::read::<u64>(pt, PT_REGS_SP as u32).unwrap_or(0),
            kernel::read::<u64>(pt, PT_REGS_BP as u32).unwrap_or(0),
        )
    };
    let w = slot(which)?;
    w.pc = pc;
    w.sp = sp;
    w.bp = bp;
    w.hash = 0x7573_6572; // "user"
    w.vm_start = 0;
    w.vm_end = 0;
    w.vm_offset = 0;
    w.tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32;
    w.n = 0;
    w.file_id = 0;
    w.file_state = 0;
    w.cached = 0;
    w.end = match (user, pc) {
        (false, _) => END_NO_USER,
        (true, 0) => END_READ,
        _ => CONTINUE,
    };
    w.tables = (mode == UNWIND_TABLES) as u8;
    w.pending = 0;
    w.table_frames = 0;
    w.fp_frames = 0;
    w.unmapped = 0;
    w.switches = 0;
    w.resume_set = 0;
    w.trace.len = 0;
    Some(w)
}

/// How the walk in slot `which` ended: its hash (0 when it has no frame)
/// and why (`END_*`). Adds its frame counts to `stats`.
#[inline(always)]
pub(crate) fn end(which: u32, stats: &mut SampleStats) -> (u64, u8) {
    let Some(w) = slot(which) else { return (0, END_OTHER) };
    stats.table_frames += w.table_frames as u64;
    stats.fp_frames += w.fp_frames as u64;
    stats.unmapped_frames += w.unmapped as u64;
    w.trace.len = w.n;
    let mut end = if w.end == CONTINUE { END_DEPTH } else { w.end };
    if end != END_ROOT && end != END_DEPTH && w.pending != 0 {
        end = END_PENDING;
    }
    if w.n == 0 {
        return (0, end);
    }
    (mix(w.hash, w.n as u64), end)
}

/// Walks the current task's user stack into walk slot `which` with
/// `bpf_loop` (Linux 5.17 and newer): returns its hash (0 when empty) and
/// how the walk ended.
#[inline(always)]
pub(crate) fn user(which: u32, task: u64, regs: u64, mode: u32, stats: &mut SampleStats) -> (u64, u8) {
    let Some(w) = begin(which, task, regs, mode, true) else { return (0, END_OTHER) };
    if w.end == CONTINUE {
        let mut ctx: u64 = which as u64;
        // SAFETY: the callback and its context follow bpf_loop's contract;
        // the context lives on this stack frame for the whole call.
        unsafe {
            bpf_loop(MAX_FRAMES as u32, step as *mut c_void, (&raw mut ctx).cast(), 0);
        }
    }
    end(which, stats)
}

/// The loopless on-CPU walk's continuation (entry 0, set by the loader).
#[map]
pub(crate) static WALK_MORE_ON_CPU: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The loopless off-CPU walk's continuation.
#[map]
pub(crate) static WALK_MORE_OFF_CPU: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Walks up to `FRAMES_PER_RUN` more frames of the walk in slot `which`
/// without `bpf_loop` (kernels before 5.17); true when frames remain, for
/// a tail call to go on with.
#[inline(always)]
pub(crate) fn walk_some(which: u32) -> bool {
    for _ in 0..FRAMES_PER_RUN {
        let Some(w) = slot(which) else { return false };
        if w.end != CONTINUE || w.n as usize >= MAX_FRAMES {
            return false;
        }
        let n = w.n as u64;
        step_frame::<false>(w, which, n);
    }
    slot(which).is_some_and(|w| w.end == CONTINUE && (w.n as usize) < MAX_FRAMES)
}

/// One frame, as `bpf_loop`'s callback. Frame `index` is the loop's index:
/// the verifier knows only its bounds, so it checks one step, not one per
/// possible depth.
extern "C" fn step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the slot number given to it.
    let which = unsafe { *ctx.cast::<u64>() } as u32;
    let Some(w) = slot(which) else { return 1 };
    if w.end != CONTINUE || index as usize >= MAX_FRAMES {
        return 1;
    }
    step_frame::<true>(w, which, index);
    if w.end == CONTINUE { 0 } else { 1 }
}

/// Frame `index`: record it, then step to its caller. `LOOP`: searches
/// run in `bpf_loop` callbacks, else in bounded loops.
#[inline(always)]
fn step_frame<const LOOP: bool>(w: &mut Walk, which: u32, index: u64) {
    let n = index as usize;
    // A return address points after its call: look up the call itself.
    let look = if n == 0 { w.pc } else { w.pc.wrapping_sub(1) };
    locate::<LOOP>(w, which, look);
    let frame = if w.cached == 1 {
        encode_frame(w.file_id, w.pc.wrapping_sub(w.vm_start).wrapping_add(w.vm_offset))
    } else {
        w.unmapped += 1;
        w.pc
    };
    w.trace.frames[n & (MAX_FRAMES - 1)] = frame;
    w.hash = mix(w.hash, frame);
    w.n = index as u32 + 1;
    if w.tables != 0 && w.cached == 1 && w.file_state == FILE_LOADED {
        table_step::<LOOP>(w, look);
    } else {
        if w.tables != 0 && (w.cached == 2 || (w.cached == 1 && w.file_state != FILE_NO_CFI)) {
            if w.pending == 0 {
                w.resume_set = 1;
                w.resume_n = index as u32;
                w.resume_pc = w.pc;
                w.resume_sp = w.sp;
                w.resume_bp = w.bp;
            }
            w.pending = 1;
        }
        if w.tables != 0 && w.cached == 1 && w.file_state == FILE_ON_DEMAND {
            want_table(w.file_id);
            w.file_state = FILE_PENDING;
        }
        fp_step(w);
    }
}

/// Sends the walk in slot `which`, counted under `key`, to user space to
/// be finished there, when it met a mapping or table not known yet: the
/// resume state and the user stack's pages from the one holding the
/// resume SP upwards, as many as read (up to 16 KiB). Counted in `stats`
/// as sent or, with the ring buffer full, dropped.
#[inline(always)]
pub(crate) fn send_late(which: u32, key: &SampleKey, stats: &mut SampleStats) {
    let Some(w) = slot(which) else { return };
    if w.resume_set == 0 {
        return;
    }
    // A fixed-size record; none when the ring buffer is full.
    let Some(mut record) = LATE.reserve_bytes(size_of::<LateWalk>(), 0) else {
        stats.late_dropped += 1;
        return;
    };
    let p = record.as_mut_ptr().cast::<LateWalk>();
    let base = w.resume_sp & !4095;
    // SAFETY: `p` is a reserved record of this size, written field by
    // field (it is far too large for the BPF stack), then submitted.
    unsafe {
        (*p).key = *key;
        (*p).n = w.resume_n;
        (*p).pc = w.resume_pc;
        (*p).sp = w.resume_sp;
        (*p).bp = w.resume_bp;
        (*p).stack_base = base;
        let mut pages = 0u32;
        let stack = (&raw mut (*p).stack).cast::<u8>();
        for i in 0..LATE_STACK_PAGES {
            // A page that does not read (the stack's end, or not present)
            // ends the copy; the helper zeroes what it could not read.
            if bpf_probe_read_user_raw(stack.add(i * 4096).cast(), 4096, (base + (i as u64) * 4096) as *const c_void)
                != 0
            {
                break;
            }
            pages += 1;
        }
        (*p).pages = pages;
    }
    record.submit(0);
    stats.late_sent += 1;
}

/// Finds the mapping of `addr` (cached between frames of one mapping) and
/// its file's id and table state.
#[inline(always)]
fn locate<const LOOP: bool>(w: &mut Walk, which: u32, addr: u64) {
    if w.cached != 0 && addr >= w.vm_start && addr < w.vm_end {
        return;
    }
    let tgid = w.tgid as u32;
    // SAFETY: a plain read of a map value.
    let count = match unsafe { PROCS.get(tgid) } {
        Some(p) => p.count.min(MAX_MAPPINGS as u32),
        None => 0,
    };
    w.cached = 2;
    // An unknown address stays "unknown" for this frame only.
    w.vm_start = addr;
    w.vm_end = addr.wrapping_add(1);
    if count == 0 {
        ask_for_maps(tgid);
        return;
    }
    w.lo = 0;
    w.hi = count;
    w.target = addr;
    if LOOP {
        let mut ctx: u64 = which as u64;
        // SAFETY: as in `user`.
        unsafe {
            bpf_loop(9, halve_maps as *mut c_void, (&raw mut ctx).cast(), 0);
        }
    } else {
        for _ in 0..9 {
            if halve_maps_once(which) != 0 {
                break;
            }
        }
    }
    // SAFETY: a plain read of a map value.
    let Some(p) = (unsafe { PROCS.get(tgid) }) else { return };
    let e = p.maps[(w.lo as usize) & (MAX_MAPPINGS - 1)];
    if addr < e.start || addr >= e.end {
        ask_for_maps(tgid);
        return;
    }
    w.vm_start = e.start;
    w.vm_end = e.end;
    w.vm_offset = e.offset;
    if e.file == 0 {
        // Known anonymous executable memory (JIT code).
        w.cached = 3;
        return;
    }
    w.file_id = e.file;
    w.file_state = FILE_STATE.get(e.file).copied().unwrap_or(0);
    w.cached = 1;
}

/// One halving of the search for the last mapping starting at or before
/// the target address.
extern "C" fn halve_maps(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the slot number given to it.
    halve_maps_once(unsafe { *ctx.cast::<u64>() } as u32)
}

#[inline(always)]
fn halve_maps_once(which: u32) -> i64 {
    let Some(w) = slot(which) else { return 1 };
    if w.lo + 1 >= w.hi {
        return 1;
    }
    // SAFETY: a plain read of a map value.
    let Some(p) = (unsafe { PROCS.get(w.tgid as u32) }) else { return 1 };
    let mid = w.lo + (w.hi - w.lo) / 2;
    if p.maps[(mid as usize) & (MAX_MAPPINGS - 1)].start <= w.target {
        w.lo = mid;
    } else {
        w.hi = mid;
    }
    0
}

/// Asks user space to read the process's mappings, at most every 5 ms.
#[inline(always)]
fn ask_for_maps(tgid: u32) {
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a plain read of a map value.
    if let Some(last) = unsafe { ASKED.get(tgid) }
        && now.wrapping_sub(*last) < 5_000_000
    {
        return;
    }
    let _ = ASKED.insert(tgid, now, BPF_ANY as u64);
    request(REQUEST_MAPS, tgid);
}

/// Asks user space to build the table of a file left for its first frame
/// (`FILE_ON_DEMAND`), once: the state becomes `FILE_PENDING` first, so
/// the walks that follow on any CPU do not ask again.
#[inline(always)]
fn want_table(file: u32) {
    let Some(state) = FILE_STATE.get_ptr_mut(file) else { return };
    // SAFETY: a pointer to a live array value; a race with another CPU
    // asks twice at worst, and user space builds a file once.
    unsafe {
        if core::ptr::read_volatile(state) != FILE_ON_DEMAND {
            return;
        }
        core::ptr::write_volatile(state, FILE_PENDING);
    }
    request(REQUEST_TABLE, file);
}

/// Sends a request to user space, counting it when the ring buffer is full.
#[inline(always)]
pub(crate) fn request(kind: u32, tgid: u32) {
    if REQUESTS.output::<Request>(&Request { kind, tgid }, 0).is_err()
        && let Some(stats) = crate::stacks::stats()
    {
        stats.requests_dropped += 1;
    }
}

/// A binary search over one page's rows for the last row at or before
/// `target`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Search {
    start: u32,
    lo: u32,
    hi: u32,
    target: u32,
    failed: u32,
}

extern "C" fn halve(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the `Search` given to it.
    halve_once(unsafe { &mut *ctx.cast::<Search>() })
}

#[inline(always)]
/// One halving of a search kept in map memory (loopless walks): every
/// field is read from memory each time, never kept in a register.
///
/// # Safety
///
/// `s` points at a live map value's `Search`.
unsafe fn halve_in_map(s: *mut Search) -> i64 {
    // SAFETY: the caller guarantees the pointer.
    unsafe {
        let (lo, hi) = (core::ptr::read_volatile(&raw const (*s).lo), core::ptr::read_volatile(&raw const (*s).hi));
        if lo + 1 >= hi {
            return 1;
        }
        let mid = lo + (hi - lo) / 2;
        let (start, target) =
            (core::ptr::read_volatile(&raw const (*s).start), core::ptr::read_volatile(&raw const (*s).target));
        match ROWS.get(start.wrapping_add(mid)) {
            Some(row) if row.pc_low as u32 <= target => core::ptr::write_volatile(&raw mut (*s).lo, mid),
            Some(_) => core::ptr::write_volatile(&raw mut (*s).hi, mid),
            None => {
                core::ptr::write_volatile(&raw mut (*s).failed, 1);
                return 1;
            }
        }
    }
    0
}

#[inline(always)]
fn halve_once(s: &mut Search) -> i64 {
    if s.lo + 1 >= s.hi {
        return 1;
    }
    let mid = s.lo + (s.hi - s.lo) / 2;
    match ROWS.get(s.start.wrapping_add(mid)) {
        Some(row) if row.pc_low as u32 <= s.target => s.lo = mid,
        Some(_) => s.hi = mid,
        None => {
            s.failed = 1;
            return 1;
        }
    }
    0
}

/// Reads a word of user memory.
#[inline(always)]
fn read_user(addr: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_user checks the address; a bad one is an
    // error.
    unsafe { bpf_probe_read_user(addr as *const u64).ok() }
}

/// One step with the frame pointer: the caller's frame pointer is at
/// [rbp], its return address at [rbp + 8].
#[inline(always)]
fn fp_step(w: &mut Walk) {
    w.fp_frames += 1;
    let bp = w.bp;
    if bp == 0 {
        w.end = END_ROOT;
        return;
    }
    if bp < w.sp || bp & 7 != 0 {
        w.end = END_NO_CFI;
        return;
    }
    let (Some(next_bp), Some(ra)) = (read_user(bp), read_user(bp + 8)) else {
        w.end = END_READ;
        return;
    };
    w.sp = bp + 16;
    w.bp = next_bp;
    w.pc = ra;
    if ra == 0 {
        w.end = END_ROOT;
    }
}

/// One step with the unwind row in force at `look`.
#[inline(always)]
fn table_step<const LOOP: bool>(w: &mut Walk, look: u64) {
    let offset = look.wrapping_sub(w.vm_start).wrapping_add(w.vm_offset);
    let key = PageKey { file: w.file_id, page: (offset >> PAGE_BITS) as u32 };
    // SAFETY: a plain read of a map value.
    let Some(page) = (unsafe { PAGES.get(key) }).copied() else {
        // No CFI anywhere in this page.
        fp_step(w);
        return;
    };
    let count = if page.count > MAX_ROWS_PER_PAGE { MAX_ROWS_PER_PAGE } else { page.count };
    let mut search = Search { start: page.start, lo: 0, hi: count, target: (offset & ((1 << PAGE_BITS) - 1)) as u32, failed: 0 };
    // 2^14 rows at most: 15 halvings. With bpf_loop the search runs in a
    // callback, so that the verifier checks one halving, not every path
    // through fifteen.
    if LOOP {
        // SAFETY: the callback and its context follow bpf_loop's contract;
        // the context lives on this stack frame for the whole call.
        unsafe {
            bpf_loop(15, halve as *mut c_void, (&raw mut search).cast(), 0);
        }
    } else {
        w.search = search;
        let kept = &raw mut w.search;
        for _ in 0..15 {
            // SAFETY: `kept` is in this CPU's walk slot, a live map value.
            if unsafe { halve_in_map(kept) } != 0 {
                break;
            }
        }
        // SAFETY: as above.
        unsafe {
            search.lo = core::ptr::read_volatile(&raw const (*kept).lo);
            search.failed = core::ptr::read_volatile(&raw const (*kept).failed);
        }
    }
    if search.failed != 0 {
        w.end = END_OTHER;
        return;
    }
    let lo = search.lo;
    let Some(row) = ROWS.get(page.start.wrapping_add(lo)).copied() else {
        w.end = END_OTHER;
        return;
    };
    let cfa = match row.cfa {
        CFA_RSP => w.sp.wrapping_add(row.cfa_offset as i64 as u64),
        CFA_RBP | CFA_STACK_SWITCH => w.bp.wrapping_add(row.cfa_offset as i64 as u64),
        CFA_RSP_X8 => w.sp.wrapping_add((row.cfa_offset as i64 * 8) as u64),
        CFA_RBP_X8 => w.bp.wrapping_add((row.cfa_offset as i64 * 8) as u64),
        CFA_PLT => w.sp + 8 + if w.pc & 15 >= 11 { 8 } else { 0 },
        CFA_END => {
            w.end = END_ROOT;
            return;
        }
        CFA_UNSUPPORTED => {
            w.end = END_UNSUPPORTED;
            return;
        }
        CFA_NONE => {
            fp_step(w);
            return;
        }
        _ => {
            w.end = END_OTHER;
            return;
        }
    };
    w.table_frames += 1;
    if cfa <= w.sp {
        // The caller's frame must be above this one (corrupt state), but
        // for a bounded number of switches to another stack.
        if row.cfa != CFA_STACK_SWITCH || w.switches >= MAX_STACK_SWITCHES {
            w.end = END_READ;
            return;
        }
        w.switches += 1;
    }
    let Some(ra) = read_user(cfa - 8) else {
        w.end = END_READ;
        return;
    };
    if row.rbp == RBP_AT_CFA {
        match read_user(cfa.wrapping_add(row.rbp_offset as i64 as u64)) {
            Some(bp) => w.bp = bp,
            None => {
                w.end = END_READ;
                return;
            }
        }
    }
    w.sp = cfa;
    w.pc = ra;
    if ra == 0 {
        w.end = END_ROOT;
    }
}
