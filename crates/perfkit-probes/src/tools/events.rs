//! The events the snooping tools stream, decoded from their ring-buffer
//! records.

use std::{collections::HashMap, net::IpAddr};

use perfkit_probes_common::{
    COMM_LEN,
    tools::{
        self, BioEvent as RawBio, EXEC_ARGS, EXEC_ARGS_EVENT, EXEC_IMAGE_EVENT, EXEC_RET_EVENT,
        ExecEvent as RawExecArgs, ExecRetEvent, OpenEvent as RawOpen, TcpLifeEvent, TcpRetransEvent,
    },
};

/// Copies a record of type `T` out of a ring-buffer item.
pub(super) fn record<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the item holds at least a `T`, written by the kernel side from
    // the same `#[repr(C)]` plain-data definition; read unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A NUL-terminated name, escaped for printing.
pub(super) fn text(bytes: &[u8]) -> String {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    perfkit_model::escape_bytes(&bytes[..len])
}

fn comm(c: &[u8; COMM_LEN]) -> String {
    text(c)
}

/// One completed block I/O (biosnoop).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BlockEvent {
    /// Completion time, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Issue to completion, nanoseconds.
    pub latency_ns: u64,
    /// Time in the OS queue before issue (0 when not measured).
    pub queued_ns: u64,
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// First sector (512 bytes).
    pub sector: u64,
    /// Bytes.
    pub bytes: u32,
    /// The process that issued or queued it (0: unknown).
    pub pid: u32,
    /// Its name.
    pub comm: String,
    /// The kernel's operation flags (`W`, `RS`, `FWS`...).
    pub rwbs: String,
    /// Error (negative errno) or 0.
    pub error: i32,
}

pub(crate) fn block_event(bytes: &[u8]) -> Option<BlockEvent> {
    let e: RawBio = record(bytes)?;
    // The tracepoints' dev_t is the kernel's internal one: major in the
    // high 12 bits, minor in the low 20.
    Some(BlockEvent {
        ts_ns: e.ts_ns,
        latency_ns: e.latency_ns,
        queued_ns: e.queued_ns,
        major: e.dev >> 20,
        minor: e.dev & 0xf_ffff,
        sector: e.sector,
        bytes: e.bytes,
        pid: e.pid,
        comm: comm(&e.comm),
        rwbs: text(&e.rwbs),
        error: e.error,
    })
}

/// The (major, minor) of a device number as the block tracepoints give
/// it.
pub fn kernel_dev(dev: u64) -> (u32, u32) {
    ((dev >> 20) as u32, (dev & 0xf_ffff) as u32)
}

/// A disk's name (`vda`, `nvme0n1`) from `/sys/dev/block`, or
/// `major:minor` when it has none.
pub fn disk_name(major: u32, minor: u32) -> String {
    std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
        .ok()
        .and_then(|u| u.lines().find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_owned)))
        .unwrap_or_else(|| format!("{major}:{minor}"))
}

/// One exec (execsnoop).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ExecEvent {
    /// When it returned, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The process.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// Its user.
    pub uid: u32,
    /// The name after the exec (before it, when it failed).
    pub comm: String,
    /// The program: for a successful exec the file the kernel opened
    /// (`sched_process_exec`), for a failed one the path as passed. `None`
    /// when it could not be read (the caller's page was not mapped in).
    pub path: Option<String>,
    /// The arguments, `argv[0]` first: for a successful exec as the new
    /// program sees them, for a failed one as passed (`None` for one that
    /// could not be read).
    pub args: Vec<Option<String>>,
    /// The path was cut to the bytes kept.
    pub path_truncated: bool,
    /// An argument was cut, or more were passed than kept.
    pub args_truncated: bool,
    /// 0, or the negative errno of a failed exec.
    pub ret: i32,
}

pub(crate) enum ExecPart {
    Args(ExecEvent),
    Image { pid: u32, path: Option<String>, path_truncated: bool, args: Option<(Vec<String>, bool)> },
    Ret { pid: u32, ret: i32, ts_ns: u64, comm: String },
}

/// Splits an argv block (NUL-separated strings, `total` bytes of which
/// `block` holds the first) into its arguments, and whether it was cut.
fn split_argv(block: &[u8], total: usize) -> (Vec<String>, bool) {
    let kept = &block[..total.min(block.len())];
    let mut truncated = total > block.len();
    let body = match kept.last() {
        Some(0) => &kept[..kept.len() - 1],
        Some(_) => {
            truncated = true;
            kept
        }
        None => kept,
    };
    if body.is_empty() && kept.is_empty() {
        return (Vec::new(), truncated);
    }
    (body.split(|&b| b == 0).map(perfkit_model::escape_bytes).collect(), truncated)
}

pub(crate) fn exec_part(bytes: &[u8]) -> Option<ExecPart> {
    let kind: u32 = record(bytes)?;
    match kind {
        EXEC_ARGS_EVENT => {
            let e: RawExecArgs = record(bytes)?;
            let n = (e.argc as usize).min(EXEC_ARGS);
            let readable = |i: usize| e.unreadable & (1 << i) == 0;
            Some(ExecPart::Args(ExecEvent {
                ts_ns: e.ts_ns,
                pid: e.pid,
                ppid: e.ppid,
                uid: e.uid,
                comm: comm(&e.comm),
                path: readable(0).then(|| text(&e.args[0])),
                args: (1..=n).map(|i| readable(i).then(|| text(&e.args[i]))).collect(),
                path_truncated: e.truncated & 1 != 0,
                args_truncated: e.argc as usize > EXEC_ARGS || e.truncated & !1 != 0,
                ret: 0,
            }))
        }
        EXEC_IMAGE_EVENT => {
            let e: RawExecArgs = record(bytes)?;
            // SAFETY: `args[1..]` is EXEC_IMAGE_ARGS contiguous bytes of
            // the record (an array of byte arrays has no padding).
            let block: &[u8] =
                unsafe { std::slice::from_raw_parts(e.args[1..].as_ptr().cast::<u8>(), tools::EXEC_IMAGE_ARGS) };
            Some(ExecPart::Image {
                pid: e.pid,
                path: (e.unreadable & 1 == 0).then(|| text(&e.args[0])),
                path_truncated: e.truncated & 1 != 0,
                args: (e.unreadable & 2 == 0).then(|| split_argv(block, e.argc as usize)),
            })
        }
        EXEC_RET_EVENT => {
            let e: ExecRetEvent = record(bytes)?;
            Some(ExecPart::Ret { pid: e.pid, ret: e.ret, ts_ns: e.ts_ns, comm: comm(&e.comm) })
        }
        _ => None,
    }
}

/// Joins each exec's arguments with its new image and its result;
/// arguments still waiting for theirs stay in `pending` (bounded: the
/// oldest go when it grows).
pub(crate) fn join_execs(pending: &mut HashMap<u32, ExecEvent>, parts: Vec<ExecPart>) -> Vec<ExecEvent> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            ExecPart::Args(e) => {
                if pending.len() >= 4096 {
                    pending.clear();
                }
                pending.insert(e.pid, e);
            }
            ExecPart::Image { pid, path, path_truncated, args } => {
                // The entry record was seen: the image's path and argv
                // replace what the caller's memory gave, where read.
                if let Some(e) = pending.get_mut(&pid) {
                    if path.is_some() {
                        e.path = path;
                        e.path_truncated = path_truncated;
                    }
                    if let Some((args, truncated)) = args {
                        e.args = args.into_iter().map(Some).collect();
                        e.args_truncated = truncated;
                    }
                }
            }
            ExecPart::Ret { pid, ret, ts_ns, comm } => {
                if let Some(mut e) = pending.remove(&pid) {
                    e.ret = ret;
                    e.ts_ns = ts_ns;
                    if ret == 0 {
                        e.comm = comm;
                    }
                    out.push(e);
                }
            }
        }
    }
    out
}

/// One open (opensnoop).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OpenEvent {
    /// When it returned, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// User.
    pub uid: u32,
    /// Its name.
    pub comm: String,
    /// The path as passed.
    pub path: String,
    /// The open flags (`O_*`).
    pub flags: u64,
    /// The file descriptor, or a negative errno.
    pub ret: i32,
}

pub(crate) fn open_event(bytes: &[u8]) -> Option<OpenEvent> {
    let e: RawOpen = record(bytes)?;
    Some(OpenEvent {
        ts_ns: e.ts_ns,
        pid: e.pid,
        tid: e.tid,
        uid: e.uid,
        comm: comm(&e.comm),
        path: text(&e.path),
        flags: e.flags,
        ret: e.ret,
    })
}

pub(super) fn address(family: u16, bytes: &[u8; 16]) -> IpAddr {
    if family == 2 { IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]) } else { IpAddr::from(*bytes) }
}

/// One closed TCP session (tcplife).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TcpSession {
    /// Closed at, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The owning process (0: unknown, such as a connection never
    /// accepted).
    pub pid: u32,
    /// Its name.
    pub comm: String,
    /// Local address.
    pub local: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address.
    pub remote: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent (and acknowledged).
    pub tx_bytes: u64,
    /// Lifetime, nanoseconds.
    pub duration_ns: u64,
}

pub(crate) fn tcp_session(bytes: &[u8]) -> Option<TcpSession> {
    let e: TcpLifeEvent = record(bytes)?;
    Some(TcpSession {
        ts_ns: e.ts_ns,
        pid: e.pid,
        comm: comm(&e.comm),
        local: address(e.family, &e.saddr),
        local_port: e.sport,
        remote: address(e.family, &e.daddr),
        remote_port: e.dport,
        rx_bytes: e.rx_bytes,
        tx_bytes: e.tx_bytes,
        duration_ns: e.duration_ns,
    })
}

/// One TCP retransmission: an skb of one or more segments, or a failed
/// attempt (tcpretrans).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Retransmit {
    /// When, CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The process running then (often 0: a timer).
    pub pid: u32,
    /// Local address.
    pub local: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address.
    pub remote: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// The TCP state (`ESTABLISHED`...).
    pub state: &'static str,
    /// Segments retransmitted (`tcp_skb_pcount()`: a TSO skb carries
    /// many).
    pub segments: u32,
    /// 0, or the negative errno of a failed attempt (nothing was sent;
    /// kernels that trace failed attempts only).
    pub error: i32,
}

pub(crate) fn retransmit(bytes: &[u8]) -> Option<Retransmit> {
    let e: TcpRetransEvent = record(bytes)?;
    Some(Retransmit {
        ts_ns: e.ts_ns,
        pid: e.pid,
        local: address(e.family, &e.saddr),
        local_port: e.sport,
        remote: address(e.family, &e.daddr),
        remote_port: e.dport,
        state: tcp_state_name(e.state),
        segments: e.segs,
        error: e.err,
    })
}

/// The name of a TCP state, as tcpretrans prints it.
pub fn tcp_state_name(state: u32) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

const _: () = assert!(tools::EXEC_ARG_LEN >= 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_arguments_join_their_result() {
        let mut pending = HashMap::new();
        let args = ExecEvent {
            ts_ns: 1,
            pid: 7,
            ppid: 1,
            uid: 0,
            comm: "sh".into(),
            path: None,
            args: vec![None, Some("x".into())],
            path_truncated: false,
            args_truncated: false,
            ret: 0,
        };
        let out = join_execs(&mut pending, vec![ExecPart::Args(args)]);
        assert!(out.is_empty());
        // The new image gives what the caller's memory did not.
        let image = ExecPart::Image {
            pid: 7,
            path: Some("/usr/bin/true".into()),
            path_truncated: false,
            args: Some(split_argv(b"true\0x\0", 7)),
        };
        let out =
            join_execs(&mut pending, vec![image, ExecPart::Ret { pid: 7, ret: 0, ts_ns: 2, comm: "true".into() }]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].comm, "true");
        assert_eq!(out[0].path.as_deref(), Some("/usr/bin/true"));
        assert_eq!(out[0].args, [Some("true".to_string()), Some("x".to_string())]);
        assert!(!out[0].args_truncated);
        assert!(pending.is_empty());
        // A result without its arguments (begun before the tool) is
        // dropped.
        assert!(
            join_execs(&mut pending, vec![ExecPart::Ret { pid: 9, ret: -2, ts_ns: 3, comm: String::new() }]).is_empty()
        );
    }

    #[test]
    fn argv_blocks_split_and_say_when_cut() {
        assert_eq!(split_argv(b"a\0\0bc\0", 6), (vec!["a".to_string(), String::new(), "bc".to_string()], false));
        // Cut inside an argument, or more bytes than kept.
        assert_eq!(split_argv(b"a\0bc", 5), (vec!["a".to_string(), "bc".to_string()], true));
        assert_eq!(split_argv(b"a\0", 300), (vec!["a".to_string()], true));
        assert_eq!(split_argv(b"", 0), (Vec::new(), false));
    }

    #[test]
    fn short_records_are_ignored_and_addresses_decode() {
        assert!(open_event(&[0u8; 8]).is_none());
        assert_eq!(address(2, &[127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).to_string(), "127.0.0.1");
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(address(10, &v6).to_string(), "::1");
        assert_eq!(kernel_dev((7 << 20) | 3), (7, 3));
    }
}
