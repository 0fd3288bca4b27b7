//! tcplife and tcpretrans: TCP sessions from birth to close, with bytes
//! each way, and retransmitted segments, from sock:inet_sock_set_state and
//! tcp:tcp_retransmit_skb.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_NO_PREALLOC},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{Array, HashMap, RingBuf},
    programs::TracePointContext,
};
use perfkit_probes_common::{
    filter::MODE_PROCESSES,
    tools::{
        NO_FIELD, RETRANS_FAILED, RETRANS_FAILED_SEGS, RETRANS_HITS, RETRANS_SEGS, TOOL_TCPLIFE, TOOL_TCPRETRANS,
        TcpBirth, TcpLifeEvent, TcpRetransEvent,
    },
};

use crate::{atomic_add, filter, kernel, tools};

/// Sockets seen, by address: when, and whose.
#[map]
static TCP_BIRTH: HashMap<u64, TcpBirth> = HashMap::with_max_entries(65_536, BPF_F_NO_PREALLOC);

/// tcplife events.
#[map]
static TCP_LIFE_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// tcpretrans events.
#[map]
static TCP_RETRANS_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Retransmissions, their segments, failed attempts and theirs, by TCP
/// state (`16 * RETRANS_* + state`).
#[map]
static TCP_RETRANS_COUNTS: Array<u64> = Array::with_max_entries(64, 0);

const IPPROTO_TCP: u16 = 6;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const TCP_SYN_SENT: i32 = 2;
const TCP_FIN_WAIT1: i32 = 4;
const TCP_CLOSE: i32 = 7;
const TCP_LAST_ACK: i32 = 9;

#[inline(always)]
fn read<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    // SAFETY: read_at copies with bpf_probe_read from the record.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

/// Local and remote addresses of a record: IPv4 or IPv6 fields.
#[inline(always)]
fn addresses(ctx: &TracePointContext, family: u16, v4: (u32, u32), v6: (u32, u32)) -> ([u8; 16], [u8; 16]) {
    let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
    if family == AF_INET {
        s[..4].copy_from_slice(&read::<[u8; 4]>(ctx, v4.0).unwrap_or([0; 4]));
        d[..4].copy_from_slice(&read::<[u8; 4]>(ctx, v4.1).unwrap_or([0; 4]));
    } else {
        s = read::<[u8; 16]>(ctx, v6.0).unwrap_or([0; 16]);
        d = read::<[u8; 16]>(ctx, v6.1).unwrap_or([0; 16]);
    }
    (s, d)
}

/// sock:inet_sock_set_state(skaddr, oldstate, newstate, sport, dport,
/// family, protocol, addresses).
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tcp_state(ctx: TracePointContext) -> u32 {
    let f = tools::sock_fields().state;
    if read::<u16>(&ctx, f[6]) != Some(IPPROTO_TCP) {
        return 0;
    }
    let Some(sk) = read::<u64>(&ctx, f[0]) else { return 0 };
    let new = read::<i32>(&ctx, f[2]).unwrap_or(0);
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if new < TCP_FIN_WAIT1 && TCP_BIRTH.get_ptr(&sk).is_none() {
        let birth = TcpBirth { ts_ns: now, pid: 0, _pad: 0, comm: [0; 16] };
        if TCP_BIRTH.insert(&sk, &birth, BPF_ANY as u64).is_err()
            && let Some(s) = tools::stats(TOOL_TCPLIFE)
        {
            s.starts_lost += 1;
        }
    }
    // Who owns it: the process in whose context it connects or is closed.
    if (new == TCP_SYN_SENT || new == TCP_FIN_WAIT1 || new == TCP_LAST_ACK)
        && pid != 0
        && let Some(b) = TCP_BIRTH.get_ptr_mut(&sk)
    {
        // SAFETY: `b` points at a live map value.
        unsafe {
            if (*b).pid == 0 {
                (*b).pid = pid;
                (*b).comm = bpf_get_current_comm().unwrap_or([0; 16]);
            }
        }
    }
    if new != TCP_CLOSE {
        return 0;
    }
    let Some(stats) = tools::stats(TOOL_TCPLIFE) else { return 0 };
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(birth) = (unsafe { TCP_BIRTH.get(&sk) }).copied() else {
        stats.unmatched += 1;
        return 0;
    };
    let _ = TCP_BIRTH.remove(&sk);
    if filter::config().mode == MODE_PROCESSES && !filter::process_selected(birth.pid) {
        return 0;
    }
    stats.events += 1;
    let o = tools::offsets();
    let family = read::<u16>(&ctx, f[5]).unwrap_or(0);
    let (saddr, daddr) = addresses(&ctx, family, (f[7], f[8]), (f[9], f[10]));
    let event = TcpLifeEvent {
        ts_ns: now,
        duration_ns: now.saturating_sub(birth.ts_ns),
        rx_bytes: kernel::read::<u64>(sk, o.tcp_bytes_received).unwrap_or(0),
        tx_bytes: kernel::read::<u64>(sk, o.tcp_bytes_acked).unwrap_or(0),
        pid: birth.pid,
        family,
        sport: read::<u16>(&ctx, f[3]).unwrap_or(0),
        dport: read::<u16>(&ctx, f[4]).unwrap_or(0),
        _pad: [0; 3],
        saddr,
        daddr,
        comm: birth.comm,
    };
    if TCP_LIFE_EVENTS.output::<TcpLifeEvent>(&event, 0).is_err() {
        stats.ring_full += 1;
    }
    0
}

/// tcp:tcp_retransmit_skb(skbaddr, skaddr, state, sport, dport, family,
/// addresses[, err]): one retransmitted skb, of `tcp_skb_pcount()`
/// segments, or (with err) a failed attempt.
#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retrans(ctx: TracePointContext) -> u32 {
    let f = tools::sock_fields().retrans;
    let Some(stats) = tools::stats(TOOL_TCPRETRANS) else { return 0 };
    stats.events += 1;
    let state = read::<i32>(&ctx, f[1]).unwrap_or(0) as u32 & 15;
    let err = if f[10] == NO_FIELD { 0 } else { read::<i32>(&ctx, f[10]).unwrap_or(0) };
    // tcp_skb_pcount(skb): the segments the skb carries (a TSO skb many).
    let o = tools::offsets();
    let skb = read::<u64>(&ctx, f[9]).unwrap_or(0);
    let segs = match kernel::read::<u16>(skb, o.skb_cb + o.tcp_skb_cb_gso_segs) {
        Some(n) if n > 0 && o.skb_cb != 0 && o.tcp_skb_cb_gso_segs != 0 => n as u32,
        _ => 1,
    };
    let (hits, seg_slot) = if err == 0 { (RETRANS_HITS, RETRANS_SEGS) } else { (RETRANS_FAILED, RETRANS_FAILED_SEGS) };
    if let Some(c) = TCP_RETRANS_COUNTS.get_ptr_mut(16 * hits + state) {
        atomic_add(c, 1);
    }
    if let Some(c) = TCP_RETRANS_COUNTS.get_ptr_mut(16 * seg_slot + state) {
        atomic_add(c, segs as u64);
    }
    let family = if f[4] == NO_FIELD {
        // Before 5.12 the record has no family; an IPv4 socket's IPv6
        // fields hold v4-mapped addresses (::ffff:a.b.c.d).
        let v6 = read::<[u8; 16]>(&ctx, f[7]).unwrap_or([0; 16]);
        if v6[..10] == [0; 10] && v6[10] == 0xff && v6[11] == 0xff { AF_INET } else { AF_INET6 }
    } else {
        read::<u16>(&ctx, f[4]).unwrap_or(0)
    };
    let (saddr, daddr) = addresses(&ctx, family, (f[5], f[6]), (f[7], f[8]));
    let event = TcpRetransEvent {
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        state,
        family,
        sport: read::<u16>(&ctx, f[2]).unwrap_or(0),
        dport: read::<u16>(&ctx, f[3]).unwrap_or(0),
        _pad: 0,
        saddr,
        daddr,
        segs,
        err,
    };
    if TCP_RETRANS_EVENTS.output::<TcpRetransEvent>(&event, 0).is_err() {
        stats.ring_full += 1;
    }
    0
}
