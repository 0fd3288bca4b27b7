//! trace and argdist against known answers: a C program
//! (tests/workloads/tracee.c) that calls `f(int a, const char *s)` 13 times
//! with known arguments (a 299-byte string last), `g(6)` (which returns
//! 42) 3 times, `h(v)` for six known values, `nap()` (2 ms) 5 times, fires
//! the USDT probe `tracee:hit(a, s)` beside each `f`, and opens a path it
//! is given. trace's messages are compared with bpftrace's `uprobe:`
//! printf of the same process in the same run.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::util::*;

fn tracee() -> PathBuf {
    build_c("cc", "tracee.c", "tracee", &["-O1"])
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The calls of f, in order: (a, s).
fn f_calls() -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for (a, s) in [(1, "one"), (2, "two"), (3, "three"), (6, "six")] {
        for _ in 0..a {
            out.push((a, s.to_owned()));
        }
    }
    out.push((100, "x".repeat(299)));
    out
}

/// Runs perfkit to the end of the command; its stdout.
fn output(args: &[&str]) -> String {
    let out = run(perfkit().args(args));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The messages of `func` in a JSON trace.
fn messages(events: &[Value], func: &str) -> Vec<String> {
    events.iter().filter(|e| e["func"] == func).map(|e| e["message"].as_str().unwrap().to_owned()).collect()
}

/// Starts `tracee PATH wait` and waits for its "ready".
fn waiting(bin: &Path, path: &str) -> (Killed, std::process::ChildStdin) {
    let mut target = Killed(
        Command::new(bin)
            .args([path, "wait"])
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
    let stdin = target.0.stdin.take().unwrap();
    (target, stdin)
}

#[test]
fn trace_prints_each_call_as_bpftrace_does_with_returns_and_filters() {
    // bcc-flags: trace -p -Z
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc", "bpftrace"]) {
        return;
    }
    let bin = tracee();
    let b = bin.to_str().unwrap();
    let (mut target, mut go) = waiting(&bin, "/nonexistent/perfkit-trace");
    let pid = target.0.id().to_string();
    let script = format!("uprobe:{b}:f /pid == {pid}/ {{ printf(\"%d %s\\n\", arg0, str(arg1)); }}");
    let (bt, mut bt_out) = start_bpftrace(&script);
    let f = format!("{b}:f \"a=%d s=%s\", arg1, arg2");
    let g = format!("r:{b}:g \"ret=%d\", retval");
    let filtered = format!("{b}:f (arg1 == 3 || arg1 > 50) \"kept %d\", arg1");
    let (tool, tool_out) = start_tracing(&["trace", "--json", "-Z", "127", "-p", &pid, &f, &g, &filtered]);
    go.write_all(b"x").unwrap();
    target.0.wait().unwrap();
    let events = json_lines(&stop_tracing(tool, tool_out));
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(bt.0.id() as i32, libc::SIGINT) };
    let mut bt_text = String::new();
    bt_out.read_to_string(&mut bt_text).unwrap();
    let theirs: Vec<String> = bt_text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "printf")
        .flat_map(|v| v["data"].as_str().unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    // Each call of f, in order, with its values; the long string cut at
    // the 127 bytes read, and marked.
    let ours: Vec<String> =
        events.iter().filter(|e| e["probe"] == f.as_str()).map(|e| e["message"].as_str().unwrap().to_owned()).collect();
    let want: Vec<String> = f_calls()
        .iter()
        .map(|(a, s)| if s.len() > 127 { format!("a={a} s={}...", &s[..127]) } else { format!("a={a} s={s}") })
        .collect();
    assert_eq!(ours, want);
    let cut: Vec<bool> =
        events.iter().filter(|e| e["probe"] == f.as_str()).map(|e| e["truncated"].as_bool().unwrap()).collect();
    assert_eq!(cut.iter().filter(|&&c| c).count(), 1, "only the 299-byte string is cut");
    assert!(events.iter().all(|e| e["pid"].as_u64() == Some(target.0.id() as u64)));
    // bpftrace's printf of the same calls (its strings are cut at 64 bytes).
    let theirs_short: Vec<String> = theirs.iter().map(|l| l.chars().take(40).collect()).collect();
    let ours_short: Vec<String> =
        f_calls().iter().map(|(a, s)| format!("{a} {s}").chars().take(40).collect()).collect();
    assert_eq!(theirs_short, ours_short, "bpftrace: {bt_text}");
    // The return value of each call of g.
    assert_eq!(messages(&events, "g"), vec!["ret=42"; 3]);
    // The filter kept exactly the calls with a == 3 or a > 50.
    let kept: Vec<String> =
        events.iter().filter(|e| e["probe"] == filtered.as_str()).map(|e| e["message"].to_string()).collect();
    assert_eq!(kept, ["\"kept 3\"", "\"kept 3\"", "\"kept 3\"", "\"kept 100\""]);
}

#[test]
fn trace_prints_tracepoint_fields_usdt_arguments_and_bccs_columns() {
    // bcc-flags: trace -M -t -T -n -f
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = tracee();
    let b = bin.to_str().unwrap();
    let dir = scratch_dir();
    let path = dir.path().join("opened-by-tracee");
    let p = path.to_str().unwrap();
    let tp = format!("t:syscalls:sys_enter_openat (args->filename == \"{p}\") \"open %s\", args->filename");
    let usdt = format!("u:{b}:tracee:hit \"%d %s\", arg1, arg2");
    let events = json_lines(&output(&["trace", "--json", &tp, &usdt, "--", b, p]));
    assert_eq!(messages(&events, "syscalls:sys_enter_openat"), vec![format!("open {p}")]);
    let want: Vec<String> = f_calls()
        .iter()
        .map(|(a, s)| if s.len() > 80 { format!("{a} {}...", &s[..80]) } else { format!("{a} {s}") })
        .collect();
    assert_eq!(messages(&events, "tracee:hit"), want, "USDT arguments, strings cut at -Z's default 80");
    // The text: bcc's columns, PID TID COMM FUNC and the message; -t puts
    // seconds since the start first; -M stops after that many; -f keeps
    // messages holding the text; -n processes whose name holds it.
    let f = format!("{b}:f \"a=%d s=%s\", arg1, arg2");
    let text = output(&["trace", "-t", "-M", "4", "-f", "s=six", "-n", "trac", &f, "--", b]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].split_whitespace().eq(["TIME", "PID", "TID", "COMM", "FUNC", "-"]), "{text}");
    assert_eq!(lines.len(), 5, "{text}");
    for l in &lines[1..] {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert!(w[0].parse::<f64>().is_ok_and(|t| (0.0..60.0).contains(&t)), "{l}");
        assert_eq!(&w[3..], ["tracee", "f", "a=6", "s=six"], "{l}");
    }
    let none = output(&["trace", "-n", "no-such-name", &f, "--", b]);
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    // -T: the clock time, HH:MM:SS.
    let text = output(&["trace", "-T", "-M", "1", &f, "--", b]);
    let row = text.lines().nth(1).unwrap_or_else(|| panic!("{text}"));
    let t = row.split_whitespace().next().unwrap().as_bytes();
    assert!(t.len() == 8 && t[2] == b':' && t[5] == b':', "{text}");
}

#[test]
fn argdist_counts_each_value_and_buckets_histograms_exactly() {
    // bcc-flags: argdist -C -H -c -T -z -i
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = tracee();
    let b = bin.to_str().unwrap();
    let a = format!("p:{b}:f(int a, char *s):int:a");
    let s = format!("p:{b}:f(int a, char *s):char*:s");
    let big = format!("p:{b}:f(int a, char *s):int:a:a > 2#big ones");
    let ret = format!("r:{b}:g(int x):int:$retval");
    let h = format!("p:{b}:h(unsigned long v):u64:v");
    let lat = format!("r:{b}:nap():u64:$latency");
    let out = output(&[
        "argdist", "--json", "-c", "-i", "30", "-z", "4", "-C", &a, "-C", &s, "-C", &big, "-C", &ret, "-H", &h, "-H",
        &lat, "--", b,
    ]);
    let report = json_lines(&out).pop().unwrap_or_else(|| panic!("{out}"));
    let probes = report["probes"].as_array().unwrap();
    let counts = |i: usize| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = probes[i]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["values"][0].to_string(), c["count"].as_u64().unwrap()))
            .collect();
        v.sort();
        v
    };
    let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> { v.iter().map(|(k, c)| ((*k).to_owned(), *c)).collect() };
    assert_eq!(counts(0), pairs(&[("1", 1), ("100", 1), ("2", 2), ("3", 3), ("6", 6)]), "{report}");
    // -z 4: strings cut at 4 bytes, and marked.
    assert_eq!(
        counts(1),
        pairs(&[("\"one\"", 1), ("\"six\"", 6), ("\"thre...\"", 3), ("\"two\"", 2), ("\"xxxx...\"", 1)]),
        "{report}"
    );
    assert_eq!(probes[2]["label"], "big ones");
    assert_eq!(counts(2), pairs(&[("100", 1), ("3", 3), ("6", 6)]), "the filter a > 2: {report}");
    assert_eq!(counts(3), pairs(&[("42", 3)]), "{report}");
    // h's values 1, 3, 5, 6, 7, 1000: buckets 0-1, 2-3, 4-7 (three), 512-1023.
    let buckets: Vec<(u64, u64)> = probes[4]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["count"] != 0)
        .map(|b| (b["low"].as_u64().unwrap(), b["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(buckets, [(0, 1), (2, 1), (4, 3), (512, 1)], "{report}");
    // Five 2 ms naps: 2^20 to 2^22 - 1 ns (2 ms and the probes' cost, or
    // a busy machine's wait for a CPU).
    let naps: Vec<(u64, u64)> = probes[5]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["count"] != 0)
        .map(|b| (b["low"].as_u64().unwrap(), b["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(naps.iter().map(|n| n.1).sum::<u64>(), 5, "{report}");
    assert!(naps.iter().all(|n| n.0 >= 1 << 20), "{report}");
    // The text: bcc's COUNT/EVENT rows, the largest last; -T 2 keeps the
    // two largest.
    let text = output(&["argdist", "-c", "-i", "30", "-T", "2", "-C", &a, "--", b]);
    let rows: Vec<&str> = text.lines().skip_while(|l| !l.contains("COUNT")).collect();
    assert!(rows[0].split_whitespace().eq(["COUNT", "EVENT"]), "{text}");
    assert!(rows[1].split_whitespace().eq(["3", "a", "=", "3"]), "{text}");
    assert!(rows[2].split_whitespace().eq(["6", "a", "=", "6"]), "{text}");
    assert_eq!(rows.len(), 3, "{text}");
}

#[test]
fn argdist_reports_every_interval_and_stops_after_n_or_the_duration() {
    // bcc-flags: argdist -p -n -d
    let Some(_serial) = privileged() else { return };
    if !tools(&["cc"]) {
        return;
    }
    let bin = tracee();
    let b = bin.to_str().unwrap();
    let (mut target, mut go) = waiting(&bin, "/nonexistent/perfkit-argdist");
    let pid = target.0.id().to_string();
    let a = format!("p:{b}:f(int a, char *s):int:a");
    // -n 2: two outputs, one a second, then exit; the calls come between.
    let (tool, out) = start_tracing(&["argdist", "--json", "-i", "1", "-n", "2", "-p", &pid, "-C", &a]);
    go.write_all(b"x").unwrap();
    target.0.wait().unwrap();
    let mut tool = tool;
    tool.0.wait().unwrap();
    let reports = json_lines(&out.join().unwrap());
    assert_eq!(reports.len(), 2, "{reports:?}");
    // Cleared at each interval (no -c): the 13 calls are counted once.
    let total: u64 = reports
        .iter()
        .flat_map(|r| r["probes"][0]["counts"].as_array().unwrap().iter().map(|c| c["count"].as_u64().unwrap()))
        .sum();
    assert_eq!(total, 13, "{reports:?}");
    // -d: the duration, with a report at each interval and at the end.
    let (target, _go) = waiting(&bin, "/nonexistent/perfkit-argdist");
    let pid = target.0.id().to_string();
    let out = output(&["argdist", "--json", "-i", "1", "-d", "2.5", "-p", &pid, "-C", &a]);
    assert_eq!(json_lines(&out).len(), 3, "{out}");
}

#[test]
fn bad_expressions_are_refused_with_the_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["trace", "/bin/true:main \"%d %d\", arg1"], "2 conversions and 1 arguments"),
        (&["trace", "/bin/true:main \"%q\", arg1"], "%q is not taken"),
        (&["trace", "/bin/true:main (arg1 >"], "not closed"),
        (&["trace", "/bin/true:main (arg1 > ) \"x\""], "ends too early"),
        (&["trace", "/bin/true:main arg1"], "double quotes"),
        (&["trace", "-Z", "500", "/bin/true:main"], "1 to 127"),
        (&["trace", "vfs_read"], "kprobes"),
        (&["argdist", "-C", "/bin/true:main(int a):int:a"], "expected {p,r,t,u}"),
        (&["argdist", "-C", "p:/bin/true:main(float a):int:a"], "unknown type"),
        (&["argdist", "-H", "p:/bin/true:main(char *s):char*:s"], "count strings with -C"),
        (&["argdist"], "at least one -C or -H"),
    ];
    for &(args, want) in cases {
        let out = run(perfkit().args(args));
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A chain as long as the text allows parsed into a tree as deep as it
    // is long, and compiling it overflowed the main thread's stack (perfkit
    // aborted with SIGABRT): refused when parsed.
    let chain = vec!["1"; 2000].join("+");
    for args in [
        ["trace".to_owned(), format!("c:malloc ({chain})")],
        ["-C".to_owned(), format!("p:c:malloc(size_t n):int:{chain}")],
    ] {
        let mut cmd = perfkit();
        if args[0] == "-C" {
            cmd.arg("argdist");
        }
        let out = run(cmd.args(&args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("more than 128 operators"), "{err}");
    }
    // Names resolved against the probe: root reads the ELF file and tracefs.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let root: &[(&[&str], &str)] = &[
            (&["trace", "c:malloc \"%d\", retval"], "r:LIB:FUNC"),
            (&["trace", "t:syscalls:sys_enter_openat \"%s\", args->nope"], "no field \"nope\""),
            (&["trace", "r:c:malloc \"%d\", arg1"], "sees retval"),
            (&["argdist", "-C", "p:c:malloc(size_t n):u64:$latency"], "return probes"),
        ];
        for &(args, want) in root {
            let out = run(perfkit().args(args));
            let err = stderr(&out);
            assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
        }
    }
}
