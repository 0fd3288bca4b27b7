use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::Arc,
};

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
    let _dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    Some(MapsLine {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms: perms.to_owned(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        path: path.to_owned(),
    })
}

/// Where this process's own vDSO is mapped. The vDSO is the same image in
/// every process, so a target's vDSO addresses are resolved (and unwound)
/// through ours. Read once: it never moves.
pub fn own_vdso() -> Option<std::ops::Range<u64>> {
    static VDSO: std::sync::OnceLock<Option<std::ops::Range<u64>>> = std::sync::OnceLock::new();
    VDSO.get_or_init(|| {
        let text = fs::read_to_string("/proc/self/maps").ok()?;
        parse_maps(&text).into_iter().find(|l| l.path == "[vdso]").map(|l| l.start..l.end)
    })
    .clone()
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
    pub(crate) file: Option<Arc<ModuleFile>>,
}

impl Mapping {
    /// The module's short name: the path's file name.
    pub fn module_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The path to open for symbolization, if the file could be opened.
    pub fn symbolize_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// The file offset of `addr`, which must be inside the mapping.
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.offset
    }
}

/// An open mapped file and the path blazesym should read it from.
#[derive(Debug)]
pub(crate) struct ModuleFile {
    /// Keeps the file (and `/proc/self/fd/N`) valid after the process exits.
    _file: Option<File>,
    path: PathBuf,
}

/// Executable mappings of one process, accumulated over its lifetime.
#[derive(Debug)]
pub struct MapsTracker {
    pid: u32,
    proc_root: PathBuf,
    mappings: Vec<Mapping>,
    /// (start, end, offset, path) of every mapping in `mappings`.
    seen: HashSet<(u64, u64, u64, String)>,
    files: HashMap<(u64, String), Arc<ModuleFile>>,
    exited: bool,
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
        let text = match fs::read_to_string(dir.join("maps")) {
            Ok(t) => t,
            Err(e) if matches!(e.raw_os_error(), Some(2 | 3)) => {
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
            let file = if line.inode != 0 && line.path.starts_with('/') { self.open_file(&dir, &line) } else { None };
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

    fn open_file(&mut self, dir: &Path, line: &MapsLine) -> Option<Arc<ModuleFile>> {
        let key = (line.inode, line.path.clone());
        if let Some(f) = self.files.get(&key) {
            return Some(f.clone());
        }
        if self.files.len() >= MAX_OPEN_FILES {
            return None;
        }
        let module = Arc::new(open_module(dir, line));
        self.files.insert(key, module.clone());
        Some(module)
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

/// Opens a mapped file the way that survives the process: through
/// `map_files` (the exact file, even if deleted or in another mount
/// namespace), else through the process's root, else by path. Symbolization
/// then uses the plain path if it is the same file (so blazesym finds
/// separate debug info next to it), or `/proc/self/fd/N`.
fn open_module(dir: &Path, line: &MapsLine) -> ModuleFile {
    let candidates = [
        dir.join(format!("map_files/{:x}-{:x}", line.start, line.end)),
        dir.join("root").join(line.path.trim_start_matches('/')),
        PathBuf::from(&line.path),
    ];
    let Some(file) = candidates.iter().find_map(|p| File::open(p).ok()) else {
        return ModuleFile { _file: None, path: PathBuf::from(&line.path) };
    };
    let same_as_path = match (file.metadata(), fs::metadata(&line.path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    let path = if same_as_path {
        PathBuf::from(&line.path)
    } else {
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    };
    ModuleFile { _file: Some(file), path }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(lines[2].path, "");
        assert_eq!(lines[4].path, "[vdso]");
        assert_eq!(lines[5].path, "/tmp/with space (deleted)");
    }

    #[test]
    fn tracks_executable_mappings_and_survives_exit() {
        let root = std::env::temp_dir().join(format!("perfkit-maps-{}", std::process::id()));
        fs::create_dir_all(root.join("42")).unwrap();
        fs::write(root.join("42/maps"), MAPS).unwrap();
        let mut t = MapsTracker::with_proc_root(&root, 42);
        t.refresh().unwrap();
        t.refresh().unwrap();
        assert_eq!(t.mappings().len(), 4, "only executable mappings, each once");
        let m = t.find(0x7f1e2c200010).unwrap();
        assert_eq!(m.module_name(), "libc.so.6");
        assert_eq!(m.file_offset(0x7f1e2c200010), 0x28010);
        assert!(t.find(0x7f1e2c000010).is_none());
        fs::remove_dir_all(&root).unwrap();
        assert!(matches!(t.refresh(), Err(MapsError::Exited(42))));
        assert_eq!(t.mappings().len(), 4, "what was gathered is kept");
    }
}
