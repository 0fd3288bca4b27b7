//! The in-house tools in this crate, built against perfkit's libraries
//! only, run as their users would run them. Profiling needs root: without
//! it a test says it is skipped, and strict mode (`cargo xtask test`,
//! `PERFKIT_REQUIRE_PRIVILEGED=1`) fails it instead.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

fn root_or_skip(name: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().nth(1));
    if euid == Some("0") {
        return true;
    }
    assert!(
        std::env::var("PERFKIT_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{name} needs root, and strict mode must not skip it"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "perfkit-test: skipped {name}: needs root; `cargo xtask test` runs it");
    false
}

/// A process that spends nearly all its time in one known function.
struct Busy(std::process::Child);

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn top_json_prints_frames_as_data() {
    if !root_or_skip("top_json_prints_frames_as_data") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("spin.c");
    std::fs::write(
        &src,
        "__attribute__((noinline, noipa)) long spin_here(long n) { long s = 0; for (long i = 0; i < n; i++) s += i ^ (s >> 3); return s; }\n\
         int main(void) { volatile long n = 100000000, sink = 0; for (;;) sink += spin_here(n); }\n",
    )
    .unwrap();
    let bin = dir.path().join("spin");
    assert!(Command::new("cc").args(["-O1", "-g", "-o"]).arg(&bin).arg(&src).status().unwrap().success());
    let busy = Busy(Command::new(&bin).stdout(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new(env!("CARGO_BIN_EXE_top-json")).args([&busy.0.id().to_string(), "2", "5"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty() && lines.len() <= 5, "{lines:?}");
    // The known function leads, as data: name and kind apart, no suffix to
    // parse, and its share near all of the process's time.
    let first = &lines[0];
    assert_eq!(first["frame"]["name"], "spin_here", "{lines:?}\n{stderr}");
    assert_eq!(first["frame"]["kind"], "user");
    assert!(first["share"].as_f64().unwrap() > 0.8, "{lines:?}");
    assert!(first["count"].as_u64().unwrap() > 50, "{lines:?}");
}
