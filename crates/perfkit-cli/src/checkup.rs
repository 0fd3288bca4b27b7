//! `perfkit checkup`: flags in, perfkit-checkup's observations and
//! findings out, on the terminal and in JSON.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use perfkit_checkup::{CheckupDocument, ObserveOptions, Observer, Thresholds, analyze, compare, report};

use crate::{output::Output, profile::PidList as IdList};

const EXAMPLES: &str = "\
Examples:
  perfkit checkup                          # observe the host for 60 s, then the findings
  perfkit checkup -d 10                    # a shorter look
  perfkit checkup -d 30 --json checkup.json
  perfkit checkup -p 1234,1240             # about these processes: others' load is context
  perfkit checkup -d 30 -o report.html     # findings, charts, latency, flame graphs: one file
  perfkit checkup --json - | jq '.findings[] | {severity, resource, kind, title}'
  perfkit checkup --compare before.json after.json -o diff.html   # what changed

Ctrl-C ends the observation early and still reports. The rules and their
thresholds (USE method: utilization, saturation, errors per resource) are in
docs/CHECKUP.md.";

/// Observe the host for a while (CPU, memory, disks, network, processes)
/// and report its bottlenecks: ranked findings by the USE method, with
/// evidence, culprits and the next command to run.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct CheckupArgs {
    /// How long to observe: seconds, or with a unit (500ms, 2m).
    #[arg(short, long, value_name = "DURATION", default_value = "60", value_parser = crate::clock::positive)]
    duration: Duration,

    /// Write the findings and the time series as JSON to FILE (`-`:
    /// standard output, the text summary then goes to standard error).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// The processes under investigation, comma-separated: culprits are
    /// looked for among them, and a finding none of them causes is lowered
    /// to info.
    #[arg(short, long, value_name = "PID[,PID...]")]
    pid: Option<IdList>,

    /// Write the report as one self-contained HTML file (findings, charts
    /// over time, latency histograms, on-CPU flame graph, the culprits'
    /// off-CPU stacks); with --compare, the comparison and a differential
    /// flame graph.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Compare two checkups written by --json instead of observing: the
    /// findings that appeared, went away or changed severity, and key
    /// metrics before and after.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with_all = ["pid", "json", "duration"])]
    compare: Option<Vec<PathBuf>>,
}

pub fn run(args: CheckupArgs) -> Result<()> {
    if let Some(files) = &args.compare {
        return run_compare(&files[0], &files[1], args.output.as_deref());
    }
    let json = args.json.as_deref().map(Output::create).transpose()?;
    let html = args.output.as_deref().map(Output::create).transpose()?;
    if html.as_ref().is_some_and(|o| o.path_display().is_none())
        && json.as_ref().is_some_and(|o| o.path_display().is_none())
    {
        bail!("--json - and -o - both write to standard output: give one of them a file");
    }
    let scope: Vec<u32> = args.pid.map(|l| l.0).unwrap_or_default();
    for pid in &scope {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!("no process {pid}");
        }
    }
    let stop = crate::signals::interrupt_flag()?;
    let mut options = ObserveOptions::default();
    options.duration = args.duration;
    options.scope_pids = scope;
    let bar = progress_bar(args.duration);
    let mut started = false;
    let mut observations = Observer::new()
        .observe(&options, stop, |elapsed| {
            if !started {
                // As bcc's tools say when they are attached: the window
                // starts now (scripts wait for this line).
                started = true;
                bar.suspend(|| {
                    eprintln!(
                        "Observing for {:.0} s... Hit Ctrl-C to end early and still report.",
                        args.duration.as_secs_f64()
                    )
                });
            }
            bar.set_position(elapsed.as_millis() as u64);
            let left = args.duration.saturating_sub(elapsed);
            bar.set_message(format!("{:.0} s left", left.as_secs_f64().ceil()));
        })
        .context("observing the host")?;
    bar.finish_and_clear();
    let interrupted = crate::signals::stopped();
    let findings = analyze(&observations, &Thresholds::default());
    // The off-CPU stacks kept are the culprits'.
    let culprits: Vec<u32> = findings.findings.iter().flat_map(|f| f.culprits.iter().map(|c| c.pid)).collect();
    observations.retain_off_cpu(&culprits);
    let text = perfkit_checkup::text::summary(&observations, &findings, interrupted);
    let to_stdout = |o: &Option<Output>| o.as_ref().is_some_and(|o| o.path_display().is_none());
    if to_stdout(&json) || to_stdout(&html) {
        eprint!("{text}");
    } else {
        Output::create(std::path::Path::new("-"))?.commit(|w| Ok(w.write_all(text.as_bytes())?))?;
    }
    let doc = CheckupDocument::new(observations, findings, interrupted);
    if let Some(out) = json {
        let shown = out.path_display();
        out.commit(|w| {
            serde_json::to_writer(&mut *w, &doc)?;
            Ok(w.write_all(b"\n")?)
        })?;
        if let Some(path) = shown {
            eprintln!("wrote {path}");
        }
    }
    if let Some(out) = html {
        let shown = out.path_display();
        out.commit(|w| report::render_html(&doc, w).context("rendering the HTML report"))?;
        if let Some(path) = shown {
            eprintln!("wrote {path}");
        }
    }
    Ok(())
}

/// A checkup document read from `path`, its bytes and what decoding them
/// can build charged to the budget.
fn read_document(path: &Path, which: &str) -> Result<CheckupDocument> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {which} {}", path.display()))?;
    let bytes = crate::render::read_charged(file, &path.display().to_string())
        .with_context(|| format!("cannot read {which} {}", path.display()))?;
    CheckupDocument::from_json_charged(&bytes, perfkit_safeio::Budget::process(), &path.display().to_string())
        .with_context(|| format!("{which} {}", path.display()))
}

/// `--compare BEFORE AFTER [-o FILE]`.
fn run_compare(before: &Path, after: &Path, output: Option<&Path>) -> Result<()> {
    let html = output.map(Output::create).transpose()?;
    let b = read_document(before, "BEFORE")?;
    let a = read_document(after, "AFTER")?;
    let cmp = compare::compare(&b, &a)?;
    let text = cmp.to_text();
    if html.as_ref().is_some_and(|o| o.path_display().is_none()) {
        eprint!("{text}");
    } else {
        Output::create(Path::new("-"))?.commit(|w| Ok(w.write_all(text.as_bytes())?))?;
    }
    if let Some(out) = html {
        let shown = out.path_display();
        out.commit(|w| compare::render_html(&cmp, &b, &a, w).context("rendering the comparison"))?;
        if let Some(path) = shown {
            eprintln!("wrote {path}");
        }
    }
    Ok(())
}

fn progress_bar(duration: Duration) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("observing {bar:40} {msg}  (Ctrl-C to stop and report)").expect("valid template"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        let a = parse(&["-d", "500ms", "-p", "1,2", "--json", "x.json"]).unwrap();
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.pid.unwrap().0, [1, 2]);
        assert!(parse(&["-d", "-3"]).is_err());
        assert!(parse(&["-p", "abc"]).is_err());
        let a = parse(&["--compare", "a.json", "b.json", "-o", "d.html"]).unwrap();
        assert_eq!(a.compare.unwrap(), [PathBuf::from("a.json"), PathBuf::from("b.json")]);
        assert_eq!(a.output.unwrap(), PathBuf::from("d.html"));
        assert!(parse(&["--compare", "a.json"]).is_err(), "two files");
        assert!(parse(&["--compare", "a.json", "b.json", "-p", "1"]).is_err(), "compare observes nothing");
    }
}
