//! `memleak`: bcc's memleak (`perfkit_probes::tools::Memleak`): allocations
//! made and not yet freed, by stack, every interval; a user allocator with
//! `-p PID` or `-c COMMAND`, the kernel's otherwise.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    io::Write,
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::Args;
use perfkit_model::raw::{RawSample, RawStack, SampleKind, StackEnd};
use perfkit_probes::tools::{
    Memleak, MemleakConfig, MemleakMode, MemleakStats,
    run::{Schedule, memleak_losses, run_intervals},
    text::SCHEMA_VERSION,
};
use perfkit_symbols::{SymbolizeOptions, Symbolizer};
use perfkit_target::{MapsTracker, Modules};
use serde_json::json;

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

/// One stack's outstanding allocations.
struct Group {
    tgid: u32,
    stack_id: Option<u32>,
    bytes: u64,
    count: u64,
    oldest: Option<Duration>,
}

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

fn stats_json(s: &MemleakStats) -> serde_json::Value {
    json!({
        "allocations_recorded": s.allocs,
        "frees_recorded": s.frees,
        "allocations_lost_map_full": s.allocs_lost,
        "allocations_lost_threads_map_full": s.sizes_lost,
        "allocations_without_stack": s.stacks_lost,
        "combined_lost_map_full": s.combined_lost,
        "allocations_replaced_missing_free": s.replaced,
        "allocations_skipped": s.skipped,
    })
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
    let mut groups: Vec<Group> = if args.combined_only {
        tool.combined()?
            .into_iter()
            .map(|t| Group { tgid: 0, stack_id: t.stack_id, bytes: t.bytes, count: t.count, oldest: None })
            .collect()
    } else {
        allocations = tool.allocations()?;
        allocations.retain(|a| a.age >= older);
        let mut by: BTreeMap<(u32, Option<u32>), Group> = BTreeMap::new();
        for a in &allocations {
            let g = by.entry((a.tgid, a.stack_id)).or_insert(Group {
                tgid: a.tgid,
                stack_id: a.stack_id,
                bytes: 0,
                count: 0,
                oldest: None,
            });
            g.bytes = g.bytes.saturating_add(a.size);
            g.count += 1;
            g.oldest = Some(g.oldest.map_or(a.age, |o| o.max(a.age)));
        }
        by.into_values().collect()
    };
    // The biggest first; ties by the oldest.
    groups.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.oldest.cmp(&a.oldest)));
    groups.truncate(usize::try_from(args.top).unwrap_or(usize::MAX));
    // In combined mode stacks carry no process: in user mode they belong to
    // the watched processes, whose mappings symbolize them.
    let frames = symbolize(tool, symbolizer, trackers, &groups, user)?;
    // Oldest first.
    allocations.sort_by(|a, b| b.age.cmp(&a.age).then(a.addr.cmp(&b.addr)));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.reporting.json {
        let doc = json!({
            "schema_version": SCHEMA_VERSION,
            "tool": "memleak",
            "time": crate::clock::now_rfc3339(),
            "mode": if user { "user" } else { "kernel" },
            "interval_seconds": args.reporting.interval.unwrap_or(DEFAULT_INTERVAL).as_secs_f64(),
            "older_than_ms": if args.combined_only { None } else { Some(args.older) },
            "stacks": groups.iter().zip(&frames).map(|(g, f)| json!({
                "pid": if user && !args.combined_only { Some(g.tgid) } else { None },
                "stack_id": g.stack_id,
                "outstanding_bytes": g.bytes,
                "allocations": g.count,
                "oldest_age_ms": g.oldest.map(|d| d.as_millis() as u64),
                "frames": f,
            })).collect::<Vec<_>>(),
            "outstanding_allocations": if args.show_allocs {
                Some(allocations.iter().map(|a| json!({
                    "pid": a.tgid,
                    "tid": a.tid,
                    "address": format!("{:#x}", a.addr),
                    "page_frame": a.page,
                    "size_bytes": a.size,
                    "age_ms": a.age.as_millis() as u64,
                    "stack_id": a.stack_id,
                })).collect::<Vec<_>>())
            } else {
                None
            },
            "counters": stats_json(&tool.memleak_stats()?),
        });
        writeln!(out, "{doc}")?;
        out.flush()?;
        return Ok(());
    }
    if args.reporting.timestamp {
        writeln!(out, "{}", crate::clock::now_hms())?;
    }
    if args.show_allocs {
        for a in &allocations {
            writeln!(
                out,
                "\t{} = {:x} size = {} age = {}ms",
                if a.page { "pfn" } else { "addr" },
                a.addr,
                a.size,
                a.age.as_millis()
            )?;
        }
    }
    writeln!(out, "[{}] Top {} stacks with outstanding allocations:", crate::clock::now_hms(), groups.len())?;
    for (g, f) in groups.iter().zip(&frames) {
        writeln!(out, "\t{} bytes in {} allocations from stack", g.bytes, g.count)?;
        for name in f {
            writeln!(out, "\t\t{}", perfkit_model::printable(name))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Each group's frames, innermost first.
fn symbolize(
    tool: &Memleak,
    symbolizer: &Symbolizer,
    trackers: &HashMap<u32, MapsTracker>,
    groups: &[Group],
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
