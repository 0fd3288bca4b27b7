//! funccount and funclatency against known answers: a C program
//! (tests/workloads/ufunc.c) that calls work_a exactly N times and work_b
//! N/2 times, getppid 7 times, sleeps 2 ms in nap 20 times, and fires a
//! USDT probe without a semaphore N times and one behind a semaphore N
//! times when it is set; counted through a path, a glob, `c:` (libc), a
//! tracepoint and USDT, beside bpftrace's `uprobe:` count of the same
//! process.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::*;

/// ufunc.c and ufunc_sem.c (the probe with a semaphore: `sys/sdt.h`
/// makes semaphores for a whole file or none).
fn ufunc() -> PathBuf {
    let sem = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/ufunc_sem.c");
    build_c("cc", "ufunc.c", "ufunc", &["-O1", sem.to_str().unwrap()])
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs perfkit and returns its last JSON report, asserting success.
fn report(args: &[&str]) -> Value {
    let out = run(perfkit().args(args));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    json_lines(&String::from_utf8(out.stdout).unwrap()).pop().unwrap_or_else(|| panic!("{args:?}: no report"))
}

/// The funccount counts of a report, by probe name.
fn counts(report: &Value) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = report["probes"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|p| (p["probe"].as_str().unwrap().to_owned(), p["count"].as_u64().unwrap()))
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

#[test]
fn funccount_counts_calls_exactly_by_path_glob_library_and_tracepoint() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = ufunc();
    let b = bin.to_str().unwrap();
    let one = report(&["funccount", "--json", &format!("{b}:work_a"), "--", b, "1000"]);
    assert_eq!(counts(&one), pairs(&[("work_a", 1000)]));
    let glob = report(&["funccount", "--json", &format!("{b}:work_*"), "--", b, "1000"]);
    assert_eq!(counts(&glob), pairs(&[("work_a", 1000), ("work_b", 500)]));
    // libc's getppid, found as the loader finds libc (c: libc.so.6).
    let libc = report(&["funccount", "--json", "c:getppid", "--", b, "10"]);
    assert_eq!(counts(&libc), pairs(&[("getppid", 7)]));
    let tp = report(&["funccount", "--json", "t:syscalls:sys_enter_getppid", "--", b, "10"]);
    assert_eq!(counts(&tp), pairs(&[("syscalls:sys_enter_getppid", 7)]));
    // The text report: bcc's columns, the largest count last.
    let out = run(perfkit().args(["funccount", &format!("{b}:work_*"), "--", b, "1000"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("FUNC")).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].split_whitespace().eq(["FUNC", "COUNT"]), "{text}");
    assert!(rows[1].split_whitespace().eq(["work_b", "500"]), "{text}");
    assert!(rows[2].split_whitespace().eq(["work_a", "1000"]), "{text}");
}

/// Starts `bin N wait` and waits for its "ready".
fn waiting_target(bin: &Path, n: &str) -> (Killed, BufReader<std::process::ChildStdout>) {
    let mut target = Killed(
        Command::new(bin)
            .args([n, "wait"])
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

#[test]
fn funccount_of_a_process_agrees_with_bpftrace_uprobe_count() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: funccount -p
    if !tools(&["cc", "bpftrace"]) {
        return;
    }
    let bin = ufunc();
    let (mut target, mut target_out) = waiting_target(&bin, "20000");
    let pid = target.0.id();
    let script = format!("uprobe:{}:work_a /pid == {pid}/ {{ @n = count(); }}", bin.display());
    let (bt, mut bt_out) = start_bpftrace(&script);
    let mut line = String::new();
    let (fc, fc_out) =
        start_tracing(&["funccount", "--json", "-p", &pid.to_string(), &format!("{}:work_a", bin.display())]);
    let mut stdin = target.0.stdin.take().unwrap();
    stdin.write_all(b"x").unwrap();
    line.clear();
    target_out.read_line(&mut line).unwrap();
    stdin.write_all(b"x").unwrap();
    target.0.wait().unwrap();
    let ours = json_lines(&stop_tracing(fc, fc_out));
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(bt.0.id() as i32, libc::SIGINT) };
    let mut bt_text = String::new();
    bt_out.read_to_string(&mut bt_text).unwrap();
    let theirs = bt_text
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v["type"] == "map"))
        .unwrap_or_else(|| panic!("{bt_text}"));
    let ours = counts(ours.last().unwrap());
    assert_eq!(ours, pairs(&[("work_a", 20_000)]));
    assert_eq!(theirs["data"]["@n"], 20_000, "bpftrace: {bt_text}");
}

#[test]
fn usdt_probes_are_counted_exactly_and_semaphores_set_then_restored() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = ufunc();
    let b = bin.to_str().unwrap();
    // A command: the semaphore is set before it runs.
    let all = report(&["funccount", "--json", &format!("u:{b}:app:*"), "--", b, "1000"]);
    assert_eq!(counts(&all), pairs(&[("app:guarded", 1000), ("app:plain", 1000)]));
    // u:PATH:NAME, without the provider.
    let plain = report(&["funccount", "--json", &format!("u:{b}:plain"), "--", b, "300"]);
    assert_eq!(counts(&plain), pairs(&[("app:plain", 300)]));
    // Untraced, the guarded probe never fires: its semaphore is 0.
    let (mut target, mut out) = waiting_target(&bin, "500");
    let mut stdin = target.0.stdin.take().unwrap();
    stdin.write_all(b"x").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "sem=0\n");
    stdin.write_all(b"x").unwrap();
    target.0.wait().unwrap();
    // A running process (-p): set while traced, restored after.
    let (mut target, mut out) = waiting_target(&bin, "500");
    let pid = target.0.id().to_string();
    let (fc, fc_out) = start_tracing(&["funccount", "--json", "-p", &pid, &format!("u:{b}:app:guarded")]);
    let mut stdin = target.0.stdin.take().unwrap();
    stdin.write_all(b"x").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "sem=1\n", "the semaphore while traced");
    // Wait for the work to end (the naps: 40 ms), then detach.
    thread::sleep(Duration::from_millis(500));
    let report = json_lines(&stop_tracing(fc, fc_out));
    assert_eq!(counts(report.last().unwrap()), pairs(&[("app:guarded", 500)]));
    stdin.write_all(b"x").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "sem=0\n", "the semaphore after perfkit detached");
    target.0.wait().unwrap();
}

#[test]
fn funclatency_puts_2ms_naps_in_the_2ms_bucket() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: funclatency -m
    if !tools(&["cc"]) {
        return;
    }
    let bin = ufunc();
    let b = bin.to_str().unwrap();
    let func = format!("{b}:nap");
    // Every nap takes 2 ms and a little more: in milliseconds 2 -> 3, in
    // microseconds 1024 -> 2047 (no timer slack) or 2048 -> 4095. On a
    // busy machine some wait longer for a CPU: the program times each nap
    // itself, and perfkit's buckets must hold those times (a count may
    // cross into the next bucket by the probes' own microseconds).
    // JSON is in microseconds whatever the unit flag says (it shapes the
    // text tables): -m and -u give the same keys.
    for flag in ["-m", "-u"] {
        let (div, low, high) = (1_000u64, 1024u64, 4095u64);
        let out = run(perfkit().args(["funclatency", "--json", flag, &func, "--", b, "10"]));
        assert!(out.status.success(), "{}", stderr(&out));
        let r = json_lines(&String::from_utf8_lossy(&out.stdout)).pop().unwrap();
        let naps: Vec<u64> =
            stderr(&out).lines().filter_map(|l| l.strip_prefix("nap ")).map(|n| n.parse().unwrap()).collect();
        assert_eq!(naps.len(), 20);
        assert!(naps.iter().all(|&ns| ns >= 2_000_000), "{naps:?}");
        assert_eq!(r["count"], 20, "{r}");
        // perfkit times from the entry probe to the return probe, inside
        // the program's own window by a few microseconds: each call is in
        // the bucket of its own time, or of that time less 100 us.
        let bucket = |ns: u64| (ns / div).max(1).ilog2() as usize;
        let mut ours = [0u64; 64];
        for b in r["buckets"].as_array().unwrap() {
            ours[bucket(b["low_usecs"].as_u64().unwrap() * div)] += b["count"].as_u64().unwrap();
        }
        let first = bucket(low * div);
        assert!(ours[..first].iter().all(|&c| c == 0), "nothing under 2 ms: {r}");
        for k in 0..64 {
            let at_most = |f: &dyn Fn(u64) -> usize| naps.iter().filter(|&&ns| f(ns) <= k).count() as u64;
            let ours_k: u64 = ours[..=k].iter().sum();
            let (fewest, most) = (at_most(&|ns| bucket(ns)), at_most(&|ns| bucket(ns.saturating_sub(100_000))));
            assert!((fewest..=most).contains(&ours_k), "bucket {k}: {r} against {naps:?}");
        }
        let inside: u64 = ours[first..=bucket(high * div)].iter().sum();
        assert!(inside >= 10, "most naps take 2 ms: {r}");
        let sum = r["sum_nsecs"].as_u64().unwrap();
        assert!(sum >= naps.iter().sum::<u64>() * 99 / 100, "{r}");
    }
    // The text report: bcc's layout, and its average line.
    let out = run(perfkit().args(["funclatency", "-m", &func, "--", b, "10"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let row =
        text.lines().find(|l| l.split_whitespace().take(3).eq(["2", "->", "3"])).unwrap_or_else(|| panic!("{text}"));
    assert!(row.split_whitespace().nth(4).and_then(|c| c.parse::<u64>().ok()) >= Some(10), "{text}");
    assert!(text.contains("count: 20"), "{text}");
}

#[test]
fn bad_probes_are_refused_with_the_reason() {
    let dir = scratch_dir();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["funccount", "vfs_read"], "kprobes"),
        (&["funccount", "p:vfs_read"], "kprobes"),
        (&["funccount", "t:sched"], "t:CATEGORY:NAME"),
        (&["funccount", "u:x"], "u:PATH:PROVIDER:NAME"),
        (&["funccount", "no-such-library-here:f"], "no such file, library"),
        (&["funccount", &format!("{}:f", script.display())], "not an ELF file"),
        (&["funccount", "/nonexistent/x:f"], "No such file"),
        (&["funccount", "c:no_such_function_anywhere"], "nothing matches"),
        (&["funccount", "c:["], "not a glob"),
        (&["funccount"], "a probe is needed"),
        (&["funccount", "c:*"], "narrow the pattern"),
    ];
    // Tracepoints are listed from tracefs, which only root may read.
    // SAFETY: geteuid has no preconditions.
    let root: &[(&[&str], &str)] = if unsafe { libc::geteuid() } == 0 {
        &[(&["funclatency", "t:sched:sched_switch"], "a tracepoint has no return")]
    } else {
        &[]
    };
    let cases: Vec<&(&[&str], &str)> = cases.iter().chain(root).collect();
    for &&(args, want) in &cases {
        let out = run(perfkit().args(args));
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn bcc_interval_duration_and_timestamp_flags_report_as_bcc() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: funccount -i -d -T
    // bcc-flags: funclatency -i -d
    if !tools(&["cc"]) {
        return;
    }
    let bin = ufunc();
    let (target, _out) = waiting_target(&bin, "10");
    let pid = target.0.id().to_string();
    let probe = format!("{}:work_a", bin.display());
    // -i 1 -d 2.5: reports at 1 s, 2 s and the end, each with -T's time.
    let started = Instant::now();
    let out = run(perfkit().args(["funccount", "-T", "-i", "1", "-d", "2.5", "-p", &pid, &probe]));
    assert!(out.status.success(), "{}", stderr(&out));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(2400) && elapsed < Duration::from_secs(10), "{elapsed:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("FUNC")).count(), 3, "{text}");
    let times = text.lines().filter(|l| l.len() == 8 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':').count();
    assert_eq!(times, 3, "{text}");
    let out = run(perfkit().args(["funclatency", "--json", "-u", "-i", "1", "-d", "2.5", "-p", &pid, &probe]));
    let reports = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(reports.len(), 3, "{}", stderr(&out));
    assert!(reports.iter().all(|r| r["count"] == 0 && r.get("unit").is_none()), "{reports:?}");
    assert_eq!(reports[0]["interval_seconds"], 1.0);
}

#[test]
fn funclatency_of_one_process_in_microseconds_with_times() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    // bcc-flags: funclatency -p -u -T
    let bin = ufunc();
    let (mut selected, mut selected_out) = waiting_target(&bin, "10");
    let (mut other, mut other_out) = waiting_target(&bin, "10");
    let pid = selected.0.id().to_string();
    let probe = format!("{}:nap", bin.display());
    let (fl, fl_out) = start_tracing(&["funclatency", "-u", "-T", "-i", "1", "-d", "2.5", "-p", &pid, &probe]);
    // Both do their 20 naps; only the selected one's are timed.
    for (t, out) in [(&mut selected, &mut selected_out), (&mut other, &mut other_out)] {
        let mut stdin = t.0.stdin.take().unwrap();
        stdin.write_all(b"x").unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        stdin.write_all(b"x").unwrap();
        t.0.wait().unwrap();
    }
    let mut fl = fl;
    let status = fl.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = fl_out.join().unwrap();
    // Three reports (1 s, 2 s, the end at 2.5 s), each after its time.
    assert_eq!(text.lines().filter(|l| l.contains("usecs") && l.contains(": count")).count(), 3, "{text}");
    let times = text.lines().filter(|l| l.len() == 8 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':').count();
    assert_eq!(times, 3, "{text}");
    // In microseconds: 20 naps of 2 ms and more, from 1024 us up.
    let mut total = 0;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 5 && f[1] == "->" && f[3] == ":" {
            let (low, n): (u64, u64) = (f[0].parse().unwrap(), f[4].parse().unwrap());
            assert!(n == 0 || low >= 1024, "a nap under 1 ms: {text}");
            total += n;
        }
    }
    assert_eq!(total, 20, "{text}");
}
