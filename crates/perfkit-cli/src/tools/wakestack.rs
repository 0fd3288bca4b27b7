//! `wakeuptime` and `stackcount`: bcc's tools that sum by stack
//! (`perfkit_probes::tools::{WakeupTime, StackCounter}`), symbolized as
//! offcpu's stacks are (`perfkit_symbols`: ELF symbols and debug
//! information, kallsyms, perf maps).

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Args;
use perfkit_model::{
    Frame,
    raw::{RawSample, RawStack, SampleKind, StackEnd},
};
use perfkit_probes::tools::{
    ProbeSpec, Resolver, StackCountConfig, StackCountReport, StackCountRow, StackCounter, StackKinds, ToolStats,
    WakerRow, WakeupTime, WakeupTimeConfig, WakeuptimeReport,
    run::{Schedule, run_intervals},
    stack_addresses, write_stackcount, write_stackcount_folded, write_wakeuptime, write_wakeuptime_folded,
};
use perfkit_symbols::{SymbolizeOptions, Symbolizer};
use perfkit_target::{MapsTracker, Modules};

use super::{ToolTarget, finish, warn_losses};
use crate::profile::IdList;

/// Names stacks: each process's mappings are read when it first appears
/// in the kernel's counts (and again at the end), so that processes that
/// exit before the report keep their names.
struct Namer {
    symbolizer: Symbolizer,
    modules: Modules,
    seen: HashSet<u32>,
    last_scan: Instant,
}

impl Namer {
    fn new() -> Self {
        let options = SymbolizeOptions::default();
        Self {
            symbolizer: Symbolizer::new(&options),
            modules: Modules::default(),
            seen: HashSet::new(),
            last_scan: Instant::now(),
        }
    }

    /// Reads the mappings of processes not seen yet.
    fn note(&mut self, pids: impl IntoIterator<Item = u32>) {
        for pid in pids {
            if pid == 0 || !self.seen.insert(pid) {
                continue;
            }
            let mut t = MapsTracker::new(pid);
            if t.refresh().is_ok() {
                self.modules.note_uid(Path::new("/proc"), pid);
                self.modules.add_tracker(t);
            }
        }
    }

    /// Whether half a second passed since the last scan.
    fn due(&mut self) -> bool {
        if self.last_scan.elapsed() < Duration::from_millis(500) {
            return false;
        }
        self.last_scan = Instant::now();
        true
    }

    /// The frames of one process's stacks, outermost first (user, then
    /// kernel, with the tracing hook's own frames cut).
    fn frames(&self, pid: u32, comm: &str, user: &RawStack, kernel: &RawStack) -> Vec<Frame> {
        let sample = RawSample {
            tgid: pid,
            tid: pid,
            comm: comm.to_owned(),
            process: comm.to_owned(),
            user: user.clone(),
            kernel: kernel.clone(),
            count: 1,
            kind: SampleKind::OnCpu,
            user_end: StackEnd::Complete,
            interpreted: Vec::new(),
        };
        let (profile, _) = self.symbolizer.profile(&[sample], &self.modules);
        let mut frames = profile.stacks.into_iter().next().map(|s| s.frames).unwrap_or_default();
        // Rows are merged by function: calls from two lines of one
        // function are one stack, as in a folded profile.
        for f in &mut frames {
            f.location = None;
        }
        frames
    }
}

/// Duration in microseconds, from a bcc-style number of microseconds.
fn micros(s: &str) -> Result<Duration, String> {
    s.parse::<u64>().map(Duration::from_micros).map_err(|_| format!("{s:?} is not a whole number of microseconds"))
}

fn stack_storage(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: the stack storage holds 1 to 1048576 stacks")),
    }
}

const WAKEUPTIME_EXAMPLES: &str = "\
Examples:
  perfkit wakeuptime                      # every thread, until Ctrl-C
  perfkit wakeuptime -d 5 -f              # 5 seconds, folded (flamegraph.pl input)
  perfkit wakeuptime -p 1234 -m 1000      # blocks of process 1234 of 1 ms or more
  perfkit wakeuptime --json -- ./app      # the blocks of a command

As bcc's wakeuptime: a thread's block starts when it leaves the CPU not
runnable (sched_switch) and ends when another thread (or an interrupt)
wakes it (sched_waking, which runs in the waker): the time goes under the
waker's stacks, its name and the woken thread's name. -p, --cgroup and a
command select the blocked threads, as bcc's -p. User stacks are walked by
frame pointers, as bcc's.";

/// Time threads were blocked, summed by the stacks of the threads that woke
/// them, like bcc's wakeuptime.
#[derive(Debug, Args)]
#[command(after_help = WAKEUPTIME_EXAMPLES)]
pub struct WakeuptimeArgs {
    /// User threads only (no kernel threads' blocks).
    #[arg(short = 'u', long)]
    user_threads_only: bool,

    /// Show each stack's raw addresses too (bcc's -v; perfkit's -v is log
    /// verbosity).
    #[arg(long = "addresses")]
    addresses: bool,

    /// Folded output (`waker;frames;target MICROSECONDS`, flamegraph.pl's
    /// input).
    #[arg(short = 'f', long)]
    folded: bool,

    /// Print JSON (docs/JSON.md).
    #[arg(long, conflicts_with = "folded")]
    json: bool,

    /// Distinct stacks kept (bcc's default: 16384).
    #[arg(long, value_name = "N", default_value = "16384", value_parser = stack_storage)]
    stack_storage_size: u32,

    /// Shortest block counted, in microseconds (bcc's default: 1).
    #[arg(short = 'm', long = "min-block-time", value_name = "USECS", default_value = "1", value_parser = micros)]
    min_block: Duration,

    /// Longest block counted, in microseconds.
    #[arg(short = 'M', long = "max-block-time", value_name = "USECS", value_parser = micros)]
    max_block: Option<Duration>,

    /// Trace for this long, then report and exit (`10`, `500ms`, `2m`);
    /// bcc's positional DURATION.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,

    #[command(flatten)]
    target: ToolTarget,
}

/// A wakeuptime row's key: waker, target and the waker's frames.
type WakerKey = (String, String, Vec<Frame>);

pub fn wakeuptime(args: WakeuptimeArgs) -> Result<ExitCode> {
    let mut watch = args.target.watch()?;
    let mut config = WakeupTimeConfig::default();
    config.selection = watch.selection();
    config.min_block = args.min_block;
    if let Some(max) = args.max_block {
        config.max_block = max;
    }
    config.user_threads_only = args.user_threads_only;
    config.stack_storage = args.stack_storage_size;
    let tool = WakeupTime::start(config)?;
    watch.release()?;
    eprintln!("Tracing blocked time (us) by waker stack... Hit Ctrl-C to end.");
    let mut namer = Namer::new();
    let schedule = Schedule { duration: args.duration, ..Schedule::default() };
    let tick = || {
        if namer.due() {
            namer.note(tool.stacks()?.iter().map(|s| s.waker_pid));
        }
        Ok::<(), anyhow::Error>(())
    };
    let exited = run_intervals(&schedule, &mut watch, crate::signals::interrupt_flag()?, tick, |_| Ok(()))?;
    let stacks = tool.stacks()?;
    namer.note(stacks.iter().map(|s| s.waker_pid));
    warn_losses("wakeuptime", &tool.stats()?, &mut ToolStats::default());
    // Merged by names and symbolized frames: one waker stack of many
    // processes of one program is one row, as bcc's.
    let mut rows: HashMap<WakerKey, (u64, Option<String>)> = HashMap::new();
    let mut lost = 0u64;
    for s in &stacks {
        if matches!(s.user, RawStack::Lost) || matches!(s.kernel, RawStack::Lost) {
            lost += s.blocked_ns;
        }
        let frames = namer.frames(s.waker_pid, &s.waker, &s.user, &s.kernel);
        let e = rows.entry((s.waker.clone(), s.target.clone(), frames)).or_default();
        e.0 += s.blocked_ns;
        if args.addresses && e.1.is_none() {
            e.1 = Some(stack_addresses(&s.user, &s.kernel));
        }
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    // bcc's order: the largest last.
    rows.sort_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| a.0.cmp(&b.0)));
    let rows: Vec<WakerRow> = rows
        .into_iter()
        .map(|((waker, target, frames), (ns, addrs))| WakerRow::new(waker, target, frames, ns, addrs))
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer(&mut out, &WakeuptimeReport::new(crate::clock::now_rfc3339(), &rows, lost))?;
        writeln!(out)?;
    } else if args.folded {
        write_wakeuptime_folded(&mut out, &rows)?;
    } else {
        write_wakeuptime(&mut out, &rows)?;
    }
    out.flush()?;
    eprintln!("Detaching...");
    Ok(finish(watch, exited))
}

const STACKCOUNT_EXAMPLES: &str = "\
Examples:
  perfkit stackcount c:malloc                     # libc's malloc, by stack, until Ctrl-C
  perfkit stackcount -p 1234 -D 10 -f c:write     # one process, 10 s, folded
  perfkit stackcount -P 't:sched:sched_switch'    # a tracepoint, per process
  perfkit stackcount -U u:/usr/bin/app:app:request
  perfkit stackcount --json /usr/bin/app:parse -- ./app

As bcc's stackcount: each hit of a user function (LIB:FUNC, PATH:FUNC,
globs), USDT probe (u:PATH:[PROVIDER:]NAME) or tracepoint
(t:CATEGORY:NAME) is counted in the kernel under its user and kernel
stacks. User stacks are walked by frame pointers, as bcc's. Kernel
functions need kprobes, which perfkit does not use.";

/// Count hits of user functions, USDT probes or tracepoints by stack, like
/// bcc's stackcount.
#[derive(Debug, Args)]
#[command(after_help = STACKCOUNT_EXAMPLES)]
pub struct StackcountArgs {
    /// What to count: LIB:FUNC or PATH:FUNC (globs: 'c:read*'),
    /// t:CATEGORY:NAME, u:PATH:NAME or u:PATH:PROVIDER:NAME.
    #[arg(value_name = "PATTERN")]
    pattern: Option<String>,

    /// A stack per process (`comm [PID]`; in folded output `comm-PID`).
    #[arg(short = 'P', long)]
    per_pid: bool,

    /// Kernel stacks only.
    #[arg(short = 'K', long, conflicts_with = "user_stacks_only")]
    kernel_stacks_only: bool,

    /// User stacks only.
    #[arg(short = 'U', long)]
    user_stacks_only: bool,

    /// Show each stack's raw addresses too (bcc's -v; perfkit's -v is log
    /// verbosity).
    #[arg(long = "addresses")]
    addresses: bool,

    /// A delimiter (`--`, in folded output `-`) between the kernel and the
    /// user stack.
    #[arg(short = 'd', long)]
    delimited: bool,

    /// Folded output (`comm;frames COUNT`, flamegraph.pl's input).
    #[arg(short = 'f', long)]
    folded: bool,

    /// Print JSON (docs/JSON.md).
    #[arg(long, conflicts_with = "folded")]
    json: bool,

    /// Print the clock time of each interval.
    #[arg(short = 'T', long)]
    timestamp: bool,

    /// Seconds between reports; without it, one report at the end.
    #[arg(short = 'i', long, value_name = "INTERVAL", value_parser = crate::clock::tool_interval)]
    interval: Option<Duration>,

    /// Trace for this long, then report and exit (bcc's -D; `10`,
    /// `500ms`).
    #[arg(short = 'D', long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,

    #[command(flatten)]
    target: ToolTarget,
}

/// One row of stackcount: (process root, user frames, kernel frames).
type StackRow = (String, Vec<Frame>, Vec<Frame>);

pub fn stackcount(args: StackcountArgs) -> Result<ExitCode> {
    let pattern = args
        .pattern
        .as_deref()
        .context("a probe is needed: LIB:FUNC, PATH:FUNC, t:CATEGORY:NAME or u:PATH:[PROVIDER:]NAME")?;
    let spec = ProbeSpec::parse(pattern)?;
    let pid = args.target.pid.as_ref().and_then(|IdList(p)| p.first().copied());
    let probes = Resolver::new(pid, perfkit_profiler::library_dirs()).resolve(&spec)?;
    let mut watch = args.target.watch()?;
    let mut config = StackCountConfig::default();
    config.selection = watch.selection();
    config.probes = probes;
    let mut kinds = StackKinds::default();
    kinds.user = !args.kernel_stacks_only;
    kinds.kernel = !args.user_stacks_only;
    config.stacks = kinds;
    let tool = StackCounter::start(config)?;
    watch.release()?;
    eprintln!("Tracing {} functions for \"{spec}\"... Hit Ctrl-C to end.", tool.probes().len());
    let namer = Namer::new();
    let mut previous: HashMap<StackRow, u64> = HashMap::new();
    let mut reported = ToolStats::default();
    let schedule = Schedule { interval: args.interval, count: None, duration: args.duration };
    let namer = std::cell::RefCell::new(namer);
    let tick = || {
        let mut namer = namer.borrow_mut();
        if namer.due() {
            namer.note(tool.stacks()?.iter().map(|s| s.pid));
        }
        Ok::<(), anyhow::Error>(())
    };
    let exited = run_intervals(&schedule, &mut watch, crate::signals::interrupt_flag()?, tick, |_| {
        let mut namer = namer.borrow_mut();
        let stacks = tool.stacks()?;
        namer.note(stacks.iter().map(|s| s.pid));
        warn_losses("stackcount", &tool.stats()?, &mut reported);
        let mut totals: HashMap<StackRow, u64> = HashMap::new();
        let mut addrs: HashMap<StackRow, String> = HashMap::new();
        for s in &stacks {
            let root = if args.per_pid { format!("{} [{}]", s.comm, s.pid) } else { s.comm.clone() };
            let user = namer.frames(s.pid, &s.comm, &s.user, &RawStack::None);
            let kernel = namer.frames(s.pid, &s.comm, &RawStack::None, &s.kernel);
            let key = (root, user, kernel);
            if args.addresses {
                addrs.entry(key.clone()).or_insert_with(|| stack_addresses(&s.user, &s.kernel));
            }
            *totals.entry(key).or_default() += s.count;
        }
        let mut rows: Vec<(StackRow, u64)> = totals
            .iter()
            .map(|(k, &c)| (k.clone(), c.saturating_sub(previous.get(k).copied().unwrap_or(0))))
            .filter(|(_, c)| *c > 0)
            .collect();
        previous = totals;
        rows.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        print_stackcount(&args, &spec, &rows, &addrs)
    })?;
    eprintln!("Detaching...");
    Ok(finish(watch, exited))
}

fn print_stackcount(
    args: &StackcountArgs,
    spec: &ProbeSpec,
    rows: &[(StackRow, u64)],
    addrs: &HashMap<StackRow, String>,
) -> Result<()> {
    let rows: Vec<StackCountRow> = rows
        .iter()
        .map(|(key, count)| {
            let (comm, user, kernel) = key.clone();
            StackCountRow::new(comm, user, kernel, *count, addrs.get(key).cloned())
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let now = crate::clock::now_rfc3339();
        serde_json::to_writer(&mut out, &StackCountReport::new(now, args.interval, spec.to_string(), &rows))?;
        writeln!(out)?;
    } else if args.folded {
        write_stackcount_folded(&mut out, &rows, args.delimited)?;
    } else {
        if args.timestamp {
            writeln!(out, "{}", crate::clock::now_hms())?;
        }
        write_stackcount(&mut out, &rows, args.delimited, args.per_pid)?;
    }
    out.flush()?;
    Ok(())
}
