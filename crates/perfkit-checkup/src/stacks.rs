//! Stacks kept in the observations: the on-CPU profile's folded stacks
//! (the report's flame graph, `--compare`'s differential one) and the
//! off-CPU stacks of each process (where the culprits blocked).

use perfkit_model::Profile;
use serde::{Deserialize, Serialize};

use crate::observe::Observations;

/// One folded stack (`root;frame;...;leaf`, root first, as perfkit's
/// folded format writes it) and its count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldedStack {
    /// The frames, `;`-separated; kernel frames end in `_[k]`.
    pub stack: String,
    /// Samples (on-CPU) or microseconds (off-CPU).
    pub count: u64,
}

/// Off-CPU time over the window, per process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OffCpuStacks {
    /// Blocks shorter than this were not counted, microseconds.
    pub min_block_usecs: u64,
    /// Each process's stacks, most time off CPU first.
    pub processes: Vec<ProcessOffCpu>,
}

/// One process's off-CPU stacks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessOffCpu {
    /// Process id.
    pub pid: u32,
    /// Its name (the stacks' root).
    pub comm: String,
    /// Time its threads spent off CPU, microseconds (all of its stacks,
    /// the ones left out by [`MAX_STACKS_PER_PROCESS`] included).
    pub total_usecs: u64,
    /// Its stacks, most time first, at most [`MAX_STACKS_PER_PROCESS`];
    /// counts in microseconds.
    pub stacks: Vec<FoldedStack>,
}

/// Off-CPU stacks kept per process: the ones that explain where it waited.
pub const MAX_STACKS_PER_PROCESS: usize = 200;

/// perfkit-profiler's options for the checkup's off-CPU stacks: eBPF,
/// rooted per process, blocks of at least `min_block` (sleeps, I/O and
/// preemption), no on-CPU samples.
pub fn off_cpu_options(min_block: std::time::Duration) -> perfkit_profiler::Options {
    let mut o = perfkit_profiler::Options::default();
    o.frequency_hz = None;
    let mut off = perfkit_profiler::OffCpu::default();
    off.min_block = min_block;
    off.preempted = true;
    o.off_cpu = Some(off);
    o.backend = perfkit_profiler::BackendChoice::Ebpf;
    o.grouping = perfkit_profiler::Grouping::PerProcess;
    o
}

/// A profile's merged folded stacks, sorted by stack.
pub fn folded(profile: &Profile) -> Vec<FoldedStack> {
    profile.folded_counts().into_iter().map(|(stack, count)| FoldedStack { stack, count }).collect()
}

/// An off-CPU profile rooted per process (`comm-PID`, perfkit-profiler's
/// `Grouping::PerProcess`) split by process; each process's stacks are
/// rooted by its name alone. Roots without a `-PID` suffix are left out.
pub fn off_cpu_by_process(profile: &Profile, min_block_usecs: u64) -> OffCpuStacks {
    let mut by_pid: std::collections::BTreeMap<u32, ProcessOffCpu> = std::collections::BTreeMap::new();
    for (stack, count) in profile.folded_counts() {
        let (root, rest) = stack.split_once(';').unwrap_or((stack.as_str(), ""));
        let Some((comm, pid)) = root.rsplit_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let p = by_pid.entry(pid).or_insert_with(|| ProcessOffCpu { pid, comm: comm.to_owned(), ..Default::default() });
        p.total_usecs = p.total_usecs.saturating_add(count);
        let stack = if rest.is_empty() { comm.to_owned() } else { format!("{comm};{rest}") };
        p.stacks.push(FoldedStack { stack, count });
    }
    let mut processes: Vec<ProcessOffCpu> = by_pid.into_values().collect();
    for p in &mut processes {
        p.stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.stack.cmp(&b.stack)));
        p.stacks.truncate(MAX_STACKS_PER_PROCESS);
    }
    processes.sort_by(|a, b| b.total_usecs.cmp(&a.total_usecs).then(a.pid.cmp(&b.pid)));
    OffCpuStacks { min_block_usecs, processes }
}

/// The processes whose off-CPU stacks are symbolized: those that can be
/// culprits (the most CPU demand, CPU time plus run-queue wait; the most
/// I/O; the most major faults) and the ones in scope. Symbolizing every
/// process of a host (each daemon's binaries) would cost more than the
/// rest of the checkup.
pub fn off_cpu_candidates(obs: &Observations) -> Vec<u32> {
    let by = |key: &dyn Fn(&crate::observe::ProcessUsage) -> f64, n: usize| -> Vec<u32> {
        let mut v: Vec<&crate::observe::ProcessUsage> = obs.processes.iter().filter(|p| key(p) > 0.0).collect();
        v.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.pid.cmp(&b.pid)));
        v.into_iter().take(n).map(|p| p.pid).collect()
    };
    let mut pids = by(&|p| p.cpu_percent + p.wait_percent.unwrap_or(0.0), 10);
    pids.extend(by(&|p| p.read_kib_per_s + p.write_kib_per_s, 5));
    pids.extend(by(&|p| p.major_faults_per_s, 5));
    pids.extend(&obs.scope_pids);
    pids.sort_unstable();
    pids.dedup();
    pids
}

impl Observations {
    /// Keeps the off-CPU stacks of these processes only (the culprits of
    /// the findings: what the report and the JSON document show).
    pub fn retain_off_cpu(&mut self, pids: &[u32]) {
        if let Some(off) = &mut self.off_cpu {
            off.processes.retain(|p| pids.contains(&p.pid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfkit_model::{Frame, Stack};

    #[test]
    fn off_cpu_stacks_split_by_process() {
        let mut p = Profile::default();
        p.push(Stack::new("web-server-42", vec![Frame::user("main"), Frame::kernel("schedule")], 700));
        p.push(Stack::new("web-server-42", vec![Frame::user("main"), Frame::user("poll")], 300));
        p.push(Stack::new("db-7", vec![Frame::user("fsync")], 5000));
        p.push(Stack::new("no-pid-here", vec![Frame::user("x")], 1));
        let off = off_cpu_by_process(&p, 1000);
        assert_eq!(off.min_block_usecs, 1000);
        let pids: Vec<u32> = off.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [7, 42], "most time first; a root without a pid is left out");
        let web = &off.processes[1];
        assert_eq!((web.comm.as_str(), web.total_usecs), ("web-server", 1000));
        assert_eq!(web.stacks[0], FoldedStack { stack: "web-server;main;schedule_[k]".into(), count: 700 });
        let mut obs = Observations { off_cpu: Some(off), ..Observations::default() };
        let usage = |pid, cpu_percent, write_kib_per_s| crate::observe::ProcessUsage {
            pid,
            cpu_percent,
            write_kib_per_s,
            ..Default::default()
        };
        obs.processes = (1..=20).map(|pid| usage(pid, f64::from(pid), 0.0)).collect();
        obs.processes.push(usage(100, 0.0, 5.0));
        obs.processes.push(usage(101, 0.0, 0.0));
        obs.scope_pids = vec![102];
        let c = off_cpu_candidates(&obs);
        assert_eq!(c, [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 100, 102], "top 10 by CPU, the writer, the scope");
        obs.retain_off_cpu(&[42]);
        assert_eq!(obs.off_cpu.unwrap().processes.len(), 1);
    }
}
