//! `perfkit sys`: sysstat-style views, recording and replay; the flags are
//! `perfkit_procstat::flags`.

use std::{
    fs,
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use perfkit_procstat::{
    CollectOptions, Collector, ProcessSelection, Sample, Schedule,
    flags::{LiveArgs, RecordArgs, ReportArgs, SysArgs, SysCommand},
    record::{self, Recorder},
    text::{Reporter, View},
};

use crate::output::Output;

pub(crate) const SYS_EXAMPLES: &str = "\
Examples:
  perfkit sys cpu 1 5               # mpstat -P ALL 1 5
  perfkit sys proc 1                # pidstat 1: active processes every second
  perfkit sys proc -p 1234 --threads 2 10
  perfkit sys mem 1                 # vmstat 1 and free
  perfkit sys disk 1 3 --json       # iostat -xz 1 3, one JSON object per interval
  perfkit sys net 1                 # sar -n DEV 1
  perfkit sys psi 5
  perfkit sys record 1 -o host.rec         # until Ctrl-C
  perfkit sys record 5 720 -o host.rec     # an hour: 720 intervals of 5 s
  perfkit sys report host.rec disk

INTERVAL and COUNT work as in sysstat: no INTERVAL prints one report of the
figures since boot; an INTERVAL without COUNT reports until Ctrl-C, then
prints the average over the whole run.";

pub fn run(args: SysArgs) -> Result<()> {
    let live = |view, live: LiveArgs| {
        let reporter = live.reporter(view);
        Live::new(live, CollectOptions::default(), reporter).run()
    };
    match args.command {
        SysCommand::Cpu(l) => live(View::Cpu, l),
        SysCommand::Mem(l) => live(View::Mem, l),
        SysCommand::Net(l) => live(View::Net, l),
        SysCommand::Psi(l) => live(View::Psi, l),
        SysCommand::Disk(d) => {
            let reporter = d.reporter();
            Live::new(d.live, CollectOptions::default(), reporter).run()
        }
        SysCommand::Proc(p) => {
            let (options, reporter) = (p.collect_options(), p.reporter());
            Live::new(p.live, options, reporter).run()
        }
        SysCommand::Record(r) => record(r),
        SysCommand::Report(r) => report(r),
    }
}

/// A live view: samples every interval and prints each report.
struct Live {
    live: LiveArgs,
    options: CollectOptions,
    reporter: Reporter,
}

impl Live {
    fn new(live: LiveArgs, options: CollectOptions, mut reporter: Reporter) -> Self {
        if reporter.view == View::Mem {
            // vmstat repeats its header every 20 reports on a terminal.
            reporter.header_every = std::io::stdout().is_terminal().then_some(20);
        }
        Self { live, options, reporter }
    }

    fn run(mut self) -> Result<()> {
        let collector = Collector::new();
        // The output is checked now, but touched only once the first sample
        // is taken (a bad PID must not truncate an existing recording).
        let pending = self
            .live
            .record
            .as_deref()
            .map(|p| Ok::<_, anyhow::Error>((Output::create(p)?, p.to_owned())))
            .transpose()?;
        // A recording can be replayed as any view: take everything.
        let options =
            if pending.is_some() { record::collect_options(self.options.threads) } else { self.options.clone() };
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let first = collector.collect(&options).context("collecting statistics")?;
        if let ProcessSelection::Pids(pids) = &self.options.processes {
            let missing: Vec<String> = first.missing_pids(pids).iter().map(u32::to_string).collect();
            if missing.len() == pids.len() {
                bail!("no process with PID {}", missing.join(", "));
            } else if !missing.is_empty() {
                eprintln!("perfkit: warning: no process with PID {}", missing.join(", "));
            }
        }
        let mut recorder = pending.map(|(out, path)| start_recording(out, &path, &first)).transpose()?;
        let Some(interval) = self.live.interval else {
            return Ok(self.reporter.write_interval(&mut out, None, &first)?);
        };
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().build().context("starting the runtime")?;
        let mut prev = first.clone();
        let mut schedule = Schedule::start(interval, self.live.count);
        let mut reports = 0u64;
        while let Some(due) = schedule.next_due() {
            if !runtime.block_on(wait_until(due)) {
                break;
            }
            let cur = collector.collect(&options).context("collecting statistics")?;
            if let Some((r, _)) = &mut recorder {
                r.push(&cur)?;
            }
            self.reporter.write_interval(&mut out, Some(&prev), &cur)?;
            prev = cur;
            reports += 1;
        }
        // As sysstat does: the average over the whole run.
        if reports > 0 {
            self.reporter.write_average(&mut out, &first, &prev)?;
        }
        if let Some((r, path)) = recorder {
            eprintln!("recorded {} samples ({} bytes) to {}", r.samples(), r.bytes(), path.display());
        }
        Ok(())
    }
}

/// Sleeps until `due`; false when an interrupting signal (Ctrl-C,
/// SIGTERM, SIGHUP) came first.
async fn wait_until(due: Instant) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(due.into()) => true,
        _ = crate::signals::interrupted() => false,
    }
}

/// Starts a recording with its first sample. A file appears (replacing
/// what was there, atomically) only with its header and first sample
/// written; later samples are appended and flushed one by one, so a crash
/// keeps everything recorded before it.
fn start_recording(out: Output, path: &Path, first: &Sample) -> Result<(Recorder<fs::File>, PathBuf)> {
    let what = || format!("writing {}", path.display());
    let recorder = match out {
        Output::File(pending) => {
            let mut staged = pending.stage()?;
            let file = staged.file().try_clone().with_context(what)?;
            let mut r = Recorder::new(file).with_context(what)?;
            r.push(first).with_context(what)?;
            staged.commit()?;
            r
        }
        Output::Device(file, _) => {
            let mut r = Recorder::new(file).with_context(what)?;
            r.push(first).with_context(what)?;
            r
        }
        Output::Stdout => bail!("a recording is binary: give a file, not standard output"),
    };
    Ok((recorder, path.to_owned()))
}

fn record(args: RecordArgs) -> Result<()> {
    if args.old_interval.is_some() || args.old_count.is_some() {
        // -c counted samples; COUNT counts intervals, as the views do.
        let interval = args.old_interval.as_deref().unwrap_or("1");
        let count = match args.old_count.as_deref().map(str::parse::<u64>) {
            Some(Ok(c)) if c > 1 => format!(" {}", c - 1),
            _ => String::new(),
        };
        bail!(
            "sys record takes INTERVAL and COUNT as the other views do, not -i/-c: \
             perfkit sys record {} {}-o FILE (COUNT intervals: COUNT+1 samples)",
            perfkit_model::printable(interval),
            if count.is_empty() { String::new() } else { format!("{} ", count.trim()) }
        );
    }
    let interval = args.interval();
    let collector = Collector::new();
    let options = args.collect_options();
    let out = Output::create(&args.output)?;
    let first = collector.collect(&options).context("collecting statistics")?;
    let (mut recorder, path) = start_recording(out, &args.output, &first)?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().build().context("starting the runtime")?;
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar
    });
    // COUNT intervals: COUNT+1 samples, the first in the file already.
    let mut schedule = Schedule::start(interval, args.count);
    loop {
        if let Some(bar) = &progress {
            bar.set_message(format!(
                "recording to {}: {} samples, {} KiB, {:.0} s (Ctrl-C stops)",
                path.display(),
                recorder.samples(),
                recorder.bytes() / 1024,
                schedule.started().elapsed().as_secs_f64()
            ));
            bar.tick();
        }
        let Some(due) = schedule.next_due() else { break };
        if !runtime.block_on(wait_until(due)) {
            break;
        }
        let sample = collector.collect(&options).context("collecting statistics")?;
        recorder.push(&sample).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    eprintln!("recorded {} samples ({} bytes) to {}", recorder.samples(), recorder.bytes(), path.display());
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    // Read within the process's budget (--max-memory): the file's bytes
    // and the samples decoded from them.
    let file = fs::File::open(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let rec = record::read(file).with_context(|| format!("reading {}", args.file.display()))?;
    if rec.truncated {
        eprintln!("perfkit: warning: the last sample of {} is incomplete and was skipped", args.file.display());
    }
    for c in &rec.corrupt {
        eprintln!(
            "perfkit: warning: {}: damaged data at byte {} ({}) was skipped",
            args.file.display(),
            c.offset,
            c.reason
        );
    }
    if rec.samples.len() < 2 {
        bail!(
            "{} holds {} sample(s); a report needs two (record for at least one interval)",
            args.file.display(),
            rec.samples.len()
        );
    }
    Ok(args.reporter().write_replay(&mut std::io::stdout().lock(), &rec.samples)?)
}
