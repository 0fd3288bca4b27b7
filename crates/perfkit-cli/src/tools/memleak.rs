//! `memleak`: bcc's memleak (`perfkit_probes::tools::Memleak`, run and
//! symbolized by `perfkit_profiler::stack_tools::memleak`): allocations
//! made and not yet freed, by stack, every interval; a user allocator with
//! `-p PID` or `-c COMMAND`, the kernel's otherwise.

use std::{ffi::OsString, process::ExitCode, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;
use perfkit_probes::tools::{Memleak, MemleakConfig, MemleakMode};
use perfkit_profiler::stack_tools::{self, MemleakView};

use super::{Reporting, ToolTarget, run};
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
    let watch = args.target.watch()?;
    let mut pids: Vec<u32> = Vec::new();
    if user {
        pids.extend(args.target.pid.iter().flat_map(|IdList(p)| p));
        pids.extend(watch.command_pid());
    }
    let view = MemleakView {
        show_allocs: args.show_allocs,
        older: Duration::from_millis(args.older),
        combined_only: args.combined_only,
        top: usize::try_from(args.top).unwrap_or(usize::MAX),
        json: args.reporting.json,
        timestamp: args.reporting.timestamp,
        interval: args.reporting.interval.unwrap_or(MemleakView::default().interval),
        count: args.reporting.count,
    };
    let start = |selection| {
        let mut config = MemleakConfig::default();
        config.min_size = args.min_size.unwrap_or(0);
        config.max_size = args.max_size.unwrap_or(u64::MAX);
        config.sample_every = args.sample_rate;
        if user {
            let object = args.obj.clone().unwrap_or_else(|| "c".to_owned());
            let pid = args.target.first_pid();
            config.mode = MemleakMode::User { object, pid, library_dirs: perfkit_profiler::library_dirs() };
            config.selection = selection;
        }
        Memleak::start(config).context("starting memleak")
    };
    let banner = |tool: &Memleak| {
        let functions = tool.functions().join(", ");
        if user {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("Attaching to {functions} in {}, Ctrl+C to quit.", pids.join(","))
        } else {
            format!("Attaching to kernel allocators ({functions}), Ctrl+C to quit.")
        }
    };
    run("memleak", watch, start, banner, |t, d| stack_tools::memleak(t, &pids, user, &view, d))
}
