//! The stack sampler: on-CPU samples and off-CPU time, aggregated per
//! unique stack in the kernel.

use std::{collections::HashMap, fs, time::Duration};

use crate::{
    KernelFeatures, ProbeError, Programs,
    error::{classify, io_errno, libc_errno},
    object,
    tables::{TableLoader, TableStats},
};
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, ProgramArray},
    programs::{
        PerfEvent, RawTracePoint,
        perf_event::{PerfEventConfig, PerfEventLinkId, PerfEventScope, SamplePolicy, SoftwareEvent},
        raw_trace_point::RawTracePointLinkId,
    },
};
use perfkit_model::{
    Truncation,
    raw::{RawSample, RawStack, SampleKind, StackEnd},
};
use perfkit_probes_common::{
    COMM_LEN,
    filter::{FilterConfig, MODE_ALL, MODE_CGROUP, MODE_PROCESSES, MODE_THREADS},
    names,
    sampler::{
        DEFAULT_COUNTS_ENTRIES, DEFAULT_STACK_ENTRIES, END_DEPTH, END_NO_CFI, END_NO_USER, END_PENDING, END_READ,
        END_ROOT, END_UNSUPPORTED, KIND_OFF_CPU, SampleKey, SampleStats, SamplerConfig, StackTrace, UNWIND_FP,
        UNWIND_TABLES,
    },
};
use perfkit_target::Modules;

/// Which tasks to sample.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Every task on the machine, kernel threads included.
    All,
    /// These processes (all their threads), and with `follow_children`
    /// every process they create later.
    Processes {
        /// Process ids.
        pids: Vec<u32>,
        /// Follow descendants (fork, clone, exec), as `perf record` does.
        follow_children: bool,
    },
    /// These threads.
    Threads(Vec<u32>),
    /// The tasks of a cgroup v2 group and the groups below it.
    Cgroup {
        /// The group's id (its directory's inode number).
        id: u64,
        /// Its depth below the root (the root is 0).
        level: u32,
    },
}

/// How user stacks are walked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserStacks {
    /// Unwind tables compiled from each file's DWARF CFI, frame pointers
    /// where a file has none: complete stacks without frame pointers.
    #[default]
    Tables,
    /// Frame pointers only.
    FramePointers,
}

/// Off-CPU time: what to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffCpu {
    /// Blocks shorter than this are left out.
    pub min_block: Duration,
    /// Blocks longer than this are left out.
    pub max_block: Duration,
    /// Count blocks in interruptible sleep (TASK_INTERRUPTIBLE).
    pub interruptible: bool,
    /// Count blocks in uninterruptible sleep (TASK_UNINTERRUPTIBLE: disk
    /// I/O, some locks).
    pub uninterruptible: bool,
    /// Count time waiting to run again after preemption (run queue).
    pub preempted: bool,
}

impl Default for OffCpu {
    fn default() -> Self {
        Self {
            min_block: Duration::ZERO,
            max_block: Duration::from_secs(u64::MAX / 2_000_000_000),
            interruptible: true,
            uninterruptible: true,
            preempted: false,
        }
    }
}

/// What to sample and how.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StackSamplerConfig {
    /// The tasks.
    pub selection: Selection,
    /// On-CPU samples per second per CPU; `None`: no on-CPU samples.
    pub frequency_hz: Option<u64>,
    /// Off-CPU time; `None`: none.
    pub off_cpu: Option<OffCpu>,
    /// How user stacks are walked.
    pub user_stacks: UserStacks,
    /// Record kernel stacks.
    pub kernel_stacks: bool,
    /// Distinct stacks kept at most (memory is used as stacks appear).
    pub stack_entries: u32,
    /// Distinct (task, names, stacks) counted at most.
    pub counts_entries: u32,
    /// Unwind rows held at most (8 bytes each).
    pub table_rows: u32,
    /// Publish the selected processes' mappings at start (not for a held
    /// command, which is still a copy of its parent until its exec).
    pub publish_selected: bool,
}

/// The smallest default capacity of the unwind rows map: 512 Ki rows,
/// 4 MiB. A 65 MiB Rust binary needs 150 Ki rows, libc 35 Ki.
pub const DEFAULT_TABLE_ROWS: u32 = 1 << 19;

/// The largest default capacity of the unwind rows map: 16 Mi rows, 128 MiB.
pub const MAX_DEFAULT_TABLE_ROWS: u32 = 1 << 24;

/// The default capacity of the unwind rows map, sized from the machine's
/// memory: 1/512 of it (8 bytes a row; the map is allocated whole by the
/// kernel and mapped into perfkit's memory), between 512 Ki rows (4 MiB)
/// and 16 Mi rows (128 MiB). 16 MiB (2 Mi rows) on an 8 GiB machine,
/// enough for a compiler's, a database's and a browser's libraries at once.
pub fn default_table_rows() -> u32 {
    let total = fs::read_to_string("/proc/meminfo").ok().and_then(|t| mem_total_bytes(&t));
    table_rows_for_memory(total.unwrap_or(0))
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn table_rows_for_memory(bytes: u64) -> u32 {
    let rows = bytes / 512 / size_of::<perfkit_probes_common::unwind::Row>() as u64;
    rows.clamp(u64::from(DEFAULT_TABLE_ROWS), u64::from(MAX_DEFAULT_TABLE_ROWS)) as u32
}

impl StackSamplerConfig {
    /// On-CPU sampling of `selection` at 99 Hz with unwind tables and
    /// kernel stacks.
    pub fn new(selection: Selection) -> Self {
        Self {
            selection,
            frequency_hz: Some(99),
            off_cpu: None,
            user_stacks: UserStacks::Tables,
            kernel_stacks: true,
            stack_entries: DEFAULT_STACK_ENTRIES,
            counts_entries: DEFAULT_COUNTS_ENTRIES,
            table_rows: default_table_rows(),
            publish_selected: true,
        }
    }

    fn validate(&self) -> Result<(), ProbeError> {
        let invalid = |msg: &str| Err(ProbeError::InvalidConfig(msg.to_owned()));
        match &self.selection {
            Selection::Processes { pids, .. } if pids.is_empty() || pids.contains(&0) => {
                return invalid("process ids must be given, and not 0");
            }
            Selection::Threads(tids) if tids.is_empty() || tids.contains(&0) => {
                return invalid("thread ids must be given, and not 0");
            }
            _ => {}
        }
        if self.frequency_hz.is_none() && self.off_cpu.is_none() {
            return invalid("nothing to sample: give a frequency, off-CPU time, or both");
        }
        if self.frequency_hz == Some(0) {
            return invalid("the sampling frequency must be at least 1 Hz");
        }
        if self.stack_entries == 0 || self.counts_entries == 0 || self.table_rows == 0 {
            return invalid("map sizes must be at least 1");
        }
        if let Some(hz) = self.frequency_hz
            && let Some(max) = max_sample_rate()
            && hz > max
        {
            return Err(ProbeError::FrequencyTooHigh { hz, max });
        }
        Ok(())
    }
}

pub(crate) fn max_sample_rate() -> Option<u64> {
    fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").ok()?.trim().parse().ok()
}

/// Everything a run aggregated.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RawProfile {
    /// Unique stacks with their counts, in no particular order.
    pub samples: Vec<RawSample>,
    /// Counters summed over CPUs.
    pub stats: SampleStats,
    /// The files user frames are encoded against, and each process's
    /// mappings.
    pub modules: Modules,
    /// What the unwind table loader did.
    pub tables: TableStats,
    /// Bytes read from the kernel's maps at the end (counts and stacks).
    pub bytes_read: u64,
    /// Walks that met a mapping or table not known yet, finished in user
    /// space (or not).
    pub late: crate::late::LateStats,
}

/// A running stack sampler. Sampling starts in [`start`](Self::start) and
/// stops in [`finish`](Self::finish), or when the sampler is dropped.
pub struct StackSampler {
    ebpf: Ebpf,
    /// The program variants this kernel runs.
    programs: Programs,
    perf_links: Vec<PerfEventLinkId>,
    tp_links: Vec<(&'static str, RawTracePointLinkId)>,
    tables: Option<TableLoader>,
    /// Reads the walks to finish in user space while sampling runs.
    late: Option<crate::late::Drainer>,
}

impl std::fmt::Debug for StackSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSampler").field("cpus", &self.perf_links.len()).finish_non_exhaustive()
    }
}

impl StackSampler {
    /// Loads the programs, selects the tasks, loads the unwind tables of
    /// the selected processes' files, and starts sampling.
    pub fn start(config: &StackSamplerConfig) -> Result<Self, ProbeError> {
        config.validate()?;
        if let Some(missing) = crate::privileges::missing_for_bpf() {
            return Err(ProbeError::PermissionDenied { what: "loading BPF programs", missing });
        }
        let offsets = crate::btf::kernel_offsets()?;
        let features = KernelFeatures::detect()?;
        let programs = features.programs();
        let filter = filter_config(&config.selection);
        let off = config.off_cpu.unwrap_or_default();
        let states =
            u32::from(off.interruptible) | (u32::from(off.uninterruptible) << 1) | (u32::from(off.preempted) << 2);
        let sampler = SamplerConfig {
            unwind: match config.user_stacks {
                UserStacks::Tables => UNWIND_TABLES,
                UserStacks::FramePointers => UNWIND_FP,
            },
            kernel_stacks: u32::from(config.kernel_stacks),
            min_block_ns: off.min_block.as_nanos().min(u64::MAX as u128) as u64,
            max_block_ns: off.max_block.as_nanos().min(u64::MAX as u128) as u64,
            states,
            _pad: 0,
        };
        let mut loader = object::loader();
        loader
            .override_global(names::FILTER, &filter, true)
            .override_global(names::OFFSETS, &offsets, true)
            .override_global(names::SAMPLER, &sampler, true);
        // The tools' maps stay minimal; the sampler's are sized as asked.
        let mut keep = vec![
            names::ROWS,
            names::PROCS,
            names::PAGES,
            names::FILE_STATE,
            names::COUNTS,
            names::STACKS,
            names::REQUESTS,
            names::LATE,
            names::TARGET_TGIDS,
            names::TARGET_TIDS,
        ];
        if config.off_cpu.is_some() {
            keep.push(names::OFF_CPU_START);
        }
        crate::tools::shrink_unused(&mut loader, &keep);
        loader
            .map_max_entries(names::COUNTS, config.counts_entries)
            .map_max_entries(names::STACKS, config.stack_entries)
            .map_max_entries(names::ROWS, config.table_rows);
        let mut ebpf = if features.lazy_hash_maps {
            object::load(&mut loader)?
        } else {
            // perf_event programs take only preallocated hash maps here:
            // sizes left at their defaults become the smaller preallocated
            // ones.
            let defaults = [
                (names::STACKS, DEFAULT_STACK_ENTRIES, config.stack_entries),
                (names::COUNTS, DEFAULT_COUNTS_ENTRIES, config.counts_entries),
            ];
            for (name, size) in crate::compat::PREALLOCATED_SIZES {
                match defaults.iter().find(|(n, ..)| *n == name) {
                    Some((_, default, asked)) if asked != default => {}
                    _ => {
                        loader.map_max_entries(name, size);
                    }
                }
            }
            let names: Vec<&str> = crate::compat::PREALLOCATED_SIZES.iter().map(|(n, _)| *n).collect();
            let patched = object::Patched::preallocating(&names)?;
            object::load_bytes(&mut loader, patched.bytes())?
        };

        // Full per-CPU element caches: no ENOMEM for the first stacks.
        crate::warm::warm(&mut ebpf, names::STACKS, |i| u64::MAX - i, crate::warm::zeroed::<StackTrace>());
        crate::warm::warm(
            &mut ebpf,
            names::COUNTS,
            |i| SampleKey { user_stack: u64::MAX - i, ..crate::warm::zeroed() },
            0u64,
        );

        // The selection.
        object::fill_selection(&mut ebpf, &config.selection)?;

        // Unwind tables: the loader takes the table maps, publishes the
        // selected processes' mappings, and serves the kernel side's
        // requests from its own thread.
        let mut tables = None;
        let mut late = None;
        // Whether the loader alone learns execs and exits from the
        // kernel's side-band events (the whole machine; narrower
        // selections keep the tracepoints as well).
        let mut events_followed = false;
        if config.user_stacks == UserStacks::Tables {
            let mut take = |name: &'static str| object::take_map(&mut ebpf, name);
            let (procs, file_state, pages, rows, requests) = (
                take(names::PROCS)?,
                take(names::FILE_STATE)?,
                take(names::PAGES)?,
                take(names::ROWS)?,
                take(names::REQUESTS)?,
            );
            let rows = match rows {
                aya::maps::Map::Array(d) => d,
                other => return Err(ProbeError::Load(format!("unexpected map type {other:?}").into())),
            };
            let requests = aya::maps::RingBuf::try_from(requests)
                .map_err(|source| ProbeError::Map { map: names::REQUESTS, source })?;
            let mut loader = TableLoader::new(procs, file_state, pages, rows, config.table_rows)
                .map_err(|e| ProbeError::Load(e.into()))?;
            match &config.selection {
                _ if !config.publish_selected => {}
                Selection::Processes { pids, .. } => pids.iter().for_each(|&p| loader.publish(p)),
                Selection::Threads(tids) => {
                    for &tid in tids {
                        if let Some(tgid) = perfkit_target::process_of_thread(tid) {
                            loader.publish(tgid);
                        }
                    }
                }
                _ => {}
            }
            // The selected processes' tables are ready before the first
            // sample; later files are built in the background.
            loader.wait_built();
            // Processes and mappings are learned from the kernel's events
            // as they happen, for every selection: programs that start
            // and exit while sampling, and libraries loaded by the
            // selected processes, are known before most of their samples
            // arrive. Without the events, mappings are read from /proc on
            // request.
            let events = match event_scope(&config.selection) {
                Ok(scope) => crate::events::TaskEvents::open(scope),
                Err(e) => Err(e),
            };
            let events = match events {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::debug!(%e, "no side-band perf events: mappings read from /proc on request");
                    None
                }
            };
            let whole_machine = matches!(config.selection, Selection::All);
            events_followed = whole_machine && events.is_some();
            loader.serve(requests, events, whole_machine)?;
            // Late walks are finished while sampling too, once their
            // mappings and tables are known: a long run keeps few of them.
            let finish_now = loader.finisher();
            tables = Some(loader);
            let ring = aya::maps::RingBuf::try_from(take(names::LATE)?)
                .map_err(|source| ProbeError::Map { map: names::LATE, source })?;
            late = Some(crate::late::Drainer::start(ring, Some(finish_now))?);
        }

        let mut this = Self { ebpf, programs, perf_links: Vec::new(), tp_links: Vec::new(), tables, late };
        if matches!(config.selection, Selection::Processes { follow_children: true, .. }) {
            this.attach_raw_tp(names::FORK_PROGRAM, "sched_process_fork")?;
        }
        // The exit tracepoint drops an exited process's mappings (and its
        // id from the followed set). With the side-band events the loader
        // drops them at the exit's record instead: the tracepoint fires
        // early in the exit, and the samples taken after it, still in the
        // process (flushing its output, in the kernel's exit path), would
        // find no mappings.
        let follows = matches!(config.selection, Selection::Processes { follow_children: true, .. });
        if (this.tables.is_some() && !events_followed) || follows {
            this.attach_raw_tp(programs.exit, "sched_process_exit")?;
        }
        // The exec tracepoint drops a process's mappings from the kernel
        // side and asks for them again, with every selection: it fires at
        // the end of exec, after the new program's mmaps, whose records
        // the loader reads when woken by that request, so the new
        // program's mappings are published at once and no sample of it is
        // walked with its old program's. (When the loader read each
        // side-band record as it came, it was left out with `-a`: it
        // dropped the mappings just published from those mmaps.)
        if this.tables.is_some() {
            this.attach_raw_tp(names::EXEC_PROGRAM, "sched_process_exec")?;
        }
        if let Some((on_cpu, off_cpu)) = programs.walk_more {
            this.load_walk_continuations(on_cpu, off_cpu)?;
        }
        if config.off_cpu.is_some() {
            this.attach_raw_tp(programs.off_cpu, "sched_switch")?;
        }
        if let Some(hz) = config.frequency_hz {
            this.attach_perf(hz)?;
        }
        tracing::debug!(cpus = this.perf_links.len(), "stack sampler attached");
        Ok(this)
    }

    fn attach_raw_tp(&mut self, program: &'static str, tracepoint: &'static str) -> Result<(), ProbeError> {
        let link = object::attach_raw(&mut self.ebpf, program, tracepoint)?;
        self.tp_links.push((program, link));
        Ok(())
    }

    /// Loads the programs the loopless walks tail-call (kernels without
    /// `bpf_loop`) into their program array.
    fn load_walk_continuations(&mut self, on_cpu: &'static str, off_cpu: &'static str) -> Result<(), ProbeError> {
        let on: &mut PerfEvent = object::program(&mut self.ebpf, on_cpu)?;
        on.load().map_err(object::load_error)?;
        let on = on.fd().map_err(object::load_error)?.try_clone().map_err(|e| ProbeError::Load(Box::new(e)))?;
        let off: &mut RawTracePoint = object::program(&mut self.ebpf, off_cpu)?;
        off.load().map_err(object::load_error)?;
        let off = off.fd().map_err(object::load_error)?.try_clone().map_err(|e| ProbeError::Load(Box::new(e)))?;
        for (map, fd) in [(names::WALK_MORE_ON_CPU, on), (names::WALK_MORE_OFF_CPU, off)] {
            let map_err = |source| ProbeError::Map { map, source };
            let mut jumps = ProgramArray::try_from(object::map_mut(&mut self.ebpf, map)?).map_err(map_err)?;
            jumps.set(0, &fd, 0).map_err(map_err)?;
        }
        Ok(())
    }

    fn attach_perf(&mut self, hz: u64) -> Result<(), ProbeError> {
        let name = self.programs.on_cpu;
        let program: &mut PerfEvent = object::program(&mut self.ebpf, name)?;
        program.load().map_err(object::load_error)?;
        let cpus = aya::util::online_cpus().map_err(|(path, source)| ProbeError::OnlineCpus { path, source })?;
        for cpu in cpus {
            let link = program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(|source| {
                    if io_errno(&source) == Some(libc_errno::EINVAL)
                        && let Some(max) = max_sample_rate().filter(|max| hz > *max)
                    {
                        return ProbeError::FrequencyTooHigh { hz, max };
                    }
                    classify("attaching perf events", &source).unwrap_or(ProbeError::Attach {
                        program: name,
                        cpu,
                        source,
                    })
                })?;
            self.perf_links.push(link);
        }
        Ok(())
    }

    /// Adds a process to the selection (with [`Selection::Processes`]) and
    /// publishes its mappings.
    pub fn add_process(&mut self, pid: u32) -> Result<(), ProbeError> {
        object::fill_set(&mut self.ebpf, names::TARGET_TGIDS, &[pid])?;
        if let Some(t) = &self.tables {
            t.publish(pid);
            t.wait_built();
        }
        Ok(())
    }

    /// Builds ahead of time the unwind table of a program about to be
    /// executed (a held command's), so that it is ready at its exec.
    pub fn prepare_program(&self, path: &std::path::Path) {
        if let Some(t) = &self.tables {
            t.prepare(path);
        }
    }

    /// Counters so far, summed over CPUs; cheap enough for a progress line.
    pub fn stats(&self) -> Result<SampleStats, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::STATS, source };
        let stats: PerCpuArray<&MapData, SampleStats> =
            PerCpuArray::try_from(object::map(&self.ebpf, names::STATS)?).map_err(map_err)?;
        let per_cpu = stats.get(&0, 0).map_err(map_err)?;
        let mut total = SampleStats::default();
        for cpu in per_cpu.iter() {
            total.merge(cpu);
        }
        Ok(total)
    }

    /// What the unwind table loader did so far.
    pub fn table_stats(&self) -> TableStats {
        self.tables.as_ref().map(TableLoader::stats).unwrap_or_default()
    }

    /// Stops sampling and reads the unique stacks and their counts.
    pub fn finish(mut self) -> Result<RawProfile, ProbeError> {
        self.detach();
        // The walks to finish: all sent by now (the programs are detached).
        let (records, finished, queue_dropped, unreadable) =
            self.late.as_mut().map(crate::late::Drainer::finish).unwrap_or_default();
        let mut loader = self.tables.take();
        let (modules, tables) = match &mut loader {
            Some(t) => t.finish(),
            None => (Modules::default(), TableStats::default()),
        };
        let stats = self.stats()?;
        let stack_err = |source| ProbeError::Map { map: names::STACKS, source };
        let stacks: BpfHashMap<&MapData, u64, StackTrace> =
            object::map(&self.ebpf, names::STACKS)?.try_into().map_err(stack_err)?;
        let count_err = |source| ProbeError::Map { map: names::COUNTS, source };
        let counts: BpfHashMap<&MapData, SampleKey, u64> =
            object::map(&self.ebpf, names::COUNTS)?.try_into().map_err(count_err)?;

        let mut by_hash: HashMap<u64, RawStack> = HashMap::new();
        let mut lookup = |hash: u64| -> RawStack {
            if hash == 0 {
                return RawStack::None;
            }
            by_hash
                .entry(hash)
                .or_insert_with(|| match stacks.get(&hash, 0) {
                    Ok(t) => {
                        let n = (t.len as usize).min(t.frames.len());
                        RawStack::Frames(t.frames[..n].to_vec())
                    }
                    Err(err) => {
                        tracing::warn!(hash, %err, "stack counted but missing from the stacks map");
                        RawStack::Lost
                    }
                })
                .clone()
        };
        let mut samples = Vec::new();
        // Each sample's place by its key, for the walks finished late (only
        // when there are some).
        let mut index: HashMap<SampleKey, usize> = HashMap::new();
        for entry in counts.iter() {
            let (key, count) = entry.map_err(count_err)?;
            // A user stack that was walked but could not be kept.
            let user = if key.user_lost != 0 { RawStack::Lost } else { lookup(key.user_stack) };
            if !records.is_empty() || !finished.walks.is_empty() {
                index.insert(key, samples.len());
            }
            samples.push(RawSample {
                tgid: key.tgid,
                tid: key.tid,
                comm: comm_to_string(&key.comm),
                process: comm_to_string(&key.process_comm),
                user,
                kernel: lookup(key.kernel_stack),
                count,
                kind: if key.kind == KIND_OFF_CPU { SampleKind::OffCpuNanos } else { SampleKind::OnCpu },
                user_end: stack_end(key.user_end),
                interpreted: Vec::new(),
            });
        }
        let by_hash_len = by_hash.len();
        let bytes_read = samples.len() as u64 * (size_of::<SampleKey>() + 8) as u64
            + by_hash_len as u64 * (8 + size_of::<StackTrace>()) as u64;
        let mut late = match &loader {
            Some(t) => finish_late(&mut samples, &index, &records, &finished, &modules, t),
            None => crate::late::LateStats::default(),
        };
        late.lost = stats.late_dropped + queue_dropped;
        late.unfinished += unreadable;
        Ok(RawProfile { samples, stats, modules, tables, bytes_read, late })
    }

    fn detach(&mut self) {
        if let Some(program) = self.ebpf.program_mut(self.programs.on_cpu)
            && let Ok(program) = <&mut PerfEvent>::try_from(program)
        {
            for link in self.perf_links.drain(..) {
                if let Err(err) = program.detach(link) {
                    tracing::warn!(%err, "detaching a perf event failed");
                }
            }
        }
        object::detach_raw(&mut self.ebpf, self.tp_links.drain(..));
    }
}

/// Finishes the walks sent late (`records`) with the mappings and tables
/// now known, and moves each one's count, and the counts of the walks
/// `finished` while sampling, from the stack the kernel walked (found in
/// `samples` by its key, through `index`) to the finished stack.
fn finish_late(
    samples: &mut Vec<RawSample>,
    index: &HashMap<SampleKey, usize>,
    records: &[crate::late::LateRecord],
    finished: &crate::late::Finished,
    modules: &Modules,
    loader: &TableLoader,
) -> crate::late::LateStats {
    use crate::late::{PageRows, Place, Process, Unfinished};
    let mut stats = crate::late::LateStats::default();
    if records.is_empty() && finished.walks.is_empty() {
        return stats;
    }
    let ids: HashMap<*const perfkit_target::ModuleFile, u32> =
        modules.files.iter().map(|(&id, f)| (std::sync::Arc::as_ptr(f), id)).collect();
    let mut tables: HashMap<(u32, u32), Option<PageRows>> = HashMap::new();
    let mut places: HashMap<(u32, u64), Option<Place>> = HashMap::new();
    // (sample moved from, finished frames, end) -> samples.
    let mut moved: HashMap<(usize, Vec<u64>, u8), u64> = HashMap::new();
    let no_history = Vec::new();
    for record in records {
        let finished = (|| {
            let &i = index.get(&record.key).ok_or(Unfinished::Prefix)?;
            let RawStack::Frames(prefix) = &samples[i].user else { return Err(Unfinished::Prefix) };
            if samples[i].count == 0 || prefix.len() < record.n {
                return Err(Unfinished::Prefix);
            }
            let history = modules.processes.get(&record.key.tgid).unwrap_or(&no_history);
            let mut known = Process {
                tgid: record.key.tgid,
                history,
                ids: &ids,
                rows: &|id, page| loader.page_rows(id, page),
                tables: &mut tables,
                places: &mut places,
            };
            let (frames, end) = crate::late::finish(&prefix[..record.n], record, &mut known)?;
            Ok((i, frames, end))
        })();
        match finished {
            Ok((i, frames, end)) => {
                samples[i].count -= 1;
                *moved.entry((i, frames, end)).or_default() += 1;
                stats.finished += 1;
            }
            Err(why) => {
                tracing::debug!(
                    tgid = record.key.tgid,
                    comm = comm_to_string(&record.key.process_comm),
                    ?why,
                    "a late walk could not be finished"
                );
                stats.unfinished += 1;
            }
        }
    }
    // The walks finished while sampling: their frames after the kernel's.
    for ((key, n, rest, end), count) in &finished.walks {
        let Some(&i) = index.get(key) else {
            stats.unfinished += count;
            continue;
        };
        let RawStack::Frames(prefix) = &samples[i].user else {
            stats.unfinished += count;
            continue;
        };
        if prefix.len() < *n {
            stats.unfinished += count;
            continue;
        }
        let count = (*count).min(samples[i].count);
        let frames: Vec<u64> = prefix[..*n].iter().chain(rest).copied().collect();
        samples[i].count -= count;
        *moved.entry((i, frames, *end)).or_default() += count;
        stats.finished += count;
    }
    for ((i, frames, end), count) in moved {
        let mut sample = samples[i].clone();
        sample.user = RawStack::Frames(frames);
        sample.user_end = stack_end(end);
        sample.count = count;
        samples.push(sample);
    }
    samples.retain(|s| s.count > 0);
    stats
}

/// The kernel side's selection for `selection`.
pub(crate) fn filter_config(selection: &Selection) -> FilterConfig {
    match selection {
        Selection::All => FilterConfig { mode: MODE_ALL, ..FilterConfig::default() },
        Selection::Processes { follow_children, .. } => FilterConfig {
            mode: MODE_PROCESSES,
            follow_children: u32::from(*follow_children),
            ..FilterConfig::default()
        },
        Selection::Threads(_) => FilterConfig { mode: MODE_THREADS, ..FilterConfig::default() },
        Selection::Cgroup { id, level } => {
            FilterConfig { mode: MODE_CGROUP, cgroup_id: *id, cgroup_level: *level, ..FilterConfig::default() }
        }
    }
}

fn comm_to_string(comm: &[u8; COMM_LEN]) -> String {
    let len = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    perfkit_model::escape_bytes(&comm[..len])
}

/// How a walk that ended with the kernel side's `END_*` code ended. A walk
/// that stopped in anonymous memory is told apart later, where the
/// mappings are known (`perfkit-symbols`).
fn stack_end(code: u8) -> StackEnd {
    StackEnd::Truncated(match code {
        END_ROOT | END_NO_USER => return StackEnd::Complete,
        END_DEPTH => Truncation::Depth,
        END_READ => Truncation::ReadFault,
        END_UNSUPPORTED => Truncation::UnsupportedCfi,
        END_NO_CFI => Truncation::NoCfi,
        // A frame's table was not loaded yet, or its mapping not known:
        // the symbolizer tells the two apart once the mappings are known.
        END_PENDING => Truncation::TablePending,
        _ => Truncation::Other,
    })
}

/// Whose side-band events the table loader reads for a selection.
fn event_scope(selection: &Selection) -> std::io::Result<crate::events::EventScope> {
    use crate::events::EventScope;
    Ok(match selection {
        Selection::All => EventScope::All,
        Selection::Processes { pids, follow_children } => {
            EventScope::Processes { pids: pids.iter().copied().collect(), follow_children: *follow_children }
        }
        Selection::Threads(tids) => EventScope::Processes {
            pids: tids.iter().filter_map(|&t| perfkit_target::process_of_thread(t)).collect(),
            follow_children: false,
        },
        Selection::Cgroup { id, level } => EventScope::Cgroup(cgroup_directory(*id, *level)?),
    })
}

/// The directory of the cgroup v2 group with this id (its inode number)
/// at this depth below the root, opened: searched level by level, so only
/// the groups above its depth are listed.
fn cgroup_directory(id: u64, level: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let not_found = || std::io::Error::new(std::io::ErrorKind::NotFound, format!("no cgroup v2 group with id {id}"));
    let root = perfkit_target::cgroup::cgroup2_mount().ok_or_else(not_found)?;
    let mut at_level = vec![root];
    for _ in 0..level {
        let mut next = Vec::new();
        for dir in &at_level {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            next.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
        at_level = next;
    }
    for dir in at_level {
        let Ok(file) = std::fs::File::open(&dir) else { continue };
        // Checked on the open directory: the one held is the one meant.
        if file.metadata().is_ok_and(|m| m.is_dir() && m.ino() == id) {
            return Ok(file);
        }
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_stops_at_nul_and_escapes_bad_bytes() {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"work");
        assert_eq!(comm_to_string(&comm), "work");
        assert_eq!(comm_to_string(b"0123456789abcdef"), "0123456789abcdef");
        let mut bad = [0u8; COMM_LEN];
        bad[..3].copy_from_slice(&[b'a', 0xff, b'b']);
        assert_eq!(comm_to_string(&bad), "a\\xffb");
    }

    #[test]
    fn config_rejects_empty_selections_and_zeroes() {
        let c = StackSamplerConfig::new(Selection::Processes { pids: vec![], follow_children: true });
        assert!(matches!(c.validate(), Err(ProbeError::InvalidConfig(_))));
        let mut c = StackSamplerConfig::new(Selection::All);
        c.frequency_hz = Some(0);
        assert!(matches!(c.validate(), Err(ProbeError::InvalidConfig(_))));
        c.frequency_hz = None;
        assert!(matches!(c.validate(), Err(ProbeError::InvalidConfig(_))));
    }

    #[test]
    fn default_table_rows_follow_memory_within_bounds() {
        assert_eq!(mem_total_bytes("MemTotal:        8000000 kB\nMemFree: 1 kB\n"), Some(8_192_000_000));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots kB\n"), None);
        assert_eq!(table_rows_for_memory(0), DEFAULT_TABLE_ROWS);
        assert_eq!(table_rows_for_memory(1 << 30), DEFAULT_TABLE_ROWS);
        assert_eq!(table_rows_for_memory(8 << 30), 2 << 20);
        assert_eq!(table_rows_for_memory(u64::MAX), MAX_DEFAULT_TABLE_ROWS);
    }

    #[test]
    fn shipped_object_is_an_elf_bpf_object() {
        assert_eq!(&object::OBJECT[..4], b"\x7fELF");
        // e_machine at offset 18: EM_BPF = 247.
        assert_eq!(u16::from_le_bytes([object::OBJECT[18], object::OBJECT[19]]), 247);
    }
}
