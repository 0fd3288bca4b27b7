//! `trace` and `argdist`: bcc's tools on uprobes, uretprobes, USDT probes
//! and tracepoints (`perfkit_probes::tools::{Tracer, ArgDist}`), with the
//! subset of bcc's probe syntax they need and bcc's flags.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;
use clap::Args;
use perfkit_probes::tools::{
    ArgDist, ArgDistConfig, ArgdistMode, ArgdistSpec, TraceConfig, TraceProbeSpec, Tracer,
    drive::{self, ReportView, SnoopView, TraceFilter},
    run::Schedule,
    text::TimeColumns,
};

use super::{ToolTarget, run};

fn string_size(n: usize) -> Result<usize> {
    anyhow::ensure!(
        (1..=perfkit_probes::tools::MAX_STRING_SIZE).contains(&n),
        "string size {n}: 1 to {} bytes (the kernel reads {} and a NUL)",
        perfkit_probes::tools::MAX_STRING_SIZE,
        perfkit_probes::tools::MAX_STRING_SIZE
    );
    Ok(n)
}

const TRACE_EXAMPLES: &str = "\
Examples:
  perfkit trace '/usr/bin/app:f \"a=%d s=%s\", arg1, arg2'
  perfkit trace 'r:/usr/bin/app:f \"ret %d\", retval'
  perfkit trace '/usr/bin/app:f (arg1 > 5) \"%d\", arg1'     # a filter
  perfkit trace 'p:c:open(char *path, int flags) \"%s\", path'
  perfkit trace 't:syscalls:sys_enter_openat \"%s\", args->filename'
  perfkit trace 'u:/usr/bin/app:myprov:tick \"%d\", arg1'
  perfkit trace -p 1234 -M 10 'c:malloc \"%llu bytes\", arg1'

As bcc's trace: PROBE [(FILTER)] [\"FORMAT\"[, ARG...]], several probes in
one run. PROBE is [p:]LIB:FUNC[(SIGNATURE)], r:LIB:FUNC (retval),
t:CATEGORY:NAME (args->FIELD) or u:LIB:[PROVIDER:]NAME (arg1..., from the
USDT note). Conversions: %d %i %u %x %X %s %c %p with l/ll. The kernel
captures the argument registers, the return value, the strings %s names
(up to 127 bytes, bpf_probe_read_user_str) and the tracepoint record; the
filter and the format are evaluated in user space (filtered hits are
counted on exit). A cut string ends in ...; one that could not be read
shows as [unreadable].";

/// Print a message at each hit of user functions, USDT probes or
/// tracepoints, like bcc's trace.
#[derive(Debug, Args)]
#[command(after_help = TRACE_EXAMPLES)]
pub struct TraceArgs {
    /// Probes: 'PROBE [(FILTER)] ["FORMAT"[, ARG...]]' (see below).
    #[arg(value_name = "PROBE")]
    probes: Vec<String>,

    /// One JSON object per message.
    #[arg(long)]
    json: bool,

    /// Cut strings at this many bytes (bcc's -Z; at most 127).
    #[arg(short = 'Z', long, value_name = "STRING_SIZE", default_value_t = 80)]
    string_size: usize,

    /// Stop after this many messages.
    #[arg(short = 'M', long, value_name = "MAX_EVENTS")]
    max_events: Option<u64>,

    /// A TIME column: seconds since the trace started.
    #[arg(short = 't', long)]
    timestamp: bool,

    /// A TIME column: the clock time (HH:MM:SS).
    #[arg(short = 'T', long)]
    time: bool,

    /// Only processes whose name contains this.
    #[arg(short = 'n', long, value_name = "NAME")]
    name: Option<String>,

    /// Only messages containing this.
    #[arg(short = 'f', long, value_name = "MSG_FILTER")]
    msg_filter: Option<String>,

    /// Trace for this long, then exit (`10`, `500ms`, `2m`).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,

    #[command(flatten)]
    target: ToolTarget,
}

pub fn trace(args: TraceArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        !args.probes.is_empty(),
        "trace needs a PROBE: 'LIB:FUNC \"FORMAT\", ARG', 'r:LIB:FUNC', 't:CATEGORY:NAME' or 'u:LIB:PROVIDER:NAME'"
    );
    let mut config = TraceConfig::default();
    for p in &args.probes {
        config.probes.push(TraceProbeSpec::parse(p)?);
    }
    config.string_size = string_size(args.string_size)?;
    config.resolver = args.target.resolver();
    let columns = TimeColumns { clock: args.time, seconds: args.timestamp };
    let view = SnoopView { json: args.json, columns, duration: args.duration };
    let filter = TraceFilter { name: args.name.clone(), message: args.msg_filter.clone(), max: args.max_events };
    let start = |selection| {
        config.selection = selection;
        Ok(Tracer::start(config)?)
    };
    let banner = |_: &_| format!("Tracing {} probes... Hit Ctrl-C to end.", args.probes.len());
    run("trace", args.target.watch()?, start, banner, |t, d| drive::trace(t, &args.probes, &filter, &view, d))
}

const ARGDIST_EXAMPLES: &str = "\
Examples:
  perfkit argdist -C 'p:/usr/bin/app:f(int a, char *s):int:a'     # counts of each a
  perfkit argdist -C 'p:/usr/bin/app:f(int a, char *s):char*:s'   # counts of each string
  perfkit argdist -H 'p:c:malloc(size_t size):size_t:size'        # a log2 histogram
  perfkit argdist -H 'r:/usr/bin/app:f():u64:$latency'            # nanoseconds per call
  perfkit argdist -C 'r:/usr/bin/app:g():int:$retval' -i 5 -n 3
  perfkit argdist -C 't:syscalls:sys_enter_openat():int:args->flags'
  perfkit argdist -C 'p:/usr/bin/app:f(int a):int:a:a>5#big a'    # a filter and a label

As bcc's argdist: {p,r,t,u}:SPEC(SIGNATURE)[:TYPE[,TYPE...]:EXPR[,EXPR...][:FILTER]][#LABEL].
Each hit's values are streamed from the kernel (as trace's) and counted,
filtered and put in log2 buckets in user space. Every INTERVAL (1 s) the
counts are printed and cleared (kept with -c).";

/// Count or histogram the values of arguments, return values and
/// tracepoint fields, like bcc's argdist.
#[derive(Debug, Args)]
#[command(after_help = ARGDIST_EXAMPLES)]
pub struct ArgdistArgs {
    /// Count each distinct value (bcc's -C).
    #[arg(short = 'C', long = "count", value_name = "SPECIFIER")]
    count: Vec<String>,

    /// A log2 histogram of the value (bcc's -H).
    #[arg(short = 'H', long = "histogram", value_name = "SPECIFIER")]
    histogram: Vec<String>,

    /// One JSON object per interval.
    #[arg(long)]
    json: bool,

    /// Seconds between outputs.
    #[arg(short = 'i', long, value_name = "INTERVAL", default_value = "1", value_parser = crate::clock::tool_interval)]
    interval: Duration,

    /// Trace for this long, then exit (`10`, `500ms`, `2m`).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,

    /// Exit after this many outputs.
    #[arg(short = 'n', long = "number", value_name = "COUNT")]
    number: Option<u64>,

    /// Do not clear the counts and histograms at each interval.
    #[arg(short = 'c', long)]
    cumulative: bool,

    /// Show only the TOP most frequent values of each -C.
    #[arg(short = 'T', long, value_name = "TOP")]
    top: Option<usize>,

    /// Cut strings at this many bytes (bcc's -z; at most 127).
    #[arg(short = 'z', long, value_name = "STRING_SIZE", default_value_t = 80)]
    string_size: usize,

    #[command(flatten)]
    target: ToolTarget,
}

pub fn argdist(args: ArgdistArgs) -> Result<ExitCode> {
    let mut config = ArgDistConfig::default();
    for c in &args.count {
        config.specs.push(ArgdistSpec::parse(c, ArgdistMode::Count)?);
    }
    for h in &args.histogram {
        config.specs.push(ArgdistSpec::parse(h, ArgdistMode::Histogram)?);
    }
    anyhow::ensure!(!config.specs.is_empty(), "argdist needs at least one -C or -H SPECIFIER");
    config.string_size = string_size(args.string_size)?;
    config.resolver = args.target.resolver();
    let schedule = Schedule { interval: Some(args.interval), count: args.number, duration: args.duration };
    let view = ReportView { json: args.json, timestamp: true, schedule };
    let start = |selection| {
        config.selection = selection;
        Ok(ArgDist::start(config)?)
    };
    let banner = |_: &_| format!("[{}] Tracing... Hit Ctrl-C to end.", crate::clock::now_hms());
    run("argdist", args.target.watch()?, start, banner, |t, d| drive::argdist(t, args.cumulative, args.top, &view, d))
}
