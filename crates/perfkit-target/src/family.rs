//! A process's descendants (as `pgrep -P`, recursively) and the CPU time
//! processes used, from procfs.
//!
//! Children are read from `/proc/PID/task/TID/children` (every thread's:
//! a child's parent is the thread that forked it); on a kernel without
//! `CONFIG_PROC_CHILDREN`, from the parent PID in each `/proc/PID/stat`.
//! Reads are bounded: a process listing more children than
//! [`MAX_DESCENDANTS`] in all is cut there.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs,
    io::Read,
    path::Path,
};

/// Descendants gathered at most, per call.
pub const MAX_DESCENDANTS: usize = 65_536;

/// Bytes read at most from one procfs file (`children`, `stat`).
const MAX_PROC_FILE: u64 = 1 << 20;

fn read_small(path: &Path) -> Option<String> {
    let mut s = String::new();
    fs::File::open(path).ok()?.take(MAX_PROC_FILE).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The live descendants of `pid` (children, their children...), in
/// breadth-first order, without `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    descendants_in(Path::new("/proc"), pid)
}

/// `pids` followed by the live descendants of each that are not already
/// listed: what `--children` watches.
pub fn with_descendants(pids: &[u32]) -> Vec<u32> {
    let mut out = pids.to_vec();
    let mut listed: HashSet<u32> = pids.iter().copied().collect();
    for &pid in pids {
        for c in descendants(pid) {
            if listed.insert(c) {
                out.push(c);
            }
        }
    }
    out
}

/// As [`descendants`], with procfs mounted at `proc_root`.
pub fn descendants_in(proc_root: &Path, pid: u32) -> Vec<u32> {
    let mut by_parent: Option<HashMap<u32, Vec<u32>>> = None;
    let mut seen: HashSet<u32> = HashSet::from([pid]);
    let mut queue = VecDeque::from([pid]);
    let mut out = Vec::new();
    while let Some(p) = queue.pop_front() {
        let children = match children_of(proc_root, p) {
            Some(c) => c,
            None => by_parent.get_or_insert_with(|| parents(proc_root)).get(&p).cloned().unwrap_or_default(),
        };
        for c in children {
            if out.len() >= MAX_DESCENDANTS {
                return out;
            }
            if seen.insert(c) {
                out.push(c);
                queue.push_back(c);
            }
        }
    }
    out
}

/// The children of every thread of `pid`; `None` when the kernel has no
/// `children` files (or the process is gone).
fn children_of(proc_root: &Path, pid: u32) -> Option<Vec<u32>> {
    let tasks = fs::read_dir(proc_root.join(pid.to_string()).join("task")).ok()?;
    let mut out = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        let Some(text) = read_small(&task.path().join("children")) else { continue };
        any = true;
        out.extend(text.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
    any.then_some(out)
}

/// Every process's children, by parent, from each `/proc/PID/stat`.
fn parents(proc_root: &Path) -> HashMap<u32, Vec<u32>> {
    let mut by_parent: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = fs::read_dir(proc_root) else { return by_parent };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(ppid) = read_small(&entry.path().join("stat")).and_then(|s| stat_field(&s, 1)) {
            by_parent.entry(ppid as u32).or_default().push(pid);
        }
    }
    for children in by_parent.values_mut() {
        children.sort_unstable();
    }
    by_parent
}

/// Field `n` of a `stat` line after the command name (0: state, 1: parent
/// PID, 11: user time, 12: system time). The name is the process's own and
/// may hold spaces and parentheses: the fields start after the last `)`.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(n)?.parse().ok()
}

/// The CPU time `pid` used so far (user and system, all its threads), in
/// clock ticks ([`clock_ticks_per_second`]); `None` when it is gone.
pub fn cpu_ticks(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = read_small(&proc_root.join(pid.to_string()).join("stat"))?;
    Some(stat_field(&stat, 11)? + stat_field(&stat, 12)?)
}

/// The unit of [`cpu_ticks`] (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(root: &Path, pid: u32, children: Option<&str>, ppid: u32, ticks: (u64, u64)) {
        let dir = root.join(pid.to_string());
        fs::create_dir_all(dir.join("task").join(pid.to_string())).unwrap();
        if let Some(c) = children {
            fs::write(dir.join("task").join(pid.to_string()).join("children"), c).unwrap();
        }
        let stat = format!("{pid} (a (b) c) S {ppid} 1 1 0 -1 4194304 100 0 0 0 {} {} 0 0 20 0 1 0", ticks.0, ticks.1);
        fs::write(dir.join("stat"), stat).unwrap();
    }

    #[test]
    fn descendants_are_found_recursively_from_children_files() {
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 100, Some("101 102 "), 1, (0, 0));
        task(root.path(), 101, Some("103"), 100, (0, 0));
        task(root.path(), 102, Some(""), 100, (0, 0));
        task(root.path(), 103, Some(""), 101, (0, 0));
        task(root.path(), 200, Some(""), 1, (0, 0));
        // A second thread of 100 forked 104.
        fs::create_dir_all(root.path().join("100/task/105")).unwrap();
        fs::write(root.path().join("100/task/105/children"), "104\n").unwrap();
        let mut d = descendants_in(root.path(), 100);
        d.sort_unstable();
        assert_eq!(d, [101, 102, 103, 104]);
        assert!(descendants_in(root.path(), 200).is_empty());
        assert!(descendants_in(root.path(), 999).is_empty());
    }

    #[test]
    fn without_children_files_the_parent_pids_are_read() {
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 100, None, 1, (0, 0));
        task(root.path(), 101, None, 100, (0, 0));
        task(root.path(), 102, None, 101, (0, 0));
        task(root.path(), 103, None, 1, (0, 0));
        assert_eq!(descendants_in(root.path(), 100), [101, 102]);
    }

    #[test]
    fn cpu_time_is_read_after_a_name_with_parentheses() {
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 100, None, 1, (250, 50));
        assert_eq!(cpu_ticks(root.path(), 100), Some(300));
        assert_eq!(cpu_ticks(root.path(), 101), None);
        fs::write(root.path().join("100/stat"), "100 (x").unwrap();
        assert_eq!(cpu_ticks(root.path(), 100), None);
        assert!(clock_ticks_per_second() > 0);
    }
}
