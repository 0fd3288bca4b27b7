//! Opening the files a target process maps, safely.
//!
//! perfkit runs as root and reads files that a target process controls:
//! its executable and libraries. A hostile target can replace a path with a
//! FIFO (an `open` that never returns), a device, or a symlink to a file it
//! may not read, between the moment perfkit lists its mappings and the
//! moment it opens them; it can also truncate a file perfkit has mapped
//! (SIGBUS). So a mapped file is:
//!
//! - opened once, through `/proc/PID/map_files/START-END` (the very file
//!   the mapping holds, not whatever its path names now), with `O_NONBLOCK`
//!   and `O_NOCTTY`;
//! - checked with `fstat` to be a regular file of a sane size;
//! - when a user other than root could write it, copied into a sealed
//!   memory file so that nothing can change it under perfkit: only the
//!   ranges an ELF reader uses (headers, sections, segments), skipping
//!   holes, and charged to the memory budget ([`perfkit_safeio::Budget`])
//!   for as long as the copy lives. A huge or sparse file (a 4000 MiB
//!   hole mapped executable) costs nothing; one whose used ranges do not
//!   fit the budget is refused, naming the file and the limit;
//! - never reopened by path: symbolizers read it through
//!   `/proc/self/fd/N`.

use perfkit_safeio::{Budget, BudgetError, Charge};
use std::{
    ffi::CString,
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

/// Files larger than this are not read (no real binary is this big; a
/// sparse or hostile file could be).
pub const MAX_OBJECT_SIZE: u64 = 4 << 30;

/// A file a target maps, opened safely and held open.
#[derive(Debug)]
pub struct ModuleFile {
    file: File,
    path: String,
    dev: u64,
    ino: u64,
    size: u64,
    copied: bool,
    /// The copy's memory, held in the budget while the copy lives.
    _charge: Option<Charge>,
    /// The original file, held open while a copy is read instead: its
    /// device and inode identify it (the loader's tables are keyed by
    /// them), and a deleted file's inode, once released, is given to the
    /// next file created (another program would take this one's tables
    /// and names).
    _original: Option<File>,
}

/// Why a mapped file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The mapping or the process is gone.
    #[error("{0}: the mapping is gone")]
    Gone(String),
    /// Not a regular file (a FIFO, a device, a directory).
    #[error("{0}: not a regular file")]
    NotRegular(String),
    /// Larger than [`MAX_OBJECT_SIZE`].
    #[error("{path}: {size} bytes is more than perfkit reads ({MAX_OBJECT_SIZE})")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The ranges to copy do not fit the memory budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// Another I/O error.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl ModuleFile {
    /// Opens the file mapped at `start..end` in process `pid`, through
    /// `proc_root/PID/map_files`.
    pub fn open_mapping(proc_root: &Path, pid: u32, start: u64, end: u64) -> Result<Self, OpenError> {
        let link = proc_root.join(format!("{pid}/map_files/{start:x}-{end:x}"));
        let shown = link.display().to_string();
        let path = std::fs::read_link(&link).map(|p| p.to_string_lossy().into_owned()).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound { OpenError::Gone(shown.clone()) } else { io_err(&shown, e) }
        })?;
        let file = open_nonblocking(&link).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => OpenError::Gone(path.clone()),
            _ => io_err(&path, e),
        })?;
        Self::checked(file, path)
    }

    /// Opens a file by path, with the same checks: for files perfkit is
    /// pointed at, not ones a target names.
    pub fn open_path(path: &Path) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let file = open_nonblocking(path).map_err(|e| io_err(&shown, e))?;
        Self::checked(file, shown)
    }

    /// Wraps an in-memory image (such as the vDSO) as a file.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, OpenError> {
        let file = sealed_copy(name, &mut io::Cursor::new(bytes)).map_err(|e| io_err(name, e))?;
        let meta = file.metadata().map_err(|e| io_err(name, e))?;
        Ok(Self {
            file,
            path: name.to_owned(),
            dev: 0,
            ino: 0,
            size: meta.len(),
            copied: true,
            _charge: None,
            _original: None,
        })
    }

    fn checked(file: File, path: String) -> Result<Self, OpenError> {
        Self::checked_in(file, path, Budget::process())
    }

    fn checked_in(mut file: File, path: String, budget: &Budget) -> Result<Self, OpenError> {
        let meta = file.metadata().map_err(|e| io_err(&path, e))?;
        if !meta.file_type().is_file() {
            return Err(OpenError::NotRegular(path));
        }
        if meta.len() > MAX_OBJECT_SIZE {
            return Err(OpenError::TooLarge { path, size: meta.len() });
        }
        let (dev, ino, size) = (meta.dev(), meta.ino(), meta.len());
        // Anyone but root who may write the file could change it while
        // perfkit reads it (or truncate it under a mapping): read a private,
        // sealed copy instead.
        let writable_by_others = meta.uid() != 0 || meta.mode() & 0o022 != 0;
        let mut copied = false;
        let mut charge = None;
        let mut original = None;
        if writable_by_others {
            let (copy, c) = match sealed_ranges_copy(&path, &file, size, budget) {
                Ok(done) => done,
                Err(CopyError::Budget(e)) => {
                    crate::notices::push(format!("{e}; its frames are not unwound or named"));
                    return Err(OpenError::Budget(e));
                }
                Err(CopyError::Io(e)) => return Err(io_err(&path, e)),
            };
            original = Some(std::mem::replace(&mut file, copy));
            copied = true;
            charge = Some(c);
        }
        Ok(Self { file, path, dev, ino, size, copied, _charge: charge, _original: original })
    }

    /// Opens a file by path as [`ModuleFile::open_path`] does, charging a
    /// private copy to `budget` instead of the process's.
    pub fn open_path_in(path: &Path, budget: &Budget) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let file = open_nonblocking(path).map_err(|e| io_err(&shown, e))?;
        Self::checked_in(file, shown, budget)
    }

    /// The path as the target process sees it (`(deleted)` included).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's short name.
    pub fn name(&self) -> &str {
        let p = self.path.strip_suffix(" (deleted)").unwrap_or(&self.path);
        p.rsplit('/').next().unwrap_or(p)
    }

    /// A path that reads exactly this open file: `/proc/self/fd/N`.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The device (`st_dev`) and inode of the original file.
    pub fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The device in the kernel's internal encoding (`MAJOR << 20 |
    /// MINOR`), as BPF programs see `super_block.s_dev`.
    pub fn kernel_dev(&self) -> u64 {
        let (major, minor) = (libc::major(self.dev) as u64, libc::minor(self.dev) as u64);
        (major << 20) | minor
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether perfkit reads a private copy (the original was writable by
    /// another user).
    pub fn is_copy(&self) -> bool {
        self.copied
    }

    /// Maps the file into memory, read-only. Safe to read for the mapping's
    /// lifetime: the file is root's and not writable by others, or a sealed
    /// private copy, so nobody can truncate it under the mapping.
    pub fn map(&self) -> io::Result<memmap2::Mmap> {
        if self.size == 0 && !self.copied {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty file"));
        }
        // SAFETY: see above: no other user can change or truncate the file.
        unsafe { memmap2::Mmap::map(&self.file) }
    }
}

fn io_err(path: &str, source: io::Error) -> OpenError {
    OpenError::Io { path: path.to_owned(), source }
}

/// Opens read-only without blocking (a FIFO) or taking a terminal.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC).open(path)
}

/// A new memory file, sealable.
fn memfd(name: &str) -> io::Result<File> {
    let cname = CString::new(format!("perfkit:{}", name.rsplit('/').next().unwrap_or(name)).replace('\0', ""))
        .unwrap_or_else(|_| CString::new("perfkit").expect("no NUL"));
    // SAFETY: memfd_create takes a NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Seals a memory file against any change.
fn seal(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies `src` into a memory file sealed against any change (for small
/// images perfkit holds itself, such as the vDSO).
fn sealed_copy(name: &str, src: &mut dyn Read) -> io::Result<File> {
    let mut file = memfd(name)?;
    io::copy(src, &mut file)?;
    file.flush()?;
    file.seek(SeekFrom::Start(0))?;
    seal(&file)?;
    Ok(file)
}

/// Why a private copy was not made.
enum CopyError {
    Budget(BudgetError),
    Io(io::Error),
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Bytes copied at a time (and charged at a time).
const COPY_CHUNK: usize = 1 << 20;

/// Copies the ranges of `src` (`size` bytes) that ELF readers use into a
/// sealed memory file of the same size: the rest stays a hole and costs
/// nothing, and so do the holes of a sparse file. The bytes copied are
/// charged to `budget`, the charge returned with the copy.
fn sealed_ranges_copy(path: &str, src: &File, size: u64, budget: &Budget) -> Result<(File, Charge), CopyError> {
    use std::os::unix::fs::FileExt;
    let ranges = elf_ranges(src, size);
    let copy = memfd(path)?;
    copy.set_len(size)?;
    let mut charge = budget.start(format_args!("{path} (private copy of a file others may write)"));
    let mut buf = Vec::new();
    for range in ranges {
        let mut pos = range.start;
        while pos < range.end {
            // The next data at or after `pos`, up to the next hole.
            let Some(data) = seek(src, pos, libc::SEEK_DATA)? else { break };
            if data >= range.end {
                break;
            }
            let hole = seek(src, data, libc::SEEK_HOLE)?.unwrap_or(range.end).min(range.end);
            let mut at = data;
            while at < hole {
                let n = (hole - at).min(COPY_CHUNK as u64) as usize;
                charge.grow(n as u64).map_err(CopyError::Budget)?;
                buf.resize(n, 0);
                let got = read_full_at(src, &mut buf, at)?;
                if got == 0 {
                    break;
                }
                copy.write_all_at(&buf[..got], at)?;
                at += got as u64;
            }
            pos = hole.max(data + 1);
        }
    }
    seal(&copy)?;
    Ok((copy, charge))
}

/// `lseek(fd, offset, whence)` for `SEEK_DATA`/`SEEK_HOLE`; `None` when
/// there is no data after `offset` (`ENXIO`). A file system without
/// them answers as if the file had no holes.
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let Ok(off) = libc::off_t::try_from(offset) else { return Ok(None) };
    // SAFETY: lseek on a descriptor we hold; it only moves its offset.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            Some(libc::EINVAL) if whence == libc::SEEK_DATA => Ok(Some(offset)),
            Some(libc::EINVAL) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(r as u64))
}

fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The byte ranges of a file that ELF readers use, sorted and merged: the
/// first page, the program and section header tables, and every segment
/// and section with bytes in the file. A file that is not a 64-bit
/// little-endian ELF file gets its first page only.
fn elf_ranges(file: &File, size: u64) -> Vec<std::ops::Range<u64>> {
    const PAGE: u64 = 4096;
    /// More headers than any real file has: the rest are not looked at.
    const MAX_HEADERS: u64 = 1 << 16;
    let mut ranges = Vec::with_capacity(16);
    ranges.push(0..size.min(PAGE));
    let mut header = [0u8; 64];
    let is_elf64 = read_full_at(file, &mut header, 0).is_ok_and(|n| n == 64)
        && header[..4] == *b"\x7fELF"
        && header[4] == 2
        && header[5] == 1;
    if !is_elf64 {
        return ranges;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, shoff) = (u64_at(&header, 0x20), u64_at(&header, 0x28));
    let (phentsize, phnum) = (u16_at(&header, 0x36), u16_at(&header, 0x38));
    let (shentsize, mut shnum) = (u16_at(&header, 0x3a), u16_at(&header, 0x3c));
    let mut table = |off: u64, entsize: u64, num: u64, min: u64| -> Vec<u8> {
        if entsize < min || num == 0 || off >= size {
            return Vec::new();
        }
        let len = (entsize * num.min(MAX_HEADERS)).min(size - off);
        ranges.push(off..off + len);
        let mut buf = vec![0u8; len as usize];
        let n = read_full_at(file, &mut buf, off).unwrap_or(0);
        buf.truncate(n);
        buf
    };
    let phdrs = table(phoff, phentsize, phnum, 56);
    if shnum == 0 && shoff != 0 && shentsize >= 64 {
        // More sections than e_shnum holds: the count is section 0's size.
        let mut first = [0u8; 64];
        if read_full_at(file, &mut first, shoff).is_ok_and(|n| n == 64) {
            shnum = u64_at(&first, 0x20);
        }
    }
    let shdrs = table(shoff, shentsize, shnum, 64);
    let mut add = |off: u64, len: u64| {
        if off < size && len > 0 {
            ranges.push(off..off.saturating_add(len).min(size));
        }
    };
    if phentsize >= 56 {
        for ph in phdrs.chunks_exact(phentsize as usize) {
            add(u64_at(ph, 0x08), u64_at(ph, 0x20));
        }
    }
    if shentsize >= 64 {
        for sh in shdrs.chunks_exact(shentsize as usize) {
            const SHT_NOBITS: u64 = 8;
            if u32_at(sh, 0x04) != SHT_NOBITS {
                add(u64_at(sh, 0x18), u64_at(sh, 0x20));
            }
        }
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<std::ops::Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = ModuleFile::open_path(&fifo).unwrap_err();
        assert!(matches!(err, OpenError::NotRegular(_)), "{err}");
    }

    #[test]
    fn a_file_others_may_write_is_read_from_a_sealed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.so");
        std::fs::write(&path, b"\x7fELF original").unwrap();
        let m = ModuleFile::open_path(&path).unwrap();
        // Tests may run as root: the file is root's then; make it writable
        // by others to force the copy.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let m2 = ModuleFile::open_path(&path).unwrap();
        std::fs::write(&path, b"changed").unwrap();
        assert!(m2.is_copy());
        assert_eq!(std::fs::read(m2.fd_path()).unwrap(), b"\x7fELF original");
        assert_eq!(m.name(), "lib.so");
        let bytes = std::fs::read(m2.fd_path()).unwrap();
        assert_eq!(bytes, b"\x7fELF original");
    }

    #[test]
    fn a_copied_file_keeps_its_identity_after_it_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.so");
        std::fs::write(&path, b"\x7fELF original").unwrap();
        writable_by_others(&path);
        let m = ModuleFile::open_path(&path).unwrap();
        assert!(m.is_copy());
        std::fs::remove_file(&path).unwrap();
        // The original stays open: its inode is not released, so no file
        // created after it can have its device and inode (the loader's key
        // for tables and names).
        let deleted = format!("{} (deleted)", path.display());
        let held = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .any(|target| target.to_str() == Some(deleted.as_str()));
        assert!(held, "the original of a copy is not held open");
        drop(m);
    }

    fn writable_by_others(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }

    /// An ELF64 header whose one section covers `len` bytes from 4096.
    fn elf_with_section(len: u64) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[0x28..0x30].copy_from_slice(&128u64.to_le_bytes()); // e_shoff
        h[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        h[0x3c..0x3e].copy_from_slice(&1u16.to_le_bytes()); // e_shnum
        h.resize(128, 0);
        let mut sh = vec![0u8; 64];
        sh[4..8].copy_from_slice(&1u32.to_le_bytes()); // SHT_PROGBITS
        sh[0x18..0x20].copy_from_slice(&4096u64.to_le_bytes());
        sh[0x20..0x28].copy_from_slice(&len.to_le_bytes());
        h.extend(sh);
        h
    }

    #[test]
    fn a_sparse_file_others_may_write_costs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        // 4000 MiB, all hole but an ELF header claiming a 3.9 GiB section.
        let f = File::create(&path).unwrap();
        f.set_len(4000 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&elf_with_section(3900 << 20), 0).unwrap();
        writable_by_others(&path);
        let budget = Budget::new(8 << 20);
        let started = std::time::Instant::now();
        let m = ModuleFile::open_path_in(&path, &budget).unwrap();
        assert!(m.is_copy());
        assert_eq!(m.size(), 4000 << 20);
        assert!(budget.used() <= 4096, "{} bytes charged", budget.used());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let map = m.map().unwrap();
        assert_eq!(&map[..4], b"\x7fELF");
        drop((map, m));
        assert_eq!(budget.used(), 0, "the charge ends with the copy");
    }

    #[test]
    fn only_the_ranges_elf_readers_use_are_copied_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        // Not ELF: the first page only, however large the file.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, vec![7u8; 16 << 20]).unwrap();
        writable_by_others(&plain);
        let budget = Budget::new(1 << 20);
        let m = ModuleFile::open_path_in(&plain, &budget).unwrap();
        assert_eq!(budget.used(), 4096);
        drop(m);
        // An ELF file whose section holds 16 MiB of data: over a 4 MiB
        // budget, refused, naming the file and the limit.
        let elf = dir.path().join("big.so");
        let mut bytes = elf_with_section(16 << 20);
        bytes.resize(4096 + (16 << 20), 1);
        std::fs::write(&elf, &bytes).unwrap();
        writable_by_others(&elf);
        let budget = Budget::new(4 << 20);
        let err = ModuleFile::open_path_in(&elf, &budget).unwrap_err();
        assert!(matches!(err, OpenError::Budget(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains("big.so") && text.contains("4 MiB") && text.contains("--max-memory"), "{text}");
        assert_eq!(budget.used(), 0);
        // Within the budget, the section's bytes are the file's.
        let budget = Budget::new(32 << 20);
        let m = ModuleFile::open_path_in(&elf, &budget).unwrap();
        let map = m.map().unwrap();
        assert_eq!(&map[..], &bytes[..]);
    }

    #[test]
    fn own_mappings_open_through_map_files() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')) && l.contains('/'))
            .unwrap();
        let (range, _) = line.split_once(' ').unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        match ModuleFile::open_mapping(Path::new("/proc"), std::process::id(), a, b) {
            Ok(m) => assert!(m.path().starts_with('/') && m.size() > 0),
            // map_files needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE).
            Err(OpenError::Io { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => panic!("{e}"),
        }
    }
}
