//! trace and argdist: one [`TraceEvent`] per hit of a uprobe, uretprobe,
//! USDT probe or tracepoint of a selected task.
//!
//! `trace_u_N` (uprobes and uretprobes alike: the perf event says which)
//! copies `struct pt_regs`; `trace_t_N` copies the start of the
//! tracepoint's record. Both then read the memory operands and strings
//! probe N's [`TraceProbe`] names. Formats, filters and aggregation are
//! user space's.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{map, tracepoint, uprobe},
    maps::{Array, PerCpuArray, RingBuf},
    programs::{ProbeContext, TracePointContext},
};
use perfkit_probes_common::{
    tools::ToolStats,
    trace::{
        DEREFS, FLAG_DEREF_UNREADABLE, FLAG_STR_TRUNCATED, FLAG_STR_UNREADABLE, MAX_PROBES, RECORD_BYTES, REGS,
        STR_DATA_LOC, STR_DEREF, STR_FIELD, STR_LEN, STR_REG, STR_SLOTS, TraceEvent, TraceProbe,
    },
};

use crate::filter;

/// The events.
#[map]
static TRACE_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// What each probe reads, by probe index (written by the loader).
#[map]
static TRACE_PROBES: Array<TraceProbe> = Array::with_max_entries(MAX_PROBES as u32, 0);

/// Counters (one slot).
#[map]
static TRACE_STATS: PerCpuArray<ToolStats> = PerCpuArray::with_max_entries(1, 0);

/// Reads the NUL-terminated string at `at` into `buf` (user memory, or
/// kernel memory with `kernel`): the flags to set for string `slot`.
#[inline(always)]
fn read_str(at: u64, buf: &mut [u8; STR_LEN], slot: usize, kernel: bool) -> u32 {
    let dst = buf.as_mut_ptr().cast();
    // SAFETY: the helpers check the source address; `buf` is ours and
    // STR_LEN bytes long.
    let n = unsafe {
        if kernel {
            bpf_probe_read_kernel_str(dst, STR_LEN as u32, at as *const _)
        } else {
            bpf_probe_read_user_str(dst, STR_LEN as u32, at as *const _)
        }
    };
    if n <= 0 {
        buf[0] = 0;
        return FLAG_STR_UNREADABLE << slot;
    }
    if n as usize >= STR_LEN {
        // The buffer is full: cut, unless the string ends right here.
        let mut next = 0u8;
        let past = (at + (STR_LEN - 1) as u64) as *const _;
        let dst = (&mut next as *mut u8).cast();
        // SAFETY: as above, one byte into `next`.
        let rc =
            unsafe { if kernel { bpf_probe_read_kernel(dst, 1, past) } else { bpf_probe_read_user(dst, 1, past) } };
        if rc == 0 && next != 0 {
            return FLAG_STR_TRUNCATED << slot;
        }
    }
    0
}

/// Fills and submits the event of probe `index`; `fill` copies the
/// registers or the record first.
#[inline(always)]
fn emit(index: u32, fill: impl FnOnce(&mut TraceEvent), record_base: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !filter::selected(tgid, tid) {
        return;
    }
    // SAFETY: this CPU's slot; a BPF program is not re-entered on its CPU
    // while it holds it.
    let Some(stats) = TRACE_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p }) else { return };
    stats.events += 1;
    let Some(cfg) = TRACE_PROBES.get(index) else { return };
    let Some(mut entry) = TRACE_EVENTS.reserve::<TraceEvent>(0) else {
        stats.ring_full += 1;
        return;
    };
    // SAFETY: the reserved event is written whole before it is submitted:
    // the fixed fields here, the registers or record by `fill`, the rest
    // below.
    let e = unsafe { &mut *entry.as_mut_ptr() };
    // SAFETY: the helper has no preconditions.
    e.ts_ns = unsafe { bpf_ktime_get_ns() };
    e.pid = tgid;
    e.tid = tid;
    e.probe = index;
    e.flags = 0;
    e.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    e.regs = [0; REGS];
    e.derefs = [0; DEREFS];
    fill(e);
    let mut i = 0;
    while i < DEREFS {
        let d = cfg.derefs[i];
        if (d.reg as usize) < REGS {
            let at = e.regs[d.reg as usize].wrapping_add(d.offset as u64);
            // 1 to 8 by arithmetic, which every verifier bounds (a select
            // of 8 or the size loses the bound on 6.1): 0 reads 8.
            let size = (d.size.wrapping_sub(1) & 7) + 1;
            let dst = (&mut e.derefs[i] as *mut u64).cast();
            // SAFETY: the helper checks the user address; at most 8 bytes
            // into the u64.
            if unsafe { bpf_probe_read_user(dst, size, at as *const _) } != 0 {
                e.flags |= FLAG_DEREF_UNREADABLE << i;
            }
        }
        i += 1;
    }
    let mut s = 0;
    while s < STR_SLOTS {
        let src = cfg.strings[s];
        let buf = &mut e.strings[s];
        buf[0] = 0;
        let idx = src.index as usize;
        let flags = if src.kind == STR_REG && idx < REGS {
            read_str(e.regs[idx], buf, s, false)
        } else if src.kind == STR_DEREF && idx < DEREFS {
            read_str(e.derefs[idx], buf, s, false)
        } else if src.kind == STR_FIELD && idx + 8 <= RECORD_BYTES {
            let mut at = [0u8; 8];
            at.copy_from_slice(&e.record[idx..idx + 8]);
            let at = u64::from_ne_bytes(at);
            let f = read_str(at, buf, s, false);
            if f & (FLAG_STR_UNREADABLE << s) != 0 { read_str(at, buf, s, true) } else { f }
        } else if src.kind == STR_DATA_LOC && idx + 4 <= RECORD_BYTES && record_base != 0 {
            let mut loc = [0u8; 4];
            loc.copy_from_slice(&e.record[idx..idx + 4]);
            let loc = u32::from_ne_bytes(loc);
            let f = read_str(record_base + (loc & 0xffff) as u64, buf, s, true);
            if (loc >> 16) as usize > STR_LEN && f == 0 { FLAG_STR_TRUNCATED << s } else { f }
        } else {
            0
        };
        e.flags |= flags;
        s += 1;
    }
    entry.submit(0);
}

#[inline(always)]
fn on_uprobe(ctx: &ProbeContext, index: u32) {
    let regs = ctx.regs as u64;
    emit(
        index,
        |e| {
            let dst = e.regs.as_mut_ptr().cast();
            // SAFETY: copies the probe's `struct pt_regs` (REGS words) into
            // the event's array of the same size.
            if unsafe { bpf_probe_read_kernel(dst, (REGS * 8) as u32, regs as *const _) } != 0 {
                e.regs = [0; REGS];
            }
        },
        0,
    );
}

#[inline(always)]
fn on_tracepoint(ctx: &TracePointContext, index: u32) {
    let base = ctx.as_ptr() as u64;
    let len = TRACE_PROBES.get(index).map_or(0, |c| c.record_len as usize);
    emit(
        index,
        |e| {
            // The mask bounds the size for the verifier (within the event:
            // the strings follow the record); the clamp keeps it in the record.
            let n = (if len > RECORD_BYTES { RECORD_BYTES } else { len }) & 0x1ff;
            if n > 0 {
                let dst = e.record.as_mut_ptr().cast();
                // SAFETY: copies `n` (at most RECORD_BYTES) bytes of the
                // record into the event's array.
                let _ = unsafe { bpf_probe_read_kernel(dst, n as u32, base as *const _) };
            }
        },
        base,
    );
}

/// One uprobe and one tracepoint program per probe index.
macro_rules! programs {
    ($($uprobe:ident, $tp:ident, $index:literal;)*) => {
        $(
            #[uprobe]
            pub fn $uprobe(ctx: ProbeContext) -> u32 {
                on_uprobe(&ctx, $index);
                0
            }

            #[tracepoint]
            pub fn $tp(ctx: TracePointContext) -> u32 {
                on_tracepoint(&ctx, $index);
                0
            }
        )*
    };
}

programs! {
    trace_u_0, trace_t_0, 0;
    trace_u_1, trace_t_1, 1;
    trace_u_2, trace_t_2, 2;
    trace_u_3, trace_t_3, 3;
    trace_u_4, trace_t_4, 4;
    trace_u_5, trace_t_5, 5;
    trace_u_6, trace_t_6, 6;
    trace_u_7, trace_t_7, 7;
    trace_u_8, trace_t_8, 8;
    trace_u_9, trace_t_9, 9;
    trace_u_10, trace_t_10, 10;
    trace_u_11, trace_t_11, 11;
    trace_u_12, trace_t_12, 12;
    trace_u_13, trace_t_13, 13;
    trace_u_14, trace_t_14, 14;
    trace_u_15, trace_t_15, 15;
}
