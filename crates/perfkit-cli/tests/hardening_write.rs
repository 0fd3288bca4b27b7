//! Issue 17, "one way to write a file" and "signals, limits and streams":
//! a local user (`pk-hwrite`, made here) plants directory links, files and
//! FIFOs where root's perfkit writes; signals arrive during startup; the
//! descriptor and process limits are tiny; standard error and output are
//! closed. Each case failed before the safe writer.

use std::{
    ffi::OsString,
    fs,
    io::Read,
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::{
            fs::{MetadataExt, PermissionsExt},
            process::ExitStatusExt,
        },
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

const USER: &str = "pk-hwrite";

/// The test's unprivileged user (made once; reused if it exists): its uid.
fn mallory() -> u32 {
    let id = |u: &str| Command::new("id").args(["-u", u]).output().unwrap();
    let mut out = id(USER);
    if !out.status.success() {
        let made = Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", USER]).status().unwrap();
        out = id(USER);
        assert!(out.status.success(), "useradd {USER}: {made}");
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `program` run as the test's user.
fn as_mallory(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", USER, "--regid", USER, "--clear-groups", "--"]).arg(program);
    c
}

/// Sets a sysctl for the test's duration; restores it when dropped.
struct Sysctl(&'static str, String);

impl Sysctl {
    fn set(name: &'static str, value: &str) -> Self {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let old = fs::read_to_string(&path).unwrap().trim().to_owned();
        fs::write(&path, value).unwrap();
        Sysctl(name, old)
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = fs::write(format!("/proc/sys/{}", self.0.replace('.', "/")), &self.1);
    }
}

/// A directory like /tmp: world-writable and sticky, root's.
fn shared_dir() -> tempfile::TempDir {
    let dir = scratch_dir();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn folded() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/perfkit.folded")
}

/// A short busy command to profile.
const BUSY: &str = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done";

/// Every writer with a quick job, writing to `out`.
fn writers(out: &Path) -> Vec<Vec<OsString>> {
    let o = out.as_os_str().to_owned();
    let f = folded().into_os_string();
    let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    let with = |mut a: Vec<OsString>, rest: &[&OsString]| {
        a.extend(rest.iter().map(|s| (*s).clone()));
        a
    };
    vec![
        with(v(&["profile", "-o"]), &[&o, &"--".into(), &"sh".into(), &"-c".into(), &BUSY.into()]),
        with(
            v(&["profile", "-o", "/dev/null", "--folded"]),
            &[&o, &"--".into(), &"sh".into(), &"-c".into(), &BUSY.into()],
        ),
        with(v(&["offcpu", "-o"]), &[&o, &"--".into(), &"sleep".into(), &"0.3".into()]),
        with(v(&["sys", "cpu", "-o"]), &[&o, &"0.1".into(), &"1".into()]),
        with(v(&["sys", "record", "0.1", "1", "-o"]), &[&o]),
        with(v(&["flamegraph", "-o"]), &[&o, &f]),
        with(v(&["convert", "-f", "json", "-o"]), &[&o, &f]),
        with(v(&["diff", "-o"]), &[&o, &f, &f]),
    ]
}

/// Runs `cmd`, killing it after `limit`: (status, stderr, timed out).
fn run_for(cmd: &mut Command, limit: Duration) -> (ExitStatus, String, bool) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (status, timed_out) = wait_for(&mut child, limit);
    let err = reader.join().unwrap();
    eprintln!("ran: {cmd:?}\nstatus: {status}\nstderr:\n{err}");
    (status, err, timed_out)
}

fn wait_for(child: &mut Child, limit: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return (child.wait().unwrap(), true);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".perfkit-"))
        .collect()
}

#[test]
fn a_directory_link_planted_by_another_user_is_refused_by_every_writer() {
    let Some(_serial) = privileged() else { return };
    let uid = mallory();
    // As the issue saw it: with protected_symlinks off, the kernel itself
    // would follow her link; perfkit must not.
    let _sysctl = Sysctl::set("fs.protected_symlinks", "0");
    let private = tempfile::Builder::new().prefix("perfkit-victim-").tempdir().unwrap();
    let victim = private.path().join("victim.txt");
    fs::write(&victim, "root's secret\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let shared = shared_dir();
    let link = shared.path().join("x");
    assert!(run(as_mallory("ln").arg("-s").arg(private.path()).arg(&link)).status.success());
    let out = link.join("victim.txt");
    for args in writers(&out) {
        let (status, err, timed_out) = run_for(perfkit().args(&args), Duration::from_secs(60));
        assert!(!timed_out && !status.success(), "{args:?} wrote through {}", link.display());
        let want = format!("{} is a symbolic link owned by uid {uid} in the world-writable", link.display());
        assert!(err.contains(&want) && err.contains("write somewhere else"), "{args:?}: {err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's secret\n", "{args:?}");
        assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o7777, 0o600, "{args:?}");
        let names: Vec<_> = fs::read_dir(private.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "{args:?} left {names:?}");
    }
}

#[test]
fn a_file_another_user_made_in_a_shared_directory_is_refused() {
    let Some(_serial) = privileged() else { return };
    let uid = mallory();
    let shared = shared_dir();
    let planted = shared.path().join("out.data");
    let script = format!("umask 0; echo hers > {}", planted.display());
    assert!(run(as_mallory("sh").arg("-c").arg(script)).status.success());
    assert_eq!(fs::metadata(&planted).unwrap().mode() & 0o777, 0o666);
    for args in writers(&planted) {
        let (status, err, timed_out) = run_for(perfkit().args(&args), Duration::from_secs(60));
        assert!(!timed_out && !status.success(), "{args:?} wrote into her file");
        assert!(err.contains(&format!("it is a file owned by uid {uid} in the world-writable")), "{args:?}: {err}");
        assert_eq!(fs::read_to_string(&planted).unwrap(), "hers\n", "{args:?}");
        assert_eq!(fs::metadata(&planted).unwrap().uid(), uid);
        assert!(temporaries(shared.path()).is_empty());
    }
}

#[test]
fn a_fifo_at_the_output_path_never_blocks_and_never_receives() {
    let Some(_serial) = privileged() else { return };
    let uid = mallory();
    let shared = shared_dir();
    // Hers, with nobody reading: refused at once.
    let fifo = shared.path().join("out.fifo");
    assert!(run(as_mallory("mkfifo").arg(&fifo)).status.success());
    for args in writers(&fifo) {
        let started = Instant::now();
        let (status, err, timed_out) = run_for(perfkit().args(&args), Duration::from_secs(30));
        assert!(!timed_out && !status.success(), "{args:?} blocked on or wrote her FIFO");
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", started.elapsed());
        assert!(err.contains(&format!("it is a FIFO owned by uid {uid}")), "{args:?}: {err}");
    }
    // Hers, with her reading it: she receives nothing.
    let mut reader = as_mallory("cat").arg(&fifo).stdout(Stdio::piped()).spawn().unwrap();
    thread::sleep(Duration::from_millis(200));
    let (status, err, _) = run_for(perfkit().args(&writers(&fifo)[5]), Duration::from_secs(30));
    assert!(!status.success(), "{err}");
    let _ = reader.kill();
    let got = reader.wait_with_output().unwrap();
    assert!(got.stdout.is_empty(), "she received {} bytes", got.stdout.len());
    // Root's own FIFO without a reader: an error at once, not a hang.
    let private = scratch_dir();
    let own = private.path().join("own.fifo");
    assert!(Command::new("mkfifo").arg(&own).status().unwrap().success());
    for args in [&writers(&own)[5], &writers(&own)[3]] {
        let (status, err, timed_out) = run_for(perfkit().args(args), Duration::from_secs(30));
        assert!(!timed_out && !status.success(), "{args:?}");
        assert!(err.contains("FIFO with no reader"), "{args:?}: {err}");
    }
}

/// Waits until `pid` has become perfkit (its exec done), for at most 5 s.
fn wait_exec(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "perfkit") {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn signals_during_startup_leave_no_temporary_file() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let (svg, folded) = (dir.path().join("f.svg"), dir.path().join("f.folded"));
    let mut trials = 0;
    for delay_ms in [0u64, 20, 50, 100, 200, 300, 400, 500, 600, 700] {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let mut child = perfkit()
                .args(["profile", "-o"])
                .arg(&svg)
                .arg("--folded")
                .arg(&folded)
                .args(["--", "sh", "-c", BUSY])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            thread::sleep(Duration::from_millis(delay_ms));
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(child.id() as i32, signal) };
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            let (status, timed_out) = wait_for(&mut child, Duration::from_secs(60));
            trials += 1;
            let what = format!("signal {signal} after {delay_ms} ms: {status}: {err}");
            assert!(!timed_out, "{what}");
            assert!(temporaries(dir.path()).is_empty(), "{what}: left {:?}", temporaries(dir.path()));
            assert_ne!(status.code(), Some(101), "{what}");
            // Ended by the signal itself (as perf): before perfkit set up
            // anything, with nothing written, or after writing every
            // output; otherwise a clear "no samples".
            match (status.code(), status.signal()) {
                // The command's own end came first: every output written.
                (Some(0), _) => {
                    assert!(fs::read_to_string(&svg).unwrap().contains("</svg>"), "{what}");
                    assert!(!fs::read_to_string(&folded).unwrap().is_empty(), "{what}");
                }
                (Some(1), _) => assert!(err.contains("perfkit: error:"), "{what}"),
                (None, Some(s)) => {
                    assert_eq!(s, signal, "{what}");
                    if !err.is_empty() {
                        assert!(fs::read_to_string(&svg).unwrap().contains("</svg>"), "{what}");
                        assert!(!fs::read_to_string(&folded).unwrap().is_empty(), "{what}");
                    }
                }
                _ => panic!("{what}"),
            }
            let _ = fs::remove_file(&svg);
            let _ = fs::remove_file(&folded);
        }
    }
    assert_eq!(trials, 30);
}

#[test]
fn tools_report_a_signal_from_their_first_moments() {
    let Some(_serial) = privileged() else { return };
    for tool in ["runqlat", "execsnoop"] {
        for (i, signal) in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGINT].into_iter().enumerate() {
            let mut child = perfkit().arg(tool).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
            wait_exec(child.id());
            // Before their probes are loaded (about 60 ms), where they died.
            thread::sleep(Duration::from_millis(25 + 10 * i as u64));
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(child.id() as i32, signal) };
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            let (status, timed_out) = wait_for(&mut child, Duration::from_secs(30));
            assert!(!timed_out && ended_by(status, signal), "{tool}, signal {signal}: {status}: {err}");
        }
    }
}

#[test]
fn tiny_descriptor_and_process_limits_are_clear_errors() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let svg = dir.path().join("f.svg");
    for n in ["8", "12", "14"] {
        let commands: Vec<Vec<OsString>> = vec![
            writers(&svg)[0].clone(),
            vec!["execsnoop".into(), "--".into(), "true".into()],
            vec!["runqlat".into(), "1".into(), "1".into()],
            vec![
                "sys".into(),
                "record".into(),
                "0.01".into(),
                "1".into(),
                "-o".into(),
                dir.path().join("r.rec").into(),
            ],
        ];
        for args in commands {
            let (status, err, timed_out) = run_for(
                Command::new("prlimit").arg(format!("--nofile={n}")).arg(env!("CARGO_BIN_EXE_perfkit")).args(&args),
                Duration::from_secs(60),
            );
            assert!(!timed_out, "RLIMIT_NOFILE {n}, {args:?}: hung");
            assert_ne!(status.code(), Some(101), "RLIMIT_NOFILE {n}, {args:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(
                err.contains(&format!("too few file descriptors (RLIMIT_NOFILE {n})")) && err.contains("ulimit -n"),
                "RLIMIT_NOFILE {n}, {args:?}: {err}"
            );
            assert!(temporaries(dir.path()).is_empty());
        }
    }
    // RLIMIT_NPROC binds users other than root: the test's user, with the
    // capabilities profiling needs.
    mallory();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        USER,
        "--regid",
        USER,
        "--clear-groups",
        "--inh-caps=+bpf,+perfmon",
        "--ambient-caps=+bpf,+perfmon",
    ])
    .args(["--", "prlimit", "--nproc=2"])
    .arg(env!("CARGO_BIN_EXE_perfkit"))
    .args(["profile", "-o", "/dev/null", "--", "sh", "-c", BUSY]);
    let (status, err, timed_out) = run_for(&mut cmd, Duration::from_secs(60));
    assert!(!timed_out, "RLIMIT_NPROC 2: hung");
    assert_ne!(status.code(), Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("perfkit: error:") && err.contains("RLIMIT_NPROC"), "{err}");
}

/// A pipe whose reader is gone: writes to it fail with EPIPE.
fn widowed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are new and ours; the read end is closed at once.
    unsafe {
        drop(OwnedFd::from_raw_fd(fds[0]));
        OwnedFd::from_raw_fd(fds[1])
    }
}

#[test]
fn a_closed_standard_error_never_panics() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let svg = dir.path().join("f.svg");
    let rec = dir.path().join("r.rec");
    let commands: Vec<Vec<OsString>> = vec![
        writers(&svg)[0].clone(),
        vec!["execsnoop".into(), "--".into(), "sh".into(), "-c".into(), "true".into()],
        vec!["sys".into(), "record".into(), "0.1".into(), "1".into(), "-o".into(), rec.clone().into()],
    ];
    for args in &commands {
        // A pipe nobody reads (EPIPE on every write).
        let mut child = perfkit().args(args).stdout(Stdio::null()).stderr(Stdio::from(widowed_pipe())).spawn().unwrap();
        let (status, timed_out) = wait_for(&mut child, Duration::from_secs(60));
        assert!(!timed_out && status.success(), "{args:?} with a broken stderr pipe: {status}");
        // Closed outright (`2>&-`).
        let mut sh = Command::new("sh");
        sh.arg("-c").arg("exec \"$@\" 2>&-").arg("sh").arg(env!("CARGO_BIN_EXE_perfkit")).args(args);
        let mut child = sh.stdout(Stdio::null()).spawn().unwrap();
        let (status, timed_out) = wait_for(&mut child, Duration::from_secs(60));
        assert!(!timed_out && status.success(), "{args:?} with stderr closed: {status}");
    }
    assert!(fs::read_to_string(&svg).unwrap().contains("</svg>"));
    assert!(fs::metadata(&rec).unwrap().len() > 1000);
}

#[test]
fn a_closed_standard_output_pipe_ends_as_coreutils_do() {
    // As `seq 1000000 | head -1`: killed by SIGPIPE (141 in a shell), and
    // nothing said.
    // More than a pipe holds, so that perfkit is still writing when head
    // leaves.
    let dir = scratch_dir();
    let f = dir.path().join("big.folded");
    let lines: String = (0..20_000).map(|i| format!("main;work_{i};leaf_{i} {}\n", 1 + i % 7)).collect();
    fs::write(&f, lines).unwrap();
    let script = "\"$0\" convert -f folded -o - \"$1\" | head -c 10 > /dev/null; exit ${PIPESTATUS[0]}";
    let out = run(Command::new("bash").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_perfkit")).arg(&f));
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // Line by line (a tool's events): the same.
    let mut child = perfkit()
        .args(["sys", "proc", "0.05", "40"])
        .stdout(Stdio::from(widowed_pipe()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, timed_out) = wait_for(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!timed_out, "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
