//! capable: each capability check, from a kprobe on cap_capable (kernels
//! with kprobes only: no tracepoint covers it).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns},
    macros::{kprobe, map},
    maps::RingBuf,
    programs::ProbeContext,
};
use perfkit_probes_common::tools::{CapableConfig, CapableEvent, TOOL_CAPABLE};

use crate::{filter, tools};

/// Which checks are reported; filled in by the loader.
#[unsafe(no_mangle)]
static CAPABLE_CONFIG: CapableConfig = CapableConfig { non_audit: 0, _pad: 0 };

/// capable events.
#[map]
static CAPABLE_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 18, 0);

/// `CAP_OPT_NOAUDIT`: the check is not audited.
const CAP_OPT_NOAUDIT: u32 = 1 << 1;

/// cap_capable(cred, targ_ns, cap, opts).
#[kprobe]
pub fn capable_check(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !filter::selected(tgid, tid) {
        return 0;
    }
    let cap = ctx.arg::<i32>(2).unwrap_or(-1);
    let opts = ctx.arg::<u32>(3).unwrap_or(0);
    // SAFETY: volatile read of the global the loader rewrites.
    let c = unsafe { core::ptr::read_volatile(&CAPABLE_CONFIG) };
    if c.non_audit == 0 && opts & CAP_OPT_NOAUDIT != 0 {
        return 0;
    }
    let Some(stats) = tools::stats(TOOL_CAPABLE) else { return 0 };
    stats.events += 1;
    let event = CapableEvent {
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pid: tgid,
        tid,
        uid: bpf_get_current_uid_gid() as u32,
        cap,
        opts,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    if CAPABLE_EVENTS.output::<CapableEvent>(&event, 0).is_err() {
        stats.ring_full += 1;
    }
    0
}
