//! biolatency and biosnoop: block I/O from insertion (OS queue) or issue
//! to completion, from the block tracepoints' records (their field offsets
//! come from tracefs, so the layouts of older kernels work too).

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{HashMap, RingBuf},
    programs::TracePointContext,
};
use perfkit_probes_common::tools::{
    BioEvent, BioKey, BioStart, HistKey, OP_DISCARD, OP_FLUSH, OP_OTHER, OP_READ, OP_SYNC, OP_WRITE, TOOL_BIO,
};

use crate::tools;

/// I/O in flight.
#[map]
static BIO_START: HashMap<BioKey, BioStart> = HashMap::with_max_entries(32_768, BPF_F_NO_PREALLOC);

/// Latency histograms, per disk and operation when asked.
#[map]
static BIO_HIST: HashMap<HistKey, u64> = HashMap::with_max_entries(16_384, BPF_F_NO_PREALLOC);

/// biosnoop: one event per completed I/O.
#[map]
static BIO_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

#[inline(always)]
fn read<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    // SAFETY: read_at copies with bpf_probe_read from the record; a bad
    // offset is an error, not a fault.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

#[inline(always)]
fn key(ctx: &TracePointContext, dev_at: u32, sector_at: u32) -> Option<BioKey> {
    Some(BioKey { dev: read::<u32>(ctx, dev_at)?, _pad: 0, sector: read::<u64>(ctx, sector_at)? })
}

#[inline(always)]
fn started(ctx: &TracePointContext, insert: bool) {
    let f = tools::block_fields();
    let Some(k) = key(ctx, f.dev, f.sector) else { return };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a plain read of a map value.
    let mut start = match unsafe { BIO_START.get(&k) } {
        Some(s) if !insert => *s,
        _ => BioStart::default(),
    };
    if insert {
        start.insert_ns = now;
    } else {
        start.issue_ns = now;
    }
    if start.pid == 0 {
        start.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        start.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    }
    start.bytes = read::<u32>(ctx, f.bytes).unwrap_or(0);
    if start.bytes == 0 {
        start.bytes = read::<u32>(ctx, f.nr_sector).unwrap_or(0).saturating_mul(512);
    }
    if BIO_START.insert(&k, &start, BPF_ANY as u64).is_err()
        && let Some(s) = tools::stats(TOOL_BIO)
    {
        s.starts_lost += 1;
    }
}

/// block:block_rq_insert: into the OS queue.
#[tracepoint(category = "block", name = "block_rq_insert")]
pub fn bio_insert(ctx: TracePointContext) -> u32 {
    if tools::config().bio_queued != 0 {
        started(&ctx, true);
    }
    0
}

/// block:block_rq_issue: to the device.
#[tracepoint(category = "block", name = "block_rq_issue")]
pub fn bio_issue(ctx: TracePointContext) -> u32 {
    started(&ctx, false);
    0
}

/// The operation of an rwbs string: its first letter, and `S` anywhere.
#[inline(always)]
fn operation(rwbs: &[u8; 16]) -> u32 {
    let mut op = match rwbs[0] {
        b'R' => OP_READ,
        b'W' => OP_WRITE,
        b'D' => OP_DISCARD,
        b'F' => {
            if rwbs[1] == b'W' { OP_WRITE } else if rwbs[1] == b'R' { OP_READ } else { OP_FLUSH }
        }
        b'N' => OP_FLUSH,
        _ => OP_OTHER,
    };
    let mut i = 1;
    while i < 8 {
        if rwbs[i] == b'S' {
            op |= OP_SYNC;
        }
        i += 1;
    }
    op
}

/// block:block_rq_complete: done.
#[tracepoint(category = "block", name = "block_rq_complete")]
pub fn bio_complete(ctx: TracePointContext) -> u32 {
    let f = tools::block_fields();
    let config = tools::config();
    let Some(k) = key(&ctx, f.complete_dev, f.complete_sector) else { return 0 };
    let Some(stats) = tools::stats(TOOL_BIO) else { return 0 };
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(start) = (unsafe { BIO_START.get(&k) }).copied() else {
        stats.unmatched += 1;
        return 0;
    };
    let _ = BIO_START.remove(&k);
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let from = if config.bio_queued != 0 && start.insert_ns != 0 { start.insert_ns } else { start.issue_ns };
    if from == 0 {
        stats.unmatched += 1;
        return 0;
    }
    stats.events += 1;
    let mut rwbs = [0u8; 16];
    if let Some(r) = read::<[u8; 8]>(&ctx, f.complete_rwbs) {
        rwbs[..8].copy_from_slice(&r);
    }
    if config.bio_hist != 0 {
        let id = if config.bio_per_disk != 0 { k.dev as u64 } else { 0 };
        let sub = if config.bio_per_flags != 0 { operation(&rwbs) } else { 0 };
        tools::record_latency(&BIO_HIST, id, sub, now.saturating_sub(from), stats);
    }
    if config.bio_snoop != 0 {
        let Some(mut entry) = BIO_EVENTS.reserve::<BioEvent>(0) else {
            stats.ring_full += 1;
            return 0;
        };
        entry.write(BioEvent {
            ts_ns: now,
            latency_ns: now.saturating_sub(if start.issue_ns != 0 { start.issue_ns } else { from }),
            queued_ns: if start.insert_ns != 0 && start.issue_ns != 0 {
                start.issue_ns.saturating_sub(start.insert_ns)
            } else {
                0
            },
            sector: k.sector,
            dev: k.dev,
            bytes: start.bytes,
            pid: start.pid,
            error: read::<i32>(&ctx, f.complete_error).unwrap_or(0),
            comm: start.comm,
            rwbs,
        });
        entry.submit(0);
    }
    0
}
