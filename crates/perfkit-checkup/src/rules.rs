//! The USE rules: observations in, ranked findings out. No I/O.
//!
//! Each rule reads averages over the window (intervals weighted by their
//! length) and compares them with [`Thresholds`]; docs/CHECKUP.md gives
//! each threshold's source.

use serde::{Deserialize, Serialize};

use crate::{
    cgroup,
    kmsg::{KernelMessage, MessageClass},
    observe::{Interval, Observations, ProcessUsage},
};

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Resource {
    Cpu,
    Memory,
    Disk,
    Network,
    Process,
    Kernel,
}

impl Resource {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
            Resource::Network => "network",
            Resource::Process => "process",
            Resource::Kernel => "kernel",
        }
    }
}

/// The USE method's three questions. Ordered as findings are ranked at
/// equal severity: saturation and errors say more than utilization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Kind {
    Saturation,
    Errors,
    Utilization,
}

impl Kind {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Saturation => "saturation",
            Kind::Errors => "errors",
            Kind::Utilization => "utilization",
        }
    }
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One measured number and the thresholds it was judged by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Evidence {
    /// What was measured (`runnable_per_cpu`, `psi_cpu_some_percent`...).
    pub metric: String,
    /// Its average over the window.
    pub value: f64,
    /// At or past this: a warning (`None`: context, not judged).
    pub warning: Option<f64>,
    /// At or past this: critical.
    pub critical: Option<f64>,
    /// `true` when lower is worse (available memory).
    pub lower_is_worse: bool,
}

impl Evidence {
    fn new(metric: &str, value: f64, warning: f64, critical: f64) -> Self {
        Self {
            metric: metric.into(),
            value: round2(value),
            warning: Some(warning),
            critical: Some(critical),
            lower_is_worse: false,
        }
    }

    fn warning_only(metric: &str, value: f64, warning: f64) -> Self {
        Self {
            metric: metric.into(),
            value: round2(value),
            warning: Some(warning),
            critical: None,
            lower_is_worse: false,
        }
    }

    fn context(metric: &str, value: f64) -> Self {
        Self { metric: metric.into(), value: round2(value), warning: None, critical: None, lower_is_worse: false }
    }

    fn below(mut self) -> Self {
        self.lower_is_worse = true;
        self
    }

    fn past(&self, limit: Option<f64>) -> bool {
        match limit {
            Some(l) if self.lower_is_worse => self.value <= l,
            Some(l) => self.value >= l,
            None => false,
        }
    }

    /// The severity this number alone reaches, if any.
    pub fn level(&self) -> Option<Severity> {
        if self.past(self.critical) {
            Some(Severity::Critical)
        } else if self.past(self.warning) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// How far past its warning threshold (1.0 at the threshold).
    fn ratio(&self) -> f64 {
        match self.warning {
            Some(w) if self.lower_is_worse => w / self.value.max(1e-9),
            Some(w) if w > 0.0 => self.value / w,
            Some(_) => self.value.max(0.0) + 1.0,
            None => 0.0,
        }
    }
}

/// A process the finding blames, with its share of the resource's use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Culprit {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Share of the resource's use over the window, percent.
    pub share_percent: f64,
    /// CPU, percent of one CPU.
    pub cpu_percent: f64,
    /// Time waiting for a CPU, percent of the window (schedstat).
    pub wait_percent: Option<f64>,
    /// Storage read and written, KiB/s.
    pub io_kib_per_s: f64,
    /// Major faults per second.
    pub major_faults_per_s: f64,
}

/// A cgroup the finding blames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CgroupCulprit {
    /// Path below its hierarchy's mount.
    pub path: String,
    /// Its hierarchy's version, when known.
    pub version: Option<cgroup::Version>,
    /// Share of the resource's use over the window, percent.
    pub share_percent: f64,
    /// Its processes at the end of the window (the first 16).
    pub pids: Vec<u32>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// The resource.
    pub resource: Resource,
    /// Utilization, saturation or errors.
    pub kind: Kind,
    /// How bad.
    pub severity: Severity,
    /// The device or interface, for per-device findings.
    pub object: Option<String>,
    /// One line for people.
    pub title: String,
    /// The numbers, with their thresholds.
    pub evidence: Vec<Evidence>,
    /// The processes responsible, largest share first.
    pub culprits: Vec<Culprit>,
    /// The cgroups responsible (a throttled or memory-limited group).
    pub cgroups: Vec<CgroupCulprit>,
    /// What to run next.
    pub next: Vec<String>,
    /// Why the severity was lowered, when it was (`-p` scope).
    pub note: Option<String>,
    #[serde(skip)]
    score: f64,
}

/// One summary line per resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceLine {
    /// The resource.
    pub resource: Resource,
    /// Its figures over the window.
    pub line: String,
}

/// The analysis: findings ranked (worst first) and a line per resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Findings {
    /// Ranked: severity, then kind (saturation, errors, utilization),
    /// then how far past its threshold.
    pub findings: Vec<Finding>,
    /// One line per resource.
    pub summary: Vec<ResourceLine>,
}

impl Findings {
    /// The worst severity found, `None` when nothing was found.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// The thresholds of every rule: (warning, critical). docs/CHECKUP.md
/// gives their sources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct Thresholds {
    pub cpu_busy_percent: (f64, f64),
    pub cpu_single_busy_percent: (f64, f64),
    pub runnable_per_cpu: (f64, f64),
    pub psi_cpu_some_percent: (f64, f64),
    pub cpu_steal_percent: (f64, f64),
    pub memory_available_percent: (f64, f64),
    pub psi_memory_some_percent: (f64, f64),
    pub psi_memory_full_percent: (f64, f64),
    pub swap_kib_per_s: (f64, f64),
    pub major_faults_per_s: (f64, f64),
    pub disk_util_percent: (f64, f64),
    pub disk_queue_size: (f64, f64),
    pub psi_io_some_percent: (f64, f64),
    pub psi_io_full_percent: (f64, f64),
    pub interface_util_percent: (f64, f64),
    pub interface_errors_per_s: (f64, f64),
    pub interface_drops_per_s: (f64, f64),
    pub tcp_retransmit_percent: (f64, f64),
    /// Below this many retransmits per second the ratio is not judged.
    pub tcp_retransmits_min_per_s: f64,
    pub listen_overflows_per_s: (f64, f64),
    /// A memory cgroup's working set (charged less inactive page cache),
    /// percent of its limit.
    pub cgroup_working_set_percent: (f64, f64),
    /// File pages of a memory cgroup refaulted per second.
    pub cgroup_refaults_per_s: (f64, f64),
    /// Periods a CPU cgroup was throttled in, percent of its periods.
    pub cgroup_throttled_percent: (f64, f64),
    /// OOM kills in the window.
    pub oom_kills: (f64, f64),
    /// Hung tasks, lockups, I/O and file system errors logged in the window.
    pub kernel_errors: (f64, f64),
    /// Other kernel messages at level `err` or worse in the window.
    pub kernel_other_errors: (f64, f64),
    /// Errors logged before the window are a warning when the latest is
    /// this recent (seconds), else information.
    pub kernel_recent_seconds: f64,
    /// A process is a culprit from this share of the resource's use.
    pub culprit_min_share_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            cpu_busy_percent: (80.0, 95.0),
            cpu_single_busy_percent: (95.0, 99.0),
            runnable_per_cpu: (1.0, 2.0),
            psi_cpu_some_percent: (20.0, 50.0),
            cpu_steal_percent: (10.0, 25.0),
            memory_available_percent: (10.0, 5.0),
            psi_memory_some_percent: (10.0, 30.0),
            psi_memory_full_percent: (5.0, 15.0),
            swap_kib_per_s: (1.0, 1024.0),
            major_faults_per_s: (100.0, 1000.0),
            disk_util_percent: (60.0, 90.0),
            disk_queue_size: (1.0, 8.0),
            psi_io_some_percent: (10.0, 30.0),
            psi_io_full_percent: (5.0, 15.0),
            interface_util_percent: (70.0, 90.0),
            interface_errors_per_s: (1.0, 100.0),
            interface_drops_per_s: (10.0, 1000.0),
            tcp_retransmit_percent: (1.0, 5.0),
            tcp_retransmits_min_per_s: 1.0,
            listen_overflows_per_s: (0.01, 10.0),
            cgroup_working_set_percent: (90.0, 98.0),
            cgroup_refaults_per_s: (1000.0, 10000.0),
            cgroup_throttled_percent: (10.0, 50.0),
            oom_kills: (1.0, 1.0),
            kernel_errors: (1.0, 1.0),
            kernel_other_errors: (1.0, 100.0),
            kernel_recent_seconds: 3600.0,
            culprit_min_share_percent: 5.0,
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The average of `f` over the intervals, weighted by their length.
fn mean(obs: &Observations, f: impl Fn(&Interval) -> Option<f64>) -> Option<f64> {
    let (mut sum, mut secs) = (0.0, 0.0);
    for i in &obs.intervals {
        if let Some(v) = f(i) {
            sum += v * i.seconds;
            secs += i.seconds;
        }
    }
    (secs > 0.0).then(|| sum / secs)
}

fn ev(metric: &str, value: f64, t: (f64, f64)) -> Evidence {
    Evidence::new(metric, value, t.0, t.1)
}

struct Draft {
    resource: Resource,
    kind: Kind,
    object: Option<String>,
    title: String,
    evidence: Vec<Evidence>,
    culprits: Vec<Culprit>,
    next: Vec<String>,
    cgroups: Vec<CgroupCulprit>,
    /// The severity when no number is past its threshold (`None`: no finding).
    floor: Option<Severity>,
}

impl Draft {
    fn new(resource: Resource, kind: Kind, title: String) -> Self {
        Self {
            resource,
            kind,
            object: None,
            title,
            evidence: Vec::new(),
            culprits: Vec::new(),
            next: Vec::new(),
            cgroups: Vec::new(),
            floor: None,
        }
    }
}

fn culprit_of(p: &ProcessUsage, share: f64) -> Culprit {
    Culprit {
        pid: p.pid,
        comm: p.comm.clone(),
        share_percent: round2(share.min(100.0)),
        cpu_percent: p.cpu_percent,
        wait_percent: p.wait_percent,
        io_kib_per_s: round2(p.read_kib_per_s + p.write_kib_per_s),
        major_faults_per_s: p.major_faults_per_s,
    }
}

/// Culprits among a group's processes (`pids`), by `use_of` as shares of
/// the group's total; by CPU when the group has none of that use.
fn group_culprits(
    obs: &Observations,
    th: &Thresholds,
    pids: &[u32],
    use_of: impl Fn(&ProcessUsage) -> f64,
) -> Vec<Culprit> {
    let members: Vec<&ProcessUsage> = obs.processes.iter().filter(|p| pids.contains(&p.pid)).collect();
    let by = |f: &dyn Fn(&ProcessUsage) -> f64| {
        let total: f64 = members.iter().map(|p| f(p)).sum();
        let mut out: Vec<Culprit> = members
            .iter()
            .filter(|_| total > 0.0)
            .map(|p| (p, 100.0 * f(p) / total))
            .filter(|(_, share)| *share >= th.culprit_min_share_percent)
            .map(|(p, share)| culprit_of(p, share))
            .collect();
        out.sort_by(|a, b| b.share_percent.total_cmp(&a.share_percent).then(a.pid.cmp(&b.pid)));
        out.truncate(5);
        out
    };
    let out = by(&use_of);
    if out.is_empty() { by(&|p: &ProcessUsage| p.cpu_percent) } else { out }
}

fn cgroup_culprit(path: &str, version: Option<cgroup::Version>, share: f64, pids: &[u32]) -> CgroupCulprit {
    CgroupCulprit {
        path: path.to_string(),
        version,
        share_percent: round2(share),
        pids: pids.iter().copied().take(16).collect(),
    }
}

/// Culprits by `use_of`, as shares of `total` (the resource's whole use),
/// largest first, at most five.
fn culprits(obs: &Observations, th: &Thresholds, total: f64, use_of: impl Fn(&ProcessUsage) -> f64) -> Vec<Culprit> {
    if total <= 0.0 {
        return Vec::new();
    }
    let mut out: Vec<Culprit> = obs
        .processes
        .iter()
        .map(|p| (p, 100.0 * use_of(p) / total))
        .filter(|(_, share)| *share >= th.culprit_min_share_percent)
        .map(|(p, share)| culprit_of(p, share))
        .collect();
    out.sort_by(|a, b| b.share_percent.total_cmp(&a.share_percent).then(a.pid.cmp(&b.pid)));
    out.truncate(5);
    out
}

fn per_process(next: &mut Vec<String>, culprits: &[Culprit], command: impl Fn(u32) -> String) {
    if let Some(c) = culprits.first() {
        next.insert(0, command(c.pid));
    }
}

/// Reads the observations by the rules.
pub fn analyze(obs: &Observations, th: &Thresholds) -> Findings {
    let mut drafts = Vec::new();
    let cpus = obs.cpus.max(1) as f64;
    cpu_rules(obs, th, cpus, &mut drafts);
    memory_rules(obs, th, &mut drafts);
    disk_rules(obs, th, &mut drafts);
    network_rules(obs, th, &mut drafts);
    cgroup_rules(obs, th, &mut drafts);
    kernel_rules(obs, th, &mut drafts);

    let mut findings: Vec<Finding> = drafts
        .into_iter()
        .filter_map(|d| {
            let severity = d.evidence.iter().filter_map(Evidence::level).max().max(d.floor)?;
            let score = d.evidence.iter().filter(|e| e.level().is_some()).map(Evidence::ratio).fold(0.0, f64::max);
            // Culprits read from procfs are in scope by construction; the
            // ones a kernel message names need not be.
            let in_scope = d.culprits.iter().any(|c| obs.scope_pids.contains(&c.pid))
                || d.cgroups.iter().any(|g| g.pids.iter().any(|p| obs.scope_pids.contains(p)));
            let (severity, note) = if !obs.scope_pids.is_empty() && !in_scope {
                (Severity::Info, Some("none of the processes in scope (-p) is a culprit".to_string()))
            } else {
                (severity, None)
            };
            Some(Finding {
                resource: d.resource,
                kind: d.kind,
                severity,
                object: d.object,
                title: d.title,
                evidence: d.evidence,
                culprits: d.culprits,
                cgroups: d.cgroups,
                next: d.next,
                note,
                score,
            })
        })
        .collect();
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)).then(b.score.total_cmp(&a.score)));
    Findings { findings, summary: summary(obs, cpus) }
}

fn cpu_rules(obs: &Observations, th: &Thresholds, cpus: f64, out: &mut Vec<Draft>) {
    let Some(busy) = mean(obs, |i| Some(i.cpu.busy_percent())) else { return };
    // procs_running counts the task reading /proc/stat: the observer.
    let runnable = mean(obs, |i| Some(i.runnable.saturating_sub(1) as f64)).unwrap_or(0.0);
    let psi = mean(obs, |i| i.pressure.map(|p| p.cpu_some_percent));
    let steal = mean(obs, |i| Some(i.cpu.steal_percent)).unwrap_or(0.0);
    // The CPU time of all processes, in percent of one CPU.
    let used = busy * cpus;
    let by_cpu = culprits(obs, th, used, |p| p.cpu_percent);
    // Saturation is demand beyond the CPUs: a task's share of it is the
    // time it was runnable (running or waiting, schedstat) of all the
    // runnable tasks' time (mean runnable count).
    let demand = if runnable > 0.0 { runnable * 100.0 } else { used };
    let by_demand = culprits(obs, th, demand, |p| p.cpu_percent + p.wait_percent.unwrap_or(0.0));

    let mut evidence = vec![ev("runnable_per_cpu", runnable / cpus, th.runnable_per_cpu)];
    if let Some(psi) = psi {
        evidence.push(ev("psi_cpu_some_percent", psi, th.psi_cpu_some_percent));
    }
    evidence.push(Evidence::context("cpu_busy_percent", busy));
    if let Some(h) = obs.run_queue_latency.as_ref().filter(|h| h.count > 0) {
        evidence.push(Evidence::context("runqlat_mean_usecs", h.mean_usecs));
        evidence.push(Evidence::context("runqlat_p99_usecs", h.p99_usecs as f64));
    }
    let mut next = vec!["perfkit runqlat 10 1".to_string(), "perfkit profile -a -d 30".to_string()];
    per_process(&mut next, &by_demand, |pid| format!("perfkit profile -p {pid} -d 30"));
    out.push(Draft {
        resource: Resource::Cpu,
        kind: Kind::Saturation,
        object: None,
        title: format!("CPU saturated: {:.1} runnable tasks for {} CPUs", runnable, obs.cpus),
        evidence,
        culprits: by_demand,
        next,
        cgroups: Vec::new(),
        floor: None,
    });

    let mut next = vec!["perfkit profile -a -d 30".to_string()];
    per_process(&mut next, &by_cpu, |pid| format!("perfkit profile -p {pid} -d 30"));
    out.push(Draft {
        resource: Resource::Cpu,
        kind: Kind::Utilization,
        object: None,
        title: format!("CPU busy {busy:.0}% on average over {} CPUs", obs.cpus),
        evidence: vec![ev("cpu_busy_percent", busy, th.cpu_busy_percent)],
        culprits: by_cpu.clone(),
        next,
        cgroups: Vec::new(),
        floor: None,
    });

    // One hot CPU while the others idle: a single-threaded bottleneck,
    // which the average hides.
    if obs.cpus > 1 && busy < th.cpu_busy_percent.0 {
        let mut per: std::collections::BTreeMap<u32, (f64, f64)> = Default::default();
        for i in &obs.intervals {
            for c in &i.per_cpu {
                let e = per.entry(c.cpu).or_default();
                e.0 += c.busy_percent * i.seconds;
                e.1 += i.seconds;
            }
        }
        if let Some((cpu, hot)) = per
            .into_iter()
            .filter(|(_, (_, s))| *s > 0.0)
            .map(|(c, (sum, s))| (c, sum / s))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        {
            let mut next = vec!["perfkit sys cpu 1 10".to_string()];
            per_process(&mut next, &by_cpu, |pid| format!("perfkit profile -p {pid} -d 30"));
            out.push(Draft {
                resource: Resource::Cpu,
                kind: Kind::Utilization,
                object: Some(format!("cpu{cpu}")),
                title: format!("CPU {cpu} busy {hot:.0}% while the average is {busy:.0}%: one thread may be the limit"),
                evidence: vec![ev("single_cpu_busy_percent", hot, th.cpu_single_busy_percent)],
                culprits: by_cpu.clone(),
                next,
                cgroups: Vec::new(),
                floor: None,
            });
        }
    }

    out.push(Draft {
        resource: Resource::Cpu,
        kind: Kind::Saturation,
        object: None,
        title: format!("the hypervisor took {steal:.1}% of the CPU time (steal)"),
        evidence: vec![ev("cpu_steal_percent", steal, th.cpu_steal_percent)],
        culprits: Vec::new(),
        next: vec!["perfkit sys cpu 1 10".to_string()],
        cgroups: Vec::new(),
        floor: None,
    });
}

fn memory_rules(obs: &Observations, th: &Thresholds, out: &mut Vec<Draft>) {
    if obs.intervals.is_empty() || obs.memory_total_kib == 0 {
        return;
    }
    let total = obs.memory_total_kib as f64;
    let avail = mean(obs, |i| Some(100.0 * i.memory.available_kib as f64 / total)).unwrap_or(100.0);
    let swap = mean(obs, |i| Some(i.memory.swap_in_kib_per_s + i.memory.swap_out_kib_per_s)).unwrap_or(0.0);
    let majflt = mean(obs, |i| Some(i.memory.major_faults_per_s)).unwrap_or(0.0);
    let psi_some = mean(obs, |i| i.pressure.map(|p| p.memory_some_percent));
    let psi_full = mean(obs, |i| i.pressure.map(|p| p.memory_full_percent));
    let proc_majflt: f64 = obs.processes.iter().map(|p| p.major_faults_per_s).sum();
    let by_faults = culprits(obs, th, proc_majflt, |p| p.major_faults_per_s);

    out.push(Draft {
        resource: Resource::Memory,
        kind: Kind::Utilization,
        object: None,
        title: format!("memory nearly used up: {avail:.1}% available"),
        evidence: vec![ev("memory_available_percent", avail, th.memory_available_percent).below()],
        culprits: Vec::new(),
        next: vec!["perfkit sys proc 1 5".to_string(), "perfkit sys mem 1 10".to_string()],
        cgroups: Vec::new(),
        floor: None,
    });

    let mut evidence =
        vec![ev("swap_kib_per_s", swap, th.swap_kib_per_s), ev("major_faults_per_s", majflt, th.major_faults_per_s)];
    if let (Some(s), Some(f)) = (psi_some, psi_full) {
        evidence.push(ev("psi_memory_some_percent", s, th.psi_memory_some_percent));
        evidence.push(ev("psi_memory_full_percent", f, th.psi_memory_full_percent));
    }
    // The cgroups whose tasks stalled (v2 memory.pressure), as shares of
    // the host's stall time; a parent is left out for a child that holds
    // most of its stall.
    let stalled = stalled_groups(obs, psi_some.unwrap_or(0.0));
    // Page-cache thrashing through read() takes no major fault: then the
    // most stalled group's readers are the culprits.
    let culprits = match stalled.first() {
        Some(g) if by_faults.is_empty() => {
            group_culprits(obs, th, &g.pids, |p| p.read_kib_per_s + 4.0 * p.major_faults_per_s + p.io_delay_percent)
        }
        _ => by_faults,
    };
    let mut next = vec!["perfkit sys mem 1 10".to_string()];
    per_process(&mut next, &culprits, |pid| format!("perfkit offcpu -p {pid} -d 30"));
    out.push(Draft {
        resource: Resource::Memory,
        kind: Kind::Saturation,
        object: None,
        title: format!(
            "memory pressure: {majflt:.0} major faults/s, {swap:.0} KiB/s swapped, tasks stalled {:.1}% of the time",
            psi_some.unwrap_or(0.0)
        ),
        evidence,
        culprits,
        next,
        cgroups: stalled,
        floor: None,
    });
}

/// The memory cgroups whose tasks stalled on memory, most first (at most
/// three), each as a share of the host's `some` stall (`host_some`, %).
fn stalled_groups(obs: &Observations, host_some: f64) -> Vec<CgroupCulprit> {
    let groups: Vec<_> = obs.cgroups.memory.iter().filter(|g| g.psi_some_percent.is_some_and(|p| p > 0.0)).collect();
    let psi = |g: &crate::observe::CgroupMemoryUsage| g.psi_some_percent.unwrap_or(0.0);
    let mut kept: Vec<_> = groups
        .iter()
        .filter(|g| {
            let prefix = format!("{}/", g.path);
            !groups.iter().any(|c| c.path.starts_with(&prefix) && psi(c) >= 0.9 * psi(g))
        })
        .collect();
    kept.sort_by(|a, b| psi(b).total_cmp(&psi(a)).then(a.path.cmp(&b.path)));
    kept.into_iter()
        .take(3)
        .map(|g| {
            let share = if host_some > 0.0 { (100.0 * psi(g) / host_some).min(100.0) } else { 100.0 };
            cgroup_culprit(&g.path, obs.cgroups.memory_version, share, &g.pids)
        })
        .collect()
}

fn disk_rules(obs: &Observations, th: &Thresholds, out: &mut Vec<Draft>) {
    let proc_io: f64 = obs.processes.iter().map(|p| p.read_kib_per_s + p.write_kib_per_s).sum();
    let by_io = culprits(obs, th, proc_io, |p| p.read_kib_per_s + p.write_kib_per_s);
    let next_for = |device: &str| {
        let mut next = vec!["perfkit biolatency -D 10 1".to_string(), format!("perfkit sys disk 1 10 # {device}")];
        per_process(&mut next, &by_io, |pid| format!("perfkit offcpu -p {pid} -d 30"));
        next
    };
    let mut devices: Vec<&str> = Vec::new();
    for i in &obs.intervals {
        for d in &i.disks {
            if !devices.contains(&d.device.as_str()) {
                devices.push(&d.device);
            }
        }
    }
    for device in devices {
        let of = |f: fn(&crate::observe::DiskInterval) -> f64| {
            mean(obs, |i| i.disks.iter().find(|d| d.device == device).map(f)).unwrap_or(0.0)
        };
        let (util, queue, wait) = (of(|d| d.util_percent), of(|d| d.queue_size), of(|d| d.await_ms));
        out.push(Draft {
            resource: Resource::Disk,
            kind: Kind::Saturation,
            object: Some(device.to_string()),
            title: format!("{device}: {queue:.1} requests queued on average, {wait:.1} ms each"),
            evidence: vec![ev("queue_size", queue, th.disk_queue_size), Evidence::context("await_ms", wait)],
            culprits: by_io.clone(),
            next: next_for(device),
            cgroups: Vec::new(),
            floor: None,
        });
        out.push(Draft {
            resource: Resource::Disk,
            kind: Kind::Utilization,
            object: Some(device.to_string()),
            title: format!("{device}: busy {util:.0}% of the time"),
            evidence: vec![ev("util_percent", util, th.disk_util_percent), Evidence::context("await_ms", wait)],
            culprits: by_io.clone(),
            next: next_for(device),
            cgroups: Vec::new(),
            floor: None,
        });
    }
    if let (Some(some), Some(full)) =
        (mean(obs, |i| i.pressure.map(|p| p.io_some_percent)), mean(obs, |i| i.pressure.map(|p| p.io_full_percent)))
    {
        let mut next = vec!["perfkit biolatency -D 10 1".to_string(), "perfkit sys disk 1 10".to_string()];
        per_process(&mut next, &by_io, |pid| format!("perfkit offcpu -p {pid} -d 30"));
        out.push(Draft {
            resource: Resource::Disk,
            kind: Kind::Saturation,
            object: None,
            title: format!("tasks stalled on I/O {some:.1}% of the time"),
            evidence: vec![
                ev("psi_io_some_percent", some, th.psi_io_some_percent),
                ev("psi_io_full_percent", full, th.psi_io_full_percent),
            ],
            culprits: by_io.clone(),
            next,
            cgroups: Vec::new(),
            floor: None,
        });
    }
}

fn network_rules(obs: &Observations, th: &Thresholds, out: &mut Vec<Draft>) {
    let mut ifaces: Vec<&str> = Vec::new();
    for i in &obs.intervals {
        for n in &i.interfaces {
            if !ifaces.contains(&n.iface.as_str()) {
                ifaces.push(&n.iface);
            }
        }
    }
    for iface in ifaces {
        let find = |i: &'_ Interval| i.interfaces.iter().find(|n| n.iface == iface).cloned();
        let errors = mean(obs, |i| find(i).map(|n| n.errors_per_s)).unwrap_or(0.0);
        let drops = mean(obs, |i| find(i).map(|n| n.drops_per_s)).unwrap_or(0.0);
        out.push(Draft {
            resource: Resource::Network,
            kind: Kind::Errors,
            object: Some(iface.to_string()),
            title: format!("{iface}: {errors:.1} errors/s and {drops:.1} drops/s"),
            evidence: vec![
                ev("errors_per_s", errors, th.interface_errors_per_s),
                ev("drops_per_s", drops, th.interface_drops_per_s),
            ],
            culprits: Vec::new(),
            next: vec!["perfkit sys net 1 10".to_string(), format!("ip -s link show {iface}")],
            cgroups: Vec::new(),
            floor: None,
        });
        if let Some(util) = mean(obs, |i| find(i).and_then(|n| n.util_percent)) {
            out.push(Draft {
                resource: Resource::Network,
                kind: Kind::Utilization,
                object: Some(iface.to_string()),
                title: format!("{iface}: {util:.0}% of the link speed"),
                evidence: vec![ev("util_percent", util, th.interface_util_percent)],
                culprits: Vec::new(),
                next: vec!["perfkit sys net 1 10".to_string(), "perfkit tcplife".to_string()],
                cgroups: Vec::new(),
                floor: None,
            });
        }
    }
    let Some(segs) = mean(obs, |i| i.tcp.map(|t| t.segments_out_per_s)) else { return };
    let retrans = mean(obs, |i| i.tcp.map(|t| t.retransmits_per_s)).unwrap_or(0.0);
    let overflows = mean(obs, |i| i.tcp.map(|t| t.listen_overflows_per_s)).unwrap_or(0.0);
    if retrans >= th.tcp_retransmits_min_per_s {
        let pct = if segs > 0.0 { 100.0 * retrans / segs } else { 100.0 };
        out.push(Draft {
            resource: Resource::Network,
            kind: Kind::Errors,
            object: Some("tcp".into()),
            title: format!("TCP retransmits {pct:.1}% of the segments sent ({retrans:.1}/s)"),
            evidence: vec![
                ev("tcp_retransmit_percent", pct, th.tcp_retransmit_percent),
                Evidence::context("tcp_retransmits_per_s", retrans),
            ],
            culprits: Vec::new(),
            next: vec!["perfkit tcpretrans".to_string()],
            cgroups: Vec::new(),
            floor: None,
        });
    }
    out.push(Draft {
        resource: Resource::Network,
        kind: Kind::Saturation,
        object: Some("tcp".into()),
        title: format!("TCP listen queues overflowed {overflows:.2} times/s"),
        evidence: vec![ev("listen_overflows_per_s", overflows, th.listen_overflows_per_s)],
        culprits: Vec::new(),
        next: vec!["ss -ltn".to_string(), "perfkit tcplife".to_string()],
        cgroups: Vec::new(),
        floor: None,
    });
}

/// Memory cgroups near their limit or thrashing, CPU cgroups throttled.
fn cgroup_rules(obs: &Observations, th: &Thresholds, out: &mut Vec<Draft>) {
    let cg = &obs.cgroups;
    for g in &cg.memory {
        let limited = g.working_set_percent_of_limit.is_some();
        if !limited {
            continue;
        }
        let group = [cgroup_culprit(&g.path, cg.memory_version, 100.0, &g.pids)];
        // Thrashing: pages read again soon after the limit pushed them out.
        // The readers are the culprits: what they read is what refaults.
        let mut d = Draft::new(
            Resource::Memory,
            Kind::Saturation,
            format!(
                "cgroup {}: {:.0} page-cache refaults/s at its memory limit{}",
                g.path,
                g.refaults_per_s,
                g.psi_some_percent.map(|p| format!(", tasks stalled {p:.1}% of the time")).unwrap_or_default()
            ),
        );
        d.object = Some(g.path.clone());
        d.evidence.push(ev("cgroup_refaults_per_s", g.refaults_per_s, th.cgroup_refaults_per_s));
        if let Some(p) = g.psi_some_percent {
            d.evidence.push(ev("cgroup_psi_memory_some_percent", p, th.psi_memory_some_percent));
        }
        if let Some(p) = g.psi_full_percent {
            d.evidence.push(ev("cgroup_psi_memory_full_percent", p, th.psi_memory_full_percent));
        }
        d.evidence
            .push(Evidence::context("working_set_percent_of_limit", g.working_set_percent_of_limit.unwrap_or(0.0)));
        d.evidence.push(Evidence::context("limit_hits", g.limit_hits as f64));
        d.culprits =
            group_culprits(obs, th, &g.pids, |p| p.read_kib_per_s + 4.0 * p.major_faults_per_s + p.io_delay_percent);
        d.cgroups = group.to_vec();
        d.next = vec![
            format!("raise the memory limit of cgroup {} or shrink what it reads", g.path),
            "perfkit sys mem 1 10".to_string(),
        ];
        per_process(&mut d.next, &d.culprits, |pid| format!("perfkit offcpu -p {pid} -d 30"));
        out.push(d);

        let ws = g.working_set_percent_of_limit.unwrap_or(0.0);
        let mut d = Draft::new(
            Resource::Memory,
            Kind::Utilization,
            format!(
                "cgroup {}: working set {} is {ws:.0}% of its memory limit",
                g.path,
                kib(g.peak_working_set_kib as f64)
            ),
        );
        d.object = Some(g.path.clone());
        d.evidence.push(ev("working_set_percent_of_limit", ws, th.cgroup_working_set_percent));
        d.evidence.push(Evidence::context("limit_hits", g.limit_hits as f64));
        d.culprits = group_culprits(obs, th, &g.pids, |p| p.cpu_percent);
        d.cgroups = group.to_vec();
        d.next = vec![format!("raise the memory limit of cgroup {}", g.path), "perfkit sys proc 1 5".to_string()];
        out.push(d);
    }
    for g in &cg.cpu {
        let mut d = Draft::new(
            Resource::Cpu,
            Kind::Saturation,
            format!(
                "cgroup {}: throttled in {:.0}% of its CPU periods ({:.1} s){}",
                g.path,
                g.throttled_percent,
                g.throttled_seconds,
                g.quota_cpus.map(|q| format!(", quota {q} CPUs")).unwrap_or_default()
            ),
        );
        d.object = Some(g.path.clone());
        d.evidence.push(ev("throttled_percent", g.throttled_percent, th.cgroup_throttled_percent));
        d.evidence.push(Evidence::context("throttled_seconds", g.throttled_seconds));
        if let Some(q) = g.quota_cpus {
            d.evidence.push(Evidence::context("quota_cpus", q));
        }
        d.culprits = group_culprits(obs, th, &g.pids, |p| p.cpu_percent);
        d.cgroups = vec![cgroup_culprit(&g.path, cg.cpu_version, 100.0, &g.pids)];
        d.next = vec![format!("raise the CPU quota of cgroup {} (cpu.max, cpu.cfs_quota_us)", g.path)];
        per_process(&mut d.next, &d.culprits, |pid| format!("perfkit profile -p {pid} -d 30"));
        out.push(d);
    }
}

/// The processes a set of kernel messages names, each an equal share.
fn named(obs: &Observations, messages: &[&KernelMessage]) -> Vec<Culprit> {
    let mut seen: Vec<(u32, String)> = Vec::new();
    for m in messages {
        if let (Some(pid), Some(comm)) = (m.pid, &m.comm)
            && !seen.iter().any(|(p, _)| *p == pid)
        {
            seen.push((pid, comm.clone()));
        }
    }
    let share = if seen.is_empty() { 0.0 } else { 100.0 / seen.len() as f64 };
    seen.into_iter()
        .take(5)
        .map(|(pid, comm)| match obs.processes.iter().find(|p| p.pid == pid) {
            Some(p) => Culprit { comm, ..culprit_of(p, share) },
            None => Culprit {
                pid,
                comm,
                share_percent: round2(share),
                cpu_percent: 0.0,
                wait_percent: None,
                io_kib_per_s: 0.0,
                major_faults_per_s: 0.0,
            },
        })
        .collect()
}

fn class_title(class: MessageClass) -> &'static str {
    match class {
        MessageClass::OomKill => "OOM kills",
        MessageClass::HungTask => "hung tasks",
        MessageClass::SoftLockup => "soft lockups",
        MessageClass::HardLockup => "hard lockups",
        MessageClass::IoError => "I/O errors",
        MessageClass::FilesystemError => "file system errors",
        MessageClass::OtherError => "other kernel errors",
    }
}

/// OOM kills, and kernel errors during and before the window.
fn kernel_rules(obs: &Observations, th: &Thresholds, out: &mut Vec<Draft>) {
    let during: Vec<&KernelMessage> = obs.kernel.iter().flat_map(|k| &k.during).collect();
    let kills: Vec<&KernelMessage> =
        during.iter().copied().filter(|m| m.class == Some(MessageClass::OomKill)).collect();
    let groups: Vec<CgroupCulprit> = obs
        .cgroups
        .memory
        .iter()
        .filter(|g| g.oom_kills > 0)
        .map(|g| (g.path.clone(), g.oom_kills, g.pids.clone()))
        .chain(kills.iter().filter_map(|m| Some((m.oom_memcg.clone()?, 1, Vec::new()))))
        .fold(Vec::<(String, u64, Vec<u32>)>::new(), |mut acc, (path, n, pids)| {
            if !acc.iter().any(|(p, _, _)| *p == path) {
                acc.push((path, n, pids));
            }
            acc
        })
        .into_iter()
        .map(|(path, n, pids)| {
            let total = kills.len().max(1) as f64;
            cgroup_culprit(&path, obs.cgroups.memory_version, (100.0 * n as f64 / total).min(100.0), &pids)
        })
        .collect();
    let n = (obs.oom_kills.unwrap_or(0) as f64).max(kills.len() as f64);
    if obs.oom_kills.is_some() || obs.kernel.is_some() {
        let victims = named(obs, &kills);
        let who: Vec<String> = victims.iter().map(|c| format!("{} ({})", c.comm, c.pid)).collect();
        let mut d = Draft::new(
            Resource::Memory,
            Kind::Errors,
            format!(
                "the OOM killer killed {n:.0} process{}{}{}",
                if n == 1.0 { "" } else { "es" },
                if who.is_empty() { String::new() } else { format!(": {}", who.join(", ")) },
                groups.first().map(|g| format!(" in cgroup {}", g.path)).unwrap_or_default()
            ),
        );
        d.evidence.push(ev("oom_kills", n, th.oom_kills));
        d.culprits = victims;
        d.cgroups = groups;
        d.next = vec!["dmesg -T --level=err,warn".to_string(), "perfkit sys mem 1 10".to_string()];
        if let Some(g) = d.cgroups.first() {
            d.next.insert(0, format!("raise the memory limit of cgroup {}", g.path));
        }
        out.push(d);
    }
    let Some(log) = &obs.kernel else { return };
    for class in [
        MessageClass::HungTask,
        MessageClass::SoftLockup,
        MessageClass::HardLockup,
        MessageClass::IoError,
        MessageClass::FilesystemError,
        MessageClass::OtherError,
    ] {
        let msgs: Vec<&KernelMessage> = during.iter().copied().filter(|m| m.class == Some(class)).collect();
        let Some(last) = msgs.last() else { continue };
        let t = if class == MessageClass::OtherError { th.kernel_other_errors } else { th.kernel_errors };
        let mut d = Draft::new(
            Resource::Kernel,
            Kind::Errors,
            format!("{} {} during the window; last: {}", msgs.len(), class_title(class), last.text),
        );
        d.object = Some(class.name().to_string());
        d.evidence.push(ev(&format!("{}_messages", class.name()), msgs.len() as f64, t));
        d.culprits = named(obs, &msgs);
        d.next = vec!["dmesg -T --level=err,warn".to_string()];
        if class == MessageClass::IoError || class == MessageClass::FilesystemError {
            d.next.push("perfkit biosnoop -d 10".to_string());
        }
        out.push(d);
    }
    // Before the window: the serious classes (not `other_error`, of which
    // a boot logs a few), a warning while recent.
    let serious: Vec<&KernelMessage> =
        log.before_errors.iter().filter(|m| m.class.is_some_and(|c| c != MessageClass::OtherError)).collect();
    if let Some(last) = serious.last() {
        let age = (log.window_start_seconds - last.seconds).max(0.0);
        let recent =
            serious.iter().filter(|m| log.window_start_seconds - m.seconds <= th.kernel_recent_seconds).count();
        let total: u64 = log
            .before_counts
            .iter()
            .filter(|(k, _)| k.as_str() != MessageClass::OtherError.name())
            .map(|(_, v)| *v)
            .sum();
        let mut d = Draft::new(
            Resource::Kernel,
            Kind::Errors,
            format!(
                "{total} kernel error{} before the window, the last {age:.0} s before it: {}",
                if total == 1 { "" } else { "s" },
                last.text
            ),
        );
        d.object = Some("before".to_string());
        d.evidence.push(Evidence::warning_only("recent_errors", recent as f64, 1.0));
        d.evidence.push(Evidence::context("errors_before", total as f64));
        d.culprits = named(obs, &serious[serious.len().saturating_sub(5)..]);
        d.next = vec!["dmesg -T --level=err,warn".to_string()];
        d.floor = Some(Severity::Info);
        out.push(d);
    }
}

fn kib(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        format!("{:.1} GiB", v / 1024.0 / 1024.0)
    } else if v >= 1024.0 {
        format!("{:.1} MiB", v / 1024.0)
    } else {
        format!("{v:.0} KiB")
    }
}

fn summary(obs: &Observations, cpus: f64) -> Vec<ResourceLine> {
    let mut lines = Vec::new();
    let m = |f: &dyn Fn(&Interval) -> f64| mean(obs, |i| Some(f(i))).unwrap_or(0.0);
    if obs.intervals.is_empty() {
        return lines;
    }
    let psi = |f: &dyn Fn(&crate::observe::PressureShares) -> f64| {
        mean(obs, |i| i.pressure.as_ref().map(f)).map_or("n/a".to_string(), |v| format!("{v:.1}%"))
    };
    lines.push(ResourceLine {
        resource: Resource::Cpu,
        line: format!(
            "{:.1}% busy (usr {:.1}, sys {:.1}, iowait {:.1}, steal {:.1}) on {} CPUs, {:.1} runnable, PSI some {}",
            m(&|i| i.cpu.busy_percent()),
            m(&|i| i.cpu.usr_percent + i.cpu.nice_percent),
            m(&|i| i.cpu.sys_percent + i.cpu.irq_percent + i.cpu.soft_percent),
            m(&|i| i.cpu.iowait_percent),
            m(&|i| i.cpu.steal_percent),
            cpus,
            m(&|i| i.runnable.saturating_sub(1) as f64),
            psi(&|p| p.cpu_some_percent),
        ) + &obs.run_queue_latency.as_ref().filter(|h| h.count > 0).map_or(String::new(), |h| {
            format!(", run-queue latency mean {:.0} us, p99 under {} us", h.mean_usecs, h.p99_usecs)
        }),
    });
    lines.push(ResourceLine {
        resource: Resource::Memory,
        line: format!(
            "{} available of {}, cache {}, slab {}, swap used {}, {:.0} major faults/s, {:.0} refaults/s, PSI some {} full {}{}",
            kib(m(&|i| i.memory.available_kib as f64)),
            kib(obs.memory_total_kib as f64),
            kib(m(&|i| i.memory.cache_kib as f64)),
            kib(m(&|i| i.memory.slab_reclaimable_kib as f64)),
            kib(m(&|i| i.memory.swap_used_kib as f64)),
            m(&|i| i.memory.major_faults_per_s),
            m(&|i| i.memory.refaults_per_s),
            psi(&|p| p.memory_some_percent),
            psi(&|p| p.memory_full_percent),
            obs.oom_kills.map_or(String::new(), |n| format!(", {n} OOM kills")),
        ),
    });
    let busiest_disk = obs
        .intervals
        .last()
        .into_iter()
        .flat_map(|i| i.disks.iter().map(|d| d.device.clone()))
        .map(|dev| {
            let of = |f: fn(&crate::observe::DiskInterval) -> f64| {
                mean(obs, |i| i.disks.iter().find(|d| d.device == dev).map(f)).unwrap_or(0.0)
            };
            let (u, a, q) = (of(|d| d.util_percent), of(|d| d.await_ms), of(|d| d.queue_size));
            (dev.clone(), u, a, q)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    lines.push(ResourceLine {
        resource: Resource::Disk,
        line: match busiest_disk {
            Some((dev, u, a, q)) => format!(
                "busiest {dev}: {u:.1}% util, await {a:.2} ms, queue {q:.2}; PSI io some {}",
                psi(&|p| p.io_some_percent)
            ),
            None => format!("no disks; PSI io some {}", psi(&|p| p.io_some_percent)),
        },
    });
    let busiest_if = obs
        .intervals
        .last()
        .into_iter()
        .flat_map(|i| i.interfaces.iter().map(|n| n.iface.clone()))
        .filter(|n| n != "lo")
        .map(|name| {
            let of = |f: fn(&crate::observe::InterfaceInterval) -> f64| {
                mean(obs, |i| i.interfaces.iter().find(|n| n.iface == name).map(f)).unwrap_or(0.0)
            };
            let v = (of(|n| n.rx_kib_per_s), of(|n| n.tx_kib_per_s), of(|n| n.errors_per_s), of(|n| n.drops_per_s));
            (name.clone(), v)
        })
        .max_by(|a, b| (a.1.0 + a.1.1).total_cmp(&(b.1.0 + b.1.1)));
    let tcp = mean(obs, |i| i.tcp.map(|t| t.retransmits_per_s)).map_or("no TCP counters".to_string(), |r| {
        format!(
            "TCP {r:.2} retransmits/s, {:.2} listen overflows/s",
            mean(obs, |i| i.tcp.map(|t| t.listen_overflows_per_s)).unwrap_or(0.0)
        )
    });
    lines.push(ResourceLine {
        resource: Resource::Network,
        line: match busiest_if {
            Some((name, (rx, tx, e, d))) => {
                format!("busiest {name}: rx {}/s, tx {}/s, {e:.1} errors/s, {d:.1} drops/s; {tcp}", kib(rx), kib(tx))
            }
            None => tcp,
        },
    });
    if let Some(p) = obs.on_cpu.as_ref().filter(|p| p.samples > 0) {
        let hot: Vec<String> =
            p.top_functions.iter().take(3).map(|f| format!("{} {:.1}%", f.name, f.percent)).collect();
        if let Some(cpu) = lines.iter_mut().find(|l| l.resource == Resource::Cpu) {
            cpu.line.push_str(&format!(
                "; on-CPU ({} samples at {} Hz): {}",
                p.samples,
                p.frequency_hz,
                hot.join(", ")
            ));
        }
    }
    let top: Vec<String> =
        obs.processes.iter().take(3).map(|p| format!("{} ({}) {:.1}%", p.comm, p.pid, p.cpu_percent)).collect();
    let mut io: Vec<&ProcessUsage> =
        obs.processes.iter().filter(|p| p.read_kib_per_s + p.write_kib_per_s > 0.0).collect();
    io.sort_by(|a, b| (b.read_kib_per_s + b.write_kib_per_s).total_cmp(&(a.read_kib_per_s + a.write_kib_per_s)));
    let top_io: Vec<String> = io
        .iter()
        .take(3)
        .map(|p| format!("{} ({}) {}/s", p.comm, p.pid, kib(p.read_kib_per_s + p.write_kib_per_s)))
        .collect();
    lines.push(ResourceLine {
        resource: Resource::Process,
        line: format!(
            "top by CPU (of one CPU): {}; by I/O: {}; {:.0} context switches/s",
            if top.is_empty() { "none".to_string() } else { top.join(", ") },
            if top_io.is_empty() { "none".to_string() } else { top_io.join(", ") },
            m(&|i| i.context_switches_per_s),
        ),
    });
    if let Some(k) = &obs.kernel {
        let errors = k.during.iter().filter(|m| m.class.is_some()).count();
        let before: u64 = k.before_counts.values().sum();
        lines.push(ResourceLine {
            resource: Resource::Kernel,
            line: format!(
                "{} new messages during the window ({errors} errors), {before} errors logged before it{}",
                k.during.len(),
                k.before_errors.last().map(|m| format!(" (last: {})", m.text)).unwrap_or_default()
            ),
        });
    }
    let throttled = obs.cgroups.cpu.iter().filter(|g| g.throttled_periods > 0).count();
    let limited = obs.cgroups.memory.iter().filter(|g| g.working_set_percent_of_limit.is_some()).count();
    if let Some(line) = lines.iter_mut().find(|l| l.resource == Resource::Cpu).filter(|_| throttled > 0) {
        line.line.push_str(&format!("; {throttled} cgroups throttled"));
    }
    if let Some(line) = lines.iter_mut().find(|l| l.resource == Resource::Memory).filter(|_| limited > 0) {
        line.line.push_str(&format!("; {limited} memory-limited cgroups"));
    }
    lines
}
