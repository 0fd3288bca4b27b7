//! The live side: snapshots of `/proc` and `/sys` taken at an interval
//! until the duration ends or a stop flag is raised.

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use perfkit_probes::{
    Selection,
    tools::{Runqlat, RunqlatConfig, RunqlatPer},
};
use perfkit_procstat::{CollectError, CollectOptions, Collector, ProcessSelection};
use perfkit_profiler::{Session, Target};
use perfkit_safeio::{Budget, BudgetError};

use crate::{
    cgroup::Hierarchies,
    kmsg::{KeptMessages, KmsgReader},
    observe::{
        FunctionShare, KernelLog, LatencyHistogram, Observations, ObservationsBuilder, OnCpuProfile, Snapshot,
        VmstatExtra,
    },
    tcp,
};

/// Why observing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// A sample could not be taken.
    #[error(transparent)]
    Collect(#[from] CollectError),
    /// Past the memory budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// How long and what to observe.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObserveOptions {
    /// The window; 60 s by default.
    pub duration: Duration,
    /// Between snapshots; 1 s by default (shorter when the window is).
    pub interval: Duration,
    /// The processes under investigation; empty: the whole host.
    pub scope_pids: Vec<u32>,
    /// Trace run-queue latency with eBPF (root, or CAP_BPF and
    /// CAP_PERFMON); without the privileges a note says so and the rest
    /// is observed. On by default.
    pub run_queue_latency: bool,
    /// Trace run-queue lengths per CPU, execs and TCP opens by port with
    /// eBPF ([`crate::activity`], root). On by default.
    pub activity: bool,
    /// Trace block I/O latency per disk with eBPF (`biolatency -D`, of
    /// the whole host), with the same privileges. On by default.
    pub block_io_latency: bool,
    /// Take an on-CPU profile at this rate (samples a second per CPU; low,
    /// so that the checkup costs little), with perfkit-profiler's default
    /// stack walking (frame pointers alone leave the user frames of a
    /// whole-host profile unmapped). `None`: no profile. 19 Hz by default.
    pub on_cpu_hz: Option<u64>,
    /// Read the memory and CPU cgroups (limits, refaults, OOM kills,
    /// throttling) with every snapshot. On by default.
    pub cgroups: bool,
    /// Read the kernel log (`/dev/kmsg`: root, or CAP_SYSLOG where
    /// `kernel.dmesg_restrict` is set): errors before the window and the
    /// messages during it. On by default.
    pub kernel_log: bool,
    /// Take off-CPU stacks of the whole host (or of `scope_pids`) over the
    /// window, per process, counting blocks of at least this long (eBPF,
    /// as `perfkit offcpu`, preemption included: a CPU-bound culprit's
    /// wait for a CPU shows there). `None`: none. 1 ms by default.
    pub off_cpu_min_block: Option<Duration>,
}

impl Default for ObserveOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            interval: Duration::from_secs(1),
            scope_pids: Vec::new(),
            run_queue_latency: true,
            activity: true,
            block_io_latency: true,
            on_cpu_hz: Some(19),
            cgroups: true,
            kernel_log: true,
            off_cpu_min_block: Some(Duration::from_millis(1)),
        }
    }
}

/// Takes snapshots of a procfs and sysfs tree.
#[derive(Clone, Debug)]
pub struct Observer {
    collector: Collector,
    proc: PathBuf,
    kmsg: PathBuf,
    hierarchies: Hierarchies,
    budget: Budget,
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

/// The most read of `/proc/net/snmp` or `/proc/net/netstat` (a few KiB).
const NET_FILE_LIMIT: u64 = 256 << 10;

impl Observer {
    /// The live system.
    pub fn new() -> Self {
        let budget = Budget::process().clone();
        let hierarchies = Self::hierarchies(Path::new("/"), &budget);
        Self {
            collector: Collector::new(),
            proc: PathBuf::from("/proc"),
            kmsg: PathBuf::from("/dev/kmsg"),
            hierarchies,
            budget,
        }
    }

    /// The cgroup hierarchies mounted under `root`, from its `/proc/mounts`.
    fn hierarchies(root: &Path, budget: &Budget) -> Hierarchies {
        let path = root.join("proc/mounts");
        let mounts = fs::File::open(&path).ok().and_then(|f| {
            let _charge = budget.charge(NET_FILE_LIMIT, path.display()).ok()?;
            let mut buf = Vec::new();
            f.take(NET_FILE_LIMIT).read_to_end(&mut buf).ok()?;
            Some(buf)
        });
        mounts.map(|m| Hierarchies::from_mounts(&m, root)).unwrap_or_default()
    }

    /// A captured tree under `root`, as [`Collector::with_root`].
    pub fn with_root(root: impl AsRef<Path>, ticks_per_second: u64, page_size: u64) -> Self {
        let budget = Budget::process().clone();
        Self {
            collector: Collector::with_root(root.as_ref(), ticks_per_second, page_size),
            proc: root.as_ref().join("proc"),
            kmsg: root.as_ref().join("dev/kmsg"),
            hierarchies: Self::hierarchies(root.as_ref(), &budget),
            budget,
        }
    }

    /// One snapshot: every process (whose totals name the culprits) but
    /// the observer's own, or only `scope_pids` when given.
    pub fn snapshot(&self, scope_pids: &[u32]) -> Result<Snapshot, ObserveError> {
        self.snapshot_with(scope_pids, true)
    }

    fn snapshot_with(&self, scope_pids: &[u32], cgroups: bool) -> Result<Snapshot, ObserveError> {
        let mut options = CollectOptions::default();
        options.processes =
            if scope_pids.is_empty() { ProcessSelection::All } else { ProcessSelection::Pids(scope_pids.to_vec()) };
        let mut sample = self.collector.collect(&options)?;
        // The observer is not a culprit of what it observes.
        let me = std::process::id();
        sample.processes.retain(|p| p.pid != me);
        let snmp = self.read_small("net/snmp")?;
        let netstat = self.read_small("net/netstat")?;
        // A kernel without these files (or an unparsable one) gives no TCP
        // figures rather than failing the whole checkup.
        let tcp = snmp.and_then(|s| tcp::parse(&s, netstat.as_deref().unwrap_or_default()).ok());
        let vmstat_extra = self.read_small("vmstat")?.map(|v| VmstatExtra::parse(&v));
        let cgroups =
            if cgroups && !self.hierarchies.is_empty() { Some(self.hierarchies.snapshot(&self.budget)?) } else { None };
        Ok(Snapshot { sample, tcp, vmstat_extra, cgroups })
    }

    /// Reads a small `/proc` file, at most [`NET_FILE_LIMIT`] bytes,
    /// charged to the budget while held; `None` when it cannot be read.
    fn read_small(&self, rel: &str) -> Result<Option<Vec<u8>>, BudgetError> {
        let path = self.proc.join(rel);
        let Ok(file) = fs::File::open(&path) else { return Ok(None) };
        let _charge = self.budget.charge(NET_FILE_LIMIT, path.display())?;
        let mut buf = Vec::new();
        match file.take(NET_FILE_LIMIT).read_to_end(&mut buf) {
            Ok(_) => Ok(Some(buf)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(_) => Ok(None),
        }
    }

    /// Observes for `options.duration`, a snapshot every
    /// `options.interval`; a raised `stop` ends the window early (after
    /// one last snapshot, so the partial interval counts). `progress` is
    /// called with the time elapsed, ten times a second.
    pub fn observe(
        &self,
        options: &ObserveOptions,
        stop: &AtomicBool,
        mut progress: impl FnMut(Duration),
    ) -> Result<Observations, ObserveError> {
        let interval = options.interval.min(options.duration).max(Duration::from_millis(10));
        let mut builder = ObservationsBuilder::new(&options.scope_pids, &self.budget);
        let mut notes = Vec::new();
        let runqlat = if options.run_queue_latency {
            let selection = (!options.scope_pids.is_empty())
                .then(|| Selection::Processes { pids: options.scope_pids.clone(), follow_children: false });
            Runqlat::start({
                let mut c = RunqlatConfig::default();
                c.selection = selection;
                c.per = RunqlatPer::All;
                c
            })
            .map_err(|e| notes.push(format!("run-queue latency not traced: {e}")))
            .ok()
        } else {
            None
        };
        let profiler = options.on_cpu_hz.and_then(|hz| {
            let target = if options.scope_pids.is_empty() {
                Target::all()
            } else {
                Target::pids(&options.scope_pids)
                    .map_err(|e| notes.push(format!("on-CPU profile not taken: {e}")))
                    .ok()?
            };
            let mut o = perfkit_profiler::Options::default();
            o.frequency_hz = Some(hz);
            Session::start(target, &o).map_err(|e| notes.push(format!("on-CPU profile not taken: {e}"))).ok()
        });
        // The kernel log: everything before the window now, what is new
        // with each snapshot.
        let mut kmsg = if options.kernel_log {
            match KmsgReader::open(&self.kmsg) {
                Ok(reader) => Some(KmsgState::new(reader, &self.budget)?),
                Err(e) => {
                    notes.push(format!("kernel log not read ({}): {e}", self.kmsg.display()));
                    None
                }
            }
        } else {
            None
        };
        let biolatency = options
            .block_io_latency
            .then(|| {
                crate::latency::BlockLatency::start()
                    .map_err(|e| notes.push(format!("block I/O latency not traced: {e}")))
                    .ok()
            })
            .flatten();
        let off_cpu = options.off_cpu_min_block.and_then(|min| {
            let target = if options.scope_pids.is_empty() {
                Target::all()
            } else {
                Target::pids(&options.scope_pids)
                    .map_err(|e| notes.push(format!("off-CPU stacks not taken: {e}")))
                    .ok()?
            };
            Session::start(target, &crate::stacks::off_cpu_options(min))
                .map_err(|e| notes.push(format!("off-CPU stacks not taken: {e}")))
                .ok()
                .map(|session| (session, min))
        });
        let mut activity = options.activity.then(|| crate::activity::Tracing::start(&mut notes));
        let start = Instant::now();
        let first = self.snapshot_with(&options.scope_pids, options.cgroups)?;
        let window_start_uptime = first.sample.uptime;
        builder.push(first)?;
        if let Some(k) = &mut kmsg {
            k.read(true, &mut notes)?;
        }
        if let Some(a) = &mut activity {
            a.baseline(&mut notes);
        }
        // The waits counted before the first snapshot (while the profiler
        // started) are taken off at the end: the histogram covers the
        // window the snapshots cover.
        let runqlat = runqlat.and_then(|tool| match merged(&tool) {
            Ok(baseline) => Some((tool, baseline)),
            Err(e) => {
                notes.push(format!("run-queue latency not read: {e}"));
                None
            }
        });
        let biolatency = biolatency.and_then(|tool| {
            crate::latency::BlockLatency::baseline(tool)
                .map_err(|e| notes.push(format!("block I/O latency not read: {e}")))
                .ok()
        });
        let mut next = start + interval;
        let end = start + options.duration;
        loop {
            let now = Instant::now();
            progress(now - start);
            if let Some(k) = &mut kmsg {
                k.read(false, &mut notes)?;
            }
            if let Some(a) = &mut activity {
                a.drain();
            }
            if stop.load(Ordering::SeqCst) {
                builder.push(self.snapshot_with(&options.scope_pids, options.cgroups)?)?;
                break;
            }
            let due = next.min(end);
            if now >= due {
                builder.push(self.snapshot_with(&options.scope_pids, options.cgroups)?)?;
                if due >= end {
                    break;
                }
                next += interval;
                continue;
            }
            thread::sleep((due - now).min(Duration::from_millis(100)));
        }
        progress(options.duration.min(start.elapsed()));
        let window = start.elapsed().as_secs_f64();
        let activity = activity.map(|a| a.finish(window, &mut notes));
        let run_queue_latency = runqlat.and_then(|(tool, baseline)| match merged(&tool) {
            Ok(all) => Some(LatencyHistogram::from_probe(&all.since(&baseline))),
            Err(e) => {
                notes.push(format!("run-queue latency not read: {e}"));
                None
            }
        });
        let on_cpu = profiler.and_then(|session| match session.finish() {
            Ok(finished) => {
                let samples = finished.profile.total_samples();
                let top_functions = finished
                    .profile
                    .top_self(10)
                    .into_iter()
                    .map(|f| FunctionShare {
                        percent: if samples > 0 {
                            (10000.0 * f.count as f64 / samples as f64).round() / 100.0
                        } else {
                            0.0
                        },
                        name: f.folded_name(),
                        samples: f.count,
                    })
                    .collect();
                Some(OnCpuProfile {
                    frequency_hz: options.on_cpu_hz.unwrap_or(0),
                    samples,
                    top_functions,
                    stacks: crate::stacks::folded(&finished.profile),
                })
            }
            Err(e) => {
                notes.push(format!("on-CPU profile not read: {e}"));
                None
            }
        });
        let block_io_latency = biolatency
            .and_then(|b| b.finish().map_err(|e| notes.push(format!("block I/O latency not read: {e}"))).ok());
        let mut obs = builder.finish();
        if let Some(mut k) = kmsg {
            k.read(false, &mut notes)?;
            k.log.lost = k.reader.lost;
            k.log.dropped = k.before.dropped + k.during.dropped;
            k.log.before_errors = k.before.messages.drain(..).collect();
            k.log.during = k.during.messages.drain(..).collect();
            k.log.window_start_seconds = window_start_uptime;
            obs.kernel = Some(k.log);
        }
        // The processes of the groups the rules may blame.
        for g in &mut obs.cgroups.memory {
            if g.refaults_per_s > 0.0
                || g.oom_kills > 0
                || g.limit_hits > 0
                || g.psi_some_percent.is_some_and(|p| p > 0.0)
                || g.working_set_percent_of_limit.is_some_and(|p| p >= 50.0)
            {
                g.pids = self.hierarchies.memory_pids(&g.path, 256);
            }
        }
        for g in &mut obs.cgroups.cpu {
            if g.throttled_periods > 0 {
                g.pids = self.hierarchies.cpu_pids(&g.path, 256);
            }
        }
        // Only the processes that can be culprits are symbolized.
        let candidates = crate::stacks::off_cpu_candidates(&obs);
        obs.off_cpu = off_cpu.and_then(|(session, min)| match session.finish_keeping(Some(&candidates)) {
            Ok(finished) => Some(crate::stacks::off_cpu_by_process(&finished.profile, min.as_micros() as u64)),
            Err(e) => {
                notes.push(format!("off-CPU stacks not read: {e}"));
                None
            }
        });
        obs.block_io_latency = block_io_latency;
        obs.activity = activity;
        obs.run_queue_latency = run_queue_latency;
        obs.on_cpu = on_cpu;
        obs.notes = notes;
        Ok(obs)
    }
}

/// All of runqlat's histograms as one.
fn merged(tool: &Runqlat) -> Result<perfkit_probes::tools::Histogram, perfkit_probes::ProbeError> {
    let mut all = perfkit_probes::tools::Histogram::new(0, 0);
    for h in tool.histograms()? {
        for (a, c) in all.counts.iter_mut().zip(&h.counts) {
            *a = a.saturating_add(*c);
        }
        all.sum_ns = all.sum_ns.saturating_add(h.sum_ns);
    }
    Ok(all)
}

/// The kernel log while observing: errors before the window, then every
/// new message.
struct KmsgState {
    reader: KmsgReader,
    before: KeptMessages,
    during: KeptMessages,
    log: KernelLog,
    started: bool,
    failed: bool,
}

impl KmsgState {
    fn new(reader: KmsgReader, budget: &Budget) -> Result<Self, ObserveError> {
        let mut state = Self {
            reader,
            before: KeptMessages::new(50, budget, "kernel errors before the window"),
            during: KeptMessages::new(500, budget, "kernel messages of the window"),
            log: KernelLog::default(),
            started: false,
            failed: false,
        };
        // The records already in the ring: before the window.
        state.read(false, &mut Vec::new())?;
        Ok(state)
    }

    /// Reads what is new. `start`: the window starts now (what was read
    /// so far is before it).
    fn read(&mut self, start: bool, notes: &mut Vec<String>) -> Result<(), ObserveError> {
        let mut kept = Vec::new();
        if self.failed {
            return Ok(());
        }
        if let Err(e) = self.reader.read_available(|m| kept.push(m)) {
            notes.push(format!("kernel log read failed: {e}"));
            self.failed = true;
        }
        for m in kept {
            if self.started {
                self.during.push(m)?;
            } else if let Some(class) = m.class {
                *self.log.before_counts.entry(class.name().to_string()).or_default() += 1;
                self.before.push(m)?;
            }
        }
        if start {
            self.started = true;
        }
        Ok(())
    }
}
