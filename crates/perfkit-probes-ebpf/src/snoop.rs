//! execsnoop and opensnoop: one event per exec (with its arguments and
//! result) and per open (with its path, flags and result), from the
//! syscalls tracepoints.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_ns, bpf_probe_read_user, bpf_probe_read_user_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{HashMap, RingBuf},
    programs::TracePointContext,
};
use perfkit_probes_common::tools::{
    EXEC_ARGS, EXEC_ARGS_EVENT, EXEC_RET_EVENT, ExecEvent, ExecRetEvent, OpenEvent, OpenStart, TOOL_EXECSNOOP,
    TOOL_OPENSNOOP,
};

use crate::{filter, tools};

/// execsnoop events: `ExecEvent` and `ExecRetEvent`.
#[map]
static EXEC_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

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

/// An exec starts: its path at `path_at`, its argv at `argv_at`.
#[inline(always)]
fn exec_started(ctx: &TracePointContext, path_at: usize, argv_at: usize) {
    let Some((tgid, _)) = current() else { return };
    let Some(stats) = tools::stats(TOOL_EXECSNOOP) else { return };
    stats.events += 1;
    let Some(mut entry) = EXEC_EVENTS.reserve::<ExecEvent>(0) else {
        stats.ring_full += 1;
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
        let path = read::<u64>(ctx, path_at).unwrap_or(0);
        if bpf_probe_read_user_str_bytes(path as *const u8, &mut (*e).args[0]).is_err() {
            (*e).args[0][0] = 0;
        }
        let argv = read::<u64>(ctx, argv_at).unwrap_or(0);
        let mut argc = 0u32;
        let mut i = 0;
        while i < EXEC_ARGS {
            let arg = if argv == 0 { 0 } else { bpf_probe_read_user((argv + 8 * i as u64) as *const u64).unwrap_or(0) };
            if arg == 0 {
                break;
            }
            if bpf_probe_read_user_str_bytes(arg as *const u8, &mut (*e).args[i + 1]).is_err() {
                (*e).args[i + 1][0] = 0;
            }
            argc += 1;
            i += 1;
        }
        // More arguments than kept: say so with one more than the room.
        if i == EXEC_ARGS && argv != 0 && bpf_probe_read_user((argv + 8 * EXEC_ARGS as u64) as *const u64).unwrap_or(0) != 0 {
            argc += 1;
        }
        (*e).argc = argc;
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
        stats.ring_full += 1;
    }
    0
}

#[inline(always)]
fn open_started(ctx: &TracePointContext, path_at: usize, flags_at: usize) {
    let Some((_, tid)) = current() else { return };
    let start = OpenStart { path: read::<u64>(ctx, path_at).unwrap_or(0), flags: read::<u64>(ctx, flags_at).unwrap_or(0) };
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
