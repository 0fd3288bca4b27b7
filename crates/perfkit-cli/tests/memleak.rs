//! memleak against known answers: a C program (tests/workloads/leaker.c)
//! that keeps blocks of known sizes from known functions (malloc, calloc,
//! realloc, posix_memalign, aligned_alloc) and frees everything `churn`
//! allocates; and, in kernel mode, a process that creates and holds pipes.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::*;

fn leaker() -> PathBuf {
    // Frame pointers: memleak walks user stacks by them, as bcc does.
    build_c("cc", "leaker.c", "leaker", &["-O1", "-fno-omit-frame-pointer"])
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The target, waiting for a line to start.
struct Target {
    child: Killed,
    out: BufReader<std::process::ChildStdout>,
}

impl Target {
    fn start(args: &[&str]) -> Self {
        let mut child = Killed(
            Command::new(leaker())
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut out = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        Self { child, out }
    }

    fn pid(&self) -> String {
        self.child.0.id().to_string()
    }

    /// Lets it run, and waits until it is done.
    fn go(&mut self) {
        self.child.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert_eq!(line, "done\n");
    }

    /// Closes its input: it exits (freeing what it held).
    fn finish(mut self) {
        drop(self.child.0.stdin.take());
        let status = self.child.0.wait().unwrap();
        assert!(status.success(), "leaker: {status}");
    }
}

/// perfkit running in the background, its stdout read as it comes.
struct Tool {
    child: Killed,
    lines: std::sync::mpsc::Receiver<String>,
    err: thread::JoinHandle<String>,
}

impl Tool {
    /// Starts perfkit and waits for memleak's "Attaching" line.
    fn start(args: &[&str]) -> Self {
        let mut child = perfkit().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("Attaching") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap_or(0) > 0, "{args:?} ended before it was ready");
        }
        let err = thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            rest
        });
        Self { child: Killed(child), lines, err }
    }

    /// The next JSON report, within `timeout`.
    fn next_report(&self, timeout: Duration) -> Value {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| panic!("no report within {timeout:?}: {e}"));
            if line.starts_with('{') {
                return serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }

    /// SIGINT: the last report, and stderr.
    fn stop(mut self) -> (Value, String) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGINT) };
        let status = self.child.0.wait().unwrap();
        let err = self.err.join().unwrap();
        // As perf: the report written, then ended by the signal itself.
        assert!(status.success() || ended_by(status, libc::SIGINT), "perfkit memleak: {status}: {err}");
        let last =
            self.lines.iter().filter(|l| l.starts_with('{')).last().unwrap_or_else(|| panic!("no report: {err}"));
        (serde_json::from_str(&last).unwrap(), err)
    }
}

/// Bytes and allocations per innermost frame of a report's stacks.
fn by_leaf(report: &Value) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for s in report["stacks"].as_array().unwrap_or_else(|| panic!("{report}")) {
        let leaf = s["frames"][0].as_str().unwrap_or("[none]").to_owned();
        let e = out.entry(leaf).or_insert((0, 0));
        e.0 += s["outstanding_bytes"].as_u64().unwrap();
        e.1 += s["allocations"].as_u64().unwrap();
    }
    out
}

fn frames(stack: &Value) -> Vec<&str> {
    stack["frames"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect()
}

/// Runs memleak on a new leaker with `extra` flags: its report once the
/// leaker is done and its allocations are older than -o.
fn watch_leaker(extra: &[&str]) -> (Value, String) {
    let mut target = Target::start(&["wait"]);
    let pid = target.pid();
    let mut args = vec!["memleak", "--json", "-p", &pid];
    args.extend_from_slice(extra);
    args.push("1");
    let tool = Tool::start(&args);
    target.go();
    // Older than the default -o (500 ms).
    thread::sleep(Duration::from_millis(1500));
    let (report, err) = tool.stop();
    target.finish();
    (report, err)
}

fn expected(rows: &[(&str, u64, u64)]) -> BTreeMap<String, (u64, u64)> {
    rows.iter().map(|(n, b, c)| ((*n).to_owned(), (*b, *c))).collect()
}

#[test]
fn memleak_reports_exactly_the_blocks_kept_by_stack_and_nothing_of_the_churn() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    // bcc-flags: memleak -p
    let (report, err) = watch_leaker(&[]);
    assert_eq!(report["mode"], "user", "{report}");
    // Every block kept, under the function that allocated it; realloc's
    // old blocks (malloc(50)) freed by it; churn's blocks all freed.
    assert_eq!(
        by_leaf(&report),
        expected(&[
            ("keep_aligned", 5 * 512 + 4 * 256, 9),
            ("keep_blocks", 40 * 1000, 40),
            ("keep_calloc", 10 * 1600, 10),
            ("keep_realloc", 8 * 3000, 8),
            ("keep_small", 30 * 16, 30),
        ]),
        "{report}\n{err}"
    );
    // One stack per call site, each with the caller's frames (main).
    let stacks = report["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 6, "{report}");
    for s in stacks {
        let f = frames(s);
        assert!(f.contains(&"main"), "{f:?}");
        assert!(!f.contains(&"churn"), "{f:?}");
    }
    let c = &report["counters"];
    // 97 kept, 8 realloc'd and 1000 churned blocks freed: nothing lost.
    assert_eq!(c["allocations_lost_map_full"], 0, "{c}");
    assert_eq!(c["allocations_without_stack"], 0, "{c}");
    assert_eq!(c["allocations_recorded"].as_u64(), Some(97 + 8 + 1000), "{c}");
    assert_eq!(c["frees_recorded"].as_u64(), Some(8 + 1000), "{c}");
}

#[test]
fn memleak_flags_bound_sizes_list_allocations_and_run_a_command() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    // bcc-flags: memleak -c -z -Z -T -a
    let bin = leaker();
    let command = format!("{} run", bin.display());
    let out =
        run(perfkit().args(["memleak", "--json", "-c", &command, "-z", "100", "-Z", "2000", "-T", "2", "-a", "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let reports = json_lines(&String::from_utf8(out.stdout).unwrap());
    let report = reports.last().unwrap_or_else(|| panic!("no report: {err}"));
    // -z 100 -Z 2000: keep_small's 16 and keep_realloc's 3000 bytes left
    // out; -T 2: the two biggest stacks.
    assert_eq!(
        by_leaf(report),
        expected(&[("keep_blocks", 40 * 1000, 40), ("keep_calloc", 10 * 1600, 10)]),
        "{report}"
    );
    // -a: every allocation recorded within the bounds, oldest first.
    let allocs = report["outstanding_allocations"].as_array().unwrap();
    assert_eq!(allocs.len(), 40 + 10 + 5 + 4, "{report}");
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    for a in allocs {
        *sizes.entry(a["size_bytes"].as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(sizes, [(256, 4), (512, 5), (1000, 40), (1600, 10)].into_iter().collect(), "{report}");
    let ages: Vec<u64> = allocs.iter().map(|a| a["age_ms"].as_u64().unwrap()).collect();
    assert!(ages.windows(2).all(|w| w[0] >= w[1]), "{ages:?}");
    assert!(ages.iter().all(|&a| a >= 500), "{ages:?}");
}

#[test]
fn memleak_samples_prunes_young_and_keeps_totals_in_the_kernel() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    // bcc-flags: memleak -s
    // One allocation in 4 (the leaker is pinned to one CPU): 10 of
    // keep_blocks' 40 consecutive mallocs.
    let (report, _) = watch_leaker(&["-s", "4"]);
    let leaves = by_leaf(&report);
    assert_eq!(leaves.get("keep_blocks"), Some(&(10 * 1000, 10)), "{report}");
    assert!(!leaves.contains_key("churn"), "{report}");

    // bcc-flags: memleak -o
    // Every block is younger than a minute.
    let (report, _) = watch_leaker(&["-o", "60000"]);
    assert_eq!(report["stacks"].as_array().map(Vec::len), Some(0), "{report}");

    // bcc-flags: memleak --combined-only -C --wa-missing-free -F -O
    // The kernel's running totals per stack, through the allocator named
    // by path (the libc the leaker maps).
    let libc = libc_path();
    let (report, _) = watch_leaker(&["--combined-only", "--wa-missing-free", "-O", &libc]);
    let want = expected(&[
        ("keep_aligned", 5 * 512 + 4 * 256, 9),
        ("keep_blocks", 40 * 1000, 40),
        ("keep_calloc", 10 * 1600, 10),
        ("keep_realloc", 8 * 3000, 8),
        ("keep_small", 30 * 16, 30),
    ]);
    assert_eq!(by_leaf(&report), want, "{report}");
    let (report, _) = watch_leaker(&["-C", "-F", "--obj", &libc]);
    assert_eq!(by_leaf(&report), want, "{report}");
    assert_eq!(report["counters"]["allocations_replaced_missing_free"], 0, "{report}");
}

/// The libc a C program maps.
fn libc_path() -> String {
    let target = Target::start(&["wait"]);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid())).unwrap();
    let path = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .expect("the leaker maps a libc")
        .to_owned();
    target.finish();
    path
}

#[test]
fn memleak_kernel_mode_shows_held_pipes_under_the_pipe_syscall_until_they_are_closed() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    const PIPES: u64 = 300;
    // bcc-flags: memleak -v
    // Kernel mode: no -p. Page allocations (4 KiB and up) left out.
    let tool = Tool::start(&["-v", "memleak", "--json", "-Z", "2048", "-T", "50", "-o", "0", "1"]);
    let first = tool.next_report(Duration::from_secs(60));
    assert_eq!(first["mode"], "kernel", "{first}");
    let mut target = Target::start(&["pipes", &PIPES.to_string()]);
    target.go();
    // Two reports: the second is read after the pipes were all made.
    tool.next_report(Duration::from_secs(60));
    let held = tool.next_report(Duration::from_secs(60));
    // Stacks through pipe(2) that allocated once per pipe or more.
    let piped = |report: &Value| -> BTreeMap<u64, u64> {
        report["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                let f = frames(s);
                f.iter().any(|n| n.contains("sys_pipe")) && f.iter().any(|n| n.contains("pipe_info"))
            })
            .map(|s| (s["stack_id"].as_u64().unwrap(), s["allocations"].as_u64().unwrap()))
            .collect()
    };
    let during = piped(&held);
    assert!(during.values().any(|&n| n >= PIPES), "no pipe(2) stack with {PIPES} allocations: {held}");
    target.finish();
    tool.next_report(Duration::from_secs(60));
    let after = tool.next_report(Duration::from_secs(60));
    let (_, err) = tool.stop();
    let after = piped(&after);
    // Each stack that held the pipes lost them when the process exited.
    for (id, n) in during.iter().filter(|(_, n)| **n >= PIPES) {
        let left = after.get(id).copied().unwrap_or(0);
        assert!(left + PIPES <= *n, "stack {id}: {n} allocations while held, {left} after the exit\n{err}");
    }
}
