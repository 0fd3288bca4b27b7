//! A process's executable mappings, tracked while it runs.

use std::{
    collections::{HashMap, HashSet},
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::files::{ModuleFile, OpenError};

/// Why mappings could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapsError {
    /// The process no longer exists.
    #[error("process {0} has exited")]
    Exited(u32),
    /// Reading `/proc/PID/maps` failed.
    #[error("reading /proc/{pid}/maps failed")]
    Io {
        /// Process id.
        pid: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsLine {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions, such as `r-xp`.
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// Device of the mapped file (`major:minor`, as `stat` encodes it).
    pub dev: u64,
    /// Inode of the mapped file, 0 for anonymous mappings.
    pub inode: u64,
    /// Path or pseudo-name (`[vdso]`, `[heap]`), empty for anonymous memory.
    pub path: String,
}

/// Parses the text of `/proc/PID/maps`, skipping lines it cannot read.
pub fn parse_maps(text: &str) -> Vec<MapsLine> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MapsLine> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    Some(MapsLine {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms: perms.to_owned(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: parse_dev(dev)?,
        inode: inode.parse().ok()?,
        path: path.to_owned(),
    })
}

/// `fd:01` (hex major:minor) as a `dev_t`, as `stat` reports it.
fn parse_dev(s: &str) -> Option<u64> {
    let (major, minor) = s.split_once(':')?;
    let (major, minor) = (u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?);
    Some(libc::makedev(major, minor))
}

/// Where this process's own vDSO is mapped, and its image. The vDSO is the
/// same image in every process, so a target's vDSO addresses are resolved
/// (and unwound) through ours. Read once: it never moves.
pub fn own_vdso() -> Option<&'static (std::ops::Range<u64>, Vec<u8>)> {
    static VDSO: std::sync::OnceLock<Option<(std::ops::Range<u64>, Vec<u8>)>> = std::sync::OnceLock::new();
    VDSO.get_or_init(|| {
        let text = fs::read_to_string("/proc/self/maps").ok()?;
        let l = parse_maps(&text).into_iter().find(|l| l.path == "[vdso]")?;
        // SAFETY: the vDSO mapping is readable for the life of the process
        // and never changes; its range comes from our own maps.
        let bytes = unsafe { std::slice::from_raw_parts(l.start as *const u8, (l.end - l.start) as usize) };
        Some((l.start..l.end, bytes.to_vec()))
    })
    .as_ref()
}

/// A file-backed executable mapping, with the file held open.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The path as the process sees it (or a pseudo-name such as `[vdso]`).
    pub path: String,
    /// The open file, when it could be opened.
    pub file: Option<Arc<ModuleFile>>,
}

impl Mapping {
    /// The module's short name: the path's file name.
    pub fn module_name(&self) -> &str {
        let p = self.path.strip_suffix(" (deleted)").unwrap_or(&self.path);
        p.rsplit('/').next().unwrap_or(p)
    }

    /// Anonymous executable memory (JIT or generated code): no file, and
    /// not one of the kernel's named images (`[vdso]`, `[vsyscall]`,
    /// `[uprobes]`).
    pub fn is_anonymous(&self) -> bool {
        self.file.is_none()
            && (self.path.is_empty()
                || self.path.starts_with("[anon")
                || self.path == "[heap]"
                || self.path.starts_with("[stack"))
    }

    /// The file offset of `addr`, which must be inside the mapping.
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.offset
    }
}

/// Everything symbolization needs to resolve sampled frames: files by the
/// id walked frames encode (`perfkit-probes`), and each process's
/// executable mappings (for frames that are plain addresses).
#[derive(Debug, Default)]
pub struct Modules {
    /// Files by id.
    pub files: HashMap<u32, Arc<ModuleFile>>,
    /// Every executable mapping each process was seen with, oldest first.
    pub processes: HashMap<u32, Vec<Mapping>>,
    /// Each process's user id, as last seen (to check the files it
    /// writes, such as JIT symbol maps, before reading them).
    pub uids: HashMap<u32, u32>,
    /// Names of generated code a backend read from the runtime itself (a
    /// JVM's compiled methods and stubs, from its code cache), per process:
    /// start address -> (end address, name). Used where no perf map names
    /// the code.
    pub code_names: HashMap<u32, std::collections::BTreeMap<u64, (u64, Arc<str>)>>,
    /// The methods inlined at places of that code (a JVM's compiled
    /// methods, from their debug information), per process: the frame's
    /// address as symbolization looks it up (the sampled PC, or a return
    /// address less 1) -> (its code's start and end, the inlined methods'
    /// names, outermost first). Each frame named from [`Modules::code_names`]
    /// or a perf map is followed by these, as inlined frames.
    pub inlined: HashMap<u32, HashMap<u64, InlinedAt>>,
}

/// The methods inlined at one place of generated code (see
/// [`Modules::inlined`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlinedAt {
    /// The code (start, end) the place was in when it was read.
    pub code: (u64, u64),
    /// The inlined methods' names, outermost first.
    pub names: Arc<[Arc<str>]>,
}

impl Modules {
    /// The name a backend read for generated code at `addr` of `pid`.
    pub fn code_name(&self, pid: u32, addr: u64) -> Option<&Arc<str>> {
        let (_, (end, name)) = self.code_names.get(&pid)?.range(..=addr).next_back()?;
        (addr < *end).then_some(name)
    }

    /// The methods inlined at `addr` of `pid`'s generated code (see
    /// [`Modules::inlined`]), outermost first: none where nothing was read
    /// there, or where the code named there has changed since.
    pub fn inlined_at(&self, pid: u32, addr: u64) -> &[Arc<str>] {
        let Some(at) = self.inlined.get(&pid).and_then(|m| m.get(&addr)) else { return &[] };
        let same = self.code_names.get(&pid).and_then(|n| n.get(&at.code.0)).is_none_or(|(end, _)| *end == at.code.1);
        if same { &at.names } else { &[] }
    }

    /// Notes a process's user id, from `/proc/PID`'s owner.
    pub fn note_uid(&mut self, proc_root: &Path, pid: u32) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = fs::metadata(proc_root.join(pid.to_string())) {
            self.uids.insert(pid, m.uid());
        }
    }

    /// Adds a tracker's mappings as a process's.
    pub fn add_tracker(&mut self, tracker: MapsTracker) {
        let pid = tracker.pid;
        if let Some(uid) = tracker.uid {
            self.uids.insert(pid, uid);
        }
        self.processes.entry(pid).or_default().extend(tracker.mappings);
    }

    /// The most recently seen mapping of `pid` containing `addr`.
    pub fn find(&self, pid: u32, addr: u64) -> Option<&Mapping> {
        self.processes.get(&pid)?.iter().rev().find(|m| m.start <= addr && addr < m.end)
    }
}

/// Executable mappings of one process, accumulated over its lifetime.
#[derive(Debug)]
pub struct MapsTracker {
    pid: u32,
    proc_root: PathBuf,
    mappings: Vec<Mapping>,
    /// (start, end, offset, path) of every mapping in `mappings`.
    seen: HashSet<(u64, u64, u64, String)>,
    files: HashMap<(u64, String), Option<Arc<ModuleFile>>>,
    exited: bool,
    uid: Option<u32>,
}

/// At most this many distinct files are held open per process.
const MAX_OPEN_FILES: usize = 4096;

impl MapsTracker {
    /// Tracks `pid` through `/proc`. Nothing is read until
    /// [`refresh`](Self::refresh).
    pub fn new(pid: u32) -> Self {
        Self::with_proc_root("/proc", pid)
    }

    /// Tracks `pid` with procfs mounted at `proc_root` (for tests).
    pub fn with_proc_root(proc_root: impl Into<PathBuf>, pid: u32) -> Self {
        Self {
            pid,
            proc_root: proc_root.into(),
            mappings: Vec::new(),
            seen: HashSet::new(),
            files: HashMap::new(),
            exited: false,
            uid: None,
        }
    }

    /// The tracked process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the current mappings and adds those not seen before. Once the
    /// process has exited this returns [`MapsError::Exited`] and keeps what
    /// was gathered.
    pub fn refresh(&mut self) -> Result<(), MapsError> {
        if self.exited {
            return Err(MapsError::Exited(self.pid));
        }
        let dir = self.proc_root.join(self.pid.to_string());
        // The owner as of this reading: a process may change its user
        // (a server dropping root after start), and the files it writes
        // later (its perf map) are then that user's.
        {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = fs::metadata(&dir) {
                self.uid = Some(m.uid());
            }
        }
        let text = match fs::read_to_string(dir.join("maps")) {
            Ok(t) => t,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
                self.exited = true;
                return Err(MapsError::Exited(self.pid));
            }
            Err(source) => return Err(MapsError::Io { pid: self.pid, source }),
        };
        // A zombie, or a process in exit, has an empty maps file.
        if text.is_empty() {
            self.exited = true;
            return Err(MapsError::Exited(self.pid));
        }
        for line in parse_maps(&text) {
            if !line.perms.contains('x') {
                continue;
            }
            if !self.seen.insert((line.start, line.end, line.offset, line.path.clone())) {
                continue;
            }
            let file = if line.inode != 0 && line.path.starts_with('/') { self.open_file(&line) } else { None };
            self.mappings.push(Mapping {
                start: line.start,
                end: line.end,
                offset: line.offset,
                path: line.path,
                file,
            });
        }
        Ok(())
    }

    fn open_file(&mut self, line: &MapsLine) -> Option<Arc<ModuleFile>> {
        let key = (line.inode, line.path.clone());
        if let Some(f) = self.files.get(&key) {
            return f.clone();
        }
        if self.files.len() >= MAX_OPEN_FILES {
            return None;
        }
        let opened = match ModuleFile::open_mapping(&self.proc_root, self.pid, line.start, line.end) {
            Ok(f) => Some(Arc::new(f)),
            // map_files needs CAP_SYS_ADMIN: an unprivileged user profiling
            // their own process opens the file through the process's root,
            // with the same checks.
            Err(OpenError::Io { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {
                let through_root =
                    self.proc_root.join(self.pid.to_string()).join("root").join(line.path.trim_start_matches('/'));
                ModuleFile::open_path(&through_root).ok().map(Arc::new)
            }
            // perfkit-target has no logging dependency: a file that cannot
            // be opened shows as unresolved frames naming the module.
            Err(_) => None,
        };
        self.files.insert(key, opened.clone());
        opened
    }

    /// The most recently seen mapping containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        self.mappings.iter().rev().find(|m| m.start <= addr && addr < m.end)
    }

    /// All mappings seen, oldest first.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }
}

/// The executable file mappings of `pid` now, each with its open file (for
/// loading unwind tables ahead of sampling).
pub fn executable_mappings(proc_root: &Path, pid: u32) -> Result<Vec<Mapping>, MapsError> {
    let mut t = MapsTracker::with_proc_root(proc_root, pid);
    t.refresh()?;
    Ok(t.mappings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_cover_their_ranges_only() {
        let mut m = Modules::default();
        let names = m.code_names.entry(7).or_default();
        names.insert(0x1000, (0x1080, Arc::from("long A.f(int)")));
        names.insert(0x2000, (0x2400, Arc::from("Interpreter")));
        assert_eq!(m.code_name(7, 0x1000).map(|n| &**n), Some("long A.f(int)"));
        assert_eq!(m.code_name(7, 0x107f).map(|n| &**n), Some("long A.f(int)"));
        assert_eq!(m.code_name(7, 0x1080), None, "past its end");
        assert_eq!(m.code_name(7, 0xfff), None);
        assert_eq!(m.code_name(7, 0x23ff).map(|n| &**n), Some("Interpreter"));
        assert_eq!(m.code_name(8, 0x1000), None, "another process");
    }

    #[test]
    fn inlined_methods_hold_while_their_code_does() {
        let mut m = Modules::default();
        m.code_names.entry(7).or_default().insert(0x1000, (0x1080, Arc::from("long A.outer(long)")));
        let names: Arc<[Arc<str>]> = Arc::from([Arc::from("long A.mid(long)"), Arc::from("long A.inner(long)")]);
        m.inlined.entry(7).or_default().insert(0x1040, InlinedAt { code: (0x1000, 0x1080), names: names.clone() });
        assert_eq!(m.inlined_at(7, 0x1040), &*names);
        assert!(m.inlined_at(7, 0x1041).is_empty(), "another place");
        assert!(m.inlined_at(8, 0x1040).is_empty(), "another process");
        // Other code was compiled there since: its inlined methods are not
        // the ones read.
        m.code_names.entry(7).or_default().insert(0x1000, (0x1100, Arc::from("long A.other(long)")));
        assert!(m.inlined_at(7, 0x1040).is_empty());
    }

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234                       /usr/bin/work
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234                       /usr/bin/work
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 
7f1e2c200000-7f1e2c375000 r-xp 00028000 fd:01 5678                       /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd5a3f2000-7ffd5a3f4000 r-xp 00000000 00:00 0                          [vdso]
7f00000000-7f00001000 r-xp 00000000 fd:01 99                             /tmp/with space (deleted)
";

    #[test]
    fn parses_maps_lines() {
        let lines = parse_maps(MAPS);
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[1].start, 0x55d0c0a01000);
        assert_eq!(lines[1].offset, 0x1000);
        assert_eq!(lines[1].path, "/usr/bin/work");
        assert_eq!((libc::major(lines[1].dev), libc::minor(lines[1].dev)), (0xfd, 1));
        assert_eq!(lines[2].path, "");
        assert_eq!(lines[4].path, "[vdso]");
        assert_eq!(lines[5].path, "/tmp/with space (deleted)");
    }

    #[test]
    fn tracks_executable_mappings_and_survives_exit() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("42")).unwrap();
        fs::write(root.path().join("42/maps"), MAPS).unwrap();
        let mut t = MapsTracker::with_proc_root(root.path(), 42);
        t.refresh().unwrap();
        t.refresh().unwrap();
        assert_eq!(t.mappings().len(), 4, "only executable mappings, each once");
        let m = t.find(0x7f1e2c200010).unwrap();
        assert_eq!(m.module_name(), "libc.so.6");
        assert_eq!(m.file_offset(0x7f1e2c200010), 0x28010);
        assert!(t.find(0x7f1e2c000010).is_none());
        assert_eq!(t.find(0x7f00000010).unwrap().module_name(), "with space");
        fs::remove_dir_all(root.path().join("42")).unwrap();
        assert!(matches!(t.refresh(), Err(MapsError::Exited(42))));
        assert_eq!(t.mappings().len(), 4, "what was gathered is kept");
    }

    #[test]
    fn own_vdso_is_an_elf_image() {
        if let Some((range, bytes)) = own_vdso() {
            assert!(range.end > range.start);
            assert_eq!(&bytes[..4], b"\x7fELF");
        }
    }
}
