//! The in-house tools in this crate, built against perfkit's libraries
//! only, run as their users would run them. Profiling needs root: without
//! it a test says it is skipped, and strict mode (`cargo xtask test`,
//! `PERFKIT_REQUIRE_PRIVILEGED=1`) fails it instead.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

/// One test at a time: the run-queue test loads every CPU, which would
/// skew the others' shares.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// Builds a program that spends nearly all its time in `spin_here`.
fn spin_binary(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("spin.c");
    std::fs::write(
        &src,
        "__attribute__((noinline, noipa)) long spin_here(long n) { long s = 0; for (long i = 0; i < n; i++) s += i ^ (s >> 3); return s; }\n\
         int main(void) { volatile long n = 100000000, sink = 0; for (;;) sink += spin_here(n); }\n",
    )
    .unwrap();
    let bin = dir.join("spin");
    assert!(Command::new("cc").args(["-O1", "-g", "-o"]).arg(&bin).arg(&src).status().unwrap().success());
    bin
}

#[test]
fn top_json_prints_frames_as_data() {
    if !root_or_skip("top_json_prints_frames_as_data") {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let busy = Busy(Command::new(spin_binary(dir.path())).stdout(Stdio::null()).spawn().unwrap());
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

/// Reads a child's stderr until a line equal to `ready`, keeping the rest
/// flowing in a thread, so that the test acts only once the tool is
/// attached.
fn wait_ready(child: &mut std::process::Child, ready: &str) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead, BufReader};
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the tool ended before it was ready: {seen}");
        }
        seen.push_str(&line);
        if line.trim_end() == ready {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        seen + &rest
    })
}

#[test]
fn execsnoop_async_streams_execs_on_tokio() {
    if !root_or_skip("execsnoop_async_streams_execs_on_tokio") {
        return;
    }
    let _serial = serial();
    let mut child = Command::new(env!("CARGO_BIN_EXE_execsnoop-async"))
        .args(["1000", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = wait_ready(&mut child, "ready");
    // Five execs with known arguments, then one that fails.
    for i in 0..5 {
        let arg = format!("facade-async-{i}");
        assert!(Command::new("/bin/true").arg(&arg).status().unwrap().success());
    }
    let _ = Command::new("/nonexistent/facade-async-missing").status();
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT is not handled by the example: end it, then read what it
    // printed before.
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    let execs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for i in 0..5 {
        let arg = format!("facade-async-{i}");
        let found = execs.iter().filter(|e| e["args"][1] == arg.as_str()).collect::<Vec<_>>();
        assert_eq!(found.len(), 1, "{arg} in {execs:?}\n{stderr}");
        assert_eq!(found[0]["path"], "/bin/true", "{:?}", found[0]);
        assert_eq!(found[0]["ret"], 0);
    }
    let failed: Vec<_> = execs.iter().filter(|e| e["ret"].as_i64().unwrap_or(0) < 0).collect();
    assert!(failed.iter().any(|e| e["path"] == "/nonexistent/facade-async-missing" && e["ret"] == -2), "{failed:?}");
}

#[test]
fn runqlat_quantiles_see_hogs_wait() {
    if !root_or_skip("runqlat_quantiles_see_hogs_wait") {
        return;
    }
    let _serial = serial();
    // Twice as many busy loops as CPUs: each waits about as long as it
    // runs, a scheduler slice (milliseconds).
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hogs: Vec<Busy> =
        (0..2 * cpus).map(|_| Busy(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap())).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_runqlat-quantiles")).args(["1", "2"]).output().unwrap();
    drop(hogs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let last = &lines[1];
    assert!(last["count"].as_u64().unwrap() > 100, "{last}");
    let (p50, p99) = (last["p50_usecs"].as_u64().unwrap(), last["p99_usecs"].as_u64().unwrap());
    assert!(p50 <= p99, "{last}");
    assert!(p99 >= 1023, "hogs twice the CPUs wait a slice or more: {last}");
}

/// The exporter example embeds perfkit-exporter with its own collector:
/// over HTTP, `/metrics` has the custom family (a stopped process counts
/// in state T), procstat's families (the machine's memory, as
/// /proc/meminfo has it), and the exporter's report of each collector.
#[test]
fn exporter_serves_a_custom_collector_beside_procstat() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stopped = Command::new("sleep").arg("60").spawn().unwrap();
    assert!(Command::new("kill").args(["-STOP", &stopped.id().to_string()]).status().unwrap().success());
    let mut exporter =
        Command::new(env!("CARGO_BIN_EXE_exporter")).arg("127.0.0.1:0").stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(exporter.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("serving http://").and_then(|l| l.strip_suffix("/metrics")).unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let _ = exporter.kill();
    let _ = exporter.wait();
    let _ = stopped.kill();
    let _ = stopped.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("content-type: text/plain; version=0.0.4"), "{response}");
    let value = |series: &str| -> Option<f64> {
        response.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    assert!(response.contains("# TYPE team_processes_in_state gauge\n"), "{response}");
    assert!(value("team_processes_in_state{state=\"T\"}").is_some_and(|n| n >= 1.0), "{response}");
    assert!(value("team_processes_in_state{state=\"S\"}").is_some_and(|n| n >= 1.0), "{response}");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: f64 = meminfo.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(value("perfkit_memory_total_bytes"), Some(total_kib * 1024.0), "{response}");
    assert!(!response.contains("perfkit_process_"), "no per-process series: {response}");
    for c in ["procfs", "process_states"] {
        assert_eq!(value(&format!("team_scrape_collector_success{{collector=\"{c}\"}}")), Some(1.0), "{response}");
    }
}

/// `tprof` takes perfkit's flags: `top` with `profile`'s `-p` finds the
/// known hot function; `execsnoop` with its `-- COMMAND` logs the
/// command's known execs under the run's header; a flag perfkit refuses is
/// refused with perfkit's words.
#[test]
fn tprof_takes_perfkits_flags() {
    if !root_or_skip("tprof_takes_perfkits_flags") {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let busy = Busy(Command::new(spin_binary(dir.path())).stdout(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let tprof = env!("CARGO_BIN_EXE_tprof");
    let out = Command::new(tprof).args(["top", "-p", &busy.0.id().to_string(), "-d", "2", "-n", "3"]).output().unwrap();
    drop(busy);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let first = stdout.lines().nth(1).unwrap_or_default();
    assert!(first.ends_with("  spin_here"), "{stdout}\n{stderr}");
    let share: f64 = first.split('%').next().unwrap().trim().parse().unwrap();
    assert!(share > 80.0, "{stdout}");

    let log = dir.path().join("team.log");
    let out = Command::new(tprof)
        .args(["execsnoop", "--log"])
        .arg(&log)
        .args(["--", "sh", "-c", "/bin/true tprof-one; /bin/true tprof-two"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("== execsnoop at "), "{text}");
    for arg in ["tprof-one", "tprof-two"] {
        let lines: Vec<&str> =
            text.lines().filter(|l| l.starts_with("true ") && l.ends_with(&format!("/bin/true {arg}"))).collect();
        assert_eq!(lines.len(), 1, "{arg} in {text}");
    }
    assert!(stderr.contains("Tracing execs"), "{stderr}");

    let out = Command::new(tprof).args(["top", "-p", "1", "--children", "--no-inherit"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-inherit"), "{:?}", out);
}
