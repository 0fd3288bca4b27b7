//! cgroup v2 groups as profiling targets.
//!
//! A container or a systemd service is a cgroup. Its id, as BPF programs
//! see it (`bpf_get_current_cgroup_id`), is the inode number of its
//! directory in the cgroup v2 file system, and its level is its depth below
//! that file system's root. Hybrid hierarchies mount v2 away from
//! `/sys/fs/cgroup` (at `/sys/fs/cgroup/unified`), so the mount is found in
//! `/proc/self/mountinfo`.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crate::TargetError;

/// A cgroup v2 group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// Its directory.
    pub path: PathBuf,
    /// Its id (the directory's inode number).
    pub id: u64,
    /// Its depth below the v2 root (the root is 0).
    pub level: u32,
}

/// Where the cgroup v2 file system is mounted, from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Option<PathBuf> {
    mount_from(&fs::read_to_string("/proc/self/mountinfo").ok()?)
}

fn mount_from(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(unescape(left.split_whitespace().nth(4)?)))
    })
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.by_ref().take(3).collect();
            if let Ok(v) = u8::from_str_radix(&oct, 8) {
                out.push(v as char);
                continue;
            }
            out.push('\\');
            out.push_str(&oct);
        } else {
            out.push(c);
        }
    }
    out
}

impl Cgroup {
    /// A group by path: a directory in the v2 file system, or a path
    /// relative to its root (`/system.slice/nginx.service` as
    /// `/proc/PID/cgroup` shows it).
    pub fn resolve(arg: &Path) -> Result<Self, TargetError> {
        let root = cgroup2_mount().ok_or(TargetError::NoCgroup2)?;
        Self::resolve_in(&root, arg)
    }

    /// As [`resolve`](Self::resolve), with the v2 file system at `root`.
    pub fn resolve_in(root: &Path, arg: &Path) -> Result<Self, TargetError> {
        let candidates = if arg.starts_with(root) {
            vec![arg.to_owned()]
        } else {
            let rel = arg.strip_prefix("/").unwrap_or(arg);
            let mut v = vec![root.join(rel)];
            if arg.is_absolute() {
                v.push(arg.to_owned());
            }
            v
        };
        let path = candidates
            .into_iter()
            .find(|p| p.join("cgroup.procs").exists())
            .ok_or_else(|| TargetError::NoSuchCgroup(arg.to_owned()))?;
        let path = path.canonicalize().map_err(|_| TargetError::NoSuchCgroup(arg.to_owned()))?;
        let rel = path.strip_prefix(root).map_err(|_| TargetError::NoSuchCgroup(arg.to_owned()))?;
        let id = fs::metadata(&path).map_err(|_| TargetError::NoSuchCgroup(arg.to_owned()))?.ino();
        Ok(Self { level: rel.components().count() as u32, path, id })
    }

    /// The processes in the group now (not in groups below it).
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// The path (from the v2 root, `/system.slice/x.service`) of the group
/// whose id is `id`, found by walking the v2 tree; `None` when no group
/// has it (it was removed) or the tree has over 100,000 groups.
pub fn path_of_id(id: u64) -> Option<String> {
    let root = cgroup2_mount()?;
    let mut stack = vec![root.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        if fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            let rel = dir.strip_prefix(&root).unwrap_or(&dir);
            return Some(format!("/{}", rel.display()));
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_of_a_hybrid_hierarchy() {
        let info = "\
25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(mount_from(info), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(mount_from("1 2 0:1 / /x\\040y rw - cgroup2 c rw\n"), Some(PathBuf::from("/x y")));
        assert_eq!(mount_from("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn resolves_groups_by_absolute_and_relative_paths() {
        let root = tempfile::tempdir().unwrap();
        let group = root.path().join("system.slice/app.service");
        fs::create_dir_all(&group).unwrap();
        fs::write(group.join("cgroup.procs"), "12\n34\n").unwrap();
        let root = root.path().canonicalize().unwrap();
        let g = Cgroup::resolve_in(&root, Path::new("/system.slice/app.service")).unwrap();
        assert_eq!(g.level, 2);
        assert_eq!(g.pids(), vec![12, 34]);
        let g2 = Cgroup::resolve_in(&root, &root.join("system.slice/app.service")).unwrap();
        assert_eq!(g, g2);
        assert!(matches!(
            Cgroup::resolve_in(&root, Path::new("/nope")),
            Err(TargetError::NoSuchCgroup(p)) if p == Path::new("/nope")
        ));
    }
}
