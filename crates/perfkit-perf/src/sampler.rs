//! Sampling a process with perf_event_open.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::fd::AsRawFd,
};

use perf_event::{
    Builder, Counter, SampleFlag, Sampler,
    data::Record,
    events::{Hardware, Software},
};
use perfkit_profile::raw::{RawSample, RawStack};
use perfkit_symbols::MapsTracker;

use crate::{
    error::{PerfError, classify},
    unwind::{DwarfUnwinder, MAX_FRAMES},
};

/// How user stacks are walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// What to sample.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PerfConfig {
    /// The process: all its threads, and threads it creates later.
    pub pid: u32,
    /// The sampling event.
    pub event: SampleEvent,
    /// Samples per second per thread on the CPU clock.
    pub frequency_hz: u64,
    /// How user stacks are walked.
    pub unwind: Unwind,
    /// Bytes of user stack copied per sample in DWARF mode (at most 65528).
    pub stack_bytes: u32,
    /// Kernel stacks too (needs `perf_event_paranoid` ≤ 1 or CAP_PERFMON).
    pub kernel: bool,
    /// Start counting only when the target calls exec (for a command held
    /// before exec).
    pub enable_on_exec: bool,
}

impl PerfConfig {
    /// Frame-pointer sampling of `pid` at 99 Hz with kernel stacks.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            event: SampleEvent::CpuClock,
            frequency_hz: 99,
            unwind: Unwind::FramePointer,
            stack_bytes: 8192,
            kernel: true,
            enable_on_exec: false,
        }
    }
}

/// Counters of a sampling run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerfStats {
    /// Samples of the target counted.
    pub samples: u64,
    /// Samples the kernel dropped because a ring buffer was full.
    pub lost: u64,
    /// Times the kernel throttled sampling (too high a rate).
    pub throttled: u64,
    /// Samples of other processes (children of the target), not counted.
    pub other_processes: u64,
    /// Bytes read from the ring buffers.
    pub bytes: u64,
    /// Threads attached at start.
    pub threads: u64,
    /// DWARF mode: samples whose unwinding stopped at the first frame.
    pub unwind_failed: u64,
}

/// The result: unique stacks with counts, ready for `perfkit-symbols`.
#[derive(Debug)]
pub struct PerfProfile {
    /// Unique (thread name, user stack, kernel stack) and their counts.
    pub samples: Vec<RawSample>,
    /// What happened along the way.
    pub stats: PerfStats,
    /// The target's executable mappings, for symbolization.
    pub maps: MapsTracker,
}

type Key = (u32, RawStack, RawStack);

/// A running perf_event sampler.
pub struct PerfSampler {
    /// Frames per callchain: kernel.perf_event_max_stack, at most
    /// [`MAX_FRAMES`] (the kernel refuses more with EOVERFLOW).
    max_stack: u16,
    /// One ring buffer per CPU.
    leaders: Vec<Sampler>,
    /// Events of further threads, writing into their CPU's leader.
    followers: Vec<Counter>,
    state: State,
}

/// Everything but the events: what records update.
struct State {
    config: PerfConfig,
    maps: MapsTracker,
    unwinder: Option<DwarfUnwinder>,
    counts: HashMap<Key, u64>,
    comms: HashMap<u32, String>,
    stats: PerfStats,
}

impl std::fmt::Debug for PerfSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfSampler").field("pid", &self.state.config.pid).field("stats", &self.state.stats).finish()
    }
}

/// perf's register numbers on x86-64: BP, SP, IP, in this order in samples.
#[cfg(target_arch = "x86_64")]
const REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);

const PERF_CONTEXT_MAX: u64 = -4095i64 as u64;
const PERF_CONTEXT_KERNEL: u64 = -128i64 as u64;
const PERF_CONTEXT_USER: u64 = -512i64 as u64;

fn online_cpus() -> Result<Vec<usize>, PerfError> {
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

impl PerfSampler {
    /// Opens events on every thread of the target on every online CPU and
    /// starts sampling (at the target's exec with `enable_on_exec`).
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
        let pid = config.pid;
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(PerfError::NoSuchProcess(pid));
        }
        let cpus = online_cpus()?;
        let max_stack = fs::read_to_string("/proc/sys/kernel/perf_event_max_stack")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(127)
            .min(MAX_FRAMES) as u16;
        let mut sampler = Self {
            max_stack,
            leaders: Vec::with_capacity(cpus.len()),
            followers: Vec::new(),
            state: State {
                config: config.clone(),
                maps: MapsTracker::new(pid),
                unwinder: (config.unwind == Unwind::Dwarf).then(DwarfUnwinder::new),
                counts: HashMap::new(),
                comms: HashMap::new(),
                stats: PerfStats::default(),
            },
        };
        // Attach every thread; threads created meanwhile by an attached
        // thread inherit its events, others are caught by listing again.
        let mut attached: HashSet<u32> = HashSet::new();
        loop {
            let tids: Vec<u32> = threads_of(pid).into_iter().filter(|t| !attached.contains(t)).collect();
            if tids.is_empty() {
                break;
            }
            for tid in tids {
                match sampler.attach(tid, &cpus) {
                    Ok(()) => {
                        attached.insert(tid);
                    }
                    // The thread exited between listing and attaching.
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
        sampler.state.stats.threads = attached.len() as u64;
        sampler.state.refresh_maps();
        if !config.enable_on_exec {
            for l in &mut sampler.leaders {
                l.enable().map_err(|source| PerfError::Io { what: "enabling perf events", source })?;
            }
            for f in &mut sampler.followers {
                f.enable().map_err(|source| PerfError::Io { what: "enabling perf events", source })?;
            }
        }
        Ok(sampler)
    }

    fn builder(&self, tid: u32, cpu: usize) -> Builder<'static> {
        let c = &self.state.config;
        let mut b = match c.event {
            SampleEvent::CpuClock => Builder::new(Software::CPU_CLOCK),
            SampleEvent::TaskClock => Builder::new(Software::TASK_CLOCK),
            SampleEvent::Cycles => Builder::new(Hardware::CPU_CYCLES),
            SampleEvent::Instructions => Builder::new(Hardware::INSTRUCTIONS),
        };
        b.observe_pid(tid as i32)
            .one_cpu(cpu)
            .sample_frequency(c.frequency_hz)
            .inherit(true)
            .enabled(false)
            .enable_on_exec(c.enable_on_exec)
            .exclude_kernel(!c.kernel)
            .exclude_hv(true)
            .mmap(true)
            .mmap2(true)
            .comm(true)
            .comm_exec(true)
            .task(true)
            .sample_id_all(true);
        let mut flags =
            SampleFlag::IP | SampleFlag::TID | SampleFlag::TIME | SampleFlag::PERIOD | SampleFlag::CALLCHAIN;
        if c.unwind == Unwind::Dwarf {
            #[cfg(target_arch = "x86_64")]
            b.sample_regs_user(REGS_MASK);
            b.sample_stack_user(c.stack_bytes).exclude_callchain_user(true);
            flags |= SampleFlag::REGS_USER | SampleFlag::STACK_USER;
        }
        b.sample(flags);
        b.sample_max_stack(self.max_stack);
        b
    }

    fn attach(&mut self, tid: u32, cpus: &[usize]) -> Result<(), PerfError> {
        let buffer = match self.state.config.unwind {
            Unwind::Dwarf => 1 << 20,
            Unwind::FramePointer => 256 << 10,
        };
        for (i, &cpu) in cpus.iter().enumerate() {
            let counter = self.builder(tid, cpu).build().map_err(|e| {
                if e.raw_os_error() == Some(libc::EINVAL)
                    && let Some(max) = max_sample_rate().filter(|m| self.state.config.frequency_hz > *m)
                {
                    return PerfError::FrequencyTooHigh { hz: self.state.config.frequency_hz, max };
                }
                match classify("opening a sampling event", Some(tid), e) {
                    PerfError::Unsupported { .. } => {
                        PerfError::Unsupported { event: format!("sampling on {}", self.state.config.event.name()) }
                    }
                    other => other,
                }
            })?;
            if i >= self.leaders.len() {
                let sampler = counter.sampled(buffer).map_err(|e| classify("mapping the perf ring buffer", None, e))?;
                self.leaders.push(sampler);
            } else {
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

    /// Counters so far.
    pub fn stats(&self) -> PerfStats {
        self.state.stats
    }

    /// Reads what the ring buffers hold: call often enough (every 100 ms or
    /// so) that they do not fill; samples lost to full buffers are counted.
    pub fn poll(&mut self) {
        let state = &mut self.state;
        for leader in &mut self.leaders {
            while let Some(record) = leader.next_record() {
                state.stats.bytes += record.len() as u64;
                match record.parse_record() {
                    Ok(parsed) => state.handle(parsed),
                    Err(e) => tracing::debug!(%e, "unparsed perf record"),
                }
            }
        }
    }

    /// Refreshes the target's mappings (call now and then while it runs,
    /// so symbolization works after it exits).
    pub fn refresh_maps(&mut self) {
        self.state.refresh_maps();
    }

    /// Stops sampling, reads what is left, and returns the unique stacks.
    pub fn finish(mut self) -> PerfProfile {
        for l in &mut self.leaders {
            let _ = l.disable();
        }
        for f in &mut self.followers {
            let _ = f.disable();
        }
        self.poll();
        self.state.into_profile()
    }
}

impl State {
    fn refresh_maps(&mut self) {
        let _ = self.maps.refresh();
        if let Some(u) = &mut self.unwinder {
            u.update(&self.maps);
        }
    }

    fn handle(&mut self, record: Record<'_>) {
        let target = self.config.pid;
        match record {
            Record::Sample(s) => {
                if s.pid() != Some(target) {
                    self.stats.other_processes += 1;
                    return;
                }
                let tid = s.tid().unwrap_or(target);
                if !self.comms.contains_key(&tid) {
                    // Read the name while the thread is alive: one renamed
                    // before sampling started has no comm record.
                    self.comm(tid);
                }
                let (kernel, mut user) = split_callchain(s.callchain().unwrap_or(&[]));
                if let Some(unwinder) = &mut self.unwinder {
                    user = match (s.regs_user(), s.stack_user()) {
                        (Some(regs), Some(stack)) if regs.regs.len() >= 3 => {
                            let (bp, sp, ip) = (regs.regs[0], regs.regs[1], regs.regs[2]);
                            let frames = unwinder.unwind(ip, sp, bp, stack);
                            if frames.len() <= 1 {
                                self.stats.unwind_failed += 1;
                            }
                            frames
                        }
                        _ => Vec::new(),
                    };
                }
                let stack = |v: Vec<u64>| if v.is_empty() { RawStack::None } else { RawStack::Frames(v) };
                *self.counts.entry((tid, stack(user), stack(kernel))).or_default() += 1;
                self.stats.samples += 1;
            }
            Record::Mmap2(perf_event::data::Mmap2 { pid, .. }) | Record::Mmap(perf_event::data::Mmap { pid, .. })
                if pid == target =>
            {
                self.refresh_maps()
            }
            Record::Comm(c) if c.pid == target => {
                self.comms.insert(c.tid, String::from_utf8_lossy(&c.comm).into_owned());
            }
            Record::Lost(l) => self.stats.lost += l.lost,
            Record::LostSamples(l) => self.stats.lost += l.lost,
            Record::Throttle(_) => self.stats.throttled += 1,
            _ => {}
        }
    }

    /// Thread name of `tid`, from comm records or /proc.
    fn comm(&mut self, tid: u32) -> String {
        if let Some(c) = self.comms.get(&tid) {
            return c.clone();
        }
        let name = fs::read_to_string(format!("/proc/{}/task/{tid}/comm", self.config.pid))
            .or_else(|_| fs::read_to_string(format!("/proc/{}/comm", self.config.pid)))
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_else(|_| format!("[tid {tid}]"));
        self.comms.insert(tid, name.clone());
        name
    }

    fn into_profile(mut self) -> PerfProfile {
        let _ = self.maps.refresh();
        let counts = std::mem::take(&mut self.counts);
        // Thread names for every tid first, while /proc may still have them.
        let tids: HashSet<u32> = counts.keys().map(|k| k.0).collect();
        let names: HashMap<u32, String> = tids.into_iter().map(|t| (t, self.comm(t))).collect();
        let mut merged: HashMap<(String, RawStack, RawStack), u64> = HashMap::new();
        for ((tid, user, kernel), n) in counts {
            *merged.entry((names[&tid].clone(), user, kernel)).or_default() += n;
        }
        let tgid = self.config.pid;
        let samples = merged
            .into_iter()
            .map(|((comm, user, kernel), count)| RawSample { tgid, comm, user, kernel, count })
            .collect();
        PerfProfile { samples, stats: self.stats, maps: self.maps }
    }
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
}
