//! Where the dynamic loader finds a library, in its order (ld.so(8)):
//! the program's `DT_RPATH` (only without `DT_RUNPATH`), `LD_LIBRARY_PATH`,
//! `DT_RUNPATH`, the directories of `/etc/ld.so.conf` and its includes
//! (what `ldconfig` puts in the cache), then the built-in defaults.
//!
//! The loader's configuration, not a distribution's list: Fedora's
//! `/usr/lib64`, Debian's multiarch directories and a site's
//! `/opt/vendor/lib` come from the same files the loader reads.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

/// At most this many bytes of one configuration file are read.
const MAX_CONF_BYTES: u64 = 1 << 20;
/// Includes nest at most this deep (a file including itself stops here).
const MAX_INCLUDE_DEPTH: usize = 8;
/// At most this many configuration files are read.
const MAX_CONF_FILES: usize = 256;
/// At most this many directories are kept from the configuration.
const MAX_DIRS: usize = 512;

/// The loader's default directories after the cache, for 64-bit x86.
const DEFAULT_DIRS: [&str; 4] = ["/lib64", "/usr/lib64", "/lib", "/usr/lib"];

/// The directories searched for a `DT_NEEDED` name of `program`, in order.
///
/// `rpath` and `runpath` are the program's own entries (colon-separated
/// strings, `$ORIGIN` allowed); `ld_library_path` is the environment's.
pub(crate) fn search_dirs(
    program: &Path,
    rpath: Option<&str>,
    runpath: Option<&str>,
    ld_library_path: Option<&str>,
    conf: &Path,
) -> Vec<PathBuf> {
    let origin = program.parent().unwrap_or(Path::new("/"));
    let mut out: Vec<PathBuf> = Vec::new();
    let push = |d: PathBuf, out: &mut Vec<PathBuf>| {
        if d.is_absolute() && !out.contains(&d) && out.len() < MAX_DIRS {
            out.push(d);
        }
    };
    if runpath.is_none()
        && let Some(r) = rpath
    {
        for d in expand(r, origin) {
            push(d, &mut out);
        }
    }
    if let Some(l) = ld_library_path {
        for d in l.split([':', ';']).filter(|s| !s.is_empty()) {
            push(PathBuf::from(d), &mut out);
        }
    }
    if let Some(r) = runpath {
        for d in expand(r, origin) {
            push(d, &mut out);
        }
    }
    let mut conf_dirs = Vec::new();
    read_conf(conf, 0, &mut conf_dirs, &mut Vec::new());
    for d in conf_dirs {
        push(d, &mut out);
    }
    for d in DEFAULT_DIRS {
        push(PathBuf::from(d), &mut out);
    }
    out
}

/// A colon-separated `DT_RPATH`/`DT_RUNPATH` with `$ORIGIN` replaced.
/// Entries with other dynamic string tokens (`$LIB`, `$PLATFORM`) are
/// skipped rather than guessed.
fn expand(list: &str, origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    list.split(':')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
        .filter(|s| !s.contains('$'))
        .map(PathBuf::from)
        .collect()
}

/// The directories of one `ld.so.conf`-format file, following `include`
/// lines (with glob patterns) to a bounded depth, each file once (`read`:
/// their device and inode), at most [`MAX_CONF_FILES`]. `hwcap` lines are
/// ignored, as glibc does.
fn read_conf(path: &Path, depth: usize, out: &mut Vec<PathBuf>, read: &mut Vec<(u64, u64)>) {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    if depth > MAX_INCLUDE_DEPTH || out.len() >= MAX_DIRS || read.len() >= MAX_CONF_FILES {
        return;
    }
    // Never blocking on a FIFO an include names, and only regular files.
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    else {
        return;
    };
    let Ok(meta) = file.metadata() else { return };
    if !meta.is_file() || read.contains(&(meta.dev(), meta.ino())) {
        return;
    }
    read.push((meta.dev(), meta.ino()));
    let mut text = String::new();
    if file.take(MAX_CONF_BYTES).read_to_string(&mut text).is_err() {
        return;
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("include") => {
                for pattern in words {
                    let pattern = if pattern.starts_with('/') {
                        pattern.to_owned()
                    } else {
                        dir.join(pattern).to_string_lossy().into_owned()
                    };
                    let Ok(paths) = glob::glob(&pattern) else { continue };
                    // glob yields its matches sorted, as glibc's glob(3) does.
                    for p in paths.flatten() {
                        read_conf(&p, depth + 1, out, read);
                    }
                }
            }
            Some("hwcap") => {}
            Some(_) => {
                // A line may hold several directories separated by
                // spaces, tabs, colons or commas; `=TYPE` suffixes are old
                // libc5 syntax.
                for d in line.split([' ', '\t', ':', ',']).filter(|s| !s.is_empty()) {
                    let d = d.split('=').next().unwrap_or(d);
                    let d = PathBuf::from(d);
                    if d.is_absolute() && !out.contains(&d) && out.len() < MAX_DIRS {
                        out.push(d);
                    }
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_the_loader() {
        let tmp = tempfile::tempdir().unwrap();
        let conf_d = tmp.path().join("ld.so.conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(tmp.path().join("ld.so.conf"), "include ld.so.conf.d/*.conf\n/opt/first # comment\n").unwrap();
        std::fs::write(conf_d.join("b.conf"), "/opt/b1:/opt/b2\n").unwrap();
        std::fs::write(conf_d.join("a.conf"), "# multiarch\n/opt/a\nhwcap 0 nosegneg\n").unwrap();
        // A file including its own directory again stops at the depth bound.
        std::fs::write(conf_d.join("c.conf"), format!("include {}/*.conf\n", conf_d.display())).unwrap();
        let dirs = search_dirs(
            Path::new("/srv/app/bin/app"),
            Some("/ignored/because/runpath"),
            Some("$ORIGIN/../lib:/opt/$PLATFORM"),
            Some("/env/lib"),
            &tmp.path().join("ld.so.conf"),
        );
        let dirs: Vec<_> = dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect();
        assert_eq!(
            dirs,
            [
                "/env/lib",
                "/srv/app/bin/../lib",
                "/opt/a",
                "/opt/b1",
                "/opt/b2",
                "/opt/first",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib"
            ]
        );
    }

    #[test]
    fn includes_are_read_once_and_fifos_never_block() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("ld.so.conf.d");
        std::fs::create_dir(&d).unwrap();
        // Six files that each include all six: 6^8 reads to the depth
        // bound, each file once now.
        for i in 0..6 {
            std::fs::write(d.join(format!("{i}.conf")), format!("include {}/*.conf\n/opt/{i}\n", d.display())).unwrap();
        }
        // A FIFO the glob matches: nobody writes it.
        let c = std::ffi::CString::new(d.join("fifo.conf").to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::fs::write(tmp.path().join("ld.so.conf"), format!("include {}/*.conf\n", d.display())).unwrap();
        let conf = tmp.path().join("ld.so.conf");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dirs = search_dirs(Path::new("/x/y"), None, None, None, &conf);
            let _ = tx.send(dirs);
        });
        let dirs = rx.recv_timeout(std::time::Duration::from_secs(2)).expect("read within 2 s, no FIFO wait");
        // Each include in place, as ldconfig reads them: the innermost
        // file's directory first.
        let dirs: Vec<_> = dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect();
        assert_eq!(dirs[..6], ["/opt/5", "/opt/4", "/opt/3", "/opt/2", "/opt/1", "/opt/0"]);
    }

    #[test]
    fn rpath_counts_without_runpath() {
        let dirs = search_dirs(Path::new("/x/y"), Some("$ORIGIN:/r"), None, None, Path::new("/nonexistent/ld.so.conf"));
        assert_eq!(dirs[..2], [PathBuf::from("/x"), PathBuf::from("/r")]);
    }

    #[test]
    fn this_machines_configuration_is_read() {
        // The loader's own libc is found in a directory the configuration names.
        let dirs = search_dirs(Path::new("/bin/true"), None, None, None, Path::new("/etc/ld.so.conf"));
        assert!(dirs.iter().any(|d| d.join("libc.so.6").is_file()), "{dirs:?}");
    }
}
