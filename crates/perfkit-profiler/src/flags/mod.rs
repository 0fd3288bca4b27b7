//! perfkit's flags as clap types (feature `clap`, off by default): the
//! flags of `perfkit profile`, `perfkit offcpu` and the bcc-style tools,
//! with their checks and their conversion to this crate's types.
//!
//! An in-house tool that takes the same flags flattens a group into its
//! own command line and gets the same help and the same checks:
//!
//! ```no_run
//! use clap::Parser;
//! use perfkit_profiler::{Session, flags::{MapArgs, TargetArgs}};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     target: TargetArgs,
//!     #[command(flatten)]
//!     maps: MapArgs,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cli = Cli::parse();
//! let options = cli.target.options(&cli.maps);
//! let mut session = Session::start(cli.target.target(&[], false)?, &options)?;
//! session.wait(Some(std::time::Duration::from_secs(5)));
//! # Ok(())
//! # }
//! ```
//!
//! The help texts are perfkit's own; the structures are
//! `#[non_exhaustive]`, so flags can be added without a breaking release.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use perfkit_formats::OutputFormat;
use perfkit_model::time::{Bare, parse_duration, parse_interval, positive_duration};
use perfkit_target::{PidList, TargetError};

use crate::{BackendChoice, Grouping, OffCpu, Options, SampleEvent, Target, UnwindChoice, stack_copy_bytes};

mod tools;
pub use tools::*;

/// Flags that do not go together, or that a run cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// Two flags that exclude each other, or a flag missing the one it
    /// needs; the text names them.
    #[error("{0}")]
    Conflict(&'static str),
    /// A value the flag's parser took but the run cannot use.
    #[error("{0}")]
    Invalid(String),
    /// The target could not be found or started.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A tool could not be loaded or attached.
    #[error(transparent)]
    Probe(#[from] perfkit_probes::ProbeError),
    /// A probe pattern could not be parsed or resolved.
    #[error(transparent)]
    Spec(#[from] perfkit_probes::tools::SpecError),
    /// A trace or argdist probe, filter or format could not be parsed.
    #[error(transparent)]
    Expr(#[from] perfkit_probes::tools::ExprError),
}

/// A tool's INTERVAL: above zero, at most a day; bare numbers are seconds.
pub(crate) fn tool_interval(s: &str) -> Result<Duration, String> {
    parse_interval(s, Bare::Seconds, Duration::from_nanos(1)).map_err(|e| e.to_string())
}

/// An off-CPU block time: bare numbers are microseconds (bcc's unit).
fn block_time(s: &str) -> Result<Duration, String> {
    parse_duration(s, Bare::Micros).map_err(|e| e.to_string())
}

/// perf's `--call-graph` modes: `fp`, `dwarf[,SIZE]`; `lbr` is refused
/// with what to use instead.
fn parse_call_graph(s: &str) -> Result<(UnwindChoice, Option<u32>), String> {
    UnwindChoice::from_call_graph(s).map_err(|e| e.to_string())
}

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
#[non_exhaustive]
pub struct ProfileArgs {
    /// What to profile.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Samples per second, per CPU.
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub frequency: u64,

    /// Where the profile goes and when sampling ends.
    #[command(flatten)]
    pub out: OutputArgs,

    /// Also measure off-CPU time (blocked threads), and draw on- and
    /// off-CPU time in one graph, in microseconds (eBPF backend).
    #[arg(long)]
    pub off_cpu: bool,

    /// Sampling event: cpu-clock, task-clock, cycles or instructions (the
    /// last three with the perf backend; cycles and instructions need
    /// hardware counters).
    #[arg(short, long, value_enum, default_value_t)]
    pub event: EventArg,

    /// Sampling backend: auto (eBPF where it loads, else perf_event), ebpf,
    /// or perf.
    #[arg(long, value_enum, default_value_t)]
    pub backend: BackendArg,

    /// Stack walking: auto (complete stacks: unwind tables in the kernel
    /// with eBPF; with perf, DWARF unless every module keeps frame
    /// pointers), fp, or dwarf.
    #[arg(long, value_enum, default_value_t)]
    pub unwind: UnwindArg,

    /// As perf's `-g`: accepted, and changes nothing (perfkit always
    /// records call graphs).
    #[arg(short = 'g')]
    pub call_graph_flag: bool,

    /// As perf's `--call-graph`: `fp`, or `dwarf[,SIZE]` (the same as
    /// `--unwind fp`, or `--unwind dwarf --stack-size SIZE`).
    #[arg(long = "call-graph", value_name = "fp|dwarf[,SIZE]", value_parser = parse_call_graph, conflicts_with = "unwind")]
    pub call_graph: Option<(UnwindChoice, Option<u32>)>,

    /// Bytes of user stack copied per sample by the perf backend's DWARF
    /// mode (raise it for deep stacks; the summary says when it was short).
    #[arg(long, value_name = "BYTES", default_value_t = perfkit_perf_event::DEFAULT_STACK_BYTES, value_parser = clap::value_parser!(u32).range(8..=65528))]
    pub stack_size: u32,

    /// Sizes of the eBPF backend's maps.
    #[command(flatten)]
    pub maps: MapArgs,

    /// Command to run and profile until it exits (`--` before it is needed
    /// only when its first word starts with `-`; a flag before the command
    /// is always perfkit's).
    #[arg(value_name = "COMMAND", trailing_var_arg = true, group = "target")]
    pub command: Vec<OsString>,
}

/// What to profile, shared by `profile` and `offcpu`.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct TargetArgs {
    /// Processes to profile (all their threads), comma-separated.
    #[arg(short, long, value_name = "PID[,PID...]", group = "target")]
    pub pid: Option<PidList>,

    /// Threads to profile, comma-separated.
    #[arg(short, long, value_name = "TID[,TID...]", group = "target")]
    pub tid: Option<PidList>,

    /// The whole machine: every process and the kernel's own threads.
    #[arg(short, long = "all-cpus", group = "target")]
    pub all_cpus: bool,

    /// A cgroup v2 group (a container, a systemd service): a directory of
    /// the cgroup v2 file system or a path below its root.
    #[arg(long, value_name = "PATH", group = "target")]
    pub cgroup: Option<PathBuf>,

    /// Profile only the named processes, not the processes they start.
    #[arg(long)]
    pub no_inherit: bool,

    /// With -p: also the existing descendants of each process (children,
    /// their children..., as pgrep -P), such as a server's workers.
    /// Children started later are followed either way.
    #[arg(long, conflicts_with = "no_inherit")]
    pub children: bool,

    /// One root frame per process (name-PID) instead of per process name.
    #[arg(long, conflicts_with = "per_thread")]
    pub per_process: bool,

    /// One root frame per thread (name-PID/TID).
    #[arg(long)]
    pub per_thread: bool,

    /// Also read the DWARF of separate debug files (/usr/lib/debug, by
    /// build id): inlined frames and file:line in stripped distribution
    /// libraries such as libc, at the cost of decompressing them. Their
    /// functions are named from those files' symbol tables either way.
    #[arg(long)]
    pub separate_debug_info: bool,
}

/// Where the profile goes and when sampling ends, shared by `profile` and
/// `offcpu`.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct OutputArgs {
    /// Stop after this long: seconds, or with a unit (500ms, 1.5s, 2m, 1h30m).
    /// Without it, sampling runs until Ctrl-C or the target exits.
    #[arg(short, long, value_name = "DURATION", value_parser = positive_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,

    /// Where to write the profile; `-` for standard output. Default: the
    /// format's usual name (flame.svg, profile.folded, profile.pb.gz,
    /// profile.json).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Output format: svg (flame graph), folded (FlameGraph, inferno), pprof
    /// (go tool pprof, Pyroscope, Parca) or json (perfkit's schema).
    #[arg(short, long, value_name = "FORMAT", default_value = "svg")]
    pub format: OutputFormat,

    /// Also write the stacks in the folded format (FlameGraph, inferno).
    #[arg(long, value_name = "FILE")]
    pub folded: Option<PathBuf>,

    /// The flame graph's title (default: the command's name and the
    /// command line).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,

    /// Functions to list in the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

/// Sizes of the eBPF backend's maps, shared by `profile` and `offcpu`.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct MapArgs {
    /// Distinct stacks the eBPF backend keeps at most (memory is used as
    /// stacks appear).
    #[arg(long, value_name = "N", default_value_t = perfkit_probes::DEFAULT_STACK_ENTRIES, value_parser = clap::value_parser!(u32).range(1..))]
    pub stack_map_size: u32,

    /// Distinct (thread, stacks) the eBPF backend counts at most.
    #[arg(long, value_name = "N", default_value_t = perfkit_probes::DEFAULT_COUNTS_ENTRIES, value_parser = clap::value_parser!(u32).range(1..))]
    pub counts_map_size: u32,

    /// Unwind table rows the eBPF backend holds (8 bytes each) [default:
    /// 1/512 of the machine's memory, from 512 Ki to 16 Mi rows]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1024..))]
    pub table_rows: Option<u32>,
}

/// Off-CPU time flame graph: where threads block, and for how long.
///
/// Records the stacks of selected threads as they leave the CPU to wait
/// (sleep, I/O, locks) and adds the time until they run again, in
/// microseconds. Writes an SVG ("Off-CPU Time", a cool palette), folded
/// stacks, pprof or JSON.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct OffcpuArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Where the profile goes and when watching ends.
    #[command(flatten)]
    pub out: OutputArgs,

    /// Leave out blocks shorter than this (microseconds, or with a unit:
    /// 1ms).
    #[arg(short = 'm', long, value_name = "TIME", value_parser = block_time)]
    pub min_block: Option<Duration>,

    /// Leave out blocks longer than this (microseconds, or with a unit).
    #[arg(short = 'M', long, value_name = "TIME", value_parser = block_time)]
    pub max_block: Option<Duration>,

    /// Thread states to count, comma-separated: interruptible (sleeps,
    /// waits for events), uninterruptible (disk I/O, some locks),
    /// preempted (runnable, waiting for a CPU).
    #[arg(
        long,
        value_name = "STATE[,STATE...]",
        value_delimiter = ',',
        default_value = "interruptible,uninterruptible"
    )]
    pub state: Vec<StateArg>,

    /// Stack walking: auto (unwind tables in the kernel), fp or dwarf.
    #[arg(long, value_enum, default_value_t)]
    pub unwind: UnwindArg,

    /// Sizes of the eBPF backend's maps.
    #[command(flatten)]
    pub maps: MapArgs,

    /// Command to run and watch until it exits (`--` before it when its
    /// first word starts with `-`).
    #[arg(value_name = "COMMAND", trailing_var_arg = true, group = "target")]
    pub command: Vec<OsString>,
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

impl ProfileArgs {
    /// The session's options.
    pub fn options(&self) -> Options {
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
    /// The library's choice.
    pub fn choice(self) -> UnwindChoice {
        match self {
            UnwindArg::Auto => UnwindChoice::Auto,
            UnwindArg::Fp => UnwindChoice::FramePointers,
            UnwindArg::Dwarf => UnwindChoice::Dwarf,
        }
    }
}

impl OffcpuArgs {
    /// The session's options, after checking the flags go together.
    pub fn options(&self) -> Result<Options, FlagError> {
        if self.state.is_empty() {
            return Err(FlagError::Conflict("--state needs at least one of interruptible, uninterruptible, preempted"));
        }
        if let (Some(min), Some(max)) = (self.min_block, self.max_block)
            && min > max
        {
            return Err(FlagError::Invalid(format!("--min-block ({min:?}) is above --max-block ({max:?})")));
        }
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
        Ok(o)
    }
}

impl TargetArgs {
    /// The options these flags and the map sizes set (the rest default).
    pub fn options(&self, maps: &MapArgs) -> Options {
        let grouping = if self.per_thread {
            Grouping::PerThread
        } else if self.per_process {
            Grouping::PerProcess
        } else {
            Grouping::Process
        };
        Options {
            grouping,
            separate_debug_info: self.separate_debug_info,
            stack_entries: maps.stack_map_size,
            counts_entries: maps.counts_map_size,
            table_rows: maps.table_rows.unwrap_or_else(perfkit_probes::default_table_rows),
            ..Options::default()
        }
    }

    /// The target: the processes, threads, cgroup or machine these flags
    /// name, else `command` (started held; its output goes to standard
    /// error when `stdout_to_stderr`, as when the profile is written to
    /// standard output).
    pub fn target(&self, command: &[OsString], stdout_to_stderr: bool) -> Result<Target, FlagError> {
        if self.children && self.pid.is_none() {
            return Err(FlagError::Conflict("--children goes with -p PID: the descendants of the processes given"));
        }
        let target = if let Some(PidList(pids)) = &self.pid {
            let target = Target::pids(pids)?;
            if self.children { target.with_children() } else { target }
        } else if let Some(PidList(tids)) = &self.tid {
            Target::threads(tids)?
        } else if self.all_cpus {
            Target::all()
        } else if let Some(c) = &self.cgroup {
            Target::cgroup(c)?
        } else if !command.is_empty() {
            Target::command(command, stdout_to_stderr)?
        } else {
            return Err(FlagError::Conflict(
                "nothing to watch: give -p PID, -t TID, -a, --cgroup PATH or a command (see --help)",
            ));
        };
        Ok(target.follow_children(!self.no_inherit))
    }
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
        assert_eq!(a.target.pid, Some(PidList(vec![42])));
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
        assert_eq!(a.target.pid, Some(PidList(vec![1])));
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
        assert_eq!(parse(&["-p", "1,2,3"]).unwrap().target.pid, Some(PidList(vec![1, 2, 3])));
        assert_eq!(parse(&["-t", "7"]).unwrap().target.tid, Some(PidList(vec![7])));
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
        let o = a.options().unwrap();
        assert_eq!(o.frequency_hz, None);
        let off = o.off_cpu.unwrap();
        assert!(off.uninterruptible && !off.interruptible && !off.preempted);
        let b = parse(&["--", "sleep", "1"]).unwrap();
        assert_eq!(b.state, vec![StateArg::Interruptible, StateArg::Uninterruptible]);
        assert!(parse(&["-p", "1", "--state", "asleep"]).is_err());
        let c = parse(&["-p", "1", "-m", "2ms", "-M", "1ms"]).unwrap();
        assert!(c.options().unwrap_err().to_string().contains("is above --max-block"));
    }
}
