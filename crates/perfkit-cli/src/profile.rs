//! `perfkit profile`: on-CPU (and off-CPU) stacks of processes, threads, a
//! cgroup, the whole machine or a command, as a flame graph. The flags and
//! their options are `perfkit_profiler::flags`; this runs the session with
//! a progress line, writes the outputs and prints the summary.

use std::{
    ffi::OsString,
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use perfkit_flamegraph::SvgOptions;
use perfkit_formats::OutputFormat;
use perfkit_model::printable;
use perfkit_profiler::{
    EmptyProfile, EndReason, Finished, Note, Options, Remedy, Session,
    flags::{OffcpuArgs, OutputArgs, ProfileArgs, TargetArgs},
};
use perfkit_target::TargetError;

use crate::{output::Output, render::write_profile};

/// Which command a run is: on-CPU profile, or off-CPU time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Profile,
    OffCpu,
}

/// `perfkit profile`.
pub fn run(args: ProfileArgs) -> Result<ExitCode> {
    let options = args.options();
    run_kind(Kind::Profile, &args.target, &args.out, &options, &args.command)
}

/// `perfkit offcpu`.
pub fn run_offcpu(args: OffcpuArgs) -> Result<ExitCode> {
    let options = args.options()?;
    run_kind(Kind::OffCpu, &args.target, &args.out, &options, &args.command)
}

fn run_kind(
    kind: Kind,
    target: &TargetArgs,
    args: &OutputArgs,
    options: &Options,
    command: &[OsString],
) -> Result<ExitCode> {
    // Fail on unwritable outputs before anything runs.
    let default_name = match (kind, args.format) {
        (Kind::OffCpu, OutputFormat::Svg) => "offcpu.svg",
        _ => args.format.default_file_name(),
    };
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from(default_name));
    let to_stdout = output == Path::new("-");
    if to_stdout {
        crate::output::check_stdout_open()?;
    }
    let main_out = Output::create(&output)?;
    let folded_out = args.folded.as_deref().map(Output::create).transpose()?;

    let target = target.target(command, to_stdout)?;
    let mut session = match Session::start(target, options) {
        Ok(s) => s,
        Err(perfkit_profiler::ProfileError::Target(e)) if e.exec_failure().is_some() => {
            // As a shell: 127 for a command not found, 126 for one that
            // cannot run.
            return Ok(exec_failed(&e));
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!("{}", printable(&session.choice().describe()));

    let end = sample_until_done(&mut session, args.duration)?;
    let sampling_ended = Instant::now();
    let mut finished = session.finish()?;
    if let Some(empty) = finished.why_empty(end, kind == Kind::OffCpu) {
        let Finished { notes, mut command, .. } = finished;
        if let Some(c) = &mut command {
            let _ = c.terminate(perfkit_profiler::COMMAND_GRACE);
        }
        for n in &notes {
            eprintln!("{}", note_line(n));
        }
        match &empty {
            EmptyProfile::NotOnCpu { children: Some(hint), .. } => {
                bail!("{empty} ({}); nothing written", note_line(hint))
            }
            _ => bail!("{empty}; nothing written"),
        }
    }
    let profile = &finished.profile;

    let title = args.title.clone().unwrap_or_else(|| match kind {
        Kind::Profile => format!("perfkit profile: {}", profile.meta.command),
        Kind::OffCpu => format!("Off-CPU Time: {}", profile.meta.command),
    });
    let mut svg_options = SvgOptions::for_profile(title, profile);
    if kind == Kind::OffCpu {
        svg_options.palette = perfkit_flamegraph::parse_palette("io").map_err(anyhow::Error::msg)?;
    }
    let folded_path = folded_out.as_ref().and_then(Output::path_display);
    if let Some(folded) = folded_out {
        folded.commit(|w| profile.write_folded(w).context("writing folded stacks"))?;
    }
    let main_path = main_out.path_display();
    write_profile(main_out, args.format, profile, &svg_options)?;

    // Every output is written: now the command may be ended and reaped.
    let status = match (finished.command_status, &mut finished.command) {
        (Some(s), _) => Some(s),
        (None, Some(c)) => Some(c.terminate(perfkit_profiler::COMMAND_GRACE)?),
        (None, None) => None,
    };

    eprintln!("{}", finished.summary_line(end, kind == Kind::OffCpu));
    if let Some(idle) = finished.idle_line() {
        eprintln!("{idle}");
    }
    for n in &finished.notes {
        eprintln!("{}", note_line(n));
    }
    for line in finished.top_lines(args.top, kind == Kind::OffCpu) {
        eprintln!("{line}");
    }
    let written: Vec<String> = main_path.into_iter().chain(folded_path).collect();
    if !written.is_empty() {
        eprintln!(
            "wrote {} ({:.2} s after sampling ended)",
            printable(&written.join(" and ")),
            sampling_ended.elapsed().as_secs_f64()
        );
    }
    // As perf: a command that exited on its own passes its status on.
    Ok(ExitCode::from(end.exit_code(status)))
}

/// Samples until Ctrl-C (or SIGTERM, SIGHUP), the duration, or the exit of
/// every watched process, refreshing the progress line as it goes.
fn sample_until_done(session: &mut Session, duration: Option<Duration>) -> Result<EndReason> {
    let progress = progress_bar();
    let started = Instant::now();
    let description = printable(session.description()).into_owned();
    let stop = crate::signals::interrupt_flag()?;
    let shown = !progress.is_hidden();
    let reason = session.wait_until(duration, stop, |s| {
        // The sample count is read from the kernel: only for a progress
        // line that shows.
        if !shown {
            return;
        }
        progress.set_message(format!(
            "sampling {description}: {:.1} s, {} samples",
            started.elapsed().as_secs_f64(),
            s.samples()
        ));
    });
    progress.finish_and_clear();
    Ok(reason)
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}  (Ctrl-C to stop)").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Says that a command could not be executed, and returns the status a
/// shell gives it (127 not found, 126 cannot run).
pub(crate) fn exec_failed(e: &TargetError) -> ExitCode {
    let Some((program, source, code)) = e.exec_failure() else { return ExitCode::FAILURE };
    eprintln!("perfkit: error: cannot run {}: {source}", printable(&program.to_string_lossy()));
    ExitCode::from(code)
}

/// A library note as the summary prints it: the sentence, then the flag
/// that would have helped.
fn note_line(note: &Note) -> String {
    let text = printable(&note.to_string()).into_owned();
    let flag = match note.remedy() {
        Some(Remedy::MoreStackEntries) => "raise --stack-map-size".to_owned(),
        Some(Remedy::MoreCountsEntries) => "raise --counts-map-size".to_owned(),
        Some(Remedy::MoreTableRows) => "raise --table-rows".to_owned(),
        Some(Remedy::LowerFrequency) => "lower -F".to_owned(),
        Some(Remedy::StackBytes(n)) => format!("--stack-size {n}"),
        Some(Remedy::PerfBackend) => "--backend perf, or auto without --off-cpu".to_owned(),
        Some(Remedy::DwarfUnwinding) => "use --unwind dwarf".to_owned(),
        Some(Remedy::WithChildren) => "--children includes them".to_owned(),
        // Not a loss, but the flag that sets the budget it reports.
        _ if matches!(note, Note::UnwindTables { .. }) => "the budget is --table-rows".to_owned(),
        _ => return text,
    };
    format!("{text}; {flag}")
}
