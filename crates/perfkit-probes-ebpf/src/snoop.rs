//! execsnoop and opensnoop: one event per exec (with its arguments, its
//! new image and its result) and per open (with its path, flags and
//! result), from the syscalls tracepoints and sched_process_exec.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user, bpf_probe_read_user_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{HashMap, RingBuf},
    programs::TracePointContext,
};
use perfkit_probes_common::tools::{
    EXEC_ARG_LEN, EXEC_ARGS, EXEC_ARGS_EVENT, EXEC_IMAGE_ARGS, EXEC_IMAGE_EVENT, EXEC_RET_EVENT, ExecEvent,
    ExecRetEvent, OpenEvent, OpenStart, TOOL_EXECSNOOP, TOOL_OPENSNOOP, ToolStats,
};

use crate::{filter, tools};

/// execsnoop events: `ExecEvent` and `ExecRetEvent`.
#[map]
static EXEC_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// execsnoop: processes whose exec already counted a record lost, so
/// that an exec counts once however many of its records were dropped.
#[map]
static EXEC_LOST: HashMap<u32, u8> = HashMap::with_max_entries(4096, BPF_F_NO_PREALLOC);

/// opensnoop: opens in flight, by thread.
#[map]
static OPEN_START: HashMap<u32, OpenStart> = HashMap::with_max_entries(16_384, BPF_F_NO_PREALLOC);

/// opensnoop events.
#[map]
static OPEN_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

#[inline(always)]
fn read<T>(ctx: &TracePointContext, offset: usize) -> Option<T> {
    // SAFETY: read_at copies with bpf_probe_read from the record.
    unsafe { ctx.read_at::<T>(offset).ok() }
}

#[inline(always)]
fn current() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    filter::selected(tgid, tid).then_some((tgid, tid))
}

/// Reads the NUL-terminated user string at `at` into `buf`: whether it
/// was read, and whether it was cut (it filled the buffer and the string
/// goes on past it).
#[inline(always)]
fn user_str(at: u64, buf: &mut [u8; EXEC_ARG_LEN]) -> (bool, bool) {
    // SAFETY: the helper checks the user address; `buf` is ours.
    match unsafe { bpf_probe_read_user_str_bytes(at as *const u8, buf) } {
        Ok(s) if s.len() + 1 >= EXEC_ARG_LEN => {
            // SAFETY: as above.
            let next = unsafe { bpf_probe_read_user((at + (EXEC_ARG_LEN - 1) as u64) as *const u8) }.unwrap_or(0);
            (true, next != 0)
        }
        Ok(_) => (true, false),
        Err(_) => {
            buf[0] = 0;
            (false, false)
        }
    }
}

/// Counts an exec lost to a full ring buffer (its entry or its result
/// record: without either it is not shown), once however many of its
/// records were dropped.
#[inline(always)]
fn exec_lost(stats: &mut ToolStats, tgid: u32) {
    // SAFETY: a plain read of a map value.
    if unsafe { EXEC_LOST.get(&tgid) }.is_none() {
        stats.ring_full += 1;
        let _ = EXEC_LOST.insert(&tgid, &1, BPF_ANY as u64);
    }
}

/// An exec starts: its path at `path_at`, its argv at `argv_at`.
#[inline(always)]
fn exec_started(ctx: &TracePointContext, path_at: usize, argv_at: usize) {
    let Some((tgid, _)) = current() else { return };
    let Some(stats) = tools::stats(TOOL_EXECSNOOP) else { return };
    stats.events += 1;
    let _ = EXEC_LOST.remove(&tgid);
    let Some(mut entry) = EXEC_EVENTS.reserve::<ExecEvent>(0) else {
        exec_lost(stats, tgid);
        return;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: the helper has no preconditions.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
    let parent = crate::kernel::read::<u64>(task, tools::offsets().task_real_parent).unwrap_or(0);
    // SAFETY: `e` points at the reserved event, written field by field
    // before it is submitted; the helpers check every user address.
    unsafe {
        (*e).kind = EXEC_ARGS_EVENT;
        (*e).pid = tgid;
        (*e).ppid = tools::task_tgid(parent);
        (*e).uid = bpf_get_current_uid_gid() as u32;
        (*e).ret = 0;
        (*e).ts_ns = bpf_ktime_get_ns();
        (*e).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        let mut truncated = 0u32;
        let mut unreadable = 0u32;
        let path = read::<u64>(ctx, path_at).unwrap_or(0);
        let (ok, cut) = user_str(path, &mut (*e).args[0]);
        if !ok {
            unreadable |= 1;
        }
        if cut {
            truncated |= 1;
        }
        let argv = read::<u64>(ctx, argv_at).unwrap_or(0);
        let mut argc = 0u32;
        let mut i = 0;
        while i < EXEC_ARGS {
            let arg = match bpf_probe_read_user((argv + 8 * i as u64) as *const u64) {
                Ok(a) => a,
                Err(_) => {
                    // The argv array itself is unreadable: say so for the
                    // argument it would have held.
                    if argv != 0 {
                        (*e).args[i + 1][0] = 0;
                        unreadable |= 1 << (i + 1);
                        argc += 1;
                    }
                    break;
                }
            };
            if arg == 0 {
                break;
            }
            let (ok, cut) = user_str(arg, &mut (*e).args[i + 1]);
            if !ok {
                unreadable |= 1 << (i + 1);
            }
            if cut {
                truncated |= 1 << (i + 1);
            }
            argc += 1;
            i += 1;
        }
        // More arguments than kept: say so with one more than the room.
        if i == EXEC_ARGS && bpf_probe_read_user((argv + 8 * EXEC_ARGS as u64) as *const u64).unwrap_or(0) != 0 {
            argc += 1;
        }
        (*e).argc = argc;
        (*e).truncated = truncated;
        (*e).unreadable = unreadable;
    }
    entry.submit(0);
}

/// syscalls:sys_enter_execve(filename, argv, envp).
#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn exec_enter(ctx: TracePointContext) -> u32 {
    exec_started(&ctx, 16, 24);
    0
}

/// syscalls:sys_enter_execveat(fd, filename, argv, envp, flags).
#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn execat_enter(ctx: TracePointContext) -> u32 {
    exec_started(&ctx, 24, 32);
    0
}

/// sched:sched_process_exec(__data_loc filename, pid, old_pid): the exec
/// succeeded. The path the kernel opened, and the argv as the new image
/// holds it on its stack (`mm.arg_start..arg_end`, mapped by now, unlike
/// the caller's strings at entry, which may sit in pages not faulted in).
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn exec_image(ctx: TracePointContext) -> u32 {
    let Some((tgid, _)) = current() else { return 0 };
    // Without this record the exec is still shown, with the values read at
    // entry: it is not counted lost.
    let Some(mut entry) = EXEC_EVENTS.reserve::<ExecEvent>(0) else { return 0 };
    let e = entry.as_mut_ptr();
    // SAFETY: the helper has no preconditions.
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
    let mm = crate::kernel::read::<u64>(task, crate::kernel::offsets().task_mm).unwrap_or(0);
    let offsets = tools::offsets();
    let start = crate::kernel::read::<u64>(mm, offsets.mm_arg_start).unwrap_or(0);
    let end = crate::kernel::read::<u64>(mm, offsets.mm_arg_end).unwrap_or(0);
    // SAFETY: `e` points at the reserved event, written field by field
    // before it is submitted; the helpers check every address, and the
    // path is read inside the tracepoint's record.
    unsafe {
        (*e).kind = EXEC_IMAGE_EVENT;
        (*e).pid = tgid;
        (*e).ppid = 0;
        (*e).uid = bpf_get_current_uid_gid() as u32;
        (*e).ret = 0;
        (*e).ts_ns = bpf_ktime_get_ns();
        (*e).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        let mut truncated = 0u32;
        let mut unreadable = 0u32;
        // __data_loc: offset in the low 16 bits, length (with the NUL) in
        // the high 16.
        let loc = read::<u32>(&ctx, 8).unwrap_or(0);
        let at = ctx.as_ptr() as u64 + (loc & 0xffff) as u64;
        if bpf_probe_read_kernel_str_bytes(at as *const u8, &mut (*e).args[0]).is_err() {
            (*e).args[0][0] = 0;
            unreadable |= 1;
        }
        if (loc >> 16) as usize > EXEC_ARG_LEN {
            truncated |= 1;
        }
        let total = end.wrapping_sub(start);
        let mut len = total;
        if len > EXEC_IMAGE_ARGS as u64 {
            len = EXEC_IMAGE_ARGS as u64;
        }
        let block = (&raw mut (*e).args[1]).cast::<u8>();
        if start == 0 || end < start {
            unreadable |= 2;
            (*e).argc = 0;
        } else if len > 0
            && aya_ebpf::helpers::generated::bpf_probe_read_user(block.cast(), len as u32, start as *const _) != 0
        {
            unreadable |= 2;
            (*e).argc = 0;
        } else {
            (*e).argc = if total > u32::MAX as u64 { u32::MAX } else { total as u32 };
        }
        (*e).truncated = truncated;
        (*e).unreadable = unreadable;
    }
    entry.submit(0);
    0
}

/// syscalls:sys_exit_execve and sys_exit_execveat: the result.
#[tracepoint(category = "syscalls", name = "sys_exit_execve")]
pub fn exec_exit(ctx: TracePointContext) -> u32 {
    let Some((tgid, _)) = current() else { return 0 };
    let Some(stats) = tools::stats(TOOL_EXECSNOOP) else { return 0 };
    let event = ExecRetEvent {
        kind: EXEC_RET_EVENT,
        pid: tgid,
        ret: read::<i64>(&ctx, 16).unwrap_or(0) as i32,
        _pad: 0,
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    if EXEC_EVENTS.output::<ExecRetEvent>(&event, 0).is_err() {
        exec_lost(stats, tgid);
    }
    let _ = EXEC_LOST.remove(&tgid);
    0
}

#[inline(always)]
fn open_started(ctx: &TracePointContext, path_at: usize, flags_at: usize) {
    let Some((_, tid)) = current() else { return };
    let start =
        OpenStart { path: read::<u64>(ctx, path_at).unwrap_or(0), flags: read::<u64>(ctx, flags_at).unwrap_or(0) };
    if OPEN_START.insert(&tid, &start, BPF_ANY as u64).is_err()
        && let Some(s) = tools::stats(TOOL_OPENSNOOP)
    {
        s.starts_lost += 1;
    }
}

/// syscalls:sys_enter_openat(dfd, filename, flags, mode).
#[tracepoint(category = "syscalls", name = "sys_enter_openat")]
pub fn openat_enter(ctx: TracePointContext) -> u32 {
    open_started(&ctx, 24, 32);
    0
}

/// syscalls:sys_enter_open(filename, flags, mode).
#[tracepoint(category = "syscalls", name = "sys_enter_open")]
pub fn open_enter(ctx: TracePointContext) -> u32 {
    open_started(&ctx, 16, 24);
    0
}

/// syscalls:sys_exit_openat and sys_exit_open: the result.
#[tracepoint(category = "syscalls", name = "sys_exit_openat")]
pub fn open_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(start) = (unsafe { OPEN_START.get(&tid) }).copied() else { return 0 };
    let _ = OPEN_START.remove(&tid);
    let ret = read::<i64>(&ctx, 16).unwrap_or(0);
    if tools::config().open_failed_only != 0 && ret >= 0 {
        return 0;
    }
    let Some(stats) = tools::stats(TOOL_OPENSNOOP) else { return 0 };
    stats.events += 1;
    let Some(mut entry) = OPEN_EVENTS.reserve::<OpenEvent>(0) else {
        stats.ring_full += 1;
        return 0;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at the reserved event, written field by field
    // before it is submitted; the helper checks the user address.
    unsafe {
        (*e).ts_ns = bpf_ktime_get_ns();
        (*e).flags = start.flags;
        (*e).pid = tgid;
        (*e).tid = tid;
        (*e).uid = bpf_get_current_uid_gid() as u32;
        (*e).ret = ret as i32;
        (*e).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if bpf_probe_read_user_str_bytes(start.path as *const u8, &mut (*e).path).is_err() {
            (*e).path[0] = 0;
        }
    }
    entry.submit(0);
    0
}
