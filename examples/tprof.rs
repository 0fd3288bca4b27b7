//! An in-house command that takes perfkit's own flags instead of copying
//! them (perfkit-profiler's `clap` feature):
//!
//! - `tprof top` takes `perfkit profile`'s target flags (`-p`, `-t`, `-a`,
//!   `--cgroup`, a command after `--`) and map sizes, and prints the top
//!   functions by self time as a table;
//! - `tprof runqlat` and `tprof execsnoop` are perfkit's tools with
//!   perfkit's flags, their output appended to a team log (`--log FILE`)
//!   under a header line, instead of standard output.
//!
//! ```sh
//! sudo cargo run -p perfkit-examples --bin tprof -- top -p 1234 -d 5
//! sudo cargo run -p perfkit-examples --bin tprof -- runqlat --log runq.log -m 1 5
//! sudo cargo run -p perfkit-examples --bin tprof -- execsnoop --log exec.log -- make -j8
//! ```

use std::{
    fs::OpenOptions,
    io::Write,
    path::PathBuf,
    process::ExitCode,
    sync::atomic::AtomicBool,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::{Parser, Subcommand};
use perfkit_profiler::{
    Session,
    flags::{ExecsnoopArgs, MapArgs, RunqlatArgs, TargetArgs, ToolFlags},
    tools::drive::{Clock, Driver},
};

#[derive(Parser)]
#[command(name = "tprof", about = "The team's profiling front end, on perfkit's flags")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The top functions by self time.
    Top {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        maps: MapArgs,
        /// Seconds to sample.
        #[arg(short, long, default_value_t = 5)]
        duration: u64,
        /// Functions to print.
        #[arg(short, long, default_value_t = 10)]
        number: usize,
        /// Command to profile (after `--`).
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// perfkit's runqlat, into the log.
    Runqlat {
        #[command(flatten)]
        flags: RunqlatArgs,
        /// The log the report is appended to.
        #[arg(long)]
        log: PathBuf,
    },
    /// perfkit's execsnoop, into the log.
    Execsnoop {
        #[command(flatten)]
        flags: ExecsnoopArgs,
        /// The log the events are appended to.
        #[arg(long)]
        log: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Top { target, maps, duration, number, command } => top(&target, &maps, duration, number, &command),
        Command::Runqlat { flags, log } => to_log(flags, &log),
        Command::Execsnoop { flags, log } => to_log(flags, &log),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tprof: {e}");
            ExitCode::FAILURE
        }
    }
}

fn top(
    target: &TargetArgs,
    maps: &MapArgs,
    seconds: u64,
    n: usize,
    command: &[std::ffi::OsString],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut session = Session::start(target.target(command, false)?, &target.options(maps))?;
    session.wait(Some(Duration::from_secs(seconds)));
    let mut finished = session.finish()?;
    if let Some(c) = &mut finished.command {
        c.terminate(perfkit_profiler::COMMAND_GRACE)?;
    }
    let total = finished.profile.total_samples().max(1) as f64;
    println!("{:>6}  {:>7}  FUNCTION", "SELF%", "SAMPLES");
    for f in finished.profile.top_self(n) {
        let name = f.frame.as_ref().map_or("[no stack]", |frame| &*frame.name);
        println!("{:>5.1}%  {:>7}  {name}", 100.0 * f.count as f64 / total, f.count);
    }
    Ok(())
}

/// UTC, as the team's logs are kept.
struct Utc;

impl Clock for Utc {
    fn hms(&self) -> String {
        let s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    fn rfc3339(&self) -> String {
        let s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        format!("@{s}")
    }
}

/// Runs one of perfkit's tools from its flags, as perfkit runs it, with
/// its output appended to `log` after a header line.
fn to_log<T: ToolFlags>(mut flags: T, log: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut file = OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(file, "== {} at {} UTC", T::NAME, Utc.hms())?;
    let mut watch = flags.watch()?;
    let mut tool = flags.start(watch.selection())?;
    eprintln!("{}", flags.banner(&tool, &Utc));
    watch.release()?;
    let stop = AtomicBool::new(false);
    let mut notify = |n| eprintln!("tprof {}: {n}", T::NAME);
    let mut d = Driver { watch: &mut watch, stop: &stop, write: &mut file, notify: &mut notify, clock: &Utc };
    let exited = flags.drive(&mut tool, &mut d)?;
    watch.finish(exited, perfkit_profiler::COMMAND_GRACE);
    Ok(())
}
