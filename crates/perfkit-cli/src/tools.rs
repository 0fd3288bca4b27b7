//! The bcc-style tools: `runqlat`, `biolatency`, `biosnoop`, `syscount`,
//! `execsnoop`, `opensnoop`, `tcplife`, `tcpretrans`, and (in the modules)
//! the others. Each is its clap arguments, their conversion to the
//! library's configuration and view, and one call of [`run`]: the library
//! (`perfkit_probes::tools::drive`, `perfkit_profiler::stack_tools`) runs
//! the tool to its output on stdout; its notices go to stderr.

use std::{ffi::OsString, io::Write, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use clap::Args;
use perfkit_probes::{
    Selection,
    tools::{
        BlockIo, BlockIoConfig, ExecSnoop, ExecSnoopConfig, OpenSnoop, OpenSnoopConfig, ProbeSpec, ResolvedProbe,
        Resolver, Runqlat, RunqlatConfig, RunqlatPer, Syscount, SyscountConfig, TcpLife, TcpLifeConfig, TcpRetrans,
        TcpRetransConfig,
        drive::{
            self, Clock, DriveError, Driver, ExecFilter, IpVersion, Notice, OpenFilter, ReportView, SessionFilter,
            SnoopView, SyscountView,
        },
        run::{Schedule, Watch},
        text::TimeColumns,
    },
};
use perfkit_profiler::Target;
use perfkit_target::ExitStatus;

use crate::profile::{IdList, parse_pid_list};

mod events;
pub use events::{
    CapableArgs, MountsnoopArgs, OomkillArgs, TcpacceptArgs, TcpconnectArgs, capable, mountsnoop, oomkill, tcpaccept,
    tcpconnect,
};

mod ufunc;
mod wakestack;
pub use ufunc::{FunccountArgs, FunclatencyArgs, funccount, funclatency};
pub use wakestack::{StackcountArgs, WakeuptimeArgs, stackcount, wakeuptime};

mod memleak;
pub use memleak::{MemleakArgs, memleak};
mod trace;
pub use trace::{ArgdistArgs, TraceArgs, argdist, trace};

/// Processes to watch: a PID list, a cgroup, or a command.
#[derive(Debug, Args)]
pub struct ToolTarget {
    /// Processes to watch (and the processes they start), comma-separated.
    #[arg(short, long, value_name = "PID[,PID...]", value_parser = parse_pid_list, group = "tool_target")]
    pid: Option<IdList>,

    /// With -p: also the existing descendants of each process (children,
    /// their children..., as pgrep -P).
    #[arg(long)]
    children: bool,

    /// A cgroup v2 group to watch (a container, a systemd service).
    #[arg(long, value_name = "PATH", group = "tool_target")]
    cgroup: Option<PathBuf>,

    /// Command to run and watch until it exits (after `--`).
    #[arg(value_name = "COMMAND", last = true, group = "tool_target")]
    command: Vec<OsString>,
}

impl ToolTarget {
    /// The first process of -p: its mappings name the libraries probes
    /// are resolved in.
    fn first_pid(&self) -> Option<u32> {
        self.pid.as_ref().and_then(|IdList(p)| p.first().copied())
    }

    /// What resolves probes: the first process of -p, else the loader's
    /// directories.
    fn resolver(&self) -> Resolver {
        Resolver::new(self.first_pid(), perfkit_profiler::library_dirs())
    }

    /// Parses and resolves the probe pattern of funccount, funclatency
    /// and stackcount.
    fn resolve(&self, pattern: Option<&str>) -> Result<(ProbeSpec, Vec<ResolvedProbe>)> {
        let pattern =
            pattern.context("a probe is needed: LIB:FUNC, PATH:FUNC, t:CATEGORY:NAME or u:PATH:[PROVIDER:]NAME")?;
        let spec = ProbeSpec::parse(pattern)?;
        let probes = self.resolver().resolve(&spec)?;
        Ok((spec, probes))
    }

    /// The target as the library makes it (`perfkit_profiler::Target`, as
    /// `profile` takes it), for a tool.
    fn watch(&self) -> Result<Watch> {
        if self.children && self.pid.is_none() {
            anyhow::bail!("--children goes with -p PID: the descendants of the processes given");
        }
        let target = if let Some(IdList(pids)) = &self.pid {
            let t = Target::pids(pids)?;
            if self.children { t.with_children() } else { t }
        } else if let Some(path) = &self.cgroup {
            Target::cgroup(path)?
        } else if !self.command.is_empty() {
            Target::command(&self.command, false)?
        } else {
            Target::all()
        };
        let t = target.into_tool_target();
        Ok(Watch::new(t.selection, t.command))
    }
}

/// The terminal's clock: jiff's, in the local time zone.
struct Terminal;

impl Clock for Terminal {
    fn hms(&self) -> String {
        crate::clock::now_hms()
    }

    fn rfc3339(&self) -> String {
        crate::clock::now_rfc3339()
    }
}

/// The library's error as the CLI reports it: the cause itself, so that a
/// closed pipe is recognized and messages stay the same.
fn cause(e: DriveError) -> anyhow::Error {
    match e {
        DriveError::Probe(e) => e.into(),
        DriveError::Target(e) => e.into(),
        DriveError::Write(e) => e.into(),
        DriveError::Json(e) => e.into(),
        e => e.into(),
    }
}

/// Runs a tool `name`: `start`s it on the watch's selection, says `banner`
/// on stderr, lets the watched command run, and `drive`s it to its output
/// on stdout, with its notices on stderr (`perfkit NAME: NOTICE`) and
/// Ctrl-C's flag; then ends the command and exits as perf would.
pub(crate) fn run<T>(
    name: &str,
    mut watch: Watch,
    start: impl FnOnce(Option<Selection>) -> Result<T>,
    banner: impl FnOnce(&T) -> String,
    drive: impl FnOnce(&mut T, &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError>,
) -> Result<ExitCode> {
    let mut tool = start(watch.selection())?;
    eprintln!("{}", banner(&tool));
    watch.release()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut notify = |n: Notice| match n {
        Notice::Uncounted { hits, distinct } => eprintln!(
            "perfkit {name}: warning: {hits} hits not counted: their values were new after {distinct} distinct ones \
             of a -C specifier in one interval (the cap on memory a target's values can take)"
        ),
        n => eprintln!("perfkit {name}: {n}"),
    };
    let stop = crate::signals::interrupt_flag()?;
    let mut d = Driver { watch: &mut watch, stop, write: &mut out, notify: &mut notify, clock: &Terminal };
    let exited = drive(&mut tool, &mut d).map_err(cause)?;
    out.flush()?;
    Ok(ExitCode::from(watch.finish(exited, perfkit_profiler::COMMAND_GRACE)))
}

/// Interval, count and JSON: the reporting options of the histogram tools.
#[derive(Debug, Args)]
pub struct Reporting {
    /// Print JSON: one object per interval.
    #[arg(long)]
    pub(crate) json: bool,

    /// Print the time of each interval (bcc's -T, on runqlat and
    /// biolatency).
    #[arg(long)]
    pub(crate) timestamp: bool,

    /// Seconds between reports; without it, one report at Ctrl-C (or when
    /// the command exits).
    #[arg(value_name = "INTERVAL", value_parser = crate::clock::tool_interval)]
    pub(crate) interval: Option<Duration>,

    /// Reports before exiting.
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

impl Reporting {
    /// When and how to report: every INTERVAL, COUNT times; `-T` also
    /// asks for the time.
    pub(crate) fn view(&self, time: bool) -> ReportView {
        let schedule = Schedule { interval: self.interval, count: self.count, duration: None };
        ReportView { json: self.json, timestamp: self.timestamp || time, schedule }
    }
}

const RUNQLAT_EXAMPLES: &str = "\
Examples:
  perfkit runqlat                  # until Ctrl-C, then the histogram
  perfkit runqlat 1 10             # every second, 10 times
  perfkit runqlat -m 5             # milliseconds, every 5 s
  perfkit runqlat -P -p 1234,5678  # per process
  perfkit runqlat --json 1 3
  perfkit runqlat -- make -j8

As bcc's runqlat: from a thread's wakeup (or preemption) to the moment it
runs. Built on the sched_wakeup, sched_wakeup_new and sched_switch
tracepoints (BTF raw tracepoints), so it needs no kprobes.";

/// Run-queue (scheduler) latency as a histogram, like bcc's runqlat.
#[derive(Debug, Args)]
#[command(after_help = RUNQLAT_EXAMPLES)]
pub struct RunqlatArgs {
    /// Milliseconds instead of microseconds.
    #[arg(short = 'm', long)]
    milliseconds: bool,

    /// One histogram per process.
    #[arg(short = 'P', long, group = "per")]
    pids: bool,

    /// One histogram per thread.
    #[arg(short = 'L', long, group = "per")]
    tids: bool,

    /// One histogram per PID namespace.
    #[arg(long, group = "per")]
    pidnss: bool,

    /// One histogram per cgroup v2 group.
    #[arg(long, group = "per")]
    cgroups: bool,

    #[command(flatten)]
    reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    time: bool,

    #[command(flatten)]
    target: ToolTarget,
}

pub fn runqlat(args: RunqlatArgs) -> Result<ExitCode> {
    let per = if args.pids {
        RunqlatPer::Process
    } else if args.tids {
        RunqlatPer::Thread
    } else if args.pidnss {
        RunqlatPer::PidNamespace
    } else if args.cgroups {
        RunqlatPer::Cgroup
    } else {
        RunqlatPer::All
    };
    let view = args.reporting.view(args.time);
    let start = |selection| {
        let mut config = RunqlatConfig::default();
        (config.selection, config.per) = (selection, per);
        Ok(Runqlat::start(config)?)
    };
    let banner = |_: &_| "Tracing run queue latency... Hit Ctrl-C to end.".to_owned();
    run("runqlat", args.target.watch()?, start, banner, |t, d| drive::runqlat(t, per, args.milliseconds, &view, d))
}

const BIOLATENCY_EXAMPLES: &str = "\
Examples:
  perfkit biolatency               # until Ctrl-C
  perfkit biolatency -D 1 5        # per disk, every second, 5 times
  perfkit biolatency -F -m         # per operation, in milliseconds
  perfkit biolatency -Q            # including time in the OS queue

As bcc's biolatency: from issue to the device (or, with -Q, insertion into
the OS queue) to completion, from the block tracepoints.";

/// Block I/O latency as a histogram, like bcc's biolatency.
#[derive(Debug, Args)]
#[command(after_help = BIOLATENCY_EXAMPLES)]
pub struct BiolatencyArgs {
    /// Milliseconds instead of microseconds.
    #[arg(short = 'm', long)]
    milliseconds: bool,

    /// One histogram per disk.
    #[arg(short = 'D', long)]
    disks: bool,

    /// One histogram per operation (Read, Write, Sync-Write, Flush...).
    #[arg(short = 'F', long)]
    flags: bool,

    /// Include time queued in the OS (from insertion, not issue).
    #[arg(short = 'Q', long)]
    queued: bool,

    #[command(flatten)]
    reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    time: bool,
}

pub fn biolatency(args: BiolatencyArgs) -> Result<ExitCode> {
    let view = args.reporting.view(args.time);
    let start = |_| {
        let mut config = BlockIoConfig::default();
        (config.histograms, config.per_disk, config.per_flags, config.queued) =
            (true, args.disks, args.flags, args.queued);
        Ok(BlockIo::start(config)?)
    };
    let banner = |_: &_| "Tracing block device I/O... Hit Ctrl-C to end.".to_owned();
    let per = (args.disks, args.flags);
    run("biolatency", Watch::machine(), start, banner, |t, d| drive::biolatency(t, per, args.milliseconds, &view, d))
}

/// One I/O per line, like bcc's biosnoop.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit biosnoop\n  perfkit biosnoop -Q --json | jq .\n\nAs bcc's biosnoop: one line per completed block I/O, with its latency \
                        from issue (and with -Q the time queued in the OS before it)."
)]
pub struct BiosnoopArgs {
    /// Also show time queued in the OS.
    #[arg(short = 'Q', long)]
    queued: bool,

    /// One JSON object per I/O.
    #[arg(long)]
    json: bool,

    /// Stop after this long (seconds, or 500ms, 1.5s, 2m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,

    /// Only I/O of this disk (`sda`, `nvme0n1`), as libbpf-tools' -d.
    #[arg(short = 'd', long, value_name = "DISK")]
    disk: Option<String>,
}

pub fn biosnoop(args: BiosnoopArgs) -> Result<ExitCode> {
    let view = SnoopView { json: args.json, duration: args.duration, ..SnoopView::default() };
    let start = |_| {
        let mut config = BlockIoConfig::default();
        (config.events, config.queued) = (true, args.queued);
        Ok(BlockIo::start(config)?)
    };
    let banner = |_: &_| "Tracing block I/O... Hit Ctrl-C to end.".to_owned();
    let disk = args.disk.as_deref();
    run("biosnoop", Watch::machine(), start, banner, |t, d| drive::biosnoop(t, args.queued, disk, &view, d))
}

const SYSCOUNT_EXAMPLES: &str = "\
Examples:
  perfkit syscount                 # top 10 syscalls until Ctrl-C
  perfkit syscount -L -p 1234 1    # with time in them, every second
  perfkit syscount -P              # per process
  perfkit syscount -x              # failed calls only
  perfkit syscount --json -- ./my-program

As bcc's syscount: counts per syscall (or per process with -P), from the
raw_syscalls tracepoints. Syscall names come from the kernel's own syscall
metadata at run time, not from a table compiled in.";

/// Syscall counts (and latency), like bcc's syscount.
#[derive(Debug, Args)]
#[command(after_help = SYSCOUNT_EXAMPLES)]
pub struct SyscountArgs {
    /// Time spent in each syscall.
    #[arg(short = 'L', long)]
    latency: bool,

    /// Milliseconds instead of microseconds (with -L).
    #[arg(short = 'm', long)]
    milliseconds: bool,

    /// Count per process instead of per syscall.
    #[arg(short = 'P', long)]
    process: bool,

    /// Failed syscalls only.
    #[arg(short = 'x', long)]
    failures: bool,

    /// Rows to print: the top N by count (by time with -L), as bcc's -T.
    #[arg(short = 'T', long, short_alias = 'n', value_name = "N", default_value_t = 10)]
    top: usize,

    #[command(flatten)]
    reporting: Reporting,

    #[command(flatten)]
    target: ToolTarget,
}

pub fn syscount(args: SyscountArgs) -> Result<ExitCode> {
    let view = args.reporting.view(false);
    let start = |selection| {
        let mut config = SyscountConfig::default();
        (config.selection, config.per_process, config.latency) = (selection, args.process, args.latency);
        config.failed_only = args.failures;
        Ok(Syscount::start(config)?)
    };
    let failed = if args.failures { "failed " } else { "" };
    let banner = |_: &_| format!("Tracing {failed}syscalls, printing top {}... Ctrl-C to quit.", args.top);
    let s = SyscountView {
        per_process: args.process,
        latency: args.latency,
        milliseconds: args.milliseconds,
        top: args.top,
    };
    run("syscount", args.target.watch()?, start, banner, |t, d| drive::syscount(t, s, &view, d))
}

/// Options of the snooping tools.
#[derive(Debug, Args)]
pub struct Snooping {
    /// One JSON object per event.
    #[arg(long)]
    json: bool,

    /// Print a timestamp column: seconds since the start.
    #[arg(long)]
    timestamp: bool,

    /// Print a time column: the clock time (HH:MM:SS).
    #[arg(long)]
    time: bool,

    /// Stop after this long (seconds, or 500ms, 1.5s, 2m, 1h30m).
    #[arg(short, long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,
}

impl Snooping {
    /// The view: JSON or lines, their time columns (`clock`, `seconds`
    /// also from the tools' short flags), the duration.
    fn view(&self, clock: bool, seconds: bool) -> SnoopView {
        let columns = TimeColumns { clock: self.time || clock, seconds: self.timestamp || seconds };
        SnoopView { json: self.json, columns, duration: self.duration }
    }
}

/// Each exec, with its arguments and result, like bcc's execsnoop.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit execsnoop\n  perfkit execsnoop --failed-only    # failed execs only\n  perfkit execsnoop --json -- make -j8\n\nAs bcc's execsnoop: from the \
                        syscalls:sys_enter_execve(at) and sys_exit_execve(at) tracepoints, and sched:sched_process_exec for the path and \
                        arguments of a successful exec as the new program holds them (up to 2560 bytes); a failed exec shows up to 20 \
                        arguments of 127 bytes each as passed. A value that could not be read shows as [unreadable] (null in JSON); \
                        a cut one ends the line with ..."
)]
pub struct ExecsnoopArgs {
    #[command(flatten)]
    target: ToolTarget,

    /// Include failed execs (bcc's -x; perfkit shows them anyway).
    #[arg(short = 'x', long)]
    fails: bool,

    /// Failed execs only.
    #[arg(long)]
    failed_only: bool,

    /// Print a time column, the clock time (bcc's -T, as --time).
    #[arg(short = 'T')]
    time_short: bool,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    timestamp_short: bool,

    /// Execs by this user only.
    #[arg(short = 'u', long, value_name = "UID")]
    uid: Option<u32>,

    /// Print a UID column.
    #[arg(short = 'U', long)]
    print_uid: bool,

    /// Execs whose command name contains NAME only.
    #[arg(short = 'n', long, value_name = "NAME")]
    name: Option<String>,

    /// Execs with an argument containing LINE only.
    #[arg(short = 'l', long, value_name = "LINE")]
    line: Option<String>,

    /// Quote the arguments ("a b" "c").
    #[arg(short = 'q', long)]
    quote: bool,

    /// Execs by children of this process only (its direct children).
    #[arg(short = 'P', long, value_name = "PPID")]
    ppid: Option<u32>,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn execsnoop(args: ExecsnoopArgs) -> Result<ExitCode> {
    let view = args.snooping.view(args.time_short, args.timestamp_short);
    let filter = ExecFilter {
        failed_only: args.failed_only,
        uid: args.uid,
        ppid: args.ppid,
        name: args.name.clone(),
        line: args.line.clone(),
    };
    let start = |selection| {
        let mut config = ExecSnoopConfig::default();
        config.selection = selection;
        Ok(ExecSnoop::start(config)?)
    };
    let banner = |_: &_| "Tracing execs... Hit Ctrl-C to end.".to_owned();
    let (uid, quote) = (args.print_uid, args.quote);
    run("execsnoop", args.target.watch()?, start, banner, |t, d| drive::execsnoop(t, &view, &filter, uid, quote, d))
}

/// Each open, with its path, flags and result, like bcc's opensnoop.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit opensnoop\n  perfkit opensnoop -x -p 1234       # failed opens of one process\n  perfkit opensnoop --json -- ./app\n\nAs bcc's opensnoop: open(2) and \
                        openat(2), from the syscalls tracepoints (openat2 is not watched). Paths are kept up to 255 bytes."
)]
pub struct OpensnoopArgs {
    #[command(flatten)]
    target: ToolTarget,

    /// Failed opens only.
    #[arg(short = 'x', long)]
    failed: bool,

    /// Show the open flags (bcc's extended fields).
    #[arg(short = 'e', long = "extended-fields", visible_alias = "flags")]
    flags: bool,

    /// Only opens whose flags have this one (O_WRONLY, O_RDWR, O_CREAT...;
    /// repeat for any of several), as bcc's -f.
    #[arg(short = 'f', long = "flag-filter", value_name = "O_FLAG", value_parser = drive::open_flag)]
    flag_filter: Vec<i32>,

    /// Print a timestamp column, seconds since the start (bcc's -T, as
    /// --timestamp).
    #[arg(short = 'T')]
    timestamp_short: bool,

    /// Opens by this user only.
    #[arg(short = 'u', long, value_name = "UID")]
    uid: Option<u32>,

    /// Print a UID column.
    #[arg(short = 'U', long)]
    print_uid: bool,

    /// Opens by processes whose name contains NAME only.
    #[arg(short = 'n', long, value_name = "NAME")]
    name: Option<String>,

    /// Opens by this thread only.
    #[arg(short = 't', long, value_name = "TID")]
    tid: Option<u32>,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn opensnoop(args: OpensnoopArgs) -> Result<ExitCode> {
    let view = args.snooping.view(false, args.timestamp_short);
    let filter = OpenFilter { flags: args.flag_filter.clone(), uid: args.uid, tid: args.tid, name: args.name.clone() };
    let start = |selection| {
        let mut config = OpenSnoopConfig::default();
        (config.selection, config.failed_only) = (selection, args.failed);
        Ok(OpenSnoop::start(config)?)
    };
    let banner = |_: &_| "Tracing opens... Hit Ctrl-C to end.".to_owned();
    let (uid, flags) = (args.print_uid, args.flags);
    run("opensnoop", args.target.watch()?, start, banner, |t, d| drive::opensnoop(t, &view, &filter, uid, flags, d))
}

/// Each closed TCP session, like bcc's tcplife.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit tcplife\n  perfkit tcplife -p 1234 --json\n\nAs bcc's tcplife: from sock:inet_sock_set_state, with bytes \
                        received and acknowledged read from the socket at close (the kernel's counters, which include the SYN and FIN: up to 2 bytes above the data). \
                        The owner is the process that connected or closed it."
)]
pub struct TcplifeArgs {
    /// Processes whose sessions to show, comma-separated.
    #[arg(short, long, value_name = "PID[,PID...]", value_parser = parse_pid_list)]
    pid: Option<IdList>,

    /// Print a time column, the clock time (bcc's -T, as --time).
    #[arg(short = 'T')]
    time_short: bool,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    timestamp_short: bool,

    /// Sessions on these local ports only, comma-separated.
    #[arg(short = 'L', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    localport: Vec<u16>,

    /// Sessions with these remote ports only, comma-separated.
    #[arg(short = 'D', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    remoteport: Vec<u16>,

    /// IPv4 sessions only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    ipv4: bool,

    /// IPv6 sessions only.
    #[arg(short = '6', long)]
    ipv6: bool,

    /// Wide columns for IPv6 addresses.
    #[arg(short = 'w', long)]
    wide: bool,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn tcplife(args: TcplifeArgs) -> Result<ExitCode> {
    let view = args.snooping.view(args.time_short, args.timestamp_short);
    let filter = SessionFilter {
        local_ports: args.localport.clone(),
        remote_ports: args.remoteport.clone(),
        ip: IpVersion::only(args.ipv4, args.ipv6),
    };
    let selection = args.pid.as_ref().map(|IdList(p)| Selection::Processes { pids: p.clone(), follow_children: true });
    let start = |_| {
        let mut config = TcpLifeConfig::default();
        config.selection = selection.clone();
        Ok(TcpLife::start(config)?)
    };
    let banner = |_: &_| "Tracing TCP sessions... Hit Ctrl-C to end.".to_owned();
    let watch = Watch::machine();
    run("tcplife", watch, start, banner, |t, d| drive::tcplife(t, &view, &filter, args.wide, d))
}

/// Each TCP retransmission, like bcc's tcpretrans.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit tcpretrans\n  perfkit tcpretrans -c             # counts by flow at the end\n\nAs bcc's tcpretrans: from \
                        tcp:tcp_retransmit_skb (no kprobes); tail loss probes are not traced."
)]
pub struct TcpretransArgs {
    /// IPv4 retransmissions only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    ipv4: bool,

    /// IPv6 retransmissions only.
    #[arg(short = '6', long)]
    ipv6: bool,

    /// Count retransmissions by flow (addresses and ports, as bcc's -c) and
    /// print the counts at the end, then by TCP state: retransmissions,
    /// their segments, and failed attempts.
    #[arg(short = 'c', long)]
    count: bool,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn tcpretrans(args: TcpretransArgs) -> Result<ExitCode> {
    let view = args.snooping.view(false, false);
    let start = |_| Ok(TcpRetrans::start(TcpRetransConfig::default())?);
    let banner = |_: &_| "Tracing TCP retransmissions... Hit Ctrl-C to end.".to_owned();
    let ip = IpVersion::only(args.ipv4, args.ipv6);
    run("tcpretrans", Watch::machine(), start, banner, |t, d| drive::tcpretrans(t, &view, ip, args.count, d))
}
