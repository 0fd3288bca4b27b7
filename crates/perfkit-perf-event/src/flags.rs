//! The command-line flags of counting like `perf stat` (`stat`), for
//! programs built with clap: the target, the events, the duration, `-I`
//! intervals, CSV, repeats and JSON; their help, validation, and
//! conversion to [`StatEvent`]s and a text [`Layout`]. Enabled by the
//! `clap` feature.
//!
//! ```
//! use clap::Parser;
//! use perfkit_perf_event::{flags::StatArgs, stat::{StatEvent, text::Layout}};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     stat: StatArgs,
//! }
//!
//! let cli = Cli::parse_from(["tool", "-x", ";", "-e", "task-clock", "--", "make"]);
//! assert_eq!(cli.stat.events(), [StatEvent::TaskClock]);
//! assert_eq!(cli.stat.layout(), Layout::Csv(";".into()));
//! assert_eq!(cli.stat.runs(), 1);
//! ```

use std::{ffi::OsString, time::Duration};

use clap::Args;
use perfkit_model::time::{Bare, parse_interval, positive_duration};
use perfkit_target::PidList;

use crate::stat::{StatEvent, text::Layout};

/// The shortest `-I` interval, as perf's: each interval reads every
/// counter, which costs too much of a shorter one.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// `-I`: [`MIN_INTERVAL`] to a day; bare numbers are milliseconds, as
/// perf's.
fn stat_interval(s: &str) -> Result<Duration, String> {
    parse_interval(s, Bare::Millis, MIN_INTERVAL).map_err(|e| e.to_string())
}

/// `-x SEP`: any text without control characters but tab.
fn parse_separator(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{s:?} cannot separate fields (examples: -x, or -x ';')"));
    }
    Ok(s.to_owned())
}

/// Count events of processes, a command or the whole machine, like `perf
/// stat`.
///
/// Counts every thread of the target, threads and child processes created
/// later included (every CPU with -a), until Ctrl-C, the duration, or the
/// target's exit. The counts are printed on standard error, as perf does.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct StatArgs {
    /// Processes to count, comma-separated (all their threads, and the
    /// processes they start).
    #[arg(short, long, value_name = "PIDS", conflicts_with_all = ["command", "all_cpus"])]
    pub pid: Option<PidList>,

    /// Count on every CPU (system-wide), until Ctrl-C, the duration, or
    /// the exit of the command given.
    #[arg(short, long)]
    pub all_cpus: bool,

    /// Events, comma-separated: task-clock, cpu-clock, context-switches, cpu-migrations,
    /// page-faults, minor-faults, major-faults, cycles, instructions, branches, branch-misses,
    /// cache-references, cache-misses, L1-dcache-loads, L1-dcache-load-misses.
    #[arg(short, long, value_name = "EVENTS", value_delimiter = ',')]
    pub events: Vec<StatEvent>,

    /// Stop after this long (seconds, or 500ms, 1.5s, 2m, 1h30m).
    #[arg(short, long, value_name = "DURATION", value_parser = positive_duration)]
    pub duration: Option<Duration>,

    /// Print the counts of each interval of MS milliseconds (at least 10;
    /// or with a unit: 2s), each line starting with the time since counting
    /// began.
    #[arg(short = 'I', long = "interval-print", value_name = "MS", value_parser = stat_interval)]
    pub interval: Option<Duration>,

    /// Print perf's CSV with this separator: value, unit, event, run time
    /// (ns), % running, metric, metric unit (and the spread of the runs
    /// after the event with -r).
    #[arg(short = 'x', long = "field-separator", value_name = "SEP", value_parser = parse_separator)]
    pub separator: Option<String>,

    /// Run the command N times and print the means, each with its
    /// relative standard deviation, as perf does.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), conflicts_with = "interval")]
    pub repeat: Option<u32>,

    /// Print the counts as JSON on standard output.
    #[arg(long, conflicts_with_all = ["interval", "separator", "repeat"])]
    pub json: bool,

    /// Command to run and count until it exits (`--` before it is needed
    /// only when its first word starts with `-`).
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

impl StatArgs {
    /// The events of `-e`, or perf's default set ([`StatEvent::DEFAULT`]).
    pub fn events(&self) -> Vec<StatEvent> {
        if self.events.is_empty() { StatEvent::DEFAULT.to_vec() } else { self.events.clone() }
    }

    /// How many times the command runs (`-r`; once without it).
    pub fn runs(&self) -> u32 {
        self.repeat.unwrap_or(1)
    }

    /// The text layout: perf's table, or CSV with `-x SEP`.
    pub fn layout(&self) -> Layout {
        match &self.separator {
            Some(sep) => Layout::Csv(sep.clone()),
            None => Layout::Table,
        }
    }

    /// The processes of `-p` (empty without it).
    pub fn pids(&self) -> &[u32] {
        self.pid.as_ref().map(|p| p.0.as_slice()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: StatArgs,
    }

    fn parse(args: &[&str]) -> Result<StatArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("stat").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn perf_flags() {
        let a = parse(&["-a", "-I", "500", "-x", ";", "-e", "task-clock"]).unwrap();
        assert!(a.all_cpus);
        assert_eq!(a.interval, Some(Duration::from_millis(500)));
        assert_eq!(a.separator.as_deref(), Some(";"));
        assert_eq!(a.layout(), Layout::Csv(";".to_owned()));
        assert_eq!(a.events(), [StatEvent::TaskClock]);
        assert_eq!(parse(&["-p", "1,2,3"]).unwrap().pid, Some(PidList(vec![1, 2, 3])));
        assert_eq!(parse(&["-p", "1,2,3"]).unwrap().pids(), [1, 2, 3]);
        assert_eq!(parse(&["-r", "5", "--", "true"]).unwrap().runs(), 5);
        let b = parse(&["-a", "sleep", "1"]).unwrap();
        assert!(b.all_cpus && b.command.len() == 2);
        assert_eq!(b.runs(), 1);
        assert_eq!(b.layout(), Layout::Table);
        assert_eq!(b.events(), StatEvent::DEFAULT);
        assert!(b.pids().is_empty());
        for bad in [
            &["-I", "5", "-a"][..],
            &["-I", "abc", "-a"],
            &["-r", "0", "true"],
            &["-r", "2", "-I", "100", "true"],
            &["-x", "", "-a"],
            &["--json", "-x", ",", "-a"],
            &["-p", "1", "-a"],
            &["-p", "1", "--", "true"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
