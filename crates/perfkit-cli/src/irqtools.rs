//! The aggregating tools of interrupts and run queues: `hardirqs`,
//! `softirqs` and `runqlen`, in bcc's layouts or as JSON. Thin callers of
//! `perfkit_probes::tools::{Irqs, Runqlen}`.

use std::{collections::BTreeMap, io::Write, process::ExitCode};

use anyhow::Result;
use clap::Args;
use perfkit_model::printable;
use perfkit_probes::tools::{
    DEFAULT_RUNQLEN_HZ, Histogram, IrqKind, IrqTime, Irqs, IrqsConfig, Runqlen, RunqlenConfig, ToolStats,
    run::Watch,
    text::{HistogramJson, SCHEMA_VERSION, round3, write_log2_hist},
};
use serde_json::json;

use crate::tools::{Reporting, finish, histogram_loop, warn_losses};

/// Options hardirqs and softirqs share.
#[derive(Debug, Args)]
pub struct IrqOptions {
    /// Nanoseconds instead of microseconds.
    #[arg(short = 'N', long)]
    nanoseconds: bool,

    /// Counts of runs instead of time.
    #[arg(short = 'C', long = "count", conflicts_with = "dist")]
    counts: bool,

    /// A histogram of run times per handler (or vector) instead of totals.
    #[arg(short = 'd', long)]
    dist: bool,

    /// Only interrupts on this CPU.
    #[arg(short = 'c', long, value_name = "CPU")]
    cpu: Option<u32>,

    #[command(flatten)]
    reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    time: bool,
}

const HARDIRQS_EXAMPLES: &str = "\
Examples:
  perfkit hardirqs                 # until Ctrl-C: time per handler
  perfkit hardirqs 1 10            # every second, 10 times
  perfkit hardirqs -C              # runs per handler
  perfkit hardirqs -d -T 5         # histograms, every 5 s, with the time
  perfkit hardirqs --json 1 3

As bcc's hardirqs: time in each hard IRQ handler, by the name it
registered (the last column of /proc/interrupts), from irq_handler_entry
to irq_handler_exit (raw tracepoints; no kprobes).";

/// Time in hard IRQ handlers, like bcc's hardirqs.
#[derive(Debug, Args)]
#[command(after_help = HARDIRQS_EXAMPLES)]
pub struct HardirqsArgs {
    #[command(flatten)]
    options: IrqOptions,
}

const SOFTIRQS_EXAMPLES: &str = "\
Examples:
  perfkit softirqs                 # until Ctrl-C: time per vector
  perfkit softirqs 1 10            # every second, 10 times
  perfkit softirqs -C              # runs per vector (as /proc/softirqs)
  perfkit softirqs -d              # histograms
  perfkit softirqs --json 1 3

As bcc's softirqs: time in each softirq vector (net_rx, timer, rcu...),
from softirq_entry to softirq_exit (raw tracepoints; no kprobes).";

/// Time in softirq vectors, like bcc's softirqs.
#[derive(Debug, Args)]
#[command(after_help = SOFTIRQS_EXAMPLES)]
pub struct SoftirqsArgs {
    #[command(flatten)]
    options: IrqOptions,
}

pub fn hardirqs(args: HardirqsArgs) -> Result<ExitCode> {
    run_irqs(IrqKind::Hard, args.options)
}

pub fn softirqs(args: SoftirqsArgs) -> Result<ExitCode> {
    run_irqs(IrqKind::Soft, args.options)
}

/// One row of a report: a handler name (hard IRQs with the same name are
/// one row, as bcc keys them) or a vector, with its IRQ numbers.
struct Row {
    name: String,
    numbers: Vec<u32>,
    hist: Histogram,
}

fn rows(times: &[IrqTime], previous: &BTreeMap<(u32, String), Histogram>) -> Vec<Row> {
    let mut by_name: BTreeMap<String, Row> = BTreeMap::new();
    for t in times {
        let h = previous.get(&(t.number, t.name.clone())).map_or_else(|| t.hist.clone(), |p| t.hist.since(p));
        let row = by_name.entry(t.name.clone()).or_insert_with(|| Row {
            name: t.name.clone(),
            numbers: Vec::new(),
            hist: Histogram::new(0, 0),
        });
        row.numbers.push(t.number);
        for (a, b) in row.hist.counts.iter_mut().zip(h.counts) {
            *a = a.saturating_add(b);
        }
        row.hist.sum_ns = row.hist.sum_ns.saturating_add(h.sum_ns);
    }
    by_name.into_values().filter(|r| r.hist.count() > 0).collect()
}

fn run_irqs(kind: IrqKind, mut o: IrqOptions) -> Result<ExitCode> {
    o.reporting.timestamp |= o.time;
    let (tool_name, what, column) = match kind {
        IrqKind::Hard => ("hardirqs", "hard irq", "HARDIRQ"),
        _ => ("softirqs", "soft irq", "SOFTIRQ"),
    };
    let mut config = IrqsConfig::new(kind == IrqKind::Hard, kind == IrqKind::Soft);
    config.cpu = o.cpu;
    // -N changes the text tables only: JSON keeps microseconds, so that no
    // key changes with a flag.
    let nanoseconds = o.nanoseconds && !o.reporting.json;
    config.ns_slots = nanoseconds;
    let tool = Irqs::start(config)?;
    let mut watch = Watch::machine();
    eprintln!("Tracing {what} event time... Hit Ctrl-C to end.");
    let unit = if nanoseconds { "nsecs" } else { "usecs" };
    let mut previous: BTreeMap<(u32, String), Histogram> = BTreeMap::new();
    let mut reported = ToolStats::default();
    let stdout = std::io::stdout();
    let exited = histogram_loop(&o.reporting, &mut watch, |_| {
        let times = tool.times()?;
        warn_losses(tool_name, &tool.stats(kind)?, &mut reported);
        let mut rows = rows(&times, &previous);
        previous = times.into_iter().map(|t| ((t.number, t.name), t.hist)).collect();
        let total = |r: &Row| if nanoseconds { r.hist.sum_ns } else { r.hist.sum_ns / 1000 };
        // bcc sorts by the value printed, smallest first.
        if o.counts {
            rows.sort_by_key(|r| (r.hist.count(), r.name.clone()));
        } else {
            rows.sort_by_key(|r| (total(r), r.name.clone()));
        }
        let mut out = stdout.lock();
        if o.reporting.json {
            let doc = json!({
                "schema_version": SCHEMA_VERSION,
                "tool": tool_name,
                "time": crate::clock::now_rfc3339(),
                "interval_seconds": o.reporting.interval.map(|d| d.as_secs_f64()),
                "rows": rows.iter().map(|r| {
                    let mut v = json!({
                        "name": r.name,
                        "count": r.hist.count(),
                        "total_usecs": round3(r.hist.sum_ns as f64 / 1000.0),
                    });
                    v[if kind == IrqKind::Hard { "irqs" } else { "vector" }] = if kind == IrqKind::Hard {
                        json!(r.numbers)
                    } else {
                        json!(r.numbers.first())
                    };
                    if o.dist {
                        v["buckets"] = json!(HistogramJson::new(&r.hist, ()).buckets);
                    }
                    v
                }).collect::<Vec<_>>(),
            });
            serde_json::to_writer(&mut out, &doc)?;
            writeln!(out)?;
        } else {
            writeln!(out)?;
            if o.reporting.timestamp {
                writeln!(out, "{}", crate::clock::now_hms())?;
            }
            if o.dist {
                let section = if kind == IrqKind::Hard { "hardirq" } else { "softirq" };
                for r in &rows {
                    writeln!(out, "\n{section} = {}", printable(&r.name))?;
                    write_log2_hist(&mut out, unit, &r.hist, 1)?;
                }
            } else {
                let width = if kind == IrqKind::Hard { 26 } else { 16 };
                let label = if o.counts { "TOTAL_count".to_owned() } else { format!("TOTAL_{unit}") };
                writeln!(out, "{column:<width$} {label:>11}")?;
                for r in &rows {
                    let v = if o.counts { r.hist.count() } else { total(r) };
                    writeln!(out, "{:<width$} {v:>11}", printable(&r.name))?;
                }
            }
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(finish(watch, exited))
}

const RUNQLEN_EXAMPLES: &str = "\
Examples:
  perfkit runqlen                  # until Ctrl-C: one histogram
  perfkit runqlen 1 10             # every second, 10 times
  perfkit runqlen -C               # a histogram per CPU
  perfkit runqlen -O               # occupancy: how often a task waits
  perfkit runqlen --json 1 3

As bcc's runqlen: each CPU's run queue sampled 99 times a second (-f),
counting the tasks waiting besides the one running. perfkit reads the CPU's
own count of runnable tasks (struct rq, every scheduling class), where bcc
reads the running task's CFS queue (only its cgroup's, with group
scheduling).";

/// Run-queue length histograms, like bcc's runqlen.
#[derive(Debug, Args)]
#[command(after_help = RUNQLEN_EXAMPLES)]
pub struct RunqlenArgs {
    /// A histogram (or occupancy) per CPU.
    #[arg(short = 'C', long)]
    cpus: bool,

    /// Run-queue occupancy: the share of samples with a task waiting.
    #[arg(short = 'O', long)]
    runqocc: bool,

    /// With -O, the histograms too (without -O they are shown anyway).
    #[arg(short = 'H', long)]
    histograms: bool,

    /// Samples per second on each CPU.
    #[arg(short = 'f', long, value_name = "HZ", default_value_t = DEFAULT_RUNQLEN_HZ,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    frequency: u64,

    #[command(flatten)]
    reporting: Reporting,

    /// Print the time of each interval (as --timestamp).
    #[arg(short = 'T')]
    time: bool,
}

/// Prints a linear histogram of queue lengths in bcc's layout.
fn print_linear(out: &mut impl Write, h: &Histogram) -> std::io::Result<()> {
    writeln!(out, "     {:<13} : count     distribution", "runqlen")?;
    let (Some(first), Some(last)) = (h.counts.iter().position(|&c| c > 0), h.counts.iter().rposition(|&c| c > 0))
    else {
        return writeln!(out, "     (no samples)");
    };
    let max = h.counts.iter().copied().max().unwrap_or(1).max(1);
    for (i, &c) in h.counts.iter().enumerate().take(last + 1).skip(first) {
        let stars = ((c as u128 * 40) / max as u128) as usize;
        writeln!(out, "        {i:<3}      : {c:<8} |{:<40}|", "*".repeat(stars))?;
    }
    Ok(())
}

/// The share of samples that found a task waiting, in percent.
fn occupancy(h: &Histogram) -> f64 {
    let total = h.count();
    if total == 0 { 0.0 } else { 100.0 * (total - h.counts[0]) as f64 / total as f64 }
}

pub fn runqlen(mut args: RunqlenArgs) -> Result<ExitCode> {
    args.reporting.timestamp |= args.time;
    let mut config = RunqlenConfig::default();
    config.frequency_hz = args.frequency;
    let tool = Runqlen::start(config)?;
    let mut watch = Watch::machine();
    eprintln!("Sampling run queue length... Hit Ctrl-C to end.");
    let mut previous: BTreeMap<u64, Histogram> = BTreeMap::new();
    let mut reported = ToolStats::default();
    let stdout = std::io::stdout();
    let exited = histogram_loop(&args.reporting, &mut watch, |_| {
        let now = tool.per_cpu()?;
        let stats = tool.stats()?;
        if stats.unmatched > reported.unmatched {
            eprintln!(
                "perfkit runqlen: {} samples not counted: the CPU's run queue could not be read",
                stats.unmatched - reported.unmatched
            );
        }
        warn_losses("runqlen", &stats, &mut reported);
        let interval: Vec<Histogram> =
            now.iter().map(|h| previous.get(&h.id).map_or_else(|| h.clone(), |p| h.since(p))).collect();
        previous = now.into_iter().map(|h| (h.id, h)).collect();
        let hists: Vec<(Option<u64>, Histogram)> = if args.cpus {
            interval.into_iter().map(|h| (Some(h.id), h)).collect()
        } else {
            let mut all = Histogram::new(0, 0);
            for h in &interval {
                for (a, b) in all.counts.iter_mut().zip(h.counts) {
                    *a = a.saturating_add(b);
                }
            }
            vec![(None, all)]
        };
        let mut out = stdout.lock();
        if args.reporting.json {
            let doc = json!({
                "schema_version": SCHEMA_VERSION,
                "tool": "runqlen",
                "time": crate::clock::now_rfc3339(),
                "interval_seconds": args.reporting.interval.map(|d| d.as_secs_f64()),
                "frequency_hz": args.frequency,
                "unit": "tasks",
                "histograms": hists.iter().map(|(cpu, h)| {
                    let last = h.counts.iter().rposition(|&c| c > 0).map_or(0, |l| l + 1);
                    json!({
                        "cpu": cpu,
                        "samples": h.count(),
                        "occupancy_percent": round3(occupancy(h)),
                        "buckets": h.counts[..last].iter().enumerate()
                            .map(|(len, &c)| json!({"length": len, "count": c}))
                            .collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
            });
            serde_json::to_writer(&mut out, &doc)?;
            writeln!(out)?;
        } else {
            writeln!(out)?;
            if args.reporting.timestamp {
                writeln!(out, "{}", crate::clock::now_hms())?;
            }
            if args.runqocc {
                for (cpu, h) in &hists {
                    match cpu {
                        Some(c) => writeln!(out, "runqocc, CPU {c:<3} {:6.2}%", occupancy(h))?,
                        None => writeln!(out, "runqocc: {:0.2}%", occupancy(h))?,
                    }
                }
            }
            if !args.runqocc || args.histograms {
                for (cpu, h) in &hists {
                    if let Some(c) = cpu {
                        writeln!(out, "\ncpu = {c}")?;
                    }
                    print_linear(&mut out, h)?;
                }
            }
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(finish(watch, exited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_is_the_share_of_samples_with_a_waiting_task() {
        let mut h = Histogram::new(0, 0);
        h.counts[0] = 75;
        h.counts[2] = 25;
        assert_eq!(occupancy(&h), 25.0);
        assert_eq!(occupancy(&Histogram::new(0, 0)), 0.0);
        let mut out = Vec::new();
        print_linear(&mut out, &h).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("        2        : 25       |*************"), "{text}");
    }
}
