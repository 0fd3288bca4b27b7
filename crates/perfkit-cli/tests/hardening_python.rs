//! Processes of an unprivileged user against this session's new code
//! (issue 17): one that looks like CPython, whose frames are read at every
//! sample and must not decide how much memory perfkit uses or which backend
//! samples others, and processes naming themselves with control characters
//! for `stat --json` and `sys --json`. The CPython reader's own bounds
//! (loops, lengths, the deadline of each read, the files it opens) are
//! tested in perfkit-unwind's unit tests; here, a real CPython.

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

/// Every frame of `pybloat.py` is named by 32 KiB of text, and nearly
/// every sample is a new stack of 100 to 160 frames: before, perfkit's
/// memory grew by megabytes a sample (a peak of 416 MiB for 84 samples
/// read in 4 s, then 20 s to write the profile). Names are kept once, and
/// a stack naming more than 256 KiB is left without its Python frames,
/// with a note; a stack of the same script with short names keeps them.
#[test]
fn python_frames_with_huge_names_cost_memory_once_not_per_sample() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["setpriv"]) || !Path::new("/usr/bin/python3.11").exists() {
        return;
    }
    let uid = crate::hardening_targets::user().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/pybloat.py");
    for (chars, kept) in [("4096", false), ("8", true)] {
        let dir = scratch_dir();
        let target = Killed(
            Command::new("setpriv")
                .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "/usr/bin/python3.11"])
                .arg(&script)
                .args(["30", chars])
                .spawn()
                .unwrap(),
        );
        let pid = target.0.id().to_string();
        // Past the interpreter's start-up and the script's compiling.
        thread::sleep(Duration::from_millis(1500));
        let out = dir.path().join("profile.json");
        let started = Instant::now();
        let ran = run_measured(
            perfkit().args(["profile", "-F", "99", "-d", "4", "-p", &pid, "-f", "json", "-o"]).arg(&out),
            None,
        );
        let elapsed = started.elapsed();
        drop(target);
        let ctx = format!("names of {chars} characters");
        eprintln!("{ctx}: peak {} MiB, {elapsed:?}", ran.rss >> 20);
        assert!(ran.ok, "{ctx}: {}", ran.stderr);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let name = "\u{1F600}".repeat(chars.parse().unwrap());
        let frames = json["frames"].as_array().unwrap();
        let named = frames.iter().any(|f| f["kind"] == "interpreted" && f["name"].as_str() == Some(name.as_str()));
        let note = ran.stderr.contains("such samples are left without their Python frames");
        // Huge names: stacks shallow enough (the leaf called from the
        // top level, half of the samples) keep them, the deep ones are
        // said to lose them. Before, only the recursion's first frames
        // were shallow enough, and a run could sample none of them.
        assert!(named && note != kept, "{ctx}: named {named}, note {note}: {}", ran.stderr);
        let stacks = json["stacks"].as_array().unwrap().len();
        // With short names, Python frames make most samples new stacks
        // (as they would with huge names, were those kept).
        assert!(!kept || stacks >= 30, "{ctx}: only {stacks} distinct stacks: the test needs new stacks");
        assert!(ran.rss < 100 << 20, "{ctx}: peak memory {} MiB for {stacks} stacks", ran.rss >> 20);
        assert!(elapsed < Duration::from_secs(4 + 8), "{ctx}: took {elapsed:?}");
    }
}

/// Under auto, a CPython target moves perfkit to the perf_event backend
/// (to read its frames at each sample). Only processes the invoker names
/// may: in a cgroup, anyone's process that looks like Python (here a
/// sleeping one of `pk-target`) moved every process of the group to it.
#[test]
fn a_python_process_in_a_cgroup_does_not_choose_the_backend_for_the_group() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["setpriv"]) || !Path::new("/usr/bin/python3.11").exists() {
        return;
    }
    let uid = crate::hardening_targets::user().to_string();
    let group =
        crate::scope::TempCgroup(crate::scope::cgroup2_mount().join(format!("perfkit-test-py-{}", std::process::id())));
    std::fs::create_dir(&group.0).unwrap();
    let python = Killed(
        Command::new("setpriv")
            .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "/usr/bin/python3.11"])
            .args(["-c", "import time; time.sleep(30)"])
            .spawn()
            .unwrap(),
    );
    let busy = Killed(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap());
    thread::sleep(Duration::from_millis(300));
    for pid in [python.0.id(), busy.0.id()] {
        std::fs::write(group.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
    let dir = scratch_dir();
    let out = dir.path().join("out.folded");
    let ran = run_measured(perfkit().args(["profile", "-d", "1", "--cgroup"]).arg(&group.0).arg("-o").arg(&out), None);
    drop((python, busy));
    assert!(ran.ok, "{}", ran.stderr);
    assert!(ran.stderr.starts_with("backend: eBPF"), "{}", ran.stderr);
}

/// `stat --json -p PID` names the process by its command line, which the
/// process chooses: its control characters are written as `\xNN`, as in
/// every format perfkit writes, so that `jq -r .command` prints no escape
/// sequence (serde's `\u001b` decodes to a raw ESC).
#[test]
fn stat_json_escapes_the_command_line_a_process_chose() {
    use std::os::unix::process::CommandExt;
    let Some(_serial) = privileged() else { return };
    let mut target = Killed(Command::new("sleep").arg0("\u{1b}]0;pwned\u{7}\u{1b}[2J").arg("30").spawn().unwrap());
    thread::sleep(Duration::from_millis(200));
    let out =
        run(perfkit().args(["stat", "--json", "-e", "task-clock", "-d", "0.3", "-p", &target.0.id().to_string()]));
    let _ = target.0.kill();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = v["command"].as_str().unwrap();
    assert!(!command.chars().any(char::is_control), "{command:?}");
    assert!(command.starts_with("\\x1b]0;pwned\\x07\\x1b[2J"), "{command:?}");
}

/// A process names itself (`/proc/self/comm`) with any bytes: `sys proc
/// --json` writes its control characters as `\xNN`, as every other format
/// does (the JSON of the sysstat views moved to perfkit-procstat).
#[test]
fn sys_proc_json_escapes_the_name_a_process_chose() {
    let target = Killed(
        Command::new("sh")
            .args(["-c", "printf '\\033]0;x\\007\\033[2J' > /proc/$$/comm; while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    thread::sleep(Duration::from_millis(300));
    let pid = target.0.id().to_string();
    let out = run(perfkit().args(["sys", "proc", "-p", &pid, "1", "1", "--json"]));
    drop(target);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let comms: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|v| v["processes"].as_array().cloned().unwrap_or_default())
        .map(|p| p["comm"].as_str().unwrap().to_owned())
        .collect();
    assert!(!comms.is_empty(), "{text}");
    for comm in comms {
        assert_eq!(comm, "\\x1b]0;x\\x07\\x1b[2J", "{text}");
    }
}
