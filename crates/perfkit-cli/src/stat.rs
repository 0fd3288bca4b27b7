//! `perfkit stat`: event counts like `perf stat`; the flags are
//! `perfkit_perf_event::flags`.

use std::{ffi::OsString, process::ExitCode, time::Instant};

use anyhow::{Result, bail};
use perfkit_perf_event::{
    flags::StatArgs,
    stat::{
        StatEvent, StatSession, StatTarget,
        json::StatReport,
        text::{self, Layout, Run},
    },
};
use perfkit_profiler::EndReason;
use perfkit_target::{ExitStatus, HeldCommand, PidList, ProcessInfo};

pub(crate) const STAT_EXAMPLES: &str = "\
Examples:
  perfkit stat -- ./my-benchmark           # until it exits
  perfkit stat -p 1234,1240 -d 10          # running processes for 10 s
  perfkit stat -a -I 1000                  # the whole machine, every second
  perfkit stat -r 5 -- ./my-benchmark      # 5 runs: means and their spread
  perfkit stat -x, -e task-clock,page-faults -- make -j2
  perfkit stat --json -p 1234 -d 5 | jq '.events[] | select(.event == \"cycles\")'

Events the machine cannot count (hardware counters in many VMs) read
<not supported>, as in perf, without failing the run.";

/// What one run counted.
struct Counted {
    run: Run,
    end: EndReason,
    status: Option<ExitStatus>,
    /// The process counted first (the command, or the first PID).
    info: Option<ProcessInfo>,
}

pub fn run(args: StatArgs) -> Result<ExitCode> {
    if args.json {
        crate::output::check_stdout_open()?;
    }
    let events = args.events();
    let runs = args.runs();
    if runs > 1 && args.command.is_empty() {
        bail!("-r repeats a command: give one (perfkit stat -r {runs} -- ./my-benchmark)");
    }
    if args.pid.is_none() && !args.all_cpus && args.command.is_empty() {
        bail!("nothing to count: give -p PIDS, -a or a command (see --help)");
    }
    let layout = args.layout();
    let mut done: Vec<Counted> = Vec::new();
    for _ in 0..runs {
        let counted = match count_once(&args, &events, &layout)? {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        let stop = counted.end == EndReason::Interrupted;
        done.push(counted);
        if stop {
            break;
        }
    }
    let Some(last) = done.last() else { bail!("no run was counted") };
    let (end, status) = (last.end, last.status);
    // A run cut short by Ctrl-C is left out of the means of those that
    // ended (as many as there are), as it would skew them.
    if done.len() > 1 && end == EndReason::Interrupted {
        done.pop();
    }
    let Some(last) = done.last() else { bail!("no run was counted") };
    if args.interval.is_none() {
        let line = args.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        let target = text::target_label(args.all_cpus, args.pids(), &perfkit_model::printable(&line));
        if args.json {
            print_json(last, args.pids(), args.all_cpus)?;
        } else {
            let runs: Vec<Run> = done.into_iter().map(|c| c.run).collect();
            // Ignored as perf does: standard error gone, there is no one to tell.
            let _ = text::write_summary(&mut std::io::stderr().lock(), &layout, &runs, &target);
        }
    }
    Ok(ExitCode::from(end.exit_code(status)))
}

/// One run: counts until the end, printing intervals with -I. `Err` is
/// the exit code of a command that could not run.
fn count_once(args: &StatArgs, events: &[StatEvent], layout: &Layout) -> Result<Result<Counted, ExitCode>> {
    let (target, info, mut child) = if let Some(PidList(pids)) = &args.pid {
        let info = ProcessInfo::read(pids[0])?;
        (StatTarget::Processes(pids.clone()), Some(info), None)
    } else if let Some((program, rest)) = args.command.split_first() {
        let rest: Vec<&OsString> = rest.iter().collect();
        let child = HeldCommand::spawn_with(program, &rest, args.json)?;
        let cmdline = args.command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let info = ProcessInfo { pid: child.pid(), comm: program.to_string_lossy().into_owned(), cmdline };
        let target = if args.all_cpus { StatTarget::All } else { StatTarget::Processes(vec![child.pid()]) };
        (target, Some(info), Some(child))
    } else {
        (StatTarget::All, None, None)
    };
    // A command's own counters start at its exec; system-wide ones at once.
    let on_exec = child.is_some() && target != StatTarget::All;
    let mut session = StatSession::start_target(&target, events, on_exec)?;
    // The clock starts before the command is released, as perf's does.
    let started = Instant::now();
    if let Some(c) = &mut child {
        match c.release() {
            Ok(()) => {}
            Err(e) if e.exec_failure().is_some() => return Ok(Err(crate::profile::exec_failed(&e))),
            Err(e) => return Err(e.into()),
        }
    }
    let watched: Vec<u32> = match (&child, &args.pid) {
        (Some(c), _) => vec![c.pid()],
        (None, Some(PidList(pids))) => pids.clone(),
        (None, None) => Vec::new(),
    };
    let stop = crate::signals::interrupt_flag()?;
    let end = match args.interval {
        None => perfkit_profiler::wait_for(&watched, args.duration, stop),
        // With -I: the counts of each interval until the end, as `perf stat
        // -I` prints them (the last interval may be short).
        Some(every) => {
            let mut end = EndReason::Duration;
            let last = args.duration.map(|d| started + d);
            // Ignored as perf does: standard error gone, there is no one to tell.
            let wait = |until: Instant| {
                end = perfkit_profiler::wait_for(&watched, Some(until.saturating_duration_since(Instant::now())), stop);
                end == EndReason::Duration
            };
            let _ = session.write_intervals(&mut std::io::stderr().lock(), layout.clone(), started, every, last, wait);
            end
        }
    };
    let elapsed = started.elapsed();
    let counts = session.read();
    let status = match &mut child {
        Some(c) if end != EndReason::TargetExited => Some(c.terminate(perfkit_profiler::COMMAND_GRACE)?),
        Some(c) => Some(c.wait()?),
        None => None,
    };
    Ok(Ok(Counted { run: Run::new(counts, elapsed), end, status, info }))
}

fn print_json(run: &Counted, pids: &[u32], system_wide: bool) -> Result<()> {
    let r = &run.run;
    let doc = StatReport::new(&r.counts, r.elapsed, run.info.as_ref(), pids, system_wide, run.status);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
