//! The command-line flags of a checkup (`checkup`), for programs built
//! with clap: the window, the processes under investigation, the JSON and
//! HTML outputs, and `--compare`; their help, validation, and conversion
//! to [`ObserveOptions`]. Enabled by the `clap` feature.
//!
//! ```
//! use std::time::Duration;
//! use clap::Parser;
//! use perfkit_checkup::flags::CheckupArgs;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     checkup: CheckupArgs,
//! }
//!
//! let cli = Cli::parse_from(["tool", "-d", "10s"]);
//! let options = cli.checkup.observe_options()?;
//! assert_eq!(options.duration, Duration::from_secs(10));
//! # Ok::<(), perfkit_checkup::flags::FlagsError>(())
//! ```

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;
use perfkit_target::PidList;

use crate::ObserveOptions;

/// Why the flags do not describe a checkup that can run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagsError {
    /// A PID of `-p` names no running process.
    #[error("no process {0}")]
    NoProcess(u32),
}

/// Observe the host for a while (CPU, memory, disks, network, processes)
/// and report its bottlenecks: ranked findings by the USE method, with
/// evidence, culprits and the next command to run.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct CheckupArgs {
    /// How long to observe: seconds, or with a unit (500ms, 2m).
    #[arg(short, long, value_name = "DURATION", default_value = "60", value_parser = perfkit_model::time::positive_duration)]
    pub duration: Duration,

    /// Write the findings and the time series as JSON to FILE (`-`:
    /// standard output, the text summary then goes to standard error).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// The processes under investigation, comma-separated: culprits are
    /// looked for among them, and a finding none of them causes is lowered
    /// to info.
    #[arg(short, long, value_name = "PID[,PID...]")]
    pub pid: Option<PidList>,

    /// Write the report as one self-contained HTML file (findings, charts
    /// over time, latency histograms, on-CPU flame graph, the culprits'
    /// off-CPU stacks); with --compare, the comparison and a differential
    /// flame graph.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Compare two checkups written by --json instead of observing: the
    /// findings that appeared, went away or changed severity, and key
    /// metrics before and after.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with_all = ["pid", "json", "duration"])]
    pub compare: Option<Vec<PathBuf>>,
}

impl CheckupArgs {
    /// The two documents of `--compare BEFORE AFTER`; `None` when the
    /// checkup observes.
    pub fn compare_files(&self) -> Option<(&Path, &Path)> {
        match self.compare.as_deref() {
            Some([before, after]) => Some((before, after)),
            _ => None,
        }
    }

    /// What to observe: the window of `-d` and the processes of `-p`,
    /// each checked to exist now (an error names the first that does not).
    pub fn observe_options(&self) -> Result<ObserveOptions, FlagsError> {
        let scope: Vec<u32> = self.pid.as_ref().map(|l| l.0.clone()).unwrap_or_default();
        if let Some(&pid) = scope.iter().find(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            return Err(FlagsError::NoProcess(pid));
        }
        Ok(ObserveOptions { duration: self.duration, scope_pids: scope, ..ObserveOptions::default() })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CheckupArgs,
    }

    fn parse(args: &[&str]) -> Result<CheckupArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("checkup").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.duration, Duration::from_secs(60));
        assert!(a.compare_files().is_none());
        let a = parse(&["-d", "500ms", "-p", "1,2", "--json", "x.json"]).unwrap();
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.pid.unwrap().0, [1, 2]);
        assert!(parse(&["-d", "-3"]).is_err());
        assert!(parse(&["-p", "abc"]).is_err());
        let a = parse(&["--compare", "a.json", "b.json", "-o", "d.html"]).unwrap();
        assert_eq!(a.compare_files(), Some((Path::new("a.json"), Path::new("b.json"))));
        assert_eq!(a.output.unwrap(), PathBuf::from("d.html"));
        assert!(parse(&["--compare", "a.json"]).is_err(), "two files");
        assert!(parse(&["--compare", "a.json", "b.json", "-p", "1"]).is_err(), "compare observes nothing");
    }

    #[test]
    fn observe_options_check_the_processes() {
        let me = std::process::id().to_string();
        let o = parse(&["-d", "2s", "-p", &me]).unwrap().observe_options().unwrap();
        assert_eq!(o.duration, Duration::from_secs(2));
        assert_eq!(o.scope_pids, [std::process::id()]);
        // Above the kernel's PID_MAX_LIMIT (4194304): never a process.
        let err = parse(&["-p", &format!("{me},4194305")]).unwrap().observe_options().unwrap_err();
        assert_eq!(err.to_string(), "no process 4194305");
    }
}
