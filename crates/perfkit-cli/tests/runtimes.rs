//! Runtimes profiled without flags on the target: the JVM asked for its
//! perf map through its attach mechanism, a JVM that writes its map at
//! exit ended before symbolizing, jitdump files (CPython 3.13's
//! `-X perf_jit`), and the hints when a runtime's frames stay unnamed.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::util::*;

/// Compiles tests/workloads/HotSplit.java: hotAlpha under callerOne and
/// hotBeta under callerTwo, 3:1 of CPU.
fn hot_split() -> tempfile::TempDir {
    let classes = scratch_dir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/HotSplit.java");
    let out = run(Command::new("javac").arg("-d").arg(classes.path()).arg(&source));
    assert!(out.status.success());
    classes
}

/// Samples by leaf kind: (hotAlpha, hotBeta, all).
fn split(folded: &[(String, u64)]) -> (u64, u64, u64) {
    let leaf =
        |m: &str| -> u64 { folded.iter().filter(|(s, _)| s.split(';').any(|f| f.contains(m))).map(|(_, c)| c).sum() };
    (leaf("HotSplit.hotAlpha"), leaf("HotSplit.hotBeta"), folded.iter().map(|(_, c)| c).sum())
}

/// The share of hotAlpha in a perf script's samples (leaf frames).
fn perf_alpha_share(pid: u32, seconds: &str) -> Option<f64> {
    let dir = scratch_dir();
    let data = dir.path().join("perf.data");
    let rec = run(Command::new("perf")
        .args(["record", "-F", "999", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", seconds])
        .stdout(Stdio::null()));
    if !rec.status.success() {
        return None;
    }
    let script = Command::new("perf").args(["script", "-F", "ip,sym", "-i"]).arg(&data).output().ok()?;
    let text = String::from_utf8_lossy(&script.stdout);
    let alpha = text.lines().filter(|l| l.contains("HotSplit.hotAlpha")).count() as f64;
    let beta = text.lines().filter(|l| l.contains("HotSplit.hotBeta")).count() as f64;
    (alpha + beta > 0.0).then(|| 100.0 * alpha / (alpha + beta))
}

#[test]
fn a_jvm_started_without_flags_is_named_through_its_attach_mechanism() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["java", "javac", "perf"]) {
        return;
    }
    let classes = hot_split();
    let jvm = Killed(
        Command::new("java")
            .arg("-cp")
            .arg(classes.path())
            .args(["HotSplit", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = jvm.0.id();
    // Past start-up: the methods are compiled.
    std::thread::sleep(Duration::from_secs(3));
    let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
    let dir = scratch_dir();
    let folded = dir.path().join("out.folded");
    let out = run(perfkit()
        .args(["profile", "-F", "499", "-d", "4", "-p", &pid.to_string(), "-o"])
        .arg(dir.path().join("f.svg"))
        .arg("--folded")
        .arg(&folded));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("jcmd {pid} Compiler.perfmap")), "{err}");
    let folded = read_folded(&folded);
    let (alpha, beta, total) = split(&folded);
    let unknown: u64 = folded.iter().filter(|(s, _)| s.contains("[unknown]")).map(|(_, c)| c).sum();
    assert!((alpha + beta) * 100 >= total * 95, "named: {alpha} + {beta} of {total}: {err}");
    assert!(unknown * 100 <= total * 5, "{unknown} of {total} unknown");
    assert!(folded.iter().any(|(s, _)| s.contains("HotSplit.hotAlpha(long, int)_[j]")), "JIT frames are marked");
    let share = 100.0 * alpha as f64 / (alpha + beta) as f64;
    // The reference: perf on the same JVM, reading the map perfkit had it
    // write.
    let reference = perf_alpha_share(pid, "4").expect("perf recorded the JVM");
    eprintln!("hotAlpha: perfkit {share:.1} %, perf {reference:.1} %");
    assert!((share - 75.0).abs() <= 5.0, "hotAlpha {share:.1} % of the two, expected 75");
    assert!((share - reference).abs() <= 5.0, "perfkit {share:.1} %, perf {reference:.1} %");
}

#[test]
fn a_jvm_that_writes_its_map_at_exit_is_named_when_sampling_ends_first() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["java", "javac"]) {
        return;
    }
    let classes = hot_split();
    // Attaching disabled: only the map written at exit can name the code.
    let (folded, err) = profile_command(
        &["-F", "199", "-d", "3"],
        &[
            os("java"),
            os("-XX:+DisableAttachMechanism"),
            os("-XX:+UnlockDiagnosticVMOptions"),
            os("-XX:+DumpPerfMapAtExit"),
            os("-cp"),
            classes.path().as_os_str(),
            os("HotSplit"),
            os("60"),
        ],
    );
    let (alpha, beta, total) = split(&folded);
    assert!(err.contains("it was ended before symbolizing"), "{err}");
    assert!((alpha + beta) * 100 >= total * 90, "named: {alpha} + {beta} of {total}: {err}");
}

#[test]
fn unnamed_runtime_frames_name_the_runtime_and_the_fix() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["java", "javac", "node"]) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/fib.js");
    let (_, err) = profile_command(&["-d", "3"], &[os("node"), script.as_os_str(), os("10")]);
    assert!(err.contains("are in JIT code without a name: it is Node: start it with --perf-basic-prof"), "{err}");
    let classes = hot_split();
    let (_, err) = profile_command(
        &["-d", "3"],
        &[
            os("java"),
            os("-XX:+DisableAttachMechanism"),
            os("-cp"),
            classes.path().as_os_str(),
            os("HotSplit"),
            os("60"),
        ],
    );
    assert!(err.contains("started with -XX:+DisableAttachMechanism"), "{err}");
    assert!(err.contains("-XX:+DumpPerfMapAtExit"), "{err}");
    let Some(py) = python("3.12") else { return };
    let hot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/pyhot.py");
    let (_, err) = profile_command(&["-d", "2"], &[py.as_os_str(), hot.as_os_str(), os("10")]);
    assert!(err.contains("is CPython: its samples show the interpreter") && err.contains("-X perf"), "{err}");
}

#[test]
fn cpython_perf_jit_names_come_from_its_jitdump() {
    let Some(_serial) = privileged() else { return };
    let Some(py) = python("3.13") else { return };
    let hot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/pyhot.py");
    // CPython buffers its jitdump records and writes the last ones at exit:
    // the script runs to its end, as perf inject --jit needs too.
    let (folded, err) =
        profile_command(&["-F", "199"], &[py.as_os_str(), os("-X"), os("perf_jit"), hot.as_os_str(), os("3")]);
    assert!(err.contains("JIT symbols:") && err.contains(".dump"), "{err}");
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    let named = |f: &str| -> u64 { folded.iter().filter(|(s, _)| s.contains(f)).map(|(_, c)| c).sum() };
    let (alpha, beta) = (named("py::hot_alpha"), named("py::hot_beta"));
    assert!((alpha + beta) * 100 >= total * 80, "Python frames: {alpha} + {beta} of {total}: {err}");
    let share = 100.0 * alpha as f64 / (alpha + beta).max(1) as f64;
    assert!((share - 75.0).abs() <= 8.0, "hot_alpha {share:.1} % of the two, expected 75");
}

/// A CPython of this version (`3.13`): on PATH, or under pyenv; in strict
/// mode a missing one fails the test.
fn python(version: &str) -> Option<PathBuf> {
    let name = format!("python{version}");
    // pyenv's own directories first: its shims on PATH fail for a version
    // that is not selected.
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"));
    let pyenv = std::fs::read_dir(root.join("versions")).ok().and_then(|d| {
        let mut versions: Vec<PathBuf> = d
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{version}.")))
            .map(|e| e.path().join("bin").join(&name))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    });
    let found = pyenv.or_else(|| {
        let works = Command::new(&name).arg("-c").arg("pass").output().is_ok_and(|o| o.status.success());
        works.then(|| PathBuf::from(&name))
    });
    if found.is_none() {
        let _ = tools(&[&name]);
    }
    found
}
