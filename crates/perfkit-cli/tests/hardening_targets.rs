//! Memory from files a target controls (issue 17): hostile CFI, compressed
//! debug sections, sparse mappings and perf maps must not decide how much
//! memory or time perfkit uses, on either backend, and the profile is
//! still written with a note naming the file and the limit.
//!
//! Each test builds its hostile input itself (`cc`, `objcopy`, sparse
//! files, a perf map written by a target running as the unprivileged user
//! `pk-target`) and checks perfkit's peak memory with `wait4`.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

/// The cap on perfkit's peak memory in these tests: the 512 MiB budget
/// plus what perfkit holds anyway.
const MAX_RSS_KIB: u64 = 600 << 10;

const BACKENDS: [&str; 2] = ["ebpf", "perf"];

/// The unprivileged user the targets run as (created once, reused).
pub(crate) fn user() -> u32 {
    let id = || Command::new("id").args(["-u", "pk-target"]).output().ok().filter(|o| o.status.success());
    if id().is_none() {
        let _ = Command::new("useradd").args(["-M", "-r", "-s", "/usr/sbin/nologin", "pk-target"]).status();
    }
    let out = id().expect("creating the user pk-target with useradd");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// What one run of perfkit did.
struct Run {
    stderr: String,
    ok: bool,
    peak_kib: u64,
    elapsed: Duration,
    /// The largest rise of the machine's shared memory (`Shmem` in
    /// /proc/meminfo: memory files) during the run, in KiB.
    shmem_rise_kib: u64,
}

fn shmem_kib() -> u64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs perfkit to its end, measuring its peak memory ([`run_measured`]),
/// its time and the rise of shared memory meanwhile.
fn measure(cmd: &mut Command) -> Run {
    eprintln!("running {cmd:?}");
    let base = shmem_kib();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(shmem_kib().saturating_sub(base));
                thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let started = Instant::now();
    let ran = run_measured(cmd, None);
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let run = Run {
        stderr: ran.stderr,
        ok: ran.ok,
        peak_kib: ran.rss >> 10,
        elapsed,
        shmem_rise_kib: sampler.join().unwrap(),
    };
    eprintln!(
        "status ok: {}, peak {} MiB, {:?}, shared memory +{} MiB\nstderr:\n{}",
        run.ok,
        run.peak_kib >> 10,
        run.elapsed,
        run.shmem_rise_kib >> 10,
        run.stderr
    );
    run
}

/// Profiles `command` on `backend` into `dir`; returns the run and the
/// folded stacks (asserting that the profile was written).
fn profile(dir: &Path, backend: &str, command: &[&std::ffi::OsStr]) -> (Run, Vec<(String, u64)>) {
    let folded = dir.join(format!("{backend}.folded"));
    let svg = dir.join(format!("{backend}.svg"));
    let run = measure(
        perfkit()
            .current_dir(dir)
            .args(["profile", "--backend", backend, "-o"])
            .arg(&svg)
            .arg("--folded")
            .arg(&folded)
            .arg("--")
            .args(command),
    );
    assert!(run.ok, "perfkit failed on {backend}:\n{}", run.stderr);
    assert!(svg.exists(), "no flame graph written on {backend}");
    (run, read_folded(&folded))
}

fn named(folded: &[(String, u64)], function: &str) -> u64 {
    // JIT frames carry their kind's suffix.
    folded
        .iter()
        .filter(|(s, _)| s.split(';').any(|f| f.strip_suffix("_[j]").unwrap_or(f) == function))
        .map(|(_, c)| c)
        .sum()
}

fn assert_bounded(run: &Run, backend: &str, workload_secs: u64) {
    assert!(run.peak_kib < MAX_RSS_KIB, "{backend}: peak memory {} MiB", run.peak_kib >> 10);
    assert!(
        run.elapsed < Duration::from_secs(workload_secs + 15),
        "{backend}: took {:?} for a {workload_secs} s workload",
        run.elapsed
    );
}

/// The workload, built with frame pointers (`flags` added), without `-g`.
fn workload(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/targetfiles.c");
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(["-O1", "-fno-omit-frame-pointer"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("running cc");
    assert!(status.success(), "building {name} failed");
    out
}

/// The address of a function of `exe` (`nm`).
fn symbol(exe: &Path, name: &str) -> u64 {
    let out = Command::new("nm").arg(exe).output().expect("running nm");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.ends_with(&format!(" {name}"))).expect("the symbol");
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

/// Rewrites `exe` into `out` without `.eh_frame`, with `sections` (name,
/// file) added and every debug section compressed with zlib.
fn objcopy(exe: &Path, out: &Path, sections: &[(&str, PathBuf)]) {
    let plain = out.with_extension("plain");
    let mut add = Command::new("objcopy");
    add.args(["--remove-section", ".eh_frame", "--remove-section", ".eh_frame_hdr"]);
    for (name, file) in sections {
        add.arg("--add-section").arg(format!("{name}={}", file.display()));
    }
    assert!(add.arg(exe).arg(&plain).status().unwrap().success());
    let status = Command::new("objcopy").arg("--compress-debug-sections=zlib").arg(&plain).arg(out).status().unwrap();
    assert!(status.success());
    let _ = fs::remove_file(plain);
}

/// A `.debug_frame` of one CIE and one FDE at `start` whose instructions
/// are `rows` `DW_CFA_advance_loc 1`: one row each.
fn debug_frame(start: u64, rows: usize) -> Vec<u8> {
    let mut cie = vec![0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x78, 16, 0x0c, 7, 8, 0x90, 1];
    while (cie.len() + 4) % 8 != 0 {
        cie.push(0);
    }
    let mut out = (cie.len() as u32).to_le_bytes().to_vec();
    out.extend(cie);
    out.extend(((4 + 8 + 8 + rows) as u32).to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend((rows as u64 + 16).to_le_bytes());
    out.resize(out.len() + rows, 0x41);
    out
}

/// A file of the target's user: perfkit must not trust it to stay put.
fn give_to_target(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn one_fde_with_64_mi_rows_is_refused_within_the_budget_on_both_backends() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc", "objcopy", "nm"]) {
        return;
    }
    let uid = user();
    let dir = scratch_dir();
    let base = workload(dir.path(), "base", &["-fno-asynchronous-unwind-tables", "-fno-unwind-tables"]);
    let frame = dir.path().join("frame.bin");
    fs::write(&frame, debug_frame(symbol(&base, "hot_target"), 64 << 20)).unwrap();
    let exe = dir.path().join("cfi-bomb");
    objcopy(&base, &exe, &[(".debug_frame", frame)]);
    assert!(fs::metadata(&exe).unwrap().len() < 1 << 20, "the hostile binary is small");
    give_to_target(&exe, uid);
    for backend in BACKENDS {
        let (run, folded) = profile(dir.path(), backend, &[exe.as_os_str(), os("3")]);
        assert_bounded(&run, backend, 3);
        assert!(named(&folded, "hot_target") > 10, "{backend}: hot_target not named: {folded:?}");
        let path = exe.display().to_string();
        assert!(
            run.stderr.lines().any(|l| l.contains(&path) && (l.contains("rows") || l.contains("memory budget"))),
            "{backend}: no note naming {path} and the limit"
        );
    }
}

#[test]
fn eight_compressed_sections_are_bounded_together_on_both_backends() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc", "objcopy"]) {
        return;
    }
    let uid = user();
    let dir = scratch_dir();
    let base = workload(dir.path(), "base", &[]);
    // Eight debug sections of 128 MiB of zeros, each under the 256 MiB
    // bound of one section, 1 GiB together: a few MiB once compressed.
    let names = [
        ".debug_info",
        ".debug_abbrev",
        ".debug_line",
        ".debug_str",
        ".debug_ranges",
        ".debug_aranges",
        ".debug_line_str",
        ".debug_str_offsets",
    ];
    let zeros = dir.path().join("zeros.bin");
    fs::File::create(&zeros).unwrap().set_len(128 << 20).unwrap();
    let sections: Vec<(&str, PathBuf)> = names.iter().map(|n| (*n, zeros.clone())).collect();
    let exe = dir.path().join("eight");
    objcopy(&base, &exe, &sections);
    let _ = fs::remove_file(&zeros);
    assert!(fs::metadata(&exe).unwrap().len() < 4 << 20, "the hostile binary is small");
    give_to_target(&exe, uid);
    for backend in BACKENDS {
        let (run, folded) = profile(dir.path(), backend, &[exe.as_os_str(), os("3")]);
        assert_bounded(&run, backend, 3);
        assert!(named(&folded, "hot_target") > 10, "{backend}: hot_target not named: {folded:?}");
        let path = exe.display().to_string();
        assert!(
            run.stderr.lines().any(|l| l.contains(&path) && l.contains("256 MiB")),
            "{backend}: no note naming {path} and the limit"
        );
    }
}

#[test]
fn a_sparse_4000_mib_mapping_costs_neither_memory_nor_time_on_both_backends() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let uid = user();
    let dir = scratch_dir();
    let exe = workload(dir.path(), "sparse-target", &[]);
    // 4000 MiB of hole behind an ELF header (the workload's own): what
    // perfkit copies when it copies whole files.
    let sparse = dir.path().join("sparse.so");
    let header = fs::read(&exe).unwrap();
    fs::write(&sparse, &header[..4096]).unwrap();
    fs::OpenOptions::new().write(true).open(&sparse).unwrap().set_len(4000 << 20).unwrap();
    give_to_target(&sparse, uid);
    for backend in BACKENDS {
        let (run, folded) = profile(dir.path(), backend, &[exe.as_os_str(), os("3"), os("exec"), sparse.as_os_str()]);
        assert_bounded(&run, backend, 3);
        assert!(run.shmem_rise_kib < MAX_RSS_KIB, "{backend}: memory files grew by {} MiB", run.shmem_rise_kib >> 10);
        assert!(named(&folded, "hot_target") > 10, "{backend}: hot_target not named: {folded:?}");
    }
}

/// A 1 GiB perf map written by a target running as `pk-target`: `mode` is
/// `jit-lines` (256+ MiB of entries) or `jit-noline` (one line).
fn perf_map_case(mode: &str, expect_in_note: &str) {
    let uid = user();
    let dir = scratch_dir();
    let exe = workload(dir.path(), "jit-target", &[]);
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    for backend in BACKENDS {
        let (run, folded) =
            profile(dir.path(), backend, &[exe.as_os_str(), os("4"), os(mode), os("300"), os(&uid.to_string())]);
        // The map is the target's: removed by the test.
        for entry in fs::read_dir("/tmp").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("perf-")
                && name.ends_with(".map")
                && std::os::unix::fs::MetadataExt::uid(&entry.metadata().unwrap()) == uid
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        assert_bounded(&run, backend, 4);
        assert!(named(&folded, "jit_hot_loop") > 10, "{backend}: the JIT function not named: {folded:?}");
        assert!(
            run.stderr.lines().any(|l| l.contains("/tmp/perf-") && l.contains(expect_in_note)),
            "{backend}: no note naming the perf map and the limit"
        );
    }
}

#[test]
fn a_1_gib_perf_map_is_read_up_to_its_bounds_on_both_backends() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    perf_map_case("jit-lines", "256 MiB");
}

#[test]
fn a_1_gib_perf_map_without_newlines_costs_a_line_on_both_backends() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    perf_map_case("jit-noline", "over 4096 bytes skipped");
}

/// A local user's fake JVM (tests/workloads/fakejvm.py: a file named
/// libjvm.so mapped, SIGQUIT caught, its own attach socket) that floods
/// perfkit's attach request with 50 MiB, never answers, answers a byte at a
/// time, or never accepts: perfkit reads at most 64 KiB, waits at most its
/// timeout, and writes its outputs.
#[test]
fn a_fake_jvm_cannot_flood_or_stall_the_attach_request() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["setpriv"]) {
        return;
    }
    let uid = user();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/fakejvm.py");
    for mode in ["flood", "silent", "trickle", "stuck"] {
        let dir = scratch_dir();
        let uid_s = uid.to_string();
        let fake = Killed(
            Command::new("setpriv")
                .args(["--reuid", &uid_s, "--regid", &uid_s, "--clear-groups", "/usr/bin/python3"])
                .arg(&script)
                .arg(dir.path())
                .args([mode, "30"])
                .spawn()
                .unwrap(),
        );
        let pid = fake.0.id();
        let socket = format!("/tmp/.java_pid{pid}");
        let started = Instant::now();
        // Ready once it listens. A socket of this PID left by an earlier
        // process of another user (a JVM killed by a test) is not its own
        // and would stop it binding: removed.
        while !dir.path().join("ready").exists() {
            if fs::metadata(&socket).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) != uid) {
                let _ = fs::remove_file(&socket);
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{mode}: the fake JVM did not start");
            thread::sleep(Duration::from_millis(50));
        }
        let started = Instant::now();
        let out = dir.path().join("out.svg");
        let ran = run_measured(perfkit().args(["profile", "-d", "2", "-p", &pid.to_string(), "-o"]).arg(&out), None);
        let elapsed = started.elapsed();
        assert!(ran.ok, "{mode}: {}", ran.stderr);
        assert!(out.exists(), "{mode}: no output");
        assert!(ran.rss < MAX_RSS_KIB * 1024, "{mode}: peak memory {} MiB", ran.rss >> 20);
        assert!(elapsed < Duration::from_secs(2 + 5 + 8), "{mode}: took {elapsed:?}");
        assert!(!Path::new(&format!("/tmp/.attach_pid{pid}")).exists(), "{mode}: the trigger file was left behind");
        // Killed, it cannot remove its socket: not left for a later
        // process of the same PID.
        drop(fake);
        let _ = fs::remove_file(&socket);
    }
}

/// A program that maps and unmaps code in a loop, at a new address each
/// time, under `-a`: each mapping is an event perfkit learns, and the
/// history it keeps for naming stays within the memory budget (here 8
/// MiB), said in a note, instead of growing with the loop.
#[test]
fn mapping_events_in_a_loop_cannot_grow_the_mapping_history_past_the_budget() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let dir = scratch_dir();
    let exe = workload(dir.path(), "remapper", &[]);
    let mut looper = Killed(Command::new(&exe).args([os("12"), os("remap"), exe.as_os_str()]).spawn().unwrap());
    thread::sleep(Duration::from_millis(300));
    let out = dir.path().join("host.svg");
    let ran = run_measured(perfkit().args(["--max-memory", "8M", "profile", "-a", "-d", "8", "-o"]).arg(&out), None);
    let _ = looper.0.kill();
    let _ = looper.0.wait();
    assert!(ran.ok, "{}", ran.stderr);
    assert!(ran.stderr.contains("mappings were not kept for naming"), "{}", ran.stderr);
    assert!(ran.rss < MAX_RSS_KIB * 1024, "peak memory {} MiB", ran.rss >> 20);
}
