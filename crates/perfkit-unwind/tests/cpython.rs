//! The CPython frame reader against real interpreters (3.8, 3.10, 3.11,
//! 3.12, 3.13) running a script whose stacks are known, compared with
//! `py-spy dump` on the same stopped process.
//!
//! Needs root (process_vm_readv on another process) and py-spy: on PATH,
//! in `$PERFKIT_PY_SPY`, or in a venv at `target/pyspy` (`python3 -m venv
//! target/pyspy && target/pyspy/bin/pip install py-spy`). Without them the
//! test says it is skipped; with `PERFKIT_REQUIRE_PRIVILEGED=1` (strict
//! mode, CI) it fails instead, as perfkit-cli's end-to-end tests do.

#![allow(missing_docs)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use perfkit_safeio::Budget;
use perfkit_unwind::cpython::{CPython, Error, PyThread};

fn strict() -> bool {
    std::env::var("PERFKIT_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

fn skip(why: &str) -> bool {
    use std::io::Write;
    assert!(!strict(), "{why}, and strict mode must not skip this test");
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "perfkit-test: skipped {name}: {why}; `cargo xtask test` runs it");
    false
}

fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().nth(1));
    euid == Some("0") || skip("needs root (to read another process's memory)")
}

fn py_spy() -> Option<PathBuf> {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyspy/bin/py-spy");
    let candidates = [std::env::var_os("PERFKIT_PY_SPY").map(PathBuf::from), Some(target), Some("py-spy".into())];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| Command::new(p).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()));
    if found.is_none() {
        skip("needs py-spy (pip install py-spy)");
    }
    found
}

/// pyenv's CPython of this minor version (`3.12`), by full path: pyenv's
/// shims fail for versions that are not selected.
fn python(version: &str) -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT").map_or_else(|| PathBuf::from("/root/.pyenv"), PathBuf::from);
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{version}.")))
        .map(|e| e.path().join("bin").join(format!("python{version}")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    let found = found.pop();
    if found.is_none() {
        skip(&format!("needs python{version} under pyenv"));
    }
    found
}

/// The workload, killed when dropped.
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the known-stacks script, waits until its threads run, and stops
/// it (SIGSTOP) so that both readers see the same moment.
fn start_stopped(python: &Path) -> Workload {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pystacks.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let workload = Workload(child);
    assert_eq!(line.trim(), "ready", "{} did not start the script", python.display());
    let pid = workload.0.id();
    // SAFETY: a signal to our own child, which is alive (not yet waited).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    let started = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap().contains(") T ") {
        assert!(started.elapsed() < Duration::from_secs(10), "PID {pid} did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    workload
}

/// (pthread_t, kernel thread id, [(name, file, line)]) of each thread.
/// py-spy gives no kernel thread id for 3.8 to 3.10 when it does not
/// ptrace the process (`None` then).
type Stacks = Vec<(u64, Option<u32>, Vec<(String, String, u64)>)>;

fn py_spy_dump(py_spy: &Path, pid: u32) -> Stacks {
    let out =
        Command::new(py_spy).args(["dump", "--json", "--nonblocking", "--pid", &pid.to_string()]).output().unwrap();
    assert!(out.status.success(), "py-spy dump: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut stacks: Stacks = json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let frames = t["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let text = |k: &str| f[k].as_str().unwrap().to_owned();
                    (text("name"), text("filename"), f["line"].as_u64().unwrap())
                })
                .collect();
            (t["thread_id"].as_u64().unwrap(), t["os_thread_id"].as_u64().map(|t| t as u32), frames)
        })
        .collect();
    stacks.sort();
    stacks
}

fn ours(threads: &[PyThread]) -> Stacks {
    let mut stacks: Stacks = threads
        .iter()
        .map(|t| {
            let frames =
                t.frames.iter().map(|f| (f.qualname.clone(), f.file.clone(), f.line.map_or(0, u64::from))).collect();
            (t.thread_id, t.native_tid, frames)
        })
        .collect();
    stacks.sort();
    stacks
}

#[test]
fn stacks_match_py_spy_dump_on_cpython_3_8_to_3_13() {
    if !root() {
        return;
    }
    let Some(py_spy) = py_spy() else { return };
    for version in ["3.8", "3.10", "3.11", "3.12", "3.13"] {
        let Some(python) = python(version) else { continue };
        let workload = start_stopped(&python);
        let pid = workload.0.id();
        let py = CPython::attach(pid, &Budget::new(256 << 20)).unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(format!("{}.{}", py.version().major, py.version().minor), version);
        let threads = py.threads().unwrap_or_else(|e| panic!("{version}: {e}"));
        let ours = ours(&threads);
        let mut theirs = py_spy_dump(&py_spy, pid);
        // Kernel thread ids: py-spy's where it has them, else each one a
        // thread of the process, the main thread's its PID.
        let tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect();
        for (t, ours) in theirs.iter_mut().zip(&ours) {
            let tid = ours.1.unwrap_or_else(|| panic!("{version}: no kernel thread id for {:#x}", ours.0));
            assert!(tasks.contains(&tid), "{version}: {tid} is not a thread of {pid}");
            t.1 = t.1.or(Some(tid));
        }
        assert_eq!(ours.iter().filter(|t| t.1 == Some(pid)).count(), 1, "{version}: the main thread");
        assert_eq!(ours, theirs, "CPython {version}: perfkit (left) and py-spy dump (right)");
        // The known answer, whatever py-spy says: four threads, each in
        // its function under its caller, the main one under outer_main.
        let mut tops: Vec<Vec<&str>> =
            ours.iter().map(|t| t.2.iter().take(2).map(|f| f.0.rsplit('.').next().unwrap()).collect()).collect();
        tops.sort();
        let expected = [
            ["hot_alpha", "caller_one"],
            ["hot_beta", "caller_two"],
            ["inner_wait_é", "sleepy"],
            ["wait_here", "outer_main"],
        ];
        assert_eq!(tops, expected, "CPython {version}");
        let main = ours.iter().find(|t| t.1 == Some(pid)).expect("the main thread");
        assert_eq!(main.2.last().map(|f| f.0.as_str()), Some("<module>"), "CPython {version}");
        assert_eq!(py.stack(pid).unwrap().map(|f| f.len()), Some(main.2.len()));
        drop(workload);
    }
}

#[test]
fn processes_without_cpython_are_told_apart() {
    if !root() {
        return;
    }
    let err = CPython::attach(std::process::id(), &Budget::new(256 << 20)).unwrap_err();
    assert!(matches!(err, Error::NotPython { .. }), "{err}");
    let err = CPython::attach(u32::MAX - 1, &Budget::new(1 << 20)).unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err}");
}

#[test]
fn a_running_interpreter_is_read_without_stopping_it() {
    if !root() {
        return;
    }
    for version in ["3.8", "3.12", "3.13"] {
        let Some(python) = python(version) else { continue };
        let workload = start_stopped(&python);
        let pid = workload.0.id();
        // SAFETY: a signal to our own child, alive until `workload` drops.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGCONT) }, 0);
        let py = CPython::attach(pid, &Budget::new(256 << 20)).unwrap();
        // Stacks change under the reader: a read may fail, but never
        // panics or hangs, and most reads find the spinning threads.
        let (mut whole, reads) = (0, 300);
        for _ in 0..reads {
            if let Ok(threads) = py.threads() {
                let hot = threads.iter().filter(|t| t.frames.first().is_some_and(|f| f.qualname.starts_with("hot_")));
                whole += usize::from(hot.count() == 2);
            }
        }
        assert!(whole * 10 >= reads * 9, "CPython {version}: {whole} of {reads} reads found both hot threads");
        drop(workload);
    }
}
