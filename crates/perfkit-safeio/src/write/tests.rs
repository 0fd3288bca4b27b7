//! The walk and the rules, on temporary directories. Tests that plant
//! another user's files need root (to chown); they say so and return
//! without it.

use std::{
    ffi::CString,
    fs,
    io::{Read, Write},
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink},
    path::Path,
    time::{Duration, Instant},
};

use super::*;

/// Tests run in parallel and [`remove_temporaries`] removes every
/// temporary file of the process: one test at a time.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Another user: `nobody`.
const OTHER: u32 = 65534;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: needs root to plant another user's files");
    }
    root
}

fn lchown(path: &Path, uid: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0, "{}", io::Error::last_os_error());
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
}

/// A directory like /tmp: world-writable and sticky.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn write(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    match open(path)? {
        Output::File(p) => {
            let mut staged = p.stage()?;
            staged.file().write_all(data).unwrap();
            staged.commit()?;
        }
        Output::Stream(mut f, _) => f.write_all(data).unwrap(),
        Output::Stdout => unreachable!(),
    }
    Ok(())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn new_files_honour_the_umask_and_existing_modes_are_kept() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.txt");
    write(&new, b"x").unwrap();
    assert_eq!(fs::metadata(&new).unwrap().mode() & 0o777, 0o666 & !umask());
    let private = dir.path().join("private.txt");
    fs::write(&private, "old").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    write(&private, b"new").unwrap();
    assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o600, "never widened");
    assert_eq!(fs::read_to_string(&private).unwrap(), "new");
    assert_eq!(entries(dir.path()), ["new.txt", "private.txt"]);
}

#[test]
fn a_dropped_stage_leaves_the_destination_and_no_temporary_file() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.txt");
    fs::write(&path, "precious").unwrap();
    let Output::File(p) = open(&path).unwrap() else { panic!("a regular file") };
    let mut staged = p.stage().unwrap();
    staged.file().write_all(b"half").unwrap();
    assert_eq!(entries(dir.path()).len(), 2, "the temporary file is beside it");
    drop(staged);
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    assert_eq!(entries(dir.path()), ["keep.txt"]);
}

#[test]
fn remove_temporaries_removes_what_is_being_written() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    let Output::File(p) = open(&dir.path().join("out")).unwrap() else { panic!() };
    let staged = p.stage().unwrap();
    assert_eq!(entries(dir.path()).len(), 1);
    remove_temporaries();
    assert!(entries(dir.path()).is_empty());
    drop(staged);
}

#[test]
fn a_file_that_appears_meanwhile_is_not_replaced() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let Output::File(p) = open(&path).unwrap() else { panic!() };
    let mut staged = p.stage().unwrap();
    staged.file().write_all(b"ours").unwrap();
    fs::write(&path, "theirs").unwrap();
    let err = staged.commit().unwrap_err();
    assert!(matches!(err, WriteError::Changed { .. }), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "theirs");
    assert_eq!(entries(dir.path()), ["out"]);
}

#[test]
fn relative_paths_and_dot_dot_are_walked() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("a")).unwrap();
    let path = dir.path().join("a/../b.txt");
    write(&path, b"x").unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("b.txt")).unwrap(), "x");
}

#[test]
fn directories_sockets_and_trailing_slashes_are_refused() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, WriteError::NotAFile { kind: "directory", .. }), "{err}");
    let err = open(&dir.path().join("new/")).unwrap_err();
    assert!(matches!(err, WriteError::NotAFile { .. }), "{err}");
    let sock = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = open(&sock).unwrap_err();
    assert!(err.to_string().contains("socket"), "{err}");
    assert!(fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
}

#[test]
fn link_loops_end_after_forty_links() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    symlink("b", dir.path().join("a")).unwrap();
    symlink("a", dir.path().join("b")).unwrap();
    let err = open(&dir.path().join("a/out")).unwrap_err();
    assert!(matches!(err, WriteError::TooManyLinks { .. }), "{err}");
    // A chain of 40 is fine.
    fs::create_dir(dir.path().join("real")).unwrap();
    symlink("real", dir.path().join("l0")).unwrap();
    for i in 1..MAX_LINKS {
        symlink(format!("l{}", i - 1), dir.path().join(format!("l{i}"))).unwrap();
    }
    write(&dir.path().join(format!("l{}/out", MAX_LINKS - 1)), b"x").unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("real/out")).unwrap(), "x");
}

#[test]
fn own_links_are_followed_even_in_a_shared_directory() {
    let _serial = lock();
    let shared = shared_dir();
    let target = tempfile::tempdir().unwrap();
    symlink(target.path(), shared.path().join("x")).unwrap();
    write(&shared.path().join("x/out.txt"), b"ours").unwrap();
    assert_eq!(fs::read_to_string(target.path().join("out.txt")).unwrap(), "ours");
}

#[test]
fn another_users_directory_link_in_a_shared_directory_is_refused() {
    let _serial = lock();
    if !root() {
        return;
    }
    let shared = shared_dir();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim.txt");
    fs::write(&victim, "root's").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let link = shared.path().join("x");
    symlink(victim_dir.path(), &link).unwrap();
    lchown(&link, OTHER);
    let err = open(&link.join("victim.txt")).unwrap_err();
    assert!(matches!(err, WriteError::UntrustedLink { uid: OTHER, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("symbolic link owned by uid 65534") && msg.contains("world-writable"), "{msg}");
    assert!(msg.contains(&link.display().to_string()), "{msg}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's");
    // Deeper: a link further down, through a directory of ours.
    fs::create_dir(shared.path().join("ours")).unwrap();
    let err = open(&shared.path().join("ours/../x/victim.txt")).unwrap_err();
    assert!(matches!(err, WriteError::UntrustedLink { .. }), "{err}");
    // The last component too.
    let last = shared.path().join("last");
    symlink(&victim, &last).unwrap();
    lchown(&last, OTHER);
    assert!(matches!(open(&last).unwrap_err(), WriteError::UntrustedLink { .. }));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's");
}

#[test]
fn another_users_directory_in_a_shared_directory_is_refused() {
    let _serial = lock();
    if !root() {
        return;
    }
    let shared = shared_dir();
    let theirs = shared.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    lchown(&theirs, OTHER);
    let err = open(&theirs.join("out.txt")).unwrap_err();
    assert!(matches!(err, WriteError::UntrustedDirectory { uid: OTHER, .. }), "{err}");
    assert!(entries(&theirs).is_empty());
    // Not in a shared directory: their directory is theirs to lend.
    let private = tempfile::tempdir().unwrap();
    let lent = private.path().join("lent");
    fs::create_dir(&lent).unwrap();
    lchown(&lent, OTHER);
    write(&lent.join("out.txt"), b"x").unwrap();
}

#[test]
fn planted_files_and_fifos_in_a_shared_directory_are_refused() {
    let _serial = lock();
    if !root() {
        return;
    }
    let shared = shared_dir();
    let file = shared.path().join("planted.txt");
    fs::write(&file, "theirs").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    lchown(&file, OTHER);
    let err = open(&file).unwrap_err();
    assert!(matches!(err, WriteError::PlantedFile { kind: "file", uid: OTHER, .. }), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "theirs");
    let fifo = shared.path().join("planted.fifo");
    mkfifo(&fifo);
    lchown(&fifo, OTHER);
    let err = open(&fifo).unwrap_err();
    assert!(matches!(err, WriteError::PlantedFile { kind: "FIFO", .. }), "{err}");
    // Root's own file there is replaced as usual.
    let own = shared.path().join("own.txt");
    fs::write(&own, "old").unwrap();
    write(&own, b"new").unwrap();
    assert_eq!(fs::read_to_string(&own).unwrap(), "new");
}

#[test]
fn a_fifo_without_a_reader_fails_at_once_and_with_one_is_written() {
    let _serial = lock();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let started = Instant::now();
    let err = open(&fifo).unwrap_err();
    assert!(matches!(err, WriteError::NoReader { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            fs::File::open(fifo).unwrap().read_to_string(&mut s).unwrap();
            s
        })
    };
    // The reader opens when it is scheduled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        match open(&fifo) {
            Ok(o) => break o,
            Err(WriteError::NoReader { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let Output::Stream(mut f, _) = out else { panic!("a FIFO is a stream") };
    f.write_all(b"through").unwrap();
    drop(f);
    assert_eq!(reader.join().unwrap(), "through");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
}

#[test]
fn dev_null_is_written_directly() {
    let _serial = lock();
    let Output::Stream(mut f, _) = open(Path::new("/dev/null")).unwrap() else { panic!() };
    f.write_all(b"x").unwrap();
    if Path::new("/dev/full").exists() {
        let Output::Stream(mut f, _) = open(Path::new("/dev/full")).unwrap() else { panic!() };
        let e = f.write_all(b"x").and_then(|()| f.flush()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }
}
