//! Driving a tool to its output, as bcc's tools do: a [`Driver`] holds
//! what a run needs from its caller (the [`Watch`], the stop flag, where
//! the report goes, a [`Clock`] for the times printed, and a sink for the
//! [`Notice`]s: losses, summaries), and one function per tool runs it to
//! the end: the histogram tools ([`runqlat`], [`biolatency`], [`syscount`],
//! [`irqs`], [`runqlen`], [`funccount`], [`funclatency`], [`argdist`])
//! report every interval, the snooping tools ([`execsnoop`], [`opensnoop`],
//! [`biosnoop`], [`tcplife`], [`tcpretrans`], [`tcpconnect`],
//! [`tcpaccept`], [`oomkill`], [`mountsnoop`], [`capable`], [`trace`])
//! write each event as it comes; both in bcc's layouts or as JSON lines.
//! The filters bcc applies in user space are types here ([`ExecFilter`],
//! [`OpenFilter`], [`SessionFilter`], [`TcpOpenFilter`]).
//!
//! Nothing here writes to a terminal, installs a signal handler or reads
//! the clock's time zone: the caller gives the writer, the stop flag and
//! the [`Clock`].
//!
//! execsnoop's bcc layout on standard output, until a flag is set:
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use perfkit_probes::tools::{ExecSnoop, ExecSnoopConfig, drive::{self, Clock, Driver, ExecFilter, SnoopView}, run::Watch};
//!
//! struct Utc;
//! impl Clock for Utc {
//!     fn hms(&self) -> String { "00:00:00".into() }
//!     fn rfc3339(&self) -> String { "1970-01-01T00:00:00Z".into() }
//! }
//! let mut tool = ExecSnoop::start(ExecSnoopConfig::default())?;
//! let (mut watch, stop, mut stdout) = (Watch::machine(), AtomicBool::new(false), std::io::stdout().lock());
//! let mut notify = |n| eprintln!("{n}");
//! let mut d = Driver { watch: &mut watch, stop: &stop, write: &mut stdout, notify: &mut notify, clock: &Utc };
//! drive::execsnoop(&mut tool, &SnoopView::default(), &ExecFilter::default(), false, false, &mut d)?;
//! # Ok::<(), drive::DriveError>(())
//! ```

mod hists;
mod snoops;

use std::{fmt, io, io::Write, net::IpAddr, sync::atomic::AtomicBool, time::Duration};

pub use hists::{
    IrqView, ReportView, RunqlenView, SyscountView, argdist, biolatency, funccount, funclatency, irqs, runqlat,
    runqlen, syscount, write_histogram_report,
};
use perfkit_target::{ExitStatus, TargetError};
use serde::Serialize;
pub use snoops::{
    SnoopView, TraceFilter, biosnoop, capable, execsnoop, mountsnoop, oomkill, opensnoop, tcpaccept, tcpconnect,
    tcplife, tcpretrans, trace,
};

use super::{
    EventSource, ExecEvent, OpenEvent, TcpOpen, TcpSession, Tool, ToolStats,
    run::{Loss, Watch, losses, run_events},
    snoop::Stamp,
    text::EventJson,
};
use crate::ProbeError;

/// The clock's text, as the caller's time zone gives it.
pub trait Clock {
    /// The local time now, `HH:MM:SS` (bcc's `-T` column, the time over a
    /// report).
    fn hms(&self) -> String;

    /// The time now as an RFC 3339 timestamp (the `time` of the JSON
    /// reports).
    fn rfc3339(&self) -> String;
}

/// Something a run has to say besides its report, for the caller to show
/// (perfkit writes `perfkit TOOL: NOTICE` on standard error). Its
/// `Display` is the text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Lost since the previous notice of its kind.
    Lost(Loss),
    /// memleak: allocations lost since the previous notice (a warning: the
    /// report undercounts).
    AllocationsLost(Loss),
    /// runqlen: samples not counted since the previous notice, the CPU's
    /// run queue could not be read.
    QueueUnread(u64),
    /// trace and argdist at the end: the probes' hits, those the filters
    /// left out (in user space) and those lost.
    Hits {
        /// Hits the kernel recorded.
        hits: u64,
        /// Hits left out by the filters.
        filtered: u64,
        /// Hits lost to a full ring buffer.
        lost: u64,
    },
    /// argdist at the end: hits not counted because their value was new
    /// after `distinct` values of one counting specifier in an interval.
    Uncounted {
        /// Hits not counted.
        hits: u64,
        /// The cap on distinct values ([`MAX_DISTINCT`](super::MAX_DISTINCT)).
        distinct: usize,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Lost(l) => write!(f, "{l}"),
            Notice::AllocationsLost(l) => write!(f, "warning: {l}"),
            Notice::QueueUnread(n) => write!(f, "{n} samples not counted: the CPU's run queue could not be read"),
            Notice::Hits { hits, filtered, lost } => {
                write!(f, "{hits} hits, {filtered} filtered out by the filters (in user space), {lost} lost")
            }
            Notice::Uncounted { hits, distinct } => write!(
                f,
                "warning: {hits} hits not counted: their values were new after {distinct} distinct ones of a \
                 counting specifier in one interval (the cap on memory a target's values can take)"
            ),
        }
    }
}

/// Why a run ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError {
    /// The tool failed (reading its maps...).
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The watched command could not be released.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Writing the report failed (a closed pipe...).
    #[error("writing the report failed")]
    Write(#[from] io::Error),
    /// A JSON document could not be written.
    #[error("writing JSON failed")]
    Json(#[from] serde_json::Error),
}

/// What a run needs from its caller.
pub struct Driver<'a> {
    /// What the tool watches: the command it started ends the run.
    pub watch: &'a mut Watch,
    /// Set to end the run (a Ctrl-C handler's flag), with a last report.
    pub stop: &'a AtomicBool,
    /// Where the reports and events go.
    pub write: &'a mut dyn Write,
    /// Called with each notice.
    pub notify: &'a mut dyn FnMut(Notice),
    /// The clock's text.
    pub clock: &'a dyn Clock,
}

impl fmt::Debug for Driver<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver").field("watch", &self.watch).finish_non_exhaustive()
    }
}

/// Where a report goes: the [`Driver`]'s writer, sink and clock.
pub struct Output<'a, 'b> {
    /// Where the reports and events go.
    pub write: &'b mut dyn Write,
    /// Called with each notice.
    pub notify: &'b mut dyn FnMut(Notice),
    /// The clock's text.
    pub clock: &'a dyn Clock,
}

impl<'a> Driver<'a> {
    /// The watch and the stop flag apart from the output, for a loop that
    /// needs both.
    pub fn split(&mut self) -> (&mut Watch, &'a AtomicBool, Output<'a, '_>) {
        let out = Output { write: &mut *self.write, notify: &mut *self.notify, clock: self.clock };
        (&mut *self.watch, self.stop, out)
    }
}

impl Output<'_, '_> {
    /// Notices of what was lost beyond `reported` (the counters at the
    /// previous notice), which becomes `now`: nothing lost goes unsaid.
    pub fn losses(&mut self, now: &ToolStats, reported: &mut ToolStats) {
        for l in losses(now, reported) {
            (self.notify)(Notice::Lost(l));
        }
        *reported = *now;
    }

    /// Writes `doc` as one JSON line.
    pub fn json_line(&mut self, doc: &impl Serialize) -> Result<(), DriveError> {
        serde_json::to_writer(&mut *self.write, doc)?;
        writeln!(self.write)?;
        Ok(())
    }

    /// Writes an event as a JSON line, with the schema version and its
    /// time, `t` seconds after the start.
    pub fn event(&mut self, t: f64, event: impl Serialize) -> Result<(), DriveError> {
        self.json_line(&EventJson::new(event, t))
    }

    /// A blank line, then the clock time if `timestamp`: the top of a
    /// histogram tool's text report.
    pub fn report_top(&mut self, timestamp: bool) -> io::Result<()> {
        writeln!(self.write)?;
        if timestamp {
            writeln!(self.write, "{}", self.clock.hms())?;
        }
        Ok(())
    }
}

/// Streams an event tool's events until the stop flag, `duration` or the
/// command's exit: `print` gets each with the seconds since the start, and
/// losses become notices. Returns the command's exit status if it exited.
pub fn snoop<T: Tool + EventSource>(
    tool: &mut T,
    duration: Option<Duration>,
    d: &mut Driver<'_>,
    mut print: impl FnMut(&mut Output<'_, '_>, &T::Event, f64) -> Result<(), DriveError>,
) -> Result<Option<ExitStatus>, DriveError> {
    let mut reported = ToolStats::default();
    let (watch, stop, mut out) = d.split();
    run_events(duration, watch, stop, |timeout, started| {
        let events = tool.poll_events(timeout);
        let stats = tool.stats()?;
        for e in &events {
            print(&mut out, e, started.elapsed().as_secs_f64())?;
        }
        out.write.flush()?;
        out.losses(&stats, &mut reported);
        Ok(true)
    })
}

/// An event's time, `t` seconds after the start, on `clock`.
pub(crate) fn stamp<'a>(t: f64, clock: &'a dyn Fn() -> String) -> Stamp<'a> {
    Stamp { t, clock }
}

/// A process's name, from `/proc/PID/comm` (escaped; empty once it is
/// gone).
pub fn process_name(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/comm"))
        .map(|b| perfkit_model::escape_bytes(b.strip_suffix(b"\n").unwrap_or(&b)))
        .unwrap_or_default()
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of the events' own
/// timestamps (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// `/proc/loadavg`'s text (its first 128 bytes, printable), as bcc's
/// oomkill shows it; empty if it cannot be read.
pub fn loadavg() -> String {
    std::fs::read("/proc/loadavg")
        .map(|b| perfkit_model::printable(String::from_utf8_lossy(&b[..b.len().min(128)]).trim()).into_owned())
        .unwrap_or_default()
}

/// The IP version a network tool keeps (bcc's `-4`, `-6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpVersion {
    /// Both.
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl IpVersion {
    /// `V4` or `V6` if one of the flags is set, else `Any`.
    pub fn only(v4: bool, v6: bool) -> Self {
        match (v4, v6) {
            (true, _) => IpVersion::V4,
            (_, true) => IpVersion::V6,
            _ => IpVersion::Any,
        }
    }

    /// Whether `a` is of the version kept.
    pub fn pass(self, a: &IpAddr) -> bool {
        match self {
            IpVersion::Any => true,
            IpVersion::V4 => a.is_ipv4(),
            IpVersion::V6 => a.is_ipv6(),
        }
    }
}

/// Whether `v` passes a list of accepted values (empty: all pass).
fn listed<T: PartialEq>(list: &[T], v: &T) -> bool {
    list.is_empty() || list.contains(v)
}

/// The execs bcc's execsnoop shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecFilter {
    /// Failed execs only.
    pub failed_only: bool,
    /// By this user only.
    pub uid: Option<u32>,
    /// By children of this process only.
    pub ppid: Option<u32>,
    /// Whose command name contains this only.
    pub name: Option<String>,
    /// With an argument containing this only.
    pub line: Option<String>,
}

impl ExecFilter {
    /// Whether `e` is shown.
    pub fn pass(&self, e: &ExecEvent) -> bool {
        !(self.failed_only && e.ret == 0
            || self.uid.is_some_and(|u| u != e.uid)
            || self.ppid.is_some_and(|p| p != e.ppid)
            || self.name.as_ref().is_some_and(|n| !e.comm.contains(n.as_str()))
            || self.line.as_ref().is_some_and(|l| !e.args.iter().flatten().any(|a| a.contains(l.as_str()))))
    }
}

/// The opens bcc's opensnoop shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenFilter {
    /// Only opens whose flags share a bit with one of these (`O_*`; empty:
    /// all), as bcc's.
    pub flags: Vec<i32>,
    /// By this user only.
    pub uid: Option<u32>,
    /// By this thread only.
    pub tid: Option<u32>,
    /// By processes whose name contains this only.
    pub name: Option<String>,
}

impl OpenFilter {
    /// Whether `e` is shown.
    pub fn pass(&self, e: &OpenEvent) -> bool {
        let mask = self.flags.iter().fold(0i64, |m, f| m | i64::from(*f));
        !(!self.flags.is_empty() && (e.flags as i64) & mask == 0
            || self.uid.is_some_and(|u| u != e.uid)
            || self.tid.is_some_and(|t| t != e.tid)
            || self.name.as_ref().is_some_and(|n| !e.comm.contains(n.as_str())))
    }
}

/// The `O_*` flags [`open_flag`] knows, by name.
pub const OPEN_FLAGS: [(&str, i32); 19] = [
    ("O_RDONLY", libc::O_RDONLY),
    ("O_WRONLY", libc::O_WRONLY),
    ("O_RDWR", libc::O_RDWR),
    ("O_CREAT", libc::O_CREAT),
    ("O_EXCL", libc::O_EXCL),
    ("O_NOCTTY", libc::O_NOCTTY),
    ("O_TRUNC", libc::O_TRUNC),
    ("O_APPEND", libc::O_APPEND),
    ("O_NONBLOCK", libc::O_NONBLOCK),
    ("O_DSYNC", libc::O_DSYNC),
    ("O_SYNC", libc::O_SYNC),
    ("O_DIRECT", libc::O_DIRECT),
    ("O_LARGEFILE", libc::O_LARGEFILE),
    ("O_DIRECTORY", libc::O_DIRECTORY),
    ("O_NOFOLLOW", libc::O_NOFOLLOW),
    ("O_NOATIME", libc::O_NOATIME),
    ("O_CLOEXEC", libc::O_CLOEXEC),
    ("O_PATH", libc::O_PATH),
    ("O_TMPFILE", libc::O_TMPFILE),
];

/// An `O_*` flag by name (`O_WRONLY`), as bcc's opensnoop takes it; the
/// error names the known ones.
pub fn open_flag(name: &str) -> Result<i32, String> {
    OPEN_FLAGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = OPEN_FLAGS.iter().map(|(n, _)| *n).collect();
        format!("{name:?} is not an open flag ({})", names.join(", "))
    })
}

/// The sessions bcc's tcplife shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// On these local ports only (empty: all).
    pub local_ports: Vec<u16>,
    /// With these remote ports only (empty: all).
    pub remote_ports: Vec<u16>,
    /// The IP version kept.
    pub ip: IpVersion,
}

impl SessionFilter {
    /// Whether `e` is shown.
    pub fn pass(&self, e: &TcpSession) -> bool {
        listed(&self.local_ports, &e.local_port) && listed(&self.remote_ports, &e.remote_port) && self.ip.pass(&e.local)
    }
}

/// The connects and accepts bcc's tcpconnect and tcpaccept show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpOpenFilter {
    /// The IP version kept.
    pub ip: IpVersion,
    /// Only these ports (empty: all): the remote port of a connect, the
    /// local port of an accept.
    pub ports: Vec<u16>,
    /// By this user only.
    pub uid: Option<u32>,
}

impl TcpOpenFilter {
    /// Whether `e` is shown.
    pub fn pass(&self, e: &TcpOpen) -> bool {
        let port = match e.kind {
            super::TcpOpenKind::Accept => e.local_port,
            super::TcpOpenKind::Connect => e.remote_port,
        };
        self.ip.pass(&e.local) && listed(&self.ports, &port) && self.uid.is_none_or(|u| u == e.uid)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn notices_say_what_and_name_no_flag() {
        use super::super::run::LossKind;
        let l = Loss { kind: LossKind::RingFull, count: 2 };
        assert_eq!(Notice::Lost(l).to_string(), "2 events lost: the ring buffer was full (the reader fell behind)");
        assert!(Notice::AllocationsLost(l).to_string().starts_with("warning: 2 events lost"));
        assert_eq!(
            Notice::Hits { hits: 5, filtered: 2, lost: 1 }.to_string(),
            "5 hits, 2 filtered out by the filters (in user space), 1 lost"
        );
        assert_eq!(Notice::QueueUnread(3).to_string(), "3 samples not counted: the CPU's run queue could not be read");
        let u = Notice::Uncounted { hits: 4, distinct: 10 }.to_string();
        assert!(u.contains("4 hits not counted") && !u.contains(" -"), "{u}");
    }

    #[test]
    fn ip_versions() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        assert!(IpVersion::only(false, false).pass(&v4) && IpVersion::Any.pass(&v6));
        assert!(IpVersion::only(true, false).pass(&v4) && !IpVersion::V4.pass(&v6));
        assert!(IpVersion::only(false, true).pass(&v6) && !IpVersion::V6.pass(&v4));
    }

    #[test]
    fn open_flags_by_name() {
        assert_eq!(open_flag("O_WRONLY"), Ok(libc::O_WRONLY));
        let e = open_flag("O_BOGUS").unwrap_err();
        assert!(e.starts_with("\"O_BOGUS\" is not an open flag (O_RDONLY, O_WRONLY"), "{e}");
    }

    #[test]
    fn exec_and_open_filters_are_bccs() {
        let exec = ExecEvent {
            ts_ns: 1,
            pid: 10,
            ppid: 1,
            uid: 1000,
            comm: "make".to_owned(),
            path: Some("/usr/bin/make".to_owned()),
            args: vec![Some("make".to_owned()), None, Some("-j8".to_owned())],
            path_truncated: false,
            args_truncated: false,
            ret: 0,
        };
        assert!(ExecFilter::default().pass(&exec));
        assert!(!ExecFilter { failed_only: true, ..ExecFilter::default() }.pass(&exec));
        assert!(ExecFilter { failed_only: true, ..ExecFilter::default() }.pass(&ExecEvent { ret: -2, ..exec.clone() }));
        assert!(!ExecFilter { uid: Some(0), ..ExecFilter::default() }.pass(&exec));
        assert!(ExecFilter { ppid: Some(1), name: Some("ak".into()), ..ExecFilter::default() }.pass(&exec));
        assert!(!ExecFilter { name: Some("cc".into()), ..ExecFilter::default() }.pass(&exec));
        assert!(ExecFilter { line: Some("-j".into()), ..ExecFilter::default() }.pass(&exec));
        assert!(!ExecFilter { line: Some("-k".into()), ..ExecFilter::default() }.pass(&exec));
        let open = OpenEvent {
            ts_ns: 0,
            pid: 2,
            tid: 3,
            uid: 0,
            comm: "cat".into(),
            path: "/etc/passwd".into(),
            flags: (libc::O_WRONLY | libc::O_CREAT) as u64,
            ret: 3,
        };
        assert!(OpenFilter { flags: vec![libc::O_CREAT, libc::O_RDWR], ..OpenFilter::default() }.pass(&open));
        assert!(!OpenFilter { flags: vec![libc::O_RDWR], ..OpenFilter::default() }.pass(&open));
        assert!(
            OpenFilter { tid: Some(3), uid: Some(0), name: Some("at".into()), ..OpenFilter::default() }.pass(&open)
        );
        assert!(!OpenFilter { tid: Some(2), ..OpenFilter::default() }.pass(&open));
    }

    #[test]
    fn network_filters_take_the_right_port() {
        let local: IpAddr = "10.0.0.1".parse().unwrap();
        let session = TcpSession {
            ts_ns: 0,
            pid: 4,
            comm: "curl".into(),
            local,
            local_port: 4000,
            remote: local,
            remote_port: 80,
            rx_bytes: 0,
            tx_bytes: 0,
            duration_ns: 0,
        };
        assert!(SessionFilter { remote_ports: vec![80, 443], ..SessionFilter::default() }.pass(&session));
        assert!(!SessionFilter { local_ports: vec![80], ..SessionFilter::default() }.pass(&session));
        assert!(!SessionFilter { ip: IpVersion::V6, ..SessionFilter::default() }.pass(&session));
        let accept = TcpOpen {
            ts_ns: 0,
            kind: super::super::TcpOpenKind::Accept,
            pid: 5,
            tid: 6,
            uid: 7,
            comm: "srv".into(),
            local,
            local_port: 22,
            remote: local,
            remote_port: 5555,
        };
        let by_port = |ports: Vec<u16>| TcpOpenFilter { ports, ..TcpOpenFilter::default() };
        assert!(by_port(vec![22]).pass(&accept) && !by_port(vec![5555]).pass(&accept));
        let connect = TcpOpen { kind: super::super::TcpOpenKind::Connect, ..accept };
        assert!(!by_port(vec![22]).pass(&connect) && by_port(vec![5555]).pass(&connect));
        assert!(!TcpOpenFilter { uid: Some(0), ..TcpOpenFilter::default() }.pass(&connect));
    }

    #[test]
    fn lists_accept_all_when_empty() {
        assert!(listed::<u16>(&[], &80));
        assert!(listed(&[80, 443], &443) && !listed(&[80], &22));
    }

    #[test]
    fn the_clock_and_names() {
        let a = monotonic_ns();
        assert!(monotonic_ns() >= a && a > 0);
        assert_eq!(process_name(std::process::id()), {
            let c = std::fs::read_to_string("/proc/self/comm").unwrap();
            c.trim_end().to_owned()
        });
        assert_eq!(process_name(u32::MAX), "");
        assert!(!loadavg().is_empty());
    }
}
