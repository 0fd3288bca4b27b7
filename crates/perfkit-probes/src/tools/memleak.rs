//! memleak: allocations made and not yet freed, by stack, as bcc's memleak
//! finds them.
//!
//! - **User mode** ([`MemleakMode::User`]): a uprobe and a uretprobe on each
//!   allocator function of the allocator object (libc by default:
//!   `malloc`, `calloc`, `realloc`, `posix_memalign`, `aligned_alloc`,
//!   `memalign`, `valloc`, `pvalloc`, `mmap`; `free` and `munmap` remove),
//!   those the object has. Stacks are walked by frame pointers
//!   (`bpf_get_stackid`), as bcc's are.
//! - **Kernel mode** ([`MemleakMode::Kernel`]): the `kmem` tracepoints
//!   (`kmalloc`, `kmalloc_node`, `kmem_cache_alloc`, `kmem_cache_alloc_node`,
//!   `kfree`, `kmem_cache_free`, `mm_page_alloc`, `mm_page_free`), with
//!   their fields' offsets read from tracefs (they moved between kernels).
//!
//! Both read the outstanding allocations ([`Allocation`]s) or, as bcc's
//! `--combined-only`, each stack's totals kept in the kernel
//! ([`StackTotal`]s), and the stacks' raw frames ([`Memleak::stack`]).

use std::{
    collections::{BTreeMap, HashSet},
    io::{self, Write},
    time::Duration,
};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, StackTraceMap};
use perfkit_probes_common::memleak::{
    self as abi, AllocInfo, AllocKey, Combined, MemleakConfig as Abi, MemleakStats, NO_STACK, PAGE_TGID,
};

use perfkit_model::printable;
use serde::Serialize;

use super::{
    Globals, Probe, ProbeSpec, ProbeTarget, Resolver, SpecError, ToolStats,
    text::SCHEMA_VERSION,
    tracefs,
    ufunc::{UprobeLink, attach_uprobe},
};
use crate::{ProbeError, Selection};

/// What memleak watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemleakMode {
    /// A user allocator, in the processes of the selection.
    User {
        /// The allocator object: a path or a library name as
        /// [`Resolver`] finds it (`c`: the libc).
        object: String,
        /// The process whose mappings name the object (else the loader's
        /// directories are searched).
        pid: Option<u32>,
        /// The dynamic loader's directories.
        library_dirs: Vec<std::path::PathBuf>,
    },
    /// The kernel's allocations (`kmem` tracepoints), machine-wide.
    #[default]
    Kernel,
}

/// What memleak records.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemleakConfig {
    /// User allocator or kernel.
    pub mode: MemleakMode,
    /// User mode: the processes whose allocations count (`None`: every
    /// process using the object).
    pub selection: Option<Selection>,
    /// Allocations smaller than this are not recorded (bcc's `-z`).
    pub min_size: u64,
    /// Allocations larger than this are not recorded (bcc's `-Z`).
    pub max_size: u64,
    /// Record one allocation in this many, on each CPU (bcc's `-s`).
    pub sample_every: u64,
}

impl Default for MemleakConfig {
    fn default() -> Self {
        Self { mode: MemleakMode::Kernel, selection: None, min_size: 0, max_size: u64::MAX, sample_every: 1 }
    }
}

/// One outstanding allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Allocation {
    /// The process (0: the kernel).
    pub tgid: u32,
    /// The thread that made it.
    pub tid: u32,
    /// Its address (kernel pages: the page's address in the kernel's
    /// direct map is not known; this is the page frame number).
    pub addr: u64,
    /// Whether it is a kernel page (and `addr` a page frame number).
    pub page: bool,
    /// Bytes.
    pub size: u64,
    /// How long ago it was made.
    pub age: Duration,
    /// Its stack's id ([`Memleak::stack`]), `None` when it was lost.
    pub stack_id: Option<u32>,
}

/// Outstanding bytes and allocations of one stack, kept in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackTotal {
    /// The stack's id, `None` for allocations whose stack was lost.
    pub stack_id: Option<u32>,
    /// Outstanding bytes.
    pub bytes: u64,
    /// Outstanding allocations.
    pub count: u64,
}

/// The user allocator functions memleak attaches to, with the programs
/// for their entry and return: `(name, entry, exit)`.
const USER_FUNCTIONS: [(&str, &str, Option<&str>); 11] = [
    ("malloc", abi::MALLOC_ENTER, Some(abi::ALLOC_EXIT)),
    ("calloc", abi::CALLOC_ENTER, Some(abi::ALLOC_EXIT)),
    ("realloc", abi::REALLOC_ENTER, Some(abi::ALLOC_EXIT)),
    ("posix_memalign", abi::POSIX_MEMALIGN_ENTER, Some(abi::POSIX_MEMALIGN_EXIT)),
    ("aligned_alloc", abi::MEMALIGN_ENTER, Some(abi::ALLOC_EXIT)),
    ("memalign", abi::MEMALIGN_ENTER, Some(abi::ALLOC_EXIT)),
    ("valloc", abi::MALLOC_ENTER, Some(abi::ALLOC_EXIT)),
    ("pvalloc", abi::MALLOC_ENTER, Some(abi::ALLOC_EXIT)),
    ("mmap", abi::MMAP_ENTER, Some(abi::MMAP_EXIT)),
    ("free", abi::FREE_ENTER, None),
    ("munmap", abi::MUNMAP_ENTER, None),
];

/// Functions an allocator object must have.
const REQUIRED: [&str; 2] = ["malloc", "free"];

/// Outstanding allocations by stack (bcc's memleak).
#[derive(Debug)]
pub struct Memleak {
    // Detached (closed) before the object is dropped.
    links: Vec<UprobeLink>,
    probe: Probe,
    kernel: bool,
    functions: Vec<String>,
}

impl Memleak {
    /// Resolves the allocator functions (user mode) or the tracepoints'
    /// fields (kernel mode), loads and attaches.
    pub fn start(config: MemleakConfig) -> Result<Self, ProbeError> {
        if config.min_size > config.max_size {
            return Err(ProbeError::InvalidConfig(format!(
                "the smallest size ({}) is above the largest ({})",
                config.min_size, config.max_size
            )));
        }
        let mut abi = Abi {
            min_size: config.min_size,
            max_size: config.max_size,
            sample_every: config.sample_every.max(1),
            ..Abi::default()
        };
        let keep = vec![abi::ALLOCS, abi::COMBINED, abi::STACKS, abi::SIZES, abi::MEMPTRS];
        match config.mode {
            MemleakMode::Kernel => {
                kernel_fields(&mut abi)?;
                let mut probe = load(None, &abi, keep)?;
                let mut functions = Vec::new();
                for (program, name) in [
                    (abi::KMALLOC, "kmalloc"),
                    (abi::CACHE_ALLOC, "kmem_cache_alloc"),
                    (abi::KFREE, "kfree"),
                    (abi::CACHE_FREE, "kmem_cache_free"),
                    (abi::PAGE_ALLOC, "mm_page_alloc"),
                    (abi::PAGE_FREE, "mm_page_free"),
                ] {
                    probe.attach_tp(program, "kmem", name)?;
                    functions.push(format!("kmem:{name}"));
                }
                // The _node variants (until 6.2) share their base's layout
                // (checked in `kernel_fields`).
                for (program, name) in [(abi::KMALLOC, "kmalloc_node"), (abi::CACHE_ALLOC, "kmem_cache_alloc_node")] {
                    if tracefs::root()?.join("events/kmem").join(name).is_dir() {
                        probe.attach_tp(program, "kmem", name)?;
                        functions.push(format!("kmem:{name}"));
                    }
                }
                Ok(Self { links: Vec::new(), probe, kernel: true, functions })
            }
            MemleakMode::User { object, pid, library_dirs } => {
                let resolver = Resolver::new(pid, library_dirs);
                let mut resolved = Vec::new();
                let mut seen = HashSet::new();
                for (name, entry, exit) in USER_FUNCTIONS {
                    let spec = ProbeSpec::Uprobe { file: object.clone(), function: name.to_owned() };
                    let probes = match resolver.resolve(&spec) {
                        Ok(p) => p,
                        Err(SpecError::NoMatch(_)) if !REQUIRED.contains(&name) => continue,
                        Err(e) => {
                            return Err(ProbeError::InvalidConfig(format!("the allocator {object}: {e}")));
                        }
                    };
                    for p in probes {
                        // Aliases (glibc's memalign is aligned_alloc): one
                        // probe per address.
                        let Some((path, offset)) = p.file_offset() else { continue };
                        if seen.insert((path.to_owned(), offset)) {
                            resolved.push((name, entry, exit, p));
                        }
                    }
                }
                let mut probe = load(config.selection, &abi, keep)?;
                let mut links = Vec::new();
                let mut functions = Vec::new();
                for (name, entry, exit, p) in &resolved {
                    debug_assert!(matches!(p.target, ProbeTarget::Uprobe { .. }));
                    // The return probe first: an entry without its return
                    // would leave a size behind.
                    if let Some(exit) = exit {
                        links.push(attach_uprobe(&mut probe, exit, p, true)?);
                    }
                    links.push(attach_uprobe(&mut probe, entry, p, false)?);
                    functions.push((*name).to_owned());
                }
                Ok(Self { links, probe, kernel: false, functions })
            }
        }
    }

    /// Whether this watches the kernel's allocations.
    pub fn kernel(&self) -> bool {
        self.kernel
    }

    /// The functions or tracepoints attached.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// Uprobes attached.
    pub fn uprobes(&self) -> usize {
        self.links.len()
    }

    /// Every outstanding allocation recorded.
    pub fn allocations(&self) -> Result<Vec<Allocation>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: abi::ALLOCS, source };
        let map: BpfHashMap<&MapData, AllocKey, AllocInfo> =
            BpfHashMap::try_from(self.probe.map(abi::ALLOCS)?).map_err(map_err)?;
        let now = monotonic_ns();
        let mut out = Vec::new();
        for item in map.iter() {
            // An entry removed while the map is walked ends the walk of
            // its bucket with ENOENT: what was read stays.
            let Ok((key, info)) = item else { continue };
            out.push(Allocation {
                tgid: if key.tgid == PAGE_TGID { 0 } else { key.tgid },
                tid: info.tid,
                addr: key.addr,
                page: key.tgid == PAGE_TGID,
                size: info.size,
                age: Duration::from_nanos(now.saturating_sub(info.time_ns)),
                stack_id: stack_id(info.stack_id),
            });
        }
        Ok(out)
    }

    /// Each stack's outstanding bytes and allocations, as the kernel side
    /// keeps them (bcc's `--combined-only`); stacks with none left are
    /// left out.
    pub fn combined(&self) -> Result<Vec<StackTotal>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: abi::COMBINED, source };
        let map: BpfHashMap<&MapData, u64, Combined> =
            BpfHashMap::try_from(self.probe.map(abi::COMBINED)?).map_err(map_err)?;
        let mut out = Vec::new();
        for item in map.iter() {
            let Ok((id, c)) = item else { continue };
            // Counts wrap below zero only while a free and its allocation
            // race on two CPUs: nothing outstanding.
            if c.count == 0 || c.count > i64::MAX as u64 {
                continue;
            }
            out.push(StackTotal { stack_id: stack_id(id), bytes: c.bytes, count: c.count });
        }
        Ok(out)
    }

    /// A stack's frames, innermost first (user addresses of the
    /// allocating process in user mode, kernel addresses in kernel mode).
    pub fn stack(&self, id: u32) -> Result<Vec<u64>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: abi::STACKS, source };
        let map: StackTraceMap<&MapData> = StackTraceMap::try_from(self.probe.map(abi::STACKS)?).map_err(map_err)?;
        match map.get(&id, 0) {
            Ok(trace) => Ok(trace.frames().iter().map(|f| f.ip).filter(|&ip| ip != 0).collect()),
            Err(aya::maps::MapError::KeyNotFound) => Ok(Vec::new()),
            Err(source) => Err(map_err(source)),
        }
    }

    /// memleak's own counters since the start.
    pub fn memleak_stats(&self) -> Result<MemleakStats, ProbeError> {
        let map_err = |source| ProbeError::Map { map: abi::STATS, source };
        let stats: PerCpuArray<&MapData, MemleakStats> =
            PerCpuArray::try_from(self.probe.map(abi::STATS)?).map_err(map_err)?;
        let mut total = MemleakStats::default();
        for cpu in stats.get(&0, 0).map_err(map_err)?.iter() {
            total.merge(cpu);
        }
        Ok(total)
    }

    /// The counters as every tool has them: events are allocations and
    /// frees recorded; starts lost, allocations lost to a full map of
    /// threads; updates lost, allocations lost to a full map of
    /// allocations or of stack totals.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        let s = self.memleak_stats()?;
        Ok(ToolStats {
            events: s.allocs.saturating_add(s.frees),
            starts_lost: s.sizes_lost,
            updates_lost: s.allocs_lost.saturating_add(s.combined_lost),
            ..ToolStats::default()
        })
    }
}

fn stack_id(raw: u64) -> Option<u32> {
    (raw != NO_STACK).then_some(raw as u32)
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`, in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// The kmem tracepoints' field offsets, from tracefs.
fn kernel_fields(abi: &mut Abi) -> Result<(), ProbeError> {
    let kmalloc = tracefs::fields("kmem", "kmalloc")?;
    let cache_alloc = tracefs::fields("kmem", "kmem_cache_alloc")?;
    let kfree = tracefs::fields("kmem", "kfree")?;
    let cache_free = tracefs::fields("kmem", "kmem_cache_free")?;
    let page_alloc = tracefs::fields("kmem", "mm_page_alloc")?;
    let page_free = tracefs::fields("kmem", "mm_page_free")?;
    abi.kmalloc_ptr = tracefs::offset(&kmalloc, "kmalloc", "ptr")?;
    abi.kmalloc_bytes = tracefs::offset(&kmalloc, "kmalloc", "bytes_alloc")?;
    abi.cache_alloc_ptr = tracefs::offset(&cache_alloc, "kmem_cache_alloc", "ptr")?;
    abi.cache_alloc_bytes = tracefs::offset(&cache_alloc, "kmem_cache_alloc", "bytes_alloc")?;
    abi.kfree_ptr = tracefs::offset(&kfree, "kfree", "ptr")?;
    abi.cache_free_ptr = tracefs::offset(&cache_free, "kmem_cache_free", "ptr")?;
    abi.page_alloc_pfn = tracefs::offset(&page_alloc, "mm_page_alloc", "pfn")?;
    abi.page_alloc_order = tracefs::offset(&page_alloc, "mm_page_alloc", "order")?;
    abi.page_free_pfn = tracefs::offset(&page_free, "mm_page_free", "pfn")?;
    abi.page_free_order = tracefs::offset(&page_free, "mm_page_free", "order")?;
    // One program serves kmalloc and kmalloc_node (until 6.2, when they
    // merged): their layouts must agree.
    for (base, node, ptr, bytes) in [
        ("kmalloc", "kmalloc_node", abi.kmalloc_ptr, abi.kmalloc_bytes),
        ("kmem_cache_alloc", "kmem_cache_alloc_node", abi.cache_alloc_ptr, abi.cache_alloc_bytes),
    ] {
        if let Ok(f) = tracefs::fields("kmem", node)
            && (tracefs::offset(&f, node, "ptr")? != ptr || tracefs::offset(&f, node, "bytes_alloc")? != bytes)
        {
            return Err(ProbeError::Tracefs(format!("kmem:{node}'s layout differs from kmem:{base}'s")));
        }
    }
    Ok(())
}

fn load(selection: Option<Selection>, abi: &Abi, keep: Vec<&'static str>) -> Result<Probe, ProbeError> {
    Probe::load_with(
        // No TOOL_STATS slot: memleak keeps its own counters.
        u32::MAX,
        Globals { selection, config: Default::default(), keep },
        &[(abi::CONFIG, &super::tcpconn::bytes_of(abi))],
    )
}

/// One stack's outstanding allocations, as memleak reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackGroup {
    /// The process (0 when not known: the kernel, or `--combined-only`).
    pub tgid: u32,
    /// The stack, `None` when it was lost.
    pub stack_id: Option<u32>,
    /// Outstanding bytes.
    pub bytes: u64,
    /// Outstanding allocations.
    pub count: u64,
    /// The oldest's age (`None` from the kernel's totals, which keep none).
    pub oldest: Option<Duration>,
}

impl StackGroup {
    /// `allocations` by process and stack.
    pub fn from_allocations(allocations: &[Allocation]) -> Vec<StackGroup> {
        let mut by: BTreeMap<(u32, Option<u32>), StackGroup> = BTreeMap::new();
        for a in allocations {
            let g = by.entry((a.tgid, a.stack_id)).or_insert(StackGroup {
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
    }

    /// The kernel's totals by stack ([`Memleak::combined`]).
    pub fn from_totals(totals: &[StackTotal]) -> Vec<StackGroup> {
        totals
            .iter()
            .map(|t| StackGroup { tgid: 0, stack_id: t.stack_id, bytes: t.bytes, count: t.count, oldest: None })
            .collect()
    }

    /// The `top` biggest groups, biggest first (ties: the oldest first).
    pub fn top(mut groups: Vec<StackGroup>, top: usize) -> Vec<StackGroup> {
        groups.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.oldest.cmp(&a.oldest)));
        groups.truncate(top);
        groups
    }
}

/// Sorts allocations oldest first (ties by address), as memleak `-a`
/// lists them.
pub fn oldest_first(allocations: &mut [Allocation]) {
    allocations.sort_by(|a, b| b.age.cmp(&a.age).then(a.addr.cmp(&b.addr)));
}

/// Writes an interval as bcc's memleak: the allocations (`-a`, if given),
/// then each group's bytes, count and frames (innermost first), under a
/// heading with the clock time `clock`.
pub fn write_memleak(
    out: &mut dyn Write,
    allocations: Option<&[Allocation]>,
    groups: &[StackGroup],
    frames: &[Vec<String>],
    clock: &str,
) -> io::Result<()> {
    for a in allocations.unwrap_or_default() {
        writeln!(
            out,
            "\t{} = {:x} size = {} age = {}ms",
            if a.page { "pfn" } else { "addr" },
            a.addr,
            a.size,
            a.age.as_millis()
        )?;
    }
    writeln!(out, "[{clock}] Top {} stacks with outstanding allocations:", groups.len())?;
    for (g, f) in groups.iter().zip(frames) {
        writeln!(out, "\t{} bytes in {} allocations from stack", g.bytes, g.count)?;
        for name in f {
            writeln!(out, "\t\t{}", printable(name))?;
        }
    }
    Ok(())
}

/// A group of [`MemleakReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackGroupJson<'a> {
    /// Outstanding allocations.
    pub allocations: u64,
    /// Frames, innermost first.
    pub frames: &'a [String],
    /// The oldest's age, milliseconds.
    pub oldest_age_ms: Option<u64>,
    /// Outstanding bytes.
    pub outstanding_bytes: u64,
    /// The process, if known.
    pub pid: Option<u32>,
    /// The stack.
    pub stack_id: Option<u32>,
}

impl<'a> StackGroupJson<'a> {
    /// `g` with its `frames`; its process shown if `with_pid`.
    pub fn new(g: &StackGroup, frames: &'a [String], with_pid: bool) -> Self {
        Self {
            allocations: g.count,
            frames,
            oldest_age_ms: g.oldest.map(|d| d.as_millis() as u64),
            outstanding_bytes: g.bytes,
            pid: with_pid.then_some(g.tgid),
            stack_id: g.stack_id,
        }
    }
}

/// An allocation of [`MemleakReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AllocationJson {
    /// Its address (`0x...`), or a kernel page's frame number.
    pub address: String,
    /// Its age, milliseconds.
    pub age_ms: u64,
    /// A kernel page.
    pub page_frame: bool,
    /// The process.
    pub pid: u32,
    /// Bytes.
    pub size_bytes: u64,
    /// Its stack.
    pub stack_id: Option<u32>,
    /// The thread.
    pub tid: u32,
}

impl From<&Allocation> for AllocationJson {
    fn from(a: &Allocation) -> Self {
        Self {
            address: format!("{:#x}", a.addr),
            age_ms: a.age.as_millis() as u64,
            page_frame: a.page,
            pid: a.tgid,
            size_bytes: a.size,
            stack_id: a.stack_id,
            tid: a.tid,
        }
    }
}

/// memleak's counters in JSON: what was recorded, and what could not be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemleakCountersJson {
    /// Allocations lost: the allocations map was full.
    pub allocations_lost_map_full: u64,
    /// Allocations lost: the threads' map was full.
    pub allocations_lost_threads_map_full: u64,
    /// Allocations recorded.
    pub allocations_recorded: u64,
    /// Allocations that replaced one whose free was missed.
    pub allocations_replaced_missing_free: u64,
    /// Allocations skipped (sampling, sizes).
    pub allocations_skipped: u64,
    /// Allocations whose stack was lost.
    pub allocations_without_stack: u64,
    /// Combined totals lost: their map was full.
    pub combined_lost_map_full: u64,
    /// Frees recorded.
    pub frees_recorded: u64,
}

impl From<&MemleakStats> for MemleakCountersJson {
    fn from(s: &MemleakStats) -> Self {
        Self {
            allocations_lost_map_full: s.allocs_lost,
            allocations_lost_threads_map_full: s.sizes_lost,
            allocations_recorded: s.allocs,
            allocations_replaced_missing_free: s.replaced,
            allocations_skipped: s.skipped,
            allocations_without_stack: s.stacks_lost,
            combined_lost_map_full: s.combined_lost,
            frees_recorded: s.frees,
        }
    }
}

/// One interval of memleak as a JSON document (docs/JSON.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemleakReport<'a> {
    /// The counters since the start.
    pub counters: MemleakCountersJson,
    /// Seconds between reports.
    pub interval_seconds: f64,
    /// `user` or `kernel`.
    pub mode: &'static str,
    /// Allocations younger than this are left out (`None` with the
    /// kernel's totals).
    pub older_than_ms: Option<u64>,
    /// The allocations (`-a`), oldest first.
    pub outstanding_allocations: Option<Vec<AllocationJson>>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The groups, biggest first.
    pub stacks: Vec<StackGroupJson<'a>>,
    /// When (RFC 3339).
    pub time: String,
    /// `memleak`.
    pub tool: &'static str,
}

impl<'a> MemleakReport<'a> {
    /// The report at `time` of a `user` (or kernel) memleak.
    pub fn new(
        time: String,
        user: bool,
        interval: Duration,
        older_than_ms: Option<u64>,
        stacks: Vec<StackGroupJson<'a>>,
        allocations: Option<&[Allocation]>,
        counters: &MemleakStats,
    ) -> Self {
        Self {
            counters: counters.into(),
            interval_seconds: interval.as_secs_f64(),
            mode: if user { "user" } else { "kernel" },
            older_than_ms,
            outstanding_allocations: allocations.map(|a| a.iter().map(AllocationJson::from).collect()),
            schema_version: SCHEMA_VERSION,
            stacks,
            time,
            tool: "memleak",
        }
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;

    fn alloc(tgid: u32, stack_id: Option<u32>, size: u64, age_ms: u64, addr: u64) -> Allocation {
        Allocation { tgid, tid: tgid, addr, page: false, size, age: Duration::from_millis(age_ms), stack_id }
    }

    #[test]
    fn groups_by_process_and_stack_biggest_first() {
        let mut allocs =
            vec![alloc(1, Some(7), 100, 50, 0x10), alloc(1, Some(7), 300, 900, 0x20), alloc(2, None, 1000, 10, 0x30)];
        let groups = StackGroup::top(StackGroup::from_allocations(&allocs), 10);
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].tgid, groups[0].bytes, groups[0].count), (2, 1000, 1));
        assert_eq!((groups[1].bytes, groups[1].count, groups[1].oldest), (400, 2, Some(Duration::from_millis(900))));
        assert_eq!(StackGroup::top(groups.clone(), 1).len(), 1);
        oldest_first(&mut allocs);
        assert_eq!(allocs[0].addr, 0x20);

        let frames = [vec!["leak".to_owned(), "main".to_owned()], vec![]];
        let mut out = Vec::new();
        write_memleak(&mut out, Some(&allocs[..1]), &groups[1..], &frames[..1], "10:00:00").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\taddr = 20 size = 300 age = 900ms\n[10:00:00] Top 1 stacks with outstanding allocations:\n\
             \t400 bytes in 2 allocations from stack\n\t\tleak\n\t\tmain\n"
        );
        let stacks = vec![StackGroupJson::new(&groups[1], &frames[0], true)];
        let doc = MemleakReport::new(
            "T".into(),
            true,
            Duration::from_secs(5),
            Some(500),
            stacks,
            Some(&allocs[..1]),
            &MemleakStats::default(),
        );
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"counters":{"allocations_lost_map_full":0,"allocations_lost_threads_map_full":0,"allocations_recorded":0,"allocations_replaced_missing_free":0,"allocations_skipped":0,"allocations_without_stack":0,"combined_lost_map_full":0,"frees_recorded":0},"interval_seconds":5.0,"mode":"user","older_than_ms":500,"outstanding_allocations":[{"address":"0x20","age_ms":900,"page_frame":false,"pid":1,"size_bytes":300,"stack_id":7,"tid":1}],"schema_version":2,"stacks":[{"allocations":2,"frames":["leak","main"],"oldest_age_ms":900,"outstanding_bytes":400,"pid":1,"stack_id":7}],"time":"T","tool":"memleak"}"#
        );
    }
}
