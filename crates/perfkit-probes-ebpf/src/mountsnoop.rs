//! mountsnoop: each mount(2) and umount(2), with its arguments, flags,
//! mount namespace and result, from the syscalls tracepoints.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user_str_bytes,
        generated::bpf_get_current_task,
    },
    macros::{map, tracepoint},
    maps::{HashMap, RingBuf},
    programs::TracePointContext,
};
use perfkit_probes_common::tools::{MOUNT_CALL, MountConfig, MountEvent, MountStart, TOOL_MOUNTSNOOP, UMOUNT_CALL};

use crate::{filter, kernel};

/// Offsets to a task's mount namespace; filled in by the loader.
#[unsafe(no_mangle)]
static MOUNT_CONFIG: MountConfig = MountConfig { task_nsproxy: 0, nsproxy_mnt_ns: 0, mnt_ns_inum: 0, valid: 0 };

/// Calls in flight, by thread.
#[map]
static MOUNT_START: HashMap<u32, MountStart> = HashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// mountsnoop events.
#[map]
static MOUNT_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 18, 0);

#[inline(always)]
fn read<T>(ctx: &TracePointContext, offset: usize) -> Option<T> {
    // SAFETY: read_at copies with bpf_probe_read from the record.
    unsafe { ctx.read_at::<T>(offset).ok() }
}

#[inline(always)]
fn begin(start: MountStart) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if filter::selected((pid_tgid >> 32) as u32, pid_tgid as u32) {
        let _ = MOUNT_START.insert(&(pid_tgid as u32), &start, BPF_ANY as u64);
    }
}

/// syscalls:sys_enter_mount(dev_name, dir_name, type, flags, data).
#[tracepoint(category = "syscalls", name = "sys_enter_mount")]
pub fn mount_enter(ctx: TracePointContext) -> u32 {
    begin(MountStart {
        call: MOUNT_CALL,
        _pad: 0,
        source: read::<u64>(&ctx, 16).unwrap_or(0),
        target: read::<u64>(&ctx, 24).unwrap_or(0),
        fstype: read::<u64>(&ctx, 32).unwrap_or(0),
        flags: read::<u64>(&ctx, 40).unwrap_or(0),
        data: read::<u64>(&ctx, 48).unwrap_or(0),
    });
    0
}

/// syscalls:sys_enter_umount(name, flags).
#[tracepoint(category = "syscalls", name = "sys_enter_umount")]
pub fn umount_enter(ctx: TracePointContext) -> u32 {
    begin(MountStart {
        call: UMOUNT_CALL,
        _pad: 0,
        source: read::<u64>(&ctx, 16).unwrap_or(0),
        target: 0,
        fstype: 0,
        flags: read::<u64>(&ctx, 24).unwrap_or(0) & 0xffff_ffff,
        data: 0,
    });
    0
}

/// Reads a user string into `buf` (empty when absent or unreadable).
#[inline(always)]
fn user_str(at: u64, buf: &mut [u8]) {
    if at == 0 {
        buf[0] = 0;
        return;
    }
    // SAFETY: the helper checks the user address; `buf` is ours.
    if unsafe { bpf_probe_read_user_str_bytes(at as *const u8, buf) }.is_err() {
        buf[0] = 0;
    }
}

/// syscalls:sys_exit_mount and sys_exit_umount: the call's result; its
/// strings are read now, from the caller's memory, still in the call.
#[tracepoint(category = "syscalls", name = "sys_exit_mount")]
pub fn mount_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(start) = (unsafe { MOUNT_START.get(&tid) }).copied() else { return 0 };
    let _ = MOUNT_START.remove(&tid);
    let Some(stats) = crate::tools::stats(TOOL_MOUNTSNOOP) else { return 0 };
    stats.events += 1;
    let Some(mut entry) = MOUNT_EVENTS.reserve::<MountEvent>(0) else {
        stats.ring_full += 1;
        return 0;
    };
    // SAFETY: volatile read of the global the loader rewrites.
    let c = unsafe { core::ptr::read_volatile(&MOUNT_CONFIG) };
    let mnt_ns = if c.valid != 0 {
        // SAFETY: the helper has no preconditions.
        let task = unsafe { bpf_get_current_task() };
        let ns = kernel::read::<u64>(task, c.task_nsproxy).unwrap_or(0);
        let mnt = kernel::read::<u64>(ns, c.nsproxy_mnt_ns).unwrap_or(0);
        kernel::read::<u32>(mnt, c.mnt_ns_inum).unwrap_or(0)
    } else {
        0
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at the reserved event, written field by field
    // before it is submitted.
    unsafe {
        (*e).ts_ns = bpf_ktime_get_ns();
        (*e).flags = start.flags;
        (*e).pid = (pid_tgid >> 32) as u32;
        (*e).tid = tid;
        (*e).mnt_ns = mnt_ns;
        (*e).ret = read::<i64>(&ctx, 16).unwrap_or(0) as i32;
        (*e).call = start.call;
        (*e)._pad = 0;
        (*e).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        user_str(start.source, &mut (*e).source);
        user_str(start.target, &mut (*e).target);
        user_str(start.fstype, &mut (*e).fstype);
        user_str(start.data, &mut (*e).data);
    }
    entry.submit(0);
    0
}
