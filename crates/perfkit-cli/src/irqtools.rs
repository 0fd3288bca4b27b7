//! The aggregating tools of interrupts and run queues: `hardirqs`,
//! `softirqs` and `runqlen`, in bcc's layouts or as JSON. Thin callers of
//! `perfkit_probes::tools::{Irqs, Runqlen}`, run by
//! `perfkit_probes::tools::drive`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use perfkit_probes::tools::{
    DEFAULT_RUNQLEN_HZ, IrqKind, Irqs, IrqsConfig, Runqlen, RunqlenConfig,
    drive::{self, IrqView, RunqlenView},
    run::Watch,
};

use crate::tools::{Reporting, run};

/// Options hardirqs and softirqs share.
#[derive(Debug, Args)]
pub struct IrqOptions {
    /// Nanoseconds instead of microseconds.
    #[arg(short = 'N', long)]
    nanoseconds: bool,

    /// Counts of runs instead of time.
    #[arg(short = 'C', long = "count", conflicts_with = "dist")]
    counts: bool,

    /// A histogram of run times per handler (or vector) instead of totals.
    #[arg(short = 'd', long)]
    dist: bool,

    /// Only interrupts on this CPU.
    #[arg(short = 'c', long, value_name = "CPU")]
    cpu: Option<u32>,

    #[command(flatten)]
    reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    time: bool,
}

const HARDIRQS_EXAMPLES: &str = "\
Examples:
  perfkit hardirqs                 # until Ctrl-C: time per handler
  perfkit hardirqs 1 10            # every second, 10 times
  perfkit hardirqs -C              # runs per handler
  perfkit hardirqs -d -T 5         # histograms, every 5 s, with the time
  perfkit hardirqs --json 1 3

As bcc's hardirqs: time in each hard IRQ handler, by the name it
registered (the last column of /proc/interrupts), from irq_handler_entry
to irq_handler_exit (raw tracepoints; no kprobes).";

/// Time in hard IRQ handlers, like bcc's hardirqs.
#[derive(Debug, Args)]
#[command(after_help = HARDIRQS_EXAMPLES)]
pub struct HardirqsArgs {
    #[command(flatten)]
    options: IrqOptions,
}

const SOFTIRQS_EXAMPLES: &str = "\
Examples:
  perfkit softirqs                 # until Ctrl-C: time per vector
  perfkit softirqs 1 10            # every second, 10 times
  perfkit softirqs -C              # runs per vector (as /proc/softirqs)
  perfkit softirqs -d              # histograms
  perfkit softirqs --json 1 3

As bcc's softirqs: time in each softirq vector (net_rx, timer, rcu...),
from softirq_entry to softirq_exit (raw tracepoints; no kprobes).";

/// Time in softirq vectors, like bcc's softirqs.
#[derive(Debug, Args)]
#[command(after_help = SOFTIRQS_EXAMPLES)]
pub struct SoftirqsArgs {
    #[command(flatten)]
    options: IrqOptions,
}

pub fn hardirqs(args: HardirqsArgs) -> Result<ExitCode> {
    run_irqs(IrqKind::Hard, args.options)
}

pub fn softirqs(args: SoftirqsArgs) -> Result<ExitCode> {
    run_irqs(IrqKind::Soft, args.options)
}

/// One row of a report: a handler name (hard IRQs with the same name are
/// one row, as bcc keys them) or a vector, with its IRQ numbers.
fn run_irqs(kind: IrqKind, o: IrqOptions) -> Result<ExitCode> {
    let (name, what) = if kind == IrqKind::Hard { ("hardirqs", "hard irq") } else { ("softirqs", "soft irq") };
    // -N changes the text tables only: JSON keeps microseconds, so that no
    // key changes with a flag.
    let v = IrqView { counts: o.counts, dist: o.dist, nanoseconds: o.nanoseconds && !o.reporting.json };
    let view = o.reporting.view(o.time);
    let start = |_| {
        let mut config = IrqsConfig::new(kind == IrqKind::Hard, kind == IrqKind::Soft);
        (config.cpu, config.ns_slots) = (o.cpu, v.nanoseconds);
        Ok(Irqs::start(config)?)
    };
    let banner = |_: &_| format!("Tracing {what} event time... Hit Ctrl-C to end.");
    run(name, Watch::machine(), start, banner, |t, d| drive::irqs(t, kind, v, &view, d))
}

const RUNQLEN_EXAMPLES: &str = "\
Examples:
  perfkit runqlen                  # until Ctrl-C: one histogram
  perfkit runqlen 1 10             # every second, 10 times
  perfkit runqlen -C               # a histogram per CPU
  perfkit runqlen -O               # occupancy: how often a task waits
  perfkit runqlen --json 1 3

As bcc's runqlen: each CPU's run queue sampled 99 times a second (-f),
counting the tasks waiting besides the one running. perfkit reads the CPU's
own count of runnable tasks (struct rq, every scheduling class), where bcc
reads the running task's CFS queue (only its cgroup's, with group
scheduling).";

/// Run-queue length histograms, like bcc's runqlen.
#[derive(Debug, Args)]
#[command(after_help = RUNQLEN_EXAMPLES)]
pub struct RunqlenArgs {
    /// A histogram (or occupancy) per CPU.
    #[arg(short = 'C', long)]
    cpus: bool,

    /// Run-queue occupancy: the share of samples with a task waiting.
    #[arg(short = 'O', long)]
    runqocc: bool,

    /// With -O, the histograms too (without -O they are shown anyway).
    #[arg(short = 'H', long)]
    histograms: bool,

    /// Samples per second on each CPU.
    #[arg(short = 'f', long, value_name = "HZ", default_value_t = DEFAULT_RUNQLEN_HZ,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    frequency: u64,

    #[command(flatten)]
    reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    time: bool,
}

/// Prints a linear histogram of queue lengths in bcc's layout.
pub fn runqlen(args: RunqlenArgs) -> Result<ExitCode> {
    let view = args.reporting.view(args.time);
    let v = RunqlenView {
        frequency: args.frequency,
        per_cpu: args.cpus,
        occupancy: args.runqocc,
        histograms: args.histograms,
    };
    let start = |_| {
        let mut config = RunqlenConfig::default();
        config.frequency_hz = args.frequency;
        Ok(Runqlen::start(config)?)
    };
    let banner = |_: &_| "Sampling run queue length... Hit Ctrl-C to end.".to_owned();
    run("runqlen", Watch::machine(), start, banner, |t, d| drive::runqlen(t, v, &view, d))
}
