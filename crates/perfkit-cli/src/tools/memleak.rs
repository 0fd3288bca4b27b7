//! `memleak`: bcc's memleak (`perfkit_probes::tools::Memleak`): allocations
//! made and not yet freed, by stack, every interval; a user allocator with
//! `-p PID` or `-c COMMAND`, the kernel's otherwise.

use std::{collections::HashMap, ffi::OsString, io::Write, process::ExitCode, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;
use perfkit_model::raw::{RawSample, RawStack, SampleKind, StackEnd};
use perfkit_probes::tools::{
    Memleak, MemleakConfig, MemleakMode, MemleakReport, MemleakStats, StackGroup, StackGroupJson, oldest_first,
    run::{Schedule, memleak_losses, run_intervals},
    write_memleak,
};
use perfkit_symbols::{SymbolizeOptions, Symbolizer};
use perfkit_target::{MapsTracker, Modules};

use super::{Reporting, ToolTarget, finish};
use crate::profile::IdList;

const MEMLEAK_EXAMPLES: &str = "\
Examples:
  perfkit memleak -p 1234                 # libc's allocations of a process, every 5 s
  perfkit memleak -p 1234 -a 10 3         # with each allocation listed, every 10 s, 3 times
  perfkit memleak -c './app --flag'       # a command (or: perfkit memleak -- ./app --flag)
  perfkit memleak -p 1234 -O /usr/lib/libjemalloc.so.2
  perfkit memleak -Z 2048 5               # the kernel's allocations up to 2 KiB
  perfkit memleak --json -p 1234 --combined-only

As bcc's memleak: allocations not freed, by stack, biggest first, every
interval (5 s by default). User mode (-p, -c): uprobes on malloc, calloc,
realloc, posix_memalign, aligned_alloc, memalign, valloc, pvalloc and
mmap, with free and munmap, in the libc the process maps (-O another
allocator). Stacks are walked by frame pointers, as bcc's: code built
without them shows fewer frames. Kernel mode (no -p): the kmem
tracepoints (kmalloc, kmem_cache_alloc, page allocations and their
frees), machine-wide. Allocations younger than -o (500 ms) are left out.";

/// Allocations made and not freed, by stack, like bcc's memleak.
#[derive(Debug, Args)]
#[command(after_help = MEMLEAK_EXAMPLES)]
pub struct MemleakArgs {
    /// List each outstanding allocation (address, size, age) too.
    #[arg(short = 'a', long = "show-allocs")]
    show_allocs: bool,

    /// Leave out allocations younger than this, in milliseconds.
    #[arg(short = 'o', long, value_name = "OLDER", default_value_t = 500)]
    older: u64,

    /// Run this command (split at spaces) and watch it, as bcc's -c (or
    /// give it after `--`).
    #[arg(short = 'c', long = "command", value_name = "COMMAND")]
    command_line: Option<String>,

    /// Only each stack's totals, kept in the kernel as allocations come and
    /// go (no ages: no -o, no -a).
    #[arg(short = 'C', long)]
    combined_only: bool,

    /// Drop an outstanding allocation when its address is allocated again
    /// (its free was missed). Always done: accepted for bcc's scripts.
    #[arg(short = 'F', long)]
    wa_missing_free: bool,

    /// Record one allocation in this many (on each CPU).
    #[arg(short = 's', long = "sample-rate", value_name = "SAMPLE_RATE", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    sample_rate: u64,

    /// Show this many stacks, the biggest first.
    #[arg(short = 'T', long, value_name = "TOP", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    top: u64,

    /// Leave out allocations smaller than this many bytes.
    #[arg(short = 'z', long, value_name = "MIN_SIZE")]
    min_size: Option<u64>,

    /// Leave out allocations larger than this many bytes.
    #[arg(short = 'Z', long, value_name = "MAX_SIZE")]
    max_size: Option<u64>,

    /// The allocator object (a path, or a library name: `c` is libc),
    /// user mode only.
    #[arg(short = 'O', long = "obj", visible_alias = "lib", value_name = "OBJ")]
    obj: Option<String>,

    #[command(flatten)]
    reporting: Reporting,

    #[command(flatten)]
    target: ToolTarget,
}

/// Seconds between reports when none is given (bcc's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

pub fn memleak(mut args: MemleakArgs) -> Result<ExitCode> {
    if let Some(line) = &args.command_line {
        if args.target.pid.is_some() || args.target.cgroup.is_some() || !args.target.command.is_empty() {
            bail!("-c COMMAND is the target: give no -p, --cgroup or -- COMMAND with it");
        }
        let words: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        if words.is_empty() {
            bail!("-c needs a command");
        }
        args.target.command = words;
    }
    if args.combined_only && args.show_allocs {
        bail!("--combined-only keeps each stack's totals, not the allocations: -a needs them");
    }
    let user = args.target.pid.is_some() || !args.target.command.is_empty();
    if args.target.cgroup.is_some() {
        bail!("memleak watches a user allocator in -p PID or -c COMMAND, or (neither) the kernel's allocations");
    }
    if !user && args.obj.is_some() {
        bail!("-O names a user allocator: give -p PID or -c COMMAND");
    }
    let mut watch = args.target.watch()?;
    let mut config = MemleakConfig::default();
    config.min_size = args.min_size.unwrap_or(0);
    config.max_size = args.max_size.unwrap_or(u64::MAX);
    config.sample_every = args.sample_rate;
    let mut pids: Vec<u32> = Vec::new();
    if user {
        if let Some(IdList(p)) = &args.target.pid {
            pids.extend(p);
        }
        if let Some(c) = watch.command_pid() {
            pids.push(c);
        }
        let object = args.obj.clone().unwrap_or_else(|| "c".to_owned());
        let pid = args.target.pid.as_ref().and_then(|IdList(p)| p.first().copied());
        config.mode = MemleakMode::User { object: object.clone(), pid, library_dirs: perfkit_profiler::library_dirs() };
        config.selection = watch.selection();
    }
    let tool = Memleak::start(config).context("starting memleak")?;
    let mut trackers: HashMap<u32, MapsTracker> = pids.iter().map(|&p| (p, MapsTracker::new(p))).collect();
    refresh(&mut trackers);
    watch.release()?;
    if user {
        eprintln!(
            "Attaching to {} in {}, Ctrl+C to quit.",
            tool.functions().join(", "),
            pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        );
    } else {
        eprintln!("Attaching to kernel allocators ({}), Ctrl+C to quit.", tool.functions().join(", "));
    }
    let symbolizer = Symbolizer::new(&SymbolizeOptions::default());
    let interval = args.reporting.interval.unwrap_or(DEFAULT_INTERVAL);
    let mut reported = MemleakStats::default();
    let schedule = Schedule { interval: Some(interval), count: args.reporting.count, duration: None };
    let trackers = std::cell::RefCell::new(trackers);
    let exited = run_intervals(
        &schedule,
        &mut watch,
        crate::signals::interrupt_flag()?,
        || {
            refresh(&mut trackers.borrow_mut());
            Ok::<(), anyhow::Error>(())
        },
        |_| {
            let trackers = &mut *trackers.borrow_mut();
            refresh(trackers);
            report(&args, &tool, &symbolizer, trackers, user)?;
            warn_losses(&tool.memleak_stats()?, &mut reported);
            Ok(())
        },
    )?;
    Ok(finish(watch, exited))
}

/// Reads the mappings of the watched processes again (new libraries).
fn refresh(trackers: &mut HashMap<u32, MapsTracker>) {
    for t in trackers.values_mut() {
        let _ = t.refresh();
    }
}

/// Warns about allocations not recorded since the last warning: never
/// silent.
fn warn_losses(s: &MemleakStats, reported: &mut MemleakStats) {
    for loss in memleak_losses(s, reported) {
        eprintln!("perfkit memleak: warning: {loss}");
    }
    *reported = *s;
}

fn report(
    args: &MemleakArgs,
    tool: &Memleak,
    symbolizer: &Symbolizer,
    trackers: &HashMap<u32, MapsTracker>,
    user: bool,
) -> Result<()> {
    let older = Duration::from_millis(args.older);
    let mut allocations = Vec::new();
    let groups = if args.combined_only {
        StackGroup::from_totals(&tool.combined()?)
    } else {
        allocations = tool.allocations()?;
        allocations.retain(|a| a.age >= older);
        StackGroup::from_allocations(&allocations)
    };
    let groups = StackGroup::top(groups, usize::try_from(args.top).unwrap_or(usize::MAX));
    // In combined mode stacks carry no process: in user mode they belong to
    // the watched processes, whose mappings symbolize them.
    let frames = symbolize(tool, symbolizer, trackers, &groups, user)?;
    oldest_first(&mut allocations);
    let shown = args.show_allocs.then_some(&allocations[..]);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.reporting.json {
        let with_pid = user && !args.combined_only;
        let stacks = groups.iter().zip(&frames).map(|(g, f)| StackGroupJson::new(g, f, with_pid)).collect();
        let interval = args.reporting.interval.unwrap_or(DEFAULT_INTERVAL);
        let older = (!args.combined_only).then_some(args.older);
        let stats = tool.memleak_stats()?;
        let doc = MemleakReport::new(crate::clock::now_rfc3339(), user, interval, older, stacks, shown, &stats);
        serde_json::to_writer(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        if args.reporting.timestamp {
            writeln!(out, "{}", crate::clock::now_hms())?;
        }
        write_memleak(&mut out, shown, &groups, &frames, &crate::clock::now_hms())?;
    }
    out.flush()?;
    Ok(())
}

/// Each group's frames, innermost first.
fn symbolize(
    tool: &Memleak,
    symbolizer: &Symbolizer,
    trackers: &HashMap<u32, MapsTracker>,
    groups: &[StackGroup],
    user: bool,
) -> Result<Vec<Vec<String>>> {
    let mut modules = Modules::default();
    for (&pid, t) in trackers {
        modules.processes.insert(pid, t.mappings().to_vec());
    }
    // In combined mode the process is not known: the first watched one.
    let default_pid = trackers.keys().min().copied().unwrap_or(0);
    let mut samples = Vec::with_capacity(groups.len());
    for g in groups {
        let ips = match g.stack_id {
            Some(id) => tool.stack(id)?,
            None => Vec::new(),
        };
        let stack = if g.stack_id.is_none() { RawStack::Lost } else { RawStack::Frames(ips) };
        let (user_stack, kernel_stack) = if user { (stack, RawStack::None) } else { (RawStack::None, stack) };
        let tgid = if user && g.tgid == 0 { default_pid } else { g.tgid };
        samples.push(raw_sample(tgid, user_stack, kernel_stack));
    }
    let (profile, _) = symbolizer.profile(&samples, &modules);
    Ok(profile.stacks.iter().map(|s| s.frames.iter().rev().map(|f| f.name.to_string()).collect()).collect())
}

fn raw_sample(tgid: u32, user: RawStack, kernel: RawStack) -> RawSample {
    RawSample {
        tgid,
        tid: tgid,
        comm: String::new(),
        process: String::new(),
        user,
        kernel,
        count: 1,
        kind: SampleKind::OnCpu,
        user_end: StackEnd::Complete,
        interpreted: Vec::new(),
    }
}
