//! The command-line flags of the commands that read profiles from files
//! and draw or convert them (`flamegraph`, `diff`, `convert`), for
//! programs built with clap: their arguments, help and validation, and
//! their conversion to [`ReadOptions`], [`SvgOptions`] and
//! [`DiffOptions`]. Enabled by the `clap` feature (which brings
//! perfkit-flamegraph's drawing flags, [`DrawArgs`]).
//!
//! ```
//! use clap::Parser;
//! use perfkit_formats::{Roots, flags::FlamegraphArgs};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     flamegraph: FlamegraphArgs,
//! }
//!
//! let cli = Cli::parse_from(["tool", "--roots", "thread", "perf.script"]);
//! assert_eq!(cli.flamegraph.read.options().roots, Roots::Thread);
//! assert_eq!(cli.flamegraph.svg_options().title, "Flame graph: perf.script");
//! ```

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use perfkit_flamegraph::{DiffOptions, SvgOptions, flags::DrawArgs};
use perfkit_model::Profile;

use crate::{OutputFormat, ReadOptions, Roots};

/// The path that names standard input or output.
const STDIO: &str = "-";

/// How inputs are read, shared by the commands that read profiles.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ReadArgs {
    /// Root frames for `perf script` input: command, process or thread.
    #[arg(long, value_enum, default_value_t)]
    pub roots: RootsArg,
}

impl ReadArgs {
    /// Options reading within the process's budget (`--max-memory`).
    pub fn options(&self) -> ReadOptions {
        ReadOptions { roots: self.roots.into(), ..ReadOptions::default() }
    }
}

/// The root frame of each stack, for `perf script` input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RootsArg {
    /// The command name: threads and processes of one name merge.
    #[default]
    Command,
    /// One root per process (name-PID).
    Process,
    /// One root per thread (name-PID/TID).
    Thread,
}

impl From<RootsArg> for Roots {
    fn from(r: RootsArg) -> Self {
        match r {
            RootsArg::Command => Roots::Command,
            RootsArg::Process => Roots::Process,
            RootsArg::Thread => Roots::Thread,
        }
    }
}

/// Draw a flame graph from existing profiles.
///
/// Reads each INPUT (or standard input), detects its format, and draws one
/// flame graph of all of them together.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct FlamegraphArgs {
    /// Profiles to draw; `-` or none reads standard input.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Where to write the SVG; `-` for standard output (the default when
    /// standard output is not a terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How inputs are read.
    #[command(flatten)]
    pub read: ReadArgs,

    /// How the graph is drawn.
    #[command(flatten)]
    pub draw: DrawArgs,
}

impl FlamegraphArgs {
    /// The inputs: INPUT..., or `-` (standard input) without any.
    pub fn inputs(&self) -> Vec<PathBuf> {
        if self.inputs.is_empty() { vec![PathBuf::from(STDIO)] } else { self.inputs.clone() }
    }

    /// The drawing options, titled after the input when there is one file.
    pub fn svg_options(&self) -> SvgOptions {
        let title = match self.inputs.as_slice() {
            [one] if one != Path::new(STDIO) => format!("Flame graph: {}", one.display()),
            _ => "Flame graph".to_owned(),
        };
        self.draw.svg_options(&title)
    }
}

/// Compare two profiles: a differential flame graph and the functions
/// whose share changed most.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct DiffArgs {
    /// The earlier profile (any format perfkit reads).
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,

    /// The later profile.
    #[arg(value_name = "AFTER")]
    pub after: PathBuf,

    /// Where to write the differential flame graph; `-` for standard output
    /// (the summary then goes to standard error).
    #[arg(short, long, value_name = "FILE", default_value = "diff.svg")]
    pub output: PathBuf,

    /// Scale BEFORE to AFTER's total sample count, so profiles of different
    /// lengths compare by share.
    #[arg(long)]
    pub normalize: bool,

    /// Size frames by BEFORE instead of AFTER (shows what went away).
    #[arg(long)]
    pub negate: bool,

    /// Ignore hexadecimal addresses in frame names (JIT code).
    #[arg(long)]
    pub strip_hex: bool,

    /// Functions to list in the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Print the summary as JSON (all functions, most changed first).
    #[arg(long)]
    pub json: bool,

    /// How inputs are read.
    #[command(flatten)]
    pub read: ReadArgs,

    /// How the graph is drawn.
    #[command(flatten)]
    pub draw: DrawArgs,
}

impl DiffArgs {
    /// How the two profiles are compared: `--normalize`, `--negate`,
    /// `--strip-hex`.
    pub fn diff_options(&self) -> DiffOptions {
        let mut o = DiffOptions::default();
        o.normalize = self.normalize;
        o.negate = self.negate;
        o.strip_hex = self.strip_hex;
        o
    }

    /// The drawing options: titled BEFORE → AFTER and, unless
    /// `--subtitle` gives one, subtitled with the two profiles' sample
    /// counts.
    pub fn svg_options(&self, before_samples: u64, after_samples: u64) -> SvgOptions {
        let title = format!("Differential flame graph: {} → {}", self.before.display(), self.after.display());
        let mut options = self.draw.svg_options(&title);
        if options.subtitle.is_none() {
            options.subtitle = Some(format!(
                "{before_samples} samples before, {after_samples} after{}; red grew, blue shrank",
                if self.normalize { " (before normalized)" } else { "" }
            ));
        }
        options
    }

    /// Whether the graph goes to standard output (`-o -`): the summary
    /// then goes to standard error.
    pub fn graph_to_stdout(&self) -> bool {
        self.output == Path::new(STDIO)
    }
}

/// Convert a profile between formats.
///
/// Reads folded stacks, `perf script` output, perfkit JSON, pprof or another
/// format inferno collapses, and writes svg, folded, pprof or json.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct ConvertArgs {
    /// The profile to read; `-` or none reads standard input.
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,

    /// The format to write: svg, folded, pprof or json.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: OutputFormat,

    /// Where to write; `-` for standard output (the default when standard
    /// output is not a terminal, else the format's usual file name).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How the input is read.
    #[command(flatten)]
    pub read: ReadArgs,

    /// How an SVG is drawn.
    #[command(flatten)]
    pub draw: DrawArgs,
}

impl ConvertArgs {
    /// The input: INPUT, or `-` (standard input).
    pub fn input(&self) -> PathBuf {
        self.input.clone().unwrap_or_else(|| PathBuf::from(STDIO))
    }

    /// The drawing options for `profile`, read from the input: titled
    /// after the command it profiled, or else after the input.
    pub fn svg_options(&self, profile: &Profile) -> SvgOptions {
        let title = if profile.meta.command.is_empty() {
            format!("Flame graph: {}", self.input().display())
        } else {
            format!("perfkit profile: {}", profile.meta.command)
        };
        self.draw.svg_options(&title)
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        Flamegraph(FlamegraphArgs),
        Diff(DiffArgs),
        Convert(ConvertArgs),
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tool").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn flamegraph() {
        let Ok(Command::Flamegraph(a)) = parse(&["flamegraph"]) else { panic!() };
        assert_eq!(a.inputs(), [PathBuf::from("-")]);
        assert_eq!(a.svg_options().title, "Flame graph");
        assert_eq!(a.read.options().roots, Roots::Command);
        let Ok(Command::Flamegraph(a)) = parse(&["flamegraph", "a", "b", "--roots", "process", "--title", "T"]) else {
            panic!()
        };
        assert_eq!(a.inputs().len(), 2);
        assert_eq!(a.svg_options().title, "T");
        assert_eq!(a.read.options().roots, Roots::Process);
        assert!(parse(&["flamegraph", "--roots", "cpu"]).is_err());
    }

    #[test]
    fn diff() {
        let Ok(Command::Diff(a)) = parse(&["diff", "a.folded", "b.folded", "--normalize", "--strip-hex"]) else {
            panic!()
        };
        assert_eq!(a.output, PathBuf::from("diff.svg"));
        assert!(!a.graph_to_stdout());
        assert_eq!(a.top, 10);
        let d = a.diff_options();
        assert!(d.normalize && d.strip_hex && !d.negate);
        let o = a.svg_options(3, 4);
        assert_eq!(o.title, "Differential flame graph: a.folded → b.folded");
        assert_eq!(o.subtitle.as_deref(), Some("3 samples before, 4 after (before normalized); red grew, blue shrank"));
        let Ok(Command::Diff(a)) = parse(&["diff", "a", "b", "-o", "-", "--subtitle", "S"]) else { panic!() };
        assert!(a.graph_to_stdout());
        assert_eq!(a.svg_options(1, 1).subtitle.as_deref(), Some("S"));
        assert!(parse(&["diff", "a"]).is_err(), "two profiles");
    }

    #[test]
    fn convert() {
        let Ok(Command::Convert(a)) = parse(&["convert", "-f", "pprof"]) else { panic!() };
        assert_eq!(a.format, OutputFormat::Pprof);
        assert_eq!(a.input(), PathBuf::from("-"));
        let mut profile = Profile::default();
        assert_eq!(a.svg_options(&profile).title, "Flame graph: -");
        profile.meta.command = "make".into();
        assert_eq!(a.svg_options(&profile).title, "perfkit profile: make");
        assert!(parse(&["convert", "x"]).is_err(), "-f is required");
        assert!(parse(&["convert", "-f", "png"]).is_err());
    }
}
