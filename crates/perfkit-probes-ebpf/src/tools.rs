//! What the bcc-style tools share: their configuration, the kernel
//! offsets they read, their counters, and histogram updates.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, PerCpuHashMap},
};
use perfkit_probes_common::{
    COMM_LEN,
    filter::{MODE_ALL, MODE_CGROUP, MODE_PROCESSES, MODE_THREADS},
    tools::{BlockFields, HIST_SLOTS, HistKey, HistValue, SockFields, ToolConfig, ToolOffsets, ToolStats},
};

use crate::{atomic_add, filter, kernel};

/// What the tools do, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static TOOL_CONFIG: ToolConfig = ToolConfig {
    runq_per: 0,
    bio_per_disk: 0,
    bio_per_flags: 0,
    bio_queued: 0,
    bio_snoop: 0,
    bio_hist: 0,
    sys_per_process: 0,
    sys_latency: 0,
    sys_failed_only: 0,
    open_failed_only: 0,
    names_tid: 0,
    _pad: 0,
};

/// Kernel structure offsets, filled in by the loader from BTF.
#[unsafe(no_mangle)]
static TOOL_OFFSETS: ToolOffsets = ToolOffsets {
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    cgroup_level: 0,
    cgroup_ancestors: 0,
    kernfs_node_id: 0,
    task_nsproxy: 0,
    nsproxy_pid_ns: 0,
    pid_ns_inum: 0,
    task_real_parent: 0,
    tcp_bytes_received: 0,
    tcp_bytes_acked: 0,
    syscall_meta_name: 0,
    syscall_meta_nr: 0,
    valid: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    skb_cb: 0,
    tcp_skb_cb_gso_segs: 0,
};

/// Block tracepoint record offsets, from tracefs.
#[unsafe(no_mangle)]
static BLOCK_FIELDS: BlockFields = BlockFields {
    dev: 8,
    sector: 16,
    nr_sector: 24,
    bytes: 28,
    rwbs: 34,
    rwbs_len: 10,
    complete_dev: 8,
    complete_sector: 16,
    complete_error: 28,
    complete_rwbs: 34,
};

/// Socket tracepoint record offsets, from tracefs.
#[unsafe(no_mangle)]
static SOCK_FIELDS: SockFields = SockFields { state: [0; 11], retrans: [0; 11] };

/// Counters, one slot per tool (`TOOL_*`).
#[map]
static TOOL_STATS: PerCpuArray<ToolStats> = PerCpuArray::with_max_entries(32, 0);

/// Names of the processes (or threads) counted, as first seen: read when
/// they have exited.
#[map]
static TOOL_COMMS: LruHashMap<u32, [u8; COMM_LEN]> = LruHashMap::with_max_entries(16_384, 0);

/// Remembers the name of `task` under `id` (a tgid: the name of its group
/// leader, as /proc/PID/comm; a tid: its own): the latest name, so that a
/// process that execs is named after its new program.
#[inline(always)]
pub(crate) fn remember_comm(id: u32, task: u64, process: bool) {
    if id == 0 {
        return;
    }
    let named =
        if process { kernel::read::<u64>(task, kernel::offsets().task_group_leader).unwrap_or(task) } else { task };
    let comm = kernel::comm(named);
    // SAFETY: a plain read of a map value.
    if let Some(known) = unsafe { TOOL_COMMS.get(&id) }
        && *known == comm
    {
        return;
    }
    let _ = TOOL_COMMS.insert(&id, &comm, BPF_ANY as u64);
}

/// Refreshes the remembered name of `id` from `task` when `id` was counted
/// already (a process that exec'd after its last wait still leaves the CPU
/// under its new name, at the latest when it exits).
#[inline(always)]
pub(crate) fn refresh_comm(id: u32, task: u64, process: bool) {
    // SAFETY: a plain read of a map value.
    if id != 0 && unsafe { TOOL_COMMS.get(&id) }.is_some() {
        remember_comm(id, task, process);
    }
}

#[inline(always)]
pub(crate) fn config() -> ToolConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&TOOL_CONFIG) }
}

#[inline(always)]
pub(crate) fn offsets() -> ToolOffsets {
    // SAFETY: as `config`.
    unsafe { core::ptr::read_volatile(&TOOL_OFFSETS) }
}

#[inline(always)]
pub(crate) fn block_fields() -> BlockFields {
    // SAFETY: as `config`.
    unsafe { core::ptr::read_volatile(&BLOCK_FIELDS) }
}

#[inline(always)]
pub(crate) fn sock_fields() -> SockFields {
    // SAFETY: as `config`.
    unsafe { core::ptr::read_volatile(&SOCK_FIELDS) }
}

/// This CPU's counters of a tool.
#[inline(always)]
pub(crate) fn stats(tool: u32) -> Option<&'static mut ToolStats> {
    // SAFETY: the per-CPU slot belongs to this CPU, and a BPF program
    // cannot be re-entered on the CPU it runs on while it holds it.
    TOOL_STATS.get_ptr_mut(tool).map(|p| unsafe { &mut *p })
}

/// The slot that holds a histogram's sum (in the histogram's base unit,
/// nanoseconds), beside the log2 slots.
pub(crate) const SUM_SLOT: u32 = HIST_SLOTS as u32;

/// Adds `n` to a histogram bucket, creating it.
#[inline(always)]
pub(crate) fn hist_add(map: &HashMap<HistKey, u64>, key: HistKey, n: u64, stats: &mut ToolStats) {
    if let Some(p) = map.get_ptr_mut(&key) {
        atomic_add(p, n);
        return;
    }
    // Another CPU may create it first: then add to theirs.
    if map.insert(&key, &n, BPF_NOEXIST as u64).is_err() {
        match map.get_ptr_mut(&key) {
            Some(p) => atomic_add(p, n),
            None => stats.updates_lost += 1,
        }
    }
}

/// Records one latency in this CPU's copy of its bucket (the log2 slot in
/// microseconds, with the sum in nanoseconds): one map lookup, no atomics,
/// no cache line shared between CPUs (user space sums the copies).
#[inline(always)]
pub(crate) fn record_latency_per_cpu(map: &PerCpuHashMap<HistKey, HistValue>, id: u64, ns: u64, stats: &mut ToolStats) {
    let key = HistKey { id, sub: 0, slot: perfkit_probes_common::tools::log2_slot(ns / 1000) };
    if let Some(p) = map.get_ptr_mut(&key) {
        // SAFETY: this CPU's value; a BPF program is not re-entered on its
        // CPU while it runs.
        unsafe {
            (*p).count += 1;
            (*p).sum_ns += ns;
        }
        return;
    }
    if map.insert(&key, &HistValue { count: 1, sum_ns: ns }, BPF_NOEXIST as u64).is_err() {
        stats.updates_lost += 1;
    }
}

/// Records one latency: its log2 slot (in microseconds) and the sum (in
/// nanoseconds).
#[inline(always)]
pub(crate) fn record_latency(map: &HashMap<HistKey, u64>, id: u64, sub: u32, ns: u64, stats: &mut ToolStats) {
    let slot = perfkit_probes_common::tools::log2_slot(ns / 1000);
    hist_add(map, HistKey { id, sub, slot }, 1, stats);
    hist_add(map, HistKey { id, sub, slot: SUM_SLOT }, ns, stats);
}

/// The cgroup v2 id of a task's group (its depth-`level` ancestor when
/// `level` is given), or 0.
#[inline(always)]
pub(crate) fn task_cgroup(task: u64, level: Option<u32>) -> u64 {
    let o = offsets();
    if o.valid == 0 {
        return 0;
    }
    let Some(css_set) = kernel::read::<u64>(task, o.task_cgroups) else { return 0 };
    let Some(mut cgrp) = kernel::read::<u64>(css_set, o.css_set_dfl_cgrp) else { return 0 };
    if let Some(level) = level {
        let depth = kernel::read::<i32>(cgrp, o.cgroup_level).unwrap_or(-1);
        if depth < level as i32 || level > 255 {
            return 0;
        }
        cgrp = kernel::read::<u64>(cgrp, o.cgroup_ancestors + level * 8).unwrap_or(0);
    }
    let Some(kn) = kernel::read::<u64>(cgrp, o.cgroup_kn) else { return 0 };
    kernel::read::<u64>(kn, o.kernfs_node_id).unwrap_or(0)
}

/// The inode number of a task's PID namespace (for its children), or 0.
#[inline(always)]
pub(crate) fn task_pidns(task: u64) -> u64 {
    let o = offsets();
    let Some(ns) = kernel::read::<u64>(task, o.task_nsproxy) else { return 0 };
    let Some(pidns) = kernel::read::<u64>(ns, o.nsproxy_pid_ns) else { return 0 };
    kernel::read::<u32>(pidns, o.pid_ns_inum).unwrap_or(0) as u64
}

/// A task's process id.
#[inline(always)]
pub(crate) fn task_tgid(task: u64) -> u32 {
    kernel::read::<u32>(task, kernel::offsets().task_tgid).unwrap_or(0)
}

/// A task's thread id.
#[inline(always)]
pub(crate) fn task_pid(task: u64) -> u32 {
    kernel::read::<u32>(task, kernel::offsets().task_pid).unwrap_or(0)
}

/// Whether `task` (not necessarily the current one) is selected.
#[inline(always)]
pub(crate) fn task_selected(task: u64) -> bool {
    let f = filter::config();
    match f.mode {
        MODE_ALL => true,
        MODE_PROCESSES => filter::process_selected(task_tgid(task)),
        MODE_THREADS => filter::thread_selected(task_pid(task)),
        MODE_CGROUP => task_cgroup(task, Some(f.cgroup_level)) == f.cgroup_id,
        _ => false,
    }
}
