//! A sample in the Prometheus text exposition format (version 0.0.4).
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

use std::fmt::Write;

use crate::sample::*;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out, name }
    }

    fn value(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Renders one sample. `ticks_per_second` and the page size come from the
/// sample itself.
pub fn render(s: &Sample) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let tps = s.ticks_per_second.max(1) as f64;
    let o = &mut out;

    if let Some(cpu) = &s.cpu {
        let mut f = Family::new(o, "perfkit_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.");
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
                f.value(&[("cpu", &n), ("mode", mode)], ticks as f64 / tps);
            }
        }
        Family::new(o, "perfkit_context_switches_total", "counter", "Context switches.")
            .value(&[], cpu.context_switches as f64);
        Family::new(o, "perfkit_interrupts_total", "counter", "Interrupts serviced.").value(&[], cpu.interrupts as f64);
        Family::new(o, "perfkit_forks_total", "counter", "Processes and threads created.").value(&[], cpu.forks as f64);
        Family::new(o, "perfkit_procs_running", "gauge", "Runnable tasks.").value(&[], f64::from(cpu.procs_running));
        Family::new(o, "perfkit_procs_blocked", "gauge", "Tasks blocked on I/O.")
            .value(&[], f64::from(cpu.procs_blocked));
    }
    if let Some(l) = s.load {
        Family::new(o, "perfkit_load1", "gauge", "1-minute load average.").value(&[], l.one);
        Family::new(o, "perfkit_load5", "gauge", "5-minute load average.").value(&[], l.five);
        Family::new(o, "perfkit_load15", "gauge", "15-minute load average.").value(&[], l.fifteen);
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
            Family::new(o, name, "gauge", help).value(&[], v as f64);
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
            Family::new(o, name, "counter", help).value(&[], value);
        }
    }
    disk_families(o, &s.disks);
    net_families(o, &s.interfaces);
    if let Some(p) = s.pressure {
        let mut f = Family::new(
            o,
            "perfkit_pressure_some_stalled_seconds_total",
            "counter",
            "Seconds in which some tasks stalled on the resource (PSI).",
        );
        for (r, rp) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
            f.value(&[("resource", r)], rp.some.total_us as f64 / 1e6);
        }
        let mut f = Family::new(
            o,
            "perfkit_pressure_full_stalled_seconds_total",
            "counter",
            "Seconds in which all non-idle tasks stalled on the resource (PSI).",
        );
        for (r, rp) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
            if let Some(full) = rp.full {
                f.value(&[("resource", r)], full.total_us as f64 / 1e6);
            }
        }
    }
    process_families(o, &s.processes, tps);
    cgroup_families(o, &s.cgroups);
    out
}

fn disk_families(o: &mut String, disks: &[Disk]) {
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
        let mut f = Family::new(o, name, kind, help);
        for d in disks {
            f.value(&[("device", &d.name)], get(d));
        }
    }
}

fn net_families(o: &mut String, ifs: &[Interface]) {
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
        let mut f = Family::new(o, name, "counter", help);
        for i in ifs {
            f.value(&[("interface", &i.name)], get(i) as f64);
        }
    }
    let mut f = Family::new(o, "perfkit_network_speed_bytes", "gauge", "Link speed in bytes per second, when known.");
    for i in ifs {
        if let Some(mbps) = i.speed_mbps {
            f.value(&[("interface", &i.name)], mbps as f64 * 125_000.0);
        }
    }
}

fn process_families(o: &mut String, procs: &[Process], tps: f64) {
    if procs.is_empty() {
        return;
    }
    let labels = |p: &Process| (p.pid.to_string(), p.tid.map(|t| t.to_string()), p.comm.clone());
    let rows: Vec<_> = procs.iter().map(|p| (labels(p), p)).collect();
    {
        // One family with a `mode` label, as the machine's CPU time.
        let mut f = Family::new(
            o,
            "perfkit_process_cpu_seconds_total",
            "counter",
            "CPU seconds of the process, by mode (user includes guest time).",
        );
        for ((pid, tid, comm), p) in &rows {
            for (mode, ticks) in [("user", p.utime), ("system", p.stime)] {
                let v = ticks as f64 / tps;
                match tid {
                    Some(tid) => f.value(&[("pid", pid), ("tid", tid), ("comm", comm), ("mode", mode)], v),
                    None => f.value(&[("pid", pid), ("comm", comm), ("mode", mode)], v),
                }
            }
        }
    }
    let mut each = |name: &'static str, kind: &str, help: &str, get: &dyn Fn(&Process) -> Option<f64>| {
        let mut f = Family::new(o, name, kind, help);
        for ((pid, tid, comm), p) in &rows {
            if let Some(v) = get(p) {
                match tid {
                    Some(tid) => f.value(&[("pid", pid), ("tid", tid), ("comm", comm)], v),
                    None => f.value(&[("pid", pid), ("comm", comm)], v),
                }
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

fn cgroup_families(o: &mut String, groups: &[Cgroup]) {
    if groups.is_empty() {
        return;
    }
    let mut each = |name: &'static str, kind: &str, help: &str, get: &dyn Fn(&Cgroup) -> Option<f64>| {
        let mut f = Family::new(o, name, kind, help);
        for g in groups {
            if let Some(v) = get(g) {
                f.value(&[("cgroup", &g.path)], v);
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
        let text = render(&s);
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
