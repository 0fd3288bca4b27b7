use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, MutexGuard, OnceLock},
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

/// Panics unless running as root: privileged tests never pass by skipping.
///
/// The returned guard also runs the privileged tests one at a time: they
/// sample CPU-bound workloads whose known shares and sample counts only hold
/// when the workload is not competing with another test for the CPUs.
pub fn require_privileged() -> MutexGuard<'static, ()> {
    let guard = serial();
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().nth(1)).unwrap();
    assert_eq!(
        euid, "0",
        "this test needs root (CAP_BPF and CAP_PERFMON); it was built in strict mode or as root, so it must not be skipped"
    );
    guard
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

fn build_workload(name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/workloads/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
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
