//! `wakeuptime` and `stackcount`: bcc's tools that sum by stack
//! (`perfkit_probes::tools::{WakeupTime, StackCounter}`), run and
//! symbolized by `perfkit_profiler::stack_tools`.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;
use clap::Args;
use perfkit_probes::tools::{StackCountConfig, StackCounter, StackKinds, WakeupTime, WakeupTimeConfig, run::Schedule};
use perfkit_profiler::stack_tools::{self, StackcountView, WakeuptimeView};

use super::{ToolTarget, run};

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

pub fn wakeuptime(args: WakeuptimeArgs) -> Result<ExitCode> {
    let view =
        WakeuptimeView { json: args.json, folded: args.folded, addresses: args.addresses, duration: args.duration };
    let start = |selection| {
        let mut config = WakeupTimeConfig::default();
        (config.selection, config.min_block) = (selection, args.min_block);
        if let Some(max) = args.max_block {
            config.max_block = max;
        }
        (config.user_threads_only, config.stack_storage) = (args.user_threads_only, args.stack_storage_size);
        Ok(WakeupTime::start(config)?)
    };
    let banner = |_: &_| "Tracing blocked time (us) by waker stack... Hit Ctrl-C to end.".to_owned();
    run("wakeuptime", args.target.watch()?, start, banner, |t, d| {
        stack_tools::wakeuptime(t, &view, d).inspect(|_| eprintln!("Detaching..."))
    })
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

pub fn stackcount(args: StackcountArgs) -> Result<ExitCode> {
    let (spec, probes) = args.target.resolve(args.pattern.as_deref())?;
    let view = StackcountView {
        per_pid: args.per_pid,
        addresses: args.addresses,
        delimited: args.delimited,
        folded: args.folded,
        json: args.json,
        timestamp: args.timestamp,
        schedule: Schedule { interval: args.interval, count: None, duration: args.duration },
    };
    let start = |selection| {
        let mut config = StackCountConfig::default();
        (config.selection, config.probes) = (selection, probes);
        let mut kinds = StackKinds::default();
        (kinds.user, kinds.kernel) = (!args.kernel_stacks_only, !args.user_stacks_only);
        config.stacks = kinds;
        Ok(StackCounter::start(config)?)
    };
    let banner =
        |t: &StackCounter| format!("Tracing {} functions for \"{spec}\"... Hit Ctrl-C to end.", t.probes().len());
    run("stackcount", args.target.watch()?, start, banner, |t, d| {
        stack_tools::stackcount(t, &spec, &view, d).inspect(|_| eprintln!("Detaching..."))
    })
}
