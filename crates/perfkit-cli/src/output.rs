//! Output files written atomically: each goes to a temporary file beside its
//! destination, created before any work starts (so an unwritable path fails
//! early) and renamed into place only when complete. `-` is standard output.

use std::{
    fs,
    io::{BufWriter, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use tempfile::NamedTempFile;

/// An output file being prepared.
pub struct PendingOutput {
    path: PathBuf,
    temp: NamedTempFile,
}

impl PendingOutput {
    /// Checks that `path` can be written by creating its temporary file.
    pub fn create(path: &Path) -> Result<Self> {
        if path.is_dir() {
            bail!("cannot write {}: it is a directory", path.display());
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".perfkit-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { path: path.to_owned(), temp })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the content with `write` and renames the file into place.
    pub fn commit(self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        let Self { path, mut temp } = self;
        {
            let mut buf = BufWriter::new(temp.as_file_mut());
            write(&mut buf)?;
            buf.flush().with_context(|| format!("writing {}", path.display()))?;
        }
        temp.as_file().sync_all().with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
        temp.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// An output file written atomically, or standard output.
pub enum Output {
    /// A file, renamed into place when complete.
    File(PendingOutput),
    /// Standard output.
    Stdout,
}

impl Output {
    /// `-` is standard output; anything else a file checked for writing now.
    pub fn create(path: &Path) -> Result<Self> {
        if path == Path::new("-") { Ok(Output::Stdout) } else { Ok(Output::File(PendingOutput::create(path)?)) }
    }

    /// The file's path for a "wrote" message; `None` for standard output.
    pub fn path_display(&self) -> Option<String> {
        match self {
            Output::File(f) => Some(f.path().display().to_string()),
            Output::Stdout => None,
        }
    }

    /// Writes the content.
    pub fn commit(self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        match self {
            Output::File(f) => f.commit(write),
            Output::Stdout => {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::new(stdout.lock());
                write(&mut w)?;
                w.flush().context("writing standard output")
            }
        }
    }
}
