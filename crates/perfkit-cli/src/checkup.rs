//! `perfkit checkup`: flags in, perfkit-checkup's observations and
//! findings out, on the terminal and in JSON; the flags are
//! `perfkit_checkup::flags`.

use std::{io::IsTerminal, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use perfkit_checkup::{CheckupDocument, Observer, Thresholds, analyze, compare, flags::CheckupArgs, report};

use crate::output::Output;

pub(crate) const CHECKUP_EXAMPLES: &str = "\
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

pub fn run(args: CheckupArgs) -> Result<()> {
    if let Some((before, after)) = args.compare_files() {
        return run_compare(before, after, args.output.as_deref());
    }
    let json = args.json.as_deref().map(Output::create).transpose()?;
    let html = args.output.as_deref().map(Output::create).transpose()?;
    if html.as_ref().is_some_and(|o| o.path_display().is_none())
        && json.as_ref().is_some_and(|o| o.path_display().is_none())
    {
        bail!("--json - and -o - both write to standard output: give one of them a file");
    }
    let options = args.observe_options()?;
    let stop = crate::signals::interrupt_flag()?;
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
