//! `perfkit stat`: event counts like `perf stat`.

use std::{
    ffi::OsString,
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use clap::Args;
use perfkit_perf::stat::{EventCount, StatEvent, StatSession, derived};
use perfkit_profiler::EndReason;
use perfkit_target::{ExitStatus, HeldCommand, ProcessInfo, TargetError};
use serde_json::json;

const EXAMPLES: &str = "\
Examples:
  perfkit stat -- ./my-benchmark           # until it exits
  perfkit stat -p 1234 -d 10               # a running process for 10 s
  perfkit stat -e task-clock,page-faults,cycles -- make -j2
  perfkit stat --json -p 1234 -d 5 | jq '.events[] | select(.event == \"cycles\")'

Events the machine cannot count (hardware counters in many VMs) read
<not supported>, as in perf, without failing the run.";

/// Count events of a process or command, like `perf stat`.
///
/// Counts every thread of the target, threads and child processes created
/// later included, until Ctrl-C, the duration, or the target's exit.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct StatArgs {
    /// Process to count (all its threads, and the processes it starts).
    #[arg(short, long, value_name = "PID", value_parser = crate::profile::parse_pid, conflicts_with = "command")]
    pid: Option<u32>,

    /// Events, comma-separated: task-clock, cpu-clock, context-switches, cpu-migrations,
    /// page-faults, minor-faults, major-faults, cycles, instructions, branches, branch-misses,
    /// cache-references, cache-misses, L1-dcache-loads, L1-dcache-load-misses.
    #[arg(short, long, value_name = "EVENTS", value_delimiter = ',')]
    events: Vec<StatEvent>,

    /// Stop after this long (seconds, or 500ms, 2m).
    #[arg(short, long, value_name = "DURATION", value_parser = crate::profile::parse_duration)]
    duration: Option<Duration>,

    /// Print the counts as JSON on standard output.
    #[arg(long)]
    json: bool,

    /// Command to run and count until it exits (`--` before it is needed
    /// only when its first word starts with `-`).
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

pub fn run(args: StatArgs) -> Result<ExitCode> {
    if args.json {
        crate::output::check_stdout_open()?;
    }
    let events: Vec<StatEvent> = if args.events.is_empty() { StatEvent::DEFAULT.to_vec() } else { args.events.clone() };
    let (info, mut child) = match args.pid {
        Some(pid) => (ProcessInfo::read(pid)?, None),
        None => {
            let Some((program, rest)) = args.command.split_first() else {
                bail!("nothing to count: give -p PID or a command (see --help)")
            };
            let rest: Vec<&OsString> = rest.iter().collect();
            let child = HeldCommand::spawn_with(program, &rest, args.json)?;
            let cmdline = args.command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            (ProcessInfo { pid: child.pid(), comm: program.to_string_lossy().into_owned(), cmdline }, Some(child))
        }
    };
    let mut session = StatSession::start(info.pid, &events, child.is_some())?;
    // The clock starts before the command is released, as perf's does.
    let started = Instant::now();
    if let Some(c) = &mut child {
        match c.release() {
            Ok(()) => {}
            Err(TargetError::Exec { program, source }) => {
                let code = if source.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
                eprintln!(
                    "perfkit: error: cannot run {}: {source}",
                    perfkit_profile::printable(&program.to_string_lossy())
                );
                return Ok(ExitCode::from(code));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let end = perfkit_profiler::wait_for(&[info.pid], args.duration, crate::signals::interrupt_flag()?);
    let elapsed = started.elapsed();
    let counts = session.read();
    let status = match &mut child {
        Some(c) if end != EndReason::TargetExited => Some(c.terminate(perfkit_profiler::COMMAND_GRACE)?),
        Some(c) => Some(c.wait()?),
        None => None,
    };
    let target = match args.pid {
        Some(pid) => format!("process id '{pid}'"),
        None => format!("'{}'", perfkit_profile::printable(&info.display_command())),
    };
    if args.json {
        print_json(&counts, elapsed, &info, status)?;
    } else {
        print_text(&counts, elapsed, &target);
    }
    Ok(match (end, status) {
        (EndReason::TargetExited, Some(s)) => ExitCode::from(s.shell_code().clamp(0, 255) as u8),
        _ => ExitCode::SUCCESS,
    })
}

/// Groups digits by thousands, as perf does: 1,234,567.
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_text(counts: &[EventCount], elapsed: Duration, target: &str) {
    let elapsed_ns = elapsed.as_nanos() as u64;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n Performance counter stats for {target}:\n");
    for c in counts {
        let name = if c.user_only { format!("{}:u", c.event.name()) } else { c.event.name().to_owned() };
        let line = match c.value {
            None => format!("{:>18}      {name}", "<not supported>"),
            Some(v) if c.event.is_clock() => {
                let ms = v as f64 / 1e6;
                let whole = thousands(ms as u64);
                format!("{:>18} msec {name:<27}", format!("{whole}.{:02}", ((ms.fract()) * 100.0) as u64))
            }
            Some(v) => format!("{:>18}      {name:<27}", thousands(v)),
        };
        let extra = derived(c.event, counts, elapsed_ns)
            .map(|d| {
                if d.unit.starts_with('%') {
                    format!("  #  {:>7.2}{}", d.value, d.unit)
                } else {
                    format!("  #  {:>8.3} {}", d.value, d.unit)
                }
            })
            .unwrap_or_default();
        let scaled = if c.value.is_some() && c.running < 0.999 {
            format!("  ({:.2}%)", c.running * 100.0)
        } else {
            String::new()
        };
        let line = if extra.is_empty() && scaled.is_empty() { line.trim_end() } else { &line };
        let _ = writeln!(err, "{line}{extra}{scaled}");
    }
    let _ = writeln!(err, "\n{:>18.9} seconds time elapsed\n", elapsed.as_secs_f64());
}

fn print_json(counts: &[EventCount], elapsed: Duration, info: &ProcessInfo, status: Option<ExitStatus>) -> Result<()> {
    let elapsed_ns = elapsed.as_nanos() as u64;
    let events: Vec<_> = counts
        .iter()
        .map(|c| {
            let d = derived(c.event, counts, elapsed_ns);
            json!({
                "event": c.event.name(),
                "user_only": c.user_only,
                "supported": c.value.is_some(),
                "value": c.value,
                "unit": if c.event.is_clock() { "ns" } else { "" },
                "running": c.running,
                "derived": d.as_ref().map(|d| d.value),
                "derived_unit": d.as_ref().map(|d| d.unit),
            })
        })
        .collect();
    let exit = status.map(|s| match s {
        ExitStatus::Code(c) => json!({ "code": c, "signal": null }),
        ExitStatus::Signal(sig) => json!({ "code": null, "signal": sig }),
    });
    let doc = json!({
        "schema_version": 1,
        "pid": info.pid,
        "command": info.display_command(),
        "elapsed_seconds": (elapsed.as_secs_f64() * 1e9).round() / 1e9,
        "exit": exit,
        "events": events,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
