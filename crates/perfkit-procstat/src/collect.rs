//! Reading samples from procfs and sysfs, parsed by the `procfs-core`
//! crate. The root directory is a parameter, so tests read captured files.

use std::{
    fs,
    io::{self, Cursor},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use procfs_core::{
    CpuPressure, CpuTime, ExplicitSystemInfo, FromBufRead, FromBufReadSI, FromRead, IoPressure, KernelStats,
    LoadAverage, Meminfo, MemoryPressure, PressureRecord, VmStat,
    net::InterfaceDeviceStatus,
    process::{Io, Schedstat, Stat},
};

use crate::sample::*;

/// Why a sample could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// A file every Linux system has could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file did not parse.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Which processes to sample.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessSelection {
    /// None: system-wide figures only.
    #[default]
    None,
    /// Every process.
    All,
    /// These process ids (those that exist).
    Pids(Vec<u32>),
}

/// What to collect beyond the system-wide figures.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CollectOptions {
    /// Which processes.
    pub processes: ProcessSelection,
    /// One row per thread instead of per process.
    pub threads: bool,
    /// cgroup v2 groups, down to this depth below the root (0: none).
    pub cgroup_depth: usize,
}

/// Takes samples from a procfs and sysfs tree.
#[derive(Clone, Debug)]
pub struct Collector {
    proc: PathBuf,
    sys: PathBuf,
    info: ExplicitSystemInfo,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// Reads the live system: `/proc` and `/sys`.
    pub fn new() -> Self {
        // SAFETY: sysconf only reads configuration values.
        let (tps, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        Self::with_root("/", if tps > 0 { tps as u64 } else { 100 }, if page > 0 { page as u64 } else { 4096 })
    }

    /// Reads `ROOT/proc` and `ROOT/sys`, as a system with this clock tick
    /// rate and page size (for captured trees; `/proc` does not record
    /// them).
    pub fn with_root(root: impl AsRef<Path>, ticks_per_second: u64, page_size: u64) -> Self {
        let root = root.as_ref();
        let info = ExplicitSystemInfo { boot_time_secs: 0, ticks_per_second, page_size, is_little_endian: true };
        Self { proc: root.join("proc"), sys: root.join("sys"), info }
    }

    /// Takes one sample.
    pub fn collect(&self, options: &CollectOptions) -> Result<Sample, CollectError> {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let uptime_text = self.read_required("uptime")?;
        let uptime = uptime_text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| self.parse_error("uptime", "no uptime"))?;
        let mut sample = Sample {
            unix_ms,
            uptime,
            ticks_per_second: self.info.ticks_per_second,
            page_size: self.info.page_size,
            ..Sample::default()
        };
        sample.cpu = Some(self.cpu()?);
        sample.memory = Some(self.memory()?);
        sample.vmstat = Some(self.vmstat()?);
        sample.load = Some(self.load()?);
        sample.disks = self.disks()?;
        sample.interfaces = self.interfaces()?;
        sample.pressure = self.pressure();
        sample.processes = self.processes(options);
        if options.cgroup_depth > 0 {
            sample.cgroups = self.cgroups(options.cgroup_depth);
        }
        Ok(sample)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.proc.join(rel)
    }

    fn read_required(&self, rel: &str) -> Result<String, CollectError> {
        let path = self.path(rel);
        fs::read_to_string(&path).map_err(|source| CollectError::Read { path, source })
    }

    fn parse_error(&self, rel: &str, reason: impl ToString) -> CollectError {
        CollectError::Parse { path: self.path(rel), reason: reason.to_string() }
    }

    fn cpu(&self) -> Result<CpuStat, CollectError> {
        let text = self.read_required("stat")?;
        let stats =
            KernelStats::from_buf_read(Cursor::new(&text), &self.info).map_err(|e| self.parse_error("stat", e))?;
        // procfs-core keeps the per-CPU lines in order; their numbers come
        // from the labels (an offline CPU leaves a gap).
        let numbers =
            text.lines().filter_map(|l| l.split_whitespace().next()?.strip_prefix("cpu")?.parse::<u32>().ok());
        let interrupts =
            text.lines().find_map(|l| l.strip_prefix("intr ")?.split_whitespace().next()?.parse().ok()).unwrap_or(0);
        Ok(CpuStat {
            total: ticks(&stats.total),
            per_cpu: numbers.zip(stats.cpu_time.iter().map(ticks)).collect(),
            context_switches: stats.ctxt,
            interrupts,
            forks: stats.processes,
            procs_running: stats.procs_running.unwrap_or(0),
            procs_blocked: stats.procs_blocked.unwrap_or(0),
        })
    }

    fn memory(&self) -> Result<Memory, CollectError> {
        let text = self.read_required("meminfo")?;
        let m = Meminfo::from_buf_read(Cursor::new(text)).map_err(|e| self.parse_error("meminfo", e))?;
        Ok(Memory {
            total: m.mem_total,
            free: m.mem_free,
            available: m.mem_available.unwrap_or(m.mem_free + m.buffers + m.cached),
            buffers: m.buffers,
            cached: m.cached,
            shared: m.shmem.unwrap_or(0),
            slab_reclaimable: m.s_reclaimable.unwrap_or(0),
            dirty: m.dirty,
            swap_total: m.swap_total,
            swap_free: m.swap_free,
        })
    }

    fn vmstat(&self) -> Result<VmCounters, CollectError> {
        let text = self.read_required("vmstat")?;
        let v = VmStat::from_buf_read(Cursor::new(text)).map_err(|e| self.parse_error("vmstat", e))?;
        let get = |k: &str| v.0.get(k).copied().unwrap_or(0).max(0) as u64;
        Ok(VmCounters {
            pgpgin: get("pgpgin"),
            pgpgout: get("pgpgout"),
            pswpin: get("pswpin"),
            pswpout: get("pswpout"),
            pgfault: get("pgfault"),
            pgmajfault: get("pgmajfault"),
        })
    }

    fn load(&self) -> Result<LoadAvg, CollectError> {
        let text = self.read_required("loadavg")?;
        let l = LoadAverage::from_read(Cursor::new(text)).map_err(|e| self.parse_error("loadavg", e))?;
        Ok(LoadAvg {
            one: decimal(l.one),
            five: decimal(l.five),
            fifteen: decimal(l.fifteen),
            runnable: l.cur,
            total: l.max,
        })
    }

    fn disks(&self) -> Result<Vec<Disk>, CollectError> {
        let text = self.read_required("diskstats")?;
        let stats =
            procfs_core::DiskStats::from_buf_read(Cursor::new(text)).map_err(|e| self.parse_error("diskstats", e))?;
        // Whole disks are those in /sys/block; partitions are left out, as
        // iostat does without -p. Without /sys (a captured tree), keep all.
        let block = self.sys.join("block");
        let whole = |name: &str| !block.is_dir() || block.join(name.replace('/', "!")).exists();
        Ok(stats
            .0
            .into_iter()
            .filter(|d| whole(&d.name))
            .map(|d| Disk {
                name: d.name,
                reads: d.reads,
                reads_merged: d.merged,
                sectors_read: d.sectors_read,
                read_ms: d.time_reading,
                writes: d.writes,
                writes_merged: d.writes_merged,
                sectors_written: d.sectors_written,
                write_ms: d.time_writing,
                in_progress: d.in_progress,
                io_ms: d.time_in_progress,
                weighted_io_ms: d.weighted_time_in_progress,
            })
            .collect())
    }

    fn interfaces(&self) -> Result<Vec<Interface>, CollectError> {
        let text = self.read_required("net/dev")?;
        let devs =
            InterfaceDeviceStatus::from_buf_read(Cursor::new(text)).map_err(|e| self.parse_error("net/dev", e))?;
        let mut out: Vec<Interface> = devs
            .0
            .into_values()
            .map(|d| {
                let speed_mbps = fs::read_to_string(self.sys.join("class/net").join(&d.name).join("speed"))
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .filter(|&s| s > 0)
                    .map(|s| s as u64);
                Interface {
                    name: d.name,
                    rx_bytes: d.recv_bytes,
                    rx_packets: d.recv_packets,
                    rx_errors: d.recv_errs,
                    rx_dropped: d.recv_drop,
                    rx_compressed: d.recv_compressed,
                    rx_multicast: d.recv_multicast,
                    tx_bytes: d.sent_bytes,
                    tx_packets: d.sent_packets,
                    tx_errors: d.sent_errs,
                    tx_dropped: d.sent_drop,
                    tx_compressed: d.sent_compressed,
                    speed_mbps,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// PSI, or `None` when the kernel has none (or it is disabled).
    fn pressure(&self) -> Option<Pressure> {
        let read = |name: &str| fs::read(self.path(&format!("pressure/{name}"))).ok();
        let cpu = CpuPressure::from_buf_read(Cursor::new(read("cpu")?)).ok()?;
        let memory = MemoryPressure::from_buf_read(Cursor::new(read("memory")?)).ok()?;
        let io = IoPressure::from_buf_read(Cursor::new(read("io")?)).ok()?;
        // The CPU "full" line exists since Linux 5.13; before, it reads 0.
        Some(Pressure {
            cpu: ResourcePressure { some: stall(&cpu.some), full: Some(stall(&cpu.full)) },
            memory: ResourcePressure { some: stall(&memory.some), full: Some(stall(&memory.full)) },
            io: ResourcePressure { some: stall(&io.some), full: Some(stall(&io.full)) },
        })
    }

    fn processes(&self, options: &CollectOptions) -> Vec<Process> {
        let pids: Vec<u32> = match &options.processes {
            ProcessSelection::None => return Vec::new(),
            ProcessSelection::Pids(pids) => pids.clone(),
            ProcessSelection::All => match fs::read_dir(&self.proc) {
                Ok(entries) => {
                    let mut pids: Vec<u32> =
                        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
                    pids.sort_unstable();
                    pids
                }
                Err(_) => return Vec::new(),
            },
        };
        let mut out = Vec::with_capacity(pids.len());
        let mut buf = Vec::with_capacity(8192);
        for pid in pids {
            let dir = self.proc.join(pid.to_string());
            if options.threads {
                let Ok(tasks) = fs::read_dir(dir.join("task")) else { continue };
                let mut tids: Vec<u32> = tasks.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
                tids.sort_unstable();
                for tid in tids {
                    if let Some(p) = self.process(&dir.join("task").join(tid.to_string()), pid, Some(tid), &mut buf) {
                        out.push(p);
                    }
                }
            } else if let Some(p) = self.process(&dir, pid, None, &mut buf) {
                out.push(p);
            }
        }
        out
    }

    /// One process or thread; `None` when it vanished (or never existed)
    /// while being read.
    fn process(&self, dir: &Path, pid: u32, tid: Option<u32>, buf: &mut Vec<u8>) -> Option<Process> {
        read_into(&dir.join("stat"), buf).ok()?;
        // A process may name itself with any bytes: escape invalid UTF-8 in
        // the name so the line parses and the process stays visible.
        let stat = if std::str::from_utf8(buf).is_ok() {
            Stat::from_read(Cursor::new(&buf[..])).ok()?
        } else {
            Stat::from_read(Cursor::new(escape_comm(buf)?)).ok()?
        };
        read_into(&dir.join("status"), buf).ok()?;
        let status = StatusFields::parse(&buf[..])?;
        let io = match read_into(&dir.join("io"), buf) {
            Ok(()) => Io::from_buf_read(Cursor::new(&buf[..])).ok().map(|io| ProcessIo {
                read_bytes: io.read_bytes,
                write_bytes: io.write_bytes,
                cancelled_write_bytes: io.cancelled_write_bytes,
            }),
            Err(_) => None,
        };
        let run_delay_ns = match read_into(&dir.join("schedstat"), buf) {
            Ok(()) => Schedstat::from_read(Cursor::new(&buf[..])).ok().map(|s| s.run_delay),
            Err(_) => None,
        };
        Some(Process {
            pid,
            tid,
            comm: stat.comm,
            uid: status.uid,
            state: stat.state,
            start_ticks: stat.starttime,
            utime: stat.utime,
            stime: stat.stime,
            guest_time: stat.guest_time.unwrap_or(0),
            blkio_ticks: stat.delayacct_blkio_ticks.unwrap_or(0),
            minflt: stat.minflt,
            majflt: stat.majflt,
            vsize: stat.vsize,
            rss: stat.rss * self.info.page_size,
            threads: stat.num_threads.max(0) as u64,
            processor: stat.processor.unwrap_or(0).max(0) as u32,
            voluntary_switches: status.voluntary_switches,
            involuntary_switches: status.involuntary_switches,
            io,
            run_delay_ns,
        })
    }

    fn cgroups(&self, depth: usize) -> Vec<Cgroup> {
        // The unified hierarchy: at /sys/fs/cgroup, or under
        // /sys/fs/cgroup/unified on hybrid systems.
        let Some(root) = [self.sys.join("fs/cgroup"), self.sys.join("fs/cgroup/unified")]
            .into_iter()
            .find(|r| r.join("cgroup.controllers").exists())
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![(root.clone(), 0usize)];
        while let Some((dir, level)) = stack.pop() {
            let rel = dir.strip_prefix(&root).map(|p| format!("/{}", p.display())).unwrap_or_else(|_| "/".into());
            if let Some(g) = read_cgroup(&dir, rel) {
                out.push(g);
            }
            if level < depth
                && let Ok(entries) = fs::read_dir(&dir)
            {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((e.path(), level + 1));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// `/proc/PID/stat` with the name between the first `(` and the last `)`
/// made valid UTF-8 (invalid bytes as `\xNN`).
fn escape_comm(stat: &[u8]) -> Option<Vec<u8>> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    if close <= open {
        return None;
    }
    let mut out = stat[..=open].to_vec();
    for chunk in stat[open + 1..close].utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out.extend_from_slice(&stat[close..]);
    Some(out)
}

/// The three fields of `/proc/PID/status` that `stat` lacks.
///
/// `procfs-core`'s `Status` parses all ~55 fields into a hash map first;
/// with a thousand processes that was a third of the collection's user
/// time, so these three lines are read directly.
#[derive(Debug, PartialEq, Eq)]
struct StatusFields {
    uid: u32,
    voluntary_switches: u64,
    involuntary_switches: u64,
}

impl StatusFields {
    fn parse(text: &[u8]) -> Option<Self> {
        // The Name line holds whatever bytes the process chose.
        let text = String::from_utf8_lossy(text);
        let (mut uid, mut vol, mut invol) = (None, 0, 0);
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("Uid:") {
                uid = v.split_whitespace().next()?.parse().ok();
            } else if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                vol = v.trim().parse().ok()?;
            } else if let Some(v) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                invol = v.trim().parse().ok()?;
            }
        }
        Some(Self { uid: uid?, voluntary_switches: vol, involuntary_switches: invol })
    }
}

/// Reads a whole file into `buf`, reusing its allocation. Unlike
/// `fs::read` it asks for no metadata (procfs reports size 0 anyway) and
/// reads a small /proc file in one call.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    // A plain read loop: `read_to_end` on a File would first ask for its
    // size and position (statx, lseek), two wasted calls per /proc file.
    let mut file = fs::File::open(path)?;
    let mut len = 0;
    loop {
        if buf.len() < len + 4096 {
            buf.resize(len + 4096, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(())
}

fn read_cgroup(dir: &Path, path: String) -> Option<Cgroup> {
    let cpu = fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let field = |text: &str, key: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
    };
    let memory_bytes = fs::read_to_string(dir.join("memory.current")).ok().and_then(|s| s.trim().parse().ok());
    let (mut rbytes, mut wbytes) = (0, 0);
    if let Ok(io) = fs::read_to_string(dir.join("io.stat")) {
        for kv in io.split_whitespace() {
            if let Some(v) = kv.strip_prefix("rbytes=") {
                rbytes += v.parse::<u64>().unwrap_or(0);
            } else if let Some(v) = kv.strip_prefix("wbytes=") {
                wbytes += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(Cgroup {
        path,
        usage_us: field(&cpu, "usage_usec"),
        user_us: field(&cpu, "user_usec"),
        system_us: field(&cpu, "system_usec"),
        memory_bytes,
        io_read_bytes: rbytes,
        io_write_bytes: wbytes,
    })
}

fn ticks(c: &CpuTime) -> CpuTicks {
    CpuTicks {
        user: c.user,
        nice: c.nice,
        system: c.system,
        idle: c.idle,
        iowait: c.iowait.unwrap_or(0),
        irq: c.irq.unwrap_or(0),
        softirq: c.softirq.unwrap_or(0),
        steal: c.steal.unwrap_or(0),
        guest: c.guest.unwrap_or(0),
        guest_nice: c.guest_nice.unwrap_or(0),
    }
}

fn stall(r: &PressureRecord) -> Stall {
    Stall { avg10: decimal(r.avg10), avg60: decimal(r.avg60), avg300: decimal(r.avg300), total_us: r.total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_invalid_utf8_parse_escaped() {
        let stat = b"42 (\xff\xfeh\x1b[31mog) R 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 100 1000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let fixed = escape_comm(stat).unwrap();
        let parsed = Stat::from_read(Cursor::new(fixed)).unwrap();
        assert_eq!(parsed.comm, "\\xff\\xfeh\u{1b}[31mog");
        assert_eq!(parsed.pid, 42);
    }

    #[test]
    fn status_fields_agree_with_procfs_core() {
        let text = fs::read("/proc/self/status").unwrap();
        let ours = StatusFields::parse(&text).unwrap();
        let full = procfs_core::process::Status::from_buf_read(Cursor::new(&text)).unwrap();
        assert_eq!(ours.uid, full.ruid);
        assert_eq!(Some(ours.voluntary_switches), full.voluntary_ctxt_switches);
        assert_eq!(Some(ours.involuntary_switches), full.nonvoluntary_ctxt_switches);
        assert!(StatusFields::parse(b"Name:\tx\n").is_none(), "no Uid line");
        let odd = b"Name:\t\xff\xfe\nUid:\t1000\t1000\t1000\t1000\nvoluntary_ctxt_switches:\t3\n";
        assert_eq!(StatusFields::parse(odd).unwrap().uid, 1000, "a name with invalid UTF-8 hides nothing");
    }
}

/// The `f64` of the decimal the kernel wrote, which procfs-core parsed
/// into an `f32`: `1.59`, not `1.590000033378601`.
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod decimal_tests {
    #[test]
    fn f32_values_come_back_as_their_decimals() {
        assert_eq!(super::decimal(1.59), 1.59);
        assert_eq!(super::decimal(2.13), 2.13);
        assert_eq!(super::decimal(0.0), 0.0);
    }
}
