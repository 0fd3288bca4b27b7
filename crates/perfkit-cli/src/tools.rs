//! The bcc-style tools: each is its flags (`perfkit_profiler::flags`,
//! which also start and drive it) and one call of [`run`], which writes
//! its output on stdout and its notices on stderr.

use std::{io::Write, process::ExitCode};

use anyhow::Result;
use perfkit_profiler::{
    flags::{FlagError, ToolFlags},
    tools::drive::{Clock, DriveError, Driver, Notice},
};

/// The terminal's clock: jiff's, in the local time zone.
struct Terminal;

impl Clock for Terminal {
    fn hms(&self) -> String {
        crate::clock::now_hms()
    }

    fn rfc3339(&self) -> String {
        crate::clock::now_rfc3339()
    }
}

/// The library's error as the CLI reports it: the cause itself, so that a
/// closed pipe is recognized and messages stay the same.
fn cause(e: DriveError) -> anyhow::Error {
    match e {
        DriveError::Probe(e) => e.into(),
        DriveError::Target(e) => e.into(),
        DriveError::Write(e) => e.into(),
        DriveError::Json(e) => e.into(),
        e => e.into(),
    }
}

/// A flag error as the CLI reports it: the cause itself.
fn flag_cause(e: FlagError) -> anyhow::Error {
    match e {
        FlagError::Target(e) => e.into(),
        FlagError::Probe(e) => e.into(),
        e => e.into(),
    }
}

/// Runs the tool its flags describe: starts it on the watch's selection,
/// says its banner on stderr, lets the watched command run, and drives it
/// to its output on stdout, with its notices on stderr (`perfkit NAME:
/// NOTICE`) and Ctrl-C's flag; then ends the command and exits as perf
/// would.
pub(crate) fn run<T: ToolFlags>(mut flags: T) -> Result<ExitCode> {
    let name = T::NAME;
    let mut watch = flags.watch().map_err(flag_cause)?;
    let mut tool = flags.start(watch.selection()).map_err(flag_cause)?;
    eprintln!("{}", flags.banner(&tool, &Terminal));
    watch.release()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut notify = |n: Notice| match n {
        Notice::Uncounted { hits, distinct } => eprintln!(
            "perfkit {name}: warning: {hits} hits not counted: their values were new after {distinct} distinct ones \
             of a -C specifier in one interval (the cap on memory a target's values can take)"
        ),
        n => eprintln!("perfkit {name}: {n}"),
    };
    let stop = crate::signals::interrupt_flag()?;
    let mut d = Driver { watch: &mut watch, stop, write: &mut out, notify: &mut notify, clock: &Terminal };
    let exited = flags.drive(&mut tool, &mut d).map_err(cause)?;
    if let Some(farewell) = flags.farewell() {
        eprintln!("{farewell}");
    }
    out.flush()?;
    Ok(ExitCode::from(watch.finish(exited, perfkit_profiler::COMMAND_GRACE)))
}
