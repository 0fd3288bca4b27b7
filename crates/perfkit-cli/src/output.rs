//! Output files, written safely by a tool that often runs as root.
//!
//! - `-` is standard output. A closed pipe there (`| head`) ends perfkit
//!   normally; a closed descriptor (`>&-`) is an error.
//! - A new file is created exclusively (a temporary file, `O_EXCL`, in the
//!   destination's directory) and moved into place only when complete,
//!   without replacing anything that appeared meanwhile. Its mode is
//!   0666 less the umask, as any tool's.
//! - An existing regular file is replaced atomically, keeping its mode and
//!   owner: never widened.
//! - A character device or a FIFO (`/dev/null`, `/dev/full`, a pipe) is
//!   written directly, and its errors reported (ENOSPC on `/dev/full`).
//! - Anything else (a directory, a socket, a block device) is refused.
//! - A symlink is followed only when it belongs to the invoking user or to
//!   root, whatever `fs.protected_symlinks` says.
//! - Every check happens before any work, and nothing is touched when the
//!   work fails.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::NamedTempFile;

/// How an existing destination is replaced.
#[derive(Debug, Clone, Copy)]
struct Keep {
    mode: u32,
    uid: u32,
    gid: u32,
}

/// A file being prepared beside its destination.
pub struct PendingOutput {
    path: PathBuf,
    temp: NamedTempFile,
    keep: Option<Keep>,
}

/// An output: standard output, a device written directly, or a file
/// replaced atomically.
pub enum Output {
    /// Standard output.
    Stdout,
    /// A character device or FIFO, opened for writing.
    Device(File, PathBuf),
    /// A regular file, written beside its destination and moved into place.
    File(PendingOutput),
}

/// The invoking user (the real uid: a setuid or setcap perfkit still
/// follows only its invoker's links).
fn invoker() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

fn umask() -> u32 {
    // SAFETY: umask sets and returns the mask; set it back at once.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m as u32
    }
}

/// Resolves `path` through symlinks that belong to the invoker or root;
/// refuses others. Returns the final path and what is there (if anything).
fn resolve(path: &Path) -> Result<(PathBuf, Option<fs::Metadata>)> {
    let mut path = path.to_owned();
    for _ in 0..16 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let owner = m.uid();
                if owner != 0 && owner != invoker() {
                    bail!(
                        "refusing to write {}: it is a symbolic link owned by uid {owner}, neither yours nor root's",
                        path.display()
                    );
                }
                let target = fs::read_link(&path).with_context(|| format!("reading the link {}", path.display()))?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(m) => return Ok((path, Some(m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((path, None)),
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
        }
    }
    bail!("cannot write {}: too many levels of symbolic links", path.display())
}

impl PendingOutput {
    fn new(shown: &Path, path: PathBuf, existing: Option<&fs::Metadata>) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".perfkit-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write {}", shown.display()))?;
        let keep = existing.map(|m| Keep { mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid() });
        Ok(Self { path, temp, keep })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the file its final mode (and owner) before it appears.
    fn finalize_mode(&self) -> Result<()> {
        let file = self.temp.as_file();
        match self.keep {
            Some(k) => {
                // As root, the replacement keeps the owner too; otherwise it
                // is ours anyway.
                // SAFETY: fchown on our own open descriptor.
                unsafe { libc::fchown(std::os::fd::AsRawFd::as_raw_fd(file), k.uid, k.gid) };
                file.set_permissions(fs::Permissions::from_mode(k.mode))?;
            }
            None => file.set_permissions(fs::Permissions::from_mode(0o666 & !umask()))?,
        }
        Ok(())
    }

    /// Moves the finished file into place.
    fn persist(self) -> Result<File> {
        self.finalize_mode().with_context(|| format!("writing {}", self.path.display()))?;
        let Self { path, temp, keep } = self;
        if keep.is_some() {
            // Replacing a file that was there (rename does not follow a
            // symlink planted at the path since: it replaces the link).
            temp.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))
        } else {
            // A new file: never replace what appeared meanwhile.
            temp.persist_noclobber(&path).map_err(|e| e.error).with_context(|| {
                format!("cannot write {}: it appeared while perfkit was working; not replaced", path.display())
            })
        }
    }

    /// Writes the content with `write` and moves the file into place.
    pub fn commit(mut self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        {
            let mut buf = BufWriter::new(self.temp.as_file_mut());
            write(&mut buf)?;
            buf.flush().with_context(|| format!("writing {}", self.path.display()))?;
        }
        self.temp.as_file().sync_all().with_context(|| format!("writing {}", self.path.display()))?;
        self.persist()?;
        Ok(())
    }

    /// Moves the (so far written) file into place now and returns it for
    /// further appending: a recording appears whole from its first sample.
    pub fn into_stream(self) -> Result<File> {
        self.persist()
    }

    /// The temporary file, to write before [`into_stream`](Self::into_stream).
    pub fn file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }
}

impl Output {
    /// `-` is standard output; anything else is checked now, before any
    /// work, as the module documentation says.
    pub fn create(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            check_stdout_open()?;
            return Ok(Output::Stdout);
        }
        let (real, meta) = resolve(path)?;
        match meta {
            None => Ok(Output::File(PendingOutput::new(path, real, None)?)),
            Some(m) if m.file_type().is_file() => Ok(Output::File(PendingOutput::new(path, real, Some(&m))?)),
            Some(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => {
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                    .open(&real)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                // The open must have found the same kind of file.
                let now = file.metadata()?;
                if !(now.file_type().is_char_device() || now.file_type().is_fifo()) {
                    bail!("cannot write {}: it changed while perfkit opened it", path.display());
                }
                Ok(Output::Device(file, path.to_owned()))
            }
            Some(m) if m.is_dir() => bail!("cannot write {}: it is a directory", path.display()),
            Some(_) => bail!("refusing to write {}: not a regular file, character device or FIFO", path.display()),
        }
    }

    /// The file's path for a "wrote" message; `None` for standard output.
    pub fn path_display(&self) -> Option<String> {
        match self {
            Output::File(f) => Some(f.path().display().to_string()),
            Output::Device(_, p) => Some(p.display().to_string()),
            Output::Stdout => None,
        }
    }

    /// Writes the content.
    pub fn commit(self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        match self {
            Output::File(f) => f.commit(write),
            Output::Device(mut file, path) => {
                let mut w = BufWriter::new(&mut file);
                write(&mut w).with_context(|| format!("writing {}", path.display()))?;
                w.flush().with_context(|| format!("writing {}", path.display()))
            }
            Output::Stdout => {
                let stdout = io::stdout();
                let mut w = BufWriter::new(stdout.lock());
                write(&mut w).context("writing standard output")?;
                w.flush().context("writing standard output")
            }
        }
    }
}

/// Whether an error is a closed pipe on a stream we wrote: a normal end for
/// a command piped into `head`.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Fails when standard output is closed (`>&-`): writing would go nowhere.
pub fn check_stdout_open() -> Result<()> {
    // SAFETY: F_GETFD on descriptor 1 only reads its flags.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
        return Err(anyhow!("standard output is closed"));
    }
    // Rust's runtime reopens a closed descriptor 0, 1 or 2 on /dev/null,
    // read-write, before main: a stdout closed with `>&-` looks like that.
    // A shell's `> /dev/null` opens it write-only.
    // SAFETY: F_GETFL on descriptor 1 only reads its status flags.
    let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
    if flags != -1 && flags & libc::O_ACCMODE == libc::O_RDWR {
        let target = fs::read_link("/proc/self/fd/1").unwrap_or_default();
        if target == Path::new("/dev/null") {
            return Err(anyhow!("standard output is closed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn new_files_honour_the_umask_and_existing_modes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.txt");
        Output::create(&new).unwrap().commit(|w| Ok(w.write_all(b"x")?)).unwrap();
        assert_eq!(fs::metadata(&new).unwrap().mode() & 0o777, 0o666 & !umask());
        let private = dir.path().join("private.txt");
        fs::write(&private, "old").unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
        Output::create(&private).unwrap().commit(|w| Ok(w.write_all(b"new")?)).unwrap();
        assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o600, "never widened");
        assert_eq!(fs::read_to_string(&private).unwrap(), "new");
    }

    #[test]
    fn fifos_are_written_directly_and_directories_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
        };
        Output::create(&fifo).unwrap().commit(|w| Ok(w.write_all(b"through")?)).unwrap();
        assert_eq!(reader.join().unwrap(), "through");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
        let err = Output::create(dir.path()).err().unwrap().to_string();
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn a_failed_write_leaves_the_destination_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.txt");
        fs::write(&path, "precious").unwrap();
        let r = Output::create(&path).unwrap().commit(|_| bail!("the work failed"));
        assert!(r.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }
}
