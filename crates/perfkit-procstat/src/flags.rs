//! Command-line flags of the sysstat-style views (`sys cpu`, `sys proc`,
//! `sys record`, `sys report`...), for programs built with clap: the
//! flags, their help and validation, and their conversion to
//! [`CollectOptions`] and [`Reporter`]. Enabled by the `clap` feature.
//!
//! ```
//! use clap::Parser;
//! use perfkit_procstat::flags::{SysArgs, SysCommand};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     sys: SysArgs,
//! }
//!
//! let cli = Cli::parse_from(["tool", "proc", "-p", "1", "2", "5"]);
//! let SysCommand::Proc(p) = cli.sys.command else { unreachable!() };
//! assert_eq!(p.collect_options().threads, false);
//! assert_eq!(p.live.count, Some(5));
//! ```

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use perfkit_model::time::{Bare, parse_interval};

use crate::{
    CollectOptions, ProcessSelection, record,
    text::{Reporter, View},
};

/// The shortest INTERVAL the views take: below it, reading `/proc` would
/// take a large share of each interval on a busy machine.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The sys views' INTERVAL: [`MIN_INTERVAL`] to a day; bare numbers are
/// seconds.
fn sys_interval(s: &str) -> Result<Duration, String> {
    parse_interval(s, Bare::Seconds, MIN_INTERVAL).map_err(|e| e.to_string())
}

/// System and process statistics, like the sysstat tools.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct SysArgs {
    /// The view, or recording or replaying.
    #[command(subcommand)]
    pub command: SysCommand,
}

/// The views, and recording and replaying.
#[derive(Debug, Subcommand)]
pub enum SysCommand {
    /// Per-CPU utilisation, like `mpstat -P ALL`.
    Cpu(LiveArgs),
    /// Per-process CPU, memory, I/O and context switches, like `pidstat -u -r -d -w`.
    Proc(ProcArgs),
    /// Memory, swap, run queue and system activity, like `vmstat` and `free`.
    Mem(LiveArgs),
    /// Block device I/O, like `iostat -xz`.
    Disk(DiskArgs),
    /// Network interfaces, like `sar -n DEV`.
    Net(LiveArgs),
    /// Pressure stall information (/proc/pressure).
    Psi(LiveArgs),
    /// Record raw samples of every view to a file, every INTERVAL seconds
    /// for COUNT intervals or until Ctrl-C.
    Record(RecordArgs),
    /// Replay a recording as any view.
    Report(ReportArgs),
}

/// The arguments every live view takes.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct LiveArgs {
    /// Seconds between reports (fractions allowed, or with a unit: 500ms, 1m). Without it, one
    /// report since boot.
    #[arg(value_name = "INTERVAL", value_parser = sys_interval)]
    pub interval: Option<Duration>,

    /// Number of reports; without it, until Ctrl-C.
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// One JSON object per interval on standard output, for scripts.
    #[arg(long)]
    pub json: bool,

    /// Also record the raw samples to FILE (replay with `perfkit sys report`).
    #[arg(short = 'o', long = "record", value_name = "FILE")]
    pub record: Option<PathBuf>,
}

impl LiveArgs {
    /// The reporter of `view`: text tables, or JSON lines with `--json`.
    pub fn reporter(&self, view: View) -> Reporter {
        Reporter::new(view, self.json)
    }
}

/// `sys proc`: the processes, or threads, to show.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ProcArgs {
    /// Only these processes (repeat or separate with commas); default: every active process.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,

    /// One row per thread.
    #[arg(short = 't', long)]
    pub threads: bool,

    /// INTERVAL, COUNT and the output.
    #[command(flatten)]
    pub live: LiveArgs,
}

impl ProcArgs {
    /// What to collect: the processes of `--pid` (every process without
    /// it), per thread with `--threads`.
    pub fn collect_options(&self) -> CollectOptions {
        let processes =
            if self.pids.is_empty() { ProcessSelection::All } else { ProcessSelection::Pids(self.pids.clone()) };
        CollectOptions { processes, threads: self.threads, ..CollectOptions::default() }
    }

    /// The proc view's reporter, listing the processes of `--pid` even
    /// when idle.
    pub fn reporter(&self) -> Reporter {
        let mut r = self.live.reporter(View::Proc);
        r.pids = self.pids.clone();
        r
    }
}

/// `sys disk`: which devices to list.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct DiskArgs {
    /// Also list devices that did no I/O in the interval (iostat without -z).
    #[arg(long)]
    pub all: bool,

    /// INTERVAL, COUNT and the output.
    #[command(flatten)]
    pub live: LiveArgs,
}

impl DiskArgs {
    /// The disk view's reporter, idle devices included with `--all`.
    pub fn reporter(&self) -> Reporter {
        let mut r = self.live.reporter(View::Disk);
        r.all_disks = self.all;
        r
    }
}

/// `sys record`: raw samples of every view to a file.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct RecordArgs {
    /// Seconds between samples (fractions allowed, or with a unit: 500ms, 1m); default 1.
    #[arg(value_name = "INTERVAL", value_parser = sys_interval)]
    pub interval: Option<Duration>,

    /// Number of intervals, as for the views: COUNT+1 samples, replayed as
    /// COUNT reports; without it, until Ctrl-C.
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// The recording to write (samples are appended and flushed as taken).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Record threads as well as processes.
    #[arg(long)]
    pub threads: bool,

    /// The former -i SECONDS: refused, naming the positional form.
    #[arg(short = 'i', long = "interval", hide = true, value_name = "SECONDS", allow_hyphen_values = true)]
    pub old_interval: Option<String>,

    /// The former -c SAMPLES: refused, naming the positional form.
    #[arg(short = 'c', long = "count", hide = true, value_name = "SAMPLES", allow_hyphen_values = true)]
    pub old_count: Option<String>,
}

impl RecordArgs {
    /// The time between samples: INTERVAL, or one second.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(1))
    }

    /// What a recording collects ([`record::collect_options`]): every
    /// process, threads too with `--threads`.
    pub fn collect_options(&self) -> CollectOptions {
        record::collect_options(self.threads)
    }
}

/// A view of a recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ViewArg {
    /// mpstat -P ALL
    #[default]
    Cpu,
    /// pidstat
    Proc,
    /// vmstat and free
    Mem,
    /// iostat -xz
    Disk,
    /// sar -n DEV
    Net,
    /// PSI
    Psi,
}

impl From<ViewArg> for View {
    fn from(v: ViewArg) -> Self {
        match v {
            ViewArg::Cpu => View::Cpu,
            ViewArg::Proc => View::Proc,
            ViewArg::Mem => View::Mem,
            ViewArg::Disk => View::Disk,
            ViewArg::Net => View::Net,
            ViewArg::Psi => View::Psi,
        }
    }
}

/// `sys report`: a recording replayed as one view.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ReportArgs {
    /// A recording made by `perfkit sys record` (or a view's --record).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The view to print.
    #[arg(value_enum, default_value_t)]
    pub view: ViewArg,

    /// With the proc view: only these processes.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,

    /// With the disk view: also devices that did no I/O.
    #[arg(long)]
    pub all: bool,

    /// One JSON object per interval.
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    /// The reporter of the chosen view, with `--pid`, `--all` and `--json`.
    pub fn reporter(&self) -> Reporter {
        let mut reporter = Reporter::new(self.view.into(), self.json);
        reporter.pids = self.pids.clone();
        reporter.all_disks = self.all;
        reporter
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sys: SysArgs,
    }

    fn parse(args: &[&str]) -> Result<SysCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("sys").chain(args.iter().copied())).map(|c| c.sys.command)
    }

    #[test]
    fn views_take_interval_and_count() {
        let Ok(SysCommand::Proc(p)) = parse(&["proc", "-p", "1,2", "-p", "3", "--threads", "0.5", "4"]) else {
            panic!("proc")
        };
        assert_eq!(p.pids, [1, 2, 3]);
        assert_eq!(p.live.interval, Some(Duration::from_millis(500)));
        assert_eq!(p.live.count, Some(4));
        let o = p.collect_options();
        assert!(o.threads);
        assert!(matches!(o.processes, ProcessSelection::Pids(ref v) if v == &[1, 2, 3]));
        assert_eq!(p.reporter().pids, [1, 2, 3]);
        let Ok(SysCommand::Disk(d)) = parse(&["disk", "--all", "--json"]) else { panic!("disk") };
        assert!(d.reporter().all_disks && d.reporter().json);
        assert_eq!(d.live.interval, None);
        assert!(parse(&["cpu", "0.001"]).is_err(), "under 10 ms");
        assert!(parse(&["cpu", "1", "0"]).is_err(), "COUNT from 1");
        assert!(parse(&["mem", "abc"]).is_err());
    }

    #[test]
    fn record_and_report() {
        let Ok(SysCommand::Record(r)) = parse(&["record", "-o", "x.rec"]) else { panic!("record") };
        assert_eq!(r.interval(), Duration::from_secs(1));
        assert!(matches!(r.collect_options().processes, ProcessSelection::All));
        assert_eq!(r.collect_options().cgroup_depth, record::CGROUP_DEPTH);
        assert!(parse(&["record"]).is_err(), "-o is required");
        let Ok(SysCommand::Record(r)) = parse(&["record", "-i", "-5", "-o", "x.rec"]) else { panic!("old -i") };
        assert_eq!(r.old_interval.as_deref(), Some("-5"));
        let Ok(SysCommand::Report(r)) = parse(&["report", "x.rec", "disk", "--all"]) else { panic!("report") };
        assert_eq!(r.reporter().view, View::Disk);
        assert!(r.reporter().all_disks);
        let Ok(SysCommand::Report(r)) = parse(&["report", "x.rec"]) else { panic!("report") };
        assert_eq!(r.view, ViewArg::Cpu);
        assert!(parse(&["report", "x.rec", "gpu"]).is_err());
    }
}
