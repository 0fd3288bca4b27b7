//! `perfkit profile`: on-CPU sampling of one process into a flame graph.

use std::{
    collections::HashMap,
    ffi::OsString,
    io::IsTerminal,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use perfkit_flamegraph::SvgOptions;
use perfkit_formats::OutputFormat;

use perfkit_profile::Profile;
use perfkit_symbols::Symbolizer;
use perfkit_target::{ExitStatus, ExitWatch, HeldCommand, ProcessInfo};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    backend::{Backend, BackendArg, EventArg, Finished, Request, UnwindArg, resolve_program},
    output::{Output, PendingOutput},
    render::write_profile,
};

const EXAMPLES: &str = "\
Examples:
  perfkit profile -p 1234                  # until Ctrl-C, writes flame.svg
  perfkit profile -p 1234 -d 30 -F 199 -o api.svg --folded api.folded
  perfkit profile -- ./my-benchmark --iterations 100
  perfkit profile -p 1234 -d 30 -f pprof -o api.pb.gz   # go tool pprof, Pyroscope

Needs root, or CAP_BPF and CAP_PERFMON (CAP_PERFMON alone: perf_event
backend). Frame pointers give complete stacks for code built with them
(-fno-omit-frame-pointer, -C force-frame-pointers=yes); --unwind dwarf (chosen
automatically for a program without them) does for the rest.";

/// Sample a process's on-CPU stacks and draw a flame graph.
///
/// Samples every thread of the target on every CPU at a fixed frequency,
/// with eBPF (stacks counted in the kernel) or perf_event (ring buffers,
/// DWARF unwinding for code without frame pointers). At the end the stacks
/// are symbolized and written as an SVG flame graph, folded stacks, pprof
/// or JSON. Sampling
/// ends at Ctrl-C, after --duration, or when the target exits; every output
/// is written in each case.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ProfileArgs {
    /// Process to profile (all its threads).
    #[arg(short, long, value_name = "PID", value_parser = parse_pid, conflicts_with = "command", required_unless_present = "command")]
    pid: Option<u32>,

    /// Samples per second, per CPU.
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    frequency: u64,

    /// Stop after this long: seconds, or with a unit (500ms, 10s, 2m).
    /// Without it, sampling runs until Ctrl-C or the target exits.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Where to write the profile; `-` for standard output. Default: the
    /// format's usual name (flame.svg, profile.folded, profile.pb.gz,
    /// profile.json).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Output format: svg (flame graph), folded (FlameGraph, inferno), pprof
    /// (go tool pprof, Pyroscope, Parca) or json (perfkit's schema).
    #[arg(short, long, value_name = "FORMAT", default_value = "svg")]
    format: OutputFormat,

    /// Also write the stacks in the folded format (FlameGraph, inferno).
    #[arg(long, value_name = "FILE")]
    folded: Option<PathBuf>,

    /// Entries in the kernel's stack map: raise it when stacks are lost to collisions.
    #[arg(long, value_name = "N", default_value_t = perfkit_probes::DEFAULT_STACK_ENTRIES, value_parser = clap::value_parser!(u32).range(1..))]
    stack_map_size: u32,

    /// Entries in the kernel's counts map: raise it when samples are dropped.
    #[arg(long, value_name = "N", default_value_t = perfkit_probes::DEFAULT_COUNTS_ENTRIES, value_parser = clap::value_parser!(u32).range(1..))]
    counts_map_size: u32,

    /// Event that triggers a sample: cpu-clock, task-clock, cycles or instructions (the
    /// last three with the perf backend; cycles and instructions need hardware counters).
    #[arg(short, long, value_enum, default_value_t)]
    event: EventArg,

    /// Sampling backend: auto (eBPF where it loads, else perf_event), ebpf, or perf.
    #[arg(long, value_enum, default_value_t)]
    backend: BackendArg,

    /// Stack walking: auto (frame pointers, or DWARF when the program has none), fp, or
    /// dwarf (copies user stacks; perf backend).
    #[arg(long, value_enum, default_value_t)]
    unwind: UnwindArg,

    /// Bytes of user stack copied per sample for DWARF unwinding (raise it for deep stacks).
    #[arg(long, value_name = "BYTES", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(8..=65528))]
    stack_size: u32,

    /// Functions to list in the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,

    /// Command to run and profile until it exits.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub(crate) fn parse_pid(s: &str) -> Result<u32, String> {
    perfkit_target::parse_pid(s).map_err(|e| e.to_string())
}

/// Parses `10`, `2.5`, `500ms`, `10s`, `2m`: a positive duration.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let value: f64 =
        num.trim().parse().map_err(|_| format!("{s:?} is not a duration (examples: 10, 2.5, 500ms, 2m)"))?;
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("the duration must be positive, got {s:?}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("the duration {s:?} is too long"))
}

/// Why sampling stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndReason {
    Interrupted,
    Duration,
    TargetExited,
}

/// The process being profiled, and the child we started if we started it.
struct Target {
    info: ProcessInfo,
    child: Option<HeldCommand>,
}

pub fn run(args: ProfileArgs) -> Result<()> {
    // Fail on unwritable outputs before anything runs.
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from(args.format.default_file_name()));
    let main_out = Output::create(&output)?;
    let folded_out = args.folded.as_deref().map(PendingOutput::create).transpose()?;

    let mut target = match args.pid {
        Some(pid) => Target { info: ProcessInfo::read(pid)?, child: None },
        None => {
            let (program, rest) = args.command.split_first().context("no command given")?;
            let rest: Vec<&OsString> = rest.iter().collect();
            let child = HeldCommand::spawn(program, &rest)?;
            let cmdline = args.command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            let info = ProcessInfo { pid: child.pid(), comm: program.to_string_lossy().into_owned(), cmdline };
            Target { info, child: Some(child) }
        }
    };
    let pid = target.info.pid;
    let executable = match &target.child {
        Some(_) => args.command.first().and_then(|p| resolve_program(std::path::Path::new(p))),
        // Unreadable (another user's process): no verdict, frame pointers.
        None => Some(PathBuf::from(format!("/proc/{pid}/exe"))),
    };
    let request = Request {
        event: args.event,
        backend: args.backend,
        unwind: args.unwind,
        pid,
        executable,
        frequency_hz: args.frequency,
        stack_map_size: args.stack_map_size,
        counts_map_size: args.counts_map_size,
        stack_bytes: args.stack_size.next_multiple_of(8).min(65528),
        held: target.child.is_some(),
    };
    let mut backend = Backend::start(&request)?;

    if let Some(child) = &mut target.child {
        child.release()?;
    }
    backend.tick();
    let watch = ExitWatch::new(pid);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let started = Instant::now();
    let end = runtime.block_on(sample_until_done(&mut backend, watch, args.duration, &target.info))?;
    let elapsed = started.elapsed();
    let sampling_ended = Instant::now();
    let mut finished = backend.finish()?;

    let child_status = match &mut target.child {
        Some(child) => Some(stop_child(child, end)?),
        None => None,
    };

    let profile = symbolize(&mut finished, &target.info, elapsed, args.frequency);
    if profile.total_samples() == 0 {
        bail!(
            "no samples: PID {pid} did not run on a CPU during the {:.1} s of sampling; nothing written",
            elapsed.as_secs_f64()
        );
    }

    let mut svg_options = SvgOptions::new(format!("perfkit profile: {}", target.info.display_command()));
    svg_options.subtitle = Some(subtitle(&profile, pid));
    let folded_path = folded_out.as_ref().map(|f| f.path().to_owned());
    if let Some(folded) = folded_out {
        folded.commit(|w| profile.write_folded(w).context("writing folded stacks"))?;
    }
    let main_path = main_out.path_display();
    write_profile(main_out, args.format, &profile, &svg_options)?;

    print_summary(&profile, &finished, end, child_status, args.top);
    let written: Vec<String> = main_path.into_iter().chain(folded_path.map(|p| p.display().to_string())).collect();
    if !written.is_empty() {
        eprintln!(
            "wrote {} ({:.2} s after sampling ended)",
            written.join(" and "),
            sampling_ended.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Samples until Ctrl-C, the duration, or the target's exit, refreshing the
/// target's mappings and the progress line as it goes.
async fn sample_until_done(
    backend: &mut Backend,
    watch: Result<ExitWatch, perfkit_target::TargetError>,
    duration: Option<Duration>,
    info: &ProcessInfo,
) -> Result<EndReason> {
    let progress = progress_bar();
    let started = Instant::now();
    let reason = wait_until_done(watch, duration, || {
        backend.tick();
        if let Some(samples) = backend.samples() {
            progress.set_message(format!(
                "sampling PID {} ({}): {:.1} s, {} samples",
                info.pid,
                info.comm,
                started.elapsed().as_secs_f64(),
                samples
            ));
        }
    })
    .await;
    progress.finish_and_clear();
    reason
}

/// Waits for Ctrl-C, the duration, or the target's exit (watched through
/// its pidfd), calling `on_tick` every 100 ms meanwhile.
pub(crate) async fn wait_until_done(
    watch: Result<ExitWatch, perfkit_target::TargetError>,
    duration: Option<Duration>,
    mut on_tick: impl FnMut(),
) -> Result<EndReason> {
    let exit = match watch {
        // SAFETY: `ExitWatch` owns its pidfd and always returns that same fd.
        Ok(w) => Some(
            unsafe { AsyncFd::register_with_interest(w, Interest::READABLE) }
                .map_err(std::io::Error::from)
                .context("watching the target for exit")?,
        ),
        // Already gone between start and here: the wait ends at once.
        Err(perfkit_target::TargetError::NoSuchProcess(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let Some(exit) = &exit else { return Ok(EndReason::TargetExited) };
        tokio::select! {
            r = &mut ctrl_c => {
                r.context("listening for Ctrl-C")?;
                return Ok(EndReason::Interrupted);
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                return Ok(EndReason::Duration);
            }
            r = exit.readable() => {
                let _ = r.context("watching the target for exit")?;
                return Ok(EndReason::TargetExited);
            }
            _ = tick.tick() => on_tick(),
        }
    }
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

/// A command we started is stopped with SIGTERM when sampling ended before
/// it did, then reaped.
fn stop_child(child: &mut HeldCommand, end: EndReason) -> Result<ExitStatus> {
    if end != EndReason::TargetExited {
        // SAFETY: signalling our own unreaped child; its PID cannot be reused.
        unsafe { libc::kill(child.pid() as i32, libc::SIGTERM) };
    }
    Ok(child.wait()?)
}

fn symbolize(finished: &mut Finished, info: &ProcessInfo, elapsed: Duration, hz: u64) -> Profile {
    let progress = progress_bar();
    progress.set_message(format!("symbolizing {} unique stacks", finished.samples.len()));
    let mut trackers = HashMap::new();
    let maps = std::mem::replace(&mut finished.maps, perfkit_symbols::MapsTracker::new(0));
    trackers.insert(maps.pid(), maps);
    let mut profile = Symbolizer::default().profile(&finished.samples, &trackers);
    progress.finish_and_clear();
    profile.meta.command = info.display_command();
    profile.meta.duration = elapsed;
    profile.meta.frequency_hz = hz;
    profile.meta.lost_stacks = finished.lost_stacks;
    profile.meta.dropped_samples = finished.dropped;
    profile
}

fn subtitle(profile: &Profile, pid: u32) -> String {
    let m = &profile.meta;
    let mut s = format!(
        "{} samples in {:.1} s at {} Hz, PID {pid}",
        profile.total_samples(),
        m.duration.as_secs_f64(),
        m.frequency_hz
    );
    if m.lost_stacks > 0 || m.dropped_samples > 0 {
        s.push_str(&format!(", {} stacks lost, {} samples dropped", m.lost_stacks, m.dropped_samples));
    }
    s
}

fn print_summary(profile: &Profile, finished: &Finished, end: EndReason, child: Option<ExitStatus>, top: usize) {
    let total = profile.total_samples();
    let m = &profile.meta;
    let why = match end {
        EndReason::Interrupted => "interrupted".to_owned(),
        EndReason::Duration => "duration reached".to_owned(),
        EndReason::TargetExited => match child {
            Some(status) => format!("command exited, {status}"),
            None => "target exited".to_owned(),
        },
    };
    eprintln!(
        "{total} samples in {:.2} s at {} Hz ({why}); {} unique stacks",
        m.duration.as_secs_f64(),
        m.frequency_hz,
        profile.folded_counts().len()
    );
    for note in &finished.notes {
        eprintln!("{note}");
    }
    if let Some(bytes) = finished.bytes {
        eprintln!("read {} KiB of samples from the kernel", bytes.div_ceil(1024));
    }
    if top > 0 && total > 0 {
        eprintln!("top functions by self time:");
        for f in profile.top_self(top) {
            eprintln!("  {:>6.2}%  {:>8}  {}", 100.0 * f.count as f64 / total as f64, f.count, f.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProfileArgs,
    }

    fn parse(args: &[&str]) -> Result<ProfileArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("profile").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults() {
        let a = parse(&["-p", "42"]).unwrap();
        assert_eq!(a.pid, Some(42));
        assert_eq!(a.frequency, 99);
        assert_eq!(a.duration, None);
        assert_eq!(a.output, None);
        assert_eq!(a.format, OutputFormat::Svg);
        assert!(a.folded.is_none());
    }

    #[test]
    fn command_after_double_dash() {
        let a = parse(&["-F", "199", "-d", "2.5", "--", "sleep", "-x", "1"]).unwrap();
        assert_eq!(a.command, vec![OsString::from("sleep"), "-x".into(), "1".into()]);
        assert_eq!(a.duration, Some(Duration::from_millis(2500)));
        assert_eq!(a.frequency, 199);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["-p", "0"][..],
            &["-p", "abc"],
            &["-p", ""],
            &["-p", "1", "-F", "0"],
            &["-p", "1", "-F", ""],
            &["-p", "1", "-F", "fast"],
            &["-p", "1", "-d", ""],
            &["-p", "1", "-d", "0"],
            &["-p", "1", "-d", "-3"],
            &["-p", "1", "-d", "soon"],
            &["-p", "1", "--", "true"],
            &["-p", "1", "-f", "png"],
            &[],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("NaN").is_err());
    }
}
