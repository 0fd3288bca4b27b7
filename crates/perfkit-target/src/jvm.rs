//! HotSpot JVMs: whether a process is one, whether it may be attached to,
//! and asking it for its perf map the way `jcmd PID Compiler.perfmap` does
//! (JDK 17 and newer).
//!
//! The attach mechanism is HotSpot's own: the client leaves a file
//! `.attach_pidPID` in the JVM's `/tmp` and sends SIGQUIT; the JVM then listens on the UNIX socket
//! `/tmp/.java_pidPID` (PIDs and paths as the JVM sees them, inside its
//! namespaces), and answers one command per connection. perfkit sends
//! exactly what `jcmd` sends, so the target does nothing beyond what `jcmd`
//! makes it do: it writes `/tmp/perf-PID.map`.
//!
//! A process counts as a JVM when it maps `libjvm.so` executable and runs
//! HotSpot's signal dispatcher thread; it is held by a pidfd from the first
//! check, and signalled through it. A JVM is never signalled unless it
//! catches SIGQUIT itself (a JVM with
//! `-Xrs`, or one still starting, would die of it), and not at all when its
//! performance data says attaching is disabled
//! (`-XX:+DisableAttachMechanism`), or, without performance data, when its
//! command line or `JAVA_TOOL_OPTIONS` says so. Everything read here is
//! the target's: sizes are bounded; its `/tmp` is opened without following
//! a link and must be root's sticky directory or the JVM user's own; the
//! trigger file is created new in it; and the socket is reached through
//! that opened directory, and used only when the JVM's user owns it.

use std::{
    ffi::CString,
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{fs::MetadataExt, net::UnixStream},
    },
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

/// The most bytes read of a JVM's performance data file.
const MAX_PERFDATA: u64 = 1 << 20;
/// The most bytes read of an answer.
const MAX_ANSWER: u64 = 64 << 10;
/// The most lines of `/proc/PID/maps` looked at.
const MAX_MAPS_LINES: usize = 1 << 16;

/// Whether a JVM accepts attaching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Its performance data says it does.
    Allowed,
    /// Started with `-XX:+DisableAttachMechanism`.
    Disabled,
    /// It does not catch SIGQUIT (`-Xrs`, or still starting): signalling it
    /// would end it.
    NoSignalHandler,
    /// No performance data (`-XX:-UsePerfData`) and no flag against it:
    /// `jcmd` would try, and so does perfkit.
    Unknown,
}

/// A HotSpot JVM process.
#[derive(Clone, Debug)]
pub struct Jvm {
    /// The PID, as perfkit sees it.
    pub pid: u32,
    /// The PID as the JVM sees it (its innermost PID namespace).
    pub nspid: u32,
    /// Its effective user.
    pub uid: u32,
    /// Whether it accepts attaching.
    pub attach: Attach,
    /// Started with `-XX:+DumpPerfMapAtExit`: it writes its perf map when
    /// it exits.
    pub dumps_map_at_exit: bool,
    /// A pidfd of the process checked: the signal goes to it, never to a
    /// process that took its PID since.
    pidfd: Arc<OwnedFd>,
}

/// Why the JVM did not give its perf map.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// Attaching is disabled or would harm the process.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The JVM did not open its attach socket in time.
    #[error("the JVM did not start its attach listener within {0:?}")]
    NoListener(Duration),
    /// The JVM has no `Compiler.perfmap` command (JDK 16 and older).
    #[error("the JVM has no Compiler.perfmap command (JDK 17 and newer have it): {0}")]
    Unsupported(String),
    /// The socket or attach file is not the JVM user's.
    #[error("{0}: not owned by the JVM's user; not used")]
    Untrusted(PathBuf),
    /// The command failed.
    #[error("Compiler.perfmap failed: {0}")]
    Failed(String),
    /// An I/O error talking to the JVM.
    #[error("attaching: {0}")]
    Io(#[from] io::Error),
}

impl Jvm {
    /// The JVM running as `pid`, or `None` when it is not one (no
    /// `libjvm.so` mapped) or is gone.
    pub fn detect(pid: u32) -> Option<Jvm> {
        // The process is held by a pidfd first; its /proc directory is
        // opened next and is the same process if the pidfd still reaches
        // a live one: every read below is of that process.
        let pidfd = pidfd_open(pid).ok()?;
        let dir = ProcDir::open(pid)?;
        if pidfd_signal(&pidfd, 0).is_err() {
            return None;
        }
        // HotSpot's code mapped executable, and its signal dispatcher
        // thread running (it is what answers SIGQUIT).
        let maps = dir.file("maps").ok()?;
        let is_jvm =
            BufReader::new(maps).lines().take(MAX_MAPS_LINES).map_while(Result::ok).any(|l| {
                l.ends_with("/libjvm.so") && l.split_whitespace().nth(1).is_some_and(|perms| perms.contains('x'))
            });
        if !is_jvm {
            return None;
        }
        let status = dir.read("status", 64 << 10).ok()?;
        let status = String::from_utf8_lossy(&status);
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let nspid = field("NSpid:").and_then(|v| v.split_whitespace().last()?.parse().ok()).unwrap_or(pid);
        let uid = field("Uid:").and_then(|v| v.split_whitespace().nth(1)?.parse().ok())?;
        // Signal 3 (SIGQUIT) is bit 2 of the caught mask.
        let catches_quit = field("SigCgt:").and_then(|v| u64::from_str_radix(v, 16).ok()).is_some_and(|m| m & 4 != 0);
        let options = options_of(&dir);
        let flag = |f: &str| options.iter().rev().find_map(|o| flag_value(o, f));
        let dumps_map_at_exit = flag("DumpPerfMapAtExit") == Some(true);
        let attach = if !catches_quit || !dir.has_thread("Signal Dispatch") {
            Attach::NoSignalHandler
        } else {
            match TmpDir::open(pid, uid).ok().and_then(|tmp| capabilities(&tmp, nspid, uid)) {
                Some(true) => Attach::Allowed,
                Some(false) => Attach::Disabled,
                None if flag("DisableAttachMechanism") == Some(true) => Attach::Disabled,
                None => Attach::Unknown,
            }
        };
        Some(Jvm { pid, nspid, uid, attach, dumps_map_at_exit, pidfd: Arc::new(pidfd) })
    }

    /// Asks the JVM to write its perf map (`/tmp/perf-NSPID.map` in its
    /// mount namespace), as `jcmd PID Compiler.perfmap` does, waiting at
    /// most `timeout` in all.
    pub fn request_perf_map(&self, timeout: Duration) -> Result<(), AttachError> {
        match self.attach {
            Attach::Disabled => {
                return Err(AttachError::NotAllowed("the JVM was started with -XX:+DisableAttachMechanism"));
            }
            Attach::NoSignalHandler => {
                return Err(AttachError::NotAllowed(
                    "the JVM does not handle SIGQUIT (-Xrs, or it is still starting): attaching would end it",
                ));
            }
            Attach::Allowed | Attach::Unknown => {}
        }
        let deadline = Instant::now() + timeout;
        let tmp = TmpDir::open(self.pid, self.uid)?;
        let socket = CString::new(format!(".java_pid{}", self.nspid)).expect("no NUL in a number");
        if !tmp.is_socket_of(&socket, self.uid)? {
            self.start_listener(&tmp, &socket, deadline)?;
        }
        // The JVM will write /tmp/perf-NSPID.map as its user: not over a
        // link or someone else's file planted there.
        let map = CString::new(format!("perf-{}.map", self.nspid)).expect("no NUL in a number");
        match fstat(tmp.fd.as_raw_fd(), Some(&map)) {
            Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != self.uid => {
                return Err(AttachError::Untrusted(tmp.shown.join(map.to_string_lossy().as_ref())));
            }
            _ => {}
        }
        // Connected through perfkit's own descriptor of the directory
        // checked above, not by a path the target could redirect; and
        // never blocking past the deadline (a listener that does not
        // accept, an answer that trickles).
        let path = format!("/proc/self/fd/{}/.java_pid{}", tmp.fd.as_raw_fd(), self.nspid);
        let stream = connect_by(&path, deadline)?;
        let (peer_pid, peer_uid) = peer_credentials(&stream)?;
        if peer_pid != self.pid || peer_uid != self.uid {
            return Err(AttachError::Untrusted(tmp.shown.join(socket.to_string_lossy().as_ref())));
        }
        // Protocol version 1, the command, and three arguments.
        send_all(&stream, b"1\0jcmd\0Compiler.perfmap\0\0\0", deadline)?;
        let answer = receive(&stream, deadline)?;
        let answer = String::from_utf8_lossy(&answer);
        let (code, text) = answer.split_once('\n').unwrap_or((&answer, ""));
        let text = text.trim();
        if text.contains("Unknown diagnostic command") || text.contains("IllegalArgumentException") {
            return Err(AttachError::Unsupported(first_line(text)));
        }
        match code.trim().parse::<i32>() {
            Ok(0) => Ok(()),
            _ => Err(AttachError::Failed(first_line(if text.is_empty() { code } else { text }))),
        }
    }

    /// Leaves the trigger file and sends SIGQUIT, then waits for the
    /// socket; the trigger file is removed whatever happens.
    fn start_listener(&self, tmp: &TmpDir, socket: &CString, deadline: Instant) -> Result<(), AttachError> {
        let name = CString::new(format!(".attach_pid{}", self.nspid)).expect("no NUL in a number");
        let Some(_trigger) = Trigger::create(tmp, &name, self.uid) else {
            return Err(AttachError::Failed("could not leave the attach file in the JVM's /tmp".into()));
        };
        pidfd_signal(&self.pidfd, libc::SIGQUIT)?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if tmp.is_socket_of(socket, self.uid)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AttachError::NoListener(started.elapsed()));
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

/// The JVM's `/tmp` (HotSpot's temporary directory on Linux), opened
/// through its root without following a link at `tmp`, and accepted only
/// when it is root's sticky directory or the JVM user's own.
struct TmpDir {
    fd: OwnedFd,
    shown: PathBuf,
}

impl TmpDir {
    fn open(pid: u32, uid: u32) -> Result<TmpDir, AttachError> {
        let shown = PathBuf::from(format!("/proc/{pid}/root/tmp"));
        let root = CString::new(format!("/proc/{pid}/root")).expect("no NUL in a number");
        // SAFETY: a NUL-terminated path and flags.
        let root = unsafe { libc::open(root.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if root < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: `root` was just opened and is owned here.
        let root = unsafe { OwnedFd::from_raw_fd(root) };
        // SAFETY: a directory descriptor, a NUL-terminated name and flags.
        let fd = unsafe {
            libc::openat(
                root.as_raw_fd(),
                c"tmp".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(AttachError::Untrusted(shown));
        }
        // SAFETY: `fd` was just opened and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let meta = fstat(fd.as_raw_fd(), None)?;
        let sticky_roots = meta.st_uid == 0 && meta.st_mode & libc::S_ISVTX != 0;
        if !(sticky_roots || meta.st_uid == uid) {
            return Err(AttachError::Untrusted(shown));
        }
        Ok(TmpDir { fd, shown })
    }

    /// Whether `name` is a socket owned by `uid` (a socket of anybody else
    /// is refused, not used).
    fn is_socket_of(&self, name: &CString, uid: u32) -> Result<bool, AttachError> {
        match fstat(self.fd.as_raw_fd(), Some(name)) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFSOCK && st.st_uid == uid => Ok(true),
            Ok(_) => Err(AttachError::Untrusted(self.shown.join(name.to_string_lossy().as_ref()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// `fstat` of a descriptor, or `fstatat` of a name in it (not following a
/// link).
fn fstat(fd: i32, name: Option<&CString>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data the call fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let (path, flags) = match name {
        Some(n) => (n.as_ptr(), libc::AT_SYMLINK_NOFOLLOW),
        None => (c"".as_ptr(), libc::AT_EMPTY_PATH),
    };
    // SAFETY: a descriptor, a NUL-terminated name, a valid stat pointer.
    if unsafe { libc::fstatat(fd, path, &mut st, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(200).collect()
}

/// The `.attach_pidN` file, created new (never through a link, never an
/// existing file) in a directory opened without following a link at its
/// last component, and removed on drop.
struct Trigger {
    dir: OwnedFd,
    name: CString,
    /// The file's (device, inode): only that file is removed.
    identity: (u64, u64),
}

impl Trigger {
    fn create(tmp: &TmpDir, name: &CString, uid: u32) -> Option<Trigger> {
        // SAFETY: duplicating an open descriptor.
        let dir = unsafe { libc::fcntl(tmp.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dir < 0 {
            return None;
        }
        // SAFETY: `dir` was just created and is owned here.
        let dir = unsafe { OwnedFd::from_raw_fd(dir) };
        // SAFETY: a directory descriptor, a NUL-terminated name, flags and
        // a mode.
        let file = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            )
        };
        if file < 0 {
            return None;
        }
        // SAFETY: `file` was just opened and is owned here.
        let file = unsafe { OwnedFd::from_raw_fd(file) };
        // The JVM accepts a trigger of its own user or root's; give it to
        // its user, as jcmd's would be.
        // SAFETY: an open descriptor and ids.
        let _ = unsafe { libc::fchown(file.as_raw_fd(), uid, u32::MAX) };
        let st = fstat(file.as_raw_fd(), None).ok()?;
        Some(Trigger { dir, name: name.clone(), identity: (st.st_dev, st.st_ino) })
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        // Only if it is still the file created (in a sticky directory,
        // another may have taken the name since).
        if fstat(self.dir.as_raw_fd(), Some(&self.name)).is_ok_and(|st| (st.st_dev, st.st_ino) == self.identity) {
            // SAFETY: the directory descriptor and the name created in it.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
        }
    }
}

/// The JVM options a process was started with: its command line and the
/// environment variables the launcher reads.
fn options_of(dir: &ProcDir) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(cmdline) = dir.read("cmdline", 1 << 20) {
        out.extend(cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()));
    }
    if let Ok(env) = dir.read("environ", 1 << 20) {
        for var in env.split(|&b| b == 0) {
            let var = String::from_utf8_lossy(var);
            for name in ["JAVA_TOOL_OPTIONS=", "JDK_JAVA_OPTIONS=", "_JAVA_OPTIONS="] {
                if let Some(v) = var.strip_prefix(name) {
                    out.extend(v.split_whitespace().map(str::to_owned));
                }
            }
        }
    }
    out
}

/// `Some(true)` for `-XX:+FLAG`, `Some(false)` for `-XX:-FLAG`.
fn flag_value(option: &str, flag: &str) -> Option<bool> {
    let rest = option.strip_prefix("-XX:")?;
    match rest.strip_prefix('+').or(rest.strip_prefix('-')) {
        Some(name) if name == flag => Some(rest.starts_with('+')),
        _ => None,
    }
}

/// Whether the JVM's performance data (`/tmp/hsperfdata_USER/NSPID`) says
/// it accepts attaching (`sun.rt.jvmCapabilities` starts with `1`); `None`
/// without performance data. Each step is opened from the checked `/tmp`
/// without following a link; the first regular file of the JVM's user
/// decides.
fn capabilities(tmp: &TmpDir, nspid: u32, uid: u32) -> Option<bool> {
    let dirs = fs::read_dir(format!("/proc/self/fd/{}", tmp.fd.as_raw_fd())).ok()?;
    let name = CString::new(nspid.to_string()).expect("no NUL in a number");
    let candidates = dirs
        .take(10_000)
        .map_while(Result::ok)
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(b"hsperfdata_"))
        .take(64);
    for entry in candidates {
        let Ok(dir_name) = CString::new(entry.file_name().as_encoded_bytes()) else { continue };
        let Some(dir) = open_at(tmp.fd.as_raw_fd(), &dir_name, libc::O_RDONLY | libc::O_DIRECTORY) else {
            continue;
        };
        let Some(file) = open_at(dir.as_raw_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY) else {
            continue;
        };
        let file = File::from(file);
        let Ok(meta) = file.metadata() else { continue };
        if !meta.file_type().is_file() || meta.uid() != uid {
            continue;
        }
        let mut data = Vec::new();
        if file.take(MAX_PERFDATA).read_to_end(&mut data).is_err() {
            return None;
        }
        return perfdata_string(&data, "sun.rt.jvmCapabilities").map(|caps| caps.starts_with('1'));
    }
    None
}

/// `openat` of a name in a directory, never through a link at the name.
fn open_at(dir: i32, name: &CString, flags: i32) -> Option<OwnedFd> {
    // SAFETY: a directory descriptor, a NUL-terminated name and flags.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    // SAFETY: a descriptor just opened, owned here.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A process's `/proc/PID` directory, held open: what is read through it
/// is that process's, even if the PID is taken by another later.
struct ProcDir {
    fd: OwnedFd,
}

impl ProcDir {
    fn open(pid: u32) -> Option<ProcDir> {
        let path = CString::new(format!("/proc/{pid}")).expect("no NUL in a number");
        // SAFETY: a NUL-terminated path and flags.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        // SAFETY: a descriptor just opened, owned here.
        (fd >= 0).then(|| ProcDir { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn path(&self, name: &str) -> String {
        format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd())
    }

    fn file(&self, name: &str) -> io::Result<File> {
        File::open(self.path(name))
    }

    fn read(&self, name: &str, max: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.file(name)?.take(max).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Whether one of the process's threads (at most 4096 looked at) has
    /// this name.
    fn has_thread(&self, comm: &str) -> bool {
        let Ok(tasks) = fs::read_dir(self.path("task")) else { return false };
        tasks.take(4096).map_while(Result::ok).any(|t| {
            let name = format!("task/{}/comm", t.file_name().to_string_lossy());
            self.read(&name, 64).is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == comm.as_bytes())
        })
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: the pidfd_open system call with a PID and no flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `signal` (0: only checks that the process lives) through a pidfd.
fn pidfd_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: the pidfd_send_signal system call with a pidfd, a signal, no
    // siginfo and no flags.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Connects to a UNIX socket without blocking: a listener whose queue is
/// full is tried again until the deadline.
fn connect_by(path: &str, deadline: Instant) -> Result<UnixStream, AttachError> {
    // SAFETY: creating a socket.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: a socket just created, owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err(AttachError::Failed("attach socket path too long".into()));
    }
    for (d, b) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *d = b as libc::c_char;
    }
    loop {
        // SAFETY: a socket, an initialized address and its size.
        let rc = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(UnixStream::from(sock));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) | Some(libc::EINTR) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) => return Err(AttachError::NoListener(Duration::ZERO)),
            _ => return Err(e.into()),
        }
    }
}

/// The connected peer's PID (in perfkit's namespace) and user.
fn peer_credentials(stream: &UnixStream) -> io::Result<(u32, u32)> {
    // SAFETY: ucred is plain data that getsockopt fills in.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a socket, a valid out pointer and its size.
    let rc = unsafe {
        libc::getsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid as u32, cred.uid))
}

/// Waits until the socket is ready for `events` or the deadline passes.
fn ready(stream: &UnixStream, events: i16, deadline: Instant) -> Result<(), AttachError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(AttachError::Failed("the JVM did not answer in time".into()));
    }
    let mut p = libc::pollfd { fd: stream.as_raw_fd(), events, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
    if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

fn send_all(stream: &UnixStream, mut bytes: &[u8], deadline: Instant) -> Result<(), AttachError> {
    let mut s = stream;
    while !bytes.is_empty() {
        ready(stream, libc::POLLOUT, deadline)?;
        match s.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The answer, at most [`MAX_ANSWER`] bytes, all of it by the deadline.
fn receive(stream: &UnixStream, deadline: Instant) -> Result<Vec<u8>, AttachError> {
    let mut s = stream;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while (out.len() as u64) < MAX_ANSWER {
        ready(stream, libc::POLLIN, deadline)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n.min(MAX_ANSWER as usize - out.len())]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A string counter of HotSpot's performance data (the `hsperfdata`
/// format: a header, then entries of a length, a name offset, a vector
/// length, a type, flags, units, variability and a data offset, each
/// offset from the entry's start).
fn perfdata_string(data: &[u8], wanted: &str) -> Option<String> {
    let u32_at = |at: usize, big: bool| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    };
    if data.get(0..4)? != [0xca, 0xfe, 0xc0, 0xc0] {
        return None;
    }
    let big = *data.get(4)? == 0;
    let (entry_offset, entries) = (u32_at(24, big)? as usize, u32_at(28, big)? as usize);
    let mut at = entry_offset;
    for _ in 0..entries.min(1 << 16) {
        let len = u32_at(at, big)? as usize;
        let name_at = at.checked_add(u32_at(at + 4, big)? as usize)?;
        let vector = u32_at(at + 8, big)? as usize;
        let kind = *data.get(at + 12)?;
        let value_at = at.checked_add(u32_at(at + 16, big)? as usize)?;
        // A name is short: never a search through the rest of the file.
        let name_end = name_at + data.get(name_at..)?.iter().take(256).position(|&b| b == 0)?;
        if &data[name_at..name_end] == wanted.as_bytes() && kind == b'B' {
            let value = data.get(value_at..value_at.checked_add(vector)?)?;
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        if len == 0 {
            return None;
        }
        at = at.checked_add(len)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str) -> Vec<u8> {
        let mut name_bytes = name.as_bytes().to_vec();
        name_bytes.push(0);
        let data_at = 20 + name_bytes.len();
        let len = data_at + value.len() + 1;
        let mut e = Vec::new();
        for v in [len as u32, 20, value.len() as u32 + 1] {
            e.extend(v.to_le_bytes());
        }
        e.extend([b'B', 0, 5, 3]);
        e.extend((data_at as u32).to_le_bytes());
        e.extend(name_bytes);
        e.extend(value.as_bytes());
        e.push(0);
        e
    }

    fn perfdata(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut d = vec![0xca, 0xfe, 0xc0, 0xc0, 1, 2, 0, 1];
        d.resize(24, 0);
        d.extend(32u32.to_le_bytes());
        d.extend((entries.len() as u32).to_le_bytes());
        for (n, v) in entries {
            d.extend(entry(n, v));
        }
        d
    }

    #[test]
    fn reads_capabilities_from_performance_data() {
        let d = perfdata(&[("java.property.java.version", "17"), ("sun.rt.jvmCapabilities", "1000000000")]);
        assert_eq!(perfdata_string(&d, "sun.rt.jvmCapabilities").as_deref(), Some("1000000000"));
        assert_eq!(perfdata_string(&d, "nothing"), None);
    }

    #[test]
    fn hostile_performance_data_is_refused_not_followed() {
        let mut d = perfdata(&[("sun.rt.jvmCapabilities", "1")]);
        // An entry length of zero, offsets past the end, truncation.
        d[32..36].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(perfdata_string(&d, "x"), None);
        let mut d = perfdata(&[("sun.rt.jvmCapabilities", "1")]);
        d[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(perfdata_string(&d, "sun.rt.jvmCapabilities"), None);
        for cut in 0..d.len() {
            let _ = perfdata_string(&d[..cut], "sun.rt.jvmCapabilities");
        }
    }

    #[test]
    fn flags_on_and_off() {
        assert_eq!(flag_value("-XX:+DisableAttachMechanism", "DisableAttachMechanism"), Some(true));
        assert_eq!(flag_value("-XX:-DisableAttachMechanism", "DisableAttachMechanism"), Some(false));
        assert_eq!(flag_value("-XX:+DisableAttachMechanismX", "DisableAttachMechanism"), None);
        assert_eq!(flag_value("-Xrs", "DisableAttachMechanism"), None);
    }

    #[test]
    fn a_process_without_libjvm_is_not_a_jvm() {
        assert!(Jvm::detect(std::process::id()).is_none());
    }
}
