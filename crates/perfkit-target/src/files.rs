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
//! - copied into a sealed memory file when a user other than root could
//!   write it, so that nothing can change it under perfkit;
//! - never reopened by path: symbolizers read it through
//!   `/proc/self/fd/N`.

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
        Ok(Self { file, path: name.to_owned(), dev: 0, ino: 0, size: meta.len(), copied: true })
    }

    fn checked(mut file: File, path: String) -> Result<Self, OpenError> {
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
        if writable_by_others {
            let copy = sealed_copy(&path, &mut (&mut file).take(MAX_OBJECT_SIZE)).map_err(|e| io_err(&path, e))?;
            file = copy;
            copied = true;
        }
        Ok(Self { file, path, dev, ino, size, copied })
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

    /// Reads the whole file (at most [`MAX_OBJECT_SIZE`]).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = self.file.metadata()?.len().min(MAX_OBJECT_SIZE) as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match self.file.read_at(&mut buf[done..], done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }
}

fn io_err(path: &str, source: io::Error) -> OpenError {
    OpenError::Io { path: path.to_owned(), source }
}

/// Opens read-only without blocking (a FIFO) or taking a terminal.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC).open(path)
}

/// Copies `src` into a memory file sealed against any change.
fn sealed_copy(name: &str, src: &mut dyn Read) -> io::Result<File> {
    let cname = CString::new(format!("perfkit:{}", name.rsplit('/').next().unwrap_or(name)).replace('\0', ""))
        .unwrap_or_else(|_| CString::new("perfkit").expect("no NUL"));
    // SAFETY: memfd_create takes a NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor nobody else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    io::copy(src, &mut file)?;
    file.flush()?;
    file.seek(SeekFrom::Start(0))?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
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
        assert_eq!(m2.read_all().unwrap(), b"\x7fELF original");
        assert_eq!(m.name(), "lib.so");
        let bytes = std::fs::read(m2.fd_path()).unwrap();
        assert_eq!(bytes, b"\x7fELF original");
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
