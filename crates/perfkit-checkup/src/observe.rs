//! Observations: the time series and per-process totals the rules read.
//! Plain data, built from raw snapshots here or by any other tool.

use std::collections::{BTreeMap, HashMap};

use perfkit_procstat::{Sample, model};
use perfkit_safeio::{Budget, BudgetError, Charge};
use serde::{Deserialize, Serialize};

use crate::{
    cgroup::{self, CgroupSnapshot, CpuCounters, MemoryCounters},
    kmsg::KernelMessage,
    tcp::TcpCounters,
};

/// One instant: procstat's raw sample, the TCP counters, the counters of
/// `/proc/vmstat` procstat does not keep, and the cgroups.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Snapshot {
    /// `/proc` and `/sys` as perfkit-procstat reads them.
    pub sample: Sample,
    /// `/proc/net/snmp` and `/proc/net/netstat`, when readable.
    pub tcp: Option<TcpCounters>,
    /// `/proc/vmstat`: `workingset_refault_file` and `oom_kill`, when read.
    pub vmstat_extra: Option<VmstatExtra>,
    /// The memory and CPU cgroups' counters, when read.
    pub cgroups: Option<CgroupSnapshot>,
}

impl Snapshot {
    /// A snapshot of procstat's sample and the TCP counters only.
    pub fn new(sample: Sample, tcp: Option<TcpCounters>) -> Self {
        Self { sample, tcp, vmstat_extra: None, cgroups: None }
    }
}

/// Counters of `/proc/vmstat` beyond procstat's, since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmstatExtra {
    /// `workingset_refault_file`: file pages read again soon after their
    /// eviction (the page cache is too small for the working set).
    pub refault_file: u64,
    /// `oom_kill`: processes the OOM killer killed.
    pub oom_kills: u64,
}

impl VmstatExtra {
    /// From the text of `/proc/vmstat`; missing counters are 0.
    pub fn parse(text: &[u8]) -> Self {
        let f = cgroup::parse_flat(text);
        Self {
            refault_file: f.get("workingset_refault_file").copied().unwrap_or(0),
            oom_kills: f.get("oom_kill").copied().unwrap_or(0),
        }
    }
}

/// Everything observed over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Observations {
    /// Seconds observed (first to last snapshot).
    pub duration_seconds: f64,
    /// Online CPUs.
    pub cpus: u32,
    /// Memory of the host, KiB.
    pub memory_total_kib: u64,
    /// The processes under investigation (`-p`); empty: the whole host.
    pub scope_pids: Vec<u32>,
    /// One entry per interval between two snapshots.
    pub intervals: Vec<Interval>,
    /// Each process seen in at least one interval and active in the window
    /// (or in scope), with its averages over the whole window (highest CPU
    /// first).
    pub processes: Vec<ProcessUsage>,
    /// Run-queue latency over the window (eBPF `runqlat`, of the processes
    /// in scope or of every thread), when it could be traced.
    pub run_queue_latency: Option<LatencyHistogram>,
    /// Block I/O latency per disk with I/O in the window (eBPF
    /// `biolatency`, host-wide), when it could be traced.
    #[serde(default)]
    pub block_io_latency: Option<Vec<crate::latency::DiskLatency>>,
    /// An on-CPU profile over the window at a low rate (of the processes
    /// in scope or of the whole host), when it could be taken.
    pub on_cpu: Option<OnCpuProfile>,
    /// Processes the OOM killer killed in the window (`/proc/vmstat`
    /// `oom_kill`), when read.
    pub oom_kills: Option<u64>,
    /// Memory and CPU cgroups with a limit, a quota, or OOM kills.
    pub cgroups: CgroupObservations,
    /// The kernel log: new messages of the window and errors before it
    /// (`/dev/kmsg`, root), when it could be read.
    pub kernel: Option<KernelLog>,
    /// Off-CPU stacks over the window per process (the culprits' once
    /// [`Observations::retain_off_cpu`] kept only theirs), when they
    /// could be taken.
    #[serde(default)]
    pub off_cpu: Option<crate::stacks::OffCpuStacks>,
    /// Run-queue lengths, execs and TCP opens by port, traced over the
    /// window (root), when they could be.
    #[serde(default)]
    pub activity: Option<crate::activity::Activity>,
    /// What could not be observed, and why (no privileges for eBPF...).
    pub notes: Vec<String>,
}

/// Cgroups over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CgroupObservations {
    /// The memory controller's version (`v1`, `v2`), when found.
    pub memory_version: Option<cgroup::Version>,
    /// Memory groups with a limit (`memory.max`, `memory.high`,
    /// `memory.limit_in_bytes`), OOM kills in the window, or tasks stalled
    /// on memory (v2 `memory.pressure`).
    pub memory: Vec<CgroupMemoryUsage>,
    /// The CPU controller's version, when found.
    pub cpu_version: Option<cgroup::Version>,
    /// CPU groups with a quota or throttled in the window.
    pub cpu: Vec<CgroupCpuUsage>,
}

/// A memory cgroup over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CgroupMemoryUsage {
    /// Path below the hierarchy's mount (`/system.slice/x.service`).
    pub path: String,
    /// `memory.max` (v2), `memory.limit_in_bytes` (v1), KiB.
    pub limit_kib: Option<u64>,
    /// `memory.high` (v2), KiB.
    pub high_kib: Option<u64>,
    /// The most memory it was charged, page cache included, KiB.
    pub peak_kib: u64,
    /// The most of its working set: charged memory less inactive page
    /// cache (as the kubelet counts it), KiB.
    pub peak_working_set_kib: u64,
    /// That working set, percent of the lower of its limits.
    pub working_set_percent_of_limit: Option<f64>,
    /// File pages read again soon after their eviction, per second.
    pub refaults_per_s: f64,
    /// Major page faults of its tasks per second.
    pub major_faults_per_s: f64,
    /// Times the limit was reached in the window.
    pub limit_hits: u64,
    /// OOM kills in the group in the window.
    pub oom_kills: u64,
    /// Share of the window its tasks stalled on memory (v2 `memory.pressure`).
    pub psi_some_percent: Option<f64>,
    /// Share of the window all its tasks stalled on memory at once (v2).
    pub psi_full_percent: Option<f64>,
    /// Its processes at the end of the window (for the notable groups).
    pub pids: Vec<u32>,
}

/// A CPU cgroup over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CgroupCpuUsage {
    /// Path below the hierarchy's mount.
    pub path: String,
    /// Its CPU bandwidth quota, in CPUs (`cpu.max`, `cpu.cfs_quota_us`).
    pub quota_cpus: Option<f64>,
    /// Enforcement periods in the window in which it ran.
    pub periods: u64,
    /// Periods in which it used up its quota and was throttled.
    pub throttled_periods: u64,
    /// Throttled periods, percent of its periods.
    pub throttled_percent: f64,
    /// Time its tasks were throttled, seconds.
    pub throttled_seconds: f64,
    /// Its processes at the end of the window (when throttled).
    pub pids: Vec<u32>,
}

/// The kernel log around the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KernelLog {
    /// Seconds since boot when the window started (message timestamps
    /// are since boot too).
    pub window_start_seconds: f64,
    /// Messages logged during the window, oldest first (the newest 500).
    pub during: Vec<KernelMessage>,
    /// Errors logged before the window (OOM kills, hung tasks, lockups,
    /// I/O and file system errors), the newest 50.
    pub before_errors: Vec<KernelMessage>,
    /// How many of each class were logged before the window.
    pub before_counts: std::collections::BTreeMap<String, u64>,
    /// Messages left out to stay within the counts above.
    pub dropped: u64,
    /// Messages the kernel's ring overwrote before they were read.
    pub lost: u64,
}

/// What an on-CPU profile says in brief: where the CPU time went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OnCpuProfile {
    /// Samples per second per CPU.
    pub frequency_hz: u64,
    /// Samples taken (idle left out).
    pub samples: u64,
    /// Functions by self time (the innermost frame, as `perf report`),
    /// most first.
    pub top_functions: Vec<FunctionShare>,
    /// The profile's folded stacks (rooted by process name), for its
    /// flame graph and `--compare`'s differential one.
    #[serde(default)]
    pub stacks: Vec<crate::stacks::FoldedStack>,
}

/// One function's self time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FunctionShare {
    /// Folded name, with perfkit's `_[k]` suffix for kernel frames.
    pub name: String,
    pub samples: u64,
    /// Of all samples.
    pub percent: f64,
}

/// A log2 latency histogram, as bcc prints it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// Values counted.
    pub count: u64,
    /// Their mean, microseconds.
    pub mean_usecs: f64,
    /// Median, at the buckets' resolution (a bucket's upper bound).
    pub p50_usecs: u64,
    /// 99th percentile, at the buckets' resolution.
    pub p99_usecs: u64,
    /// The buckets from the first to the last non-empty one.
    pub buckets: Vec<LatencyBucket>,
}

/// One bucket: values in `[low_usecs, high_usecs]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LatencyBucket {
    pub low_usecs: u64,
    pub high_usecs: u64,
    pub count: u64,
}

impl LatencyHistogram {
    /// From perfkit-probes' histogram (microsecond log2 buckets).
    pub fn from_probe(h: &perfkit_probes::tools::Histogram) -> Self {
        use perfkit_probes::tools::Histogram;
        let count = h.count();
        let buckets = h
            .used()
            .map(|(first, last)| {
                (first..=last)
                    .map(|i| {
                        let (low_usecs, high_usecs) = Histogram::bounds_us(i);
                        LatencyBucket { low_usecs, high_usecs, count: h.counts[i] }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            count,
            mean_usecs: if count > 0 { round2(h.sum_ns as f64 / 1000.0 / count as f64) } else { 0.0 },
            p50_usecs: h.quantile_us(0.5).unwrap_or(0),
            p99_usecs: h.quantile_us(0.99).unwrap_or(0),
            buckets,
        }
    }
}

/// The host during one interval. Percentages are of the interval; rates
/// are per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Interval {
    /// Seconds since the first snapshot, at the end of the interval.
    pub end_seconds: f64,
    /// Length of the interval, seconds.
    pub seconds: f64,
    /// All CPUs together, by mode.
    pub cpu: CpuModes,
    /// Each CPU's busy percentage.
    pub per_cpu: Vec<CpuBusy>,
    /// Runnable tasks (`procs_running`, running ones included, as vmstat's r).
    pub runnable: u32,
    /// Tasks blocked on I/O (vmstat's b).
    pub blocked: u32,
    /// One-minute load average.
    pub load_1m: f64,
    /// Context switches per second.
    pub context_switches_per_s: f64,
    /// Share of the interval with tasks stalled, by PSI (`None` without PSI).
    pub pressure: Option<PressureShares>,
    /// Memory.
    pub memory: MemoryInterval,
    /// Each disk.
    pub disks: Vec<DiskInterval>,
    /// Each network interface.
    pub interfaces: Vec<InterfaceInterval>,
    /// TCP, when `/proc/net/snmp` was readable.
    pub tcp: Option<TcpInterval>,
}

/// One CPU's busy share of an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuBusy {
    /// The CPU's number.
    pub cpu: u32,
    /// 100 - idle - iowait - steal.
    pub busy_percent: f64,
}

/// CPU time by mode, percent of all CPUs (as mpstat's `all` row).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CpuModes {
    pub usr_percent: f64,
    pub nice_percent: f64,
    pub sys_percent: f64,
    pub iowait_percent: f64,
    pub irq_percent: f64,
    pub soft_percent: f64,
    pub steal_percent: f64,
    pub idle_percent: f64,
}

impl CpuModes {
    /// Time running something: 100 - idle - iowait - steal.
    pub fn busy_percent(&self) -> f64 {
        (100.0 - self.idle_percent - self.iowait_percent - self.steal_percent).max(0.0)
    }
}

/// PSI stall shares over the interval (`/proc/pressure/*` totals), percent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PressureShares {
    pub cpu_some_percent: f64,
    pub memory_some_percent: f64,
    pub memory_full_percent: f64,
    pub io_some_percent: f64,
    pub io_full_percent: f64,
}

/// Memory during an interval: levels at its end, rates over it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MemoryInterval {
    pub available_kib: u64,
    pub cache_kib: u64,
    /// Reclaimable slab (`SReclaimable`).
    pub slab_reclaimable_kib: u64,
    pub swap_used_kib: u64,
    pub swap_in_kib_per_s: f64,
    pub swap_out_kib_per_s: f64,
    pub major_faults_per_s: f64,
    /// File pages refaulted per second (`workingset_refault_file`): page
    /// cache thrashing when high.
    pub refaults_per_s: f64,
}

/// One disk during an interval (iostat -x).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DiskInterval {
    pub device: String,
    pub util_percent: f64,
    /// Average time of a request (reads and writes), queueing included.
    pub await_ms: f64,
    /// Average number of requests in flight (aqu-sz).
    pub queue_size: f64,
    pub iops: f64,
    pub kib_per_s: f64,
}

/// One network interface during an interval (sar -n DEV,EDEV).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct InterfaceInterval {
    pub iface: String,
    pub rx_kib_per_s: f64,
    pub tx_kib_per_s: f64,
    /// Of the link speed; `None` when the speed is unknown.
    pub util_percent: Option<f64>,
    /// Receive and transmit errors.
    pub errors_per_s: f64,
    /// Receive and transmit drops.
    pub drops_per_s: f64,
}

/// TCP during an interval (sar -n TCP,ETCP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TcpInterval {
    pub segments_out_per_s: f64,
    pub retransmits_per_s: f64,
    pub in_errors_per_s: f64,
    /// Connections opened and accepted.
    pub opens_per_s: f64,
    pub listen_overflows_per_s: f64,
    pub listen_drops_per_s: f64,
}

/// A process over the window: averages over the whole window (not only
/// the time it existed), as shares of one CPU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ProcessUsage {
    pub pid: u32,
    pub comm: String,
    /// CPU time, percent of one CPU.
    pub cpu_percent: f64,
    /// Time runnable but waiting for a CPU (schedstat), percent of the
    /// window; `None` without schedstat.
    pub wait_percent: Option<f64>,
    pub read_kib_per_s: f64,
    pub write_kib_per_s: f64,
    /// Time waiting for block I/O (delay accounting), percent of the window.
    pub io_delay_percent: f64,
    pub major_faults_per_s: f64,
    pub voluntary_switches_per_s: f64,
    pub involuntary_switches_per_s: f64,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn rate(now: u64, then: u64, secs: f64) -> f64 {
    if secs > 0.0 { round2(now.saturating_sub(then) as f64 / secs) } else { 0.0 }
}

#[derive(Default)]
struct ProcTotals {
    comm: String,
    cpu_s: f64,
    wait_s: Option<f64>,
    read_kib: f64,
    write_kib: f64,
    iodelay_ticks: u64,
    majflt: f64,
    vol: f64,
    invol: f64,
}

impl Observations {
    /// Builds observations from snapshots in time order (at least two for
    /// any interval). `scope_pids`: the processes under investigation, or
    /// empty for the whole host. Charges the process's budget as
    /// [`ObservationsBuilder`] does.
    pub fn from_snapshots(snapshots: &[Snapshot], scope_pids: &[u32]) -> Result<Self, BudgetError> {
        let mut builder = ObservationsBuilder::new(scope_pids, Budget::process());
        for s in snapshots {
            builder.push(s.clone())?;
        }
        Ok(builder.finish())
    }
}

/// Builds [`Observations`] one snapshot at a time, keeping only the last
/// snapshot and the per-process totals. What it keeps per process (the
/// name is the target's) is charged to a [`Budget`].
pub struct ObservationsBuilder {
    obs: Observations,
    first: Option<(f64, f64)>,
    prev: Option<Snapshot>,
    procs: HashMap<(u32, u64), ProcTotals>,
    first_vmstat: Option<VmstatExtra>,
    mem_groups: BTreeMap<String, MemTrack>,
    cpu_groups: BTreeMap<String, (CpuCounters, CpuCounters)>,
    charge: Charge,
}

/// A memory group's first and last counters, and its peaks.
struct MemTrack {
    first: MemoryCounters,
    last: MemoryCounters,
    peak: u64,
    peak_ws: u64,
}

impl ObservationsBuilder {
    /// An empty window; `scope_pids` as in [`Observations::scope_pids`].
    pub fn new(scope_pids: &[u32], budget: &Budget) -> Self {
        Self {
            obs: Observations { scope_pids: scope_pids.to_vec(), ..Observations::default() },
            first: None,
            prev: None,
            procs: HashMap::new(),
            first_vmstat: None,
            mem_groups: BTreeMap::new(),
            cpu_groups: BTreeMap::new(),
            charge: budget.start("checkup's per-process totals"),
        }
    }

    /// Adds the next snapshot (later than the previous one).
    pub fn push(&mut self, cur: Snapshot) -> Result<(), BudgetError> {
        let (origin, _) = *self.first.get_or_insert((cur.sample.uptime, cur.sample.uptime));
        if let Some(prev) = self.prev.take() {
            self.obs.intervals.push(interval(&prev, &cur, origin));
            let secs = model::elapsed(Some(&prev.sample), &cur.sample);
            let starts: HashMap<u32, u64> = cur.sample.processes.iter().map(|p| (p.pid, p.start_ticks)).collect();
            for row in model::processes(Some(&prev.sample), &cur.sample) {
                let key = (row.pid, starts.get(&row.pid).copied().unwrap_or(0));
                if !self.procs.contains_key(&key) {
                    self.charge.grow((std::mem::size_of::<ProcTotals>() + 32 + row.command.len()) as u64)?;
                }
                let t = self.procs.entry(key).or_default();
                t.comm.clone_from(&row.command);
                t.cpu_s += row.cpu_pct / 100.0 * secs;
                if let Some(w) = row.wait {
                    *t.wait_s.get_or_insert(0.0) += w / 100.0 * secs;
                }
                t.read_kib += row.kb_rd_s.unwrap_or(0.0) * secs;
                t.write_kib += row.kb_wr_s.unwrap_or(0.0) * secs;
                t.iodelay_ticks += row.iodelay;
                t.majflt += row.majflt_s * secs;
                t.vol += row.cswch_s * secs;
                t.invol += row.nvcswch_s * secs;
            }
        }
        if let Some(first) = &mut self.first {
            first.1 = cur.sample.uptime;
        }
        if self.first_vmstat.is_none() {
            self.first_vmstat = cur.vmstat_extra;
        }
        if let (Some(a), Some(b)) = (self.first_vmstat, cur.vmstat_extra) {
            self.obs.oom_kills = Some(b.oom_kills.saturating_sub(a.oom_kills));
        }
        if let Some(cg) = &cur.cgroups {
            self.obs.cgroups.memory_version = cg.memory_version;
            self.obs.cgroups.cpu_version = cg.cpu_version;
            for (path, m) in &cg.memory {
                let ws = m.current.saturating_sub(m.inactive_file);
                match self.mem_groups.get_mut(path) {
                    Some(t) => {
                        t.peak = t.peak.max(m.current);
                        t.peak_ws = t.peak_ws.max(ws);
                        t.last = m.clone();
                    }
                    None => {
                        self.charge.grow((std::mem::size_of::<MemTrack>() + 2 * path.len()) as u64)?;
                        let t = MemTrack { first: m.clone(), last: m.clone(), peak: m.current, peak_ws: ws };
                        self.mem_groups.insert(path.clone(), t);
                    }
                }
            }
            for (path, c) in &cg.cpu {
                match self.cpu_groups.get_mut(path) {
                    Some(t) => t.1 = *c,
                    None => {
                        self.charge
                            .grow((std::mem::size_of::<(CpuCounters, CpuCounters)>() + 2 * path.len()) as u64)?;
                        self.cpu_groups.insert(path.clone(), (*c, *c));
                    }
                }
            }
        }
        self.obs.cpus = cur.sample.cpu.as_ref().map_or(0, |c| c.per_cpu.len() as u32);
        self.obs.memory_total_kib = cur.sample.memory.map_or(0, |m| m.total / 1024);
        self.prev = Some(cur);
        Ok(())
    }

    /// Seconds from the first snapshot to the last.
    pub fn elapsed_seconds(&self) -> f64 {
        self.first.map_or(0.0, |(a, b)| (b - a).max(0.0))
    }

    /// The observations.
    pub fn finish(self) -> Observations {
        let mut obs = self.obs;
        obs.duration_seconds = round2(self.first.map_or(0.0, |(a, b)| (b - a).max(0.0)));
        let tps = self.prev.as_ref().map_or(100, |p| p.sample.ticks_per_second.max(1)) as f64;
        let window = obs.duration_seconds;
        if window > 0.0 {
            let per_s = |v: f64| round2(v / window);
            let pct = |v: f64| round2(100.0 * v / window);
            obs.processes = self
                .procs
                .into_iter()
                .map(|((pid, _), t)| ProcessUsage {
                    pid,
                    comm: t.comm,
                    cpu_percent: pct(t.cpu_s),
                    wait_percent: t.wait_s.map(pct),
                    read_kib_per_s: per_s(t.read_kib),
                    write_kib_per_s: per_s(t.write_kib),
                    io_delay_percent: pct(t.iodelay_ticks as f64 / tps),
                    major_faults_per_s: per_s(t.majflt),
                    voluntary_switches_per_s: per_s(t.vol),
                    involuntary_switches_per_s: per_s(t.invol),
                })
                // Idle all window long: nothing to say (pidstat leaves them out too).
                .filter(|p| {
                    p.cpu_percent > 0.0
                        || p.wait_percent.is_some_and(|w| w > 0.0)
                        || p.read_kib_per_s + p.write_kib_per_s > 0.0
                        || p.major_faults_per_s > 0.0
                        || p.voluntary_switches_per_s + p.involuntary_switches_per_s > 0.0
                        || obs.scope_pids.contains(&p.pid)
                })
                .collect();
            obs.processes.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent).then(a.pid.cmp(&b.pid)));
            let per_s = |v: u64| round2(v as f64 / window);
            obs.cgroups.memory = self
                .mem_groups
                .into_iter()
                .map(|(path, t)| {
                    let (f, l) = (&t.first, &t.last);
                    let limit = match (l.max, l.high) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let psi = |a: Option<u64>, b: Option<u64>| {
                        a.zip(b).map(|(a, b)| round2((b.saturating_sub(a) as f64 / 1e6 / window * 100.0).min(100.0)))
                    };
                    CgroupMemoryUsage {
                        path,
                        limit_kib: l.max.map(|v| v / 1024),
                        high_kib: l.high.map(|v| v / 1024),
                        peak_kib: t.peak / 1024,
                        peak_working_set_kib: t.peak_ws / 1024,
                        working_set_percent_of_limit: limit
                            .filter(|l| *l > 0)
                            .map(|l| round2(100.0 * t.peak_ws as f64 / l as f64)),
                        refaults_per_s: per_s(l.refault_file.saturating_sub(f.refault_file)),
                        major_faults_per_s: per_s(l.major_faults.saturating_sub(f.major_faults)),
                        limit_hits: l.limit_hits.saturating_sub(f.limit_hits),
                        oom_kills: l.oom_kills.saturating_sub(f.oom_kills),
                        psi_some_percent: psi(f.pressure_some_us, l.pressure_some_us),
                        psi_full_percent: psi(f.pressure_full_us, l.pressure_full_us),
                        pids: Vec::new(),
                    }
                })
                .filter(|g| {
                    g.limit_kib.is_some()
                        || g.high_kib.is_some()
                        || g.oom_kills > 0
                        || g.psi_some_percent.is_some_and(|p| p > 0.0)
                })
                .collect();
            obs.cgroups.cpu = self
                .cpu_groups
                .into_iter()
                .map(|(path, (f, l))| {
                    let periods = l.periods.saturating_sub(f.periods);
                    let throttled = l.throttled.saturating_sub(f.throttled);
                    CgroupCpuUsage {
                        path,
                        quota_cpus: l.quota_cpus.map(round2),
                        periods,
                        throttled_periods: throttled,
                        throttled_percent: if periods > 0 {
                            round2(100.0 * throttled as f64 / periods as f64)
                        } else {
                            0.0
                        },
                        throttled_seconds: round2(l.throttled_us.saturating_sub(f.throttled_us) as f64 / 1e6),
                        pids: Vec::new(),
                    }
                })
                .filter(|g| g.quota_cpus.is_some() || g.throttled_periods > 0)
                .collect();
        }
        obs
    }
}

fn interval(prev: &Snapshot, cur: &Snapshot, origin_uptime: f64) -> Interval {
    let (p, c) = (&prev.sample, &cur.sample);
    let secs = model::elapsed(Some(p), c);
    let rows = model::cpu(Some(p), c);
    let modes = |r: &model::CpuRow| CpuModes {
        usr_percent: round2(r.usr),
        nice_percent: round2(r.nice),
        sys_percent: round2(r.sys),
        iowait_percent: round2(r.iowait),
        irq_percent: round2(r.irq),
        soft_percent: round2(r.soft),
        steal_percent: round2(r.steal),
        idle_percent: round2(r.idle),
    };
    let cpu = rows.first().map(modes).unwrap_or_default();
    let per_cpu = rows
        .iter()
        .skip(1)
        .filter_map(|r| Some(CpuBusy { cpu: r.cpu.parse().ok()?, busy_percent: round2(modes(r).busy_percent()) }))
        .collect();
    let pressure = (c.pressure.is_some() && p.pressure.is_some()).then(|| {
        let rows = model::psi(Some(p), c);
        let find = |name: &str| rows.iter().find(|r| r.resource == name);
        let some = |name: &str| find(name).map_or(0.0, |r| round2(r.some_pct));
        let full = |name: &str| find(name).and_then(|r| r.full_pct).map_or(0.0, round2);
        PressureShares {
            cpu_some_percent: some("cpu"),
            memory_some_percent: some("memory"),
            memory_full_percent: full("memory"),
            io_some_percent: some("io"),
            io_full_percent: full("io"),
        }
    });
    let memory = match (c.memory, c.vmstat, p.vmstat) {
        (Some(m), Some(v), Some(pv)) => MemoryInterval {
            available_kib: m.available / 1024,
            cache_kib: m.cached / 1024,
            slab_reclaimable_kib: m.slab_reclaimable / 1024,
            swap_used_kib: m.swap_total.saturating_sub(m.swap_free) / 1024,
            swap_in_kib_per_s: rate(v.pswpin * c.page_size / 1024, pv.pswpin * c.page_size / 1024, secs),
            swap_out_kib_per_s: rate(v.pswpout * c.page_size / 1024, pv.pswpout * c.page_size / 1024, secs),
            major_faults_per_s: rate(v.pgmajfault, pv.pgmajfault, secs),
            refaults_per_s: match (prev.vmstat_extra, cur.vmstat_extra) {
                (Some(a), Some(b)) => rate(b.refault_file, a.refault_file, secs),
                _ => 0.0,
            },
        },
        _ => MemoryInterval::default(),
    };
    let disks = model::disk(Some(p), c, false)
        .into_iter()
        .map(|d| {
            let iops = d.r_s + d.w_s;
            let await_ms = if iops > 0.0 { (d.r_await * d.r_s + d.w_await * d.w_s) / iops } else { 0.0 };
            DiskInterval {
                device: d.device,
                util_percent: round2(d.util),
                await_ms: (await_ms * 1000.0).round() / 1000.0,
                queue_size: round2(d.aqu_sz),
                iops: round2(iops),
                kib_per_s: round2(d.rkb_s + d.wkb_s),
            }
        })
        .collect();
    let before: HashMap<&str, &perfkit_procstat::sample::Interface> =
        p.interfaces.iter().map(|i| (i.name.as_str(), i)).collect();
    let interfaces = c
        .interfaces
        .iter()
        .filter_map(|i| {
            let b = before.get(i.name.as_str())?;
            let rx = rate(i.rx_bytes, b.rx_bytes, secs) / 1024.0;
            let tx = rate(i.tx_bytes, b.tx_bytes, secs) / 1024.0;
            let util_percent = i.speed_mbps.filter(|s| *s > 0).map(|mbps| {
                // sar's %ifutil: the busier direction (full duplex), of the speed.
                let link_kib_s = mbps as f64 * 1e6 / 8.0 / 1024.0;
                round2(100.0 * rx.max(tx) / link_kib_s)
            });
            Some(InterfaceInterval {
                iface: i.name.clone(),
                rx_kib_per_s: round2(rx),
                tx_kib_per_s: round2(tx),
                util_percent,
                errors_per_s: rate(i.rx_errors + i.tx_errors, b.rx_errors + b.tx_errors, secs),
                drops_per_s: rate(i.rx_dropped + i.tx_dropped, b.rx_dropped + b.tx_dropped, secs),
            })
        })
        .collect();
    let tcp = match (prev.tcp, cur.tcp) {
        (Some(b), Some(n)) => Some(TcpInterval {
            segments_out_per_s: rate(n.out_segs, b.out_segs, secs),
            retransmits_per_s: rate(n.retrans_segs, b.retrans_segs, secs),
            in_errors_per_s: rate(n.in_errs, b.in_errs, secs),
            opens_per_s: rate(n.active_opens + n.passive_opens, b.active_opens + b.passive_opens, secs),
            listen_overflows_per_s: rate(n.listen_overflows, b.listen_overflows, secs),
            listen_drops_per_s: rate(n.listen_drops, b.listen_drops, secs),
        }),
        _ => None,
    };
    let cs = match (&c.cpu, &p.cpu) {
        (Some(n), Some(b)) => rate(n.context_switches, b.context_switches, secs),
        _ => 0.0,
    };
    Interval {
        end_seconds: round2(c.uptime - origin_uptime),
        seconds: round2(secs),
        cpu,
        per_cpu,
        runnable: c.cpu.as_ref().map_or(0, |x| x.procs_running),
        blocked: c.cpu.as_ref().map_or(0, |x| x.procs_blocked),
        load_1m: c.load.map_or(0.0, |l| l.one),
        context_switches_per_s: cs,
        pressure,
        memory,
        disks,
        interfaces,
        tcp,
    }
}
