//! Counts as `perf stat` prints them: its table, its CSV (`-x SEP`), the
//! lines of each interval (`-I`) and the means of repeated runs (`-r`),
//! with their spread.
//!
//! ```
//! use perfkit_perf_event::stat::{EventCount, StatEvent, text::{Layout, table_line}};
//! let mut task = EventCount::new(StatEvent::TaskClock, Some(1_009_717));
//! task.enabled_ns = 1_009_717;
//! let counts = [task];
//! assert_eq!(
//!     table_line(&task, &counts, 101_000_000, None),
//!     "              1.00 msec task-clock                   #     0.010 CPUs utilized"
//! );
//! assert_eq!(Layout::Csv(",".into()).line(&task, &counts, 101_000_000, None),
//!     "1.01,msec,task-clock,1009717,100.00,0.010,CPUs utilized");
//! ```

use std::{io, io::Write, time::Duration};

use super::{EventCount, derived, mean_and_rel_stddev};

/// How counts are laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// perf's aligned table, with derived figures after `#`.
    Table,
    /// `perf stat -x SEP`: value, unit, event, [spread with -r,] run time
    /// (ns), % running, metric, metric unit.
    Csv(String),
}

impl Layout {
    /// One event's line; `counts` are all the events of the same run or
    /// interval (for derived figures), `span_ns` its wall time, `spread`
    /// the relative standard deviation of repeated runs (percent).
    pub fn line(&self, c: &EventCount, counts: &[EventCount], span_ns: u64, spread: Option<f64>) -> String {
        match self {
            Layout::Table => table_line(c, counts, span_ns, spread),
            Layout::Csv(sep) => csv_line(c, counts, span_ns, sep, spread),
        }
    }
}

/// The header `perf stat -I` prints before the intervals of its table
/// (none with CSV).
pub fn interval_header(layout: &Layout) -> Option<&'static str> {
    matches!(layout, Layout::Table).then_some("#           time             counts unit events")
}

/// Writes the lines of one `-I` interval: each event's `delta` (see
/// [`EventCount::since`]) behind the time since counting began, `at`;
/// `span` is the interval's length.
pub fn write_interval(
    out: &mut impl Write,
    layout: &Layout,
    at: Duration,
    span: Duration,
    delta: &[EventCount],
) -> io::Result<()> {
    let span_ns = span.as_nanos() as u64;
    for c in delta {
        match layout {
            Layout::Table => writeln!(out, "{:>16.9} {}", at.as_secs_f64(), table_line(c, delta, span_ns, None))?,
            Layout::Csv(sep) => {
                writeln!(out, "{:>16.9}{sep}{}", at.as_secs_f64(), csv_line(c, delta, span_ns, sep, None))?
            }
        }
    }
    Ok(())
}

/// `perf stat -I`'s intervals, written as the counters are read: each
/// reading's counts since the one before (since counting began for the
/// first), behind the time since counting began.
#[derive(Clone, Debug)]
pub struct Intervals {
    layout: Layout,
    previous: Option<Vec<EventCount>>,
    previous_at: Duration,
}

impl Intervals {
    /// No reading yet; lines in `layout`.
    pub fn new(layout: Layout) -> Self {
        Self { layout, previous: None, previous_at: Duration::ZERO }
    }

    /// Writes the header before the first interval (the table's; none
    /// with CSV).
    pub fn write_header(&self, out: &mut impl Write) -> io::Result<()> {
        match interval_header(&self.layout) {
            Some(header) => writeln!(out, "{header}"),
            None => Ok(()),
        }
    }

    /// Writes the interval that ends with `now`, the counters read `at`
    /// after counting began (the last interval may be short).
    pub fn write(&mut self, out: &mut impl Write, at: Duration, now: Vec<EventCount>) -> io::Result<()> {
        let delta: Vec<EventCount> = match &self.previous {
            None => now.clone(),
            Some(before) => now.iter().zip(before).map(|(n, b)| n.since(b)).collect(),
        };
        let span = at.saturating_sub(self.previous_at);
        self.previous = Some(now);
        self.previous_at = at;
        write_interval(out, &self.layout, at, span, &delta)
    }
}

/// What `perf stat` says it counted, in its wording: `'system wide'`,
/// `process id '1,2'`, or the command line quoted (control characters
/// made visible by the caller).
pub fn target_label(system_wide: bool, pids: &[u32], command: &str) -> String {
    if system_wide {
        "'system wide'".to_owned()
    } else if !pids.is_empty() {
        let ids: Vec<String> = pids.iter().map(u32::to_string).collect();
        format!("process id '{}'", ids.join(","))
    } else {
        format!("'{command}'")
    }
}

/// What one run counted, and how long it took.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Run {
    /// The counts, in the order the events were asked for.
    pub counts: Vec<EventCount>,
    /// Wall time from the start of counting to its end.
    pub elapsed: Duration,
}

impl Run {
    /// A run's counts and wall time.
    pub fn new(counts: Vec<EventCount>, elapsed: Duration) -> Self {
        Self { counts, elapsed }
    }
}

/// The mean of each event over `runs` (an event not supported in some
/// run: not supported), and its relative standard deviation in percent
/// (`None` for one run or an unsupported event).
pub fn means(runs: &[Run]) -> Vec<(EventCount, Option<f64>)> {
    let Some(first) = runs.first() else { return Vec::new() };
    first
        .counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let values: Option<Vec<f64>> = runs.iter().map(|r| r.counts.get(i)?.value.map(|v| v as f64)).collect();
            let enabled: Vec<f64> = runs.iter().filter_map(|r| r.counts.get(i)).map(|c| c.enabled_ns as f64).collect();
            let mut m = *c;
            let spread = match values {
                Some(values) => {
                    let (mean, spread) = mean_and_rel_stddev(&values);
                    m.value = Some(mean.round() as u64);
                    (runs.len() > 1).then_some(spread)
                }
                None => {
                    m.value = None;
                    None
                }
            };
            m.enabled_ns = mean_and_rel_stddev(&enabled).0.round() as u64;
            (m, spread)
        })
        .collect()
}

/// Writes what perf prints after counting: the table under `Performance
/// counter stats for TARGET` and the time elapsed, or the CSV lines; for
/// several runs, their means, each with its spread. `target` is perf's
/// wording: `'system wide'`, `process id '1234'`, `'./cmd args'`.
pub fn write_summary(out: &mut impl Write, layout: &Layout, runs: &[Run], target: &str) -> io::Result<()> {
    let n = runs.len();
    let elapsed: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64()).collect();
    let (mean_elapsed, elapsed_spread) = mean_and_rel_stddev(&elapsed);
    let (means, spreads): (Vec<EventCount>, Vec<Option<f64>>) = means(runs).into_iter().unzip();
    let span_ns = (mean_elapsed * 1e9) as u64;
    match layout {
        Layout::Csv(sep) => {
            for (c, s) in means.iter().zip(&spreads) {
                let spread = (n > 1).then(|| s.unwrap_or(0.0));
                writeln!(out, "{}", csv_line(c, &means, span_ns, sep, spread))?;
            }
        }
        Layout::Table => {
            let runs = if n > 1 { format!(" ({n} runs)") } else { String::new() };
            writeln!(out, "\n Performance counter stats for {target}{runs}:\n")?;
            for (c, s) in means.iter().zip(&spreads) {
                writeln!(out, "{}", table_line(c, &means, span_ns, *s))?;
            }
            if n > 1 {
                let abs = mean_elapsed * elapsed_spread / 100.0;
                writeln!(
                    out,
                    "\n{mean_elapsed:>18.9} +- {abs:.9} seconds time elapsed  ( +-{elapsed_spread:>6.2}% )\n"
                )?;
            } else {
                writeln!(out, "\n{mean_elapsed:>18.9} seconds time elapsed\n")?;
            }
        }
    }
    Ok(())
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

/// The event's name as perf prints it: `:u` when counted in user mode only.
pub fn event_name(c: &EventCount) -> String {
    if c.user_only { format!("{}:u", c.event.name()) } else { c.event.name().to_owned() }
}

/// One event's line of perf's table; `spread`: the relative standard
/// deviation of repeated runs (percent).
pub fn table_line(c: &EventCount, counts: &[EventCount], span_ns: u64, spread: Option<f64>) -> String {
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
pub fn csv_line(c: &EventCount, counts: &[EventCount], span_ns: u64, sep: &str, spread: Option<f64>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::StatEvent;

    #[test]
    fn intervals_count_since_the_reading_before() {
        let count = |v: u64| {
            let mut c = EventCount::new(StatEvent::PageFaults, Some(v));
            c.enabled_ns = v * 1000;
            vec![c]
        };
        let mut csv = Intervals::new(Layout::Csv(";".into()));
        let mut out = Vec::new();
        csv.write_header(&mut out).unwrap();
        assert!(out.is_empty(), "no header with CSV");
        csv.write(&mut out, Duration::from_millis(500), count(10)).unwrap();
        csv.write(&mut out, Duration::from_millis(1000), count(25)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("     0.500000000;10;;page-faults"), "{text}");
        assert!(lines[1].starts_with("     1.000000000;15;;page-faults"), "{text}");
        let mut table = Intervals::new(Layout::Table);
        let mut out = Vec::new();
        table.write_header(&mut out).unwrap();
        table.write(&mut out, Duration::from_secs(1), count(3)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("#           time             counts unit events\n"), "{text}");
        assert!(text.lines().nth(1).unwrap().contains("page-faults"), "{text}");
    }

    #[test]
    fn targets_in_perfs_words() {
        assert_eq!(target_label(true, &[1], "x"), "'system wide'");
        assert_eq!(target_label(false, &[1, 20], "x"), "process id '1,20'");
        assert_eq!(target_label(false, &[], "./bench -n 3"), "'./bench -n 3'");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
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

    #[test]
    fn repeated_runs_print_means_and_spread() {
        let run = |task: u64, faults: Option<u64>, ms: u64| {
            let mut t = EventCount::new(StatEvent::TaskClock, Some(task));
            t.enabled_ns = task;
            Run::new(vec![t, EventCount::new(StatEvent::PageFaults, faults)], Duration::from_millis(ms))
        };
        // Means 200 ms of task-clock and 150 faults; the spread of the
        // mean: sqrt(var / n) / mean = sqrt(20000 / 2) / 200 = 50 %.
        let runs = [run(100_000_000, Some(100), 100), run(300_000_000, Some(200), 300)];
        let m = means(&runs);
        assert_eq!(m[0].0.value, Some(200_000_000));
        assert_eq!(m[0].1, Some(50.0));
        assert_eq!(m[1].0.value, Some(150));
        let mut out = Vec::new();
        write_summary(&mut out, &Layout::Table, &runs, "'./bench'").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" Performance counter stats for './bench' (2 runs):"), "{text}");
        assert!(text.contains("200.00 msec task-clock"), "{text}");
        assert!(text.contains("( +- 50.00% )"), "{text}");
        assert!(text.contains("0.200000000 +- 0.100000000 seconds time elapsed  ( +- 50.00% )"), "{text}");
        // An event not counted in one run is not supported in the means.
        let runs = [run(100_000_000, None, 100), run(300_000_000, Some(200), 300)];
        let mut out = Vec::new();
        write_summary(&mut out, &Layout::Csv(";".into()), &runs, "").unwrap();
        let csv = String::from_utf8(out).unwrap();
        assert_eq!(csv.lines().nth(1), Some("<not supported>;;page-faults;0.00%;0;100.00;;"), "{csv}");
    }

    #[test]
    fn interval_lines_carry_the_time_since_the_start() {
        let delta = [EventCount::new(StatEvent::ContextSwitches, Some(1234))];
        let mut out = Vec::new();
        let (at, span) = (Duration::from_millis(1500), Duration::from_millis(500));
        write_interval(&mut out, &Layout::Table, at, span, &delta).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "     1.500000000              1,234      context-switches\n");
        let mut out = Vec::new();
        write_interval(&mut out, &Layout::Csv(",".into()), at, span, &delta).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "     1.500000000,1234,,context-switches,0,100.00,,\n");
        assert!(interval_header(&Layout::Csv(",".into())).is_none());
    }
}
