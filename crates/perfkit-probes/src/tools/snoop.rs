//! The snooping tools' output: each event as a line in bcc's layout (with
//! its heading), or as the JSON object docs/JSON.md describes, and the
//! counts some of them print at the end (tcpconnect `-c`, tcpretrans
//! `-c`).
//!
//! A tool's layout is a small options struct (the columns bcc's flags
//! add) with `write_heading` and `write`; its JSON object is a type that
//! borrows the event, to be wrapped in [`EventJson`](super::text::EventJson)
//! (which adds `schema_version` and `time_s`). Text lines escape the names
//! and paths they print ([`printable`]); JSON keeps them as the event has
//! them. What needs the machine (a disk's name, a process's name from
//! /proc, /proc/loadavg, the clock time) is given by the caller.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    net::IpAddr,
};

use perfkit_model::printable;
use serde::Serialize;

use super::{
    BlockEvent, CapCheck, ExecEvent, MountCall, OomKill, OpenEvent, RetransCount, Retransmit, TcpOpen, TcpSession,
    capability_name, mount_flags_text,
    text::{SCHEMA_VERSION, TimeColumns, round3},
    umount_flags_text,
};

/// When an event is written: seconds since the tool started, and the
/// clock time's text (`HH:MM:SS`), asked for only by the layouts that show
/// it.
#[derive(Clone, Copy)]
pub struct Stamp<'a> {
    /// Seconds since the start.
    pub t: f64,
    /// The clock time's text.
    pub clock: &'a dyn Fn() -> String,
}

impl Stamp<'_> {
    fn columns(&self, time: &TimeColumns) -> String {
        time.columns(self.t, self.clock)
    }
}

/// `4` or `6`.
pub fn ip_version(a: &IpAddr) -> u8 {
    if a.is_ipv4() { 4 } else { 6 }
}

/// A column of width 6 for a UID, or nothing.
fn uid_column(shown: bool, uid: impl std::fmt::Display) -> String {
    if shown { format!("{uid:<6} ") } else { String::new() }
}

/// The text of an errno (`Permission denied`), as the C library has it.
fn errno_message(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// A negative errno as bcc writes a result (`-EPERM`), or the number.
pub fn errno_text(ret: i32) -> String {
    const NAMES: [&str; 41] = [
        "0",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
    ];
    match usize::try_from(-(ret as i64)) {
        Ok(n) if n > 0 && n < NAMES.len() => format!("-{}", NAMES[n]),
        _ => ret.to_string(),
    }
}

// biosnoop

/// biosnoop's layout: `-Q` adds the time queued in the OS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockLayout {
    /// The QUE(ms) column.
    pub queued: bool,
}

impl BlockLayout {
    /// The layout, with or without the queued column.
    pub fn new(queued: bool) -> Self {
        Self { queued }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let queued = if self.queued { format!("{:>7} ", "QUE(ms)") } else { String::new() };
        writeln!(
            out,
            "{:<11} {:<14} {:>7} {:<7} {:<1} {:>10} {:>7} {queued}{:>7}",
            "TIME(s)", "COMM", "PID", "DISK", "T", "SECTOR", "BYTES", "LAT(ms)"
        )
    }

    /// Writes `e`, completed `t` seconds after the start, on `disk` (its
    /// name: [`disk_name`](super::disk_name)).
    pub fn write(&self, out: &mut dyn Write, e: &BlockEvent, disk: &str, t: f64) -> io::Result<()> {
        let op = e.rwbs.chars().find(|c| matches!(c, 'R' | 'W' | 'D' | 'F' | 'N')).unwrap_or('?');
        let queued = if self.queued { format!("{:>7.2} ", e.queued_ns as f64 / 1e6) } else { String::new() };
        writeln!(
            out,
            "{t:<11.6} {:<14} {:>7} {:<7} {op:<1} {:>10} {:>7} {queued}{:>7.2}",
            printable(&e.comm),
            e.pid,
            printable(disk),
            e.sector,
            e.bytes,
            e.latency_ns as f64 / 1e6
        )
    }
}

/// A block I/O as biosnoop's JSON object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockJson<'a> {
    /// Bytes.
    pub bytes: u32,
    /// The issuing process's name.
    pub comm: &'a str,
    /// `major:minor`.
    pub device: String,
    /// The disk's name.
    pub disk: &'a str,
    /// 0 or a negative errno.
    pub error: i32,
    /// Issue to completion, milliseconds.
    pub latency_ms: f64,
    /// The kernel's rwbs (`W`, `RS`...).
    pub op: &'a str,
    /// The issuing process.
    pub pid: u32,
    /// Time in the OS queue, milliseconds.
    pub queued_ms: f64,
    /// First sector.
    pub sector: u64,
}

impl<'a> BlockJson<'a> {
    /// `e` on `disk`.
    pub fn new(e: &'a BlockEvent, disk: &'a str) -> Self {
        Self {
            bytes: e.bytes,
            comm: &e.comm,
            device: format!("{}:{}", e.major, e.minor),
            disk,
            error: e.error,
            latency_ms: round3(e.latency_ns as f64 / 1e6),
            op: &e.rwbs,
            pid: e.pid,
            queued_ms: round3(e.queued_ns as f64 / 1e6),
            sector: e.sector,
        }
    }
}

// execsnoop

/// execsnoop's layout: time columns, `-U`'s UID column, `-q`'s quotes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecLayout {
    /// The time columns.
    pub time: TimeColumns,
    /// A UID column.
    pub uid: bool,
    /// Each argument in double quotes.
    pub quote: bool,
}

impl ExecLayout {
    /// The layout with these columns.
    pub fn new(time: TimeColumns, uid: bool, quote: bool) -> Self {
        Self { time, uid, quote }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let uid = uid_column(self.uid, "UID");
        writeln!(out, "{}{uid}{:<16} {:>7} {:>7} {:>4} ARGS", self.time.heading(), "PCOMM", "PID", "PPID", "RET")
    }

    /// The ARGS column: an argument that could not be read is said
    /// (`[unreadable]`), never shown empty; ` ...` ends a cut list.
    pub fn args(&self, e: &ExecEvent) -> String {
        let shown = |a: &Option<String>| {
            let a = a.as_deref().unwrap_or("[unreadable]");
            if self.quote { format!("\"{}\"", a.replace('"', "\\\"")) } else { a.to_owned() }
        };
        let mut line = e.args.iter().map(shown).collect::<Vec<_>>().join(" ");
        if e.args.is_empty() && e.path.is_none() {
            line.push_str("[unreadable]");
        }
        if e.args_truncated {
            line.push_str(" ...");
        }
        line
    }

    /// Writes `e`.
    pub fn write(&self, out: &mut dyn Write, e: &ExecEvent, at: Stamp) -> io::Result<()> {
        writeln!(
            out,
            "{}{}{:<16} {:>7} {:>7} {:>4} {}",
            at.columns(&self.time),
            uid_column(self.uid, e.uid),
            printable(&e.comm),
            e.pid,
            e.ppid,
            e.ret,
            printable(&self.args(e))
        )
    }
}

/// An exec as execsnoop's JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecJson<'a> {
    /// argv, `argv[0]` first; `null` for one that could not be read.
    pub args: &'a [Option<String>],
    /// An argument was cut, or more were passed than kept.
    pub args_truncated: bool,
    /// The name after the exec.
    pub comm: &'a str,
    /// The program.
    pub path: Option<&'a str>,
    /// The path was cut.
    pub path_truncated: bool,
    /// The process.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// 0 or a negative errno.
    pub ret: i32,
    /// Its user.
    pub uid: u32,
}

impl<'a> ExecJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a ExecEvent) -> Self {
        Self {
            args: &e.args,
            args_truncated: e.args_truncated,
            comm: &e.comm,
            path: e.path.as_deref(),
            path_truncated: e.path_truncated,
            pid: e.pid,
            ppid: e.ppid,
            ret: e.ret,
            uid: e.uid,
        }
    }
}

// opensnoop

/// opensnoop's layout: time columns, `-U`'s UID column, `-e`'s flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenLayout {
    /// The time columns.
    pub time: TimeColumns,
    /// A UID column.
    pub uid: bool,
    /// A FLAGS column (octal).
    pub flags: bool,
}

impl OpenLayout {
    /// The layout with these columns.
    pub fn new(time: TimeColumns, uid: bool, flags: bool) -> Self {
        Self { time, uid, flags }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let flags = if self.flags { format!("{:<8} ", "FLAGS") } else { String::new() };
        let uid = uid_column(self.uid, "UID");
        writeln!(out, "{}{uid}{:>7} {:<16} {:>4} {:>3} {flags}PATH", self.time.heading(), "PID", "COMM", "FD", "ERR")
    }

    /// Writes `e`.
    pub fn write(&self, out: &mut dyn Write, e: &OpenEvent, at: Stamp) -> io::Result<()> {
        let (fd, err) = fd_errno(e.ret);
        let flags = if self.flags { format!("{:08o} ", e.flags) } else { String::new() };
        writeln!(
            out,
            "{}{}{:>7} {:<16} {fd:>4} {err:>3} {flags}{}",
            at.columns(&self.time),
            uid_column(self.uid, e.uid),
            e.pid,
            printable(&e.comm),
            printable(&e.path)
        )
    }
}

/// A return value as (file descriptor or -1, errno or 0).
fn fd_errno(ret: i32) -> (i32, i32) {
    if ret >= 0 { (ret, 0) } else { (-1, ret.saturating_neg()) }
}

/// An open as opensnoop's JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenJson<'a> {
    /// The process's name.
    pub comm: &'a str,
    /// 0 or the errno.
    pub errno: i32,
    /// The errno's text.
    pub error: Option<String>,
    /// The file descriptor, -1 on failure.
    pub fd: i32,
    /// The open flags.
    pub flags: u64,
    /// The path as passed.
    pub path: &'a str,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// User.
    pub uid: u32,
}

impl<'a> OpenJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a OpenEvent) -> Self {
        let (fd, errno) = fd_errno(e.ret);
        Self {
            comm: &e.comm,
            errno,
            error: (errno != 0).then(|| errno_message(errno)),
            fd,
            flags: e.flags,
            path: &e.path,
            pid: e.pid,
            tid: e.tid,
            uid: e.uid,
        }
    }
}

// tcplife

/// tcplife's layout: time columns, `-w`'s wide address columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionLayout {
    /// The time columns.
    pub time: TimeColumns,
    /// Address columns wide enough for IPv6 (39, not 15).
    pub wide: bool,
}

impl SessionLayout {
    /// The layout with these columns.
    pub fn new(time: TimeColumns, wide: bool) -> Self {
        Self { time, wide }
    }

    fn width(&self) -> usize {
        if self.wide { 39 } else { 15 }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let w = self.width();
        writeln!(
            out,
            "{}{:>7} {:<12} {:<w$} {:>5} {:<w$} {:>5} {:>8} {:>8} {:>9}",
            self.time.heading(),
            "PID",
            "COMM",
            "LADDR",
            "LPORT",
            "RADDR",
            "RPORT",
            "TX_KB",
            "RX_KB",
            "MS"
        )
    }

    /// Writes `e`.
    pub fn write(&self, out: &mut dyn Write, e: &TcpSession, at: Stamp) -> io::Result<()> {
        let w = self.width();
        writeln!(
            out,
            "{}{:>7} {:<12} {:<w$} {:>5} {:<w$} {:>5} {:>8} {:>8} {:>9.2}",
            at.columns(&self.time),
            e.pid,
            printable(&e.comm),
            e.local,
            e.local_port,
            e.remote,
            e.remote_port,
            e.tx_bytes / 1024,
            e.rx_bytes / 1024,
            e.duration_ns as f64 / 1e6
        )
    }
}

/// A TCP session as tcplife's JSON object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionJson<'a> {
    /// The owner's name.
    pub comm: &'a str,
    /// Lifetime, milliseconds.
    pub duration_ms: f64,
    /// Local address.
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// The owner.
    pub pid: u32,
    /// Remote address.
    pub remote_addr: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

impl<'a> SessionJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a TcpSession) -> Self {
        Self {
            comm: &e.comm,
            duration_ms: round3(e.duration_ns as f64 / 1e6),
            local_addr: e.local,
            local_port: e.local_port,
            pid: e.pid,
            remote_addr: e.remote,
            remote_port: e.remote_port,
            rx_bytes: e.rx_bytes,
            tx_bytes: e.tx_bytes,
        }
    }
}

// tcpretrans

/// `ADDR:PORT`.
fn endpoint(a: &IpAddr, port: u16) -> String {
    format!("{a}:{port}")
}

/// Writes tcpretrans's heading line.
pub fn write_retransmit_heading(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<9} {:>7} {:>2} {:<21} {:>2} {:<21} STATE",
        "TIME(s)", "PID", "IP", "LADDR:LPORT", "T>", "RADDR:RPORT"
    )
}

/// Writes a retransmission, `t` seconds after the start: `R>` for one
/// retransmitted, `F>` for an attempt that failed (sent nothing).
pub fn write_retransmit(out: &mut dyn Write, e: &Retransmit, t: f64) -> io::Result<()> {
    let kind = if e.error == 0 { "R>" } else { "F>" };
    writeln!(
        out,
        "{t:<9.3} {:>7} {:>2} {:<21} {kind} {:<21} {}",
        e.pid,
        ip_version(&e.local),
        endpoint(&e.local, e.local_port),
        endpoint(&e.remote, e.remote_port),
        e.state
    )
}

/// A retransmission as tcpretrans's JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetransmitJson {
    /// 0 or the negative errno of a failed attempt.
    pub error: i32,
    /// Local address.
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// The process running then.
    pub pid: u32,
    /// Remote address.
    pub remote_addr: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Segments.
    pub segments: u32,
    /// The TCP state.
    pub state: &'static str,
}

impl RetransmitJson {
    /// `e` as JSON.
    pub fn new(e: &Retransmit) -> Self {
        Self {
            error: e.error,
            local_addr: e.local,
            local_port: e.local_port,
            pid: e.pid,
            remote_addr: e.remote,
            remote_port: e.remote_port,
            segments: e.segments,
            state: e.state,
        }
    }
}

/// tcpretrans `-c`: the retransmissions that sent something, by flow (as
/// bcc's `-c`), and the kernel's counts by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetransFlows {
    flows: BTreeMap<(String, String), u64>,
}

impl RetransFlows {
    /// No flow yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `e` if it sent something.
    pub fn add(&mut self, e: &Retransmit) {
        if e.error == 0 {
            let flow = (endpoint(&e.local, e.local_port), endpoint(&e.remote, e.remote_port));
            *self.flows.entry(flow).or_default() += 1;
        }
    }

    /// Writes the flows, then `by_state`, as tables.
    pub fn write(&self, out: &mut dyn Write, by_state: &[RetransCount]) -> io::Result<()> {
        writeln!(out, "{:<25} {:<25} RETRANSMITS", "LADDR:LPORT", "RADDR:RPORT")?;
        for ((l, r), n) in &self.flows {
            writeln!(out, "{l:<25} {r:<25} {n}")?;
        }
        writeln!(out)?;
        writeln!(out, "{:<14} {:>8} {:>8} {:>8}", "STATE", "RETRANS", "SEGS", "FAILED")?;
        for c in by_state {
            writeln!(out, "{:<14} {:>8} {:>8} {:>8}", c.state, c.retransmissions, c.segments, c.failed)?;
        }
        Ok(())
    }

    /// The flows and `by_state` as one JSON document.
    pub fn json<'a>(&'a self, by_state: &'a [RetransCount]) -> RetransCountsJson<'a> {
        RetransCountsJson {
            by_flow: self
                .flows
                .iter()
                .map(|((local, remote), &retransmissions)| FlowJson { local, remote, retransmissions })
                .collect(),
            by_state: by_state
                .iter()
                .map(|c| {
                    let v = StateJson {
                        failed: c.failed,
                        failed_segments: c.failed_segments,
                        retransmissions: c.retransmissions,
                        segments: c.segments,
                    };
                    (c.state, v)
                })
                .collect(),
            schema_version: SCHEMA_VERSION,
            tool: "tcpretrans",
        }
    }
}

/// One flow of [`RetransCountsJson`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowJson<'a> {
    /// `ADDR:PORT`.
    pub local: &'a str,
    /// `ADDR:PORT`.
    pub remote: &'a str,
    /// Retransmissions that sent something.
    pub retransmissions: u64,
}

/// One state of [`RetransCountsJson`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateJson {
    /// Failed attempts.
    pub failed: u64,
    /// Their segments.
    pub failed_segments: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Their segments.
    pub segments: u64,
}

/// tcpretrans `-c --json`: the document printed at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetransCountsJson<'a> {
    /// By flow.
    pub by_flow: Vec<FlowJson<'a>>,
    /// By TCP state.
    pub by_state: BTreeMap<&'static str, StateJson>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `tcpretrans`.
    pub tool: &'static str,
}

// tcpconnect, tcpaccept

/// tcpconnect's and tcpaccept's layout: time columns, and (tcpconnect's
/// `-U`) a UID column. A connect has no local port (chosen after the
/// moment traced); an accept shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpOpenLayout {
    /// The time columns.
    pub time: TimeColumns,
    /// A UID column.
    pub uid: bool,
}

impl TcpOpenLayout {
    /// The layout with these columns.
    pub fn new(time: TimeColumns, uid: bool) -> Self {
        Self { time, uid }
    }

    /// Writes tcpconnect's heading line.
    pub fn write_connect_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let uid = uid_column(self.uid, "UID");
        writeln!(
            out,
            "{}{uid}{:<7} {:<12} {:<2} {:<16} {:<16} {:<6}",
            self.time.heading(),
            "PID",
            "COMM",
            "IP",
            "SADDR",
            "DADDR",
            "DPORT"
        )
    }

    /// Writes a connect.
    pub fn write_connect(&self, out: &mut dyn Write, e: &TcpOpen, at: Stamp) -> io::Result<()> {
        writeln!(
            out,
            "{}{}{:<7} {:<12} {:<2} {:<16} {:<16} {:<6}",
            at.columns(&self.time),
            uid_column(self.uid, e.uid),
            e.pid,
            printable(&e.comm),
            ip_version(&e.local),
            e.local,
            e.remote,
            e.remote_port
        )
    }

    /// Writes tcpaccept's heading line.
    pub fn write_accept_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{}{}{:<7} {:<12} {:<2} {:<16} {:<5} {:<16} {:<5}",
            self.time.heading(),
            uid_column(self.uid, "UID"),
            "PID",
            "COMM",
            "IP",
            "RADDR",
            "RPORT",
            "LADDR",
            "LPORT"
        )
    }

    /// Writes an accept.
    pub fn write_accept(&self, out: &mut dyn Write, e: &TcpOpen, at: Stamp) -> io::Result<()> {
        writeln!(
            out,
            "{}{}{:<7} {:<12} {:<2} {:<16} {:<5} {:<16} {:<5}",
            at.columns(&self.time),
            uid_column(self.uid, e.uid),
            e.pid,
            printable(&e.comm),
            ip_version(&e.local),
            e.remote,
            e.remote_port,
            e.local,
            e.local_port
        )
    }
}

/// A connect as tcpconnect's JSON object (no local port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectJson<'a> {
    /// The connecting process's name.
    pub comm: &'a str,
    /// 4 or 6.
    pub ip: u8,
    /// Local address.
    pub local_addr: IpAddr,
    /// Process.
    pub pid: u32,
    /// Remote address.
    pub remote_addr: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Thread.
    pub tid: u32,
    /// User.
    pub uid: u32,
}

impl<'a> ConnectJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a TcpOpen) -> Self {
        Self {
            comm: &e.comm,
            ip: ip_version(&e.local),
            local_addr: e.local,
            pid: e.pid,
            remote_addr: e.remote,
            remote_port: e.remote_port,
            tid: e.tid,
            uid: e.uid,
        }
    }
}

/// An accept as tcpaccept's JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AcceptJson<'a> {
    /// The accepting process's name.
    pub comm: &'a str,
    /// 4 or 6.
    pub ip: u8,
    /// Local address.
    pub local_addr: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Process.
    pub pid: u32,
    /// Remote address.
    pub remote_addr: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Thread.
    pub tid: u32,
    /// User.
    pub uid: u32,
}

impl<'a> AcceptJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a TcpOpen) -> Self {
        Self {
            comm: &e.comm,
            ip: ip_version(&e.local),
            local_addr: e.local,
            local_port: e.local_port,
            pid: e.pid,
            remote_addr: e.remote,
            remote_port: e.remote_port,
            tid: e.tid,
            uid: e.uid,
        }
    }
}

/// tcpconnect `-c`: connects by local address, remote address and port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectCounts {
    counts: BTreeMap<(IpAddr, IpAddr, u16), u64>,
}

/// One row of [`ConnectCountsJson`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectCountJson {
    /// Connects.
    pub connects: u64,
    /// Local address.
    pub local_addr: IpAddr,
    /// Remote address.
    pub remote_addr: IpAddr,
    /// Remote port.
    pub remote_port: u16,
}

/// tcpconnect `-c --json`: the document printed at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectCountsJson {
    /// The rows, by address and port.
    pub counts: Vec<ConnectCountJson>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `tcpconnect`.
    pub tool: &'static str,
}

impl ConnectCounts {
    /// No connect yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `e`.
    pub fn add(&mut self, e: &TcpOpen) {
        *self.counts.entry((e.local, e.remote, e.remote_port)).or_default() += 1;
    }

    /// Writes the counts as bcc's table.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{:<25} {:<25} {:<20} {:<10}", "LADDR", "RADDR", "RPORT", "CONNECTS")?;
        for ((l, r, p), n) in &self.counts {
            writeln!(out, "{:<25} {:<25} {:<20} {:<10}", l.to_string(), r.to_string(), p, n)?;
        }
        Ok(())
    }

    /// The counts as a JSON document.
    pub fn json(&self) -> ConnectCountsJson {
        let counts = self
            .counts
            .iter()
            .map(|(&(local_addr, remote_addr, remote_port), &connects)| ConnectCountJson {
                connects,
                local_addr,
                remote_addr,
                remote_port,
            })
            .collect();
        ConnectCountsJson { counts, schema_version: SCHEMA_VERSION, tool: "tcpconnect" }
    }
}

// oomkill

/// An OOM kill with what only the machine can add: the victim's name
/// (from /proc when the kernel's record lacks it), the page size, and
/// /proc/loadavg's text.
#[derive(Clone, Copy, Debug)]
pub struct OomKillSeen<'a> {
    /// The kill.
    pub kill: &'a OomKill,
    /// The victim's name, if known.
    pub victim_comm: Option<&'a str>,
    /// The page size in kB.
    pub page_kb: u64,
    /// /proc/loadavg's text.
    pub loadavg: &'a str,
}

impl<'a> OomKillSeen<'a> {
    /// The victim's size in pages, if the record has it.
    pub fn total_vm_pages(&self) -> Option<u64> {
        self.kill.total_vm_kb.map(|kb| kb / self.page_kb.max(1))
    }

    /// Writes oomkill's line (bcc's: after the time columns, the clock
    /// time, who triggered the kill, who was killed, its size).
    pub fn write(&self, out: &mut dyn Write, time: &TimeColumns, at: Stamp) -> io::Result<()> {
        let e = self.kill;
        let pages = self.total_vm_pages().map_or_else(|| "? pages".to_owned(), |p| format!("{p} pages"));
        writeln!(
            out,
            "{}{} Triggered by PID {} (\"{}\"), OOM kill of PID {} (\"{}\"), {pages}, loadavg: {}",
            at.columns(time),
            (at.clock)(),
            e.trigger_pid,
            printable(&e.trigger_comm),
            e.victim_pid,
            printable(self.victim_comm.unwrap_or("?")),
            printable(self.loadavg)
        )
    }

    /// As oomkill's JSON object.
    pub fn json(&self) -> OomKillJson<'a> {
        let e = self.kill;
        OomKillJson {
            anon_rss_kb: e.anon_rss_kb,
            file_rss_kb: e.file_rss_kb,
            loadavg: self.loadavg,
            shmem_rss_kb: e.shmem_rss_kb,
            total_vm_kb: e.total_vm_kb,
            total_vm_pages: self.total_vm_pages(),
            trigger_comm: &e.trigger_comm,
            trigger_pid: e.trigger_pid,
            victim_comm: self.victim_comm,
            victim_pid: e.victim_pid,
        }
    }
}

/// An OOM kill as oomkill's JSON object (sizes `null` when the kernel's
/// record lacks them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OomKillJson<'a> {
    /// Anonymous resident memory, kB.
    pub anon_rss_kb: Option<u64>,
    /// File-backed resident memory, kB.
    pub file_rss_kb: Option<u64>,
    /// /proc/loadavg's text.
    pub loadavg: &'a str,
    /// Shared-memory resident memory, kB.
    pub shmem_rss_kb: Option<u64>,
    /// Virtual memory, kB.
    pub total_vm_kb: Option<u64>,
    /// Virtual memory, pages.
    pub total_vm_pages: Option<u64>,
    /// The name of the process whose allocation triggered the kill.
    pub trigger_comm: &'a str,
    /// That process.
    pub trigger_pid: u32,
    /// The victim's name, if known.
    pub victim_comm: Option<&'a str>,
    /// The victim.
    pub victim_pid: u32,
}

// mountsnoop

/// `"text"`, escaped.
fn quoted(s: &str) -> String {
    format!("\"{}\"", printable(s))
}

/// The flags of `e` named (`MS_NOSUID|MS_NODEV`, `MNT_DETACH`).
fn call_flags(e: &MountCall) -> String {
    if e.umount { umount_flags_text(e.flags) } else { mount_flags_text(e.flags) }
}

/// mountsnoop's layout: time columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountLayout {
    /// The time columns.
    pub time: TimeColumns,
}

impl MountLayout {
    /// The layout with these time columns.
    pub fn new(time: TimeColumns) -> Self {
        Self { time }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}{:<16} {:<7} {:<7} {:<11} CALL", self.time.heading(), "COMM", "PID", "TID", "MNT_NS")
    }

    /// The CALL column, as strace writes the call
    /// (`mount("none", "/mnt", "tmpfs", MS_NOSUID, "") = 0`).
    pub fn call(e: &MountCall) -> String {
        let flags = call_flags(e);
        if e.umount {
            format!("umount({}, {flags}) = {}", quoted(&e.source), errno_text(e.ret))
        } else {
            format!(
                "mount({}, {}, {}, {flags}, {}) = {}",
                quoted(&e.source),
                quoted(&e.target),
                quoted(&e.fstype),
                quoted(&e.data),
                errno_text(e.ret)
            )
        }
    }

    /// Writes `e`.
    pub fn write(&self, out: &mut dyn Write, e: &MountCall, at: Stamp) -> io::Result<()> {
        writeln!(
            out,
            "{}{:<16} {:<7} {:<7} {:<11} {}",
            at.columns(&self.time),
            printable(&e.comm),
            e.pid,
            e.tid,
            e.mnt_ns,
            Self::call(e)
        )
    }
}

/// A mount or umount as mountsnoop's JSON object: `source`, `fstype` and
/// `data` for a mount only; an umount's `target` is its one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MountJson<'a> {
    /// `mount` or `umount`.
    pub call: &'static str,
    /// The caller's name.
    pub comm: &'a str,
    /// mount: the data (options).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a str>,
    /// The errno's text, if it failed.
    pub error: Option<String>,
    /// The flags, as a number.
    pub flags: u64,
    /// The flags named.
    pub flags_text: String,
    /// mount: the file system type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstype: Option<&'a str>,
    /// The caller's mount namespace.
    pub mnt_ns: u32,
    /// Process.
    pub pid: u32,
    /// 0 or the negative errno.
    pub ret: i32,
    /// mount: the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'a str>,
    /// The target.
    pub target: &'a str,
    /// Thread.
    pub tid: u32,
}

impl<'a> MountJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a MountCall) -> Self {
        let mount = |s: &'a str| (!e.umount).then_some(s);
        Self {
            call: if e.umount { "umount" } else { "mount" },
            comm: &e.comm,
            data: mount(&e.data),
            error: (e.ret < 0).then(|| errno_message(e.ret.saturating_neg())),
            flags: e.flags,
            flags_text: call_flags(e),
            fstype: mount(&e.fstype),
            mnt_ns: e.mnt_ns,
            pid: e.pid,
            ret: e.ret,
            source: mount(&e.source),
            target: if e.umount { &e.source } else { &e.target },
            tid: e.tid,
        }
    }
}

// capable

/// capable's layout: time columns, and `-x`'s TID and INSETID columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapLayout {
    /// The time columns (before bcc's own TIME).
    pub time: TimeColumns,
    /// The TID and INSETID columns.
    pub extra: bool,
}

impl CapLayout {
    /// The layout with these columns.
    pub fn new(time: TimeColumns, extra: bool) -> Self {
        Self { time, extra }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let ts = self.time.heading();
        if self.extra {
            writeln!(
                out,
                "{ts}{:<9} {:<6} {:<7} {:<7} {:<16} {:<4} {:<20} {:<6} INSETID",
                "TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME", "AUDIT"
            )
        } else {
            writeln!(
                out,
                "{ts}{:<9} {:<6} {:<7} {:<16} {:<4} {:<20} AUDIT",
                "TIME", "UID", "PID", "COMM", "CAP", "NAME"
            )
        }
    }

    /// Writes `e` (bcc's TIME column is the clock time).
    pub fn write(&self, out: &mut dyn Write, e: &CapCheck, at: Stamp) -> io::Result<()> {
        let ts = at.columns(&self.time);
        let hms = (at.clock)();
        let name = capability_name(e.cap);
        let comm = printable(&e.comm);
        if self.extra {
            writeln!(
                out,
                "{ts}{hms:<9} {:<6} {:<7} {:<7} {comm:<16} {:<4} {name:<20} {:<6} {}",
                e.uid,
                e.pid,
                e.tid,
                e.cap,
                u8::from(e.audit),
                u8::from(e.insetid)
            )
        } else {
            writeln!(
                out,
                "{ts}{hms:<9} {:<6} {:<7} {comm:<16} {:<4} {name:<20} {}",
                e.uid,
                e.pid,
                e.cap,
                u8::from(e.audit)
            )
        }
    }
}

/// A capability check as capable's JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CapJson<'a> {
    /// Audited.
    pub audit: bool,
    /// The capability's number.
    pub cap: i32,
    /// The process's name.
    pub comm: &'a str,
    /// From setid handling.
    pub insetid: bool,
    /// The capability's name (`CAP_SYS_ADMIN`).
    pub name: String,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// User.
    pub uid: u32,
}

impl<'a> CapJson<'a> {
    /// `e` as JSON.
    pub fn new(e: &'a CapCheck) -> Self {
        Self {
            audit: e.audit,
            cap: e.cap,
            comm: &e.comm,
            insetid: e.insetid,
            name: capability_name(e.cap),
            pid: e.pid,
            tid: e.tid,
            uid: e.uid,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::{
        TcpOpenKind,
        text::{EventJson, written as text},
    };

    /// The line of an event as JSON, as the tools print it.
    fn line(event: impl Serialize, t: f64) -> String {
        serde_json::to_string(&EventJson::new(event, t)).unwrap()
    }

    fn clock() -> String {
        "12:34:56".to_owned()
    }

    const AT: Stamp = Stamp { t: 1.5, clock: &clock };
    const BOTH: TimeColumns = TimeColumns { clock: true, seconds: true };

    fn exec() -> ExecEvent {
        ExecEvent {
            ts_ns: 1,
            pid: 10,
            ppid: 1,
            uid: 1000,
            comm: "ls\n".to_owned(),
            path: Some("/bin/ls".to_owned()),
            args: vec![Some("ls".to_owned()), None, Some("a \"b\"".to_owned())],
            path_truncated: false,
            args_truncated: true,
            ret: 0,
        }
    }

    #[test]
    fn errors_are_named_as_bcc_names_them() {
        assert_eq!(errno_text(0), "0");
        assert_eq!(errno_text(-1), "-EPERM");
        assert_eq!(errno_text(-16), "-EBUSY");
        assert_eq!(errno_text(-40), "-ELOOP");
        assert_eq!(errno_text(-95), "-95");
        assert_eq!(errno_text(i32::MIN), i32::MIN.to_string());
    }

    #[test]
    fn exec_lines_say_what_could_not_be_read() {
        let e = exec();
        let layout = ExecLayout::new(BOTH, true, true);
        assert_eq!(
            text(|o| layout.write_heading(o)),
            "TIME     TIME(s)   UID    PCOMM                PID    PPID  RET ARGS\n"
        );
        assert_eq!(
            text(|o| layout.write(o, &e, AT)),
            "12:34:56 1.500     1000   ls\\n                  10       1    0 \"ls\" \"[unreadable]\" \"a \\\"b\\\"\" ...\n"
        );
        let plain = ExecLayout::default();
        assert_eq!(plain.args(&e), "ls [unreadable] a \"b\" ...");
        let nothing = ExecEvent { args: vec![], path: None, args_truncated: false, ..e };
        assert_eq!(plain.args(&nothing), "[unreadable]");
    }

    /// Each JSON object is byte for byte the `json!` object the tools
    /// printed before they were types (keys in order, nulls kept).
    #[test]
    fn json_objects_keep_their_keys_and_order() {
        let e = exec();
        assert_eq!(
            line(ExecJson::new(&e), 1.5),
            line(
                json!({"comm": e.comm, "pid": 10, "ppid": 1, "uid": 1000, "ret": 0, "path": e.path,
                       "path_truncated": false, "args": e.args, "args_truncated": true}),
                1.5
            )
        );
        let open = OpenEvent {
            ts_ns: 0,
            pid: 2,
            tid: 3,
            uid: 0,
            comm: "cat".into(),
            path: "/nope".into(),
            flags: 0o100,
            ret: -2,
        };
        let j = line(OpenJson::new(&open), 0.25);
        assert_eq!(
            j,
            line(
                json!({"pid": 2, "tid": 3, "uid": 0, "comm": "cat", "fd": -1, "errno": 2,
                       "error": "No such file or directory (os error 2)", "flags": 64, "path": "/nope"}),
                0.25
            )
        );
        let ok = OpenEvent { ret: 3, ..open };
        assert!(line(OpenJson::new(&ok), 0.0).contains(r#""errno":0,"error":null,"fd":3"#));

        let local: IpAddr = "10.0.0.1".parse().unwrap();
        let remote: IpAddr = "::1".parse().unwrap();
        let session = TcpSession {
            ts_ns: 0,
            pid: 4,
            comm: "curl".into(),
            local,
            local_port: 4000,
            remote,
            remote_port: 80,
            rx_bytes: 5000,
            tx_bytes: 100,
            duration_ns: 1_234_567,
        };
        assert_eq!(
            line(SessionJson::new(&session), 2.0),
            line(
                json!({"pid": 4, "comm": "curl", "local_addr": "10.0.0.1", "local_port": 4000,
                       "remote_addr": "::1", "remote_port": 80, "tx_bytes": 100, "rx_bytes": 5000,
                       "duration_ms": 1.235}),
                2.0
            )
        );
        let open = TcpOpen {
            ts_ns: 0,
            kind: TcpOpenKind::Accept,
            pid: 5,
            tid: 6,
            uid: 7,
            comm: "srv".into(),
            local,
            local_port: 22,
            remote: local,
            remote_port: 5555,
        };
        assert_eq!(
            line(AcceptJson::new(&open), 0.0),
            line(
                json!({"pid": 5, "tid": 6, "uid": 7, "comm": "srv", "ip": 4, "remote_addr": "10.0.0.1",
                       "remote_port": 5555, "local_addr": "10.0.0.1", "local_port": 22}),
                0.0
            )
        );
        assert_eq!(
            line(ConnectJson::new(&open), 0.0),
            line(
                json!({"pid": 5, "tid": 6, "uid": 7, "comm": "srv", "ip": 4, "local_addr": "10.0.0.1",
                       "remote_addr": "10.0.0.1", "remote_port": 5555}),
                0.0
            )
        );
        let mut counts = ConnectCounts::new();
        counts.add(&open);
        counts.add(&open);
        assert_eq!(
            serde_json::to_string(&counts.json()).unwrap(),
            json!({"schema_version": SCHEMA_VERSION, "tool": "tcpconnect", "counts": [
                {"local_addr": "10.0.0.1", "remote_addr": "10.0.0.1", "remote_port": 5555, "connects": 2}]})
            .to_string()
        );

        let cap =
            CapCheck { ts_ns: 0, pid: 8, tid: 9, uid: 0, comm: "unshare".into(), cap: 21, audit: true, insetid: false };
        assert_eq!(
            line(CapJson::new(&cap), 0.0),
            line(
                json!({"uid": 0, "pid": 8, "tid": 9, "comm": "unshare", "cap": 21, "name": "CAP_SYS_ADMIN",
                       "audit": true, "insetid": false}),
                0.0
            )
        );
    }

    fn mount_call(umount: bool) -> MountCall {
        MountCall {
            ts_ns: 0,
            umount,
            pid: 1,
            tid: 2,
            comm: "mount".into(),
            mnt_ns: 4026531841,
            ret: if umount { -16 } else { 0 },
            flags: if umount { 2 } else { 6 },
            source: "none".into(),
            target: "/mnt".into(),
            fstype: "tmpfs".into(),
            data: "size=1m".into(),
        }
    }

    #[test]
    fn mounts_and_umounts_in_json_and_as_calls() {
        let m = mount_call(false);
        assert_eq!(
            line(MountJson::new(&m), 0.5),
            line(
                json!({"call": "mount", "pid": 1, "tid": 2, "comm": "mount", "mnt_ns": 4026531841u32, "flags": 6,
                       "flags_text": mount_flags_text(6), "ret": 0, "error": null, "source": "none",
                       "target": "/mnt", "fstype": "tmpfs", "data": "size=1m"}),
                0.5
            )
        );
        let u = mount_call(true);
        assert_eq!(
            line(MountJson::new(&u), 0.5),
            line(
                json!({"call": "umount", "pid": 1, "tid": 2, "comm": "mount", "mnt_ns": 4026531841u32, "flags": 2,
                       "flags_text": umount_flags_text(2), "ret": -16,
                       "error": "Device or resource busy (os error 16)", "target": "none"}),
                0.5
            )
        );
        assert_eq!(MountLayout::call(&u), format!("umount(\"none\", {}) = -EBUSY", umount_flags_text(2)));
        assert_eq!(
            MountLayout::call(&m),
            format!("mount(\"none\", \"/mnt\", \"tmpfs\", {}, \"size=1m\") = 0", mount_flags_text(6))
        );
    }

    #[test]
    fn oom_kills_in_pages_and_unknown_sizes_as_null() {
        let kill = OomKill {
            ts_ns: 0,
            trigger_pid: 3,
            trigger_comm: "stress".into(),
            victim_pid: 4,
            victim_comm: None,
            total_vm_kb: Some(8192),
            anon_rss_kb: None,
            file_rss_kb: None,
            shmem_rss_kb: None,
        };
        let seen = OomKillSeen { kill: &kill, victim_comm: Some("eater"), page_kb: 4, loadavg: "0.1 0.2 0.3 1/2 3" };
        assert_eq!(
            line(seen.json(), 1.0),
            line(
                json!({"trigger_pid": 3, "trigger_comm": "stress", "victim_pid": 4, "victim_comm": "eater",
                       "total_vm_pages": 2048, "total_vm_kb": 8192, "anon_rss_kb": null, "file_rss_kb": null,
                       "shmem_rss_kb": null, "loadavg": "0.1 0.2 0.3 1/2 3"}),
                1.0
            )
        );
        assert_eq!(
            text(|o| seen.write(o, &TimeColumns::default(), AT)),
            "12:34:56 Triggered by PID 3 (\"stress\"), OOM kill of PID 4 (\"eater\"), 2048 pages, loadavg: 0.1 0.2 0.3 1/2 3\n"
        );
        let unknown = OomKillSeen { victim_comm: None, ..seen };
        let k2 = OomKill { total_vm_kb: None, ..kill.clone() };
        let unknown = OomKillSeen { kill: &k2, ..unknown };
        assert!(text(|o| unknown.write(o, &TimeColumns::default(), AT)).contains("(\"?\"), ? pages"));
    }

    #[test]
    fn retransmissions_by_flow_count_only_what_was_sent() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let r = Retransmit {
            ts_ns: 0,
            pid: 0,
            local,
            local_port: 1,
            remote: local,
            remote_port: 2,
            state: "ESTABLISHED",
            segments: 3,
            error: 0,
        };
        assert_eq!(
            line(RetransmitJson::new(&r), 0.0),
            line(
                json!({"pid": 0, "local_addr": "127.0.0.1", "local_port": 1, "remote_addr": "127.0.0.1",
                       "remote_port": 2, "state": "ESTABLISHED", "segments": 3, "error": 0}),
                0.0
            )
        );
        assert_eq!(
            text(|o| write_retransmit(o, &Retransmit { error: -16, ..r.clone() }, 0.5)),
            "0.500           0  4 127.0.0.1:1           F> 127.0.0.1:2           ESTABLISHED\n"
        );
        let mut flows = RetransFlows::new();
        flows.add(&r);
        flows.add(&r);
        flows.add(&Retransmit { error: -16, ..r });
        let states =
            [RetransCount { state: "ESTABLISHED", retransmissions: 2, segments: 6, failed: 1, failed_segments: 3 }];
        assert_eq!(
            serde_json::to_string(&flows.json(&states)).unwrap(),
            json!({"schema_version": SCHEMA_VERSION, "tool": "tcpretrans",
                   "by_flow": [{"local": "127.0.0.1:1", "remote": "127.0.0.1:2", "retransmissions": 2}],
                   "by_state": {"ESTABLISHED": {"retransmissions": 2, "segments": 6, "failed": 1, "failed_segments": 3}}})
            .to_string()
        );
        let table = text(|o| flows.write(o, &states));
        assert!(table.contains("127.0.0.1:1               127.0.0.1:2               2\n"), "{table}");
    }

    #[test]
    fn block_io_lines_name_the_operation() {
        let e = BlockEvent {
            ts_ns: 0,
            latency_ns: 2_500_000,
            queued_ns: 1_000_000,
            major: 8,
            minor: 0,
            sector: 2048,
            bytes: 4096,
            pid: 12,
            comm: "dd".into(),
            rwbs: "WS".into(),
            error: 0,
        };
        assert_eq!(
            text(|o| BlockLayout::new(true).write(o, &e, "sda", 0.25)),
            "0.250000    dd                  12 sda     W       2048    4096    1.00    2.50\n"
        );
        assert_eq!(
            line(BlockJson::new(&e, "sda"), 0.25),
            line(
                json!({"comm": "dd", "pid": 12, "disk": "sda", "device": "8:0", "op": "WS", "sector": 2048,
                       "bytes": 4096, "queued_ms": 1.0, "latency_ms": 2.5, "error": 0}),
                0.25
            )
        );
    }
}
