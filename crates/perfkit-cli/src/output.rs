//! Outputs: `-` is standard output; every file goes through
//! [`perfkit_safeio::write`], the one way perfkit opens a file it writes
//! (its module documentation has the rules). This module only adapts it to
//! the commands' `anyhow` errors and buffered writers.
//!
//! Standard output closed by its reader (`| head`, EPIPE) ends perfkit as
//! it ends coreutils: quietly, killed by SIGPIPE (status 141 in a shell).
//! A standard output closed before the start (`>&-`) is an error.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow};
use perfkit_safeio::write::{self, Pending};

/// An output, checked before any work.
pub enum Output {
    /// Standard output.
    Stdout,
    /// A character device or FIFO, open for writing.
    Device(File, PathBuf),
    /// A regular file, staged beside its destination and moved into place.
    File(Pending),
}

impl Output {
    /// `-` is standard output; anything else is checked now, before any
    /// work, by [`perfkit_safeio::write::open`]. Nothing is created yet.
    pub fn create(path: &Path) -> Result<Self> {
        Ok(match write::open(path)? {
            write::Output::Stdout => {
                check_stdout_open()?;
                Output::Stdout
            }
            write::Output::Stream(file, path) => Output::Device(file, path),
            write::Output::File(pending) => Output::File(pending),
        })
    }

    /// The file's path for a "wrote" message; `None` for standard output.
    pub fn path_display(&self) -> Option<String> {
        match self {
            Output::File(f) => Some(f.path().display().to_string()),
            Output::Device(_, p) => Some(p.display().to_string()),
            Output::Stdout => None,
        }
    }

    /// Writes the content: a file appears whole, or not at all.
    pub fn commit(self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        match self {
            Output::File(pending) => {
                let mut staged = pending.stage()?;
                let path = staged.path().to_owned();
                {
                    let mut w = BufWriter::new(staged.file());
                    write(&mut w)?;
                    w.flush().with_context(|| format!("writing {}", path.display()))?;
                }
                staged.commit()?;
                Ok(())
            }
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
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<write::WriteError>()
                .and_then(write::WriteError::io_error)
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Ends perfkit as coreutils end on a closed pipe: killed by SIGPIPE,
/// quietly (status 141 in a shell), after removing any temporary file.
pub fn exit_on_broken_pipe() -> ! {
    write::remove_temporaries();
    // SIGPIPE's default action (ended by it), as if it had not been
    // ignored; the process ends.
    let _ = signal_hook::low_level::emulate_default_handler(libc::SIGPIPE);
    std::process::exit(128 + libc::SIGPIPE)
}

/// For `println!`: standard output failed. A closed pipe ends perfkit as
/// coreutils do; any other error is reported (if standard error still
/// works) and ends it with status 1.
pub fn stdout_failed(err: io::Error) -> ! {
    if err.kind() == io::ErrorKind::BrokenPipe {
        exit_on_broken_pipe();
    }
    write::remove_temporaries();
    let _ = writeln!(io::stderr(), "perfkit: error: writing standard output: {err}");
    std::process::exit(1)
}

/// Fails when standard output is closed (`>&-`): writing would go nowhere.
pub fn check_stdout_open() -> Result<()> {
    let stdout = io::stdout();
    if rustix::io::fcntl_getfd(&stdout).is_err() {
        return Err(anyhow!("standard output is closed"));
    }
    // Rust's runtime reopens a closed descriptor 0, 1 or 2 on /dev/null,
    // read-write, before main: a stdout closed with `>&-` looks like that.
    // A shell's `> /dev/null` opens it write-only.
    let read_write =
        rustix::fs::fcntl_getfl(&stdout).is_ok_and(|f| f & rustix::fs::OFlags::ACCMODE == rustix::fs::OFlags::RDWR);
    if read_write {
        let target = std::fs::read_link("/proc/self/fd/1").unwrap_or_default();
        if target == Path::new("/dev/null") {
            return Err(anyhow!("standard output is closed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_failed_write_leaves_the_destination_untouched_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.txt");
        fs::write(&path, "precious").unwrap();
        let r = Output::create(&path).unwrap().commit(|_| anyhow::bail!("the work failed"));
        assert!(r.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn nothing_is_created_before_the_output_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = Output::create(&dir.path().join("new.svg")).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "a temporary file before the work");
        out.commit(|w| Ok(w.write_all(b"<svg/>")?)).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("new.svg")).unwrap(), "<svg/>");
    }
}
