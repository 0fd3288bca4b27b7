//! Flags of trace and argdist: bcc's tools on uprobes, uretprobes, USDT
//! probes and tracepoints, with the subset of bcc's probe syntax they need.

use std::time::Duration;

use clap::Args;
use perfkit_probes::{
    Selection,
    tools::{
        ArgDist, ArgDistConfig, ArgdistMode, ArgdistSpec, MAX_STRING_SIZE, TraceConfig, TraceProbeSpec, Tracer,
        drive::{self, Clock, DriveError, Driver, ReportView, SnoopView, TraceFilter},
        run::{Schedule, Watch},
        text::TimeColumns,
    },
};
use perfkit_target::ExitStatus;

use super::{ToolFlags, ToolTargetArgs};
use crate::flags::{FlagError, tool_interval};

/// A string size the kernel side can read: 1 to [`MAX_STRING_SIZE`].
fn string_size(n: usize) -> Result<usize, FlagError> {
    if !(1..=MAX_STRING_SIZE).contains(&n) {
        return Err(FlagError::Invalid(format!(
            "string size {n}: 1 to {MAX_STRING_SIZE} bytes (the kernel reads {MAX_STRING_SIZE} and a NUL)"
        )));
    }
    Ok(n)
}

/// Print a message at each hit of user functions, USDT probes or
/// tracepoints, like bcc's trace.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct TraceArgs {
    /// Probes: 'PROBE [(FILTER)] ["FORMAT"[, ARG...]]' (see below).
    #[arg(value_name = "PROBE")]
    pub probes: Vec<String>,

    /// One JSON object per message.
    #[arg(long)]
    pub json: bool,

    /// Cut strings at this many bytes (bcc's -Z; at most 127).
    #[arg(short = 'Z', long, value_name = "STRING_SIZE", default_value_t = 80)]
    pub string_size: usize,

    /// Stop after this many messages.
    #[arg(short = 'M', long, value_name = "MAX_EVENTS")]
    pub max_events: Option<u64>,

    /// A TIME column: seconds since the trace started.
    #[arg(short = 't', long)]
    pub timestamp: bool,

    /// A TIME column: the clock time (HH:MM:SS).
    #[arg(short = 'T', long)]
    pub time: bool,

    /// Only processes whose name contains this.
    #[arg(short = 'n', long, value_name = "NAME")]
    pub name: Option<String>,

    /// Only messages containing this.
    #[arg(short = 'f', long, value_name = "MSG_FILTER")]
    pub msg_filter: Option<String>,

    /// Trace for this long, then exit (`10`, `500ms`, `2m`).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,
}

impl TraceArgs {
    /// The tracer's configuration: the probes parsed, without a selection.
    pub fn config(&self) -> Result<TraceConfig, FlagError> {
        if self.probes.is_empty() {
            return Err(FlagError::Conflict(
                "trace needs a PROBE: 'LIB:FUNC \"FORMAT\", ARG', 'r:LIB:FUNC', 't:CATEGORY:NAME' or 'u:LIB:PROVIDER:NAME'",
            ));
        }
        let mut config = TraceConfig::default();
        for p in &self.probes {
            config.probes.push(TraceProbeSpec::parse(p)?);
        }
        config.string_size = string_size(self.string_size)?;
        config.resolver = self.target.resolver();
        Ok(config)
    }
}

impl ToolFlags for TraceArgs {
    type Tool = Tracer;
    const NAME: &'static str = "trace";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.config()?;
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<Tracer, FlagError> {
        let mut config = self.config()?;
        config.selection = selection;
        Ok(Tracer::start(config)?)
    }

    fn banner(&self, _: &Tracer, _: &dyn Clock) -> String {
        format!("Tracing {} probes... Hit Ctrl-C to end.", self.probes.len())
    }

    fn drive(&self, tool: &mut Tracer, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let columns = TimeColumns { clock: self.time, seconds: self.timestamp };
        let view = SnoopView { json: self.json, columns, duration: self.duration };
        let filter = TraceFilter { name: self.name.clone(), message: self.msg_filter.clone(), max: self.max_events };
        drive::trace(tool, &self.probes, &filter, &view, d)
    }
}

/// Count or histogram the values of arguments, return values and
/// tracepoint fields, like bcc's argdist.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ArgdistArgs {
    /// Count each distinct value (bcc's -C).
    #[arg(short = 'C', long = "count", value_name = "SPECIFIER")]
    pub count: Vec<String>,

    /// A log2 histogram of the value (bcc's -H).
    #[arg(short = 'H', long = "histogram", value_name = "SPECIFIER")]
    pub histogram: Vec<String>,

    /// One JSON object per interval.
    #[arg(long)]
    pub json: bool,

    /// Seconds between outputs.
    #[arg(short = 'i', long, value_name = "INTERVAL", default_value = "1", value_parser = tool_interval)]
    pub interval: Duration,

    /// Trace for this long, then exit (`10`, `500ms`, `2m`).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,

    /// Exit after this many outputs.
    #[arg(short = 'n', long = "number", value_name = "COUNT")]
    pub number: Option<u64>,

    /// Do not clear the counts and histograms at each interval.
    #[arg(short = 'c', long)]
    pub cumulative: bool,

    /// Show only the TOP most frequent values of each -C.
    #[arg(short = 'T', long, value_name = "TOP")]
    pub top: Option<usize>,

    /// Cut strings at this many bytes (bcc's -z; at most 127).
    #[arg(short = 'z', long, value_name = "STRING_SIZE", default_value_t = 80)]
    pub string_size: usize,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,
}

impl ArgdistArgs {
    /// The tool's configuration: the specifiers parsed, without a
    /// selection.
    pub fn config(&self) -> Result<ArgDistConfig, FlagError> {
        let mut config = ArgDistConfig::default();
        for c in &self.count {
            config.specs.push(ArgdistSpec::parse(c, ArgdistMode::Count)?);
        }
        for h in &self.histogram {
            config.specs.push(ArgdistSpec::parse(h, ArgdistMode::Histogram)?);
        }
        if config.specs.is_empty() {
            return Err(FlagError::Conflict("argdist needs at least one -C or -H SPECIFIER"));
        }
        config.string_size = string_size(self.string_size)?;
        config.resolver = self.target.resolver();
        Ok(config)
    }
}

impl ToolFlags for ArgdistArgs {
    type Tool = ArgDist;
    const NAME: &'static str = "argdist";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.config()?;
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<ArgDist, FlagError> {
        let mut config = self.config()?;
        config.selection = selection;
        Ok(ArgDist::start(config)?)
    }

    fn banner(&self, _: &ArgDist, clock: &dyn Clock) -> String {
        format!("[{}] Tracing... Hit Ctrl-C to end.", clock.hms())
    }

    fn drive(&self, tool: &mut ArgDist, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let schedule = Schedule { interval: Some(self.interval), count: self.number, duration: self.duration };
        let view = ReportView { json: self.json, timestamp: true, schedule };
        drive::argdist(tool, self.cumulative, self.top, &view, d)
    }
}
