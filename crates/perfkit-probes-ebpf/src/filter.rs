//! Which tasks the programs look at.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_pid_tgid},
    macros::map,
    maps::HashMap,
};
use perfkit_probes_common::filter::{FOLLOWED, FilterConfig, MODE_ALL, MODE_CGROUP, MODE_PROCESSES, MODE_THREADS};

use crate::kernel;

/// The selection, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static FILTER: FilterConfig = FilterConfig { mode: MODE_PROCESSES, follow_children: 0, cgroup_id: 0, cgroup_level: 0, _pad: 0 };

/// Selected processes (`MODE_PROCESSES`).
#[map]
static TARGET_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(65_536, 0);

/// Selected threads (`MODE_THREADS`).
#[map]
static TARGET_TIDS: HashMap<u32, u8> = HashMap::with_max_entries(65_536, 0);

#[inline(always)]
pub(crate) fn config() -> FilterConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&FILTER) }
}

/// Whether the current task, thread `tid` of process `tgid`, is selected.
#[inline(always)]
pub(crate) fn selected(tgid: u32, tid: u32) -> bool {
    let f = config();
    match f.mode {
        MODE_ALL => true,
        MODE_PROCESSES => TARGET_TGIDS.get_ptr(tgid).is_some(),
        MODE_THREADS => TARGET_TIDS.get_ptr(tid).is_some(),
        MODE_CGROUP => {
            // SAFETY: the helper takes a level and reads the current task.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(f.cgroup_level as i32) };
            id == f.cgroup_id
        }
        _ => false,
    }
}

/// Whether process `tgid` is in the set of selected processes.
#[inline(always)]
pub(crate) fn process_selected(tgid: u32) -> bool {
    TARGET_TGIDS.get_ptr(tgid).is_some()
}

/// Whether thread `tid` is in the set of selected threads.
#[inline(always)]
pub(crate) fn thread_selected(tid: u32) -> bool {
    TARGET_TIDS.get_ptr(tid).is_some()
}

/// A task was forked: a new process whose parent process is selected is
/// selected too (threads share their process's id and need nothing).
#[inline(always)]
pub(crate) fn on_fork(child: u64) {
    let f = config();
    if f.mode != MODE_PROCESSES || f.follow_children == 0 {
        return;
    }
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if TARGET_TGIDS.get_ptr(parent_tgid).is_none() {
        return;
    }
    let off = kernel::offsets();
    let (Some(pid), Some(tgid)) = (kernel::read::<u32>(child, off.task_pid), kernel::read::<u32>(child, off.task_tgid))
    else {
        return;
    };
    if pid == tgid && tgid != parent_tgid && TARGET_TGIDS.insert(tgid, FOLLOWED, BPF_ANY as u64).is_ok() {
        if let Some(stats) = crate::stacks::stats() {
            stats.children += 1;
        }
    }
}

/// A task exited: when its process is gone, its mappings are forgotten,
/// and a followed process leaves the set, so that its id, once reused,
/// selects nothing. (The processes the user named stay: their exit ends
/// the profile.) `group_dead` is the tracepoint's second argument, on the
/// kernels that pass it (newer than 6.12).
#[inline(always)]
pub(crate) fn on_exit(task: u64, group_dead: Option<u64>) {
    let f = config();
    let off = kernel::offsets();
    let (Some(pid), Some(tgid)) = (kernel::read::<u32>(task, off.task_pid), kernel::read::<u32>(task, off.task_tgid))
    else {
        return;
    };
    // Without `group_dead`, the main thread's exit stands for the
    // process's: other threads outliving it are rare.
    let gone = match group_dead {
        Some(dead) => dead & 0xff != 0,
        None => pid == tgid,
    };
    if !gone {
        return;
    }
    // Its mappings go with it (user space keeps its own copy).
    let _ = crate::walk::PROCS.remove(tgid);
    if f.mode != MODE_PROCESSES || f.follow_children == 0 {
        return;
    }
    // SAFETY: a plain read of a map value.
    if unsafe { TARGET_TGIDS.get(tgid) }.is_some_and(|v| *v == FOLLOWED) {
        let _ = TARGET_TGIDS.remove(tgid);
    }
}
