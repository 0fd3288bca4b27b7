//! JIT symbol maps: `/tmp/perf-PID.map`, written by Node
//! (`--perf-basic-prof`), the JVM (`-XX:+DumpPerfMapAtExit`,
//! perf-map-agent), .NET (`DOTNET_PerfMapEnabled=1`) and Python 3.12
//! (`-X perf`): one line per JIT-compiled function, `START SIZE NAME`, start
//! and size in hex.
//!
//! The file is written by the target, which perfkit does not trust: it is
//! read only when it is a regular file, not a symlink, owned by the
//! target's user or root; otherwise the reason is returned. It is read
//! incrementally, as runtimes append to it, and streamed: at most
//! [`MAX_MAP_SIZE`] bytes, [`MAX_ENTRIES`] entries and lines of
//! [`MAX_LINE`] bytes (longer ones are skipped), each entry charged to the
//! memory budget. Past a bound, what was read is used and
//! [`PerfMap::notes`] says which bound stopped the reading.

use std::{
    fs::File,
    io::{self, BufRead, Read, Seek, SeekFrom},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use perfkit_safeio::{Budget, Charge};
use std::sync::Arc;

/// Perf maps larger than this are read up to this size.
pub const MAX_MAP_SIZE: u64 = 256 << 20;

/// The most entries read from one perf map (a large JVM writes a few
/// hundred thousand).
pub const MAX_ENTRIES: usize = 2 << 20;

/// The longest line read: longer lines are skipped whole.
pub const MAX_LINE: usize = 4096;

/// Jitdump files larger than this are read up to this size (they hold the
/// code too).
pub const MAX_JITDUMP_SIZE: u64 = 1 << 30;

/// Bytes read at a time.
const CHUNK: usize = 64 << 10;

/// One process's JIT symbols.
#[derive(Debug, Default)]
pub struct PerfMap {
    /// (start, end, sequence, name), sorted by start.
    entries: Vec<(u64, u64, u32, Arc<str>)>,
    read: u64,
    /// The start of a line not yet finished (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`], skipped to its end.
    skipping: bool,
    sorted: bool,
    /// Lines skipped for their length.
    long_lines: u64,
    /// The bound on entries or memory that stopped the reading, when one
    /// did.
    limited: Option<String>,
    /// The file was larger than [`MAX_MAP_SIZE`].
    oversize: Option<String>,
    /// The file last read.
    path: PathBuf,
    /// The budget the entries are charged to (the process's by default),
    /// and the charge.
    budget: Option<Budget>,
    charge: Option<Charge>,
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

    /// A map whose entries are charged to `budget`.
    pub fn with_budget(budget: Budget) -> Self {
        Self { budget: Some(budget), ..Self::default() }
    }

    /// Reads what was appended to the map since the last call. `uid` is the
    /// target's user, when known (root's files are accepted too). Reaching
    /// a bound is not an error: the entries read are kept, and
    /// [`PerfMap::notes`] says so.
    pub fn update(&mut self, path: &Path, uid: Option<u32>) -> Result<(), PerfMapError> {
        let mut file = open_checked(path, uid)?;
        let io_err = |source| PerfMapError::Io { path: path.into(), source };
        let len = file.metadata().map_err(io_err)?.len();
        if len < self.read {
            // Truncated and rewritten: start over.
            let budget = self.budget.take();
            *self = Self { budget, ..Self::default() };
        }
        self.path = path.into();
        if self.oversize.is_none() && len > MAX_MAP_SIZE {
            self.oversize = Some(format!(
                "{}: {len} bytes, over the {} MiB perf maps are read up to; the entries before it are used",
                path.display(),
                MAX_MAP_SIZE >> 20
            ));
        }
        let limit = len.min(MAX_MAP_SIZE);
        if limit <= self.read || self.full() {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.read)).map_err(io_err)?;
        let mut reader = (&mut file).take(limit - self.read);
        let mut buf = vec![0u8; CHUNK];
        while !self.full() {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            self.read += n as u64;
            self.feed(&buf[..n], path);
        }
        Ok(())
    }

    /// Parses a perf map's bytes as [`PerfMap::update`] reads a file (the
    /// same bounds; `name` names it in notes), charging `budget`: for
    /// maps perfkit holds already, and for fuzzing.
    pub fn parse(bytes: &[u8], name: &Path, budget: Budget) -> Self {
        let mut m = Self::with_budget(budget);
        m.path = name.into();
        let limit = (bytes.len() as u64).min(MAX_MAP_SIZE) as usize;
        for chunk in bytes[..limit].chunks(CHUNK) {
            if m.full() {
                break;
            }
            m.read += chunk.len() as u64;
            m.feed(chunk, name);
        }
        m
    }

    /// Whether a bound on entries or memory was reached.
    fn full(&self) -> bool {
        self.limited.is_some()
    }

    /// Parses a chunk of the file: whole lines, the rest kept for later.
    fn feed(&mut self, mut chunk: &[u8], path: &Path) {
        while !chunk.is_empty() && !self.full() {
            let (segment, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            chunk = ended.map_or(&[][..], |i| &chunk[i..]);
            if self.skipping {
                self.skipping = ended.is_none();
                continue;
            }
            if self.partial.len() + segment.len() > MAX_LINE {
                self.partial.clear();
                self.long_lines += 1;
                self.skipping = ended.is_none();
                continue;
            }
            self.partial.extend_from_slice(segment);
            if ended.is_some() {
                let line = std::mem::take(&mut self.partial);
                self.line(&line, path);
            }
        }
    }

    /// Adds one line's entry, if it is one.
    fn line(&mut self, line: &[u8], path: &Path) {
        let text = String::from_utf8_lossy(line);
        let Some((start, size, name)) = parse_line(&text) else { return };
        self.push(start, size, name, path);
    }

    /// Adds one entry, within the bounds on entries and memory.
    fn push(&mut self, start: u64, size: u64, name: &str, path: &Path) {
        self.push_shared(start, size, Arc::from(name), name.len(), path);
    }

    /// Adds one entry whose name may be shared with others (a jitdump's
    /// moved code): `new_bytes` is what it adds to memory.
    fn push_shared(&mut self, start: u64, size: u64, name: Arc<str>, new_bytes: usize, path: &Path) {
        if self.entries.len() >= MAX_ENTRIES {
            self.limited =
                Some(format!("{}: over {MAX_ENTRIES} entries; the first {MAX_ENTRIES} are used", path.display()));
            return;
        }
        let budget = self.budget.clone().unwrap_or_else(|| Budget::process().clone());
        let charge = self.charge.get_or_insert_with(|| budget.start(format_args!("{} (perf map)", path.display())));
        let cost = (std::mem::size_of::<(u64, u64, u32, Arc<str>)>() + new_bytes) as u64;
        if let Err(e) = charge.grow(cost) {
            self.limited = Some(format!("{e}; the first {} entries are used", self.entries.len()));
            return;
        }
        let seq = self.entries.len() as u32;
        self.entries.push((start, start.saturating_add(size.max(1)), seq, name));
        self.sorted = false;
    }

    /// What limited the reading: a bound reached (naming the file and the
    /// limit), lines skipped for their length. Empty when the whole map
    /// was read.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.oversize.iter().chain(&self.limited).cloned().collect();
        if self.long_lines > 0 {
            notes.push(format!("{}: lines over {MAX_LINE} bytes skipped: {}", self.path.display(), self.long_lines));
        }
        notes
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
        Some(&best.3)
    }
}

impl PerfMap {
    /// The conventional path of `pid`'s jitdump (`/tmp/jit-PID.dump`).
    pub fn jitdump_path_of(pid: u32) -> PathBuf {
        PathBuf::from(format!("/tmp/jit-{pid}.dump"))
    }

    /// Reads a jitdump file (the format perf's `perf inject --jit` reads:
    /// written by CPython 3.13's `-X perf_jit`, V8's `--perf-prof`, the
    /// JVM's agents): the names and addresses of its code-load records, and
    /// its code moves. The code itself is skipped, not read. The same
    /// checks and bounds as [`PerfMap::update`], and at most
    /// [`MAX_JITDUMP_SIZE`] bytes.
    pub fn read_jitdump(path: &Path, uid: Option<u32>) -> Result<PerfMap, PerfMapError> {
        let file = open_checked(path, uid)?;
        let io_err = |source| PerfMapError::Io { path: path.into(), source };
        let len = file.metadata().map_err(io_err)?.len();
        let mut m = PerfMap { path: path.into(), ..PerfMap::default() };
        if len > MAX_JITDUMP_SIZE {
            m.oversize = Some(format!(
                "{}: {len} bytes, over the {} MiB jitdumps are read up to; the records before it are used",
                path.display(),
                MAX_JITDUMP_SIZE >> 20
            ));
        }
        let mut r = io::BufReader::with_capacity(CHUNK, file.take(len.min(MAX_JITDUMP_SIZE)));
        m.jitdump(&mut r, path).map_err(io_err)?;
        Ok(m)
    }

    /// Parses jitdump bytes as [`PerfMap::read_jitdump`] reads a file
    /// (for fuzzing and tests).
    pub fn parse_jitdump(bytes: &[u8], name: &Path, budget: Budget) -> Self {
        let mut m = Self::with_budget(budget);
        m.path = name.into();
        let _ = m.jitdump(&mut io::BufReader::new(bytes), name);
        m
    }

    fn jitdump<R: BufRead>(&mut self, r: &mut R, path: &Path) -> io::Result<()> {
        let mut header = [0u8; 40];
        if !read_full(r, &mut header)? {
            return Ok(());
        }
        let big = match u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) {
            0x4A69_5444 => false,
            0x4454_694A => true,
            _ => {
                self.limited = Some(format!("{}: not a jitdump file (no JiTD magic)", path.display()));
                return Ok(());
            }
        };
        let u32_at = |b: &[u8], at: usize| {
            let v: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
            if big { u32::from_be_bytes(v) } else { u32::from_le_bytes(v) }
        };
        let u64_at = |b: &[u8], at: usize| {
            let v: [u8; 8] = b[at..at + 8].try_into().expect("8 bytes");
            if big { u64::from_be_bytes(v) } else { u64::from_le_bytes(v) }
        };
        skip(r, u64::from(u32_at(&header, 8)).saturating_sub(40))?;
        let mut record = [0u8; 16];
        let mut fixed = [0u8; 48];
        let mut name = Vec::new();
        // Code by its address, for moves (which name the old address
        // exactly): one lookup each, and the name shared, not copied.
        let mut by_addr: std::collections::HashMap<u64, Arc<str>> = std::collections::HashMap::new();
        while !self.full() && read_full(r, &mut record)? {
            let (id, size) = (u32_at(&record, 0), u64::from(u32_at(&record, 4)));
            if size < 16 {
                self.limited =
                    Some(format!("{}: a record of {size} bytes; the records before it are used", path.display()));
                break;
            }
            let mut body = size - 16;
            match id {
                // JIT_CODE_LOAD: pid, tid, vma, code_addr, code_size,
                // code_index, the name (NUL-terminated), then the code.
                0 if body >= 40 => {
                    if !read_full(r, &mut fixed[..40])? {
                        break;
                    }
                    body -= 40;
                    let (addr, len) = (u64_at(&fixed, 16), u64_at(&fixed, 24));
                    name.clear();
                    let max = body.min(MAX_LINE as u64);
                    let got = r.by_ref().take(max).read_until(0, &mut name)? as u64;
                    body -= got;
                    if name.last() == Some(&0) {
                        name.pop();
                        let text: Arc<str> = Arc::from(String::from_utf8_lossy(&name).as_ref());
                        if !text.is_empty() {
                            // The name, and its place in `by_addr`.
                            let bytes = text.len() + 48;
                            self.push_shared(addr, len, text.clone(), bytes, path);
                            by_addr.insert(addr, text);
                        }
                    } else {
                        self.long_lines += 1;
                    }
                }
                // JIT_CODE_MOVE: pid, tid, vma, old_code_addr,
                // new_code_addr, code_size, code_index.
                1 if body >= 48 => {
                    if !read_full(r, &mut fixed)? {
                        break;
                    }
                    body -= 48;
                    let (old, new, len) = (u64_at(&fixed, 16), u64_at(&fixed, 24), u64_at(&fixed, 32));
                    if let Some(text) = by_addr.get(&old).cloned() {
                        self.push_shared(new, len, text.clone(), 48, path);
                        by_addr.insert(new, text);
                    }
                }
                _ => {}
            }
            if !skip(r, body)? {
                break;
            }
        }
        Ok(())
    }
}

/// Fills `buf`, or returns false at the end of the input (a record cut
/// short is the end).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Skips `n` bytes; false when the input ended first.
fn skip<R: Read>(r: &mut R, n: u64) -> io::Result<bool> {
    Ok(io::copy(&mut r.by_ref().take(n), &mut io::sink())? == n)
}

fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let mut parts = line.splitn(3, ' ');
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let start = hex(parts.next()?)?;
    let size = hex(parts.next()?)?;
    let name = parts.next()?.trim_end();
    (!name.is_empty()).then_some((start, size, name))
}

pub(crate) fn open_checked(path: &Path, uid: Option<u32>) -> Result<File, PerfMapError> {
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

    fn jitdump_bytes(records: &[(u32, u64, u64, &str)]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend(0x4A69_5444u32.to_le_bytes());
        d.extend(1u32.to_le_bytes());
        d.extend(40u32.to_le_bytes());
        d.extend(62u32.to_le_bytes());
        d.extend([0u8; 24]);
        for &(id, a, b, name) in records {
            let mut body = Vec::new();
            body.extend(7u32.to_le_bytes());
            body.extend(7u32.to_le_bytes());
            if id == 0 {
                body.extend(a.to_le_bytes()); // vma
                body.extend(a.to_le_bytes()); // code address
                body.extend(b.to_le_bytes()); // size
                body.extend(1u64.to_le_bytes());
                body.extend(name.as_bytes());
                body.push(0);
                body.extend(vec![0x90u8; b as usize]);
            } else {
                body.extend(a.to_le_bytes());
                body.extend(a.to_le_bytes()); // old
                body.extend(b.to_le_bytes()); // new
                body.extend(0x10u64.to_le_bytes());
                body.extend(1u64.to_le_bytes());
            }
            d.extend(id.to_le_bytes());
            d.extend((16 + body.len() as u32).to_le_bytes());
            d.extend(0u64.to_le_bytes());
            d.extend(body);
        }
        d
    }

    #[test]
    fn jitdump_code_loads_and_moves_are_named() {
        let d = jitdump_bytes(&[
            (0, 0x1000, 0x40, "py::hot_alpha:/w.py"),
            (0, 0x2000, 0x10, "py::beta"),
            (1, 0x2000, 0x9000, ""),
        ]);
        let mut m = PerfMap::parse_jitdump(&d, Path::new("jit-1.dump"), Budget::new(1 << 20));
        assert_eq!(m.len(), 3);
        assert_eq!(m.lookup(0x1010), Some("py::hot_alpha:/w.py"));
        assert_eq!(m.lookup(0x9008), Some("py::beta"), "moved code keeps its name");
        assert!(m.notes().is_empty(), "{:?}", m.notes());
        // Cut anywhere, or with a record size of zero: no panic, the whole
        // records before the damage are kept.
        for cut in 0..d.len() {
            let _ = PerfMap::parse_jitdump(&d[..cut], Path::new("j"), Budget::new(1 << 20));
        }
        let mut bad = d.clone();
        bad[44..48].copy_from_slice(&0u32.to_le_bytes());
        let m = PerfMap::parse_jitdump(&bad, Path::new("j"), Budget::new(1 << 20));
        assert!(m.is_empty() && !m.notes().is_empty());
        let m = PerfMap::parse_jitdump(
            b"not a jitdump at all, not at all, not at all, no",
            Path::new("j"),
            Budget::new(1 << 20),
        );
        assert!(m.notes()[0].contains("not a jitdump"));
    }

    #[test]
    fn jitdump_moves_cost_an_entry_each_not_a_name_or_a_sort() {
        let mut records = vec![(0, 0x1000, 0x10, "py::one_long_name_".repeat(200).leak() as &str)];
        records.extend(std::iter::repeat_n((1, 0x1000, 0x1000, ""), 50_000));
        let d = jitdump_bytes(&records);
        let budget = Budget::new(64 << 20);
        let started = std::time::Instant::now();
        let mut m = PerfMap::parse_jitdump(&d, Path::new("jit-2.dump"), budget.clone());
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(m.len(), 50_001);
        assert!(budget.used() < 8 << 20, "{} bytes charged", budget.used());
        assert!(m.lookup(0x1000).is_some_and(|n| n.starts_with("py::one")));
    }

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
    fn a_map_without_newlines_costs_a_line_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perf-3.map");
        let mut f = File::create(&path).unwrap();
        writeln!(f, "1000 10 first").unwrap();
        // 64 MiB of one line, then a good entry.
        let junk = vec![b'a'; 1 << 20];
        for _ in 0..64 {
            f.write_all(&junk).unwrap();
        }
        writeln!(f).unwrap();
        writeln!(f, "2000 10 second").unwrap();
        f.flush().unwrap();
        let budget = Budget::new(1 << 20);
        let mut m = PerfMap::with_budget(budget.clone());
        m.update(&path, Some(current_uid())).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.lookup(0x2005), Some("second"));
        assert!(m.partial.capacity() <= 2 * MAX_LINE, "{}", m.partial.capacity());
        let notes = m.notes();
        assert!(
            notes.iter().any(|n| n.contains("perf-3.map") && n.contains("lines over 4096 bytes skipped: 1")),
            "{notes:?}"
        );
        assert!(budget.used() > 0);
        drop(m);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn entries_beyond_the_budget_are_left_and_noted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perf-4.map");
        let mut text = String::new();
        for i in 0..100_000u64 {
            text.push_str(&format!("{:x} 10 function_{i}\n", 0x1000 + i * 16));
        }
        std::fs::write(&path, text).unwrap();
        let budget = Budget::new(1 << 20);
        let mut m = PerfMap::with_budget(budget.clone());
        m.update(&path, Some(current_uid())).unwrap();
        assert!(m.len() > 1000 && m.len() < 100_000, "{}", m.len());
        assert!(budget.used() <= 1 << 20);
        assert_eq!(m.lookup(0x1005), Some("function_0"));
        let notes = m.notes();
        assert!(
            notes.iter().any(|n| n.contains("perf-4.map") && n.contains("1 MiB") && n.contains("entries are used")),
            "{notes:?}"
        );
        // Read again: nothing more is taken.
        let before = m.len();
        m.update(&path, Some(current_uid())).unwrap();
        assert_eq!(m.len(), before);
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
