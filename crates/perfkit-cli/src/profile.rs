//! `perfkit profile`: on-CPU (and off-CPU) stacks of processes, threads, a
//! cgroup, the whole machine or a command, as a flame graph.

use std::{
    ffi::OsString,
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use perfkit_flamegraph::SvgOptions;
use perfkit_formats::OutputFormat;
use perfkit_model::printable;
use perfkit_profiler::{
    BackendChoice, EmptyProfile, EndReason, Finished, Grouping, Note, OffCpu, Options, Remedy, SampleEvent, Session,
    Target, UnwindChoice, stack_copy_bytes,
};
use perfkit_target::TargetError;

use crate::{output::Output, render::write_profile};

const EXAMPLES: &str = "\
Examples:
  perfkit profile -p 1234                  # until Ctrl-C, writes flame.svg
  perfkit profile -p 1234,5678 -d 30 -F 199 -o api.svg --folded api.folded
  perfkit profile -- make -j8              # a command and everything it starts
  perfkit profile ./my-benchmark --iterations 100
  perfkit profile -a -d 10                 # the whole machine
  perfkit profile --cgroup /system.slice/nginx.service -d 30
  perfkit profile -t 4242 --per-thread     # one thread
  perfkit profile -p 1234 -d 30 -f pprof -o api.pb.gz   # go tool pprof, Pyroscope
  perfkit profile -p 1234 --title 'api under load' -o api.svg

Stacks are complete without frame pointers: the eBPF backend walks them in
the kernel with unwind tables built from each binary's DWARF CFI. Needs root,
or CAP_BPF and CAP_PERFMON; without them perfkit falls back to perf_event
(CAP_PERFMON, or kernel.perf_event_paranoid <= 2 for your own processes, then
in user mode only).

Java (HotSpot JDK 11 to 21) and CPython (3.8 to 3.13) need no flags: for a
JVM, perf_event is chosen and its Java frames are walked from its code cache;
JDK 17 and newer are asked for their perf map (as `jcmd PID Compiler.perfmap`
does); JDK 11 to 16 have no such command, so their compiled methods are named
from the code cache instead, and the summary says so.

The SVG's title is the command line, arguments included; use --title to
keep secrets out of a graph you share.";

/// Sample stacks of processes, threads, a cgroup, the whole machine or a
/// command, and draw a flame graph.
///
/// Samples on-CPU stacks at a fixed frequency on every CPU, with eBPF
/// (stacks walked and counted in the kernel) or perf_event (frame pointers
/// or DWARF stack copies). Children are followed, as with perf record. At
/// the end the stacks are symbolized and written as an SVG flame graph,
/// folded stacks, pprof or JSON. Sampling ends at Ctrl-C (or SIGTERM,
/// SIGHUP), after --duration, or when the target exits; every output is
/// written in each case.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ProfileArgs {
    #[command(flatten)]
    target: TargetArgs,

    /// Samples per second, per CPU.
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    frequency: u64,

    #[command(flatten)]
    out: OutputArgs,

    /// Also measure off-CPU time (blocked threads), and draw on- and
    /// off-CPU time in one graph, in microseconds (eBPF backend).
    #[arg(long)]
    off_cpu: bool,

    /// Sampling event: cpu-clock, task-clock, cycles or instructions (the
    /// last three with the perf backend; cycles and instructions need
    /// hardware counters).
    #[arg(short, long, value_enum, default_value_t)]
    event: EventArg,

    /// Sampling backend: auto (eBPF where it loads, else perf_event), ebpf,
    /// or perf.
    #[arg(long, value_enum, default_value_t)]
    backend: BackendArg,

    /// Stack walking: auto (complete stacks: unwind tables in the kernel
    /// with eBPF; with perf, DWARF unless every module keeps frame
    /// pointers), fp, or dwarf.
    #[arg(long, value_enum, default_value_t)]
    unwind: UnwindArg,

    /// As perf's `-g`: accepted, and changes nothing (perfkit always
    /// records call graphs).
    #[arg(short = 'g')]
    call_graph_flag: bool,

    /// As perf's `--call-graph`: `fp`, or `dwarf[,SIZE]` (the same as
    /// `--unwind fp`, or `--unwind dwarf --stack-size SIZE`).
    #[arg(long = "call-graph", value_name = "fp|dwarf[,SIZE]", value_parser = parse_call_graph, conflicts_with = "unwind")]
    call_graph: Option<(UnwindChoice, Option<u32>)>,

    /// Bytes of user stack copied per sample by the perf backend's DWARF
    /// mode (raise it for deep stacks; the summary says when it was short).
    #[arg(long, value_name = "BYTES", default_value_t = perfkit_perf_event::DEFAULT_STACK_BYTES, value_parser = clap::value_parser!(u32).range(8..=65528))]
    stack_size: u32,

    #[command(flatten)]
    maps: MapArgs,

    /// Command to run and profile until it exits (`--` before it is needed
    /// only when its first word starts with `-`; a flag before the command
    /// is always perfkit's).
    #[arg(value_name = "COMMAND", trailing_var_arg = true, group = "target")]
    command: Vec<OsString>,
}

/// What to profile, shared by `profile` and `offcpu`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Processes to profile (all their threads), comma-separated.
    #[arg(short, long, value_name = "PID[,PID...]", value_parser = parse_pid_list, group = "target")]
    pid: Option<IdList>,

    /// Threads to profile, comma-separated.
    #[arg(short, long, value_name = "TID[,TID...]", value_parser = parse_pid_list, group = "target")]
    tid: Option<IdList>,

    /// The whole machine: every process and the kernel's own threads.
    #[arg(short, long = "all-cpus", group = "target")]
    all_cpus: bool,

    /// A cgroup v2 group (a container, a systemd service): a directory of
    /// the cgroup v2 file system or a path below its root.
    #[arg(long, value_name = "PATH", group = "target")]
    cgroup: Option<PathBuf>,

    /// Profile only the named processes, not the processes they start.
    #[arg(long)]
    no_inherit: bool,

    /// With -p: also the existing descendants of each process (children,
    /// their children..., as pgrep -P), such as a server's workers.
    /// Children started later are followed either way.
    #[arg(long, conflicts_with = "no_inherit")]
    children: bool,

    /// One root frame per process (name-PID) instead of per process name.
    #[arg(long, conflicts_with = "per_thread")]
    per_process: bool,

    /// One root frame per thread (name-PID/TID).
    #[arg(long)]
    per_thread: bool,

    /// Also read the DWARF of separate debug files (/usr/lib/debug, by
    /// build id): inlined frames and file:line in stripped distribution
    /// libraries such as libc, at the cost of decompressing them. Their
    /// functions are named from those files' symbol tables either way.
    #[arg(long)]
    separate_debug_info: bool,
}

/// Where the profile goes and when sampling ends, shared by `profile` and
/// `offcpu`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Stop after this long: seconds, or with a unit (500ms, 1.5s, 2m, 1h30m).
    /// Without it, sampling runs until Ctrl-C or the target exits.
    #[arg(short, long, value_name = "DURATION", value_parser = crate::clock::positive, allow_hyphen_values = true)]
    duration: Option<Duration>,

    /// Where to write the profile; `-` for standard output. Default: the
    /// format's usual name (flame.svg, profile.folded, profile.pb.gz,
    /// profile.json).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Output format: svg (flame graph), folded (FlameGraph, inferno), pprof
    /// (go tool pprof, Pyroscope, Parca) or json (perfkit's schema).
    #[arg(short, long, value_name = "FORMAT", default_value = "svg")]
    format: OutputFormat,

    /// Also write the stacks in the folded format (FlameGraph, inferno).
    #[arg(long, value_name = "FILE")]
    folded: Option<PathBuf>,

    /// The flame graph's title (default: the command's name and the
    /// command line).
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,

    /// Functions to list in the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
}

/// Sizes of the eBPF backend's maps, shared by `profile` and `offcpu`.
#[derive(Debug, Args)]
pub struct MapArgs {
    /// Distinct stacks the eBPF backend keeps at most (memory is used as
    /// stacks appear).
    #[arg(long, value_name = "N", default_value_t = perfkit_probes::DEFAULT_STACK_ENTRIES, value_parser = clap::value_parser!(u32).range(1..))]
    stack_map_size: u32,

    /// Distinct (thread, stacks) the eBPF backend counts at most.
    #[arg(long, value_name = "N", default_value_t = perfkit_probes::DEFAULT_COUNTS_ENTRIES, value_parser = clap::value_parser!(u32).range(1..))]
    counts_map_size: u32,

    /// Unwind table rows the eBPF backend holds (8 bytes each) [default:
    /// 1/512 of the machine's memory, from 512 Ki to 16 Mi rows]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1024..))]
    table_rows: Option<u32>,
}

const OFFCPU_EXAMPLES: &str = "\
Examples:
  perfkit offcpu -p 1234 -d 10                 # offcpu.svg: where it blocks
  perfkit offcpu --min-block 1ms -- ./server   # blocks of 1 ms or more
  perfkit offcpu -a -d 5 --state uninterruptible -f folded -o d-state.folded
  perfkit offcpu --cgroup /system.slice/nginx.service -d 30 -f pprof -o off.pb.gz

Like bcc's offcputime: the stacks (user and kernel) of threads as they
block, weighted by the time until they run again, in microseconds. Unlike
it, user stacks are complete without frame pointers, and the graph is drawn
directly. Bare numbers for --min-block/--max-block are microseconds, as in
bcc. Needs the eBPF backend (root, or CAP_BPF and CAP_PERFMON).";

/// Off-CPU time flame graph: where threads block, and for how long.
///
/// Records the stacks of selected threads as they leave the CPU to wait
/// (sleep, I/O, locks) and adds the time until they run again, in
/// microseconds. Writes an SVG ("Off-CPU Time", a cool palette), folded
/// stacks, pprof or JSON.
#[derive(Debug, Args)]
#[command(after_help = OFFCPU_EXAMPLES)]
pub struct OffcpuArgs {
    #[command(flatten)]
    target: TargetArgs,

    #[command(flatten)]
    out: OutputArgs,

    /// Leave out blocks shorter than this (microseconds, or with a unit:
    /// 1ms).
    #[arg(short = 'm', long, value_name = "TIME", value_parser = crate::clock::block_time)]
    min_block: Option<Duration>,

    /// Leave out blocks longer than this (microseconds, or with a unit).
    #[arg(short = 'M', long, value_name = "TIME", value_parser = crate::clock::block_time)]
    max_block: Option<Duration>,

    /// Thread states to count, comma-separated: interruptible (sleeps,
    /// waits for events), uninterruptible (disk I/O, some locks),
    /// preempted (runnable, waiting for a CPU).
    #[arg(
        long,
        value_name = "STATE[,STATE...]",
        value_delimiter = ',',
        default_value = "interruptible,uninterruptible"
    )]
    state: Vec<StateArg>,

    /// Stack walking: auto (unwind tables in the kernel), fp or dwarf.
    #[arg(long, value_enum, default_value_t)]
    unwind: UnwindArg,

    #[command(flatten)]
    maps: MapArgs,

    /// Command to run and watch until it exits (`--` before it when its
    /// first word starts with `-`).
    #[arg(value_name = "COMMAND", trailing_var_arg = true, group = "target")]
    command: Vec<OsString>,
}

/// `--state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// TASK_INTERRUPTIBLE: sleeping until an event.
    Interruptible,
    /// TASK_UNINTERRUPTIBLE: disk I/O, some locks.
    Uninterruptible,
    /// Preempted: runnable, waiting for a CPU.
    Preempted,
}

/// `--backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// eBPF where it loads, else perf_event.
    #[default]
    Auto,
    /// eBPF: stacks walked and counted in the kernel.
    Ebpf,
    /// perf_event_open: samples read from ring buffers.
    Perf,
}

/// perf's `--call-graph` modes: `fp`, `dwarf[,SIZE]`; `lbr` is refused
/// with what to use instead.
fn parse_call_graph(s: &str) -> Result<(UnwindChoice, Option<u32>), String> {
    UnwindChoice::from_call_graph(s).map_err(|e| e.to_string())
}

/// `--unwind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum UnwindArg {
    /// Complete stacks by the cheapest means.
    #[default]
    Auto,
    /// Frame pointers (cheapest; truncated stacks without them).
    Fp,
    /// DWARF CFI (unwind tables in the kernel, or stack copies with perf).
    Dwarf,
}

/// `--event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    /// The CPU clock (any machine).
    #[default]
    CpuClock,
    /// The task clock (perf backend).
    TaskClock,
    /// CPU cycles (hardware counters; perf backend).
    Cycles,
    /// Instructions retired (hardware counters; perf backend).
    Instructions,
}

/// A comma-separated list of process or thread ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdList(pub Vec<u32>);

pub(crate) fn parse_pid_list(s: &str) -> Result<IdList, String> {
    perfkit_target::parse_pid_list(s).map(IdList).map_err(|e| e.to_string())
}

impl ProfileArgs {
    fn options(&self) -> Options {
        let mut o = self.target.options(&self.maps);
        o.frequency_hz = Some(self.frequency);
        o.off_cpu = self.off_cpu.then(OffCpu::default);
        o.backend = match self.backend {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Ebpf => BackendChoice::Ebpf,
            BackendArg::Perf => BackendChoice::Perf,
        };
        o.unwind = self.unwind.choice();
        o.event = match self.event {
            EventArg::CpuClock => SampleEvent::CpuClock,
            EventArg::TaskClock => SampleEvent::TaskClock,
            EventArg::Cycles => SampleEvent::Cycles,
            EventArg::Instructions => SampleEvent::Instructions,
        };
        o.stack_bytes = stack_copy_bytes(self.stack_size);
        if let Some((unwind, size)) = self.call_graph {
            o.unwind = unwind;
            o.stack_bytes = stack_copy_bytes(size.unwrap_or(self.stack_size));
        }
        o
    }
}

impl UnwindArg {
    fn choice(self) -> UnwindChoice {
        match self {
            UnwindArg::Auto => UnwindChoice::Auto,
            UnwindArg::Fp => UnwindChoice::FramePointers,
            UnwindArg::Dwarf => UnwindChoice::Dwarf,
        }
    }
}

impl OffcpuArgs {
    fn options(&self) -> Options {
        let mut o = self.target.options(&self.maps);
        o.frequency_hz = None;
        let mut off = OffCpu::default();
        if let Some(min) = self.min_block {
            off.min_block = min;
        }
        if let Some(max) = self.max_block {
            off.max_block = max;
        }
        off.interruptible = self.state.contains(&StateArg::Interruptible);
        off.uninterruptible = self.state.contains(&StateArg::Uninterruptible);
        off.preempted = self.state.contains(&StateArg::Preempted);
        o.off_cpu = Some(off);
        o.backend = BackendChoice::Ebpf;
        o.unwind = self.unwind.choice();
        o
    }
}

impl TargetArgs {
    fn options(&self, maps: &MapArgs) -> Options {
        let mut o = Options::default();
        o.grouping = if self.per_thread {
            Grouping::PerThread
        } else if self.per_process {
            Grouping::PerProcess
        } else {
            Grouping::Process
        };
        o.separate_debug_info = self.separate_debug_info;
        o.stack_entries = maps.stack_map_size;
        o.counts_entries = maps.counts_map_size;
        o.table_rows = maps.table_rows.unwrap_or_else(perfkit_probes::default_table_rows);
        o
    }

    fn target(&self, command: &[OsString], to_stdout: bool) -> Result<Target> {
        if self.children && self.pid.is_none() {
            bail!("--children goes with -p PID: the descendants of the processes given");
        }
        let target = if let Some(IdList(pids)) = &self.pid {
            let target = Target::pids(pids)?;
            if self.children { target.with_children() } else { target }
        } else if let Some(IdList(tids)) = &self.tid {
            Target::threads(tids)?
        } else if self.all_cpus {
            Target::all()
        } else if let Some(c) = &self.cgroup {
            Target::cgroup(c)?
        } else if !command.is_empty() {
            Target::command(command, to_stdout)?
        } else {
            bail!("nothing to watch: give -p PID, -t TID, -a, --cgroup PATH or a command (see --help)")
        };
        Ok(target.follow_children(!self.no_inherit))
    }
}

/// Which command a run is: on-CPU profile, or off-CPU time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Profile,
    OffCpu,
}

pub fn run(args: ProfileArgs) -> Result<ExitCode> {
    let options = args.options();
    run_kind(Kind::Profile, &args.target, &args.out, &options, &args.command)
}

/// `perfkit offcpu`.
pub fn run_offcpu(args: OffcpuArgs) -> Result<ExitCode> {
    if args.state.is_empty() {
        bail!("--state needs at least one of interruptible, uninterruptible, preempted");
    }
    if let (Some(min), Some(max)) = (args.min_block, args.max_block)
        && min > max
    {
        bail!("--min-block ({min:?}) is above --max-block ({max:?})");
    }
    let options = args.options();
    run_kind(Kind::OffCpu, &args.target, &args.out, &options, &args.command)
}

fn run_kind(
    kind: Kind,
    target: &TargetArgs,
    args: &OutputArgs,
    options: &Options,
    command: &[OsString],
) -> Result<ExitCode> {
    // Fail on unwritable outputs before anything runs.
    let default_name = match (kind, args.format) {
        (Kind::OffCpu, OutputFormat::Svg) => "offcpu.svg",
        _ => args.format.default_file_name(),
    };
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from(default_name));
    let to_stdout = output == Path::new("-");
    if to_stdout {
        crate::output::check_stdout_open()?;
    }
    let main_out = Output::create(&output)?;
    let folded_out = args.folded.as_deref().map(Output::create).transpose()?;

    let target = target.target(command, to_stdout)?;
    let mut session = match Session::start(target, options) {
        Ok(s) => s,
        Err(perfkit_profiler::ProfileError::Target(e)) if e.exec_failure().is_some() => {
            // As a shell: 127 for a command not found, 126 for one that
            // cannot run.
            return Ok(exec_failed(&e));
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!("{}", printable(&session.choice().describe()));

    let end = sample_until_done(&mut session, args.duration)?;
    let sampling_ended = Instant::now();
    let mut finished = session.finish()?;
    if let Some(empty) = finished.why_empty(end, kind == Kind::OffCpu) {
        let Finished { notes, mut command, .. } = finished;
        if let Some(c) = &mut command {
            let _ = c.terminate(perfkit_profiler::COMMAND_GRACE);
        }
        for n in &notes {
            eprintln!("{}", note_line(n));
        }
        match &empty {
            EmptyProfile::NotOnCpu { children: Some(hint), .. } => {
                bail!("{empty} ({}); nothing written", note_line(hint))
            }
            _ => bail!("{empty}; nothing written"),
        }
    }
    let profile = &finished.profile;

    let title = args.title.clone().unwrap_or_else(|| match kind {
        Kind::Profile => format!("perfkit profile: {}", profile.meta.command),
        Kind::OffCpu => format!("Off-CPU Time: {}", profile.meta.command),
    });
    let mut svg_options = SvgOptions::for_profile(title, profile);
    if kind == Kind::OffCpu {
        svg_options.palette = perfkit_flamegraph::parse_palette("io").map_err(anyhow::Error::msg)?;
    }
    let folded_path = folded_out.as_ref().and_then(Output::path_display);
    if let Some(folded) = folded_out {
        folded.commit(|w| profile.write_folded(w).context("writing folded stacks"))?;
    }
    let main_path = main_out.path_display();
    write_profile(main_out, args.format, profile, &svg_options)?;

    // Every output is written: now the command may be ended and reaped.
    let status = match (finished.command_status, &mut finished.command) {
        (Some(s), _) => Some(s),
        (None, Some(c)) => Some(c.terminate(perfkit_profiler::COMMAND_GRACE)?),
        (None, None) => None,
    };

    eprintln!("{}", finished.summary_line(end, kind == Kind::OffCpu));
    if let Some(idle) = finished.idle_line() {
        eprintln!("{idle}");
    }
    for n in &finished.notes {
        eprintln!("{}", note_line(n));
    }
    for line in finished.top_lines(args.top, kind == Kind::OffCpu) {
        eprintln!("{line}");
    }
    let written: Vec<String> = main_path.into_iter().chain(folded_path).collect();
    if !written.is_empty() {
        eprintln!(
            "wrote {} ({:.2} s after sampling ended)",
            printable(&written.join(" and ")),
            sampling_ended.elapsed().as_secs_f64()
        );
    }
    // As perf: a command that exited on its own passes its status on.
    Ok(ExitCode::from(end.exit_code(status)))
}

/// Samples until Ctrl-C (or SIGTERM, SIGHUP), the duration, or the exit of
/// every watched process, refreshing the progress line as it goes.
fn sample_until_done(session: &mut Session, duration: Option<Duration>) -> Result<EndReason> {
    let progress = progress_bar();
    let started = Instant::now();
    let description = printable(session.description()).into_owned();
    let stop = crate::signals::interrupt_flag()?;
    let shown = !progress.is_hidden();
    let reason = session.wait_until(duration, stop, |s| {
        // The sample count is read from the kernel: only for a progress
        // line that shows.
        if !shown {
            return;
        }
        progress.set_message(format!(
            "sampling {description}: {:.1} s, {} samples",
            started.elapsed().as_secs_f64(),
            s.samples()
        ));
    });
    progress.finish_and_clear();
    Ok(reason)
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}  (Ctrl-C to stop)").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Says that a command could not be executed, and returns the status a
/// shell gives it (127 not found, 126 cannot run).
pub(crate) fn exec_failed(e: &TargetError) -> ExitCode {
    let Some((program, source, code)) = e.exec_failure() else { return ExitCode::FAILURE };
    eprintln!("perfkit: error: cannot run {}: {source}", printable(&program.to_string_lossy()));
    ExitCode::from(code)
}

/// A library note as the summary prints it: the sentence, then the flag
/// that would have helped.
fn note_line(note: &Note) -> String {
    let text = printable(&note.to_string()).into_owned();
    let flag = match note.remedy() {
        Some(Remedy::MoreStackEntries) => "raise --stack-map-size".to_owned(),
        Some(Remedy::MoreCountsEntries) => "raise --counts-map-size".to_owned(),
        Some(Remedy::MoreTableRows) => "raise --table-rows".to_owned(),
        Some(Remedy::LowerFrequency) => "lower -F".to_owned(),
        Some(Remedy::StackBytes(n)) => format!("--stack-size {n}"),
        Some(Remedy::PerfBackend) => "--backend perf, or auto without --off-cpu".to_owned(),
        Some(Remedy::DwarfUnwinding) => "use --unwind dwarf".to_owned(),
        Some(Remedy::WithChildren) => "--children includes them".to_owned(),
        // Not a loss, but the flag that sets the budget it reports.
        _ if matches!(note, Note::UnwindTables { .. }) => "the budget is --table-rows".to_owned(),
        _ => return text,
    };
    format!("{text}; {flag}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProfileArgs,
    }

    fn parse(args: &[&str]) -> Result<ProfileArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("profile").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults() {
        let a = parse(&["-p", "42"]).unwrap();
        assert_eq!(a.target.pid, Some(IdList(vec![42])));
        assert_eq!(a.frequency, 99);
        assert_eq!(a.out.duration, None);
        assert_eq!(a.out.output, None);
        assert_eq!(a.out.format, OutputFormat::Svg);
        assert!(a.out.folded.is_none());
        assert!(!a.target.no_inherit);
    }

    #[test]
    fn command_with_or_without_double_dash() {
        let a = parse(&["-F", "199", "-d", "2.5", "--", "sleep", "-x", "1"]).unwrap();
        assert_eq!(a.command, vec![OsString::from("sleep"), "-x".into(), "1".into()]);
        assert_eq!(a.out.duration, Some(Duration::from_millis(2500)));
        let b = parse(&["-F", "199", "make", "-j2", "all"]).unwrap();
        assert_eq!(b.command, vec![OsString::from("make"), "-j2".into(), "all".into()]);
        assert_eq!(b.frequency, 199);
    }

    #[test]
    fn perf_call_graph_flags_are_taken_as_perf_takes_them() {
        let a = parse(&["-g", "-p", "1", "-d", "1"]).unwrap();
        assert!(a.command.is_empty());
        assert_eq!(a.target.pid, Some(IdList(vec![1])));
        let b = parse(&["--call-graph", "dwarf,16384", "-p", "1"]).unwrap();
        assert_eq!(b.call_graph, Some((UnwindChoice::Dwarf, Some(16384))));
        assert_eq!(b.options().stack_bytes, 16384);
        assert_eq!(parse(&["--call-graph", "fp", "-a"]).unwrap().call_graph, Some((UnwindChoice::FramePointers, None)));
        let lbr = parse(&["--call-graph", "lbr", "-a"]).unwrap_err().to_string();
        assert!(lbr.contains("use fp or dwarf"), "{lbr}");
        assert!(parse(&["--call-graph", "dwarf", "--unwind", "fp", "-a"]).is_err());
        // A flag perfkit does not know is an error, never the command.
        let err = parse(&["-Z", "-p", "1"]).unwrap_err().to_string();
        assert!(err.contains("-Z"), "{err}");
    }

    #[test]
    fn children_go_with_pids_only() {
        assert!(parse(&["-p", "7", "--children"]).unwrap().target.children);
        assert!(!parse(&["-p", "7"]).unwrap().target.children);
        let a = parse(&["-a", "--children"]).unwrap();
        let e = a.target.target(&[], false).unwrap_err().to_string();
        assert!(e.contains("--children goes with -p"), "{e}");
        assert!(parse(&["-p", "7", "--children", "--no-inherit"]).is_err());
    }

    #[test]
    fn target_lists_and_scopes() {
        assert_eq!(parse(&["-p", "1,2,3"]).unwrap().target.pid, Some(IdList(vec![1, 2, 3])));
        assert_eq!(parse(&["-t", "7"]).unwrap().target.tid, Some(IdList(vec![7])));
        assert!(parse(&["-a"]).unwrap().target.all_cpus);
        assert!(parse(&["-p", "1", "-a"]).is_err(), "one target at a time");
        assert!(parse(&["-p", "1", "--", "true"]).is_err());
        assert!(parse(&["--per-process", "--per-thread", "-a"]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["-p", "0"][..],
            &["-p", "abc"],
            &["-p", ""],
            &["-p", "1,x"],
            &["-p", "1", "-F", "0"],
            &["-p", "1", "-F", ""],
            &["-p", "1", "-F", "fast"],
            &["-p", "1", "-d", ""],
            &["-p", "1", "-d", "0"],
            &["-p", "1", "-d", "-3"],
            &["-p", "1", "-d", "soon"],
            &["-p", "1", "-f", "png"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn offcpu_options() {
        #[derive(Debug, Parser)]
        struct Off {
            #[command(flatten)]
            args: OffcpuArgs,
        }
        let parse =
            |args: &[&str]| Off::try_parse_from(std::iter::once("offcpu").chain(args.iter().copied())).map(|c| c.args);
        let a = parse(&["-p", "7", "--min-block", "1000", "-M", "2s", "--state", "uninterruptible"]).unwrap();
        assert_eq!(a.min_block, Some(Duration::from_millis(1)));
        assert_eq!(a.max_block, Some(Duration::from_secs(2)));
        assert_eq!(a.state, vec![StateArg::Uninterruptible]);
        let o = a.options();
        assert_eq!(o.frequency_hz, None);
        let off = o.off_cpu.unwrap();
        assert!(off.uninterruptible && !off.interruptible && !off.preempted);
        let b = parse(&["--", "sleep", "1"]).unwrap();
        assert_eq!(b.state, vec![StateArg::Interruptible, StateArg::Uninterruptible]);
        assert!(parse(&["-p", "1", "--state", "asleep"]).is_err());
    }
}
