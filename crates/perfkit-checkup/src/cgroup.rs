//! Control groups: memory use against limits, refaults, pressure, OOM
//! kills and CPU throttling of each group, read from cgroupfs (v2, or the
//! v1 hierarchy that holds the controller). Parsers take bytes; the reader
//! walks the mounted hierarchies with bounded reads charged to a
//! [`Budget`].

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use perfkit_safeio::{Budget, BudgetError};
use serde::{Deserialize, Serialize};

/// Which cgroup version a group belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Version {
    V1,
    V2,
}

/// A memory cgroup's counters at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct MemoryCounters {
    /// `memory.current` (v2), `memory.usage_in_bytes` (v1).
    pub current: u64,
    /// `memory.max` (v2), `memory.limit_in_bytes` (v1); `None`: no limit.
    pub max: Option<u64>,
    /// `memory.high` (v2); `None`: no limit.
    pub high: Option<u64>,
    /// `inactive_file` of memory.stat (v1: `total_inactive_file`).
    pub inactive_file: u64,
    /// `workingset_refault_file` (v1: `total_workingset_refault_file`).
    pub refault_file: u64,
    /// `pgmajfault` (v1: `total_pgmajfault`).
    pub major_faults: u64,
    /// Times the limit was hit: memory.events `max` (v2), `memory.failcnt` (v1).
    pub limit_hits: u64,
    /// OOM kills in the group: memory.events `oom_kill` (v2),
    /// memory.oom_control `oom_kill` (v1).
    pub oom_kills: u64,
    /// `memory.pressure` totals, microseconds (v2 only).
    pub pressure_some_us: Option<u64>,
    pub pressure_full_us: Option<u64>,
}

/// A CPU cgroup's bandwidth counters (`cpu.stat`) at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct CpuCounters {
    pub periods: u64,
    pub throttled: u64,
    /// v2 `throttled_usec`; v1 `throttled_time` (ns) / 1000.
    pub throttled_us: u64,
    /// The quota in CPUs (`cpu.max`, `cpu.cfs_quota_us` / period); `None`: none.
    pub quota_cpus: Option<f64>,
}

/// Every group's counters at one instant, keyed by path below its
/// hierarchy's mount (`/system.slice/x.service`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupSnapshot {
    /// Memory controller groups (the root left out).
    pub memory: BTreeMap<String, MemoryCounters>,
    /// The memory controller's version.
    pub memory_version: Option<Version>,
    /// CPU controller groups (the root left out).
    pub cpu: BTreeMap<String, CpuCounters>,
    /// The CPU controller's version.
    pub cpu_version: Option<Version>,
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
pub fn parse_flat(text: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (k, v) = (f.next()?, f.next()?.parse().ok()?);
            Some((k.to_string(), v))
        })
        .collect()
}

/// A limit file: a number, or `max` (v2) for none; v1's "unlimited"
/// (a page-rounded `i64::MAX`) is none too.
pub fn parse_limit(text: &[u8]) -> Option<u64> {
    let s = String::from_utf8_lossy(text);
    let v: u64 = s.trim().parse().ok()?;
    (v < 1 << 62).then_some(v)
}

/// `memory.pressure` / `cpu.pressure`: the `total=` of `some` and `full`.
pub fn parse_pressure(text: &[u8]) -> (Option<u64>, Option<u64>) {
    let s = String::from_utf8_lossy(text);
    let total = |kind: &str| {
        s.lines()
            .find(|l| l.starts_with(kind))
            .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")?.parse().ok()))
    };
    (total("some"), total("full"))
}

/// `cpu.max` (v2): `QUOTA PERIOD` or `max PERIOD`; the quota in CPUs.
pub fn parse_cpu_max(text: &[u8]) -> Option<f64> {
    let s = String::from_utf8_lossy(text);
    let mut f = s.split_whitespace();
    let quota: f64 = f.next()?.parse().ok()?;
    let period: f64 = f.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

/// The most read of one cgroup file.
const FILE_LIMIT: u64 = 64 << 10;
/// Groups read per controller at most (a host with thousands of
/// containers is read in part; a note says so).
pub const MAX_GROUPS: usize = 2048;
/// Depth below the mount walked at most.
const MAX_DEPTH: usize = 12;

/// Where the memory and cpu controllers are mounted.
#[derive(Clone, Debug, Default)]
pub struct Hierarchies {
    memory: Option<(PathBuf, Version)>,
    cpu: Option<(PathBuf, Version)>,
}

impl Hierarchies {
    /// From the text of `/proc/mounts`: a v1 hierarchy mounted with the
    /// controller holds it; else cgroup2, when its root lists it in
    /// `cgroup.controllers` (read under `root`, the file system root).
    pub fn from_mounts(mounts: &[u8], root: &Path) -> Self {
        let text = String::from_utf8_lossy(mounts);
        let v1 = |controller: &str| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == controller))
                    .then(|| (rebase(root, f[1]), Version::V1))
            })
        };
        let (memory, cpu) = (v1("memory"), v1("cpu"));
        let v2 = text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[2] == "cgroup2").then(|| rebase(root, f[1]))
        });
        let controllers = v2
            .as_ref()
            .and_then(|p| read_bounded(&p.join("cgroup.controllers")))
            .map(|b| String::from_utf8_lossy(&b).split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default();
        let on_v2 = |c: &str| controllers.iter().any(|x| x == c).then(|| (v2.clone().unwrap_or_default(), Version::V2));
        Self { memory: memory.or_else(|| on_v2("memory")), cpu: cpu.or_else(|| on_v2("cpu")) }
    }

    /// Reads every group's counters (at most [`MAX_GROUPS`] a controller).
    /// The bytes read are charged to `budget` while held.
    pub fn snapshot(&self, budget: &Budget) -> Result<CgroupSnapshot, BudgetError> {
        let mut snap = CgroupSnapshot::default();
        if let Some((mount, version)) = &self.memory {
            snap.memory_version = Some(*version);
            for (rel, dir) in walk(mount) {
                let _charge = budget.charge(4 * FILE_LIMIT, dir.display())?;
                if let Some(m) = read_memory(&dir, *version) {
                    snap.memory.insert(rel, m);
                }
            }
        }
        if let Some((mount, version)) = &self.cpu {
            snap.cpu_version = Some(*version);
            for (rel, dir) in walk(mount) {
                let _charge = budget.charge(2 * FILE_LIMIT, dir.display())?;
                if let Some(c) = read_cpu(&dir, *version) {
                    snap.cpu.insert(rel, c);
                }
            }
        }
        Ok(snap)
    }

    /// The processes of a memory group (`cgroup.procs`), at most `max`.
    pub fn memory_pids(&self, rel: &str, max: usize) -> Vec<u32> {
        self.memory.as_ref().map_or_else(Vec::new, |(m, _)| pids(&m.join(rel.trim_start_matches('/')), max))
    }

    /// The processes of a CPU group (`cgroup.procs`), at most `max`.
    pub fn cpu_pids(&self, rel: &str, max: usize) -> Vec<u32> {
        self.cpu.as_ref().map_or_else(Vec::new, |(m, _)| pids(&m.join(rel.trim_start_matches('/')), max))
    }

    /// Whether any controller was found.
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpu.is_none()
    }
}

fn rebase(root: &Path, mount: &str) -> PathBuf {
    root.join(mount.trim_start_matches('/'))
}

fn pids(dir: &Path, max: usize) -> Vec<u32> {
    read_bounded(&dir.join("cgroup.procs"))
        .map(|b| String::from_utf8_lossy(&b).lines().filter_map(|l| l.trim().parse().ok()).take(max).collect())
        .unwrap_or_default()
}

/// A cgroupfs file, at most [`FILE_LIMIT`] bytes; `None` when unreadable.
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path).ok()?.take(FILE_LIMIT).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The groups below `mount` (not the root), breadth first, as (path
/// below the mount, directory). Symlinks are not followed.
fn walk(mount: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut queue = vec![(String::new(), mount.to_path_buf(), 0usize)];
    while let Some((rel, dir, depth)) = queue.pop() {
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            if out.len() >= MAX_GROUPS {
                return out;
            }
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            out.push((child.clone(), e.path()));
            queue.push((child, e.path(), depth + 1));
        }
    }
    out
}

fn read_memory(dir: &Path, version: Version) -> Option<MemoryCounters> {
    let stat = parse_flat(&read_bounded(&dir.join("memory.stat"))?);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Some(match version {
        Version::V2 => {
            let events = read_bounded(&dir.join("memory.events")).map(|b| parse_flat(&b)).unwrap_or_default();
            let (some, full) = read_bounded(&dir.join("memory.pressure")).map_or((None, None), |b| parse_pressure(&b));
            MemoryCounters {
                current: read_bounded(&dir.join("memory.current")).and_then(|b| parse_limit(&b))?,
                max: read_bounded(&dir.join("memory.max")).and_then(|b| parse_limit(&b)),
                high: read_bounded(&dir.join("memory.high")).and_then(|b| parse_limit(&b)),
                inactive_file: get("inactive_file"),
                refault_file: get("workingset_refault_file"),
                major_faults: get("pgmajfault"),
                limit_hits: events.get("max").copied().unwrap_or(0),
                oom_kills: events.get("oom_kill").copied().unwrap_or(0),
                pressure_some_us: some,
                pressure_full_us: full,
            }
        }
        Version::V1 => {
            let oom = read_bounded(&dir.join("memory.oom_control")).map(|b| parse_flat(&b)).unwrap_or_default();
            MemoryCounters {
                current: read_bounded(&dir.join("memory.usage_in_bytes")).and_then(|b| parse_limit(&b))?,
                max: read_bounded(&dir.join("memory.limit_in_bytes")).and_then(|b| parse_limit(&b)),
                high: None,
                inactive_file: get("total_inactive_file"),
                refault_file: get("total_workingset_refault_file"),
                major_faults: get("total_pgmajfault"),
                limit_hits: read_bounded(&dir.join("memory.failcnt")).and_then(|b| parse_limit(&b)).unwrap_or(0),
                oom_kills: oom.get("oom_kill").copied().unwrap_or(0),
                pressure_some_us: None,
                pressure_full_us: None,
            }
        }
    })
}

fn read_cpu(dir: &Path, version: Version) -> Option<CpuCounters> {
    let stat = parse_flat(&read_bounded(&dir.join("cpu.stat"))?);
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    Some(match version {
        Version::V2 => CpuCounters {
            periods: get("nr_periods"),
            throttled: get("nr_throttled"),
            throttled_us: get("throttled_usec"),
            quota_cpus: read_bounded(&dir.join("cpu.max")).and_then(|b| parse_cpu_max(&b)),
        },
        Version::V1 => {
            let num = |f: &str| {
                read_bounded(&dir.join(f)).and_then(|b| String::from_utf8_lossy(&b).trim().parse::<f64>().ok())
            };
            let quota = match (num("cpu.cfs_quota_us"), num("cpu.cfs_period_us")) {
                (Some(q), Some(p)) if q > 0.0 && p > 0.0 => Some(q / p),
                _ => None,
            };
            CpuCounters {
                periods: get("nr_periods"),
                throttled: get("nr_throttled"),
                throttled_us: get("throttled_time") / 1000,
                quota_cpus: quota,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_limit(b"max\n"), None);
        assert_eq!(parse_limit(b"9223372036854771712\n"), None);
        assert_eq!(parse_limit(b"67108864\n"), Some(64 << 20));
        assert_eq!(parse_limit(b"garbage"), None);
        let p = parse_pressure(
            b"some avg10=1.00 avg60=0.50 avg300=0.10 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=678\n",
        );
        assert_eq!(p, (Some(12345), Some(678)));
        assert_eq!(parse_pressure(b"\xff\xfe"), (None, None));
        assert_eq!(parse_cpu_max(b"10000 100000\n"), Some(0.1));
        assert_eq!(parse_cpu_max(b"max 100000\n"), None);
        let f = parse_flat(b"nr_periods 10\nnr_throttled 4\nthrottled_usec 900\nbad\nx y\n");
        assert_eq!((f["nr_periods"], f["nr_throttled"], f["throttled_usec"]), (10, 4, 900));
        assert!(!f.contains_key("x"));
    }

    #[test]
    fn hierarchies_on_a_captured_tree() {
        let dir = std::env::temp_dir().join(format!("perfkit-checkup-cg-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mem = dir.join("sys/fs/cgroup/memory/app");
        let v2 = dir.join("sys/fs/cgroup/unified/job");
        fs::create_dir_all(&mem).unwrap();
        fs::create_dir_all(&v2).unwrap();
        fs::write(dir.join("sys/fs/cgroup/unified/cgroup.controllers"), "cpu io pids\n").unwrap();
        fs::write(mem.join("memory.stat"), "total_inactive_file 4096\ntotal_workingset_refault_file 77\n").unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "1048576\n").unwrap();
        fs::write(mem.join("memory.limit_in_bytes"), "2097152\n").unwrap();
        fs::write(mem.join("memory.failcnt"), "3\n").unwrap();
        fs::write(mem.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        fs::write(mem.join("cgroup.procs"), "10\n11\n").unwrap();
        fs::write(v2.join("cpu.stat"), "usage_usec 5\nnr_periods 100\nnr_throttled 90\nthrottled_usec 800000\n")
            .unwrap();
        fs::write(v2.join("cpu.max"), "10000 100000\n").unwrap();
        let mounts = b"cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        let h = Hierarchies::from_mounts(mounts, &dir);
        let snap = h.snapshot(&Budget::new(64 << 20)).unwrap();
        assert_eq!(snap.memory_version, Some(Version::V1));
        assert_eq!(snap.cpu_version, Some(Version::V2));
        let m = &snap.memory["/app"];
        assert_eq!((m.current, m.max, m.refault_file, m.limit_hits, m.oom_kills), (1 << 20, Some(2 << 20), 77, 3, 2));
        let c = snap.cpu["/job"];
        assert_eq!((c.periods, c.throttled, c.throttled_us, c.quota_cpus), (100, 90, 800000, Some(0.1)));
        assert_eq!(h.memory_pids("/app", 10), [10, 11]);
        assert_eq!(h.memory_pids("/app", 1), [10]);
        // A budget too small for one group's files is an error, not a panic.
        assert!(h.snapshot(&Budget::new(1024)).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
