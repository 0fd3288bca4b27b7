//! Flags of bcc's tools that sum by stack: wakeuptime, stackcount and
//! memleak, run and symbolized by [`crate::stack_tools`].

use std::{ffi::OsString, time::Duration};

use clap::Args;
use perfkit_probes::{
    Selection,
    tools::{
        Memleak, MemleakConfig, MemleakMode, StackCountConfig, StackCounter, StackKinds, WakeupTime, WakeupTimeConfig,
        drive::{Clock, DriveError, Driver},
        run::{Schedule, Watch},
    },
};
use perfkit_target::{ExitStatus, PidList};

use super::{Reporting, Resolved, ToolFlags, ToolTargetArgs, resolved};
use crate::{
    flags::{FlagError, tool_interval},
    stack_tools::{self, MemleakView, StackcountView, WakeuptimeView},
};

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

/// Time threads were blocked, summed by the stacks of the threads that woke
/// them, like bcc's wakeuptime.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct WakeuptimeArgs {
    /// User threads only (no kernel threads' blocks).
    #[arg(short = 'u', long)]
    pub user_threads_only: bool,

    /// Show each stack's raw addresses too (bcc's -v; perfkit's -v is log
    /// verbosity).
    #[arg(long = "addresses")]
    pub addresses: bool,

    /// Folded output (`waker;frames;target MICROSECONDS`, flamegraph.pl's
    /// input).
    #[arg(short = 'f', long)]
    pub folded: bool,

    /// Print JSON (docs/JSON.md).
    #[arg(long, conflicts_with = "folded")]
    pub json: bool,

    /// Distinct stacks kept (bcc's default: 16384).
    #[arg(long, value_name = "N", default_value = "16384", value_parser = stack_storage)]
    pub stack_storage_size: u32,

    /// Shortest block counted, in microseconds (bcc's default: 1).
    #[arg(short = 'm', long = "min-block-time", value_name = "USECS", default_value = "1", value_parser = micros)]
    pub min_block: Duration,

    /// Longest block counted, in microseconds.
    #[arg(short = 'M', long = "max-block-time", value_name = "USECS", value_parser = micros)]
    pub max_block: Option<Duration>,

    /// Trace for this long, then report and exit (`10`, `500ms`, `2m`);
    /// bcc's positional DURATION.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,

    /// Which blocked threads.
    #[command(flatten)]
    pub target: ToolTargetArgs,
}

impl ToolFlags for WakeuptimeArgs {
    type Tool = WakeupTime;
    const NAME: &'static str = "wakeuptime";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<WakeupTime, FlagError> {
        let mut config = WakeupTimeConfig::default();
        (config.selection, config.min_block) = (selection, self.min_block);
        if let Some(max) = self.max_block {
            config.max_block = max;
        }
        (config.user_threads_only, config.stack_storage) = (self.user_threads_only, self.stack_storage_size);
        Ok(WakeupTime::start(config)?)
    }

    fn banner(&self, _: &WakeupTime, _: &dyn Clock) -> String {
        "Tracing blocked time (us) by waker stack... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut WakeupTime, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view =
            WakeuptimeView { json: self.json, folded: self.folded, addresses: self.addresses, duration: self.duration };
        stack_tools::wakeuptime(tool, &view, d)
    }

    fn farewell(&self) -> Option<&'static str> {
        Some("Detaching...")
    }
}

/// Count hits of user functions, USDT probes or tracepoints by stack, like
/// bcc's stackcount.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct StackcountArgs {
    /// What to count: LIB:FUNC or PATH:FUNC (globs: 'c:read*'),
    /// t:CATEGORY:NAME, u:PATH:NAME or u:PATH:PROVIDER:NAME.
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,

    /// A stack per process (`comm [PID]`; in folded output `comm-PID`).
    #[arg(short = 'P', long)]
    pub per_pid: bool,

    /// Kernel stacks only.
    #[arg(short = 'K', long, conflicts_with = "user_stacks_only")]
    pub kernel_stacks_only: bool,

    /// User stacks only.
    #[arg(short = 'U', long)]
    pub user_stacks_only: bool,

    /// Show each stack's raw addresses too (bcc's -v; perfkit's -v is log
    /// verbosity).
    #[arg(long = "addresses")]
    pub addresses: bool,

    /// A delimiter (`--`, in folded output `-`) between the kernel and the
    /// user stack.
    #[arg(short = 'd', long)]
    pub delimited: bool,

    /// Folded output (`comm;frames COUNT`, flamegraph.pl's input).
    #[arg(short = 'f', long)]
    pub folded: bool,

    /// Print JSON (docs/JSON.md).
    #[arg(long, conflicts_with = "folded")]
    pub json: bool,

    /// Print the clock time of each interval.
    #[arg(short = 'T', long)]
    pub timestamp: bool,

    /// Seconds between reports; without it, one report at the end.
    #[arg(short = 'i', long, value_name = "INTERVAL", value_parser = tool_interval)]
    pub interval: Option<Duration>,

    /// Trace for this long, then report and exit (bcc's -D; `10`,
    /// `500ms`).
    #[arg(short = 'D', long, value_name = "DURATION", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Option<Duration>,

    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    #[arg(skip)]
    resolved: Resolved,
}

impl ToolFlags for StackcountArgs {
    type Tool = StackCounter;
    const NAME: &'static str = "stackcount";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.resolved = Some(self.target.resolve(self.pattern.as_deref())?);
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<StackCounter, FlagError> {
        let mut config = StackCountConfig::default();
        (config.selection, config.probes) = (selection, resolved(&self.resolved)?.1.clone());
        let mut kinds = StackKinds::default();
        (kinds.user, kinds.kernel) = (!self.kernel_stacks_only, !self.user_stacks_only);
        config.stacks = kinds;
        Ok(StackCounter::start(config)?)
    }

    fn banner(&self, tool: &StackCounter, _: &dyn Clock) -> String {
        let spec = self.resolved.as_ref().map(|(s, _)| s.to_string()).unwrap_or_default();
        format!("Tracing {} functions for \"{spec}\"... Hit Ctrl-C to end.", tool.probes().len())
    }

    fn drive(&self, tool: &mut StackCounter, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = StackcountView {
            per_pid: self.per_pid,
            addresses: self.addresses,
            delimited: self.delimited,
            folded: self.folded,
            json: self.json,
            timestamp: self.timestamp,
            schedule: Schedule { interval: self.interval, count: None, duration: self.duration },
        };
        stack_tools::stackcount(tool, &resolved(&self.resolved)?.0, &view, d)
    }

    fn farewell(&self) -> Option<&'static str> {
        Some("Detaching...")
    }
}

/// Allocations made and not freed, by stack, like bcc's memleak.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct MemleakArgs {
    /// List each outstanding allocation (address, size, age) too.
    #[arg(short = 'a', long = "show-allocs")]
    pub show_allocs: bool,

    /// Leave out allocations younger than this, in milliseconds.
    #[arg(short = 'o', long, value_name = "OLDER", default_value_t = 500)]
    pub older: u64,

    /// Run this command (split at spaces) and watch it, as bcc's -c (or
    /// give it after `--`).
    #[arg(short = 'c', long = "command", value_name = "COMMAND")]
    pub command_line: Option<String>,

    /// Only each stack's totals, kept in the kernel as allocations come and
    /// go (no ages: no -o, no -a).
    #[arg(short = 'C', long)]
    pub combined_only: bool,

    /// Drop an outstanding allocation when its address is allocated again
    /// (its free was missed). Always done: accepted for bcc's scripts.
    #[arg(short = 'F', long)]
    pub wa_missing_free: bool,

    /// Record one allocation in this many (on each CPU).
    #[arg(short = 's', long = "sample-rate", value_name = "SAMPLE_RATE", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_rate: u64,

    /// Show this many stacks, the biggest first.
    #[arg(short = 'T', long, value_name = "TOP", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub top: u64,

    /// Leave out allocations smaller than this many bytes.
    #[arg(short = 'z', long, value_name = "MIN_SIZE")]
    pub min_size: Option<u64>,

    /// Leave out allocations larger than this many bytes.
    #[arg(short = 'Z', long, value_name = "MAX_SIZE")]
    pub max_size: Option<u64>,

    /// The allocator object (a path, or a library name: `c` is libc),
    /// user mode only.
    #[arg(short = 'O', long = "obj", visible_alias = "lib", value_name = "OBJ")]
    pub obj: Option<String>,

    /// Interval, count and JSON.
    #[command(flatten)]
    pub reporting: Reporting,

    /// Which process's allocator.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// The processes watched in user mode (-p, and the command once held).
    #[arg(skip)]
    pids: Vec<u32>,
}

impl MemleakArgs {
    /// User mode (a process's allocator) rather than the kernel's.
    fn user(&self) -> bool {
        self.target.pid.is_some() || !self.target.command.is_empty()
    }
}

impl ToolFlags for MemleakArgs {
    type Tool = Memleak;
    const NAME: &'static str = "memleak";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        if let Some(line) = &self.command_line {
            if self.target.pid.is_some() || self.target.cgroup.is_some() || !self.target.command.is_empty() {
                return Err(FlagError::Conflict(
                    "-c COMMAND is the target: give no -p, --cgroup or -- COMMAND with it",
                ));
            }
            let words: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
            if words.is_empty() {
                return Err(FlagError::Conflict("-c needs a command"));
            }
            self.target.command = words;
        }
        if self.combined_only && self.show_allocs {
            return Err(FlagError::Conflict(
                "--combined-only keeps each stack's totals, not the allocations: -a needs them",
            ));
        }
        if self.target.cgroup.is_some() {
            return Err(FlagError::Conflict(
                "memleak watches a user allocator in -p PID or -c COMMAND, or (neither) the kernel's allocations",
            ));
        }
        if !self.user() && self.obj.is_some() {
            return Err(FlagError::Conflict("-O names a user allocator: give -p PID or -c COMMAND"));
        }
        let watch = self.target.watch()?;
        if self.user() {
            self.pids.extend(self.target.pid.iter().flat_map(|PidList(p)| p));
            self.pids.extend(watch.command_pid());
        }
        Ok(watch)
    }

    fn start(&self, selection: Option<Selection>) -> Result<Memleak, FlagError> {
        let mut config = MemleakConfig::default();
        config.min_size = self.min_size.unwrap_or(0);
        config.max_size = self.max_size.unwrap_or(u64::MAX);
        config.sample_every = self.sample_rate;
        if self.user() {
            let object = self.obj.clone().unwrap_or_else(|| "c".to_owned());
            let pid = self.target.first_pid();
            config.mode = MemleakMode::User { object, pid, library_dirs: crate::library_dirs() };
            config.selection = selection;
        }
        Ok(Memleak::start(config)?)
    }

    fn banner(&self, tool: &Memleak, _: &dyn Clock) -> String {
        let functions = tool.functions().join(", ");
        if self.user() {
            let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
            format!("Attaching to {functions} in {}, Ctrl+C to quit.", pids.join(","))
        } else {
            format!("Attaching to kernel allocators ({functions}), Ctrl+C to quit.")
        }
    }

    fn drive(&self, tool: &mut Memleak, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = MemleakView {
            show_allocs: self.show_allocs,
            older: Duration::from_millis(self.older),
            combined_only: self.combined_only,
            top: usize::try_from(self.top).unwrap_or(usize::MAX),
            json: self.reporting.json,
            timestamp: self.reporting.timestamp,
            interval: self.reporting.interval.unwrap_or(MemleakView::default().interval),
            count: self.reporting.count,
        };
        stack_tools::memleak(tool, &self.pids, self.user(), &view, d)
    }
}
