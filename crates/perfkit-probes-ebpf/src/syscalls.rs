//! syscount: system calls counted (and timed) per syscall and process, and
//! the syscall names read from the kernel's own metadata.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel_str_bytes},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuHashMap},
    programs::RawTracePointContext,
};
use perfkit_probes_common::tools::{
    MAX_SYSCALLS, NAMES_ADDR, NAMES_CODE_LEN, NAMES_FIRST, NAMES_PER_RUN, NAMES_STEP, NAMES_STEP_CODE,
    NAMES_STEP_TABLE, SyscallKey, SyscallName, SyscallStat, TOOL_SYSCOUNT,
};

use crate::{filter, kernel, tools};

/// Calls, time and errors per (process, syscall), one copy per CPU: no
/// atomics on the syscall path.
#[map]
static SYS_COUNTS: PerCpuHashMap<SyscallKey, SyscallStat> = PerCpuHashMap::with_max_entries(10_240, 0);

/// When each thread entered its current syscall (with latency).
#[map]
static SYS_START: HashMap<u32, u64> = HashMap::with_max_entries(16_384, 0);

/// Syscall names by number.
#[map]
static SYSCALL_NAMES: Array<SyscallName> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// `struct pt_regs.orig_ax` on x86-64: the syscall number.
const PT_REGS_ORIG_AX: u32 = 15 * 8;

/// raw_syscalls:sys_enter(regs, id).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_count(_ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tools::config().sys_latency == 0 || !filter::selected(tgid, tid) {
        return 0;
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if SYS_START.insert(&tid, &now, BPF_ANY as u64).is_err()
        && let Some(s) = tools::stats(TOOL_SYSCOUNT)
    {
        s.starts_lost += 1;
    }
    0
}

/// raw_syscalls:sys_exit(regs, ret).
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_count(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !filter::selected(tgid, tid) {
        return 0;
    }
    let config = tools::config();
    let ret = ctx.arg::<i64>(1);
    if config.sys_failed_only != 0 && ret >= 0 {
        return 0;
    }
    let Some(nr) = kernel::read::<u64>(ctx.arg::<u64>(0), PT_REGS_ORIG_AX) else { return 0 };
    let Some(stats) = tools::stats(TOOL_SYSCOUNT) else { return 0 };
    stats.events += 1;
    let mut took = 0;
    if config.sys_latency != 0 {
        // SAFETY: a plain read of a map value, copied before the removal.
        match unsafe { SYS_START.get(&tid) }.copied() {
            Some(start) => {
                let _ = SYS_START.remove(&tid);
                // SAFETY: the helper has no preconditions.
                took = unsafe { bpf_ktime_get_ns() }.saturating_sub(start);
            }
            None => stats.unmatched += 1,
        }
    }
    let key = SyscallKey { pid: if config.sys_per_process != 0 { tgid } else { 0 }, nr: nr as u32 };
    let failed = u64::from(ret < 0);
    // The process's name when first counted, and again after an exec
    // (execve 59, execveat 322 on x86-64) renames it.
    if config.sys_per_process != 0 && ((ret == 0 && (nr == 59 || nr == 322)) || SYS_COUNTS.get_ptr_mut(&key).is_none())
    {
        // SAFETY: the helper has no preconditions.
        let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
        tools::remember_comm(tgid, task, true);
    }
    if SYS_COUNTS.get_ptr_mut(&key).is_none() {
        let _ = SYS_COUNTS.insert(&key, &SyscallStat::default(), BPF_NOEXIST as u64);
    }
    match SYS_COUNTS.get_ptr_mut(&key) {
        Some(p) => {
            // SAFETY: this CPU's copy of a live map value; a BPF program is
            // not re-entered on its CPU while it runs.
            unsafe {
                (*p).count += 1;
                (*p).total_ns += took;
                (*p).errors += failed;
            }
        }
        None => stats.updates_lost += 1,
    }
    0
}

/// What the name reader is asked to do.
#[map]
static SYSCALL_NAMES_REQUEST: Array<u64> = Array::with_max_entries(3, 0);

/// Code bytes it copied (user space finds the table's address in them).
#[map]
static SYSCALL_NAMES_CODE: Array<[u8; NAMES_CODE_LEN]> = Array::with_max_entries(1, 0);

/// The table's base, read once per run of the reader.
#[inline(always)]
fn request(index: u32) -> u64 {
    SYSCALL_NAMES_REQUEST.get(index).copied().unwrap_or(0)
}

/// Copies the name of entry `index` of the kernel's `syscalls_metadata`
/// array, when that entry's own `syscall_nr` is `index` (which also
/// proves the address was the table).
#[inline(always)]
fn read_name(table: u64, index: u64) {
    let o = tools::offsets();
    let Some(meta) = kernel::read::<u64>(table + index * 8, 0) else { return };
    if meta == 0 {
        return;
    }
    let Some(nr) = kernel::read::<i32>(meta, o.syscall_meta_nr) else { return };
    let Some(name) = kernel::read::<u64>(meta, o.syscall_meta_name) else { return };
    if nr as u64 != index || index >= MAX_SYSCALLS as u64 {
        return;
    }
    if let Some(slot) = SYSCALL_NAMES.get_ptr_mut(index as u32) {
        // SAFETY: `slot` points at a live array value of the right size; the
        // helper checks the source address.
        unsafe {
            let _ = bpf_probe_read_kernel_str_bytes(name as *const u8, &mut (*slot).name);
        }
    }
}

/// raw_syscalls:sys_enter, in the loader's own thread only: one step of
/// reading the syscall names from the kernel's own metadata (user space
/// finds the `syscalls_metadata` variable in the code of
/// `get_syscall_name`, then has its entries copied).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn syscall_names(_ctx: RawTracePointContext) -> i32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    if tid != tools::config().names_tid {
        return 0;
    }
    let addr = request(NAMES_ADDR);
    match request(NAMES_STEP) {
        NAMES_STEP_CODE => {
            if let Some(code) = SYSCALL_NAMES_CODE.get_ptr_mut(0) {
                // SAFETY: a map value of the right size; the helper checks
                // the source address.
                unsafe {
                    let _ = aya_ebpf::helpers::bpf_probe_read_kernel_buf(addr as *const u8, &mut *code);
                }
            }
        }
        NAMES_STEP_TABLE => {
            let Some(table) = kernel::read::<u64>(addr, 0) else { return 0 };
            // A bounded loop, not bpf_loop: the reader runs on kernels
            // before 5.17 too.
            let first = request(NAMES_FIRST);
            for i in 0..NAMES_PER_RUN as u64 {
                read_name(table, first + i);
            }
        }
        _ => {}
    }
    0
}
