//! Rates and percentages from two samples, as the sysstat tools compute
//! them. No I/O: every function takes samples and returns rows.
//!
//! Each report is computed over an interval: from `prev` to `cur`, or,
//! without `prev`, from boot (and for a process, from its start), which is
//! what sysstat prints when given no interval.

use std::collections::HashMap;

use crate::sample::*;

/// Seconds between two samples (or since boot).
pub fn elapsed(prev: Option<&Sample>, cur: &Sample) -> f64 {
    (cur.uptime - prev.map_or(0.0, |p| p.uptime)).max(0.0)
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs > 0.0 { now.saturating_sub(before) as f64 / secs } else { 0.0 }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole > 0 { 100.0 * part as f64 / whole as f64 } else { 0.0 }
}

/// One `mpstat -P ALL` row: percentages of the CPU's time in each state.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CpuRow {
    /// `all`, or the CPU number.
    pub cpu: String,
    /// User mode, without guest time.
    pub usr: f64,
    /// Niced user mode, without niced guest time.
    pub nice: f64,
    /// Kernel mode (without interrupts).
    pub sys: f64,
    /// Idle with I/O outstanding.
    pub iowait: f64,
    /// Hard interrupts.
    pub irq: f64,
    /// Soft interrupts.
    pub soft: f64,
    /// Stolen by the hypervisor.
    pub steal: f64,
    /// Running a guest.
    pub guest: f64,
    /// Running a niced guest.
    pub gnice: f64,
    /// Idle.
    pub idle: f64,
}

fn cpu_row(cpu: String, now: &CpuTicks, before: &CpuTicks) -> CpuRow {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let total = d(now.total(), before.total());
    let guest = d(now.guest, before.guest);
    let gnice = d(now.guest_nice, before.guest_nice);
    CpuRow {
        cpu,
        usr: pct(d(now.user, before.user).saturating_sub(guest), total),
        nice: pct(d(now.nice, before.nice).saturating_sub(gnice), total),
        sys: pct(d(now.system, before.system), total),
        iowait: pct(d(now.iowait, before.iowait), total),
        irq: pct(d(now.irq, before.irq), total),
        soft: pct(d(now.softirq, before.softirq), total),
        steal: pct(d(now.steal, before.steal), total),
        guest: pct(guest, total),
        gnice: pct(gnice, total),
        idle: pct(d(now.idle, before.idle), total),
    }
}

/// `mpstat -P ALL`: all CPUs, then each CPU.
pub fn cpu(prev: Option<&Sample>, cur: &Sample) -> Vec<CpuRow> {
    let Some(now) = &cur.cpu else { return Vec::new() };
    let zero = CpuStat::default();
    let before = prev.and_then(|p| p.cpu.as_ref()).unwrap_or(&zero);
    let mut rows = vec![cpu_row("all".into(), &now.total, &before.total)];
    let before_per: HashMap<u32, &CpuTicks> = before.per_cpu.iter().map(|(n, t)| (*n, t)).collect();
    for (n, t) in &now.per_cpu {
        let b = before_per.get(n).copied().copied().unwrap_or_default();
        rows.push(cpu_row(n.to_string(), t, &b));
    }
    rows
}

/// `vmstat` and `free` in one: run queue, memory, swap and block I/O, system
/// activity, CPU split.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MemReport {
    /// Runnable tasks (perfkit itself included).
    pub r: u32,
    /// Tasks blocked on I/O.
    pub b: u32,
    /// Swap used, KiB.
    pub swpd_kib: u64,
    /// Free memory, KiB.
    pub free_kib: u64,
    /// Buffers, KiB.
    pub buff_kib: u64,
    /// Page cache and reclaimable slab, KiB.
    pub cache_kib: u64,
    /// Swapped in, KiB/s.
    pub si: f64,
    /// Swapped out, KiB/s.
    pub so: f64,
    /// Read from block devices, KiB/s.
    pub bi: f64,
    /// Written to block devices, KiB/s.
    pub bo: f64,
    /// Interrupts per second.
    pub interrupts: f64,
    /// Context switches per second.
    pub cs: f64,
    /// User time, percent (nice included).
    pub us: f64,
    /// System time, percent (interrupts included).
    pub sy: f64,
    /// Idle, percent.
    pub id: f64,
    /// I/O wait, percent.
    pub wa: f64,
    /// Stolen, percent.
    pub st: f64,
    /// `free`: total memory, KiB.
    pub total_kib: u64,
    /// `free`: used (total minus available), KiB.
    pub used_kib: u64,
    /// `free`: shared, KiB.
    pub shared_kib: u64,
    /// `free`: available, KiB.
    pub available_kib: u64,
    /// `free`: swap total, KiB.
    pub swap_total_kib: u64,
    /// `free`: swap free, KiB.
    pub swap_free_kib: u64,
    /// Minor and major page faults per second.
    pub faults: f64,
    /// Major page faults per second.
    pub major_faults: f64,
    /// Load averages.
    pub load: [f64; 3],
}

/// The `vmstat`/`free` report; `None` without memory and CPU figures.
pub fn mem(prev: Option<&Sample>, cur: &Sample) -> Option<MemReport> {
    let secs = elapsed(prev, cur);
    let m = cur.memory?;
    let cpu = cur.cpu.as_ref()?;
    let zero_cpu = CpuStat::default();
    let pcpu = prev.and_then(|p| p.cpu.as_ref()).unwrap_or(&zero_cpu);
    let vm = cur.vmstat.unwrap_or_default();
    let pvm = prev.and_then(|p| p.vmstat).unwrap_or_default();
    let (n, b) = (&cpu.total, &pcpu.total);
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let total = d(n.total(), b.total());
    let kib = |bytes: u64| bytes / 1024;
    let page_kib = cur.page_size as f64 / 1024.0;
    let load = cur.load.unwrap_or_default();
    Some(MemReport {
        r: cpu.procs_running,
        b: cpu.procs_blocked,
        swpd_kib: kib(m.swap_total.saturating_sub(m.swap_free)),
        free_kib: kib(m.free),
        buff_kib: kib(m.buffers),
        cache_kib: kib(m.cached + m.slab_reclaimable),
        si: rate(vm.pswpin, pvm.pswpin, secs) * page_kib,
        so: rate(vm.pswpout, pvm.pswpout, secs) * page_kib,
        bi: rate(vm.pgpgin, pvm.pgpgin, secs),
        bo: rate(vm.pgpgout, pvm.pgpgout, secs),
        interrupts: rate(cpu.interrupts, pcpu.interrupts, secs),
        cs: rate(cpu.context_switches, pcpu.context_switches, secs),
        us: pct(d(n.user, b.user) + d(n.nice, b.nice), total),
        sy: pct(d(n.system, b.system) + d(n.irq, b.irq) + d(n.softirq, b.softirq), total),
        id: pct(d(n.idle, b.idle), total),
        wa: pct(d(n.iowait, b.iowait), total),
        st: pct(d(n.steal, b.steal), total),
        total_kib: kib(m.total),
        used_kib: kib(m.total.saturating_sub(m.available)),
        shared_kib: kib(m.shared),
        available_kib: kib(m.available),
        swap_total_kib: kib(m.swap_total),
        swap_free_kib: kib(m.swap_free),
        faults: rate(vm.pgfault, pvm.pgfault, secs),
        major_faults: rate(vm.pgmajfault, pvm.pgmajfault, secs),
        load: [load.one, load.five, load.fifteen],
    })
}

/// One `iostat -x` device row.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct DiskRow {
    pub device: String,
    pub r_s: f64,
    pub rkb_s: f64,
    pub rrqm_s: f64,
    pub rrqm_pct: f64,
    /// Mean read latency, ms.
    pub r_await: f64,
    /// Mean read size, KiB.
    pub rareq_sz: f64,
    pub w_s: f64,
    pub wkb_s: f64,
    pub wrqm_s: f64,
    pub wrqm_pct: f64,
    /// Mean write latency, ms.
    pub w_await: f64,
    /// Mean write size, KiB.
    pub wareq_sz: f64,
    /// Mean queue length.
    pub aqu_sz: f64,
    /// Time with I/O in flight, percent.
    pub util: f64,
}

/// `iostat -x` (with `-z`: `skip_idle` leaves out devices that did no I/O).
pub fn disk(prev: Option<&Sample>, cur: &Sample, skip_idle: bool) -> Vec<DiskRow> {
    let secs = elapsed(prev, cur);
    let before: HashMap<&str, &Disk> =
        prev.map(|p| p.disks.iter().map(|d| (d.name.as_str(), d)).collect()).unwrap_or_default();
    let zero = Disk::default();
    let mut rows = Vec::new();
    for d in &cur.disks {
        let b = before.get(d.name.as_str()).copied().unwrap_or(&zero);
        let dd = |a: u64, b: u64| a.saturating_sub(b);
        let (reads, writes) = (dd(d.reads, b.reads), dd(d.writes, b.writes));
        let (rmerged, wmerged) = (dd(d.reads_merged, b.reads_merged), dd(d.writes_merged, b.writes_merged));
        let (rkb, wkb) =
            (dd(d.sectors_read, b.sectors_read) as f64 / 2.0, dd(d.sectors_written, b.sectors_written) as f64 / 2.0);
        if skip_idle && reads == 0 && writes == 0 && d.in_progress == 0 {
            continue;
        }
        let per = |x: f64, n: u64| if n > 0 { x / n as f64 } else { 0.0 };
        let ms = secs * 1000.0;
        rows.push(DiskRow {
            device: d.name.clone(),
            r_s: rate(d.reads, b.reads, secs),
            rkb_s: if secs > 0.0 { rkb / secs } else { 0.0 },
            rrqm_s: rate(d.reads_merged, b.reads_merged, secs),
            rrqm_pct: pct(rmerged, rmerged + reads),
            r_await: per(dd(d.read_ms, b.read_ms) as f64, reads),
            rareq_sz: per(rkb, reads),
            w_s: rate(d.writes, b.writes, secs),
            wkb_s: if secs > 0.0 { wkb / secs } else { 0.0 },
            wrqm_s: rate(d.writes_merged, b.writes_merged, secs),
            wrqm_pct: pct(wmerged, wmerged + writes),
            w_await: per(dd(d.write_ms, b.write_ms) as f64, writes),
            wareq_sz: per(wkb, writes),
            aqu_sz: if ms > 0.0 { dd(d.weighted_io_ms, b.weighted_io_ms) as f64 / ms } else { 0.0 },
            util: if ms > 0.0 { (100.0 * dd(d.io_ms, b.io_ms) as f64 / ms).min(100.0) } else { 0.0 },
        });
    }
    rows
}

/// One `sar -n DEV` row.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct NetRow {
    pub iface: String,
    pub rxpck_s: f64,
    pub txpck_s: f64,
    pub rxkb_s: f64,
    pub txkb_s: f64,
    pub rxcmp_s: f64,
    pub txcmp_s: f64,
    pub rxmcst_s: f64,
    /// Utilisation of the link's speed, full duplex; 0 when unknown.
    pub ifutil: f64,
}

/// `sar -n DEV`.
pub fn net(prev: Option<&Sample>, cur: &Sample) -> Vec<NetRow> {
    let secs = elapsed(prev, cur);
    let before: HashMap<&str, &Interface> =
        prev.map(|p| p.interfaces.iter().map(|i| (i.name.as_str(), i)).collect()).unwrap_or_default();
    let zero = Interface::default();
    cur.interfaces
        .iter()
        .map(|i| {
            let b = before.get(i.name.as_str()).copied().unwrap_or(&zero);
            let rxkb = rate(i.rx_bytes, b.rx_bytes, secs) / 1024.0;
            let txkb = rate(i.tx_bytes, b.tx_bytes, secs) / 1024.0;
            let ifutil = match i.speed_mbps {
                Some(mbps) if mbps > 0 => {
                    let bits = rxkb.max(txkb) * 1024.0 * 8.0;
                    (100.0 * bits / (mbps as f64 * 1_000_000.0)).min(100.0)
                }
                _ => 0.0,
            };
            NetRow {
                iface: i.name.clone(),
                rxpck_s: rate(i.rx_packets, b.rx_packets, secs),
                txpck_s: rate(i.tx_packets, b.tx_packets, secs),
                rxkb_s: rxkb,
                txkb_s: txkb,
                rxcmp_s: rate(i.rx_compressed, b.rx_compressed, secs),
                txcmp_s: rate(i.tx_compressed, b.tx_compressed, secs),
                rxmcst_s: rate(i.rx_multicast, b.rx_multicast, secs),
                ifutil,
            }
        })
        .collect()
}

/// One resource's pressure over the interval.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PsiRow {
    /// `cpu`, `memory` or `io`.
    pub resource: &'static str,
    /// Kernel's 10 s average of "some" stall, percent.
    pub some_avg10: f64,
    /// 60 s average.
    pub some_avg60: f64,
    /// 300 s average.
    pub some_avg300: f64,
    /// Share of the interval in which some task stalled, percent.
    pub some_pct: f64,
    /// The same averages and share for "full" (all tasks stalled).
    pub full_avg10: Option<f64>,
    /// 60 s average.
    pub full_avg60: Option<f64>,
    /// 300 s average.
    pub full_avg300: Option<f64>,
    /// Share of the interval with all tasks stalled, percent.
    pub full_pct: Option<f64>,
}

/// Pressure stall information; empty when the kernel has no PSI.
pub fn psi(prev: Option<&Sample>, cur: &Sample) -> Vec<PsiRow> {
    let secs = elapsed(prev, cur);
    let Some(p) = cur.pressure else { return Vec::new() };
    let before = prev.and_then(|s| s.pressure).unwrap_or_default();
    let share = |now: u64, then: u64| {
        if secs > 0.0 { (now.saturating_sub(then) as f64 / (secs * 1e4)).min(100.0) } else { 0.0 }
    };
    [("cpu", p.cpu, before.cpu), ("memory", p.memory, before.memory), ("io", p.io, before.io)]
        .into_iter()
        .map(|(resource, r, b)| PsiRow {
            resource,
            some_avg10: r.some.avg10,
            some_avg60: r.some.avg60,
            some_avg300: r.some.avg300,
            some_pct: share(r.some.total_us, b.some.total_us),
            full_avg10: r.full.map(|f| f.avg10),
            full_avg60: r.full.map(|f| f.avg60),
            full_avg300: r.full.map(|f| f.avg300),
            full_pct: r.full.map(|f| share(f.total_us, b.full.map_or(0, |x| x.total_us))),
        })
        .collect()
}

/// One `pidstat -u -r -d -w` row.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct ProcRow {
    pub uid: u32,
    pub pid: u32,
    /// Thread id, for thread rows.
    pub tid: Option<u32>,
    pub usr: f64,
    pub system: f64,
    pub guest: f64,
    /// Time runnable but waiting for a CPU, percent of the interval
    /// (`None` without scheduler statistics).
    pub wait: Option<f64>,
    /// Percent of one CPU: 200 for two busy CPUs, as pidstat shows.
    pub cpu_pct: f64,
    /// CPU it last ran on.
    pub cpu: u32,
    pub minflt_s: f64,
    pub majflt_s: f64,
    pub vsz_kib: u64,
    pub rss_kib: u64,
    pub mem_pct: f64,
    /// KiB/s read from storage; `None` when /proc/PID/io is not readable.
    pub kb_rd_s: Option<f64>,
    pub kb_wr_s: Option<f64>,
    pub kb_ccwr_s: Option<f64>,
    /// Ticks waiting for block I/O in the interval.
    pub iodelay: u64,
    pub cswch_s: f64,
    pub nvcswch_s: f64,
    pub command: String,
}

impl ProcRow {
    /// Whether anything happened in the interval (pidstat lists only
    /// active tasks unless given PIDs).
    pub fn active(&self) -> bool {
        self.cpu_pct > 0.0
            || self.minflt_s > 0.0
            || self.majflt_s > 0.0
            || self.kb_rd_s.unwrap_or(0.0) > 0.0
            || self.kb_wr_s.unwrap_or(0.0) > 0.0
            || self.cswch_s > 0.0
            || self.nvcswch_s > 0.0
    }
}

/// `pidstat`: each process (or thread) present in both samples. A process
/// that started or exited during the interval has no honest rate and is
/// left out, as pidstat does; a reused pid is told apart by its start time.
/// Without `prev`, rates are since each process started.
pub fn processes(prev: Option<&Sample>, cur: &Sample) -> Vec<ProcRow> {
    let secs = elapsed(prev, cur);
    let tps = cur.ticks_per_second.max(1) as f64;
    let mem_total = cur.memory.map_or(0, |m| m.total);
    type Key = (u32, Option<u32>, u64);
    let before: Option<HashMap<Key, &Process>> =
        prev.map(|p| p.processes.iter().map(|x| ((x.pid, x.tid, x.start_ticks), x)).collect());
    let zero = Process::default();
    let mut rows = Vec::new();
    for p in &cur.processes {
        let (b, secs) = match &before {
            Some(map) => match map.get(&(p.pid, p.tid, p.start_ticks)) {
                Some(b) => (*b, secs),
                None => continue,
            },
            None => (&zero, (cur.uptime - p.start_ticks as f64 / tps).max(0.0)),
        };
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let cpu_pct = |ticks: u64| if secs > 0.0 { 100.0 * ticks as f64 / (secs * tps) } else { 0.0 };
        let guest = d(p.guest_time, b.guest_time);
        let usr = d(p.utime, b.utime).saturating_sub(guest);
        let sys = d(p.stime, b.stime);
        let io_rate = |f: fn(&ProcessIo) -> u64| {
            let now = p.io?;
            let then = if before.is_some() { b.io? } else { ProcessIo::default() };
            Some(rate(f(&now), f(&then), secs) / 1024.0)
        };
        rows.push(ProcRow {
            uid: p.uid,
            pid: p.pid,
            tid: p.tid,
            usr: cpu_pct(usr),
            system: cpu_pct(sys),
            guest: cpu_pct(guest),
            wait: p.run_delay_ns.and_then(|now| {
                let then = if before.is_some() { b.run_delay_ns? } else { 0 };
                (secs > 0.0).then(|| 100.0 * now.saturating_sub(then) as f64 / (secs * 1e9))
            }),
            cpu_pct: cpu_pct(usr + sys + guest),
            cpu: p.processor,
            minflt_s: rate(p.minflt, b.minflt, secs),
            majflt_s: rate(p.majflt, b.majflt, secs),
            vsz_kib: p.vsize / 1024,
            rss_kib: p.rss / 1024,
            mem_pct: pct(p.rss, mem_total),
            kb_rd_s: io_rate(|io| io.read_bytes),
            kb_wr_s: io_rate(|io| io.write_bytes),
            kb_ccwr_s: io_rate(|io| io.cancelled_write_bytes),
            iodelay: d(p.blkio_ticks, b.blkio_ticks),
            cswch_s: rate(p.voluntary_switches, b.voluntary_switches, secs),
            nvcswch_s: rate(p.involuntary_switches, b.involuntary_switches, secs),
            command: p.comm.clone(),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uptime: f64) -> Sample {
        Sample { uptime, ticks_per_second: 100, page_size: 4096, ..Sample::default() }
    }

    #[test]
    fn cpu_percentages_come_from_tick_deltas() {
        let mut a = sample(10.0);
        let mut b = sample(11.0);
        let t = |user, system, idle, guest| CpuTicks { user, system, idle, guest, ..CpuTicks::default() };
        a.cpu = Some(CpuStat {
            total: t(1000, 500, 8500, 0),
            per_cpu: vec![(0, t(500, 250, 4250, 0)), (1, t(500, 250, 4250, 0))],
            ..Default::default()
        });
        // In one second on two CPUs (200 ticks): CPU 0 busy in user mode
        // (40 of its 100 ticks as guest), CPU 1 idle.
        b.cpu = Some(CpuStat {
            total: t(1100, 500, 8600, 40),
            per_cpu: vec![(0, t(600, 250, 4250, 40)), (1, t(500, 250, 4350, 0))],
            ..Default::default()
        });
        let rows = cpu(Some(&a), &b);
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].cpu.as_str(), rows[0].usr, rows[0].guest, rows[0].idle), ("all", 30.0, 20.0, 50.0));
        assert_eq!((rows[1].cpu.as_str(), rows[1].usr, rows[1].guest, rows[1].idle), ("0", 60.0, 40.0, 0.0));
        assert_eq!((rows[2].usr, rows[2].idle), (0.0, 100.0));
    }

    #[test]
    fn process_rates_match_by_pid_and_start_time() {
        let p = |pid, start, utime, stime, wr| Process {
            pid,
            comm: format!("p{pid}"),
            start_ticks: start,
            utime,
            stime,
            rss: 8 << 20,
            voluntary_switches: utime,
            io: Some(ProcessIo { write_bytes: wr, ..Default::default() }),
            ..Process::default()
        };
        let mut a = sample(100.0);
        let mut b = sample(102.0);
        a.memory = Some(Memory { total: 64 << 20, ..Default::default() });
        b.memory = a.memory;
        // 1: burns one CPU for 2 s (150 user + 50 system ticks) and writes
        //    4 MiB; 2: exits; 3: pid reused by a new process; 4: new.
        a.processes = vec![p(1, 10, 1000, 100, 0), p(2, 20, 5, 5, 0), p(3, 30, 7, 7, 0)];
        b.processes = vec![p(1, 10, 1150, 150, 4 << 20), p(3, 9000, 1, 1, 0), p(4, 9100, 1, 1, 0)];
        let rows = processes(Some(&a), &b);
        assert_eq!(rows.len(), 1, "only the process present in both");
        let r = &rows[0];
        assert_eq!((r.pid, r.usr, r.system, r.cpu_pct), (1, 75.0, 25.0, 100.0));
        assert_eq!(r.kb_wr_s, Some(2048.0));
        assert_eq!(r.cswch_s, 75.0);
        assert_eq!((r.rss_kib, r.mem_pct), (8192, 12.5));
    }

    #[test]
    fn since_boot_rates_use_each_process_lifetime() {
        let mut s = sample(50.0);
        // Started 10 s after boot, ran 40 s, used 20 s of CPU: 50 %.
        // It waited 10 s for a CPU: 25 %.
        s.processes = vec![Process {
            pid: 7,
            start_ticks: 1000,
            utime: 2000,
            run_delay_ns: Some(10_000_000_000),
            ..Process::default()
        }];
        let rows = processes(None, &s);
        assert_eq!(rows[0].cpu_pct, 50.0);
        assert_eq!(rows[0].wait, Some(25.0));
    }

    #[test]
    fn disk_rows_follow_iostat_formulas_and_skip_idle_devices() {
        let mut a = sample(0.0);
        let mut b = sample(2.0);
        let mk = |name: &str, writes, sectors, write_ms, io_ms, weighted| Disk {
            name: name.into(),
            writes,
            sectors_written: sectors,
            write_ms,
            io_ms,
            weighted_io_ms: weighted,
            ..Disk::default()
        };
        a.disks = vec![mk("vda", 100, 1000, 50, 100, 200), mk("vdb", 1, 1, 1, 1, 1)];
        // 2 s: 200 writes of 8 KiB (3200 sectors), 400 ms writing, busy 1 s.
        b.disks = vec![mk("vda", 300, 4200, 450, 1100, 1200), mk("vdb", 1, 1, 1, 1, 1)];
        let rows = disk(Some(&a), &b, true);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.w_s, r.wkb_s, r.w_await, r.wareq_sz), (100.0, 800.0, 2.0, 8.0));
        assert_eq!((r.util, r.aqu_sz), (50.0, 0.5));
        assert_eq!(disk(Some(&a), &b, false).len(), 2);
    }

    #[test]
    fn net_and_psi_rates() {
        let mut a = sample(0.0);
        let mut b = sample(4.0);
        a.interfaces = vec![Interface { name: "eth0".into(), speed_mbps: Some(100), ..Default::default() }];
        b.interfaces = vec![Interface {
            name: "eth0".into(),
            rx_bytes: 4 * 1024 * 1000,
            rx_packets: 400,
            speed_mbps: Some(100),
            ..Default::default()
        }];
        let rows = net(Some(&a), &b);
        assert_eq!((rows[0].rxkb_s, rows[0].rxpck_s), (1000.0, 100.0));
        assert!((rows[0].ifutil - 8.192).abs() < 1e-9);

        let stall = |total_us| Stall { total_us, ..Stall::default() };
        a.pressure = Some(Pressure::default());
        b.pressure = Some(Pressure {
            io: ResourcePressure { some: stall(1_000_000), full: Some(stall(400_000)) },
            ..Pressure::default()
        });
        let psi = psi(Some(&a), &b);
        assert_eq!((psi[2].resource, psi[2].some_pct, psi[2].full_pct), ("io", 25.0, Some(10.0)));
    }
}
