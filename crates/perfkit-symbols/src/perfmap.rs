//! JIT symbol maps: `/tmp/perf-PID.map`, written by Node
//! (`--perf-basic-prof`), the JVM (`-XX:+DumpPerfMapAtExit`,
//! perf-map-agent), .NET (`DOTNET_PerfMapEnabled=1`) and Python 3.12
//! (`-X perf`): one line per JIT-compiled function, `START SIZE NAME`, start
//! and size in hex.
//!
//! The file is written by the target, which perfkit does not trust: it is
//! read only when it is a regular file, not a symlink, owned by the
//! target's user or root, and at most [`MAX_MAP_SIZE`] bytes; otherwise the
//! reason is returned. It is read incrementally, as runtimes append to it.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Perf maps larger than this are read up to this size.
pub const MAX_MAP_SIZE: u64 = 256 << 20;

/// One process's JIT symbols.
#[derive(Debug, Default)]
pub struct PerfMap {
    /// (start, end, sequence, name), sorted by start.
    entries: Vec<(u64, u64, u32, String)>,
    read: u64,
    partial: String,
    sorted: bool,
}

/// Why a perf map was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfMapError {
    /// There is none.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// A symlink (not followed).
    #[error("{0} is a symbolic link; not read")]
    Symlink(PathBuf),
    /// Not a regular file.
    #[error("{0} is not a regular file; not read")]
    NotRegular(PathBuf),
    /// Owned by someone other than the target's user and root.
    #[error("{path} is owned by uid {owner}, not by the process's user (uid {expected}) or root; not read")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The target's user.
        expected: u32,
    },
    /// Another error.
    #[error("reading {path} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl PerfMap {
    /// The conventional path of `pid`'s perf map.
    pub fn path_of(pid: u32) -> PathBuf {
        PathBuf::from(format!("/tmp/perf-{pid}.map"))
    }

    /// Reads what was appended to the map since the last call. `uid` is the
    /// target's user, when known (root's files are accepted too).
    pub fn update(&mut self, path: &Path, uid: Option<u32>) -> Result<(), PerfMapError> {
        let mut file = open_checked(path, uid)?;
        let len = file.metadata().map_err(|source| PerfMapError::Io { path: path.into(), source })?.len();
        let limit = len.min(MAX_MAP_SIZE);
        if limit < self.read {
            // Truncated and rewritten: start over.
            *self = Self::default();
        }
        if limit == self.read {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.read)).map_err(|source| PerfMapError::Io { path: path.into(), source })?;
        let mut buf = Vec::with_capacity((limit - self.read) as usize);
        (&mut file)
            .take(limit - self.read)
            .read_to_end(&mut buf)
            .map_err(|source| PerfMapError::Io { path: path.into(), source })?;
        self.read += buf.len() as u64;
        let text = String::from_utf8_lossy(&buf);
        let mut text = std::mem::take(&mut self.partial) + &text;
        // Keep a line not yet finished for the next read.
        if !text.ends_with('\n') {
            let cut = text.rfind('\n').map_or(0, |i| i + 1);
            self.partial = text[cut..].to_owned();
            text.truncate(cut);
        }
        let mut seq = self.entries.len() as u32;
        for line in text.lines() {
            if let Some((start, size, name)) = parse_line(line) {
                self.entries.push((start, start.saturating_add(size.max(1)), seq, name.to_owned()));
                seq += 1;
                self.sorted = false;
            }
        }
        Ok(())
    }

    /// Entries read.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry was read.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.entries.sort_by_key(|e| (e.0, e.2));
            self.sorted = true;
        }
    }

    /// The name of the function containing `addr`: of overlapping entries
    /// (code moved or replaced), the one written last, as perf takes it.
    pub fn lookup(&mut self, addr: u64) -> Option<&str> {
        self.sort();
        let end = self.entries.partition_point(|e| e.0 <= addr);
        let best = self.entries[..end].iter().rev().take(256).filter(|e| addr < e.1).max_by_key(|e| e.2)?;
        Some(best.3.as_str())
    }
}

fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let mut parts = line.splitn(3, ' ');
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let start = hex(parts.next()?)?;
    let size = hex(parts.next()?)?;
    let name = parts.next()?.trim_end();
    (!name.is_empty()).then_some((start, size, name))
}

fn open_checked(path: &Path, uid: Option<u32>) -> Result<File, PerfMapError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => PerfMapError::Missing(path.into()),
            Some(libc::ELOOP) => PerfMapError::Symlink(path.into()),
            _ => PerfMapError::Io { path: path.into(), source: e },
        })?;
    let meta = file.metadata().map_err(|source| PerfMapError::Io { path: path.into(), source })?;
    if !meta.file_type().is_file() {
        return Err(PerfMapError::NotRegular(path.into()));
    }
    let owner = meta.uid();
    match uid {
        Some(expected) if owner != expected && owner != 0 => {
            Err(PerfMapError::Owner { path: path.into(), owner, expected })
        }
        // Without the target's user (it exited unseen), only root's files
        // and the invoking user's own are trusted.
        None if owner != 0 && owner != current_uid() => {
            Err(PerfMapError::Owner { path: path.into(), owner, expected: current_uid() })
        }
        _ => Ok(file),
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_incrementally_and_prefers_the_latest_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perf-1.map");
        let mut f = File::create(&path).unwrap();
        write!(f, "1000 100 JS:*fib /x.js:1\n2000 10 LazyCompile:~go /x.js:5\n3000 1").unwrap();
        f.flush().unwrap();
        let mut m = PerfMap::default();
        m.update(&path, Some(current_uid())).unwrap();
        assert_eq!(m.len(), 2, "the unfinished line waits");
        assert_eq!(m.lookup(0x1050), Some("JS:*fib /x.js:1"));
        assert_eq!(m.lookup(0x1100), None);
        writeln!(f, "0 py::late\n1000 80 JS:*fib2 /x.js:9").unwrap();
        f.flush().unwrap();
        m.update(&path, Some(current_uid())).unwrap();
        assert_eq!(m.lookup(0x3005), Some("py::late"));
        assert_eq!(m.lookup(0x1050), Some("JS:*fib2 /x.js:9"), "code replaced at the same address");
    }

    #[test]
    fn symlinks_and_foreign_owners_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.map");
        std::fs::write(&target, "1000 10 f\n").unwrap();
        let link = dir.path().join("perf-2.map");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut m = PerfMap::default();
        assert!(matches!(m.update(&link, None), Err(PerfMapError::Symlink(_))));
        // A file of some user (as root, chown it to one) read for another
        // user's process is refused; for its owner's process, read.
        if current_uid() == 0 {
            std::os::unix::fs::chown(&target, Some(54321), None).unwrap();
        }
        let owner = std::fs::metadata(&target).unwrap().uid();
        let err = m.update(&target, Some(owner.wrapping_add(1))).unwrap_err();
        assert!(matches!(err, PerfMapError::Owner { .. }), "{err}");
        assert!(err.to_string().contains("not read"));
        m.update(&target, Some(owner)).unwrap();
        assert_eq!(m.lookup(0x1005), Some("f"));
        assert!(matches!(m.update(&dir.path().join("none"), None), Err(PerfMapError::Missing(_))));
    }
}
