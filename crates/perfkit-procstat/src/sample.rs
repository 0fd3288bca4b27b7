//! Raw samples: counters and gauges exactly as the kernel reported them at
//! one instant. Nothing here is a rate; [`crate::model`] computes rates from
//! two samples. Samples are what recordings store, so a replay computes the
//! same figures as a live run.

use serde::{Deserialize, Serialize};

/// Everything collected at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Wall-clock time of the sample, milliseconds since the Unix epoch
    /// (for timestamps in reports).
    pub unix_ms: u64,
    /// Seconds since boot (`/proc/uptime`): the time base of rates.
    pub uptime: f64,
    /// Clock ticks per second (`CLK_TCK`), the unit of CPU times.
    pub ticks_per_second: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// `/proc/stat`.
    pub cpu: Option<CpuStat>,
    /// `/proc/meminfo`.
    pub memory: Option<Memory>,
    /// `/proc/vmstat`, the counters perfkit reports.
    pub vmstat: Option<VmCounters>,
    /// `/proc/loadavg`.
    pub load: Option<LoadAvg>,
    /// `/proc/diskstats`, whole disks only (those in `/sys/block`).
    pub disks: Vec<Disk>,
    /// `/proc/net/dev`.
    pub interfaces: Vec<Interface>,
    /// `/proc/pressure/{cpu,memory,io}`, when the kernel has PSI.
    pub pressure: Option<Pressure>,
    /// Processes (or threads), when asked for.
    pub processes: Vec<Process>,
    /// cgroup v2 groups, when the unified hierarchy is mounted.
    pub cgroups: Vec<Cgroup>,
}

impl Sample {
    /// Of `pids`, those no process of this sample has, in the order given.
    pub fn missing_pids(&self, pids: &[u32]) -> Vec<u32> {
        pids.iter().copied().filter(|p| !self.processes.iter().any(|x| x.pid == *p)).collect()
    }
}

/// CPU time in clock ticks, by state, as in `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTicks {
    /// User mode, guest time included.
    pub user: u64,
    /// Niced user mode, niced guest time included.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle with I/O outstanding.
    pub iowait: u64,
    /// Hard interrupts.
    pub irq: u64,
    /// Soft interrupts.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
    /// Running a guest.
    pub guest: u64,
    /// Running a niced guest.
    pub guest_nice: u64,
}

impl CpuTicks {
    /// All ticks (guest time is already inside user and nice).
    pub fn total(&self) -> u64 {
        self.user + self.nice + self.system + self.idle + self.iowait + self.irq + self.softirq + self.steal
    }
}

/// `/proc/stat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStat {
    /// All CPUs together.
    pub total: CpuTicks,
    /// Each online CPU: (number, ticks).
    pub per_cpu: Vec<(u32, CpuTicks)>,
    /// Context switches since boot.
    pub context_switches: u64,
    /// Interrupts since boot.
    pub interrupts: u64,
    /// Processes and threads created since boot.
    pub forks: u64,
    /// Runnable tasks now.
    pub procs_running: u32,
    /// Tasks blocked on I/O now.
    pub procs_blocked: u32,
}

/// `/proc/meminfo`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Memory {
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub buffers: u64,
    pub cached: u64,
    pub shared: u64,
    pub slab_reclaimable: u64,
    pub dirty: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// `/proc/vmstat` counters, in pages or events since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct VmCounters {
    /// KiB read from block devices (despite the name).
    pub pgpgin: u64,
    /// KiB written to block devices.
    pub pgpgout: u64,
    pub pswpin: u64,
    pub pswpout: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
}

/// `/proc/loadavg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Runnable scheduling entities now.
    pub runnable: u32,
    /// Scheduling entities that exist.
    pub total: u32,
}

/// One block device's `/proc/diskstats` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Disk {
    pub name: String,
    pub reads: u64,
    pub reads_merged: u64,
    /// 512-byte sectors.
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub in_progress: u64,
    /// Milliseconds with I/O in flight.
    pub io_ms: u64,
    /// Milliseconds of I/O in flight, weighted by the number in flight.
    pub weighted_io_ms: u64,
}

/// One interface's `/proc/net/dev` line, with its link speed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub tx_compressed: u64,
    /// Link speed in Mb/s (`/sys/class/net/IF/speed`), when known.
    pub speed_mbps: Option<u64>,
}

/// One PSI line: stall averages (percent) and total stall time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Stall {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds stalled since boot.
    pub total_us: u64,
}

/// One resource's pressure: some tasks stalled, and (not for CPU on older
/// kernels) all tasks stalled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ResourcePressure {
    pub some: Stall,
    pub full: Option<Stall>,
}

/// `/proc/pressure/*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Pressure {
    pub cpu: ResourcePressure,
    pub memory: ResourcePressure,
    pub io: ResourcePressure,
}

/// A process (or, with threads, one thread) from `/proc/PID/{stat,status,io}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process id (thread group id).
    pub pid: u32,
    /// Thread id for a thread's row; `None` for a whole process.
    pub tid: Option<u32>,
    /// Command name.
    pub comm: String,
    /// Real user id.
    pub uid: u32,
    /// State letter (R, S, D, ...).
    pub state: char,
    /// Start time in ticks after boot: with the pid, identifies the process
    /// across samples even when pids are reused.
    pub start_ticks: u64,
    /// User-mode ticks, guest time included.
    pub utime: u64,
    /// Kernel-mode ticks.
    pub stime: u64,
    /// Guest ticks.
    pub guest_time: u64,
    /// Ticks waiting for block I/O (delay accounting).
    pub blkio_ticks: u64,
    /// Minor faults.
    pub minflt: u64,
    /// Major faults.
    pub majflt: u64,
    /// Virtual size in bytes.
    pub vsize: u64,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Threads.
    pub threads: u64,
    /// CPU it last ran on.
    pub processor: u32,
    /// Voluntary context switches.
    pub voluntary_switches: u64,
    /// Involuntary context switches.
    pub involuntary_switches: u64,
    /// `/proc/PID/io`, readable for one's own processes or as root.
    pub io: Option<ProcessIo>,
    /// `/proc/PID/schedstat`: nanoseconds spent runnable but waiting for a
    /// CPU, when the kernel keeps scheduler statistics.
    pub run_delay_ns: Option<u64>,
}

/// `/proc/PID/io`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIo {
    /// Bytes the process caused to be read from storage.
    pub read_bytes: u64,
    /// Bytes the process caused to be written to storage.
    pub write_bytes: u64,
    /// Written bytes whose write-back was cancelled (truncated files).
    pub cancelled_write_bytes: u64,
}

/// A cgroup v2 group's `cpu.stat`, `memory.current` and `io.stat`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// Path below the cgroup root, `/` for the root itself.
    pub path: String,
    /// CPU time, microseconds.
    pub usage_us: u64,
    /// User CPU time, microseconds.
    pub user_us: u64,
    /// System CPU time, microseconds.
    pub system_us: u64,
    /// Memory in use, bytes (not reported for the root group).
    pub memory_bytes: Option<u64>,
    /// Bytes read, summed over devices.
    pub io_read_bytes: u64,
    /// Bytes written, summed over devices.
    pub io_write_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_pids_are_those_no_process_has() {
        let p = |pid| Process { pid, ..Default::default() };
        let s = Sample { processes: vec![p(1), p(7)], ..Sample::default() };
        assert_eq!(s.missing_pids(&[7, 3, 1, 9]), [3, 9]);
        assert!(s.missing_pids(&[1]).is_empty());
        assert!(Sample::default().missing_pids(&[]).is_empty());
    }
}
