//! Flags of the aggregating tools of interrupts and run queues: hardirqs,
//! softirqs and runqlen.

use clap::Args;
use perfkit_probes::{
    Selection,
    tools::{
        DEFAULT_RUNQLEN_HZ, IrqKind, Irqs, IrqsConfig, Runqlen, RunqlenConfig,
        drive::{self, Clock, DriveError, Driver, IrqView, RunqlenView},
        run::Watch,
    },
};
use perfkit_target::ExitStatus;

use super::{Reporting, ToolFlags};
use crate::flags::FlagError;

/// Options hardirqs and softirqs share.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct IrqOptions {
    /// Nanoseconds instead of microseconds.
    #[arg(short = 'N', long)]
    pub nanoseconds: bool,

    /// Counts of runs instead of time.
    #[arg(short = 'C', long = "count", conflicts_with = "dist")]
    pub counts: bool,

    /// A histogram of run times per handler (or vector) instead of totals.
    #[arg(short = 'd', long)]
    pub dist: bool,

    /// Only interrupts on this CPU.
    #[arg(short = 'c', long, value_name = "CPU")]
    pub cpu: Option<u32>,

    /// Interval, count and JSON.
    #[command(flatten)]
    pub reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    pub time: bool,
}

impl IrqOptions {
    /// The view: -N changes the text tables only, JSON keeps microseconds
    /// so that no key changes with a flag.
    fn irq_view(&self) -> IrqView {
        IrqView { counts: self.counts, dist: self.dist, nanoseconds: self.nanoseconds && !self.reporting.json }
    }

    fn start(&self, kind: IrqKind) -> Result<Irqs, FlagError> {
        let mut config = IrqsConfig::new(kind == IrqKind::Hard, kind == IrqKind::Soft);
        (config.cpu, config.ns_slots) = (self.cpu, self.irq_view().nanoseconds);
        Ok(Irqs::start(config)?)
    }

    fn drive(&self, kind: IrqKind, tool: &mut Irqs, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        drive::irqs(tool, kind, self.irq_view(), &self.reporting.view(self.time), d)
    }
}

/// Time in hard IRQ handlers, like bcc's hardirqs.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct HardirqsArgs {
    /// Units, counts or histograms, the CPU, and reporting.
    #[command(flatten)]
    pub options: IrqOptions,
}

impl ToolFlags for HardirqsArgs {
    type Tool = Irqs;
    const NAME: &'static str = "hardirqs";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<Irqs, FlagError> {
        self.options.start(IrqKind::Hard)
    }

    fn banner(&self, _: &Irqs, _: &dyn Clock) -> String {
        "Tracing hard irq event time... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut Irqs, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        self.options.drive(IrqKind::Hard, tool, d)
    }
}

/// Time in softirq vectors, like bcc's softirqs.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct SoftirqsArgs {
    /// Units, counts or histograms, the CPU, and reporting.
    #[command(flatten)]
    pub options: IrqOptions,
}

impl ToolFlags for SoftirqsArgs {
    type Tool = Irqs;
    const NAME: &'static str = "softirqs";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<Irqs, FlagError> {
        self.options.start(IrqKind::Soft)
    }

    fn banner(&self, _: &Irqs, _: &dyn Clock) -> String {
        "Tracing soft irq event time... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut Irqs, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        self.options.drive(IrqKind::Soft, tool, d)
    }
}

/// Run-queue length histograms, like bcc's runqlen.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct RunqlenArgs {
    /// A histogram (or occupancy) per CPU.
    #[arg(short = 'C', long)]
    pub cpus: bool,

    /// Run-queue occupancy: the share of samples with a task waiting.
    #[arg(short = 'O', long)]
    pub runqocc: bool,

    /// With -O, the histograms too (without -O they are shown anyway).
    #[arg(short = 'H', long)]
    pub histograms: bool,

    /// Samples per second on each CPU.
    #[arg(short = 'f', long, value_name = "HZ", default_value_t = DEFAULT_RUNQLEN_HZ,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub frequency: u64,

    /// Interval, count and JSON.
    #[command(flatten)]
    pub reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    pub time: bool,
}

impl ToolFlags for RunqlenArgs {
    type Tool = Runqlen;
    const NAME: &'static str = "runqlen";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<Runqlen, FlagError> {
        let mut config = RunqlenConfig::default();
        config.frequency_hz = self.frequency;
        Ok(Runqlen::start(config)?)
    }

    fn banner(&self, _: &Runqlen, _: &dyn Clock) -> String {
        "Sampling run queue length... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut Runqlen, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let v = RunqlenView {
            frequency: self.frequency,
            per_cpu: self.cpus,
            occupancy: self.runqocc,
            histograms: self.histograms,
        };
        drive::runqlen(tool, v, &self.reporting.view(self.time), d)
    }
}
