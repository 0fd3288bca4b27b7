//! The bcc-style tools: `runqlat`, `biolatency`, `biosnoop`, `syscount`,
//! `execsnoop`, `opensnoop`, `tcplife`, `tcpretrans`, and (in `events`)
//! `tcpconnect`, `tcpaccept`, `oomkill`, `mountsnoop`, `capable`. Each is a thin
//! caller of `perfkit_probes::tools`: parse the options into the tool's
//! configuration, run it with `tools::run` (intervals, `-d`, the command's
//! exit, Ctrl-C's flag), and print to stdout what the library writes
//! (`tools::{text, snoop, tracetext}` and each tool's report: bcc's
//! layouts, JSON documents); the filters bcc applies in user space (`-u`,
//! `-n`, ports), the clock's text and warnings on stderr stay here.

use std::{collections::HashMap, ffi::OsString, io::Write, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Result;
use clap::Args;
use perfkit_model::printable;
use perfkit_probes::{
    Selection,
    tools::{
        BlockIo, BlockIoConfig, ExecSnoop, ExecSnoopConfig, Histogram, OpenSnoop, OpenSnoopConfig, Runqlat,
        RunqlatConfig, RunqlatPer, Syscount, SyscountConfig, TcpLife, TcpLifeConfig, TcpRetrans, TcpRetransConfig,
        ToolStats, disk_name,
        run::{Report, Schedule, Watch, losses, run_events, run_intervals},
        snoop::{
            BlockJson, BlockLayout, ExecJson, ExecLayout, OpenJson, OpenLayout, RetransFlows, RetransmitJson,
            SessionJson, SessionLayout, Stamp, write_retransmit, write_retransmit_heading,
        },
        syscount::{SyscountIntervals, SyscountReport, write_syscount_table},
        text::{EventJson, HistogramJson, HistogramPer, HistogramReport, TimeColumns, write_histograms},
    },
};
use perfkit_profiler::Target;

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

/// Ends the run (the command terminated if it still runs) with the exit
/// code perf would pass on.
pub(crate) fn finish(watch: Watch, exited: Option<perfkit_target::ExitStatus>) -> ExitCode {
    ExitCode::from(watch.finish(exited, perfkit_profiler::COMMAND_GRACE))
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
    /// When to report: every INTERVAL, COUNT times.
    pub(crate) fn schedule(&self) -> Schedule {
        Schedule { interval: self.interval, count: self.count, duration: None }
    }
}

/// Runs a histogram tool: `report` every interval (or once at the end),
/// until Ctrl-C, the count or the command's exit.
pub(crate) fn histogram_loop(
    reporting: &Reporting,
    watch: &mut Watch,
    report: impl FnMut(Report) -> Result<()>,
) -> Result<Option<perfkit_target::ExitStatus>> {
    run_intervals(&reporting.schedule(), watch, crate::signals::interrupt_flag()?, || Ok(()), report)
}

/// Warns about what the tool lost since the last warning (never silent).
pub(crate) fn warn_losses(tool: &str, stats: &ToolStats, reported: &mut ToolStats) {
    for loss in losses(stats, reported) {
        eprintln!("perfkit {tool}: {loss}");
    }
    *reported = *stats;
}

/// A process's name for labels, from /proc (empty once it is gone).
fn comm_of(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/comm"))
        .map(|b| perfkit_model::escape_bytes(b.strip_suffix(b"\n").unwrap_or(&b)))
        .unwrap_or_default()
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

pub fn runqlat(mut args: RunqlatArgs) -> Result<ExitCode> {
    args.reporting.timestamp |= args.time;
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
    let mut watch = args.target.watch()?;
    let mut config = RunqlatConfig::default();
    config.selection = watch.selection();
    config.per = per;
    let tool = Runqlat::start(config)?;
    watch.release()?;
    eprintln!("Tracing run queue latency... Hit Ctrl-C to end.");
    let (unit, scale) = if args.milliseconds { ("msecs", 1000) } else { ("usecs", 1) };
    let mut previous: HashMap<u64, Histogram> = HashMap::new();
    let mut reported = ToolStats::default();
    let exited = histogram_loop(&args.reporting, &mut watch, |_| {
        let hists = tool.histograms()?;
        let stats = tool.stats()?;
        warn_losses("runqlat", &stats, &mut reported);
        let interval: Vec<Histogram> = hists
            .iter()
            .map(|h| previous.get(&h.id).map_or_else(|| h.clone(), |p| h.since(p)))
            .filter(|h| h.count() > 0 || per == RunqlatPer::All)
            .collect();
        let names =
            if matches!(per, RunqlatPer::Process | RunqlatPer::Thread) { tool.names()? } else { HashMap::new() };
        let comm_of = |id: u32| names.get(&id).cloned().unwrap_or_else(|| comm_of(id));
        let label = |h: &Histogram| match per {
            RunqlatPer::Process => HistogramPer::Process { comm: comm_of(h.id as u32), pid: h.id },
            RunqlatPer::Thread => HistogramPer::Thread { comm: comm_of(h.id as u32), tid: h.id },
            RunqlatPer::PidNamespace => HistogramPer::PidNamespace { pidns: h.id },
            // A walk of the whole cgroup tree: once per group.
            RunqlatPer::Cgroup => HistogramPer::Cgroup {
                cgroup: perfkit_target::cgroup::path_of_id(h.id).unwrap_or_default(),
                cgroup_id: h.id,
            },
            _ => HistogramPer::All {},
        };
        print_report("runqlat", &args.reporting, unit, scale, &interval, label)?;
        previous = hists.into_iter().map(|h| (h.id, h)).collect();
        Ok(())
    })?;
    Ok(finish(watch, exited))
}

/// Prints one report of histograms, as text or JSON.
fn print_report(
    tool: &'static str,
    reporting: &Reporting,
    unit: &str,
    scale: u64,
    hists: &[Histogram],
    label: impl Fn(&Histogram) -> HistogramPer,
) -> Result<()> {
    let labelled: Vec<(HistogramPer, &Histogram)> = hists.iter().map(|h| (label(h), h)).collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if reporting.json {
        let hists = labelled.into_iter().map(|(per, h)| HistogramJson::new(h, per)).collect();
        let doc = HistogramReport::new(tool, crate::clock::now_rfc3339(), reporting.interval, hists);
        serde_json::to_writer(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(out)?;
        if reporting.timestamp {
            writeln!(out, "{}", crate::clock::now_hms())?;
        }
        write_histograms(
            &mut out,
            unit,
            scale,
            labelled.iter().map(|(per, h)| (printable(&per.label()).into_owned(), *h)),
        )?;
    }
    out.flush()?;
    Ok(())
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

pub fn biolatency(mut args: BiolatencyArgs) -> Result<ExitCode> {
    args.reporting.timestamp |= args.time;
    let mut config = BlockIoConfig::default();
    config.histograms = true;
    config.per_disk = args.disks;
    config.per_flags = args.flags;
    config.queued = args.queued;
    let tool = BlockIo::start(config)?;
    let mut watch = Watch::machine();
    eprintln!("Tracing block device I/O... Hit Ctrl-C to end.");
    let (unit, scale) = if args.milliseconds { ("msecs", 1000) } else { ("usecs", 1) };
    let mut previous: HashMap<(u64, u32), Histogram> = HashMap::new();
    let mut reported = ToolStats::default();
    let exited = histogram_loop(&args.reporting, &mut watch, |_| {
        let hists = tool.histograms()?;
        warn_losses("biolatency", &tool.stats()?, &mut reported);
        let interval: Vec<Histogram> = hists
            .iter()
            .map(|h| previous.get(&(h.id, h.sub)).map_or_else(|| h.clone(), |p| h.since(p)))
            .filter(|h| h.count() > 0 || !(args.disks || args.flags))
            .collect();
        let label = |h: &Histogram| {
            let (major, minor) = perfkit_probes::tools::kernel_dev(h.id);
            HistogramPer::Block {
                device: args.disks.then(|| format!("{major}:{minor}")),
                disk: args.disks.then(|| disk_name(major, minor)),
                flags: args.flags.then(|| perfkit_probes::tools::operation_name(h.sub)),
            }
        };
        print_report("biolatency", &args.reporting, unit, scale, &interval, label)?;
        previous = hists.into_iter().map(|h| ((h.id, h.sub), h)).collect();
        Ok(())
    })?;
    Ok(finish(watch, exited))
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
    let mut config = BlockIoConfig::default();
    config.events = true;
    config.queued = args.queued;
    let mut tool = BlockIo::start(config)?;
    eprintln!("Tracing block I/O... Hit Ctrl-C to end.");
    let mut names: HashMap<(u32, u32), String> = HashMap::new();
    let layout = BlockLayout::new(args.queued);
    if !args.json {
        layout.write_heading(&mut std::io::stdout().lock())?;
    }
    // Times from the tool's start, on the clock of the events' own
    // timestamps (CLOCK_MONOTONIC, as bpf_ktime_get_ns).
    let start_ns = monotonic_ns();
    snoop_loop(
        "biosnoop",
        args.duration,
        &mut Watch::machine(),
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, _| {
            let t = e.ts_ns.saturating_sub(start_ns) as f64 / 1e9;
            let disk = names.entry((e.major, e.minor)).or_insert_with(|| disk_name(e.major, e.minor)).clone();
            if args.disk.as_ref().is_some_and(|d| *d != disk) {
                return Ok(());
            }
            if args.json {
                return write_event(out, t, BlockJson::new(e, &disk));
            }
            Ok(layout.write(out, e, &disk, t)?)
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of the events'
/// timestamps.
fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
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
    let mut watch = args.target.watch()?;
    let mut config = SyscountConfig::default();
    config.selection = watch.selection();
    config.per_process = args.process;
    config.latency = args.latency;
    config.failed_only = args.failures;
    let tool = Syscount::start(config)?;
    watch.release()?;
    eprintln!(
        "Tracing {}syscalls, printing top {}... Ctrl-C to quit.",
        if args.failures { "failed " } else { "" },
        args.top
    );
    let mut intervals = SyscountIntervals::new(args.process);
    let mut reported = ToolStats::default();
    let (unit, div) = if args.milliseconds { ("ms", 1e6) } else { ("us", 1e3) };
    let exited = histogram_loop(&args.reporting, &mut watch, |_| {
        let rows = intervals.next(tool.counts()?, args.latency, args.top);
        warn_losses("syscount", &tool.stats()?, &mut reported);
        // Names as first counted: a process that has exited keeps its own.
        let names = if args.process { tool.process_names()? } else { HashMap::new() };
        let name =
            |k: u32| if args.process { names.get(&k).cloned().unwrap_or_else(|| comm_of(k)) } else { tool.name(k) };
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if args.reporting.json {
            let interval = args.reporting.interval;
            let doc =
                SyscountReport::new(crate::clock::now_rfc3339(), interval, &rows, args.process, args.latency, name);
            serde_json::to_writer(&mut out, &doc)?;
            writeln!(out)?;
        } else {
            writeln!(out, "[{}]", crate::clock::now_hms())?;
            let latency = args.latency.then_some((unit, div));
            write_syscount_table(&mut out, &rows, args.process, latency, |k| printable(&name(k)).into_owned())?;
            writeln!(out)?;
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(finish(watch, exited))
}

/// Writes one event as a JSON line, with the schema version and its time.
fn write_event(out: &mut dyn Write, t: f64, event: impl serde::Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, &EventJson::new(event, t))?;
    writeln!(out)?;
    Ok(())
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
    /// The time columns shown.
    fn columns(&self) -> TimeColumns {
        TimeColumns { clock: self.time, seconds: self.timestamp }
    }
}

/// An event's time, `t` seconds after the start, on the terminal's clock.
fn stamp(t: f64) -> Stamp<'static> {
    Stamp { t, clock: &crate::clock::now_hms }
}

/// Writes a heading line to stdout.
fn heading(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    Ok(write(&mut std::io::stdout().lock())?)
}

/// Streams events until Ctrl-C, the duration or the command's exit:
/// `print` each, and warn of losses.
fn snoop_loop<E>(
    tool: &str,
    duration: Option<Duration>,
    watch: &mut Watch,
    mut poll: impl FnMut(Duration) -> Result<(Vec<E>, ToolStats)>,
    mut print: impl FnMut(&mut dyn Write, &E, f64) -> Result<()>,
) -> Result<Option<perfkit_target::ExitStatus>> {
    let mut reported = ToolStats::default();
    let stdout = std::io::stdout();
    run_events(duration, watch, crate::signals::interrupt_flag()?, |timeout, started| {
        let (events, stats) = poll(timeout)?;
        let mut out = stdout.lock();
        for e in &events {
            print(&mut out, e, started.elapsed().as_secs_f64())?;
        }
        out.flush()?;
        warn_losses(tool, &stats, &mut reported);
        Ok(true)
    })
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

pub fn execsnoop(mut args: ExecsnoopArgs) -> Result<ExitCode> {
    args.snooping.time |= args.time_short;
    args.snooping.timestamp |= args.timestamp_short;
    let mut watch = args.target.watch()?;
    let mut config = ExecSnoopConfig::default();
    config.selection = watch.selection();
    let mut tool = ExecSnoop::start(config)?;
    eprintln!("Tracing execs... Hit Ctrl-C to end.");
    watch.release()?;
    let layout = ExecLayout::new(args.snooping.columns(), args.print_uid, args.quote);
    if !args.snooping.json {
        heading(|o| layout.write_heading(o))?;
    }
    let exited = snoop_loop(
        "execsnoop",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if args.failed_only && e.ret == 0
                || args.uid.is_some_and(|u| u != e.uid)
                || args.ppid.is_some_and(|p| p != e.ppid)
                || args.name.as_ref().is_some_and(|n| !e.comm.contains(n.as_str()))
                || args.line.as_ref().is_some_and(|l| !e.args.iter().flatten().any(|a| a.contains(l.as_str())))
            {
                return Ok(());
            }
            if args.snooping.json {
                write_event(out, t, ExecJson::new(e))
            } else {
                Ok(layout.write(out, e, stamp(t))?)
            }
        },
    )?;
    Ok(finish(watch, exited))
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
    #[arg(short = 'f', long = "flag-filter", value_name = "O_FLAG", value_parser = parse_open_flag)]
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

/// An `O_*` flag by name, as bcc's opensnoop -f takes it.
fn parse_open_flag(s: &str) -> Result<i32, String> {
    let known = [
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
    known.iter().find(|(n, _)| *n == s).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
        format!("{s:?} is not an open flag ({})", names.join(", "))
    })
}

pub fn opensnoop(mut args: OpensnoopArgs) -> Result<ExitCode> {
    args.snooping.timestamp |= args.timestamp_short;
    // As bcc: an open passes when its flags share a bit with the filter's.
    let mask = args.flag_filter.iter().fold(0i64, |m, f| m | i64::from(*f));
    let mut watch = args.target.watch()?;
    let mut config = OpenSnoopConfig::default();
    config.selection = watch.selection();
    config.failed_only = args.failed;
    let mut tool = OpenSnoop::start(config)?;
    eprintln!("Tracing opens... Hit Ctrl-C to end.");
    watch.release()?;
    let layout = OpenLayout::new(args.snooping.columns(), args.print_uid, args.flags);
    if !args.snooping.json {
        heading(|o| layout.write_heading(o))?;
    }
    let exited = snoop_loop(
        "opensnoop",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if !args.flag_filter.is_empty() && (e.flags as i64) & mask == 0
                || args.uid.is_some_and(|u| u != e.uid)
                || args.tid.is_some_and(|t| t != e.tid)
                || args.name.as_ref().is_some_and(|n| !e.comm.contains(n.as_str()))
            {
                return Ok(());
            }
            if args.snooping.json {
                write_event(out, t, OpenJson::new(e))
            } else {
                Ok(layout.write(out, e, stamp(t))?)
            }
        },
    )?;
    Ok(finish(watch, exited))
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

pub fn tcplife(mut args: TcplifeArgs) -> Result<ExitCode> {
    args.snooping.time |= args.time_short;
    args.snooping.timestamp |= args.timestamp_short;
    let selection = args.pid.as_ref().map(|IdList(p)| Selection::Processes { pids: p.clone(), follow_children: true });
    let mut config = TcpLifeConfig::default();
    config.selection = selection;
    let mut tool = TcpLife::start(config)?;
    eprintln!("Tracing TCP sessions... Hit Ctrl-C to end.");
    let mut watch = Watch::machine();
    let layout = SessionLayout::new(args.snooping.columns(), args.wide);
    if !args.snooping.json {
        heading(|o| layout.write_heading(o))?;
    }
    snoop_loop(
        "tcplife",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if !args.localport.is_empty() && !args.localport.contains(&e.local_port)
                || !args.remoteport.is_empty() && !args.remoteport.contains(&e.remote_port)
                || args.ipv4 && !e.local.is_ipv4()
                || args.ipv6 && !e.local.is_ipv6()
            {
                return Ok(());
            }
            if args.snooping.json {
                write_event(out, t, SessionJson::new(e))
            } else {
                Ok(layout.write(out, e, stamp(t))?)
            }
        },
    )?;
    Ok(ExitCode::SUCCESS)
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
    let mut tool = TcpRetrans::start(TcpRetransConfig::default())?;
    eprintln!("Tracing TCP retransmissions... Hit Ctrl-C to end.");
    let mut watch = Watch::machine();
    if !args.snooping.json && !args.count {
        heading(write_retransmit_heading)?;
    }
    let count = args.count;
    let json_out = args.snooping.json;
    let (ipv4, ipv6) = (args.ipv4, args.ipv6);
    // -c: retransmissions (that sent something) by flow, counted here from
    // the events (bcc's -c); the ring buffer's losses are reported as such.
    let mut flows = RetransFlows::new();
    snoop_loop(
        "tcpretrans",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if ipv4 && !e.local.is_ipv4() || ipv6 && !e.local.is_ipv6() {
                return Ok(());
            }
            if count {
                flows.add(e);
                Ok(())
            } else if json_out {
                write_event(out, t, RetransmitJson::new(e))
            } else {
                Ok(write_retransmit(out, e, t)?)
            }
        },
    )?;
    if count {
        let counts = tool.counts()?;
        let mut out = std::io::stdout().lock();
        if json_out {
            serde_json::to_writer(&mut out, &flows.json(&counts))?;
            writeln!(out)?;
        } else {
            flows.write(&mut out, &counts)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_checked() {
        assert!(crate::clock::tool_interval("0").is_err());
        assert!(crate::clock::tool_interval("1e20").is_err());
        assert!(crate::clock::tool_interval("nan").is_err());
        assert_eq!(crate::clock::tool_interval("0.5").unwrap(), Duration::from_millis(500));
    }
}
