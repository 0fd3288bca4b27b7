//! The one way perfkit opens a file it writes.
//!
//! perfkit often runs as root and is told where to write by a path that
//! other users may have prepared (`-o /tmp/x/out.svg`). [`open`] resolves
//! such a path itself, one component at a time from a trusted start (`/`
//! for an absolute path, the working directory for a relative one), with
//! `openat(O_PATH | O_NOFOLLOW)`, and holds each directory open, so that
//! nothing renamed or planted meanwhile changes where the output goes.
//! The rules:
//!
//! - **Links and directories in shared directories.** A symbolic link is
//!   followed only when root or the invoking user (the real uid) owns it,
//!   or, outside world-writable directories, when the directory's owner
//!   owns it. A directory owned by another user inside a world-writable
//!   directory is refused. At most [`MAX_LINKS`] links are followed.
//! - **Planted files.** An existing regular file, FIFO or device owned by
//!   another user (neither root nor the invoker) in a world-writable
//!   directory is refused: the rule of `fs.protected_regular=2` and
//!   `fs.protected_fifos=2`, applied whatever the sysctls say.
//! - **FIFOs and character devices** (`/dev/null`, `/dev/full`, a pipe)
//!   are opened non-blocking (a FIFO without a reader is an error, not a
//!   hang) and written directly; their errors are the caller's to report.
//! - **Regular files** are written to a temporary file created with
//!   `O_EXCL`, mode 0600, in the already-opened directory, and moved into
//!   place when complete: a new file with `linkat` (nothing that appeared
//!   meanwhile is replaced) and mode 0666 less the umask; an existing one
//!   with `renameat`, keeping its mode and owner.
//! - **Directories, sockets and block devices** are never replaced.
//!
//! Every refusal is a [`WriteError`] that says which rule refused and what
//! to do. The temporary files being written are listed where a signal
//! handler can remove them ([`remove_temporaries`]).

use std::{
    ffi::{CStr, CString, OsStr, OsString},
    fmt,
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::{Component, Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering},
};

/// The most symbolic links one path may go through (as the kernel's 40).
pub const MAX_LINKS: usize = 40;

/// Why a path was not opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A symbolic link on the way belongs to someone perfkit does not trust.
    #[error(
        "refusing {path}: {link} is a symbolic link owned by uid {uid} in {where_}; write somewhere else or remove the link"
    )]
    UntrustedLink {
        /// The path asked for.
        path: PathBuf,
        /// The link.
        link: PathBuf,
        /// Its owner.
        uid: u32,
        /// The directory holding it, described.
        where_: String,
    },
    /// A directory on the way belongs to another user and sits in a
    /// world-writable directory.
    #[error(
        "refusing {path}: {dir} is a directory owned by uid {uid} in the world-writable {parent}; write somewhere else"
    )]
    UntrustedDirectory {
        /// The path asked for.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        uid: u32,
        /// The world-writable directory holding it.
        parent: PathBuf,
    },
    /// Another user's file, FIFO or device is at the path, in a
    /// world-writable directory.
    #[error(
        "refusing {path}: it is a {kind} owned by uid {uid} in the world-writable {dir} (another user's file, the rule of fs.protected_regular); remove it or write somewhere else"
    )]
    PlantedFile {
        /// The path asked for.
        path: PathBuf,
        /// "file", "FIFO" or "character device".
        kind: &'static str,
        /// Its owner.
        uid: u32,
        /// The directory.
        dir: PathBuf,
    },
    /// More than [`MAX_LINKS`] symbolic links.
    #[error("cannot write {path}: more than {MAX_LINKS} symbolic links on the way; give the real path")]
    TooManyLinks {
        /// The path asked for.
        path: PathBuf,
    },
    /// Something perfkit never writes into or replaces.
    #[error("cannot write {path}: it is a {kind}; give a file name")]
    NotAFile {
        /// The path asked for.
        path: PathBuf,
        /// "directory", "socket" or "block device".
        kind: &'static str,
    },
    /// A FIFO nobody reads.
    #[error("cannot write {path}: it is a FIFO with no reader; start its reader first, or write somewhere else")]
    NoReader {
        /// The path asked for.
        path: PathBuf,
    },
    /// The path changed while perfkit worked on it.
    #[error("cannot write {path}: {what} while perfkit was working; not replaced, run again")]
    Changed {
        /// The path asked for.
        path: PathBuf,
        /// What happened.
        what: &'static str,
    },
    /// A system call failed.
    #[error("cannot write {path}: {what}: {error}")]
    Io {
        /// The path asked for.
        path: PathBuf,
        /// What perfkit was doing.
        what: String,
        /// The error (in the message, so not a source).
        error: io::Error,
    },
}

impl WriteError {
    /// The I/O error behind this one, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            WriteError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn io_err(path: &Path, what: impl Into<String>, source: io::Error) -> WriteError {
    WriteError::Io { path: path.to_owned(), what: what.into(), error: source }
}

/// The invoking user: the real uid (a setuid or setcap perfkit still
/// trusts only its invoker).
fn invoker() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn trusted(uid: u32) -> bool {
    uid == 0 || uid == invoker()
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which outlives the call.
    if unsafe { libc::fstat(fd, &mut st) } == 0 { Ok(st) } else { Err(io::Error::last_os_error()) }
}

fn fstatat(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and an out pointer that outlives the call.
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc == 0 { Ok(st) } else { Err(io::Error::last_os_error()) }
}

fn openat(dir: RawFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: a valid C string; openat has no memory preconditions.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn open_path(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// The target of the link open (`O_PATH | O_NOFOLLOW`) at `fd`.
fn readlink(fd: RawFd) -> io::Result<OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: an empty path with an O_PATH descriptor of a link reads that
    // link (Linux 2.6.39); the buffer's length is passed.
    let n = unsafe { libc::readlinkat(fd, c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

fn kind_of(mode: u32) -> u32 {
    mode & libc::S_IFMT
}

fn kind_name(mode: u32) -> &'static str {
    match kind_of(mode) {
        libc::S_IFREG => "file",
        libc::S_IFIFO => "FIFO",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFSOCK => "socket",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

fn world_writable(st: &libc::stat) -> bool {
    st.st_mode & 0o002 != 0
}

/// Where a path leads: its directory, held open, and what (if anything)
/// is at its last component.
struct Located {
    dir: OwnedFd,
    dir_stat: libc::stat,
    dir_shown: PathBuf,
    name: CString,
    found: Option<libc::stat>,
}

/// Walks `path`'s directories from a trusted start, applying the rules of
/// the module documentation.
fn locate(path: &Path) -> Result<Located, WriteError> {
    let err = |what: &str, e: io::Error| io_err(path, what, e);
    let root = || -> Result<(OwnedFd, PathBuf), WriteError> {
        Ok((open_path(libc::AT_FDCWD, c"/").map_err(|e| err("opening /", e))?, PathBuf::from("/")))
    };
    let (mut dir, mut shown) = if path.is_absolute() {
        root()?
    } else {
        (
            openat(libc::AT_FDCWD, c".", libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(|e| err("opening the working directory", e))?,
            PathBuf::new(),
        )
    };
    let mut dir_stat = fstat(dir.as_raw_fd()).map_err(|e| err("reading the working directory", e))?;
    let mut queue: std::collections::VecDeque<OsString> = std::collections::VecDeque::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => queue.push_back(n.to_owned()),
            Component::ParentDir => queue.push_back(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let trailing_slash = path.as_os_str().as_bytes().ends_with(b"/");
    if queue.back().is_none_or(|l| l == "..") || trailing_slash {
        return Err(WriteError::NotAFile { path: path.to_owned(), kind: "directory" });
    }
    let mut links = 0;
    while let Some(comp) = queue.pop_front() {
        let last = queue.is_empty();
        let shown_here = shown.join(&comp);
        let name = cstring(&comp).map_err(|e| err("reading the path", e))?;
        let fd = match open_path(dir.as_raw_fd(), &name) {
            Ok(fd) => fd,
            Err(e) if last && e.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(Located { dir, dir_stat, dir_shown: shown, name, found: None });
            }
            Err(e) => return Err(err(&format!("opening {}", shown_here.display()), e)),
        };
        let st = fstat(fd.as_raw_fd()).map_err(|e| err(&format!("reading {}", shown_here.display()), e))?;
        let shared = world_writable(&dir_stat);
        match kind_of(st.st_mode) {
            libc::S_IFLNK => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(WriteError::TooManyLinks { path: path.to_owned() });
                }
                let ok = trusted(st.st_uid) || (!shared && st.st_uid == dir_stat.st_uid);
                if !ok {
                    let parent = if shown.as_os_str().is_empty() { PathBuf::from(".") } else { shown.clone() };
                    let where_ = if shared {
                        format!("the world-writable {}", parent.display())
                    } else {
                        format!("{} (owned by uid {})", parent.display(), dir_stat.st_uid)
                    };
                    return Err(WriteError::UntrustedLink {
                        path: path.to_owned(),
                        link: shown_here,
                        uid: st.st_uid,
                        where_,
                    });
                }
                let target =
                    readlink(fd.as_raw_fd()).map_err(|e| err(&format!("reading {}", shown_here.display()), e))?;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    (dir, shown) = root()?;
                    dir_stat = fstat(dir.as_raw_fd()).map_err(|e| err("reading /", e))?;
                }
                let mut parts: Vec<OsString> = Vec::new();
                for c in target.components() {
                    match c {
                        Component::Normal(n) => parts.push(n.to_owned()),
                        Component::ParentDir => parts.push(OsString::from("..")),
                        _ => {}
                    }
                }
                let ends_dir = target.as_os_str().as_bytes().ends_with(b"/") || parts.last().is_none_or(|l| l == "..");
                if last && ends_dir {
                    return Err(WriteError::NotAFile { path: path.to_owned(), kind: "directory" });
                }
                for p in parts.into_iter().rev() {
                    queue.push_front(p);
                }
            }
            libc::S_IFDIR if !last => {
                if shared && !trusted(st.st_uid) && comp != ".." {
                    let parent = if shown.as_os_str().is_empty() { PathBuf::from(".") } else { shown.clone() };
                    return Err(WriteError::UntrustedDirectory {
                        path: path.to_owned(),
                        dir: shown_here,
                        uid: st.st_uid,
                        parent,
                    });
                }
                dir = fd;
                dir_stat = st;
                shown = shown_here;
            }
            _ if !last => {
                return Err(err(&shown_here.display().to_string(), io::Error::from_raw_os_error(libc::ENOTDIR)));
            }
            _ => return Ok(Located { dir, dir_stat, dir_shown: shown, name, found: Some(st) }),
        }
    }
    // The queue ends with a normal name (checked above), so the loop returns.
    Err(WriteError::NotAFile { path: path.to_owned(), kind: "directory" })
}

/// An output opened by [`open`].
#[derive(Debug)]
pub enum Output {
    /// `-`: standard output (the caller writes it).
    Stdout,
    /// A FIFO or character device, open for writing (blocking again).
    Stream(File, PathBuf),
    /// A regular file to create or replace: write it with
    /// [`Pending::stage`].
    File(Pending),
}

/// How an existing destination was: kept by its replacement.
#[derive(Debug, Clone, Copy)]
struct Keep {
    mode: u32,
    uid: u32,
    gid: u32,
    dev: u64,
    ino: u64,
}

/// A regular file, checked and not yet written: its directory is held open.
#[derive(Debug)]
pub struct Pending {
    path: PathBuf,
    dir: OwnedFd,
    name: CString,
    keep: Option<Keep>,
}

/// Opens `path` for writing as the module documentation says. `-` is
/// standard output. Nothing is created yet for a regular file, but the
/// directory is checked to be writable.
pub fn open(path: &Path) -> Result<Output, WriteError> {
    if path == Path::new("-") {
        return Ok(Output::Stdout);
    }
    let Located { dir, dir_stat, dir_shown, name, found } = locate(path)?;
    let dir_shown = if dir_shown.as_os_str().is_empty() { PathBuf::from(".") } else { dir_shown };
    let Some(st) = found else {
        let pending = Pending { path: path.to_owned(), dir, name, keep: None };
        pending.probe()?;
        return Ok(Output::File(pending));
    };
    let kind = kind_of(st.st_mode);
    if matches!(kind, libc::S_IFREG | libc::S_IFIFO | libc::S_IFCHR) && world_writable(&dir_stat) && !trusted(st.st_uid)
    {
        return Err(WriteError::PlantedFile {
            path: path.to_owned(),
            kind: kind_name(st.st_mode),
            uid: st.st_uid,
            dir: dir_shown,
        });
    }
    match kind {
        libc::S_IFREG => {
            let keep =
                Keep { mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid, dev: st.st_dev, ino: st.st_ino };
            let pending = Pending { path: path.to_owned(), dir, name, keep: Some(keep) };
            pending.probe()?;
            Ok(Output::File(pending))
        }
        libc::S_IFIFO | libc::S_IFCHR => {
            let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY;
            let fd = openat(dir.as_raw_fd(), &name, flags, 0).map_err(|e| match e.raw_os_error() {
                Some(libc::ENXIO) if kind == libc::S_IFIFO => WriteError::NoReader { path: path.to_owned() },
                _ => io_err(path, "opening it", e),
            })?;
            let now = fstat(fd.as_raw_fd()).map_err(|e| io_err(path, "reading it", e))?;
            if now.st_dev != st.st_dev || now.st_ino != st.st_ino {
                return Err(WriteError::Changed { path: path.to_owned(), what: "it was replaced" });
            }
            // Written as any output: blocking again once open.
            // SAFETY: fcntl on our own descriptor.
            unsafe {
                let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
                if fl != -1 {
                    libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
                }
            }
            Ok(Output::Stream(File::from(fd), path.to_owned()))
        }
        _ => Err(WriteError::NotAFile { path: path.to_owned(), kind: kind_name(st.st_mode) }),
    }
}

/// The process's umask, read without changing it where `/proc` says it.
fn umask() -> u32 {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("Umask:"))
        && let Ok(m) = u32::from_str_radix(line["Umask:".len()..].trim(), 8)
    {
        return m;
    }
    // SAFETY: umask sets and returns the mask; it is set back at once.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m as u32
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Pending {
    /// The destination, as asked for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a temporary file beside the destination (`O_EXCL`, 0600),
    /// listed for [`remove_temporaries`].
    fn create_temp(&self) -> Result<(File, Temp), WriteError> {
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!(".perfkit-{}-{n}-{nanos:08x}.tmp", std::process::id());
            let cname = CString::new(name).expect("no NUL in a generated name");
            // Listed before it exists: a signal in between removes nothing
            // of anyone else's (the name is this process's).
            let slot = Slot::claim(self.dir.as_raw_fd(), &cname);
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_NOCTTY;
            match openat(self.dir.as_raw_fd(), &cname, flags, 0o600) {
                Ok(fd) => return Ok((File::from(fd), Temp { dir: self.dir.as_raw_fd(), name: cname, slot })),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    if let Some(s) = slot {
                        s.release();
                    }
                }
                Err(e) => {
                    if let Some(s) = slot {
                        s.release();
                    }
                    return Err(io_err(&self.path, "creating a temporary file in its directory", e));
                }
            }
        }
        Err(io_err(
            &self.path,
            "creating a temporary file in its directory",
            io::Error::from_raw_os_error(libc::EEXIST),
        ))
    }

    /// Checks that a file can be created beside the destination (a
    /// read-only or full directory fails before any work), leaving nothing.
    fn probe(&self) -> Result<(), WriteError> {
        let (_, temp) = self.create_temp()?;
        drop(temp);
        Ok(())
    }

    /// Starts writing: a temporary file beside the destination, to
    /// [`commit`](Staged::commit) when complete. Dropped uncommitted, it is
    /// removed.
    pub fn stage(self) -> Result<Staged, WriteError> {
        let (file, temp) = self.create_temp()?;
        Ok(Staged { temp: Some(temp), file, pending: self })
    }
}

/// A temporary file being written, removed unless committed.
#[derive(Debug)]
pub struct Staged {
    // Dropped in this order: the temporary file is removed while its
    // directory is still open.
    temp: Option<Temp>,
    file: File,
    pending: Pending,
}

impl Staged {
    /// The temporary file to write.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.pending.path
    }

    /// Syncs the file, gives it its final mode (and owner) and moves it
    /// into place. Returns the file, still open, for appending.
    pub fn commit(mut self) -> Result<File, WriteError> {
        // A local: dropped (the temporary file removed) before `self`'s
        // directory is closed.
        let temp = self.temp.take().expect("a staged file has its temporary file");
        let path = self.pending.path.clone();
        let fd = self.file.as_raw_fd();
        let dir = self.pending.dir.as_raw_fd();
        self.file.sync_all().map_err(|e| io_err(&path, "writing it", e))?;
        match self.pending.keep {
            Some(k) => {
                // As root, the replacement keeps the owner too; otherwise
                // it is ours anyway (and a failure changes nothing).
                // SAFETY: fchown on our own descriptor.
                unsafe { libc::fchown(fd, k.uid, k.gid) };
                // SAFETY: fchmod on our own descriptor.
                if unsafe { libc::fchmod(fd, k.mode) } != 0 {
                    return Err(io_err(&path, "setting its mode", io::Error::last_os_error()));
                }
            }
            None => {
                // SAFETY: fchmod on our own descriptor.
                if unsafe { libc::fchmod(fd, 0o666 & !umask()) } != 0 {
                    return Err(io_err(&path, "setting its mode", io::Error::last_os_error()));
                }
            }
        }
        let name = &self.pending.name;
        let replace = match (self.pending.keep, fstatat(dir, name)) {
            (_, Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => false,
            (_, Err(e)) => return Err(io_err(&path, "reading it", e)),
            (Some(k), Ok(now))
                if kind_of(now.st_mode) == libc::S_IFREG && now.st_dev == k.dev && now.st_ino == k.ino =>
            {
                true
            }
            (Some(_), Ok(_)) => return Err(WriteError::Changed { path, what: "it was replaced" }),
            (None, Ok(_)) => return Err(WriteError::Changed { path, what: "a file appeared there" }),
        };
        if replace {
            // SAFETY: valid C strings and descriptors; renameat replaces the
            // directory entry (a link planted since is replaced, not followed).
            if unsafe { libc::renameat(dir, temp.name.as_ptr(), dir, name.as_ptr()) } != 0 {
                return Err(io_err(&path, "moving it into place", io::Error::last_os_error()));
            }
            temp.forget();
        } else {
            // A new file: never replace what appeared meanwhile.
            // SAFETY: valid C strings and descriptors.
            if unsafe { libc::linkat(dir, temp.name.as_ptr(), dir, name.as_ptr(), 0) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    return Err(WriteError::Changed { path, what: "a file appeared there" });
                }
                return Err(io_err(&path, "moving it into place", e));
            }
            drop(temp);
        }
        Ok(self.file)
    }
}

/// A temporary file's name in its directory: removed when dropped.
#[derive(Debug)]
struct Temp {
    dir: RawFd,
    name: CString,
    slot: Option<&'static Slot>,
}

impl Temp {
    /// The file was renamed into place: nothing to remove.
    fn forget(mut self) {
        if let Some(s) = self.slot.take() {
            s.release();
        }
        self.name = CString::default();
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(s) = self.slot.take() {
            s.release();
        }
        if !self.name.is_empty() {
            // SAFETY: a valid C string; `dir` is held open by the Pending
            // this temporary file belongs to.
            unsafe { libc::unlinkat(self.dir, self.name.as_ptr(), 0) };
        }
    }
}

const SLOTS: usize = 16;
const NAME_LEN: usize = 64;

/// A temporary file a signal handler may remove: its directory and name,
/// in atomics only (read from a signal handler).
struct Slot {
    used: AtomicBool,
    dir: AtomicI32,
    name: [AtomicU8; NAME_LEN],
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("dir", &self.dir.load(Ordering::Relaxed)).finish()
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Slot =
    Slot { used: AtomicBool::new(false), dir: AtomicI32::new(-1), name: [const { AtomicU8::new(0) }; NAME_LEN] };

static TEMPORARIES: [Slot; SLOTS] = [EMPTY_SLOT; SLOTS];

impl Slot {
    fn claim(dir: RawFd, name: &CStr) -> Option<&'static Slot> {
        let bytes = name.to_bytes_with_nul();
        if bytes.len() > NAME_LEN {
            return None;
        }
        let slot = TEMPORARIES
            .iter()
            .find(|s| s.used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok())?;
        for (i, b) in bytes.iter().enumerate() {
            slot.name[i].store(*b, Ordering::Relaxed);
        }
        slot.dir.store(dir, Ordering::SeqCst);
        Some(slot)
    }

    fn release(&self) {
        self.dir.store(-1, Ordering::SeqCst);
        self.used.store(false, Ordering::Release);
    }
}

/// Removes every temporary file being written. Async-signal-safe (atomic
/// loads and `unlinkat` only): for a signal handler that ends the process.
pub fn remove_temporaries() {
    for slot in &TEMPORARIES {
        let dir = slot.dir.load(Ordering::SeqCst);
        if dir < 0 {
            continue;
        }
        let mut name = [0u8; NAME_LEN];
        for (i, b) in slot.name.iter().enumerate() {
            name[i] = b.load(Ordering::Relaxed);
        }
        name[NAME_LEN - 1] = 0;
        // SAFETY: `name` is NUL-terminated; unlinkat is async-signal-safe.
        unsafe { libc::unlinkat(dir, name.as_ptr().cast(), 0) };
    }
}

#[cfg(test)]
mod tests;
