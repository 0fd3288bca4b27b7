//! `funccount` and `funclatency`: bcc's tools on user functions, USDT
//! probes and tracepoints (`perfkit_probes::tools::{FuncCounter,
//! FuncLatency}`), with bcc's probe syntax and flags.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;
use clap::Args;
use perfkit_probes::tools::{
    FuncCountConfig, FuncCounter, FuncLatency, FuncLatencyConfig, LatencyUnit,
    drive::{self, ReportView},
    run::Schedule,
};

use super::{ToolTarget, run};

/// Reporting of the user-function tools: bcc's `-i` and `-d`.
#[derive(Debug, Args)]
pub struct UfuncReporting {
    /// Print JSON: one object per interval.
    #[arg(long)]
    json: bool,

    /// Print the clock time of each interval.
    #[arg(short = 'T', long)]
    timestamp: bool,

    /// Seconds between reports (bcc's -i); without it, one report at the
    /// end.
    #[arg(short = 'i', long, value_name = "INTERVAL", value_parser = crate::clock::tool_interval)]
    interval: Option<Duration>,

    /// Trace for this long, then report and exit (bcc's -d; `10`, `500ms`,
    /// `2m`).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,
}

impl UfuncReporting {
    /// When and how to report.
    fn view(&self) -> ReportView {
        let schedule = Schedule { interval: self.interval, count: None, duration: self.duration };
        ReportView { json: self.json, timestamp: self.timestamp, schedule }
    }
}

const FUNCCOUNT_EXAMPLES: &str = "\
Examples:
  perfkit funccount 'c:read*'                    # libc's read* functions, until Ctrl-C
  perfkit funccount -p 1234 -i 1 'c:malloc'      # one process, every second
  perfkit funccount /usr/bin/app:parse_request -d 10
  perfkit funccount u:/usr/bin/app:app:request   # a USDT probe (semaphores incremented)
  perfkit funccount 't:sched:sched_wakeup*'      # tracepoints
  perfkit funccount --json c:getppid -- ./my-program

As bcc's funccount: calls counted exactly in the kernel (uprobes, USDT
probes from .note.stapsdt, tracepoints). LIB is a path or a library name
(c: libc), found in the mappings of -p's process or in the loader's
directories. Kernel functions need kprobes, which perfkit does not use.";

/// Count calls of user functions, USDT probes or tracepoints, like bcc's
/// funccount.
#[derive(Debug, Args)]
#[command(after_help = FUNCCOUNT_EXAMPLES)]
pub struct FunccountArgs {
    /// What to count: LIB:FUNC or PATH:FUNC (globs: 'c:read*'),
    /// t:CATEGORY:NAME, u:PATH:NAME or u:PATH:PROVIDER:NAME.
    #[arg(value_name = "PATTERN")]
    pattern: Option<String>,

    #[command(flatten)]
    reporting: UfuncReporting,

    #[command(flatten)]
    target: ToolTarget,
}

pub fn funccount(args: FunccountArgs) -> Result<ExitCode> {
    let (spec, probes) = args.target.resolve(args.pattern.as_deref())?;
    let view = args.reporting.view();
    let start = |selection| {
        let mut config = FuncCountConfig::default();
        (config.selection, config.probes) = (selection, probes);
        Ok(FuncCounter::start(config)?)
    };
    let banner =
        |t: &FuncCounter| format!("Tracing {} functions for \"{spec}\"... Hit Ctrl-C to end.", t.probes().len());
    run("funccount", args.target.watch()?, start, banner, |t, d| {
        drive::funccount(t, &spec, &view, d).inspect(|_| eprintln!("Detaching..."))
    })
}

const FUNCLATENCY_EXAMPLES: &str = "\
Examples:
  perfkit funclatency c:read                     # libc's read, nanoseconds, until Ctrl-C
  perfkit funclatency -u -p 1234 -i 1 c:read     # microseconds, every second
  perfkit funclatency -m /usr/bin/app:handle -d 30
  perfkit funclatency --json -u /usr/bin/app:handle -- ./app

As bcc's funclatency: a uprobe records each thread's entry, a uretprobe
the time to the return, in a log2 histogram (one for every function the
pattern matches). A function that never returns (longjmp, a thread that
exits in it) is not counted.";

/// Time calls of user functions as a histogram, like bcc's funclatency.
#[derive(Debug, Args)]
#[command(after_help = FUNCLATENCY_EXAMPLES)]
pub struct FunclatencyArgs {
    /// What to time: LIB:FUNC or PATH:FUNC (globs: all matches in one
    /// histogram).
    #[arg(value_name = "PATTERN")]
    pattern: Option<String>,

    /// Microseconds.
    #[arg(short = 'u', long, group = "unit")]
    microseconds: bool,

    /// Milliseconds.
    #[arg(short = 'm', long, group = "unit")]
    milliseconds: bool,

    /// Nanoseconds (the default).
    #[arg(short = 'n', long, group = "unit")]
    nanoseconds: bool,

    #[command(flatten)]
    reporting: UfuncReporting,

    #[command(flatten)]
    target: ToolTarget,
}

pub fn funclatency(args: FunclatencyArgs) -> Result<ExitCode> {
    // JSON is in microseconds whatever -n/-u/-m say (they shape the text
    // tables), so that no key changes with a flag.
    let unit = if args.microseconds || args.reporting.json {
        LatencyUnit::Microseconds
    } else if args.milliseconds {
        LatencyUnit::Milliseconds
    } else {
        LatencyUnit::Nanoseconds
    };
    let (spec, probes) = args.target.resolve(args.pattern.as_deref())?;
    let view = args.reporting.view();
    let start = |selection| {
        let mut config = FuncLatencyConfig::default();
        (config.selection, config.probes, config.unit) = (selection, probes.clone(), unit);
        Ok(FuncLatency::start(config)?)
    };
    let banner = |_: &_| format!("Tracing {} functions for \"{spec}\"... Hit Ctrl-C to end.", probes.len());
    run("funclatency", args.target.watch()?, start, banner, |t, d| {
        drive::funclatency(t, &spec, &probes, &view, d).inspect(|_| eprintln!("Detaching..."))
    })
}
