//! A sample's Prometheus metric families, given to `perfkit-exposition`'s
//! [`Writer`] (which alone writes the text format), and
//! [`ProcfsCollector`], the collector exporters ask at each scrape.
//!
//! Counters are exported as the kernel counts them (Prometheus computes
//! rates), in base units: seconds and bytes, with `_total` on counters, as
//! the Prometheus naming conventions ask. Every name starts with
//! `perfkit_`.
//!
//! | family | labels |
//! |---|---|
//! | `perfkit_cpu_seconds_total` | `cpu`, `mode` |
//! | `perfkit_context_switches_total`, `perfkit_interrupts_total`, `perfkit_forks_total` | |
//! | `perfkit_procs_running`, `perfkit_procs_blocked`, `perfkit_load1/5/15` | |
//! | `perfkit_memory_*_bytes` | |
//! | `perfkit_vmstat_*_total` (page faults, swap, paging) | |
//! | `perfkit_disk_*` | `device` |
//! | `perfkit_network_*` | `interface` |
//! | `perfkit_pressure_*_seconds_total` | `resource` |
//! | `perfkit_process_cpu_seconds_total` | `pid`, `comm`, `mode` (`user`, `system`) |
//! | `perfkit_process_*` | `pid`, `comm` |
//! | `perfkit_cgroup_*` | `cgroup` |

use perfkit_exposition::Writer;

use crate::{
    collect::{CollectOptions, Collector, ProcessSelection},
    sample::*,
};

/// The families of `procfs`, collected at each scrape, for an exporter
/// (`perfkit-exporter`, `perfkit serve`): the machine, and the processes
/// and cgroups `options` choose.
pub struct ProcfsCollector {
    collector: Collector,
    options: CollectOptions,
    comms: Vec<String>,
}

impl ProcfsCollector {
    /// Collects from `/proc` and `/sys` with `options`.
    pub fn new(options: CollectOptions) -> Self {
        Self::with_collector(Collector::new(), options)
    }

    /// Collects with `collector` (another root: a captured tree).
    pub fn with_collector(collector: Collector, options: CollectOptions) -> Self {
        Self { collector, options, comms: Vec::new() }
    }

    /// Also exports every process whose command name is one of `comms`
    /// (beside the processes of `options`).
    pub fn comms(mut self, comms: Vec<String>) -> Self {
        self.comms = comms;
        self
    }

    /// One sample, with the processes chosen.
    pub fn sample(&self) -> Result<Sample, crate::CollectError> {
        if self.comms.is_empty() {
            return self.collector.collect(&self.options);
        }
        let mut options = self.options.clone();
        let pids = match &self.options.processes {
            ProcessSelection::All => return self.collector.collect(&options),
            ProcessSelection::None => Vec::new(),
            ProcessSelection::Pids(p) => p.clone(),
        };
        options.processes = ProcessSelection::All;
        let mut sample = self.collector.collect(&options)?;
        sample.processes.retain(|p| pids.contains(&p.pid) || self.comms.contains(&p.comm));
        Ok(sample)
    }
}

impl perfkit_exposition::Collector for ProcfsCollector {
    fn name(&self) -> &str {
        "procfs"
    }

    fn collect(&self, out: &mut Writer) -> Result<(), perfkit_exposition::Error> {
        write(&self.sample()?, out);
        Ok(())
    }
}

/// Writes one sample's families. `ticks_per_second` and the page size
/// come from the sample itself.
pub fn write(s: &Sample, o: &mut Writer) {
    let tps = s.ticks_per_second.max(1) as f64;

    if let Some(cpu) = &s.cpu {
        let mut f = o.counter("perfkit_cpu_seconds_total", "Seconds the CPUs spent in each mode.");
        for (n, t) in &cpu.per_cpu {
            let n = n.to_string();
            // Guest time is inside user and nice in /proc/stat; report it
            // apart so that the modes add up to wall time.
            for (mode, ticks) in [
                ("user", t.user.saturating_sub(t.guest)),
                ("nice", t.nice.saturating_sub(t.guest_nice)),
                ("system", t.system),
                ("idle", t.idle),
                ("iowait", t.iowait),
                ("irq", t.irq),
                ("softirq", t.softirq),
                ("steal", t.steal),
                ("guest", t.guest),
                ("guest_nice", t.guest_nice),
            ] {
                f.sample(&[("cpu", &n), ("mode", mode)], ticks as f64 / tps);
            }
        }
        o.counter("perfkit_context_switches_total", "Context switches.").sample(&[], cpu.context_switches as f64);
        o.counter("perfkit_interrupts_total", "Interrupts serviced.").sample(&[], cpu.interrupts as f64);
        o.counter("perfkit_forks_total", "Processes and threads created.").sample(&[], cpu.forks as f64);
        o.gauge("perfkit_procs_running", "Runnable tasks.").sample(&[], f64::from(cpu.procs_running));
        o.gauge("perfkit_procs_blocked", "Tasks blocked on I/O.").sample(&[], f64::from(cpu.procs_blocked));
    }
    if let Some(l) = s.load {
        o.gauge("perfkit_load1", "1-minute load average.").sample(&[], l.one);
        o.gauge("perfkit_load5", "5-minute load average.").sample(&[], l.five);
        o.gauge("perfkit_load15", "15-minute load average.").sample(&[], l.fifteen);
    }
    if let Some(m) = s.memory {
        for (name, help, v) in [
            ("perfkit_memory_total_bytes", "Usable memory.", m.total),
            ("perfkit_memory_free_bytes", "Unused memory.", m.free),
            ("perfkit_memory_available_bytes", "Memory available for new work without swapping.", m.available),
            ("perfkit_memory_buffers_bytes", "Block device buffers.", m.buffers),
            ("perfkit_memory_cached_bytes", "Page cache.", m.cached),
            ("perfkit_memory_shared_bytes", "Shared memory (tmpfs, shm).", m.shared),
            ("perfkit_memory_slab_reclaimable_bytes", "Reclaimable kernel slab.", m.slab_reclaimable),
            ("perfkit_memory_dirty_bytes", "Memory waiting to be written back.", m.dirty),
            ("perfkit_memory_swap_total_bytes", "Swap space.", m.swap_total),
            ("perfkit_memory_swap_free_bytes", "Unused swap space.", m.swap_free),
        ] {
            o.gauge(name, help).sample(&[], v as f64);
        }
    }
    if let Some(v) = s.vmstat {
        let page = s.page_size as f64;
        for (name, help, value) in [
            ("perfkit_vmstat_page_faults_total", "Page faults, minor and major.", v.pgfault as f64),
            ("perfkit_vmstat_major_page_faults_total", "Major page faults (needing I/O).", v.pgmajfault as f64),
            ("perfkit_vmstat_swapped_in_bytes_total", "Bytes swapped in.", v.pswpin as f64 * page),
            ("perfkit_vmstat_swapped_out_bytes_total", "Bytes swapped out.", v.pswpout as f64 * page),
            ("perfkit_vmstat_paged_in_bytes_total", "Bytes read from block devices.", v.pgpgin as f64 * 1024.0),
            ("perfkit_vmstat_paged_out_bytes_total", "Bytes written to block devices.", v.pgpgout as f64 * 1024.0),
        ] {
            o.counter(name, help).sample(&[], value);
        }
    }
    disk_families(o, &s.disks);
    net_families(o, &s.interfaces);
    if let Some(p) = s.pressure {
        let mut f = o.counter(
            "perfkit_pressure_some_stalled_seconds_total",
            "Seconds in which some tasks stalled on the resource (PSI).",
        );
        for (r, rp) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
            f.sample(&[("resource", r)], rp.some.total_us as f64 / 1e6);
        }
        let mut f = o.counter(
            "perfkit_pressure_full_stalled_seconds_total",
            "Seconds in which all non-idle tasks stalled on the resource (PSI).",
        );
        for (r, rp) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
            if let Some(full) = rp.full {
                f.sample(&[("resource", r)], full.total_us as f64 / 1e6);
            }
        }
    }
    process_families(o, &s.processes, tps);
    cgroup_families(o, &s.cgroups);
}

/// A family whose kind is chosen in a table.
fn family<'a>(o: &'a mut Writer, name: &str, kind: &str, help: &str) -> perfkit_exposition::Family<'a> {
    if kind == "counter" { o.counter(name, help) } else { o.gauge(name, help) }
}

fn disk_families(o: &mut Writer, disks: &[Disk]) {
    if disks.is_empty() {
        return;
    }
    type Get = fn(&Disk) -> f64;
    let families: [(&'static str, &str, &str, Get); 10] = [
        ("perfkit_disk_reads_completed_total", "counter", "Reads completed.", |d| d.reads as f64),
        ("perfkit_disk_reads_merged_total", "counter", "Adjacent reads merged.", |d| d.reads_merged as f64),
        ("perfkit_disk_read_bytes_total", "counter", "Bytes read.", |d| d.sectors_read as f64 * 512.0),
        ("perfkit_disk_read_time_seconds_total", "counter", "Seconds spent reading.", |d| d.read_ms as f64 / 1e3),
        ("perfkit_disk_writes_completed_total", "counter", "Writes completed.", |d| d.writes as f64),
        ("perfkit_disk_written_bytes_total", "counter", "Bytes written.", |d| d.sectors_written as f64 * 512.0),
        ("perfkit_disk_write_time_seconds_total", "counter", "Seconds spent writing.", |d| d.write_ms as f64 / 1e3),
        ("perfkit_disk_io_now", "gauge", "I/Os in flight.", |d| d.in_progress as f64),
        ("perfkit_disk_io_time_seconds_total", "counter", "Seconds with I/O in flight.", |d| d.io_ms as f64 / 1e3),
        (
            "perfkit_disk_io_time_weighted_seconds_total",
            "counter",
            "Seconds of I/O in flight, weighted by the number in flight.",
            |d| d.weighted_io_ms as f64 / 1e3,
        ),
    ];
    for (name, kind, help, get) in families {
        let mut f = family(o, name, kind, help);
        for d in disks {
            f.sample(&[("device", &d.name)], get(d));
        }
    }
}

fn net_families(o: &mut Writer, ifs: &[Interface]) {
    if ifs.is_empty() {
        return;
    }
    type Get = fn(&Interface) -> u64;
    let families: [(&'static str, &str, Get); 10] = [
        ("perfkit_network_receive_bytes_total", "Bytes received.", |i| i.rx_bytes),
        ("perfkit_network_receive_packets_total", "Packets received.", |i| i.rx_packets),
        ("perfkit_network_receive_errors_total", "Receive errors.", |i| i.rx_errors),
        ("perfkit_network_receive_drop_total", "Received packets dropped.", |i| i.rx_dropped),
        ("perfkit_network_receive_multicast_total", "Multicast packets received.", |i| i.rx_multicast),
        ("perfkit_network_transmit_bytes_total", "Bytes sent.", |i| i.tx_bytes),
        ("perfkit_network_transmit_packets_total", "Packets sent.", |i| i.tx_packets),
        ("perfkit_network_transmit_errors_total", "Transmit errors.", |i| i.tx_errors),
        ("perfkit_network_transmit_drop_total", "Packets dropped on send.", |i| i.tx_dropped),
        ("perfkit_network_receive_compressed_total", "Compressed packets received.", |i| i.rx_compressed),
    ];
    for (name, help, get) in families {
        let mut f = o.counter(name, help);
        for i in ifs {
            f.sample(&[("interface", &i.name)], get(i) as f64);
        }
    }
    let mut f = o.gauge("perfkit_network_speed_bytes", "Link speed in bytes per second, when known.");
    for i in ifs {
        if let Some(mbps) = i.speed_mbps {
            f.sample(&[("interface", &i.name)], mbps as f64 * 125_000.0);
        }
    }
}

fn process_families(o: &mut Writer, procs: &[Process], tps: f64) {
    if procs.is_empty() {
        return;
    }
    let labels = |p: &Process| (p.pid.to_string(), p.tid.map(|t| t.to_string()), p.comm.clone());
    let rows: Vec<_> = procs.iter().map(|p| (labels(p), p)).collect();
    {
        // One family with a `mode` label, as the machine's CPU time.
        let mut f = o.counter(
            "perfkit_process_cpu_seconds_total",
            "CPU seconds of the process, by mode (user includes guest time).",
        );
        for ((pid, tid, comm), p) in &rows {
            for (mode, ticks) in [("user", p.utime), ("system", p.stime)] {
                let v = ticks as f64 / tps;
                match tid {
                    Some(tid) => f.sample(&[("pid", pid), ("tid", tid), ("comm", comm), ("mode", mode)], v),
                    None => f.sample(&[("pid", pid), ("comm", comm), ("mode", mode)], v),
                };
            }
        }
    }
    let mut each = |name: &'static str, kind: &str, help: &str, get: &dyn Fn(&Process) -> Option<f64>| {
        let mut f = family(o, name, kind, help);
        for ((pid, tid, comm), p) in &rows {
            if let Some(v) = get(p) {
                match tid {
                    Some(tid) => f.sample(&[("pid", pid), ("tid", tid), ("comm", comm)], v),
                    None => f.sample(&[("pid", pid), ("comm", comm)], v),
                };
            }
        }
    };
    each("perfkit_process_resident_memory_bytes", "gauge", "Resident set size.", &|p| Some(p.rss as f64));
    each("perfkit_process_virtual_memory_bytes", "gauge", "Virtual memory size.", &|p| Some(p.vsize as f64));
    each("perfkit_process_minor_page_faults_total", "counter", "Minor page faults.", &|p| Some(p.minflt as f64));
    each("perfkit_process_major_page_faults_total", "counter", "Major page faults.", &|p| Some(p.majflt as f64));
    each("perfkit_process_read_bytes_total", "counter", "Bytes read from storage.", &|p| {
        p.io.map(|io| io.read_bytes as f64)
    });
    each("perfkit_process_written_bytes_total", "counter", "Bytes written to storage.", &|p| {
        p.io.map(|io| io.write_bytes as f64)
    });
    each("perfkit_process_voluntary_context_switches_total", "counter", "Voluntary context switches.", &|p| {
        Some(p.voluntary_switches as f64)
    });
    each("perfkit_process_involuntary_context_switches_total", "counter", "Involuntary context switches.", &|p| {
        Some(p.involuntary_switches as f64)
    });
    each("perfkit_process_threads", "gauge", "Threads.", &|p| Some(p.threads as f64));
}

fn cgroup_families(o: &mut Writer, groups: &[Cgroup]) {
    if groups.is_empty() {
        return;
    }
    let mut each = |name: &'static str, kind: &str, help: &str, get: &dyn Fn(&Cgroup) -> Option<f64>| {
        let mut f = family(o, name, kind, help);
        for g in groups {
            if let Some(v) = get(g) {
                f.sample(&[("cgroup", &g.path)], v);
            }
        }
    };
    each("perfkit_cgroup_cpu_seconds_total", "counter", "CPU seconds used by the cgroup.", &|g| {
        Some(g.usage_us as f64 / 1e6)
    });
    each("perfkit_cgroup_cpu_user_seconds_total", "counter", "User-mode CPU seconds.", &|g| {
        Some(g.user_us as f64 / 1e6)
    });
    each("perfkit_cgroup_cpu_system_seconds_total", "counter", "Kernel-mode CPU seconds.", &|g| {
        Some(g.system_us as f64 / 1e6)
    });
    each("perfkit_cgroup_memory_bytes", "gauge", "Memory charged to the cgroup.", &|g| {
        g.memory_bytes.map(|b| b as f64)
    });
    each("perfkit_cgroup_read_bytes_total", "counter", "Bytes read from block devices.", &|g| {
        Some(g.io_read_bytes as f64)
    });
    each("perfkit_cgroup_written_bytes_total", "counter", "Bytes written to block devices.", &|g| {
        Some(g.io_write_bytes as f64)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let s = Sample {
            ticks_per_second: 100,
            cpu: Some(CpuStat {
                per_cpu: vec![(0, CpuTicks { user: 250, guest: 50, ..Default::default() })],
                ..Default::default()
            }),
            processes: vec![Process { pid: 42, comm: "we\"ird\\name\n".into(), utime: 150, ..Default::default() }],
            ..Sample::default()
        };
        let mut w = Writer::new();
        write(&s, &mut w);
        let text = w.finish();
        assert!(text.contains("# TYPE perfkit_cpu_seconds_total counter\n"));
        assert!(text.contains("perfkit_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 2\n"), "{text}");
        assert!(text.contains("perfkit_cpu_seconds_total{cpu=\"0\",mode=\"guest\"} 0.5\n"));
        assert!(
            text.contains(
                "perfkit_process_cpu_seconds_total{pid=\"42\",comm=\"we\\\"ird\\\\name\\n\",mode=\"user\"} 1.5\n"
            ),
            "{text}"
        );
        // Each family's samples follow its own HELP and TYPE lines once.
        let types = text.lines().filter(|l| l.starts_with("# TYPE perfkit_cpu_seconds_total")).count();
        assert_eq!(types, 1);
    }
}
