use std::{
    ffi::OsStr,
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard, OnceLock},
    thread,
    time::{Duration, Instant},
};

/// `perfkit` as built for these tests.
pub fn perfkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfkit"))
}

/// Runs a command, printing what ran and its output so failures explain
/// themselves.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    eprintln!(
        "ran: {cmd:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the calling test alone among the tests that take this guard: those
/// that measure CPU shares, rates or timings.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Strict mode (`cargo xtask test`, CI): every test must run, so a missing
/// privilege or tool fails the test instead of skipping it.
pub fn strict() -> bool {
    std::env::var("PERFKIT_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

/// Says that the calling test is skipped, and why: on the terminal, not
/// into libtest's captured output, so a local run shows what it left out.
fn skip(why: &str) {
    use std::io::Write;
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    // Written to the stderr descriptor directly: libtest captures only the
    // print macros, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "perfkit-test: skipped {name}: {why}; `cargo xtask test` runs it");
}

fn euid_is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().nth(1));
    euid == Some("0")
}

/// The run-time gate of a privileged test: `Some` (holding the serial
/// guard) when running as root; otherwise `None` after saying so, and in
/// strict mode a panic: there, privileged tests never pass by skipping.
///
/// The guard runs the privileged tests one at a time: they sample
/// CPU-bound workloads whose known shares and sample counts only hold when
/// the workload is not competing with another test for the CPUs.
#[must_use]
pub fn privileged() -> Option<MutexGuard<'static, ()>> {
    let guard = serial();
    if euid_is_root() {
        return Some(guard);
    }
    assert!(!strict(), "this test needs root (CAP_BPF and CAP_PERFMON), and strict mode must not skip it");
    skip("needs root (CAP_BPF and CAP_PERFMON)");
    None
}

/// The run-time gate of a test that checks perfkit against other tools:
/// true when they are all on PATH; otherwise false after saying so, and in
/// strict mode (where `cargo xtask test` installed them) a panic.
#[must_use]
pub fn tools(names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!strict(), "this test needs {}, and strict mode must not skip it", missing.join(", "));
    skip(&format!("needs {}", missing.join(", ")));
    false
}

/// The hotspots workload (tests/workloads/hotspots.c), built once with
/// frame pointers: main -> parent_a -> hot_a and main -> parent_b -> hot_b,
/// 3:1 of CPU.
pub fn hotspots() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    // -O0 gives every function, leaves included, a frame-pointer frame.
    BIN.get_or_init(|| build_workload("hotspots", &["-O0", "-fno-omit-frame-pointer"]))
}

/// The inlined workload (tests/workloads/inlined.c): `outer` with
/// `inner_spin` inlined into it, built with -O2 and DWARF.
pub fn inlined() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_workload("inlined", &["-O2", "-fno-omit-frame-pointer"]))
}

/// The hotspots workload built without frame pointers (-O1
/// -fomit-frame-pointer, still without inlining): the same known call paths,
/// which only DWARF unwinding recovers.
pub fn hotspots_nofp() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        build_workload_as(
            "hotspots",
            "hotspots-nofp",
            &["-O1", "-fomit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls"],
        )
    })
}

/// The threads workload (tests/workloads/threads.c): thread `early` from
/// the start, thread `late` from 0.5 s.
pub fn threads() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_workload("threads", &["-O0", "-fno-omit-frame-pointer", "-pthread"]))
}

fn build_workload(name: &str, flags: &[&str]) -> PathBuf {
    build_workload_as(name, name, flags)
}

fn build_workload_as(name: &str, out_name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/workloads/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let status = Command::new("cc").args(flags).arg("-g").arg("-o").arg(&out).arg(&src).status().expect("running cc");
    assert!(status.success(), "building the {name} workload failed");
    out
}

/// A fresh directory that any user may write to.
pub fn scratch_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("perfkit-test-").tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Folded stacks parsed into (stack, count).
pub fn read_folded(path: &Path) -> Vec<(String, u64)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').unwrap_or_else(|| panic!("malformed folded line {l:?}"));
            (stack.to_owned(), count.parse().unwrap_or_else(|_| panic!("malformed count in {l:?}")))
        })
        .collect()
}

/// Samples whose innermost frame is `leaf`, and how many of those have
/// `path` (frames joined by `;`) ending at the leaf.
pub fn leaf_samples(folded: &[(String, u64)], leaf: &str, path: &str) -> (u64, u64) {
    let mut total = 0;
    let mut with_path = 0;
    for (stack, count) in folded {
        if stack.rsplit(';').next() == Some(leaf) {
            total += count;
            if stack.ends_with(path) {
                with_path += count;
            }
        }
    }
    (total, with_path)
}

/// Asserts that the directory holds no output and no leftover temporary
/// file.
pub fn assert_no_output(dir: &Path) {
    let entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(entries.is_empty(), "expected no output, found {entries:?}");
}

/// The known answer: hot_a and hot_b are reached only through their
/// parents, and take 3:1 of the samples. hot_a's share of the two is
/// checked within 4 standard deviations of a binomial share (at least 2
/// points): sampling noise alone must not fail the test, a wrong profile
/// must. (The share, not the ratio a/b: a ratio's error is lopsided, and a
/// linear bound on it failed correct profiles about 2.8 deviations high.)
pub fn assert_hotspots_profile(folded: &[(String, u64)]) {
    let (a, a_full) = leaf_samples(folded, "hot_a", ";main;parent_a;hot_a");
    let (b, b_full) = leaf_samples(folded, "hot_b", ";main;parent_b;hot_b");
    assert!(a + b >= 100, "too few samples in the hot functions: {a} + {b}");
    assert!(a_full * 100 >= a * 95, "only {a_full} of {a} hot_a samples have the full path main;parent_a;hot_a");
    assert!(b_full * 100 >= b * 95, "only {b_full} of {b} hot_b samples have the full path main;parent_b;hot_b");
    let share = a as f64 / (a + b) as f64;
    let sigma = (0.75 * 0.25 / (a + b) as f64).sqrt();
    let tolerance = (4.0 * sigma).max(0.02);
    assert!(
        (share - 0.75).abs() <= tolerance,
        "hot_a:hot_b is {a}:{b}, a share of {share:.3}, expected 0.75 within {tolerance:.3} (4 sigma for {} samples)",
        a + b
    );
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    assert!((a + b) * 100 >= total * 90, "the hot functions have only {} of {total} samples", a + b);
    assert!(folded.iter().all(|(s, _)| s.starts_with("hotspots")), "every stack starts with the thread name");
}

/// Builds a C or C++ workload from tests/workloads with the given compiler
/// and flags, once per output name.
pub fn build_c(compiler: &str, source: &str, out_name: &str, flags: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == out_name) {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads").join(source);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let status = Command::new(compiler)
        .args(flags)
        .arg("-g")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(status.success(), "building {out_name} failed");
    built.push((out_name.to_owned(), out.clone()));
    out
}

/// The Rust workload (tests/workloads/rusthot), built with cargo's
/// defaults: release, rust-lld, no frame pointers.
pub fn rusthot() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/rusthot");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rusthot-target");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--offline", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(&dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo");
        assert!(status.success(), "building rusthot failed");
        target.join("release/rusthot")
    })
}

/// The Go workload (tests/workloads/gohot), built by `go build`.
pub fn gohot() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_gohot("gohot", &[]))
}

/// The Go workload built without symbols and DWARF (`-ldflags=-s -w`), as
/// distributions and release builds ship Go programs.
pub fn gohot_stripped() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_gohot("gohot-stripped", &["-ldflags=-s -w"]))
}

fn build_gohot(name: &str, flags: &[&str]) -> PathBuf {
    {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/gohot");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .args(flags)
            .arg(".")
            .current_dir(&dir)
            .env("GOCACHE", &cache)
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "on")
            .status()
            .expect("running go build (golang-go)");
        assert!(status.success(), "building {name} failed");
        out
    }
}

/// The function a folded frame names: suffixes and the Rust or C++ path
/// before its last segment removed (`rusthot::churn` is `churn`).
pub fn short_name(frame: &str) -> &str {
    let f = frame.strip_suffix("_[i]").or_else(|| frame.strip_suffix("_[k]")).unwrap_or(frame);
    let f = f.split('(').next().unwrap_or(f);
    f.rsplit("::").next().unwrap_or(f)
}

/// A stack's physical user frames, root first: the thread root, inlined
/// frames and kernel frames left out, names shortened.
pub fn physical(stack: &str) -> Vec<&str> {
    stack.split(';').skip(1).filter(|f| !f.ends_with("_[i]") && !f.ends_with("_[k]")).map(short_name).collect()
}

/// Functions where a complete user stack starts.
pub const ROOTS: &[&str] =
    &["_start", "runtime.goexit", "runtime.goexit.abi0", "runtime.rt0_go.abi0", "clone3", "clone"];

/// Samples whose innermost physical frame is `leaf`, and how many of those
/// are complete: from a root function, with `path` (short names) ending at
/// the leaf.
pub fn complete_paths(folded: &[(String, u64)], leaf: &str, path: &[&str]) -> (u64, u64) {
    let (mut total, mut full) = (0, 0);
    for (stack, count) in folded {
        let frames = physical(stack);
        if frames.last() != Some(&leaf) {
            continue;
        }
        total += count;
        if frames.first().is_some_and(|f| ROOTS.contains(f)) && frames.ends_with(path) {
            full += count;
        }
    }
    (total, full)
}

/// Asserts known shares of leaves (given as (path ending at the leaf,
/// expected share of the samples in all listed paths)), within 4 binomial
/// standard deviations, and that at least `min_full` of each path's samples
/// are complete.
pub fn assert_shares(folded: &[(String, u64)], expected: &[(&[&str], f64)], min_full: f64) {
    // Per path: samples whose physical frames end with the path's last two
    // frames (the leaf under its own parent), and of those the complete
    // ones.
    let counts: Vec<(u64, u64)> = expected
        .iter()
        .map(|(path, _)| {
            let tail = &path[path.len().saturating_sub(2)..];
            let mine: Vec<(String, u64)> =
                folded.iter().filter(|(s, _)| physical(s).ends_with(tail)).cloned().collect();
            let total: u64 = mine.iter().map(|(_, c)| c).sum();
            let (_, full) = complete_paths(&mine, path[path.len() - 1], path);
            (total, full)
        })
        .collect();
    let all: u64 = counts.iter().map(|c| c.0).sum();
    assert!(all >= 100, "too few samples in the known functions: {counts:?}\n{folded:?}");
    // Samples in the leaves without their parent (a truncated stack) count
    // against completeness too.
    let mut leaves: Vec<&str> = expected.iter().map(|(p, _)| p[p.len() - 1]).collect();
    leaves.dedup();
    let in_leaves: u64 =
        folded.iter().filter(|(s, _)| physical(s).last().is_some_and(|l| leaves.contains(l))).map(|(_, c)| c).sum();
    assert!(
        all as f64 >= min_full * in_leaves as f64,
        "only {all} of {in_leaves} samples in {leaves:?} are under their known parents"
    );
    for ((path, share), (total, full)) in expected.iter().zip(&counts) {
        let p = *total as f64 / all as f64;
        let sigma = (share * (1.0 - share) / all as f64).sqrt();
        assert!(
            (p - share).abs() <= (4.0 * sigma).max(0.03),
            "{path:?} has {total} of {all} samples ({p:.3}), expected {share:.3}"
        );
        assert!(
            *full as f64 >= min_full * *total as f64,
            "only {full} of {total} samples in {path:?} are complete stacks from the root: {}",
            folded.iter().take(5).map(|(s, c)| format!("{s} {c}")).collect::<Vec<_>>().join("\n")
        );
    }
}

/// Profiles a command with `extra` options, returning folded stacks and
/// stderr; asserts success.
pub fn profile_command(extra: &[&str], command: &[impl AsRef<OsStr>]) -> (Vec<(String, u64)>, String) {
    let dir = scratch_dir();
    let folded = dir.path().join("out.folded");
    // In the scratch directory: whatever the command leaves behind (V8's
    // isolate logs...) goes with it.
    let out = run(perfkit()
        .current_dir(dir.path())
        .arg("profile")
        .args(extra)
        .arg("-o")
        .arg(dir.path().join("flame.svg"))
        .arg("--folded")
        .arg(&folded)
        .arg("--")
        .args(command));
    assert!(out.status.success(), "{}", stderr(&out));
    (read_folded(&folded), stderr(&out))
}

/// A child process, killed and reaped when dropped.
pub struct Killed(pub Child);

/// A loop device over a sparse 64 MiB file `disk.img` in `dir`, detached
/// when dropped.
pub struct Loop(pub String);

impl Loop {
    pub fn new(dir: &Path) -> Self {
        let file = dir.join("disk.img");
        let f = fs::File::create(&file).unwrap();
        f.set_len(64 << 20).unwrap();
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }

    /// The device's name (`loop0`).
    pub fn name(&self) -> &str {
        self.0.trim_start_matches("/dev/")
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Starts a perfkit tool in the background and returns once its stderr
/// says "Tracing" (its probes are attached): the process, and a thread
/// collecting its stdout. The rest of its stderr is echoed.
pub fn start_tracing(args: &[&str]) -> (Killed, thread::JoinHandle<String>) {
    start_tool(args, "Tracing")
}

/// Starts perfkit with `args` in the background, waiting until it has
/// printed `ready` on stderr (its probes are attached).
pub fn start_tool(args: &[&str], ready: &str) -> (Killed, thread::JoinHandle<String>) {
    let mut child = perfkit().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    use std::io::{BufRead, BufReader};
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 || line.contains(ready) {
            break;
        }
        assert!(Instant::now() < deadline, "{args:?} never became ready");
    }
    assert!(line.contains(ready), "{args:?} ended before it was ready");
    thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        eprintln!("tool stderr: {rest}");
    });
    (Killed(child), reader)
}

/// Stops a tool [`start_tracing`] started with SIGINT (Ctrl-C) and returns
/// its stdout; it must end as Ctrl-C ends it (0, or 130 as perf does).
pub fn stop_tracing(mut tool: Killed, reader: thread::JoinHandle<String>) -> String {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(tool.0.id() as i32, libc::SIGINT) };
    assert!(tool.0.wait().unwrap().code().is_none_or(|c| c == 0 || c == 130));
    reader.join().unwrap()
}

/// Starts bpftrace with `script` (`-f json`, which says on stdout when its
/// probes are attached), returning once they are: the process and its
/// output, for the counts it prints when stopped.
pub fn start_bpftrace(script: &str) -> (Killed, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::BufRead;
    let mut bt = Killed(
        Command::new("bpftrace")
            .args(["-f", "json", "-e", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = std::io::BufReader::new(bt.0.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !line.contains("attached_probes") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap_or(0) > 0 && Instant::now() < deadline, "bpftrace did not attach");
    }
    (bt, out)
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The body of `GET path` on a loopback port; `None` when nothing answers
/// with HTTP.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_owned())
}

/// Starts `perfkit serve` with `extra` options on a free loopback port and
/// waits until it listens.
pub fn serve(extra: &[&str]) -> (Killed, u16) {
    let port = free_port();
    let child = perfkit()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "perfkit serve did not listen");
        thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

/// Asserts that `promtool check metrics` accepts an exposition.
pub fn assert_promtool_accepts(metrics: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a Prometheus that scrapes `target_port` every second, with its
/// data in `dir`; returns it and the port of its API.
pub fn start_prometheus(dir: &Path, target_port: u16) -> (Killed, u16) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: perfkit\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    let prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (prometheus, port)
}

/// `s` as an `OsStr`, for command lines that mix strings and paths.
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Whether a perfkit that stopped on `signal` ended as perf does: its
/// outputs written, then killed by that same signal (Ctrl-C: 130 in a
/// shell).
pub fn ended_by(status: std::process::ExitStatus, signal: i32) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(signal)
}

/// Whether a tool is on PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// What a run measured by [`run_measured`] gave.
pub struct Measured {
    /// Its standard error.
    pub stderr: String,
    /// Whether it exited 0.
    pub ok: bool,
    /// Its peak resident memory, in bytes.
    pub rss: u64,
    /// Its CPU time (user and system), in seconds.
    pub cpu: f64,
}

/// Runs `cmd` (its program, arguments, environment and directory; stdin
/// fed by `feed`, if any) to its end through the `peakrss` trampoline
/// (tests/workloads/peakrss.c), which reaps it with `wait4` for its peak
/// memory and CPU time. (`wait4` straight from this process would report
/// at least this test process's own size: exec carries the parent's RSS
/// over into the child's `ru_maxrss`, and this process grows as tests
/// build their inputs.)
pub fn run_measured(cmd: &mut Command, feed: Option<Box<dyn FnOnce(std::process::ChildStdin) + Send>>) -> Measured {
    let trampoline = build_c("cc", "peakrss.c", "peakrss", &["-O1"]);
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut outer = Command::new(trampoline);
    outer.env("PEAKRSS_OUT", report.path()).arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => outer.env(key, v),
            None => outer.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        outer.current_dir(dir);
    }
    outer.stdout(Stdio::null()).stderr(Stdio::piped());
    outer.stdin(if feed.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = outer.spawn().unwrap();
    let writer = feed.map(|f| {
        let stdin = child.stdin.take().unwrap();
        thread::spawn(move || f(stdin))
    });
    let mut err = child.stderr.take().unwrap();
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    let status = child.wait().unwrap();
    if let Some(w) = writer {
        let _ = w.join();
    }
    let measured = fs::read_to_string(report.path()).unwrap();
    let mut fields = measured.split_whitespace();
    let rss: u64 = fields.next().and_then(|f| f.parse().ok()).expect("peakrss wrote its report");
    let cpu: f64 = fields.next().and_then(|f| f.parse().ok()).expect("peakrss wrote its report");
    let ran = Measured { stderr, ok: status.success(), rss: rss * 1024, cpu };
    eprintln!(
        "ran: {cmd:?}\nok: {}, peak RSS {} MiB, CPU {:.2} s\nstderr:\n{}",
        ran.ok,
        ran.rss >> 20,
        ran.cpu,
        ran.stderr
    );
    ran
}
