//! `perfkit stat`: event counts like `perf stat`.

use std::{
    ffi::OsString,
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use clap::Args;
use perfkit_perf_event::stat::{EventCount, StatEvent, StatSession, StatTarget, derived, mean_and_rel_stddev};
use perfkit_profiler::EndReason;
use perfkit_target::{ExitStatus, HeldCommand, ProcessInfo, TargetError};
use serde_json::json;

use crate::profile::IdList;

const EXAMPLES: &str = "\
Examples:
  perfkit stat -- ./my-benchmark           # until it exits
  perfkit stat -p 1234,1240 -d 10          # running processes for 10 s
  perfkit stat -a -I 1000                  # the whole machine, every second
  perfkit stat -r 5 -- ./my-benchmark      # 5 runs: means and their spread
  perfkit stat -x, -e task-clock,page-faults -- make -j2
  perfkit stat --json -p 1234 -d 5 | jq '.events[] | select(.event == \"cycles\")'

Events the machine cannot count (hardware counters in many VMs) read
<not supported>, as in perf, without failing the run.";

/// Count events of processes, a command or the whole machine, like `perf
/// stat`.
///
/// Counts every thread of the target, threads and child processes created
/// later included (every CPU with -a), until Ctrl-C, the duration, or the
/// target's exit. The counts are printed on standard error, as perf does.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct StatArgs {
    /// Processes to count, comma-separated (all their threads, and the
    /// processes they start).
    #[arg(short, long, value_name = "PIDS", value_parser = crate::profile::parse_pid_list, conflicts_with_all = ["command", "all_cpus"])]
    pid: Option<IdList>,

    /// Count on every CPU (system-wide), until Ctrl-C, the duration, or
    /// the exit of the command given.
    #[arg(short, long)]
    all_cpus: bool,

    /// Events, comma-separated: task-clock, cpu-clock, context-switches, cpu-migrations,
    /// page-faults, minor-faults, major-faults, cycles, instructions, branches, branch-misses,
    /// cache-references, cache-misses, L1-dcache-loads, L1-dcache-load-misses.
    #[arg(short, long, value_name = "EVENTS", value_delimiter = ',')]
    events: Vec<StatEvent>,

    /// Stop after this long (seconds, or 500ms, 1.5s, 2m, 1h30m).
    #[arg(short, long, value_name = "DURATION", value_parser = crate::clock::positive)]
    duration: Option<Duration>,

    /// Print the counts of each interval of MS milliseconds (at least 10;
    /// or with a unit: 2s), each line starting with the time since counting
    /// began.
    #[arg(short = 'I', long = "interval-print", value_name = "MS", value_parser = crate::clock::stat_interval)]
    interval: Option<Duration>,

    /// Print perf's CSV with this separator: value, unit, event, run time
    /// (ns), % running, metric, metric unit (and the spread of the runs
    /// after the event with -r).
    #[arg(short = 'x', long = "field-separator", value_name = "SEP", value_parser = parse_separator)]
    separator: Option<String>,

    /// Run the command N times and print the means, each with its
    /// relative standard deviation, as perf does.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), conflicts_with = "interval")]
    repeat: Option<u32>,

    /// Print the counts as JSON on standard output.
    #[arg(long, conflicts_with_all = ["interval", "separator", "repeat"])]
    json: bool,

    /// Command to run and count until it exits (`--` before it is needed
    /// only when its first word starts with `-`).
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

fn parse_separator(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{s:?} cannot separate fields (examples: -x, or -x ';')"));
    }
    Ok(s.to_owned())
}

/// What one run counted.
struct Counted {
    counts: Vec<EventCount>,
    elapsed: Duration,
    end: EndReason,
    status: Option<ExitStatus>,
    /// The process counted first (the command, or the first PID).
    info: Option<ProcessInfo>,
}

/// How the counts are printed.
#[derive(Clone, Copy)]
enum Style<'a> {
    Text,
    Csv(&'a str),
}

pub fn run(args: StatArgs) -> Result<ExitCode> {
    if args.json {
        crate::output::check_stdout_open()?;
    }
    let events: Vec<StatEvent> = if args.events.is_empty() { StatEvent::DEFAULT.to_vec() } else { args.events.clone() };
    let runs = args.repeat.unwrap_or(1);
    if runs > 1 && args.command.is_empty() {
        bail!("-r repeats a command: give one (perfkit stat -r {runs} -- ./my-benchmark)");
    }
    if args.pid.is_none() && !args.all_cpus && args.command.is_empty() {
        bail!("nothing to count: give -p PIDS, -a or a command (see --help)");
    }
    let style = match &args.separator {
        Some(sep) => Style::Csv(sep),
        None => Style::Text,
    };
    let mut done: Vec<Counted> = Vec::new();
    for _ in 0..runs {
        let counted = match count_once(&args, &events, style)? {
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
        let target = if args.all_cpus {
            "'system wide'".to_owned()
        } else if let Some(IdList(pids)) = &args.pid {
            let ids: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("process id '{}'", ids.join(","))
        } else {
            let line = args.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
            format!("'{}'", perfkit_model::printable(&line))
        };
        if args.json {
            print_json(last, args.pid.as_ref().map(|p| p.0.as_slice()).unwrap_or_default(), args.all_cpus)?;
        } else {
            print_summary(&done, style, &target);
        }
    }
    Ok(match (end, status) {
        (EndReason::TargetExited, Some(s)) => ExitCode::from(s.shell_code().clamp(0, 255) as u8),
        _ => ExitCode::SUCCESS,
    })
}

/// One run: counts until the end, printing intervals with -I. `Err` is
/// the exit code of a command that could not run.
fn count_once(args: &StatArgs, events: &[StatEvent], style: Style) -> Result<Result<Counted, ExitCode>> {
    let (target, info, mut child) = if let Some(IdList(pids)) = &args.pid {
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
            Err(TargetError::Exec { program, source }) => {
                let code = if source.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
                eprintln!(
                    "perfkit: error: cannot run {}: {source}",
                    perfkit_model::printable(&program.to_string_lossy())
                );
                return Ok(Err(ExitCode::from(code)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let watched: Vec<u32> = match (&child, &args.pid) {
        (Some(c), _) => vec![c.pid()],
        (None, Some(IdList(pids))) => pids.clone(),
        (None, None) => Vec::new(),
    };
    let stop = crate::signals::interrupt_flag()?;
    let end = match args.interval {
        None => perfkit_profiler::wait_for(&watched, args.duration, stop),
        Some(every) => print_intervals(&mut session, started, every, args.duration, &watched, stop, style),
    };
    let elapsed = started.elapsed();
    let counts = session.read();
    let status = match &mut child {
        Some(c) if end != EndReason::TargetExited => Some(c.terminate(perfkit_profiler::COMMAND_GRACE)?),
        Some(c) => Some(c.wait()?),
        None => None,
    };
    Ok(Ok(Counted { counts, elapsed, end, status, info }))
}

/// With -I: the counts of each interval until the end, as `perf stat -I`
/// prints them (the last interval may be short).
fn print_intervals(
    session: &mut StatSession,
    started: Instant,
    every: Duration,
    duration: Option<Duration>,
    watched: &[u32],
    stop: &std::sync::atomic::AtomicBool,
    style: Style,
) -> EndReason {
    let last = duration.map(|d| started + d);
    let mut previous: Option<Vec<EventCount>> = None;
    let mut previous_at = Duration::ZERO;
    let mut err = std::io::stderr().lock();
    if matches!(style, Style::Text) {
        let _ = writeln!(err, "#           time             counts unit events");
    }
    let mut k = 0u32;
    loop {
        k = k.saturating_add(1);
        let due = started + every * k;
        let until = last.map_or(due, |l| l.min(due));
        let end = perfkit_profiler::wait_for(watched, Some(until.saturating_duration_since(Instant::now())), stop);
        let at = started.elapsed();
        let now = session.read();
        let delta: Vec<EventCount> = match &previous {
            None => now.clone(),
            Some(before) => now.iter().zip(before).map(|(n, b)| difference(n, b)).collect(),
        };
        let span = (at - previous_at).as_nanos() as u64;
        for c in &delta {
            let line = match style {
                Style::Text => format!("{:>16.9} {}", at.as_secs_f64(), text_line(c, &delta, span, None)),
                Style::Csv(sep) => format!("{:>16.9}{sep}{}", at.as_secs_f64(), csv_line(c, &delta, span, sep, None)),
            };
            let _ = writeln!(err, "{line}");
        }
        previous = Some(now);
        previous_at = at;
        let ended = end != EndReason::Duration || last.is_some_and(|l| until >= l);
        if ended {
            return end;
        }
    }
}

/// The counts of an interval: `now` less `before`.
fn difference(now: &EventCount, before: &EventCount) -> EventCount {
    let mut d = *now;
    d.value = match (now.value, before.value) {
        (Some(n), Some(b)) => Some(n.saturating_sub(b)),
        (n, _) => n,
    };
    d.enabled_ns = now.enabled_ns.saturating_sub(before.enabled_ns);
    d
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

/// A rate per second as perf shows it: K/sec, M/sec, G/sec past 1000.
fn rate(value: f64, unit: &'static str) -> (f64, &'static str) {
    if unit != "/sec" {
        return (value, unit);
    }
    if value >= 1e9 {
        (value / 1e9, "G/sec")
    } else if value >= 1e6 {
        (value / 1e6, "M/sec")
    } else if value >= 1e3 {
        (value / 1e3, "K/sec")
    } else {
        (value, "/sec")
    }
}

fn event_name(c: &EventCount) -> String {
    if c.user_only { format!("{}:u", c.event.name()) } else { c.event.name().to_owned() }
}

/// One event's line of perf's table; `spread`: the relative standard
/// deviation of repeated runs (percent).
fn text_line(c: &EventCount, counts: &[EventCount], span_ns: u64, spread: Option<f64>) -> String {
    let name = event_name(c);
    let line = match c.value {
        None => format!("{:>18}      {name}", "<not supported>"),
        Some(v) if c.event.is_clock() => {
            let ms = v as f64 / 1e6;
            format!("{:>18} msec {name:<27}", format!("{}.{:02}", thousands(ms as u64), (ms.fract() * 100.0) as u64))
        }
        Some(v) => format!("{:>18}      {name:<27}", thousands(v)),
    };
    let extra = derived(c.event, counts, span_ns)
        .map(|d| {
            let (value, unit) = rate(d.value, d.unit);
            if unit.starts_with('%') {
                format!("  #  {value:>7.2}{unit}")
            } else {
                format!("  #  {value:>8.3} {unit:<14}")
            }
        })
        .unwrap_or_default();
    let spread = match (c.value, spread) {
        // As perf: no spread shown when the runs agree exactly.
        (Some(_), Some(s)) if s != 0.0 => format!("  ( +-{s:>6.2}% )"),
        _ => String::new(),
    };
    let scaled =
        if c.value.is_some() && c.running < 0.999 { format!("  ({:.2}%)", c.running * 100.0) } else { String::new() };
    let line = format!("{line}{extra}{spread}{scaled}");
    line.trim_end().to_owned()
}

/// One event as `perf stat -x SEP` prints it: value, unit, event, [spread
/// with -r,] run time (ns), % running, metric, metric unit.
fn csv_line(c: &EventCount, counts: &[EventCount], span_ns: u64, sep: &str, spread: Option<f64>) -> String {
    let name = event_name(c);
    let spread = spread.map(|s| format!("{s:.2}%{sep}")).unwrap_or_default();
    let Some(v) = c.value else {
        return format!("<not supported>{sep}{sep}{name}{sep}{spread}0{sep}100.00{sep}{sep}");
    };
    let (value, unit) =
        if c.event.is_clock() { (format!("{:.2}", v as f64 / 1e6), "msec") } else { (v.to_string(), "") };
    let (metric, metric_unit) = match derived(c.event, counts, span_ns) {
        Some(d) => {
            let (value, unit) = rate(d.value, d.unit);
            (format!("{value:.3}"), unit.trim_start_matches('%').trim())
        }
        None => (String::new(), ""),
    };
    format!(
        "{value}{sep}{unit}{sep}{name}{sep}{spread}{}{sep}{:.2}{sep}{metric}{sep}{metric_unit}",
        c.enabled_ns,
        c.running * 100.0
    )
}

/// The table (or CSV) after the run, or the means of repeated runs.
fn print_summary(done: &[Counted], style: Style, target: &str) {
    let n = done.len();
    let elapsed: Vec<f64> = done.iter().map(|d| d.elapsed.as_secs_f64()).collect();
    let (mean_elapsed, elapsed_spread) = mean_and_rel_stddev(&elapsed);
    // The mean of each event over the runs (not supported in any run: not
    // supported), and its spread.
    let first = &done[0].counts;
    let mut means: Vec<EventCount> = Vec::with_capacity(first.len());
    let mut spreads: Vec<Option<f64>> = Vec::with_capacity(first.len());
    for (i, c) in first.iter().enumerate() {
        let values: Option<Vec<f64>> = done.iter().map(|d| d.counts.get(i)?.value.map(|v| v as f64)).collect();
        let enabled: Vec<f64> = done.iter().filter_map(|d| d.counts.get(i)).map(|c| c.enabled_ns as f64).collect();
        let mut m = *c;
        match values {
            Some(values) => {
                let (mean, spread) = mean_and_rel_stddev(&values);
                m.value = Some(mean.round() as u64);
                spreads.push((n > 1).then_some(spread));
            }
            None => {
                m.value = None;
                spreads.push(None);
            }
        }
        m.enabled_ns = mean_and_rel_stddev(&enabled).0.round() as u64;
        means.push(m);
    }
    let span_ns = (mean_elapsed * 1e9) as u64;
    let mut err = std::io::stderr().lock();
    match style {
        Style::Csv(sep) => {
            for (c, s) in means.iter().zip(&spreads) {
                let _ = writeln!(
                    err,
                    "{}",
                    csv_line(c, &means, span_ns, sep, if n > 1 { Some(s.unwrap_or(0.0)) } else { None })
                );
            }
        }
        Style::Text => {
            let runs = if n > 1 { format!(" ({n} runs)") } else { String::new() };
            let _ = writeln!(err, "\n Performance counter stats for {target}{runs}:\n");
            for (c, s) in means.iter().zip(&spreads) {
                let _ = writeln!(err, "{}", text_line(c, &means, span_ns, *s));
            }
            if n > 1 {
                let abs = mean_elapsed * elapsed_spread / 100.0;
                let _ = writeln!(
                    err,
                    "\n{mean_elapsed:>18.9} +- {abs:.9} seconds time elapsed  ( +-{elapsed_spread:>6.2}% )\n"
                );
            } else {
                let _ = writeln!(err, "\n{mean_elapsed:>18.9} seconds time elapsed\n");
            }
        }
    }
}

fn print_json(run: &Counted, pids: &[u32], system_wide: bool) -> Result<()> {
    let elapsed_ns = run.elapsed.as_nanos() as u64;
    let counts = &run.counts;
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
    let exit = run.status.map(|s| match s {
        ExitStatus::Code(c) => json!({ "code": c, "signal": null }),
        ExitStatus::Signal(sig) => json!({ "code": null, "signal": sig }),
    });
    let pids: Vec<u32> = match &run.info {
        Some(info) if pids.is_empty() => vec![info.pid],
        _ => pids.to_vec(),
    };
    let doc = json!({
        "schema_version": 1,
        "pid": run.info.as_ref().map(|i| i.pid),
        "pids": pids,
        "system_wide": system_wide,
        // The process's own command line: control characters as `\xNN`,
        // as in every format perfkit writes.
        "command": run.info.as_ref().map(|i| perfkit_model::escape_control(&i.display_command()).into_owned()),
        "elapsed_seconds": (run.elapsed.as_secs_f64() * 1e9).round() / 1e9,
        "exit": exit,
        "events": events,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: StatArgs,
    }

    fn parse(args: &[&str]) -> Result<StatArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("stat").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn perf_flags() {
        let a = parse(&["-a", "-I", "500", "-x", ";", "-e", "task-clock"]).unwrap();
        assert!(a.all_cpus);
        assert_eq!(a.interval, Some(Duration::from_millis(500)));
        assert_eq!(a.separator.as_deref(), Some(";"));
        assert_eq!(parse(&["-p", "1,2,3"]).unwrap().pid, Some(IdList(vec![1, 2, 3])));
        assert_eq!(parse(&["-r", "5", "--", "true"]).unwrap().repeat, Some(5));
        let b = parse(&["-a", "sleep", "1"]).unwrap();
        assert!(b.all_cpus && b.command.len() == 2);
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

    #[test]
    fn csv_lines_follow_perf() {
        let mut task = EventCount::new(StatEvent::TaskClock, Some(1_009_717));
        task.enabled_ns = 1_009_717;
        let cycles = EventCount::new(StatEvent::Cycles, None);
        let counts = [task, cycles];
        assert_eq!(
            csv_line(&task, &counts, 101_000_000, ",", None),
            "1.01,msec,task-clock,1009717,100.00,0.010,CPUs utilized"
        );
        assert_eq!(csv_line(&cycles, &counts, 101_000_000, ",", None), "<not supported>,,cycles,0,100.00,,");
        assert_eq!(csv_line(&cycles, &counts, 101_000_000, ",", Some(0.0)), "<not supported>,,cycles,0.00%,0,100.00,,");
        assert_eq!(rate(76_259.0, "/sec"), (76.259, "K/sec"));
        assert_eq!(rate(990.0, "/sec"), (990.0, "/sec"));
    }
}
