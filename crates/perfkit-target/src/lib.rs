//! The process perfkit observes.
//!
//! - [`ProcessInfo::read`] checks that a PID exists and reads its name and
//!   command line.
//! - [`HeldCommand::spawn`] forks a command but holds it before `exec`, so a
//!   profiler can attach to its PID before the command runs a single
//!   instruction; [`HeldCommand::release`] lets it run.
//! - [`ExitWatch`] is a pidfd that becomes readable when a process exits,
//!   for any process, not only children.
//! - [`family`] finds a process's descendants (`pgrep -P`, recursively)
//!   and the CPU time processes used.
//! - [`files`] opens the files a target maps, safely (it may be hostile);
//!   [`maps`] tracks a process's executable mappings while it runs.

pub mod cgroup;
pub mod family;
pub mod files;
pub mod jvm;
pub mod maps;
pub mod notices;

pub use cgroup::Cgroup;
pub use files::{ModuleFile, OpenError};
pub use maps::{InlinedAt, Mapping, MapsError, MapsTracker, Modules, own_vdso, parse_maps};

use std::{
    ffi::{CString, OsStr, OsString},
    fs, io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

/// Why a target could not be found, started or watched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// No process has this PID.
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    /// No thread has this TID.
    #[error("no thread with TID {0}")]
    NoSuchThread(u32),
    /// No cgroup v2 group at this path.
    #[error(
        "no cgroup v2 group {0:?} (give a directory of the cgroup v2 file system, or a path below its root as /proc/PID/cgroup shows it)"
    )]
    NoSuchCgroup(std::path::PathBuf),
    /// The cgroup v2 file system is not mounted.
    #[error("the cgroup v2 file system is not mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")]
    NoCgroup2,
    /// The PID is not a positive number.
    #[error("invalid PID {0:?}: expected a positive number")]
    InvalidPid(String),
    /// The command could not be executed.
    #[error("cannot run {program:?}")]
    Exec {
        /// Program name as given.
        program: OsString,
        /// Why `exec` failed.
        #[source]
        source: io::Error,
    },
    /// The command is empty.
    #[error("no command given")]
    EmptyCommand,
    /// A system call failed.
    #[error("{call} failed")]
    Sys {
        /// The call, for example `fork`.
        call: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl TargetError {
    /// For a command that could not be executed: the program, why, and
    /// the status a shell gives it (127 for a program not found, 126 for
    /// one that cannot run). `None` for other errors.
    pub fn exec_failure(&self) -> Option<(&OsStr, &io::Error, u8)> {
        let TargetError::Exec { program, source } = self else { return None };
        let code = if source.kind() == io::ErrorKind::NotFound { 127 } else { 126 };
        Some((program, source, code))
    }
}

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> TargetError {
    move |source| TargetError::Sys { call, source }
}

/// Name and command line of a live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Main thread name (`/proc/PID/comm`).
    pub comm: String,
    /// Arguments (`/proc/PID/cmdline`); empty for kernel threads.
    pub cmdline: Vec<String>,
}

impl ProcessInfo {
    /// Reads the process's details, failing with
    /// [`TargetError::NoSuchProcess`] if it does not exist.
    pub fn read(pid: u32) -> Result<Self, TargetError> {
        Self::read_from(Path::new("/proc"), pid)
    }

    /// As [`read`](Self::read), with procfs mounted at `proc_root`.
    pub fn read_from(proc_root: &Path, pid: u32) -> Result<Self, TargetError> {
        if pid == 0 {
            return Err(TargetError::InvalidPid("0".into()));
        }
        let dir = proc_root.join(pid.to_string());
        let read = |name: &str| fs::read(dir.join(name));
        let comm = match read("comm") {
            Ok(c) => escape(c.strip_suffix(b"\n").unwrap_or(&c)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TargetError::NoSuchProcess(pid)),
            Err(e) => return Err(sys("reading /proc/PID/comm")(e)),
        };
        // A process can exit between the two reads: that is the same as not
        // existing.
        let cmdline = read("cmdline").map_err(|_| TargetError::NoSuchProcess(pid))?;
        Ok(Self { pid, comm, cmdline: split_cmdline(&cmdline) })
    }

    /// The command line joined with spaces, or `[comm]` when it is empty.
    pub fn display_command(&self) -> String {
        if self.cmdline.is_empty() { format!("[{}]", self.comm) } else { self.cmdline.join(" ") }
    }
}

/// Parses a PID as given on a command line.
pub fn parse_pid(s: &str) -> Result<u32, TargetError> {
    match s.trim().parse::<u32>() {
        Ok(pid) if pid > 0 && pid <= i32::MAX as u32 => Ok(pid),
        _ => Err(TargetError::InvalidPid(s.to_owned())),
    }
}

fn split_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(escape).collect()
}

/// Process names and arguments are bytes: invalid UTF-8 is shown escaped
/// (`\xff`), never dropped.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The process (thread group) a thread belongs to; `None` when there is no
/// such thread.
pub fn process_of_thread(tid: u32) -> Option<u32> {
    let status = fs::read(format!("/proc/{tid}/status")).ok()?;
    let status = String::from_utf8_lossy(&status);
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// Parses a comma-separated list of PIDs (or TIDs), as `-p 1,2,3`.
pub fn parse_pid_list(s: &str) -> Result<Vec<u32>, TargetError> {
    let mut out: Vec<u32> = s.split(',').filter(|p| !p.trim().is_empty()).map(parse_pid).collect::<Result<_, _>>()?;
    if out.is_empty() {
        return Err(TargetError::InvalidPid(s.to_owned()));
    }
    out.dedup();
    Ok(out)
}

/// A comma-separated list of process or thread ids (`-p 1,2,3`), parsed
/// by [`parse_pid_list`]: what command-line flags hold, so that one flag
/// value is one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidList(pub Vec<u32>);

impl std::str::FromStr for PidList {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, TargetError> {
        parse_pid_list(s).map(PidList)
    }
}

/// A forked child that has not yet executed its command.
///
/// Dropping a `HeldCommand` that was never released kills the child.
#[derive(Debug)]
pub struct HeldCommand {
    pid: u32,
    program: OsString,
    /// Writing a byte (or closing it) lets the child `exec`.
    go: Option<OwnedFd>,
    /// Close-on-exec: reads EOF once `exec` succeeded, or the child's errno.
    exec_status: Option<OwnedFd>,
    reaped: bool,
}

/// The kernel's `struct sigaction` on x86-64 and aarch64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// The signals perfkit ignores (and a forked child would inherit
/// ignored), read with the raw system call: glibc's `sigaction` refuses the
/// real-time signals it keeps for itself, which a parent may have left
/// ignored too.
fn ignored_signals() -> Vec<i32> {
    (1..=64)
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| {
            let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
            // SAFETY: rt_sigaction with a NULL new action only reads the
            // old one.
            let got =
                unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, std::ptr::null::<KernelSigaction>(), &mut old, 8) };
            got == 0 && old.handler == libc::SIG_IGN
        })
        .collect()
}

/// Sets these signals back to their default action (async-signal-safe: it
/// runs in the forked child).
///
/// # Safety
/// Changes the calling process's signal dispositions.
unsafe fn reset_signals(signals: &[i32]) {
    let default = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for &sig in signals {
        // SAFETY: setting the default action of a signal, as exec would for
        // a caught one.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, &default, std::ptr::null_mut::<KernelSigaction>(), 8) };
    }
}

/// The file `execvp` would run for `program`: itself when it names a path
/// (holds a `/`), else the first regular file in `PATH` (or, without
/// `PATH`, `/bin:/usr/bin`, as glibc) that this process may execute.
/// Searched before the fork, so that the held command's one exec is the
/// command's: a search in the child would show every miss to exec tracers
/// (execsnoop), and to the tracer's own filter. `None` when nothing is
/// found (the child's `execvp` then reports the error).
fn resolve_program(program: &OsStr, path_var: Option<&OsStr>) -> Option<std::path::PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(program.into());
    }
    let dirs = path_var.unwrap_or(OsStr::new("/bin:/usr/bin"));
    dirs.as_bytes().split(|&b| b == b':').find_map(|dir| {
        // An empty entry is the current directory, as for execvp.
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(program);
        let meta = fs::metadata(&candidate).ok()?;
        let c = CString::new(candidate.as_os_str().as_bytes()).ok()?;
        // SAFETY: access(2) on a NUL-terminated path.
        (meta.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0).then_some(candidate)
    })
}

impl HeldCommand {
    /// Forks `program` with `args`, holding it before `exec`. The program is
    /// looked up in `PATH` as a shell would, before the fork (the command's
    /// only exec is of the file found). It runs in a process group of
    /// its own, so that [`terminate`](Self::terminate) reaches everything it
    /// starts.
    pub fn spawn<S: AsRef<OsStr>>(program: S, args: &[S]) -> Result<Self, TargetError> {
        Self::spawn_with(program, args, false)
    }

    /// As [`spawn`](Self::spawn); with `stdout_to_stderr`, the command's
    /// standard output goes to standard error (when perfkit writes its own
    /// output to standard output).
    pub fn spawn_with<S: AsRef<OsStr>>(program: S, args: &[S], stdout_to_stderr: bool) -> Result<Self, TargetError> {
        let program = program.as_ref().to_owned();
        if program.is_empty() {
            return Err(TargetError::EmptyCommand);
        }
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| TargetError::Exec {
                program: program.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"),
            })
        };
        let file = cstr(&program)?;
        let resolved = match resolve_program(&program, std::env::var_os("PATH").as_deref()) {
            Some(p) => Some(cstr(p.as_os_str())?),
            None => None,
        };
        let mut argv = vec![file.clone()];
        for arg in args {
            argv.push(cstr(arg.as_ref())?);
        }
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        // The name the command will have after exec (its file name, cut to
        // 15 bytes as the kernel does), so that samples of the held child and
        // of the exec itself carry the command's name, not perfkit's.
        let base = program.as_bytes().rsplit(|&b| b == b'/').next().unwrap_or(b"");
        let mut comm = [0u8; 16];
        let n = base.len().min(15);
        comm[..n].copy_from_slice(&base[..n]);

        // Found before the fork: the child only resets them.
        let ignored = ignored_signals();
        let (go_read, go_write) = pipe().map_err(sys("pipe"))?;
        let (status_read, status_write) = pipe().map_err(sys("pipe"))?;

        // SAFETY: the child only makes async-signal-safe calls (setpgid,
        // signal, sigprocmask, prctl, read, write, execv, execvp, _exit) on memory
        // prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EAGAIN) {
                // Out of processes: say which limit.
                let e = io::Error::new(e.kind(), format!("{e}; raise the process limit (`ulimit -u`, RLIMIT_NPROC)"));
                return Err(sys("fork")(e));
            }
            return Err(sys("fork")(e));
        }
        if pid == 0 {
            // Child.
            // SAFETY: the fds are valid in the child; argv_ptrs is a
            // NULL-terminated array of pointers into `argv`, alive until exec.
            unsafe {
                libc::close(go_write.as_raw_fd());
                libc::close(status_read.as_raw_fd());
                libc::setpgid(0, 0);
                // The command starts as from a shell: no signal ignored
                // (Rust ignores SIGPIPE in perfkit, and an ignored signal
                // stays ignored across exec: `yes | head -1` would print
                // "Broken pipe"), and none blocked.
                libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0);
                if stdout_to_stderr {
                    libc::dup2(2, 1);
                }
                let mut byte = 0u8;
                let n = libc::read(go_read.as_raw_fd(), (&raw mut byte).cast(), 1);
                if n != 1 {
                    // The parent went away or gave up: do not run the command.
                    libc::_exit(127);
                }
                // After the release, as part of starting the command (the
                // profile's clock has started).
                reset_signals(&ignored);
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                match &resolved {
                    // The file found before the fork; a script without a
                    // `#!` line still goes to execvp's shell fallback.
                    Some(path) => {
                        libc::execv(path.as_ptr(), argv_ptrs.as_ptr());
                        if *libc::__errno_location() == libc::ENOEXEC {
                            libc::execvp(path.as_ptr(), argv_ptrs.as_ptr());
                        }
                    }
                    None => {
                        libc::execvp(file.as_ptr(), argv_ptrs.as_ptr());
                    }
                }
                let errno = *libc::__errno_location();
                let bytes = errno.to_ne_bytes();
                libc::write(status_write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        drop(go_read);
        drop(status_write);
        // Also here, so that the group exists whichever process runs first.
        // SAFETY: setting our own child's process group.
        unsafe { libc::setpgid(pid, pid) };
        Ok(Self { pid: pid as u32, program, go: Some(go_write), exec_status: Some(status_read), reaped: false })
    }

    /// The child's PID, valid before and after `exec`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the child `exec` its command, and waits until it has, reporting
    /// a failed `exec` (command not found, not executable) as an error.
    pub fn release(&mut self) -> Result<(), TargetError> {
        let Some(go) = self.go.take() else { return Ok(()) };
        let one = [1u8];
        // SAFETY: `go` is an open pipe write end; the buffer is one byte.
        let n = unsafe { libc::write(go.as_raw_fd(), one.as_ptr().cast(), 1) };
        if n != 1 {
            return Err(sys("write")(io::Error::last_os_error()));
        }
        drop(go);
        let status = self.exec_status.take().expect("exec status pipe is read once");
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < buf.len() {
            // SAFETY: reading into the unread tail of `buf`.
            let n = unsafe { libc::read(status.as_raw_fd(), buf[got..].as_mut_ptr().cast(), buf.len() - got) };
            match n {
                0 => break,
                n if n > 0 => got += n as usize,
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
                _ => return Err(sys("read")(io::Error::last_os_error())),
            }
        }
        if got == 0 {
            return Ok(());
        }
        let errno = i32::from_ne_bytes(buf);
        let _ = self.wait();
        Err(TargetError::Exec { program: self.program.clone(), source: io::Error::from_raw_os_error(errno) })
    }

    /// Waits for the child to exit and returns its status. Call it once the
    /// child is known to have exited (see [`ExitWatch`]) or to block until it
    /// does.
    pub fn wait(&mut self) -> Result<ExitStatus, TargetError> {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child; `status` is a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
            if r >= 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(sys("waitpid")(err));
            }
        }
        self.reaped = true;
        Ok(ExitStatus::from_wait_status(status))
    }
}

impl HeldCommand {
    /// The exit status, if the child has exited; does not block.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, TargetError> {
        if self.reaped {
            return Ok(None);
        }
        let mut status = 0;
        // SAFETY: polling our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        match r {
            0 => Ok(None),
            r if r > 0 => {
                self.reaped = true;
                Ok(Some(ExitStatus::from_wait_status(status)))
            }
            _ => Err(sys("waitpid")(io::Error::last_os_error())),
        }
    }

    /// Ends the command and what it started (its process group): SIGTERM,
    /// then SIGKILL once `grace` has passed. Returns its exit status.
    pub fn terminate(&mut self, grace: std::time::Duration) -> Result<ExitStatus, TargetError> {
        if let Some(s) = self.try_wait()? {
            self.kill_group(libc::SIGKILL);
            return Ok(s);
        }
        self.kill_group(libc::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.try_wait()? {
                // Whatever it left behind in its group goes too.
                self.kill_group(libc::SIGKILL);
                return Ok(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.kill_group(libc::SIGKILL);
        self.wait()
    }

    fn kill_group(&self, signal: i32) {
        // SAFETY: signalling the process group we created for our child;
        // the group id cannot be reused while the child is unreaped, and
        // once it is reaped the group's other members keep the id alive.
        unsafe { libc::kill(-(self.pid as i32), signal) };
    }
}

impl Drop for HeldCommand {
    fn drop(&mut self) {
        if self.go.is_some() && !self.reaped {
            // Never released: the command must not run. Closing the pipe makes
            // the child exit without exec; reap it.
            self.go = None;
            let _ = self.wait();
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The status a shell would report: the exit code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Code(c) => c,
            Self::Signal(s) => 128 + s,
        }
    }

    fn from_wait_status(status: i32) -> Self {
        if libc::WIFSIGNALED(status) {
            Self::Signal(libc::WTERMSIG(status))
        } else {
            Self::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether process (or thread) `pid` is gone, read from `/proc` when no
/// pidfd can be had: no `/proc/PID`, or a zombie (exited, not yet reaped:
/// still listed, but done).
pub fn has_exited(pid: u32) -> bool {
    match fs::read(format!("/proc/{pid}/stat")) {
        // The state follows the command, which is in parentheses and may
        // hold any byte: look after the last ')'.
        Ok(stat) => match stat.iter().rposition(|&b| b == b')') {
            Some(i) => matches!(stat.get(i + 2), Some(b'Z' | b'X' | b'x')),
            None => false,
        },
        Err(_) => true,
    }
}

/// A pidfd: readable once the process has exited. Works for any process
/// (Linux 5.3 and later), so a profiler notices its target's exit without
/// polling `/proc`.
#[derive(Debug)]
pub struct ExitWatch {
    fd: OwnedFd,
}

impl ExitWatch {
    /// Opens a pidfd for `pid`.
    pub fn new(pid: u32) -> Result<Self, TargetError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0 as libc::c_uint) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::ESRCH) {
                TargetError::NoSuchProcess(pid)
            } else {
                sys("pidfd_open")(err)
            });
        }
        // SAFETY: the syscall returned a new fd that nothing else owns.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) } })
    }

    /// Whether the process has exited, without blocking.
    pub fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, zero timeout.
        let r = unsafe { libc::poll(&mut pfd, 1, 0) };
        r > 0 && pfd.revents & libc::POLLIN != 0
    }
}

impl AsFd for ExitWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for ExitWatch {
    fn as_raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_exec_failure_has_a_shell_status() {
        let exec = |kind: std::io::ErrorKind| super::TargetError::Exec {
            program: "no\x1bsuch".into(),
            source: std::io::Error::new(kind, "not here"),
        };
        let e = exec(std::io::ErrorKind::NotFound);
        let (program, source, code) = e.exec_failure().unwrap();
        assert_eq!((program.to_str(), source.to_string().as_str(), code), (Some("no\x1bsuch"), "not here", 127));
        assert_eq!(exec(std::io::ErrorKind::PermissionDenied).exec_failure().map(|(.., c)| c), Some(126));
        assert!(super::TargetError::NoSuchProcess(1).exec_failure().is_none());
    }

    #[test]
    fn programs_are_found_in_path_before_the_fork() {
        let dir = tempfile_dir();
        let exe = dir.join("perfkit-resolve-me");
        fs::write(&exe, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let plain = dir.join("not-executable");
        fs::write(&plain, "").unwrap();
        let path = format!("/nonexistent:{}", dir.display());
        assert_eq!(super::resolve_program(OsStr::new("perfkit-resolve-me"), Some(OsStr::new(&path))), Some(exe));
        assert_eq!(super::resolve_program(OsStr::new("not-executable"), Some(OsStr::new(&path))), None);
        // A directory of that name is not a program.
        fs::create_dir(dir.join("sub")).unwrap();
        assert_eq!(super::resolve_program(OsStr::new("sub"), Some(OsStr::new(&path))), None);
        // A path is taken as given.
        assert_eq!(super::resolve_program(OsStr::new("./x"), None), Some("./x".into()));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("perfkit-target-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        d
    }

    use super::*;

    #[test]
    fn a_zombie_has_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !has_exited(pid) {
            assert!(std::time::Instant::now() < deadline, "a zombie taken for alive");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "still a zombie");
        child.wait().unwrap();
        assert!(!has_exited(std::process::id()));
    }

    #[test]
    fn parses_pids() {
        assert_eq!(parse_pid("42").unwrap(), 42);
        assert!(matches!(parse_pid("0"), Err(TargetError::InvalidPid(_))));
        assert!(matches!(parse_pid("-3"), Err(TargetError::InvalidPid(_))));
        assert!(matches!(parse_pid("abc"), Err(TargetError::InvalidPid(_))));
        assert!(matches!(parse_pid(""), Err(TargetError::InvalidPid(_))));
    }

    #[test]
    fn reads_info_from_a_fake_proc() {
        let dir = std::env::temp_dir().join(format!("perfkit-target-{}", std::process::id()));
        fs::create_dir_all(dir.join("77")).unwrap();
        fs::write(dir.join("77/comm"), "worker\n").unwrap();
        fs::write(dir.join("77/cmdline"), b"/bin/worker\0--fast\0").unwrap();
        let info = ProcessInfo::read_from(&dir, 77).unwrap();
        assert_eq!(info.comm, "worker");
        assert_eq!(info.display_command(), "/bin/worker --fast");
        assert!(matches!(ProcessInfo::read_from(&dir, 78), Err(TargetError::NoSuchProcess(78))));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn held_command_runs_only_after_release() {
        let marker = std::env::temp_dir().join(format!("perfkit-held-{}", std::process::id()));
        let _ = fs::remove_file(&marker);
        let script = format!("touch {}", marker.display());
        let mut cmd = HeldCommand::spawn("sh", &["-c", script.as_str()]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!marker.exists(), "the command ran before release");
        let watch = ExitWatch::new(cmd.pid()).unwrap();
        assert!(!watch.has_exited());
        cmd.release().unwrap();
        assert_eq!(cmd.wait().unwrap(), ExitStatus::Code(0));
        assert!(marker.exists());
        fs::remove_file(&marker).unwrap();
    }

    #[test]
    fn terminate_ends_a_command_that_ignores_sigterm_and_its_children() {
        let marker = std::env::temp_dir().join(format!("perfkit-term-{}", std::process::id()));
        let script = format!("trap '' TERM; (trap '' TERM; sleep 30; touch {}) & sleep 30", marker.display());
        let mut cmd = HeldCommand::spawn("sh", &["-c", script.as_str()]).unwrap();
        cmd.release().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let started = std::time::Instant::now();
        let status = cmd.terminate(std::time::Duration::from_millis(300)).unwrap();
        assert_eq!(status, ExitStatus::Signal(libc::SIGKILL));
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        // The background child is gone too (at most a zombie waiting for
        // its new parent): its group was killed.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let pgrp = cmd.pid().to_string();
        let survivors: Vec<String> = fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let after = stat.rsplit_once(") ").map_or("", |(_, a)| a);
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields.len() > 2 && fields[2] == pgrp && fields[0] != "Z"
            })
            .collect();
        assert!(survivors.is_empty(), "members of the command's process group survived: {survivors:?}");
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
    }

    #[test]
    fn parses_pid_lists() {
        assert_eq!(parse_pid_list("1,2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_pid_list("1,x").is_err());
        assert!(parse_pid_list(",").is_err());
        assert_eq!(process_of_thread(std::process::id()), Some(std::process::id()));
    }

    #[test]
    fn exec_failure_is_reported_on_release() {
        let mut cmd = HeldCommand::spawn("/nonexistent/perfkit-no-such-command", &[]).unwrap();
        let err = cmd.release().unwrap_err();
        assert!(matches!(&err, TargetError::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound), "{err}");
    }

    #[test]
    fn unreleased_command_never_runs() {
        let marker = std::env::temp_dir().join(format!("perfkit-dropped-{}", std::process::id()));
        let script = format!("touch {}", marker.display());
        let cmd = HeldCommand::spawn("sh", &["-c", script.as_str()]).unwrap();
        drop(cmd);
        assert!(!marker.exists());
    }

    #[test]
    fn exit_watch_sees_a_child_exit() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let watch = ExitWatch::new(child.id()).unwrap();
        child.wait().unwrap();
        assert!(watch.has_exited());
        assert!(matches!(ExitWatch::new(i32::MAX as u32 - 1), Err(TargetError::NoSuchProcess(_))));
    }
}
