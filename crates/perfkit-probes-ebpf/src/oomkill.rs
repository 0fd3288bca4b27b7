//! oomkill: each process the OOM killer chooses, from oom:mark_victim (in
//! the task whose allocation triggered it).

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel_str_bytes},
    macros::{map, tracepoint},
    maps::RingBuf,
    programs::TracePointContext,
};
use perfkit_probes_common::tools::{NO_FIELD, OomEvent, OomFields, TOOL_OOMKILL};

use crate::tools;

/// Record offsets of oom:mark_victim, from tracefs; filled in by the loader.
#[unsafe(no_mangle)]
static OOM_FIELDS: OomFields = OomFields {
    pid: 8,
    comm: NO_FIELD,
    total_vm: NO_FIELD,
    anon_rss: NO_FIELD,
    file_rss: NO_FIELD,
    shmem_rss: NO_FIELD,
};

/// oomkill events.
#[map]
static OOM_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 16, 0);

#[inline(always)]
fn read<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == NO_FIELD {
        return None;
    }
    // SAFETY: read_at copies with bpf_probe_read from the record.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

/// oom:mark_victim(pid[, comm, total_vm, anon_rss, file_rss, shmem_rss...]).
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn oom_victim(ctx: TracePointContext) -> u32 {
    // SAFETY: a volatile read keeps the compiler from folding the global.
    let f = unsafe { core::ptr::read_volatile(&OOM_FIELDS) };
    let Some(stats) = tools::stats(TOOL_OOMKILL) else { return 0 };
    stats.events += 1;
    let mut event = OomEvent {
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        total_vm_kb: read::<u64>(&ctx, f.total_vm).unwrap_or(u64::MAX),
        anon_rss_kb: read::<u64>(&ctx, f.anon_rss).unwrap_or(u64::MAX),
        file_rss_kb: read::<u64>(&ctx, f.file_rss).unwrap_or(u64::MAX),
        shmem_rss_kb: read::<u64>(&ctx, f.shmem_rss).unwrap_or(u64::MAX),
        trigger_pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        victim_pid: read::<i32>(&ctx, f.pid).unwrap_or(0) as u32,
        trigger_comm: bpf_get_current_comm().unwrap_or([0; 16]),
        victim_comm: [0; 16],
    };
    // `__data_loc char[] comm`: the low 16 bits are the string's offset in
    // the record.
    if let Some(loc) = read::<u32>(&ctx, f.comm) {
        let at = ctx.as_ptr() as u64 + (loc & 0xffff) as u64;
        // SAFETY: the helper checks the address; the buffer is ours.
        if unsafe { bpf_probe_read_kernel_str_bytes(at as *const u8, &mut event.victim_comm) }.is_err() {
            event.victim_comm = [0; 16];
        }
    }
    if OOM_EVENTS.output::<OomEvent>(&event, 0).is_err() {
        stats.ring_full += 1;
    }
    0
}
