//! Sampling with perf_event_open.
//!
//! Events are opened per (thread, CPU) for processes and threads, per CPU
//! for a cgroup or the whole machine; every event writes into one ring
//! buffer per CPU. A drain thread empties the ring buffers as they fill
//! (woken by a watermark) and hands the records to a worker thread, which
//! unwinds user stacks (DWARF mode), resolves each frame to a place in a
//! file at once (so that a later exec or unmap changes nothing), and counts
//! samples per unique stack. The thread that started the sampler only
//! reads counters.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::fd::AsRawFd,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use perf_event::{
    Builder, Clock, Counter, SampleFlag, Sampler,
    data::Record,
    events::{Hardware, Software},
};
use perfkit_model::{
    Truncation,
    raw::{InterpretedFrame, RawFrame, RawSample, RawStack, SampleKind, StackEnd},
};
use perfkit_target::{InlinedAt, MapsTracker, ModuleFile, Modules};
use perfkit_unwind::{
    cpython::{CPython, Error as CpythonError},
    hotspot::{BlobKind, Error as HotSpotError, HotSpot},
};

use crate::{
    error::{PerfError, classify},
    unwind::{DwarfUnwinder, JavaFrame, MAX_FRAMES, UnwindEnd},
};

/// How user stacks are walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unwind {
    /// The kernel follows frame pointers (cheap; truncated stacks for code
    /// built without them).
    FramePointer,
    /// A copy of the top of the user stack and the user registers with each
    /// sample, unwound in user space from the binaries' DWARF CFI.
    Dwarf,
}

/// The event whose overflow takes a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleEvent {
    /// The CPU clock (software; works everywhere, also in VMs).
    #[default]
    CpuClock,
    /// The task clock (software).
    TaskClock,
    /// CPU cycles (hardware counters).
    Cycles,
    /// Instructions retired (hardware counters).
    Instructions,
}

impl SampleEvent {
    /// perf's name for it.
    pub fn name(self) -> &'static str {
        match self {
            SampleEvent::CpuClock => "cpu-clock",
            SampleEvent::TaskClock => "task-clock",
            SampleEvent::Cycles => "cycles",
            SampleEvent::Instructions => "instructions",
        }
    }
}

/// Which tasks to sample.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PerfScope {
    /// Every thread of these processes; with `inherit`, the threads and
    /// processes they create later too.
    Processes {
        /// Process ids.
        pids: Vec<u32>,
        /// Follow children (fork, clone, exec), as `perf record` does.
        inherit: bool,
    },
    /// These threads only.
    Threads(Vec<u32>),
    /// The tasks of a cgroup (v2 directory), on every CPU.
    Cgroup(PathBuf),
    /// Every task on every CPU.
    All,
}

/// What to sample.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PerfConfig {
    /// The tasks.
    pub scope: PerfScope,
    /// The sampling event.
    pub event: SampleEvent,
    /// Samples per second (per thread for processes and threads, per CPU
    /// otherwise).
    pub frequency_hz: u64,
    /// How user stacks are walked.
    pub unwind: Unwind,
    /// Bytes of user stack copied per sample in DWARF mode (at most 65528).
    pub stack_bytes: u32,
    /// Kernel stacks: `Some(true)` requires them, `Some(false)` leaves them
    /// out, `None` takes them where permitted and samples user mode only
    /// otherwise (`kernel.perf_event_paranoid` 2 without CAP_PERFMON).
    pub kernel: Option<bool>,
    /// Start counting only when the target calls exec (for a command held
    /// before exec).
    pub enable_on_exec: bool,
    /// Read the Python stack of each sampled thread of a CPython process
    /// (`perfkit_unwind::cpython`) as soon as its sample is read: each
    /// sample wakes the reader, which reads the thread's frames within
    /// microseconds of the sample. The frames go with the sample
    /// (`RawSample::interpreted`).
    pub interpreters: bool,
    /// DWARF mode: walk the Java frames of HotSpot JVMs from the JVM's
    /// code cache (`perfkit_unwind::hotspot`), so that stacks go through
    /// compiled Java code without `-XX:+PreserveFramePointer`, and name
    /// interpreted Java frames from their `Method*`
    /// (`RawSample::interpreted`).
    pub hotspot: bool,
}

/// Default bytes of user stack copied per sample: enough for the stacks
/// of typical Go and Rust servers (perf's default, 8 KiB, cuts deep Go
/// stacks).
pub const DEFAULT_STACK_BYTES: u32 = 16384;

impl PerfConfig {
    /// Frame-pointer sampling of `pid` and its children at 99 Hz, kernel
    /// stacks where permitted.
    pub fn new(pid: u32) -> Self {
        Self {
            scope: PerfScope::Processes { pids: vec![pid], inherit: true },
            event: SampleEvent::CpuClock,
            frequency_hz: 99,
            unwind: Unwind::FramePointer,
            stack_bytes: DEFAULT_STACK_BYTES,
            kernel: None,
            enable_on_exec: false,
            interpreters: false,
            hotspot: false,
        }
    }
}

/// Counters of a sampling run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerfStats {
    /// Samples counted.
    pub samples: u64,
    /// Samples of the idle task (system-wide runs), not drawn.
    pub idle: u64,
    /// Samples the kernel dropped because a ring buffer was full.
    pub lost: u64,
    /// Times the kernel throttled sampling (too high a rate).
    pub throttled: u64,
    /// Bytes read from the ring buffers.
    pub bytes: u64,
    /// Threads attached at start.
    pub threads: u64,
    /// Processes seen in samples.
    pub processes: u64,
    /// DWARF mode: samples whose unwinding stopped before the outermost
    /// frame.
    pub unwind_incomplete: u64,
    /// DWARF mode: of those, samples whose stack copy ended before the
    /// outermost frame.
    pub stack_copy_too_small: u64,
    /// DWARF mode: the most stack (bytes from the stack pointer) a
    /// truncated sample was seen to need, at least.
    pub stack_bytes_needed: u64,
    /// Samples taken in user mode only, because kernel sampling is not
    /// permitted.
    pub user_only: bool,
    /// Size of each ring buffer.
    pub buffer_bytes: u64,
    /// With [`PerfConfig::interpreters`]: samples of CPython threads whose
    /// Python stack was read within [`MAX_INTERPRETER_LAG`] of the sample.
    pub interpreted_read: u64,
    /// Samples of CPython processes not read within that lag (perfkit's
    /// reader starved of CPU, or a stack that takes longer to read: the
    /// read is given up at the deadline): left without Python frames,
    /// which would be those of a later moment.
    pub interpreted_late: u64,
}

/// The longest a thread's Python stack may be read after its sample and
/// still be taken as the sample's: beyond, the thread may run other Python
/// functions.
pub const MAX_INTERPRETER_LAG: Duration = Duration::from_millis(2);

/// The result: unique stacks with counts, ready for `perfkit-symbols`.
#[derive(Debug)]
#[non_exhaustive]
pub struct PerfProfile {
    /// Unique (thread, names, user stack, kernel stack) and their counts.
    pub samples: Vec<RawSample>,
    /// What happened along the way.
    pub stats: PerfStats,
    /// The files frames are encoded against, and each process's mappings.
    pub modules: Modules,
    /// The memory budget's charge for the samples' Python frames, held as
    /// long as they are.
    _interpreted: Option<Held>,
}

/// The charge, on the process's memory budget, for what Python frames
/// hold in perfkit: each name and file once, and the frames of each
/// unique stack. The target chooses them: without it, a process whose
/// frames are named by kilobytes, and whose every sample is a new stack,
/// costs megabytes a sample.
type Held = Arc<std::sync::Mutex<perfkit_safeio::Charge>>;

/// perf's register numbers on x86-64: BP, SP, IP, in this order in samples.
#[cfg(target_arch = "x86_64")]
const REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);

const PERF_CONTEXT_MAX: u64 = -4095i64 as u64;
const PERF_CONTEXT_KERNEL: u64 = -128i64 as u64;
const PERF_CONTEXT_USER: u64 = -512i64 as u64;

pub(crate) fn online_cpus() -> Result<Vec<usize>, PerfError> {
    let text = fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|source| PerfError::Io { what: "reading /sys/devices/system/cpu/online", source })?;
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let bad = || PerfError::InvalidConfig(format!("unexpected CPU list {text:?}"));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// The thread ids of `pid`, sorted; empty when it does not exist.
pub(crate) fn threads_of(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    tids.sort_unstable();
    tids
}

fn max_sample_rate() -> Option<u64> {
    fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").ok()?.trim().parse().ok()
}

/// Counters the worker updates and anyone may read.
#[derive(Debug, Default)]
struct Live {
    interpreted_read: AtomicU64,
    interpreted_late: AtomicU64,
    samples: AtomicU64,
    lost: AtomicU64,
    bytes: AtomicU64,
}

/// A running perf_event sampler.
pub struct PerfSampler {
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    drain: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<Aggregate>>,
    /// Events of further threads, writing into their CPU's leader; closed
    /// when the sampler is dropped.
    followers: Vec<Counter>,
    /// The leaders' file descriptors, to enable them.
    leader_fds: Vec<i32>,
    stats: PerfStats,
    _cgroup: Option<fs::File>,
}

impl std::fmt::Debug for PerfSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfSampler").field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// What the drain thread hands the worker.
enum Msg {
    Sample {
        pid: u32,
        tid: u32,
        callchain: Vec<u64>,
        regs: Option<[u64; 3]>,
        stack: Vec<u8>,
        /// When the sample was taken (CLOCK_MONOTONIC with interpreters).
        time: Option<u64>,
        interpreted: Vec<InterpretedFrame>,
    },
    Mapped {
        pid: u32,
    },
    Fork {
        pid: u32,
        ppid: u32,
    },
    Comm {
        pid: u32,
        tid: u32,
        comm: Vec<u8>,
    },
    Lost(u64),
    Throttled,
}

/// The ring buffer size for a rate: about a quarter second of samples,
/// a power of two between 64 KiB and 32 MiB.
fn buffer_size(hz: u64, bytes_per_sample: u64, per_cpu_tasks: u64) -> usize {
    let want = hz.saturating_mul(bytes_per_sample).saturating_mul(per_cpu_tasks.max(1)) / 4;
    (want.clamp(64 << 10, 32 << 20) as usize).next_power_of_two()
}

impl PerfSampler {
    /// Opens the events and starts sampling (at the target's exec with
    /// `enable_on_exec`).
    pub fn start(config: &PerfConfig) -> Result<Self, PerfError> {
        if config.frequency_hz == 0 {
            return Err(PerfError::InvalidConfig("the frequency must be at least 1 Hz".into()));
        }
        if let Some(max) = max_sample_rate().filter(|&m| config.frequency_hz > m) {
            return Err(PerfError::FrequencyTooHigh { hz: config.frequency_hz, max });
        }
        if config.unwind == Unwind::Dwarf {
            if !cfg!(target_arch = "x86_64") {
                return Err(PerfError::Unsupported { event: "DWARF unwinding on this architecture".into() });
            }
            if config.stack_bytes == 0 || config.stack_bytes > 65528 || !config.stack_bytes.is_multiple_of(8) {
                return Err(PerfError::InvalidConfig(
                    "the stack copy must be 8 to 65528 bytes, a multiple of 8".into(),
                ));
            }
        }
        let cpus = online_cpus()?;
        let max_stack = fs::read_to_string("/proc/sys/kernel/perf_event_max_stack")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(127)
            .min(MAX_FRAMES) as u16;
        let per_sample = match config.unwind {
            // The copy, and the kernel's frame-pointer callchain kept beside
            // it (for Go's stack switches).
            Unwind::Dwarf => config.stack_bytes as u64 + 8 * max_stack as u64 + 256,
            Unwind::FramePointer => 8 * max_stack as u64 + 128,
        };
        // Per CPU, up to frequency × (tasks on it) samples a second; one
        // busy task per CPU is the common case.
        let buffer = buffer_size(config.frequency_hz, per_sample, 1);

        let cgroup = match &config.scope {
            PerfScope::Cgroup(path) => Some(
                fs::File::open(path)
                    .map_err(|source| PerfError::Io { what: "opening the cgroup directory", source })?,
            ),
            _ => None,
        };
        let mut opener = Opener {
            config,
            max_stack,
            cpus: &cpus,
            buffer,
            user_only: config.kernel == Some(false),
            leaders: Vec::with_capacity(cpus.len()),
            followers: Vec::new(),
        };
        let mut threads = 0u64;
        let mut filter: Option<(HashSet<u32>, bool)> = None;
        match &config.scope {
            PerfScope::Processes { pids, inherit } => {
                if pids.is_empty() {
                    return Err(PerfError::InvalidConfig("no process given".into()));
                }
                for &pid in pids {
                    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        return Err(PerfError::NoSuchProcess(pid));
                    }
                }
                // Where permitted (root, CAP_PERFMON), sample every CPU and
                // keep the target's samples: a thread shorter than a
                // sampling period still shows, as with eBPF. Per-thread
                // events count each thread's own time and never sample it.
                // Not when reading interpreters: each sample wakes the
                // reader, and per-CPU events would wake it (and copy a
                // stack) for every other task on the machine, idle ones
                // included, at the sampling rate; per-thread events (with
                // `inherit`, so new threads and children are sampled too)
                // sample the target alone, as py-spy does.
                if !config.interpreters && opener.per_cpu_permitted() {
                    opener.attach(Target::All, false)?;
                    filter = Some((pids.iter().copied().collect::<HashSet<u32>>(), *inherit));
                    threads = pids.iter().map(|&p| threads_of(p).len() as u64).sum();
                }
                for &pid in pids.iter().filter(|_| filter.is_none()) {
                    // Attach every thread; threads created meanwhile by an
                    // attached thread inherit its events, others are caught
                    // by listing again.
                    let mut attached: HashSet<u32> = HashSet::new();
                    loop {
                        let tids: Vec<u32> = threads_of(pid).into_iter().filter(|t| !attached.contains(t)).collect();
                        if tids.is_empty() {
                            break;
                        }
                        for tid in tids {
                            match opener.attach(Target::Task(tid), *inherit) {
                                Ok(()) => {
                                    attached.insert(tid);
                                }
                                // The thread exited between listing and
                                // attaching.
                                Err(PerfError::NoSuchProcess(_)) if tid != pid => {
                                    attached.insert(tid);
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    if attached.is_empty() {
                        return Err(PerfError::NoSuchProcess(pid));
                    }
                    threads += attached.len() as u64;
                }
            }
            PerfScope::Threads(tids) => {
                for &tid in tids {
                    opener.attach(Target::Task(tid), false)?;
                    threads += 1;
                }
            }
            PerfScope::Cgroup(_) => opener.attach(Target::Cgroup(cgroup.as_ref().expect("opened above")), false)?,
            PerfScope::All => opener.attach(Target::All, false)?,
        }
        let user_only = opener.user_only && config.kernel != Some(false);
        let per_cpu_filter = filter.is_some();
        let Opener { leaders, followers, .. } = opener;
        let leader_fds = leaders.iter().map(|l| l.as_raw_fd()).collect();

        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        // Bounded: a worker that falls behind blocks the drain, the ring
        // buffers fill, and the kernel counts what it drops.
        let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
        let held: Held =
            Arc::new(std::sync::Mutex::new(perfkit_safeio::Budget::process().start("the samples' Python frames")));
        let drain = {
            let stop = stop.clone();
            let live = live.clone();
            let only = match &config.scope {
                PerfScope::Processes { pids, .. } => Some(pids.iter().copied().collect()),
                _ => None,
            };
            let interpreters =
                config.interpreters.then(|| Interpreters { only, held: Some(held.clone()), ..Interpreters::default() });
            std::thread::Builder::new()
                .name("perfkit-drain".into())
                .spawn(move || drain(leaders, tx, stop, live, interpreters))
                .map_err(|source| PerfError::Io { what: "starting the drain thread", source })?
        };
        let worker = {
            let live = live.clone();
            let unwind = config.unwind;
            let stack_bytes = config.stack_bytes;
            let hotspot = config.hotspot && config.unwind == Unwind::Dwarf;
            let all = matches!(config.scope, PerfScope::All | PerfScope::Cgroup(_));
            std::thread::Builder::new()
                .name("perfkit-unwind".into())
                .spawn(move || {
                    let mut w = Worker::new(unwind, stack_bytes, all, live);
                    w.filter = filter;
                    w.max_stack = max_stack as usize;
                    if hotspot {
                        w.jvms = Some(HashMap::new());
                    }
                    w.agg.interpreted = Some(held);
                    for msg in rx {
                        w.handle(msg);
                    }
                    w.agg
                })
                .map_err(|source| PerfError::Io { what: "starting the unwind thread", source })?
        };
        let stats = PerfStats { threads, user_only, buffer_bytes: buffer as u64, ..PerfStats::default() };
        let mut sampler = Self {
            stop,
            live,
            drain: Some(drain),
            worker: Some(worker),
            followers,
            leader_fds,
            stats,
            _cgroup: cgroup,
        };
        // Per-CPU events cannot wait for an exec: they start now (a held
        // command is blocked until then anyway).
        if !config.enable_on_exec || per_cpu_filter {
            sampler.enable()?;
        }
        Ok(sampler)
    }

    fn enable(&mut self) -> Result<(), PerfError> {
        for &fd in &self.leader_fds {
            // SAFETY: an open perf event fd owned by the drain thread's
            // sampler, which outlives this call (it is joined in `finish`).
            if unsafe {
                libc::ioctl(fd, 0x2400 /* PERF_EVENT_IOC_ENABLE */, 0)
            } != 0
            {
                return Err(PerfError::Io { what: "enabling perf events", source: std::io::Error::last_os_error() });
            }
        }
        for f in &mut self.followers {
            f.enable().map_err(|source| PerfError::Io { what: "enabling perf events", source })?;
        }
        Ok(())
    }

    /// Counters so far.
    pub fn stats(&self) -> PerfStats {
        let mut s = self.stats;
        s.samples = self.live.samples.load(Ordering::Relaxed);
        s.lost = self.live.lost.load(Ordering::Relaxed);
        s.bytes = self.live.bytes.load(Ordering::Relaxed);
        s.interpreted_read = self.live.interpreted_read.load(Ordering::Relaxed);
        s.interpreted_late = self.live.interpreted_late.load(Ordering::Relaxed);
        s
    }

    /// Stops sampling, reads what is left, and returns the unique stacks.
    pub fn finish(mut self) -> PerfProfile {
        for f in &mut self.followers {
            let _ = f.disable();
        }
        for &fd in &self.leader_fds {
            // SAFETY: as in `enable`.
            unsafe {
                libc::ioctl(fd, 0x2401 /* PERF_EVENT_IOC_DISABLE */, 0)
            };
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let agg = self.worker.take().map(|w| w.join().unwrap_or_default()).unwrap_or_default();
        let mut stats = self.stats();
        stats.throttled = agg.throttled;
        stats.idle = agg.idle;
        stats.unwind_incomplete = agg.unwind_incomplete;
        stats.stack_copy_too_small = agg.stack_copy_too_small;
        stats.stack_bytes_needed = agg.stack_bytes_needed;
        stats.processes = agg.trackers.len() as u64;
        stats.lost += agg.lost;
        agg.into_profile(stats)
    }
}

impl Drop for PerfSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Where an event is opened.
enum Target<'a> {
    Task(u32),
    Cgroup(&'a fs::File),
    All,
}

/// Opens the events of one run.
struct Opener<'a> {
    config: &'a PerfConfig,
    max_stack: u16,
    cpus: &'a [usize],
    buffer: usize,
    user_only: bool,
    leaders: Vec<Sampler>,
    followers: Vec<Counter>,
}

impl Opener<'_> {
    fn builder(&self, target: &Target<'_>, cpu: usize, inherit: bool) -> Builder<'_> {
        let c = self.config;
        let mut b = match c.event {
            SampleEvent::CpuClock => Builder::new(Software::CPU_CLOCK),
            SampleEvent::TaskClock => Builder::new(Software::TASK_CLOCK),
            SampleEvent::Cycles => Builder::new(Hardware::CPU_CYCLES),
            SampleEvent::Instructions => Builder::new(Hardware::INSTRUCTIONS),
        };
        match target {
            Target::Task(tid) => {
                b.observe_pid(*tid as i32);
            }
            Target::Cgroup(f) => {
                // SAFETY: the builder borrows the file only to take its fd;
                // the file outlives the events (the sampler keeps it).
                let f: &'static fs::File = unsafe { &*(*f as *const fs::File) };
                b.observe_cgroup(f);
            }
            Target::All => {
                b.any_pid();
            }
        }
        b.one_cpu(cpu)
            .sample_frequency(c.frequency_hz)
            .inherit(inherit)
            .enabled(false)
            .enable_on_exec(c.enable_on_exec)
            .exclude_kernel(self.user_only)
            .exclude_hv(true)
            .mmap(true)
            .mmap2(true)
            .comm(true)
            .comm_exec(true)
            .task(true)
            .sample_id_all(true);
        if c.interpreters {
            // Every sample wakes the drain thread, which reads the
            // interpreter's frames right after it; sample times on the
            // clock the reader measures its lag with.
            b.wakeup_events(1).clockid(Clock::MONOTONIC);
        } else {
            b.wakeup_watermark(self.buffer / 4);
        }
        let mut flags =
            SampleFlag::IP | SampleFlag::TID | SampleFlag::TIME | SampleFlag::PERIOD | SampleFlag::CALLCHAIN;
        if c.unwind == Unwind::Dwarf {
            #[cfg(target_arch = "x86_64")]
            b.sample_regs_user(REGS_MASK);
            // The kernel's frame-pointer walk of the user stack is kept too:
            // it goes on past Go's stack switches, where the copy ends.
            b.sample_stack_user(c.stack_bytes);
            flags |= SampleFlag::REGS_USER | SampleFlag::STACK_USER;
        }
        b.sample(flags);
        b.sample_max_stack(self.max_stack);
        b
    }

    /// Whether events on a whole CPU may be opened (CAP_PERFMON, root, or
    /// `kernel.perf_event_paranoid` 0 or less).
    fn per_cpu_permitted(&self) -> bool {
        self.builder(&Target::All, self.cpus[0], false).build().is_ok()
    }

    fn open(&mut self, target: &Target<'_>, cpu: usize, inherit: bool) -> Result<Counter, PerfError> {
        let tid = match target {
            Target::Task(t) => Some(*t),
            _ => None,
        };
        let hz = self.config.frequency_hz;
        let first = self.builder(target, cpu, inherit).build();
        let built = match first {
            // As perf does: without permission to sample the kernel, sample
            // user mode only (unless kernel stacks were required).
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
                    && !self.user_only
                    && self.config.kernel.is_none() =>
            {
                self.user_only = true;
                self.builder(target, cpu, inherit).build()
            }
            other => other,
        };
        built.map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL)
                && let Some(max) = max_sample_rate().filter(|m| hz > *m)
            {
                return PerfError::FrequencyTooHigh { hz, max };
            }
            match classify("opening a sampling event", tid, e) {
                PerfError::Unsupported { .. } => {
                    PerfError::Unsupported { event: format!("sampling on {}", self.config.event.name()) }
                }
                other => other,
            }
        })
    }

    fn attach(&mut self, target: Target<'_>, inherit: bool) -> Result<(), PerfError> {
        for i in 0..self.cpus.len() {
            let cpu = self.cpus[i];
            if i >= self.leaders.len() {
                let mut size = self.buffer;
                let sampler = loop {
                    // A smaller buffer where locked memory is limited
                    // (kernel.perf_event_mlock_kb for unprivileged users).
                    match self.open(&target, cpu, inherit)?.sampled(size) {
                        Ok(s) => break s,
                        Err(e) if size > 16 << 10 && matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOMEM)) => {
                            size /= 2;
                        }
                        Err(e) => return Err(classify("mapping the perf ring buffer", None, e)),
                    }
                };
                self.buffer = self.buffer.min(size);
                self.leaders.push(sampler);
            } else {
                let counter = self.open(&target, cpu, inherit)?;
                let leader = self.leaders[i].as_raw_fd();
                // SAFETY: both are open perf event fds on the same CPU; the
                // ioctl only redirects this event's records.
                let rc = unsafe {
                    libc::ioctl(counter.as_raw_fd(), 0x2405 /* PERF_EVENT_IOC_SET_OUTPUT */, leader)
                };
                if rc != 0 {
                    return Err(PerfError::Io {
                        what: "redirecting a perf event to its CPU's ring buffer",
                        source: std::io::Error::last_os_error(),
                    });
                }
                self.followers.push(counter);
            }
        }
        Ok(())
    }
}

/// Empties the ring buffers until stopped, then once more.
fn drain(
    mut leaders: Vec<Sampler>,
    tx: mpsc::SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    mut interpreters: Option<Interpreters>,
) {
    if interpreters.is_some() {
        // Python frames are only the sample's when read within
        // MAX_INTERPRETER_LAG of it: this thread must run as soon as a
        // sample arrives, before the CPU-bound threads it samples. Its
        // work per sample is bounded (tens of microseconds), so the
        // lowest real-time priority costs others little; without the
        // right to it (not root), late samples are counted and said.
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: sets this thread's own policy from a valid parameter.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "no real-time priority for the drain thread");
        }
    }
    let mut fds: Vec<libc::pollfd> =
        leaders.iter().map(|l| libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        for leader in &mut leaders {
            while let Some(record) = leader.next_record() {
                live.bytes.fetch_add(record.len() as u64, Ordering::Relaxed);
                let msg = match record.parse_record() {
                    Ok(parsed) => {
                        let mut msg = to_msg(parsed);
                        if let (Some(Msg::Sample { pid, tid, interpreted, time, .. }), Some(i)) =
                            (&mut msg, &mut interpreters)
                        {
                            *interpreted = i.read(*pid, *tid, *time, &live);
                        }
                        msg
                    }
                    Err(e) => {
                        tracing::debug!(%e, "unparsed perf record");
                        None
                    }
                };
                if let Some(msg) = msg
                    && tx.send(msg).is_err()
                {
                    return;
                }
            }
        }
        if stopping {
            return;
        }
        // SAFETY: valid pollfds; a timeout so `stop` is seen.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
    }
}

fn to_msg(record: Record<'_>) -> Option<Msg> {
    Some(match record {
        Record::Sample(s) => {
            let regs = s.regs_user().filter(|r| r.regs.len() >= 3).map(|r| [r.regs[0], r.regs[1], r.regs[2]]);
            Msg::Sample {
                pid: s.pid()?,
                tid: s.tid()?,
                callchain: s.callchain().unwrap_or(&[]).to_vec(),
                regs,
                stack: s.stack_user().map(<[u8]>::to_vec).unwrap_or_default(),
                time: s.time(),
                interpreted: Vec::new(),
            }
        }
        Record::Mmap2(m) if m.prot & libc::PROT_EXEC as u32 != 0 => Msg::Mapped { pid: m.pid },
        Record::Mmap(m) => Msg::Mapped { pid: m.pid },
        Record::Comm(c) => Msg::Comm { pid: c.pid, tid: c.tid, comm: c.comm.into_owned() },
        Record::Fork(f) => Msg::Fork { pid: f.pid, ppid: f.ppid },
        Record::Lost(l) => Msg::Lost(l.lost),
        Record::LostSamples(l) => Msg::Lost(l.lost),
        Record::Throttle(_) => Msg::Throttled,
        _ => return None,
    })
}

type Key = (u32, u32, String, String, RawStack, RawStack, StackEnd, Vec<InterpretedFrame>);

/// The most processes whose interpreter is looked for (and kept open).
const MAX_INTERPRETERS: usize = 1024;

/// Now on CLOCK_MONOTONIC, in nanoseconds (the samples' clock).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// CPython processes found among the sampled ones, and what was read.
#[derive(Default)]
struct Interpreters {
    /// The processes sampled, when per-CPU events see every process's
    /// samples (the others are not looked at).
    only: Option<HashSet<u32>>,
    found: HashMap<u32, Found>,
    /// Names and files of the frames read, each kept once.
    names: HashSet<Arc<str>>,
    /// Their charge.
    held: Option<Held>,
    /// Names were left out for the budget (said once).
    full: bool,
    /// A stack's text was past [`MAX_INTERPRETED_TEXT`] (said once).
    too_long: bool,
}

/// The most text (names and files, in bytes) of one sample's Python
/// frames: a thousand frames of long names and paths are far below it.
const MAX_INTERPRETED_TEXT: usize = 256 << 10;

/// What a sampled process is.
enum Found {
    Python(Box<CPython>),
    /// Not (yet) a readable CPython: looked at `tries` times, last then. A
    /// process sampled early (the loader has not mapped libpython yet) is
    /// looked at again.
    NotYet {
        tries: u32,
        last: Instant,
    },
    /// Not one, or one that cannot be read.
    Never,
}

/// How often, and how many times, a process is looked at again.
const LOOK_AGAIN: Duration = Duration::from_millis(100);
const LOOKS: u32 = 10;

impl Interpreters {
    /// The Python frames thread `tid` of `pid` is running, innermost
    /// first; empty when it is not a CPython thread or they cannot be read
    /// (a stack changing under the reader).
    fn read(&mut self, pid: u32, tid: u32, time: Option<u64>, live: &Live) -> Vec<InterpretedFrame> {
        if pid == 0 || self.only.as_ref().is_some_and(|only| !only.contains(&pid)) {
            return Vec::new();
        }
        // The stack must be read by MAX_INTERPRETER_LAG after the sample:
        // later it would be another moment's, and a target could make a
        // read cost seconds of this real-time thread.
        let deadline = || {
            let lag = time.map(|t| monotonic_ns().saturating_sub(t));
            match lag {
                Some(l) if l <= MAX_INTERPRETER_LAG.as_nanos() as u64 => {
                    Some(Instant::now() + (MAX_INTERPRETER_LAG - Duration::from_nanos(l)))
                }
                _ => {
                    tracing::debug!(?lag, pid, tid, "Python stack read too late");
                    None
                }
            }
        };
        if matches!(self.found.get(&pid), Some(Found::Python(_))) && deadline().is_none() {
            live.interpreted_late.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        let tries = match self.found.get(&pid) {
            Some(Found::Python(_)) | Some(Found::Never) => None,
            Some(Found::NotYet { tries, last }) => (last.elapsed() >= LOOK_AGAIN).then_some(*tries),
            None if self.found.len() >= MAX_INTERPRETERS => None,
            None => Some(0),
        };
        if let Some(tries) = tries {
            let found = match CPython::attach(pid, perfkit_safeio::Budget::process()) {
                Ok(py) => Found::Python(Box::new(py)),
                Err(
                    e @ (CpythonError::Unsupported { .. } | CpythonError::Budget(_) | CpythonError::Corrupt { .. }),
                ) => {
                    perfkit_target::notices::push(format!("Python frames: {e}"));
                    Found::Never
                }
                Err(e) if tries + 1 < LOOKS => {
                    tracing::debug!(%e, "not a readable CPython yet");
                    Found::NotYet { tries: tries + 1, last: Instant::now() }
                }
                Err(_) => Found::Never,
            };
            self.found.insert(pid, found);
        }
        let Some(Found::Python(py)) = self.found.get(&pid) else { return Vec::new() };
        // Measured again: attaching took time.
        let Some(deadline) = deadline() else {
            live.interpreted_late.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        };
        let read = py.stack_by(tid, deadline);
        if let Err(CpythonError::Late { .. }) = read {
            // Past the lag: counted as a late sample, not a read one.
            live.interpreted_late.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        live.interpreted_read.fetch_add(1, Ordering::Relaxed);
        match read {
            Ok(Some(frames)) => {
                // Every later step (merging, folded lines, flame graphs)
                // copies each frame's text: a stack naming more than a
                // native stack of long symbols could is left out.
                let text: usize = frames.iter().map(|f| f.qualname.len() + f.file.len()).sum();
                if text > MAX_INTERPRETED_TEXT {
                    if !self.too_long {
                        self.too_long = true;
                        perfkit_target::notices::push(format!(
                            "Python frames: a stack of PID {pid} names {} KiB of functions and files (more than {} \
                             KiB): such samples are left without their Python frames",
                            text >> 10,
                            MAX_INTERPRETED_TEXT >> 10
                        ));
                    }
                    return Vec::new();
                }
                let mut out = Vec::with_capacity(frames.len());
                for f in frames {
                    let (Some(name), Some(file)) = (self.intern(f.qualname), self.intern(f.file)) else {
                        return Vec::new();
                    };
                    out.push(InterpretedFrame { name, file, line: f.line.unwrap_or(0), entry: f.entry });
                }
                out
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::debug!(%e, pid, tid, "Python stack not read");
                Vec::new()
            }
        }
    }
}

impl Interpreters {
    /// The one copy of a frame's name or file kept, charged when new;
    /// `None` past the budget.
    fn intern(&mut self, s: String) -> Option<Arc<str>> {
        if let Some(kept) = self.names.get(s.as_str()) {
            return Some(kept.clone());
        }
        if let Some(Err(e)) = self.held.as_ref().map(|h| h.lock().expect("charge").grow(s.len() as u64 + 64)) {
            if !self.full {
                self.full = true;
                perfkit_target::notices::push(format!("Python frames: {e}; later samples are left without them"));
            }
            return None;
        }
        let kept: Arc<str> = s.into();
        self.names.insert(kept.clone());
        Some(kept)
    }
}

/// What the worker counted.
#[derive(Default)]
struct Aggregate {
    counts: HashMap<Key, u64>,
    trackers: HashMap<u32, MapsTracker>,
    files: HashMap<*const ModuleFile, u32>,
    modules: Modules,
    throttled: u64,
    lost: u64,
    idle: u64,
    unwind_incomplete: u64,
    stack_copy_too_small: u64,
    stack_bytes_needed: u64,
    /// The charge for the interpreted frames kept.
    interpreted: Option<Held>,
    /// A stack's interpreted frames were left out for the budget (said
    /// once).
    interpreted_full: bool,
}

// SAFETY: the raw pointers are only identities of `Arc`s the aggregate
// also holds (in `modules`); they are never dereferenced.
unsafe impl Send for Aggregate {}

impl Aggregate {
    fn into_profile(mut self, stats: PerfStats) -> PerfProfile {
        for (_, t) in self.trackers.drain() {
            self.modules.add_tracker(t);
        }
        let samples = self
            .counts
            .into_iter()
            .map(|((tgid, tid, comm, process, user, kernel, user_end, interpreted), count)| RawSample {
                tgid,
                tid,
                comm,
                process,
                user,
                kernel,
                count,
                kind: SampleKind::OnCpu,
                user_end,
                interpreted,
            })
            .collect();
        PerfProfile { samples, stats, modules: self.modules, _interpreted: self.interpreted }
    }
}

/// Unwinds and counts samples, in record order.
struct Worker {
    unwind: Unwind,
    stack_bytes: u32,
    all: bool,
    live: Arc<Live>,
    agg: Aggregate,
    unwinders: HashMap<u32, DwarfUnwinder>,
    /// The kernel's limit on a callchain's entries (`perf_event_max_stack`).
    max_stack: usize,
    comms: HashMap<u32, String>,
    refreshed: HashMap<u32, Instant>,
    /// Per-CPU sampling of processes: the processes kept, and whether
    /// their children join them.
    filter: Option<(HashSet<u32>, bool)>,
    /// With [`PerfConfig::hotspot`]: the JVMs among the sampled processes.
    jvms: Option<HashMap<u32, Jvm>>,
}

/// What a sampled process is, for walking Java frames.
enum Jvm {
    HotSpot(Box<HotSpot>),
    /// Not (yet) a readable JVM: looked at `tries` times, last then (a
    /// JVM sampled as it starts has no libjvm.so or no code cache yet).
    NotYet {
        tries: u32,
        last: Instant,
    },
    /// Not one, or one that cannot be read.
    Never,
}

/// How many times a process is looked at for a JVM (every
/// [`LOOK_AGAIN`]): a JVM makes its code cache within its first second.
const JVM_LOOKS: u32 = 50;

impl Jvm {
    /// The JVM of `pid`, looked at (again) when due.
    fn of(jvms: &mut HashMap<u32, Jvm>, pid: u32) -> Option<&HotSpot> {
        let tries = match jvms.get(&pid) {
            Some(Jvm::HotSpot(_)) | Some(Jvm::Never) => None,
            Some(Jvm::NotYet { tries, last }) => (last.elapsed() >= LOOK_AGAIN).then_some(*tries),
            None if jvms.len() >= MAX_INTERPRETERS => None,
            None => Some(0),
        };
        if let Some(tries) = tries {
            let found = match HotSpot::attach(pid, perfkit_safeio::Budget::process()) {
                Ok(hs) => {
                    if let Some(why) = hs.inlining_unsupported() {
                        perfkit_target::notices::push(format!("Java frames: inlined methods not shown: {why}"));
                    }
                    Jvm::HotSpot(Box::new(hs))
                }
                Err(
                    e @ (HotSpotError::Corrupt { .. }
                    | HotSpotError::Budget(_)
                    | HotSpotError::Late { .. }
                    | HotSpotError::File { .. }),
                ) => {
                    perfkit_target::notices::push(format!("Java frames: {e}"));
                    Jvm::Never
                }
                Err(e) if tries + 1 < JVM_LOOKS => {
                    tracing::debug!(%e, "not a readable JVM yet");
                    Jvm::NotYet { tries: tries + 1, last: Instant::now() }
                }
                Err(e @ HotSpotError::Unsupported { .. }) => {
                    perfkit_target::notices::push(format!("Java frames: {e}"));
                    Jvm::Never
                }
                Err(_) => Jvm::Never,
            };
            jvms.insert(pid, found);
        }
        match jvms.get(&pid) {
            Some(Jvm::HotSpot(hs)) => Some(hs),
            _ => None,
        }
    }
}

impl Worker {
    fn new(unwind: Unwind, stack_bytes: u32, all: bool, live: Arc<Live>) -> Self {
        Self {
            unwind,
            stack_bytes,
            all,
            live,
            agg: Aggregate::default(),
            unwinders: HashMap::new(),
            max_stack: MAX_FRAMES,
            comms: HashMap::new(),
            refreshed: HashMap::new(),
            filter: None,
            jvms: None,
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Sample { pid, tid, callchain, regs, stack, interpreted, .. } => {
                self.sample(pid, tid, &callchain, regs, &stack, interpreted)
            }
            Msg::Mapped { pid } => {
                if self.agg.trackers.contains_key(&pid) {
                    self.refresh(pid, true);
                }
            }
            Msg::Comm { pid, tid, comm } => {
                self.comms.insert(tid, perfkit_model::escape_bytes(&comm));
                let _ = pid;
            }
            Msg::Fork { pid, ppid } => {
                if let Some((set, true)) = &mut self.filter
                    && pid != ppid
                    && set.contains(&ppid)
                {
                    set.insert(pid);
                }
            }
            Msg::Lost(n) => self.agg.lost += n,
            Msg::Throttled => self.agg.throttled += 1,
        }
    }

    /// Re-reads a process's mappings (at most every 5 ms unless forced).
    fn refresh(&mut self, pid: u32, force: bool) {
        let now = Instant::now();
        if !force && self.refreshed.get(&pid).is_some_and(|t| now.duration_since(*t) < Duration::from_millis(5)) {
            return;
        }
        self.refreshed.insert(pid, now);
        let tracker = self.agg.trackers.entry(pid).or_insert_with(|| MapsTracker::new(pid));
        let _ = tracker.refresh();
        if let Some(u) = self.unwinders.get_mut(&pid) {
            u.update(tracker);
        }
    }

    fn comm(&mut self, pid: u32, tid: u32) -> String {
        if let Some(c) = self.comms.get(&tid) {
            return c.clone();
        }
        let name = fs::read(format!("/proc/{pid}/task/{tid}/comm"))
            .or_else(|_| fs::read(format!("/proc/{pid}/comm")))
            .map(|s| perfkit_model::escape_bytes(s.strip_suffix(b"\n").unwrap_or(&s)))
            .unwrap_or_else(|_| format!("[tid {tid}]"));
        self.comms.insert(tid, name.clone());
        name
    }

    fn sample(
        &mut self,
        pid: u32,
        tid: u32,
        callchain: &[u64],
        regs: Option<[u64; 3]>,
        stack: &[u8],
        mut interpreted: Vec<InterpretedFrame>,
    ) {
        if tid == 0 {
            if self.filter.is_none() {
                self.agg.idle += 1;
            }
            return;
        }
        if let Some((set, _)) = &self.filter
            && !set.contains(&pid)
        {
            return;
        }
        if !self.agg.trackers.contains_key(&pid) {
            self.refresh(pid, true);
        }
        let comm = self.comm(pid, tid);
        let process = if pid == tid { comm.clone() } else { self.comm(pid, pid) };
        let (kernel, mut user) = split_callchain(callchain);
        let mut end = StackEnd::Complete;
        if self.unwind == Unwind::Dwarf {
            user = match regs {
                Some([bp, sp, ip]) if !stack.is_empty() || ip != 0 => {
                    let tracker = self.agg.trackers.get(&pid).expect("refreshed above");
                    let unwinder = self.unwinders.entry(pid).or_default();
                    unwinder.update(tracker);
                    let hotspot = self.jvms.as_mut().and_then(|jvms| Jvm::of(jvms, pid));
                    let mut out = unwinder.unwind(ip, sp, bp, stack, hotspot);
                    // A Go program's walk that stopped at one of its
                    // runtime's stack switches goes on with the frame
                    // pointers, which Go keeps across them.
                    if matches!(out.end, UnwindEnd::StackCopy(_) | UnwindEnd::ReadFault | UnwindEnd::Failed)
                        && out.frames.last().is_some_and(|&a| unwinder.in_go(a))
                        && crate::unwind::splice_frame_pointers(&mut out.frames, &user)
                    {
                        // A callchain the kernel cut at its limit, or a
                        // stack at perfkit's own, is no root.
                        out.end = if callchain.len() >= self.max_stack || out.frames.len() >= MAX_FRAMES {
                            UnwindEnd::DepthLimit
                        } else {
                            UnwindEnd::Root
                        };
                    }
                    // Interpreted Java frames, named from their Method*:
                    // each takes the place of its frame of the interpreter.
                    if let Some(hs) = hotspot
                        && !out.java.is_empty()
                    {
                        interpreted = java_frames(hs, &out.java);
                        let names = self.agg.modules.code_names.entry(pid).or_default();
                        name_code(hs, &out.java, names);
                        let inlined = self.agg.modules.inlined.entry(pid).or_default();
                        read_inlined(hs, &out.java, &out.frames, inlined);
                    }
                    match out.end {
                        UnwindEnd::Root => {}
                        UnwindEnd::DepthLimit => end = StackEnd::Truncated(Truncation::Depth),
                        UnwindEnd::StackCopy(needed) => {
                            end = StackEnd::Truncated(Truncation::StackCopy);
                            self.agg.unwind_incomplete += 1;
                            self.agg.stack_copy_too_small += 1;
                            self.agg.stack_bytes_needed =
                                self.agg.stack_bytes_needed.max(needed.max(self.stack_bytes as u64 + 8));
                        }
                        UnwindEnd::ReadFault => {
                            end = StackEnd::Truncated(Truncation::ReadFault);
                            self.agg.unwind_incomplete += 1;
                        }
                        // Where the walk stopped in anonymous memory or in
                        // no mapping, perfkit-symbols says so.
                        UnwindEnd::Failed => {
                            end = StackEnd::Truncated(Truncation::NoCfi);
                            self.agg.unwind_incomplete += 1;
                        }
                    }
                    out.frames
                }
                // A kernel thread, or a sample without user registers.
                _ => Vec::new(),
            };
        }
        let user = self.encode(pid, user);
        let stack = |v: Vec<u64>| if v.is_empty() { RawStack::None } else { RawStack::Frames(v) };
        let mut key = (pid, tid, comm, process, stack(user), stack(kernel), end, interpreted);
        if !key.7.is_empty() && !self.agg.counts.contains_key(&key) {
            // A new stack's Python frames (their strings are charged once,
            // by the drain thread).
            let bytes = (key.7.len() * std::mem::size_of::<InterpretedFrame>() + 64) as u64;
            if let Some(Err(e)) = self.agg.interpreted.as_ref().map(|h| h.lock().expect("charge").grow(bytes)) {
                if !self.agg.interpreted_full {
                    self.agg.interpreted_full = true;
                    perfkit_target::notices::push(format!(
                        "Python frames: {e}; later new stacks are left without them"
                    ));
                }
                key.7 = Vec::new();
            }
        }
        *self.agg.counts.entry(key).or_default() += 1;
        self.live.samples.fetch_add(1, Ordering::Relaxed);
        let _ = self.all;
    }

    /// Turns user addresses into places in files, now, while the mappings
    /// are those the sample saw.
    fn encode(&mut self, pid: u32, mut frames: Vec<u64>) -> Vec<u64> {
        for frame in frames.iter_mut() {
            let addr = *frame;
            let mut found = self.agg.trackers.get(&pid).and_then(|t| t.find(addr).cloned());
            if found.is_none() {
                // A mapping newer than the last read (its record may come
                // from another CPU's buffer later).
                self.refresh(pid, false);
                found = self.agg.trackers.get(&pid).and_then(|t| t.find(addr).cloned());
            }
            let Some(m) = found else { continue };
            let Some(file) = &m.file else { continue };
            let next = self.agg.files.len() as u32 + 1;
            let id = *self.agg.files.entry(Arc::as_ptr(file)).or_insert(next);
            self.agg.modules.files.entry(id).or_insert_with(|| file.clone());
            *frame = RawFrame::InFile { file: id, offset: m.file_offset(addr) }.encode();
        }
        frames
    }
}

/// The most code blobs of one JVM named from its code cache.
const MAX_CODE_NAMES: usize = 1 << 16;

/// Names the code blobs of these frames not named yet, as HotSpot's perf
/// map does: a compiled method by its `Method*`, any other blob by its
/// own name (`Interpreter`, `StubRoutines (1)`...). The symbolizer uses
/// them where no perf map names the code. A blob that replaced another at
/// the same address takes its place.
fn name_code(hs: &HotSpot, frames: &[JavaFrame], names: &mut std::collections::BTreeMap<u64, (u64, Arc<str>)>) {
    for f in frames {
        if names.get(&f.code.0).is_some_and(|(end, _)| *end == f.code.1) || names.len() >= MAX_CODE_NAMES {
            continue;
        }
        let name = match (f.kind, f.method) {
            (BlobKind::Nmethod, Some(m)) => hs.method_name(m),
            _ => hs.kind(f.name).map(|(_, n)| n),
        };
        match name {
            Ok(n) => {
                names.insert(f.code.0, (f.code.1, n));
            }
            Err(e) => tracing::debug!(%e, "code blob not named"),
        }
    }
}

/// The most places of one JVM's compiled code whose inlined methods are
/// remembered; past it, all are forgotten.
const MAX_INLINED_PLACES: usize = 1 << 16;

/// Reads the methods inlined at the places of these compiled frames
/// (`frames` being the stack's PCs) not read yet, or read when other code
/// was there: [`HotSpot::inlined`], named, outermost first, under the
/// address the symbolizer looks the frame up by (a return address less
/// 1). A place whose debug information cannot be read gets none.
fn read_inlined(hs: &HotSpot, java: &[JavaFrame], frames: &[u64], places: &mut HashMap<u64, InlinedAt>) {
    for f in java.iter().filter(|f| f.kind == BlobKind::Nmethod) {
        let (Some(method), Some(&pc)) = (f.method, frames.get(f.index)) else { continue };
        let key = if f.index == 0 { pc } else { pc.saturating_sub(1) };
        if places.get(&key).is_some_and(|at| at.code == f.code) {
            continue;
        }
        if places.len() >= MAX_INLINED_PLACES {
            places.clear();
        }
        let names = hs
            .inlined(f.blob, f.code.0, method, pc)
            .and_then(|chain| chain.iter().rev().map(|&m| hs.method_name(m)).collect::<Result<Vec<_>, _>>());
        let names = match names {
            Ok(n) => n.into(),
            Err(e) => {
                tracing::debug!(%e, "inlined Java methods not read");
                Arc::from([])
            }
        };
        places.insert(key, InlinedAt { code: f.code, names });
    }
}

/// The interpreted Java frames of a stack, named, innermost first; none
/// when one of them cannot be named (a frame read as it changed), so that
/// the others do not take the wrong places.
fn java_frames(hs: &HotSpot, frames: &[JavaFrame]) -> Vec<InterpretedFrame> {
    let empty: Arc<str> = Arc::from("");
    let mut out = Vec::with_capacity(frames.len());
    for f in frames.iter().filter(|f| f.kind == BlobKind::Interpreter) {
        let Some(method) = f.method else { continue };
        match hs.method_name(method) {
            Ok(name) => out.push(InterpretedFrame { name, file: empty.clone(), line: 0, entry: true }),
            Err(e) => {
                tracing::debug!(%e, "interpreted Java frame not named");
                return Vec::new();
            }
        }
    }
    out
}

/// Splits a perf callchain into kernel and user frames (each innermost
/// first), dropping the context markers.
fn split_callchain(chain: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    let mut in_user = false;
    for &addr in chain {
        if addr >= PERF_CONTEXT_MAX {
            in_user = addr == PERF_CONTEXT_USER;
            if addr != PERF_CONTEXT_KERNEL && addr != PERF_CONTEXT_USER {
                // Hypervisor or guest contexts: not ours.
                in_user = false;
            }
            continue;
        }
        if in_user { user.push(addr) } else { kernel.push(addr) }
    }
    (kernel, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callchains_split_at_context_markers() {
        let chain =
            [PERF_CONTEXT_KERNEL, 0xffff_ffff_8100_0000, 0xffff_ffff_8100_0100, PERF_CONTEXT_USER, 0x401000, 0x401100];
        let (k, u) = split_callchain(&chain);
        assert_eq!(k, [0xffff_ffff_8100_0000, 0xffff_ffff_8100_0100]);
        assert_eq!(u, [0x401000, 0x401100]);
        let (k, u) = split_callchain(&[PERF_CONTEXT_USER, 0x401000]);
        assert!(k.is_empty());
        assert_eq!(u, [0x401000]);
    }

    #[test]
    fn online_cpu_list_parses() {
        assert!(!online_cpus().unwrap().is_empty());
    }

    #[test]
    fn buffers_grow_with_the_rate() {
        assert_eq!(buffer_size(99, 1200, 1), 64 << 10);
        // 4999 Hz of 16 KiB stack copies: about a quarter second.
        assert_eq!(buffer_size(4999, 16_640, 1), 32 << 20);
        assert!(buffer_size(999, 8448, 1) >= 2 << 20);
    }
}
