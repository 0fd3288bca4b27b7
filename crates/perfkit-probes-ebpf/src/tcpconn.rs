//! tcpconnect and tcpaccept: active opens (a connect entering SYN_SENT, in
//! the connecting process) and passive opens (a handshake completed on a
//! listening socket, in softirq), from sock:inet_sock_set_state; the
//! accepting process is found when accept(2) returns the socket.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        generated::bpf_get_current_task,
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, RingBuf},
    programs::TracePointContext,
};
use perfkit_probes_common::tools::{
    CONN_ACCEPT, CONN_CONNECT, TOOL_TCPACCEPT, TOOL_TCPCONNECT, TcpConnConfig, TcpConnEvent, TcpPortKey,
};

use crate::{atomic_add, filter, kernel, tools};

/// What is streamed, and the offsets from a file descriptor to its socket;
/// filled in by the loader.
#[unsafe(no_mangle)]
static TCP_CONN_CONFIG: TcpConnConfig = TcpConnConfig {
    connect_events: 0,
    accept_events: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_private_data: 0,
    socket_sk: 0,
};

/// Connect and accept events.
#[map]
static TCP_CONN_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Passive opens not accepted yet, by socket.
#[map]
static TCP_ACCEPT_PENDING: LruHashMap<u64, TcpConnEvent> = LruHashMap::with_max_entries(16_384, 0);

/// Opens by kind and port.
#[map]
static TCP_PORT_COUNTS: HashMap<TcpPortKey, u64> = HashMap::with_max_entries(4096, 0);

const IPPROTO_TCP: u16 = 6;
const AF_INET: u16 = 2;
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;

#[inline(always)]
fn config() -> TcpConnConfig {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&TCP_CONN_CONFIG) }
}

#[inline(always)]
fn read<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    // SAFETY: read_at copies with bpf_probe_read from the record.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

#[inline(always)]
fn count(kind: u32, port: u16) {
    let key = TcpPortKey { kind, port: port as u32 };
    if let Some(p) = TCP_PORT_COUNTS.get_ptr_mut(&key) {
        atomic_add(p, 1);
        return;
    }
    if TCP_PORT_COUNTS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        match TCP_PORT_COUNTS.get_ptr_mut(&key) {
            Some(p) => atomic_add(p, 1),
            None => {
                if let Some(s) = tools::stats(if kind == CONN_CONNECT { TOOL_TCPCONNECT } else { TOOL_TCPACCEPT }) {
                    s.updates_lost += 1;
                }
            }
        }
    }
}

/// sock:inet_sock_set_state: CLOSE -> SYN_SENT is a connect (in the
/// connecting task), SYN_RECV -> ESTABLISHED a completed passive open.
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tcp_conn(ctx: TracePointContext) -> u32 {
    let f = tools::sock_fields().state;
    if read::<u16>(&ctx, f[6]) != Some(IPPROTO_TCP) {
        return 0;
    }
    let old = read::<i32>(&ctx, f[1]).unwrap_or(0);
    let new = read::<i32>(&ctx, f[2]).unwrap_or(0);
    let kind = if old == TCP_CLOSE && new == TCP_SYN_SENT {
        CONN_CONNECT
    } else if old == TCP_SYN_RECV && new == TCP_ESTABLISHED {
        CONN_ACCEPT
    } else {
        return 0;
    };
    let sport = read::<u16>(&ctx, f[3]).unwrap_or(0);
    let dport = read::<u16>(&ctx, f[4]).unwrap_or(0);
    count(kind, if kind == CONN_CONNECT { dport } else { sport });
    let c = config();
    let family = read::<u16>(&ctx, f[5]).unwrap_or(0);
    let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
    if family == AF_INET {
        saddr[..4].copy_from_slice(&read::<[u8; 4]>(&ctx, f[7]).unwrap_or([0; 4]));
        daddr[..4].copy_from_slice(&read::<[u8; 4]>(&ctx, f[8]).unwrap_or([0; 4]));
    } else {
        saddr = read::<[u8; 16]>(&ctx, f[9]).unwrap_or([0; 16]);
        daddr = read::<[u8; 16]>(&ctx, f[10]).unwrap_or([0; 16]);
    }
    let mut event = TcpConnEvent {
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pid: 0,
        tid: 0,
        uid: 0,
        kind,
        family,
        sport,
        dport,
        _pad: 0,
        saddr,
        daddr,
        comm: [0; 16],
    };
    if kind == CONN_CONNECT {
        if c.connect_events == 0 {
            return 0;
        }
        let pid_tgid = bpf_get_current_pid_tgid();
        let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
        if !filter::selected(tgid, tid) {
            return 0;
        }
        let Some(stats) = tools::stats(TOOL_TCPCONNECT) else { return 0 };
        stats.events += 1;
        event.pid = tgid;
        event.tid = tid;
        event.uid = bpf_get_current_uid_gid() as u32;
        event.comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if TCP_CONN_EVENTS.output::<TcpConnEvent>(&event, 0).is_err() {
            stats.ring_full += 1;
        }
    } else if c.accept_events != 0 {
        // The process is known once accept(2) returns the socket.
        let Some(sk) = read::<u64>(&ctx, f[0]) else { return 0 };
        if TCP_ACCEPT_PENDING.insert(&sk, &event, 0).is_err()
            && let Some(s) = tools::stats(TOOL_TCPACCEPT)
        {
            s.starts_lost += 1;
        }
    }
    0
}

/// syscalls:sys_exit_accept and sys_exit_accept4: the returned descriptor's
/// socket, if its handshake was seen, is reported under the accepting
/// process.
#[tracepoint(category = "syscalls", name = "sys_exit_accept4")]
pub fn tcp_accept_ret(ctx: TracePointContext) -> u32 {
    let Some(fd) = read::<i64>(&ctx, 16) else { return 0 };
    if !(0..=i32::MAX as i64).contains(&fd) {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !filter::selected(tgid, tid) {
        return 0;
    }
    let c = config();
    // SAFETY: the helper has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    let Some(files) = kernel::read::<u64>(task, c.task_files) else { return 0 };
    let Some(fdt) = kernel::read::<u64>(files, c.files_fdt) else { return 0 };
    let max = kernel::read::<u32>(fdt, c.fdtable_max_fds).unwrap_or(0) as i64;
    if fd >= max {
        return 0;
    }
    let Some(array) = kernel::read::<u64>(fdt, c.fdtable_fd) else { return 0 };
    let Some(file) = kernel::read::<u64>(array, (fd as u32).wrapping_mul(8)) else { return 0 };
    let Some(sock) = kernel::read::<u64>(file, c.file_private_data) else { return 0 };
    let Some(sk) = kernel::read::<u64>(sock, c.socket_sk) else { return 0 };
    // SAFETY: a plain read of a map value, copied before the removal.
    let Some(mut event) = (unsafe { TCP_ACCEPT_PENDING.get(&sk) }).copied() else { return 0 };
    let _ = TCP_ACCEPT_PENDING.remove(&sk);
    let Some(stats) = tools::stats(TOOL_TCPACCEPT) else { return 0 };
    stats.events += 1;
    event.pid = tgid;
    event.tid = tid;
    event.uid = bpf_get_current_uid_gid() as u32;
    event.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    if TCP_CONN_EVENTS.output::<TcpConnEvent>(&event, 0).is_err() {
        stats.ring_full += 1;
    }
    0
}
