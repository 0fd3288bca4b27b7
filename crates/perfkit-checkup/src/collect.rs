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
    tools::{Runqlat, RunqlatPer},
};
use perfkit_procstat::{CollectError, CollectOptions, Collector, ProcessSelection};
use perfkit_profiler::{Profiler, Target};
use perfkit_safeio::{Budget, BudgetError};

use crate::{
    observe::{FunctionShare, LatencyHistogram, Observations, ObservationsBuilder, OnCpuProfile, Snapshot},
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
    /// Trace block I/O latency per disk with eBPF (`biolatency -D`, of
    /// the whole host), with the same privileges. On by default.
    pub block_io_latency: bool,
    /// Take an on-CPU profile at this rate (samples a second per CPU; low,
    /// so that the checkup costs little), with perfkit-profiler's default
    /// stack walking (frame pointers alone leave the user frames of a
    /// whole-host profile unmapped). `None`: no profile. 19 Hz by default.
    pub on_cpu_hz: Option<u64>,
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
            block_io_latency: true,
            on_cpu_hz: Some(19),
            off_cpu_min_block: Some(Duration::from_millis(1)),
        }
    }
}

/// Takes snapshots of a procfs and sysfs tree.
#[derive(Clone, Debug)]
pub struct Observer {
    collector: Collector,
    proc: PathBuf,
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
        Self { collector: Collector::new(), proc: PathBuf::from("/proc"), budget: Budget::process().clone() }
    }

    /// A captured tree under `root`, as [`Collector::with_root`].
    pub fn with_root(root: impl AsRef<Path>, ticks_per_second: u64, page_size: u64) -> Self {
        Self {
            collector: Collector::with_root(root.as_ref(), ticks_per_second, page_size),
            proc: root.as_ref().join("proc"),
            budget: Budget::process().clone(),
        }
    }

    /// One snapshot: every process (whose totals name the culprits) but
    /// the observer's own, or only `scope_pids` when given.
    pub fn snapshot(&self, scope_pids: &[u32]) -> Result<Snapshot, ObserveError> {
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
        Ok(Snapshot { sample, tcp })
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
            Runqlat::start(selection, RunqlatPer::All)
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
            Profiler::start(target, &o).map_err(|e| notes.push(format!("on-CPU profile not taken: {e}"))).ok()
        });
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
            Profiler::start(target, &crate::stacks::off_cpu_options(min))
                .map_err(|e| notes.push(format!("off-CPU stacks not taken: {e}")))
                .ok()
                .map(|session| (session, min))
        });
        let start = Instant::now();
        builder.push(self.snapshot(&options.scope_pids)?)?;
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
            if stop.load(Ordering::SeqCst) {
                builder.push(self.snapshot(&options.scope_pids)?)?;
                break;
            }
            let due = next.min(end);
            if now >= due {
                builder.push(self.snapshot(&options.scope_pids)?)?;
                if due >= end {
                    break;
                }
                next += interval;
                continue;
            }
            thread::sleep((due - now).min(Duration::from_millis(100)));
        }
        progress(options.duration.min(start.elapsed()));
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
