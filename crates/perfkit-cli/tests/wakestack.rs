//! wakeuptime and stackcount against known answers: a C program
//! (tests/workloads/wakestack.c) whose reader thread blocks on a pipe until
//! its waker thread writes to it in wake_reader() after a known nap, N
//! times; and whose hot() is called exactly 3N times from parent_a and N
//! times from parent_b, each call one getppid().

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::*;

fn wakestack() -> PathBuf {
    build_c("cc", "wakestack.c", "wakestack", &["-O0", "-fno-omit-frame-pointer", "-pthread"])
}

/// The last JSON document of a tool's output.
fn last_json(text: &str) -> Value {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .next_back()
        .unwrap_or_else(|| panic!("no JSON in {text}"))
}

/// Runs perfkit to its end, asserting success; its stdout.
fn output(args: &[&str]) -> String {
    let out = run(perfkit().args(args));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `wakestack ARGS... wait` and waits for its "ready".
fn waiting(bin: &Path, args: &[&str]) -> (Killed, BufReader<std::process::ChildStdout>) {
    let mut target = Killed(
        Command::new(bin)
            .args(args)
            .arg("wait")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(target.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (target, out)
}

/// Lets a waiting target go and waits for it to end.
fn go(target: &mut Killed) {
    target.0.stdin.take().unwrap().write_all(b"x").unwrap();
    assert!(target.0.wait().unwrap().success());
}

fn names(frames: &Value) -> Vec<String> {
    frames
        .as_array()
        .unwrap_or_else(|| panic!("{frames}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

/// wakeuptime's blocked time of wk-reader woken by wk-waker, in
/// microseconds, and whether every such row's stack names wake_reader.
fn reader_time(report: &Value) -> (u64, bool) {
    let mut total = 0;
    let mut named = true;
    for s in report["stacks"].as_array().unwrap_or_else(|| panic!("{report}")) {
        if s["target"] == "wk-reader" && s["waker"] == "wk-waker" {
            total += s["blocked_usecs"].as_u64().unwrap();
            named &= names(&s["frames"]).iter().any(|n| n == "wake_reader");
        }
    }
    (total, named)
}

#[test]
fn wakeuptime_sums_a_sleepers_blocks_under_its_wakers_stack() {
    // bcc-flags: wakeuptime -p -m --stack-storage-size
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = wakestack();
    // 20 naps of 20 ms: the reader is blocked about 400 ms in all.
    let (mut target, _out) = waiting(&bin, &["wake", "20", "20"]);
    let pid = target.0.id().to_string();
    let (tool, tool_out) =
        start_tracing(&["wakeuptime", "--json", "-p", &pid, "-m", "1000", "--stack-storage-size", "1024"]);
    go(&mut target);
    let ours = last_json(&stop_tracing(tool, tool_out));
    let (total, named) = reader_time(&ours);
    assert!(named, "a wk-waker -> wk-reader stack without wake_reader: {ours}");
    // N x nap, less the reader's few microseconds of work per round, plus
    // the waker's oversleeping on a loaded machine.
    assert!((380_000..=600_000).contains(&total), "blocked {total} us, expected about 400000: {ours}");
    // The waker's kernel stack: the pipe write that woke the reader.
    let stack = ours["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == "wk-reader" && s["waker"] == "wk-waker")
        .unwrap();
    let frames = names(&stack["frames"]);
    assert!(frames.iter().any(|n| n.contains("pipe_write")), "{frames:?}");
    assert!(frames.iter().all(|n| !n.starts_with("__traceiter_") && !n.starts_with("bpf_")), "{frames:?}");
}

#[test]
fn wakeuptime_block_bounds_folded_and_addresses() {
    // bcc-flags: wakeuptime -M -m -f
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = wakestack();
    let b = bin.to_str().unwrap();
    // Blocks of 10 ms: all above -m 5000 and none below -M 5000.
    let kept = last_json(&output(&["wakeuptime", "--json", "-m", "5000", "--", b, "wake", "10", "10"]));
    let (total, _) = reader_time(&kept);
    assert!((95_000..=300_000).contains(&total), "{kept}");
    let cut = last_json(&output(&["wakeuptime", "--json", "-M", "5000", "--", b, "wake", "10", "10"]));
    assert_eq!(reader_time(&cut).0, 0, "{cut}");
    let above = last_json(&output(&["wakeuptime", "--json", "-m", "50000", "--", b, "wake", "10", "10"]));
    assert_eq!(reader_time(&above).0, 0, "{above}");
    // Folded: waker, its stack from the root, then the target.
    let folded = output(&["wakeuptime", "-f", "--", b, "wake", "10", "10"]);
    let line = folded
        .lines()
        .find(|l| {
            l.starts_with("wk-waker;")
                && l.contains(";wake_reader;")
                && l.rsplit_once(' ').unwrap().0.ends_with(";wk-reader")
        })
        .unwrap_or_else(|| panic!("{folded}"));
    let us: u64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!(us >= 95_000, "{line}");
    // Text with --addresses: bcc's layout, and each stack's addresses.
    let text = output(&["wakeuptime", "--addresses", "--", b, "wake", "5", "10"]);
    let block: Vec<&str> = text
        .split("\n\n")
        .find(|b| b.contains("wk-reader") && b.contains("wake_reader"))
        .unwrap_or_else(|| panic!("{text}"))
        .lines()
        // The workload's own "done" shares the standard output.
        .skip_while(|l| !l.trim_start().starts_with("target:"))
        .collect();
    assert!(block.first().is_some_and(|l| l.split_whitespace().eq(["target:", "wk-reader"])), "{text}");
    assert!(block.iter().any(|l| l.contains("kernel 0x") && l.contains("user 0x")), "{text}");
    assert!(block.iter().any(|l| l.split_whitespace().eq(["waker:", "wk-waker"])), "{text}");
}

#[test]
fn wakeuptime_user_threads_only_leaves_kernel_threads_out() {
    // bcc-flags: wakeuptime -u
    let Some(_serial) = privileged() else { return };
    let kernel_thread = |t: &str| {
        ["kworker/", "rcu_", "ksoftirqd/", "migration/", "kcompactd", "khugepaged", "jbd2/", "kthreadd"]
            .iter()
            .any(|p| t.starts_with(p))
    };
    let targets = |r: &Value| -> Vec<String> {
        r["stacks"].as_array().unwrap().iter().map(|s| s["target"].as_str().unwrap().to_owned()).collect()
    };
    let all = last_json(&output(&["wakeuptime", "--json", "-d", "2"]));
    assert!(targets(&all).iter().any(|t| kernel_thread(t)), "no kernel thread blocked in 2 s: {:?}", targets(&all));
    let user = last_json(&output(&["wakeuptime", "--json", "-u", "-d", "2"]));
    let t = targets(&user);
    assert!(!t.is_empty() && t.iter().all(|t| !kernel_thread(t)), "{t:?}");
}

/// stackcount's counts by (comm, user frame names), summed.
fn by_user_stack(report: &Value) -> Vec<(Vec<String>, u64)> {
    let mut out: Vec<(Vec<String>, u64)> = Vec::new();
    for s in report["stacks"].as_array().unwrap_or_else(|| panic!("{report}")) {
        let user = names(&s["user_frames"]);
        let c = s["count"].as_u64().unwrap();
        match out.iter_mut().find(|(u, _)| *u == user) {
            Some(e) => e.1 += c,
            None => out.push((user, c)),
        }
    }
    out
}

/// The count of stacks whose user frames hold `caller` then `leaf`.
fn under(stacks: &[(Vec<String>, u64)], caller: &str, leaf: &str) -> u64 {
    stacks
        .iter()
        .filter(|(u, _)| u.iter().position(|n| n == caller).is_some_and(|i| u[i..].iter().any(|n| n == leaf)))
        .map(|(_, c)| c)
        .sum()
}

#[test]
fn stackcount_counts_a_function_by_its_two_callers_exactly() {
    // bcc-flags: stackcount -p -P -U
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = wakestack();
    let (mut target, _out) = waiting(&bin, &["count", "1000"]);
    let pid = target.0.id().to_string();
    let probe = format!("{}:hot", bin.display());
    let (tool, tool_out) = start_tracing(&["stackcount", "--json", "-p", &pid, "-P", "-U", &probe]);
    go(&mut target);
    let ours = last_json(&stop_tracing(tool, tool_out));
    let stacks = by_user_stack(&ours);
    assert_eq!(under(&stacks, "parent_a", "hot"), 3000, "{ours}");
    assert_eq!(under(&stacks, "parent_b", "hot"), 1000, "{ours}");
    // The full path from main, the function last.
    let a = stacks.iter().find(|(u, _)| u.iter().any(|n| n == "parent_a")).unwrap();
    assert!(a.0.ends_with(&["main".to_owned(), "parent_a".to_owned(), "hot".to_owned()]), "{a:?}");
    for s in ours["stacks"].as_array().unwrap() {
        // -P: one row per process, named with its PID; -U: no kernel frames.
        assert_eq!(s["comm"], format!("wakestack [{pid}]"), "{s}");
        assert!(s["kernel_frames"].as_array().unwrap().is_empty(), "{s}");
    }
}

#[test]
fn stackcount_counts_a_tracepoint_by_user_and_kernel_stacks() {
    // bcc-flags: stackcount -K -f -d
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = wakestack();
    let b = bin.to_str().unwrap();
    let tp = "t:syscalls:sys_enter_getppid";
    let both = last_json(&output(&["stackcount", "--json", tp, "--", b, "count", "500"]));
    let stacks = by_user_stack(&both);
    // getppid() in libc does not make a frame: the walk goes from it to
    // hot()'s caller.
    assert_eq!(under(&stacks, "parent_a", "getppid"), 1500, "{both}");
    assert_eq!(under(&stacks, "parent_b", "getppid"), 500, "{both}");
    // The kernel stack: the system call's entry, without the tracing
    // hook's own frames.
    for s in both["stacks"].as_array().unwrap().iter().filter(|s| s["comm"] == "wakestack") {
        let k = names(&s["kernel_frames"]);
        assert!(k.iter().any(|n| n.contains("do_syscall_64")), "{s}");
        assert!(k.iter().all(|n| !n.starts_with("perf_syscall_") && !n.starts_with("bpf_")), "{s}");
    }
    // -K: kernel stacks only; all 2000 calls.
    let kernel = last_json(&output(&["stackcount", "--json", "-K", tp, "--", b, "count", "500"]));
    let rows = kernel["stacks"].as_array().unwrap();
    assert!(rows.iter().all(|s| s["user_frames"].as_array().unwrap().is_empty()), "{kernel}");
    let wakestack_rows = rows.iter().filter(|s| s["comm"] == "wakestack");
    assert_eq!(wakestack_rows.map(|s| s["count"].as_u64().unwrap()).sum::<u64>(), 2000, "{kernel}");
    // -f -d: folded, `-` between the user and the kernel frames.
    let folded = output(&["stackcount", "-f", "-d", tp, "--", b, "count", "500"]);
    let a: u64 = folded
        .lines()
        .filter(|l| l.starts_with("wakestack;") && l.contains(";parent_a;"))
        .map(|l| {
            assert!(l.contains(";getppid;-;"), "{l}");
            l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(a, 1500, "{folded}");
    // --addresses: the addresses of each stack beside its names.
    let text = output(&["stackcount", "--addresses", tp, "--", b, "count", "50"]);
    assert!(text.lines().any(|l| l.trim_start().starts_with("kernel 0x") && l.contains(" user 0x")), "{text}");
    assert!(text.lines().any(|l| l.trim() == "parent_b"), "{text}");
}

#[test]
fn stackcount_reports_every_interval_with_a_timestamp_until_its_duration() {
    // bcc-flags: stackcount -i -T -D
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = wakestack();
    let probe = format!("{}:hot", bin.display());
    let started = Instant::now();
    let text = output(&["stackcount", "-i", "1", "-T", "-D", "3", &probe]);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(20), "{took:?}");
    let stamps = text
        .lines()
        .filter(|l| {
            let p: Vec<&str> = l.split(':').collect();
            p.len() == 3 && p.iter().all(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    assert_eq!(stamps, 3, "{text}");
}
