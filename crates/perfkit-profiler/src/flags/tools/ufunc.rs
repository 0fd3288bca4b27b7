//! Flags of funccount and funclatency: bcc's tools on user functions, USDT
//! probes and tracepoints, with bcc's probe syntax.

use std::time::Duration;

use clap::Args;
use perfkit_probes::{
    Selection,
    tools::{
        FuncCountConfig, FuncCounter, FuncLatency, FuncLatencyConfig, LatencyUnit,
        drive::{self, Clock, DriveError, Driver, ReportView},
        run::{Schedule, Watch},
    },
};
use perfkit_target::ExitStatus;

use super::{Resolved, ToolFlags, ToolTargetArgs, resolved};
use crate::flags::{FlagError, tool_interval};

/// Reporting of the user-function tools: bcc's `-i` and `-d`.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct UfuncReporting {
    /// Print JSON: one object per interval.
    #[arg(long)]
    pub json: bool,

    /// Print the clock time of each interval.
    #[arg(short = 'T', long)]
    pub timestamp: bool,

    /// Seconds between reports (bcc's -i); without it, one report at the
    /// end.
    #[arg(short = 'i', long, value_name = "INTERVAL", value_parser = tool_interval)]
    pub interval: Option<Duration>,

    /// Trace for this long, then report and exit (bcc's -d; `10`, `500ms`,
    /// `2m`).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,
}

impl UfuncReporting {
    /// When and how to report.
    pub fn view(&self) -> ReportView {
        let schedule = Schedule { interval: self.interval, count: None, duration: self.duration };
        ReportView { json: self.json, timestamp: self.timestamp, schedule }
    }
}

/// Count calls of user functions, USDT probes or tracepoints, like bcc's
/// funccount.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct FunccountArgs {
    /// What to count: LIB:FUNC or PATH:FUNC (globs: 'c:read*'),
    /// t:CATEGORY:NAME, u:PATH:NAME or u:PATH:PROVIDER:NAME.
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,

    /// JSON, the clock time, interval and duration.
    #[command(flatten)]
    pub reporting: UfuncReporting,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    #[arg(skip)]
    resolved: Resolved,
}

impl ToolFlags for FunccountArgs {
    type Tool = FuncCounter;
    const NAME: &'static str = "funccount";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.resolved = Some(self.target.resolve(self.pattern.as_deref())?);
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<FuncCounter, FlagError> {
        let mut config = FuncCountConfig::default();
        (config.selection, config.probes) = (selection, resolved(&self.resolved)?.1.clone());
        Ok(FuncCounter::start(config)?)
    }

    fn banner(&self, tool: &FuncCounter, _: &dyn Clock) -> String {
        let spec = self.resolved.as_ref().map(|(s, _)| s.to_string()).unwrap_or_default();
        format!("Tracing {} functions for \"{spec}\"... Hit Ctrl-C to end.", tool.probes().len())
    }

    fn drive(&self, tool: &mut FuncCounter, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let (spec, _) = resolved(&self.resolved)?;
        drive::funccount(tool, spec, &self.reporting.view(), d)
    }

    fn farewell(&self) -> Option<&'static str> {
        Some("Detaching...")
    }
}

/// Time calls of user functions as a histogram, like bcc's funclatency.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct FunclatencyArgs {
    /// What to time: LIB:FUNC or PATH:FUNC (globs: all matches in one
    /// histogram).
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,

    /// Microseconds.
    #[arg(short = 'u', long, group = "unit")]
    pub microseconds: bool,

    /// Milliseconds.
    #[arg(short = 'm', long, group = "unit")]
    pub milliseconds: bool,

    /// Nanoseconds (the default).
    #[arg(short = 'n', long, group = "unit")]
    pub nanoseconds: bool,

    /// JSON, the clock time, interval and duration.
    #[command(flatten)]
    pub reporting: UfuncReporting,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    #[arg(skip)]
    resolved: Resolved,
}

impl FunclatencyArgs {
    /// The histogram's unit. JSON is in microseconds whatever -n/-u/-m say
    /// (they shape the text tables), so that no key changes with a flag.
    pub fn unit(&self) -> LatencyUnit {
        if self.microseconds || self.reporting.json {
            LatencyUnit::Microseconds
        } else if self.milliseconds {
            LatencyUnit::Milliseconds
        } else {
            LatencyUnit::Nanoseconds
        }
    }
}

impl ToolFlags for FunclatencyArgs {
    type Tool = FuncLatency;
    const NAME: &'static str = "funclatency";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.resolved = Some(self.target.resolve(self.pattern.as_deref())?);
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<FuncLatency, FlagError> {
        let mut config = FuncLatencyConfig::default();
        (config.selection, config.probes, config.unit) = (selection, resolved(&self.resolved)?.1.clone(), self.unit());
        Ok(FuncLatency::start(config)?)
    }

    fn banner(&self, _: &FuncLatency, _: &dyn Clock) -> String {
        let (spec, n) = self.resolved.as_ref().map(|(s, p)| (s.to_string(), p.len())).unwrap_or_default();
        format!("Tracing {n} functions for \"{spec}\"... Hit Ctrl-C to end.")
    }

    fn drive(&self, tool: &mut FuncLatency, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let (spec, probes) = resolved(&self.resolved)?;
        drive::funclatency(tool, spec, probes, &self.reporting.view(), d)
    }

    fn farewell(&self) -> Option<&'static str> {
        Some("Detaching...")
    }
}
