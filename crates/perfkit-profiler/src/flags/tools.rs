//! The bcc-style tools' flags: what they watch, how they report, and each
//! tool's own flags, as [`ToolFlags`] that a runner starts and drives.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::Args;
use perfkit_probes::{
    ProbeError, Selection,
    tools::{
        BlockIo, BlockIoConfig, ExecSnoop, ExecSnoopConfig, OpenSnoop, OpenSnoopConfig, ProbeSpec, ResolvedProbe,
        Resolver, Runqlat, RunqlatConfig, RunqlatPer, Syscount, SyscountConfig, TcpLife, TcpLifeConfig, TcpRetrans,
        TcpRetransConfig,
        drive::{
            self, Clock, DriveError, Driver, ExecFilter, IpVersion, OpenFilter, ReportView, SessionFilter, SnoopView,
            SyscountView,
        },
        run::{Schedule, Watch},
        text::TimeColumns,
    },
};
use perfkit_target::{ExitStatus, PidList};

use super::{FlagError, tool_interval};
use crate::Target;

mod events;
mod irq;
mod stacks;
mod trace;
mod ufunc;
pub use events::{CapableArgs, MountsnoopArgs, OomkillArgs, OpenFilters, TcpacceptArgs, TcpconnectArgs};
pub use irq::{HardirqsArgs, IrqOptions, RunqlenArgs, SoftirqsArgs};
pub use stacks::{MemleakArgs, StackcountArgs, WakeuptimeArgs};
pub use trace::{ArgdistArgs, TraceArgs};
pub use ufunc::{FunccountArgs, FunclatencyArgs, UfuncReporting};

/// A bcc-style tool as its flags describe it.
///
/// A runner calls [`watch`](ToolFlags::watch), then
/// [`start`](ToolFlags::start) on the watch's selection, says the
/// [`banner`](ToolFlags::banner), releases the watch (a held command
/// starts), and [`drive`](ToolFlags::drive)s the tool to its output.
/// perfkit's own runner writes the output on standard output and the
/// notices on standard error; an in-house runner can send them anywhere.
pub trait ToolFlags {
    /// The running tool.
    type Tool;

    /// The tool's name, as bcc names it (`runqlat`).
    const NAME: &'static str;

    /// Checks the flags, resolves what must be known before the tool
    /// loads (probes, libraries), and returns what to watch: processes, a
    /// cgroup, a held command, or the machine.
    fn watch(&mut self) -> Result<Watch, FlagError>;

    /// Loads and attaches the tool on `selection` (the watch's).
    fn start(&self, selection: Option<Selection>) -> Result<Self::Tool, FlagError>;

    /// The line said once the tool runs, bcc's ("Tracing... Hit Ctrl-C to
    /// end.").
    fn banner(&self, tool: &Self::Tool, clock: &dyn Clock) -> String;

    /// Runs the tool to its end (its duration or count, the driver's stop
    /// flag, or the watched command's exit), writing its output.
    fn drive(&self, tool: &mut Self::Tool, driver: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError>;

    /// The line said after the tool ended normally, if bcc's tool says one
    /// ("Detaching...").
    fn farewell(&self) -> Option<&'static str> {
        None
    }
}

/// A probe pattern as [`ToolFlags::watch`] resolved it (funccount,
/// funclatency, stackcount).
type Resolved = Option<(ProbeSpec, Vec<ResolvedProbe>)>;

/// The resolution, which `watch` made before `start` and `drive`.
fn resolved(r: &Resolved) -> Result<&(ProbeSpec, Vec<ResolvedProbe>), ProbeError> {
    r.as_ref().ok_or_else(|| ProbeError::InvalidConfig("the probe pattern is resolved by ToolFlags::watch".into()))
}

/// Processes to watch: a PID list, a cgroup, or a command.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ToolTargetArgs {
    /// Processes to watch (and the processes they start), comma-separated.
    #[arg(short, long, value_name = "PID[,PID...]", group = "tool_target")]
    pub pid: Option<PidList>,

    /// With -p: also the existing descendants of each process (children,
    /// their children..., as pgrep -P).
    #[arg(long)]
    pub children: bool,

    /// A cgroup v2 group to watch (a container, a systemd service).
    #[arg(long, value_name = "PATH", group = "tool_target")]
    pub cgroup: Option<PathBuf>,

    /// Command to run and watch until it exits (after `--`).
    #[arg(value_name = "COMMAND", last = true, group = "tool_target")]
    pub command: Vec<OsString>,
}

impl ToolTargetArgs {
    /// The first process of -p: its mappings name the libraries probes
    /// are resolved in.
    pub fn first_pid(&self) -> Option<u32> {
        self.pid.as_ref().and_then(|PidList(p)| p.first().copied())
    }

    /// What resolves probes: the first process of -p, else the loader's
    /// directories.
    pub fn resolver(&self) -> Resolver {
        Resolver::new(self.first_pid(), crate::library_dirs())
    }

    /// Parses and resolves the probe pattern of funccount, funclatency
    /// and stackcount.
    pub fn resolve(&self, pattern: Option<&str>) -> Result<(ProbeSpec, Vec<ResolvedProbe>), FlagError> {
        let pattern = pattern.ok_or(FlagError::Conflict(
            "a probe is needed: LIB:FUNC, PATH:FUNC, t:CATEGORY:NAME or u:PATH:[PROVIDER:]NAME",
        ))?;
        let spec = ProbeSpec::parse(pattern)?;
        let probes = self.resolver().resolve(&spec)?;
        Ok((spec, probes))
    }

    /// What to watch: the processes (and, with --children, their
    /// descendants), the cgroup, the command (held until released), or
    /// without any of them the machine.
    pub fn watch(&self) -> Result<Watch, FlagError> {
        if self.children && self.pid.is_none() {
            return Err(FlagError::Conflict("--children goes with -p PID: the descendants of the processes given"));
        }
        let target = if let Some(PidList(pids)) = &self.pid {
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

/// Interval, count and JSON: the reporting options of the histogram tools.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct Reporting {
    /// Print JSON: one object per interval.
    #[arg(long)]
    pub json: bool,

    /// Print the time of each interval (bcc's -T, on runqlat and
    /// biolatency).
    #[arg(long)]
    pub timestamp: bool,

    /// Seconds between reports; without it, one report at Ctrl-C (or when
    /// the command exits).
    #[arg(value_name = "INTERVAL", value_parser = tool_interval)]
    pub interval: Option<Duration>,

    /// Reports before exiting.
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

impl Reporting {
    /// When and how to report: every INTERVAL, COUNT times; `time` (a
    /// tool's `-T`) also asks for the time.
    pub fn view(&self, time: bool) -> ReportView {
        let schedule = Schedule { interval: self.interval, count: self.count, duration: None };
        ReportView { json: self.json, timestamp: self.timestamp || time, schedule }
    }
}

/// Options of the snooping tools.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct Snooping {
    /// One JSON object per event.
    #[arg(long)]
    pub json: bool,

    /// Print a timestamp column: seconds since the start.
    #[arg(long)]
    pub timestamp: bool,

    /// Print a time column: the clock time (HH:MM:SS).
    #[arg(long)]
    pub time: bool,

    /// Stop after this long (seconds, or 500ms, 1.5s, 2m, 1h30m).
    #[arg(short, long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,
}

impl Snooping {
    /// The view: JSON or lines, their time columns (`clock`, `seconds`
    /// also from the tools' short flags), the duration.
    pub fn view(&self, clock: bool, seconds: bool) -> SnoopView {
        let columns = TimeColumns { clock: self.time || clock, seconds: self.timestamp || seconds };
        SnoopView { json: self.json, columns, duration: self.duration }
    }
}

/// Run-queue (scheduler) latency as a histogram, like bcc's runqlat.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct RunqlatArgs {
    /// Milliseconds instead of microseconds.
    #[arg(short = 'm', long)]
    pub milliseconds: bool,

    /// One histogram per process.
    #[arg(short = 'P', long, group = "per")]
    pub pids: bool,

    /// One histogram per thread.
    #[arg(short = 'L', long, group = "per")]
    pub tids: bool,

    /// One histogram per PID namespace.
    #[arg(long, group = "per")]
    pub pidnss: bool,

    /// One histogram per cgroup v2 group.
    #[arg(long, group = "per")]
    pub cgroups: bool,

    /// Interval, count and JSON.
    #[command(flatten)]
    pub reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    pub time: bool,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,
}

impl RunqlatArgs {
    /// One histogram for what.
    pub fn per(&self) -> RunqlatPer {
        if self.pids {
            RunqlatPer::Process
        } else if self.tids {
            RunqlatPer::Thread
        } else if self.pidnss {
            RunqlatPer::PidNamespace
        } else if self.cgroups {
            RunqlatPer::Cgroup
        } else {
            RunqlatPer::All
        }
    }
}

impl ToolFlags for RunqlatArgs {
    type Tool = Runqlat;
    const NAME: &'static str = "runqlat";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<Runqlat, FlagError> {
        let mut config = RunqlatConfig::default();
        (config.selection, config.per) = (selection, self.per());
        Ok(Runqlat::start(config)?)
    }

    fn banner(&self, _: &Runqlat, _: &dyn Clock) -> String {
        "Tracing run queue latency... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut Runqlat, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        drive::runqlat(tool, self.per(), self.milliseconds, &self.reporting.view(self.time), d)
    }
}

/// Block I/O latency as a histogram, like bcc's biolatency.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct BiolatencyArgs {
    /// Milliseconds instead of microseconds.
    #[arg(short = 'm', long)]
    pub milliseconds: bool,

    /// One histogram per disk.
    #[arg(short = 'D', long)]
    pub disks: bool,

    /// One histogram per operation (Read, Write, Sync-Write, Flush...).
    #[arg(short = 'F', long)]
    pub flags: bool,

    /// Include time queued in the OS (from insertion, not issue).
    #[arg(short = 'Q', long)]
    pub queued: bool,

    /// Interval, count and JSON.
    #[command(flatten)]
    pub reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    pub time: bool,
}

impl ToolFlags for BiolatencyArgs {
    type Tool = BlockIo;
    const NAME: &'static str = "biolatency";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<BlockIo, FlagError> {
        let mut config = BlockIoConfig::default();
        (config.histograms, config.per_disk, config.per_flags, config.queued) =
            (true, self.disks, self.flags, self.queued);
        Ok(BlockIo::start(config)?)
    }

    fn banner(&self, _: &BlockIo, _: &dyn Clock) -> String {
        "Tracing block device I/O... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut BlockIo, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = self.reporting.view(self.time);
        drive::biolatency(tool, (self.disks, self.flags), self.milliseconds, &view, d)
    }
}

/// One I/O per line, like bcc's biosnoop.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct BiosnoopArgs {
    /// Also show time queued in the OS.
    #[arg(short = 'Q', long)]
    pub queued: bool,

    /// One JSON object per I/O.
    #[arg(long)]
    pub json: bool,

    /// Stop after this long (seconds, or 500ms, 1.5s, 2m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,

    /// Only I/O of this disk (`sda`, `nvme0n1`), as libbpf-tools' -d.
    #[arg(short = 'd', long, value_name = "DISK")]
    pub disk: Option<String>,
}

impl ToolFlags for BiosnoopArgs {
    type Tool = BlockIo;
    const NAME: &'static str = "biosnoop";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<BlockIo, FlagError> {
        let mut config = BlockIoConfig::default();
        (config.events, config.queued) = (true, self.queued);
        Ok(BlockIo::start(config)?)
    }

    fn banner(&self, _: &BlockIo, _: &dyn Clock) -> String {
        "Tracing block I/O... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut BlockIo, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = SnoopView { json: self.json, duration: self.duration, ..SnoopView::default() };
        drive::biosnoop(tool, self.queued, self.disk.as_deref(), &view, d)
    }
}

/// Syscall counts (and latency), like bcc's syscount.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct SyscountArgs {
    /// Time spent in each syscall.
    #[arg(short = 'L', long)]
    pub latency: bool,

    /// Milliseconds instead of microseconds (with -L).
    #[arg(short = 'm', long)]
    pub milliseconds: bool,

    /// Count per process instead of per syscall.
    #[arg(short = 'P', long)]
    pub process: bool,

    /// Failed syscalls only.
    #[arg(short = 'x', long)]
    pub failures: bool,

    /// Rows to print: the top N by count (by time with -L), as bcc's -T.
    #[arg(short = 'T', long, short_alias = 'n', value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Interval, count and JSON.
    #[command(flatten)]
    pub reporting: Reporting,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,
}

impl ToolFlags for SyscountArgs {
    type Tool = Syscount;
    const NAME: &'static str = "syscount";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<Syscount, FlagError> {
        let mut config = SyscountConfig::default();
        (config.selection, config.per_process, config.latency) = (selection, self.process, self.latency);
        config.failed_only = self.failures;
        Ok(Syscount::start(config)?)
    }

    fn banner(&self, _: &Syscount, _: &dyn Clock) -> String {
        let failed = if self.failures { "failed " } else { "" };
        format!("Tracing {failed}syscalls, printing top {}... Ctrl-C to quit.", self.top)
    }

    fn drive(&self, tool: &mut Syscount, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let s = SyscountView {
            per_process: self.process,
            latency: self.latency,
            milliseconds: self.milliseconds,
            top: self.top,
        };
        drive::syscount(tool, s, &self.reporting.view(false), d)
    }
}

/// Each exec, with its arguments and result, like bcc's execsnoop.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ExecsnoopArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// Include failed execs (bcc's -x; perfkit shows them anyway).
    #[arg(short = 'x', long)]
    pub fails: bool,

    /// Failed execs only.
    #[arg(long)]
    pub failed_only: bool,

    /// Print a time column, the clock time (bcc's -T, as --time).
    #[arg(short = 'T')]
    pub time_short: bool,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    pub timestamp_short: bool,

    /// Execs by this user only.
    #[arg(short = 'u', long, value_name = "UID")]
    pub uid: Option<u32>,

    /// Print a UID column.
    #[arg(short = 'U', long)]
    pub print_uid: bool,

    /// Execs whose command name contains NAME only.
    #[arg(short = 'n', long, value_name = "NAME")]
    pub name: Option<String>,

    /// Execs with an argument containing LINE only.
    #[arg(short = 'l', long, value_name = "LINE")]
    pub line: Option<String>,

    /// Quote the arguments ("a b" "c").
    #[arg(short = 'q', long)]
    pub quote: bool,

    /// Execs by children of this process only (its direct children).
    #[arg(short = 'P', long, value_name = "PPID")]
    pub ppid: Option<u32>,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for ExecsnoopArgs {
    type Tool = ExecSnoop;
    const NAME: &'static str = "execsnoop";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<ExecSnoop, FlagError> {
        let mut config = ExecSnoopConfig::default();
        config.selection = selection;
        Ok(ExecSnoop::start(config)?)
    }

    fn banner(&self, _: &ExecSnoop, _: &dyn Clock) -> String {
        "Tracing execs... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut ExecSnoop, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = self.snooping.view(self.time_short, self.timestamp_short);
        let filter = ExecFilter {
            failed_only: self.failed_only,
            uid: self.uid,
            ppid: self.ppid,
            name: self.name.clone(),
            line: self.line.clone(),
        };
        drive::execsnoop(tool, &view, &filter, self.print_uid, self.quote, d)
    }
}

/// Each open, with its path, flags and result, like bcc's opensnoop.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct OpensnoopArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// Failed opens only.
    #[arg(short = 'x', long)]
    pub failed: bool,

    /// Show the open flags (bcc's extended fields).
    #[arg(short = 'e', long = "extended-fields", visible_alias = "flags")]
    pub flags: bool,

    /// Only opens whose flags have this one (O_WRONLY, O_RDWR, O_CREAT...;
    /// repeat for any of several), as bcc's -f.
    #[arg(short = 'f', long = "flag-filter", value_name = "O_FLAG", value_parser = drive::open_flag)]
    pub flag_filter: Vec<i32>,

    /// Print a timestamp column, seconds since the start (bcc's -T, as
    /// --timestamp).
    #[arg(short = 'T')]
    pub timestamp_short: bool,

    /// Opens by this user only.
    #[arg(short = 'u', long, value_name = "UID")]
    pub uid: Option<u32>,

    /// Print a UID column.
    #[arg(short = 'U', long)]
    pub print_uid: bool,

    /// Opens by processes whose name contains NAME only.
    #[arg(short = 'n', long, value_name = "NAME")]
    pub name: Option<String>,

    /// Opens by this thread only.
    #[arg(short = 't', long, value_name = "TID")]
    pub tid: Option<u32>,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for OpensnoopArgs {
    type Tool = OpenSnoop;
    const NAME: &'static str = "opensnoop";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<OpenSnoop, FlagError> {
        let mut config = OpenSnoopConfig::default();
        (config.selection, config.failed_only) = (selection, self.failed);
        Ok(OpenSnoop::start(config)?)
    }

    fn banner(&self, _: &OpenSnoop, _: &dyn Clock) -> String {
        "Tracing opens... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut OpenSnoop, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = self.snooping.view(false, self.timestamp_short);
        let filter =
            OpenFilter { flags: self.flag_filter.clone(), uid: self.uid, tid: self.tid, name: self.name.clone() };
        drive::opensnoop(tool, &view, &filter, self.print_uid, self.flags, d)
    }
}

/// Each closed TCP session, like bcc's tcplife.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct TcplifeArgs {
    /// Processes whose sessions to show, comma-separated.
    #[arg(short, long, value_name = "PID[,PID...]")]
    pub pid: Option<PidList>,

    /// Print a time column, the clock time (bcc's -T, as --time).
    #[arg(short = 'T')]
    pub time_short: bool,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    pub timestamp_short: bool,

    /// Sessions on these local ports only, comma-separated.
    #[arg(short = 'L', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    pub localport: Vec<u16>,

    /// Sessions with these remote ports only, comma-separated.
    #[arg(short = 'D', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    pub remoteport: Vec<u16>,

    /// IPv4 sessions only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// IPv6 sessions only.
    #[arg(short = '6', long)]
    pub ipv6: bool,

    /// Wide columns for IPv6 addresses.
    #[arg(short = 'w', long)]
    pub wide: bool,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for TcplifeArgs {
    type Tool = TcpLife;
    const NAME: &'static str = "tcplife";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<TcpLife, FlagError> {
        let mut config = TcpLifeConfig::default();
        config.selection =
            self.pid.as_ref().map(|PidList(p)| Selection::Processes { pids: p.clone(), follow_children: true });
        Ok(TcpLife::start(config)?)
    }

    fn banner(&self, _: &TcpLife, _: &dyn Clock) -> String {
        "Tracing TCP sessions... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut TcpLife, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = self.snooping.view(self.time_short, self.timestamp_short);
        let filter = SessionFilter {
            local_ports: self.localport.clone(),
            remote_ports: self.remoteport.clone(),
            ip: IpVersion::only(self.ipv4, self.ipv6),
        };
        drive::tcplife(tool, &view, &filter, self.wide, d)
    }
}

/// Each TCP retransmission, like bcc's tcpretrans.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct TcpretransArgs {
    /// IPv4 retransmissions only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// IPv6 retransmissions only.
    #[arg(short = '6', long)]
    pub ipv6: bool,

    /// Count retransmissions by flow (addresses and ports, as bcc's -c) and
    /// print the counts at the end, then by TCP state: retransmissions,
    /// their segments, and failed attempts.
    #[arg(short = 'c', long)]
    pub count: bool,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for TcpretransArgs {
    type Tool = TcpRetrans;
    const NAME: &'static str = "tcpretrans";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<TcpRetrans, FlagError> {
        Ok(TcpRetrans::start(TcpRetransConfig::default())?)
    }

    fn banner(&self, _: &TcpRetrans, _: &dyn Clock) -> String {
        "Tracing TCP retransmissions... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut TcpRetrans, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let ip = IpVersion::only(self.ipv4, self.ipv6);
        drive::tcpretrans(tool, &self.snooping.view(false, false), ip, self.count, d)
    }
}
