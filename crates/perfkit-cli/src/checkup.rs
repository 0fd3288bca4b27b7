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
use perfkit_checkup::{
    CheckupDocument, Findings, Observations, ObserveOptions, Observer, Severity, Thresholds, analyze, compare, report,
};

use crate::{
    output::Output,
    profile::{IdList, parse_pid_list},
};

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
    #[arg(short, long, value_name = "PID[,PID...]", value_parser = parse_pid_list)]
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
    let text = render(&observations, &findings, interrupted);
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

fn limit(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v}"))
}

/// The eBPF activity of the window, a line each: run-queue lengths per
/// CPU, execs by program, TCP opens by port.
fn activity_lines(s: &mut String, a: &perfkit_checkup::activity::Activity) {
    use std::fmt::Write as _;
    let counts = |v: &[perfkit_checkup::activity::Count]| {
        v.iter().map(|c| format!("{} {}", perfkit_model::printable(&c.name), c.count)).collect::<Vec<_>>().join(", ")
    };
    if let Some(q) = a.run_queue_length.as_ref().filter(|q| !q.is_empty()) {
        let per: Vec<String> = q
            .iter()
            .map(|c| format!("cpu{} {:.2} waiting ({:.0}% of samples)", c.cpu, c.mean_waiting, c.occupancy_percent))
            .collect();
        let _ = writeln!(s, "  {:<8} {}", "runqlen", per.join(", "));
    }
    if let Some(e) = &a.execs {
        let _ = write!(s, "  {:<8} {} execs ({}/s), {} failed", "execs", e.execs, e.per_second, e.failed);
        if !e.top.is_empty() {
            let _ = write!(s, ": {}", counts(&e.top));
        }
        s.push('\n');
    }
    if let Some(t) = a.tcp_opens.as_ref().filter(|t| !t.connects.is_empty() || !t.accepts.is_empty()) {
        let _ = writeln!(
            s,
            "  {:<8} connects by remote port: {}; accepts by local port: {}",
            "tcp",
            if t.connects.is_empty() { "none".to_owned() } else { counts(&t.connects) },
            if t.accepts.is_empty() { "none".to_owned() } else { counts(&t.accepts) }
        );
    }
}

/// The terminal summary: findings worst first, then a line per resource.
fn render(obs: &Observations, findings: &Findings, interrupted: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = write!(s, "checkup: {:.1} s on {} CPUs", obs.duration_seconds, obs.cpus);
    if !obs.scope_pids.is_empty() {
        let pids: Vec<String> = obs.scope_pids.iter().map(u32::to_string).collect();
        let _ = write!(s, ", processes {}", pids.join(","));
    }
    if interrupted {
        s.push_str(" (stopped early)");
    }
    s.push('\n');
    if findings.worst().is_none_or(|w| w == Severity::Info) {
        s.push_str("\nno bottleneck found\n");
    }
    if !findings.findings.is_empty() {
        s.push_str("\nfindings, worst first:\n");
    }
    for (n, f) in findings.findings.iter().enumerate() {
        let object = f.object.as_deref().map(|o| format!(" {o}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "{:>3}. {:<8} {} {}{}: {}",
            n + 1,
            f.severity.name().to_uppercase(),
            f.resource.name(),
            f.kind.name(),
            object,
            f.title
        );
        for e in &f.evidence {
            let judged = if e.warning.is_some() {
                format!(
                    " ({} warning {}, critical {})",
                    if e.lower_is_worse { "at or below:" } else { "at or above:" },
                    limit(e.warning),
                    limit(e.critical)
                )
            } else {
                String::new()
            };
            let _ = writeln!(s, "       {} {}{}", e.metric, e.value, judged);
        }
        if !f.culprits.is_empty() {
            let list: Vec<String> = f
                .culprits
                .iter()
                .map(|c| {
                    let wait = c.wait_percent.map(|w| format!(", waited {w:.1}%")).unwrap_or_default();
                    format!("{} ({}) {:.1}% [cpu {:.1}%{wait}]", c.comm, c.pid, c.share_percent, c.cpu_percent)
                })
                .collect();
            let _ = writeln!(s, "       culprits: {}", list.join(", "));
        }
        if !f.cgroups.is_empty() {
            let list: Vec<String> = f.cgroups.iter().map(|g| format!("{} {:.1}%", g.path, g.share_percent)).collect();
            let _ = writeln!(s, "       cgroups: {}", list.join(", "));
        }
        if let Some(note) = &f.note {
            let _ = writeln!(s, "       note: {note}");
        }
        let _ = writeln!(s, "       next: {}", f.next.join("; "));
    }
    if !findings.summary.is_empty() {
        s.push_str("\nresources:\n");
    }
    for line in &findings.summary {
        let _ = writeln!(s, "  {:<8} {}", line.resource.name(), line.line);
    }
    if let Some(a) = &obs.activity {
        activity_lines(&mut s, a);
    }
    if let Some(k) = obs.kernel.as_ref().filter(|k| !k.during.is_empty()) {
        s.push_str("\nkernel messages during the window:\n");
        let skip = k.during.len().saturating_sub(10);
        for m in &k.during[skip..] {
            let _ = writeln!(s, "  [{:>12.6}] {}", m.seconds, m.text.escape_debug());
        }
    }
    for note in &obs.notes {
        let _ = writeln!(s, "note: {note}");
    }
    // Cgroup paths (a delegated user names them) and whatever else a
    // finding quotes: no control character reaches the terminal.
    s.lines().map(|l| format!("{}\n", perfkit_model::printable(l))).collect()
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

    #[test]
    fn a_crafted_cgroup_name_reaches_the_terminal_escaped() {
        // A delegated user names a cgroup with terminal escapes (the
        // kernel refuses only '/' and newlines); it is the finding's
        // object, title, cgroup and next step.
        let evil = "/user.slice/x\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}1m";
        let finding: perfkit_checkup::Finding = serde_json::from_value(serde_json::json!({
            "resource": "memory", "kind": "saturation", "severity": "critical", "object": evil,
            "title": format!("memory stalls in cgroup {evil}"), "evidence": [],
            "culprits": [], "cgroups": [{"path": evil, "version": "v2", "share_percent": 100.0, "pids": [1]}],
            "next": [format!("raise the memory limit of cgroup {evil}")], "note": evil,
        }))
        .unwrap();
        let mut findings = Findings::default();
        findings.findings.push(finding);
        let text = render(&Observations::default(), &findings, false);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(text.matches("x\\x1b]0;pwned\\x07\\x1b[2J\\xc2\\x9b1m").count(), 5, "{text}");
    }

    #[test]
    fn a_quiet_report_says_so() {
        let text = render(&Observations::default(), &Findings::default(), true);
        assert!(text.contains("no bottleneck found"), "{text}");
        assert!(text.contains("stopped early"), "{text}");
    }
}
