//! `Session::wait`, the library's one wait (the CLI waits through it too):
//! a thread target samples for the whole duration, a zombie counts as
//! gone, and a stop flag interrupts it.

use std::{
    fs,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use perfkit_profiler::{EndReason, Options, Session, Target};

use crate::util::*;

/// The TID of `pid`'s thread named `name`, waiting up to 2 s for it.
fn thread_named(pid: u32, name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        for entry in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                return entry.file_name().to_string_lossy().parse().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "no thread {name} in {pid}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// CPU time thread `tid` of `pid` has used (ns, schedstat's first field).
fn cpu_ns(pid: u32, tid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn options(backend: &str) -> Options {
    let mut o = Options::default();
    o.frequency_hz = Some(199);
    o.backend = match backend {
        "perf" => perfkit_profiler::BackendChoice::Perf,
        _ => perfkit_profiler::BackendChoice::Ebpf,
    };
    o
}

/// A busy thread that is not its process's main thread has no pidfd of
/// its own (before `PIDFD_THREAD`): the wait still lasts the duration and
/// the thread's samples are all there.
#[test]
fn session_wait_samples_a_thread_for_the_duration() {
    let Some(_serial) = privileged() else { return };
    for backend in ["ebpf", "perf"] {
        let mut child = Command::new(threads()).arg("6").stdout(Stdio::null()).spawn().unwrap();
        let tid = thread_named(child.id(), "early");
        assert_ne!(tid, child.id());
        let mut session = Session::start(Target::threads(&[tid]).unwrap(), &options(backend)).unwrap();
        let started = Instant::now();
        let cpu_before = cpu_ns(child.id(), tid);
        let end = session.wait(Some(Duration::from_secs(2)));
        let cpu = (cpu_ns(child.id(), tid) - cpu_before) as f64 / 1e9;
        let waited = started.elapsed();
        let finished = session.finish().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(end, EndReason::Duration, "{backend}");
        assert!(waited >= Duration::from_millis(1900), "{backend}: waited {waited:?}");
        // 199 Hz over the CPU time the thread used while waited for (all
        // of the 2 s on an idle machine; less when others share the CPUs).
        let samples = finished.profile.total_samples() as f64;
        let expected = cpu * 199.0;
        assert!(cpu > 0.3, "{backend}: the thread ran {cpu:.2} s of the 2 s");
        assert!(
            (samples - expected).abs() < 0.25 * expected,
            "{backend}: {samples} samples where {cpu:.2} s of CPU at 199 Hz is {expected:.0}"
        );
    }
}

/// A target that exited but was not reaped (a zombie: its parent, this
/// test, has not waited for it) is gone: the wait ends at once, and ends
/// when a watched thread exits while its process goes on.
#[test]
fn session_wait_sees_zombies_and_threads_exit() {
    let Some(_serial) = privileged() else { return };
    let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
    let mut session = Session::start(Target::pids(&[child.id()]).unwrap(), &options("ebpf")).unwrap();
    let started = Instant::now();
    let end = session.wait(Some(Duration::from_secs(10)));
    let waited = started.elapsed();
    assert_eq!(end, EndReason::TargetExited);
    assert!(waited < Duration::from_secs(2), "a zombie took {waited:?} to count as gone");
    let state = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    assert!(state.contains(") Z"), "still a zombie, not reaped by the wait: {state}");
    drop(session);
    child.wait().unwrap();

    // threads: "early" spins until the end (3 s); the thread's exit with
    // its process ends the wait well before the 10 s.
    let mut child = Command::new(threads()).arg("3").stdout(Stdio::null()).spawn().unwrap();
    let tid = thread_named(child.id(), "early");
    let mut session = Session::start(Target::threads(&[tid]).unwrap(), &options("ebpf")).unwrap();
    let started = Instant::now();
    let end = session.wait(Some(Duration::from_secs(10)));
    let waited = started.elapsed();
    drop(session);
    child.wait().unwrap();
    assert_eq!(end, EndReason::TargetExited);
    assert!(waited > Duration::from_secs(1) && waited < Duration::from_secs(5), "waited {waited:?}");
}

/// A stop flag (what a signal handler sets) ends the wait.
#[test]
fn session_wait_is_interruptible() {
    let Some(_serial) = privileged() else { return };
    let mut child = Command::new("sleep").arg("20").spawn().unwrap();
    let mut session = Session::start(Target::pids(&[child.id()]).unwrap(), &options("ebpf")).unwrap();
    static STOP: AtomicBool = AtomicBool::new(false);
    let setter = thread::spawn(|| {
        thread::sleep(Duration::from_millis(500));
        STOP.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let mut ticks = 0;
    let end = session.wait_until(Some(Duration::from_secs(15)), &STOP, |_| ticks += 1);
    let waited = started.elapsed();
    setter.join().unwrap();
    drop(session);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(end, EndReason::Interrupted);
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_secs(2), "waited {waited:?}");
    assert!(ticks >= 2, "{ticks} ticks in {waited:?}");
}
