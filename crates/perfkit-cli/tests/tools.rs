//! The eBPF toolset against known answers: off-CPU time of a thread that
//! sleeps 10 ms at a time, run-queue latency of pinned CPU hogs against
//! their schedstat, exactly N direct writes to a loop device, exactly
//! 100,000 getppid calls (against bpftrace), known execs, opens, a TCP
//! transfer of a known size, SYN retransmissions, and Prometheus reading
//! the histograms.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::*;

fn workload(source: &str, name: &str) -> PathBuf {
    build_c("cc", source, name, &["-O1", "-pthread", "-fno-omit-frame-pointer"])
}

pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs perfkit with `args` and returns its stdout, asserting success.
pub(crate) fn tool(args: &[&str]) -> String {
    let out = run(perfkit().args(args));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Stops a background tool with SIGINT (its final report) and returns its
/// stdout.
pub(crate) fn stop_tool(tool: Killed, reader: thread::JoinHandle<String>) -> String {
    let mut tool = tool;
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(tool.0.id() as i32, libc::SIGINT) };
    let status = tool.0.wait().unwrap();
    assert!(ended_by(status, libc::SIGINT), "the tool failed at SIGINT: {status}");
    reader.join().unwrap()
}

#[test]
fn offcpu_puts_10ms_naps_under_their_path_and_spinning_nowhere() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: offcpu -m -M
    let bin = workload("sleeper.c", "sleeper");
    let dir = scratch_dir();
    let folded = dir.path().join("off.folded");
    let out =
        run(perfkit().args(["offcpu", "--per-thread", "-f", "folded", "-o"]).arg(&folded).arg("--").arg(&bin).arg("3"));
    assert!(out.status.success(), "{}", stderr(&out));
    let stacks = read_folded(&folded);
    let under = |root: &str, path: &str| -> u64 {
        stacks.iter().filter(|(s, _)| s.starts_with(root) && s.contains(path)).map(|(_, c)| c).sum()
    };
    // Microseconds in nanosleep under nap_loop;take_nap, about 3 s.
    let naps = under("napper-", "nap_loop;take_nap;");
    let nanosleep =
        stacks.iter().filter(|(s, _)| s.contains("take_nap;") && s.contains("nanosleep")).map(|(_, c)| c).sum::<u64>();
    assert!((2_700_000..=3_300_000).contains(&naps), "napper off CPU {naps} us: {stacks:?}");
    assert!(nanosleep * 100 >= naps * 95, "the naps are in nanosleep: {nanosleep} of {naps}");
    let spinner: u64 = stacks.iter().filter(|(s, _)| s.starts_with("spinner-")).map(|(_, c)| c).sum();
    assert!(spinner < 30_000, "a spinning thread blocked for {spinner} us");
    // Each block is about 10 ms: blocks of 9 to 20 ms hold nearly all the
    // time; blocks under 5 ms hold almost none.
    let folded2 = dir.path().join("band.folded");
    let out = run(perfkit()
        .args(["offcpu", "-m", "9ms", "-M", "20ms", "--per-thread", "-f", "folded", "-o"])
        .arg(&folded2)
        .arg("--")
        .arg(&bin)
        .arg("2"));
    assert!(out.status.success(), "{}", stderr(&out));
    let band: u64 = read_folded(&folded2).iter().filter(|(s, _)| s.contains("take_nap;")).map(|(_, c)| c).sum();
    assert!(band >= 1_700_000, "blocks of 9-20 ms hold {band} us of 2 s");
    let folded3 = dir.path().join("short.folded");
    let out =
        run(perfkit().args(["offcpu", "-M", "5ms", "-f", "folded", "-o"]).arg(&folded3).arg("--").arg(&bin).arg("1"));
    let short: u64 = if out.status.success() {
        read_folded(&folded3).iter().filter(|(s, _)| s.contains("take_nap;")).map(|(_, c)| c).sum()
    } else {
        0
    };
    assert!(short < 100_000, "blocks under 5 ms hold {short} us");
}

fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn runqlat_sees_milliseconds_for_pinned_hogs_and_counts_every_switch() {
    let Some(_serial) = privileged() else { return };
    let burner = workload("burner.c", "burner");
    let dir = scratch_dir();
    let pcount_file = dir.path().join("pcount");
    // Two hogs on CPU 0, and the measured one with them.
    let _hogs: Vec<Killed> = (0..2)
        .map(|_| Killed(Command::new("taskset").args(["-c", "0"]).arg(&burner).arg("6").spawn().unwrap()))
        .collect();
    thread::sleep(Duration::from_millis(200));
    let out =
        run(perfkit().args(["runqlat", "--json", "--", "taskset", "-c", "0"]).arg(&burner).arg("3").arg(&pcount_file));
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = json_lines(&String::from_utf8(out.stdout).unwrap());
    let h = &reports.last().unwrap()["histograms"][0];
    let count = h["count"].as_u64().unwrap();
    let pcount: u64 = fs::read_to_string(&pcount_file).unwrap().trim().parse().unwrap();
    assert!(count > 100, "{h}");
    assert!(
        count.abs_diff(pcount) * 100 <= pcount * 5 + 300,
        "runqlat counted {count} waits, schedstat {pcount} times scheduled in"
    );
    let median = median_us(h);
    assert!(median >= 1000, "three hogs on one CPU wait milliseconds, not {median} us: {h}");
    // Unpinned on an otherwise idle machine: microseconds.
    drop(_hogs);
    let out = run(perfkit().args(["runqlat", "--json", "--"]).arg(&burner).arg("1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let reports = json_lines(&String::from_utf8(out.stdout).unwrap());
    let h = &reports.last().unwrap()["histograms"][0];
    if cpus() > 1 {
        assert!(median_us(h) < 1000, "alone it waits microseconds: {h}");
    }
    // Text: bcc's layout.
    let text = tool(&["runqlat", "--", "true"]);
    assert!(text.contains("usecs               : count     distribution"), "{text}");
}

/// The upper bound of the bucket holding the median, in microseconds.
fn median_us(h: &Value) -> u64 {
    let total = h["count"].as_u64().unwrap();
    let mut seen = 0;
    for b in h["buckets"].as_array().unwrap() {
        seen += b["count"].as_u64().unwrap();
        if seen * 2 >= total {
            return b["high_usecs"].as_u64().unwrap();
        }
    }
    u64::MAX
}

#[test]
fn biosnoop_and_biolatency_see_exactly_n_direct_writes() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: biolatency -D -F
    let dir = tempfile::Builder::new().prefix("perfkit-bio-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dev = Loop::new(dir.path());
    thread::sleep(Duration::from_millis(500));
    const N: usize = 37;
    let (snoop, snoop_out) = start_tool(&["biosnoop", "--json"], "Tracing");
    let ready = Instant::now();
    let (lat, lat_out) = start_tool(&["biolatency", "-D", "-F", "--json"], "Tracing block device I/O");
    thread::sleep(Duration::from_millis(800));
    let dd_started = ready.elapsed().as_secs_f64();
    let dd = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", dev.0), "bs=4k", &format!("count={N}"), "oflag=direct"])
        .output()
        .unwrap();
    assert!(dd.status.success());
    thread::sleep(Duration::from_millis(500));
    let events = json_lines(&stop_tool(snoop, snoop_out));
    let writes: Vec<&Value> = events
        .iter()
        .filter(|e| e["disk"] == dev.name() && e["op"].as_str().is_some_and(|o| o.contains('W')))
        .collect();
    assert_eq!(writes.len(), N, "{events:?}");
    assert!(writes.iter().all(|e| e["bytes"] == 4096 && e["comm"] == "dd"), "{writes:?}");
    // time_s counts from the tool's start (docs/JSON.md), not from the
    // first I/O: the writes began at least 0.8 s after it was ready.
    let first = writes[0]["time_s"].as_f64().unwrap();
    assert!(first >= dd_started - 0.05 && first <= dd_started + 2.0, "first write at {first} s, dd at {dd_started} s");
    let report = json_lines(&stop_tool(lat, lat_out));
    let hists = report.last().unwrap()["histograms"].as_array().unwrap().clone();
    let written: u64 = hists
        .iter()
        .filter(|h| h["per"]["disk"] == dev.name() && h["per"]["flags"].as_str().is_some_and(|f| f.contains("Write")))
        .map(|h| h["count"].as_u64().unwrap())
        .sum();
    assert_eq!(written as usize, N, "{hists:?}");
}

#[test]
fn offcpu_leaf_is_the_same_with_another_tracer_on_sched_switch() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["bpftrace"]) {
        return;
    }
    let bin = workload("sleeper.c", "sleeper");
    let dir = scratch_dir();
    // The leaves of the naps' stacks, and every frame seen.
    let leaves = |name: &str| -> (std::collections::BTreeSet<String>, Vec<String>) {
        let folded = dir.path().join(name);
        let out = run(perfkit().args(["offcpu", "-f", "folded", "-o"]).arg(&folded).arg("--").arg(&bin).arg("1"));
        assert!(out.status.success(), "{}", stderr(&out));
        let stacks = read_folded(&folded);
        let naps = stacks.iter().filter(|(s, _)| s.contains("take_nap;"));
        let leaves = naps.map(|(s, _)| s.rsplit(';').next().unwrap().to_owned()).collect();
        (leaves, stacks.into_iter().map(|(s, _)| s).collect())
    };
    let (alone, _) = leaves("alone.folded");
    // bpftrace on the same tracepoint: the kernel now calls both programs
    // through __traceiter_sched_switch.
    let mut bt = Killed(
        Command::new("bpftrace")
            .args(["-e", "tracepoint:sched:sched_switch { @n = count(); }"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut attached = String::new();
    BufReader::new(bt.0.stdout.as_mut().unwrap()).read_line(&mut attached).unwrap();
    assert!(attached.contains("Attaching"), "bpftrace: {attached}");
    let (shared, stacks) = leaves("shared.folded");
    drop(bt);
    assert_eq!(alone, shared, "the leaf moved with another tracer attached");
    assert!(alone.iter().all(|l| l == "__schedule_[k]"), "{alone:?}");
    for s in &stacks {
        for hook in ["__traceiter_", "bpf_trace_run", "__bpf_trace_", "bpf_prog_"] {
            assert!(!s.contains(hook), "a tracing frame in {s}");
        }
    }
}

#[test]
fn off_cpu_json_says_microseconds() {
    let Some(_serial) = privileged() else { return };
    let bin = workload("sleeper.c", "sleeper");
    let dir = scratch_dir();
    for (args, hz) in [(&["offcpu"][..], 0), (&["profile", "--off-cpu"][..], 99)] {
        let json = dir.path().join("off.json");
        let out = run(perfkit().args(args).args(["-f", "json", "-o"]).arg(&json).arg("--").arg(&bin).arg("1"));
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
        let meta = &doc["meta"];
        assert_eq!(meta["unit"], "microseconds", "{args:?}: {meta}");
        assert!(meta.get("total_samples").is_none(), "{args:?}: microseconds called samples: {meta}");
        let total = meta["total_us"].as_u64().unwrap_or(0);
        let sum: u64 = doc["stacks"].as_array().unwrap().iter().map(|s| s["count"].as_u64().unwrap()).sum();
        assert_eq!(total, sum, "{meta}");
        // About one second of naps, in microseconds.
        assert!(total >= 800_000, "{args:?}: {total} us");
        assert_eq!(meta["frequency_hz"], hz, "{args:?}: {meta}");
    }
}

#[test]
fn per_process_names_outlive_the_processes() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: syscount -P
    // bcc-flags: runqlat -P
    let bin = workload("syscalls.c", "syscalls");
    let script = format!("{b} 3000; {b} 5000; /bin/true", b = bin.display());
    // Every process has exited by the report at the end of the command.
    let out = tool(&["syscount", "-P", "--json", "--", "/bin/sh", "-c", &script]);
    let rows = json_lines(&out).last().unwrap()["rows"].as_array().unwrap().clone();
    for n in [3000, 5000] {
        let row = rows
            .iter()
            .find(|r| r["count"].as_u64().is_some_and(|c| (n..n + 400).contains(&c)))
            .unwrap_or_else(|| panic!("no process with {n} calls: {rows:?}"));
        assert_eq!(row["comm"], "syscalls", "{row}");
    }
    assert!(rows.iter().all(|r| r["comm"].as_str().is_some_and(|c| !c.is_empty())), "{rows:?}");
    assert!(rows.iter().any(|r| r["comm"] == "sh"), "{rows:?}");
    let out = tool(&["runqlat", "-P", "--json", "--", "/bin/sh", "-c", &script]);
    let hists = json_lines(&out).last().unwrap()["histograms"].as_array().unwrap().clone();
    let names: Vec<&str> = hists.iter().map(|h| h["per"]["comm"].as_str().unwrap_or("")).collect();
    assert!(names.iter().all(|c| !c.is_empty()), "{names:?}");
    assert!(names.contains(&"syscalls") && names.contains(&"sh"), "{names:?}");
}

#[test]
fn syscount_counts_exactly_like_bpftrace() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: syscount -L
    if !tools(&["bpftrace", "strace"]) {
        return;
    }
    let bin = workload("syscalls.c", "syscalls");
    // As a command: the count is exact.
    let out = tool(&["syscount", "--json", "-L", "--", bin.to_str().unwrap(), "100000"]);
    let report = json_lines(&out);
    let rows = report.last().unwrap()["rows"].as_array().unwrap().clone();
    let getppid = rows.iter().find(|r| r["syscall"] == "getppid").unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(getppid["count"], 100_000);
    let ours_us = getppid["time_usecs"].as_f64().unwrap();

    // strace -c on the same work: the same count, time of the same order.
    let st = Command::new("strace").args(["-c", "-e", "trace=getppid"]).arg(&bin).arg("100000").output().unwrap();
    let text = String::from_utf8_lossy(&st.stderr);
    let line = text.lines().find(|l| l.trim_end().ends_with("getppid")).unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[3], "100000", "strace: {line}");
    let strace_us = cols[1].parse::<f64>().unwrap() * 1e6;
    assert!(
        ours_us > 0.0 && ours_us < strace_us * 10.0 && ours_us * 100.0 > strace_us,
        "ours {ours_us} us, strace {strace_us} us"
    );

    // By PID, beside bpftrace counting the same process's calls.
    let mut target = Killed(Command::new(&bin).args(["100000", "wait"]).stdin(Stdio::piped()).spawn().unwrap());
    let pid = target.0.id();
    // `args->id`: the spelling bpftrace 0.17 (Debian 12) reads.
    let script = format!("tracepoint:raw_syscalls:sys_enter /pid == {pid} && args->id == 110/ {{ @n = count(); }}");
    let (bt, mut bt_out) = start_bpftrace(&script);
    let (sc, sc_out) = start_tool(&["syscount", "--json", "-p", &pid.to_string()], "Tracing syscalls");
    target.0.stdin.take().unwrap().write_all(b"x").unwrap();
    target.0.wait().unwrap();
    thread::sleep(Duration::from_millis(300));
    let ours = json_lines(&stop_tool(sc, sc_out));
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(bt.0.id() as i32, libc::SIGINT) };
    let mut bt_text = String::new();
    bt_out.read_to_string(&mut bt_text).unwrap();
    let theirs = bt_text
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v["type"] == "map"))
        .unwrap_or_else(|| panic!("{bt_text}"));
    let ours =
        ours.last().unwrap()["rows"].as_array().unwrap().iter().find(|r| r["syscall"] == "getppid").cloned().unwrap();
    assert_eq!(theirs["data"]["@n"], 100_000);
    assert_eq!(ours["count"], theirs["data"]["@n"], "perfkit and bpftrace agree");
}

#[test]
fn execsnoop_lists_every_exec_with_its_arguments_and_result() {
    let Some(_serial) = privileged() else { return };
    let marker = format!("perfkit-exec-{}", std::process::id());
    let script = format!(
        "for i in 1 2 3 4 5; do /bin/echo {marker}-$i > /dev/null; done; /nonexistent/{marker} 2>/dev/null; true"
    );
    let out = tool(&["execsnoop", "--json", "--", "/bin/sh", "-c", &script]);
    let events = json_lines(&out);
    for i in 1..=5 {
        let arg = format!("{marker}-{i}");
        let e = events.iter().find(|e| e["args"].as_array().is_some_and(|a| a.iter().any(|x| x == arg.as_str())));
        let e = e.unwrap_or_else(|| panic!("{arg} missing: {events:?}"));
        assert_eq!(e["ret"], 0);
        assert_eq!(e["comm"], "echo");
        assert_eq!(e["path"], "/bin/echo");
    }
    let failed =
        events.iter().find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(&marker))).expect("the failed exec");
    assert_eq!(failed["ret"], -2, "ENOENT: {failed}");
    // Text, in bcc's columns.
    let text = tool(&["execsnoop", "--", "/bin/true", "only-arg"]);
    assert!(text.starts_with("PCOMM"), "{text}");
    assert!(text.lines().any(|l| l.contains("/bin/true only-arg") || l.contains("true only-arg")), "{text}");
}

#[test]
fn execsnoop_sees_literal_arguments_long_ones_and_no_path_search() {
    let Some(_serial) = privileged() else { return };
    let bin = workload("forkexec.c", "forkexec");
    let out = tool(&["execsnoop", "--json", "--"].into_iter().chain([bin.to_str().unwrap(), "40"]).collect::<Vec<_>>());
    let events = json_lines(&out);
    // 40 children exec /bin/true with literal strings: each row has the
    // path and every argument (read from the new image, not from the
    // child's untouched pages).
    let literal: Vec<_> = events.iter().filter(|e| e["args"][1] == "literal-one").collect();
    assert_eq!(literal.len(), 40, "{events:?}");
    for e in &literal {
        assert_eq!(e["path"], "/bin/true", "{e}");
        assert_eq!(e["args"], serde_json::json!(["true", "literal-one", "literal-two"]), "{e}");
        assert_eq!(e["ret"], 0);
        assert_eq!(e["args_truncated"], false);
    }
    // A 299-byte argument: whole in a successful exec (read from the new
    // image), cut and said so in a failed one.
    let long = "L".repeat(299);
    let ok = events.iter().find(|e| e["args"][1] == "long-ok").unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(ok["args"][2], long.as_str(), "{ok}");
    assert_eq!(ok["args_truncated"], false);
    // The failed exec has no new image: its literal path and first
    // arguments sit in pages the child never touched, read as null (not
    // as ""); the 299-byte argument on its stack is read, and cut.
    let failed = events.iter().find(|e| e["ret"] == -2).unwrap_or_else(|| panic!("{events:?}"));
    assert!(failed["path"].is_null() || failed["path"] == "/nonexistent/perfkit-missing", "{failed}");
    assert!(failed["args"][1].is_null() || failed["args"][1] == "long-missing", "{failed}");
    assert_eq!(failed["args_truncated"], true, "a 299-byte argument kept as 127: {failed}");
    assert!(failed["args"][2].as_str().is_some_and(|a| a.len() < 299 && long.starts_with(a)), "{failed}");
    // Nothing is printed empty: a value not read is null.
    for e in &events {
        assert_ne!(e["path"], "", "{e}");
        assert!(e["args"].as_array().unwrap().iter().all(|a| a != ""), "{e}");
    }
    // perfkit's own PATH search is not shown: with two missing
    // directories first in PATH, the command's exec is the only one.
    let out = run(perfkit().env("PATH", "/nonexistent-a:/nonexistent-b:/usr/bin:/bin").args([
        "execsnoop",
        "--json",
        "--",
        "true",
        "only-exec",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["ret"], 0);
    assert_eq!(events[0]["path"], "/usr/bin/true");
    assert_eq!(events[0]["args"], serde_json::json!(["true", "only-exec"]));
}

#[test]
fn execsnoop_counts_a_lost_exec_once() {
    let Some(_serial) = privileged() else { return };
    let bin = workload("forkexec.c", "forkexec");
    let n = 3000;
    let mut child = perfkit()
        .args(["execsnoop", "--json", "--"])
        .arg(&bin)
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut ready = String::new();
    while err.read_line(&mut ready).unwrap_or(0) > 0 && !ready.contains("Tracing execs") {}
    assert!(ready.contains("Tracing execs"), "{ready}");
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let child = Killed(child);
    // Stopped while the command runs, perfkit reads nothing: the 1 MiB
    // ring buffer fills and the rest of the execs are lost.
    thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGSTOP) };
    thread::sleep(Duration::from_secs(5));
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGCONT) };
    let mut child = child;
    let status = child.0.wait().unwrap();
    let (out, err) = (out_reader.join().unwrap(), err_reader.join().unwrap());
    assert!(status.success(), "{err}");
    let rows = json_lines(&out).len() as u64;
    let lost: u64 = err
        .lines()
        .filter_map(|l| l.strip_prefix("perfkit execsnoop: ")?.split(" events lost").next()?.parse::<u64>().ok())
        .sum();
    // Every exec is either shown or counted lost, once: the command's own
    // exec, N children, and two with a long argument.
    assert!(lost > 0, "nothing was lost: the test did not fill the ring ({rows} rows): {err}");
    assert_eq!(rows + lost, n + 3, "{rows} rows and {lost} lost: {err}");
}

#[test]
fn opensnoop_shows_opens_of_a_path_and_a_failure() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: opensnoop -x
    let dir = scratch_dir();
    let path = dir.path().join("unique-file");
    fs::write(&path, "x").unwrap();
    let missing = dir.path().join("missing-file");
    let script = format!("cat {} > /dev/null; cat {} 2>/dev/null; true", path.display(), missing.display());
    let events = json_lines(&tool(&["opensnoop", "--json", "--", "sh", "-c", &script]));
    let ok = events.iter().find(|e| e["path"] == path.to_str().unwrap()).unwrap_or_else(|| panic!("{events:?}"));
    assert!(ok["fd"].as_i64().unwrap() >= 0 && ok["errno"] == 0 && ok["comm"] == "cat");
    let bad = events.iter().find(|e| e["path"] == missing.to_str().unwrap()).unwrap();
    assert_eq!(bad["errno"], 2, "{bad}");
    // -x: only the failure.
    let events = json_lines(&tool(&["opensnoop", "-x", "--json", "--", "sh", "-c", &script]));
    assert!(events.iter().all(|e| e["errno"] != 0), "{events:?}");
    assert!(events.iter().any(|e| e["path"] == missing.to_str().unwrap()));
}

#[test]
fn tcplife_reports_the_bytes_and_ports_of_a_transfer() {
    let Some(_serial) = privileged() else { return };
    let (life, life_out) = start_tool(&["tcplife", "--json"], "Tracing");
    thread::sleep(Duration::from_millis(1500));
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = server.local_addr().unwrap().port();
    let serving = thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        c.write_all(&vec![b'r'; 1000]).unwrap();
        got.len()
    });
    let mut client = std::net::TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    client.write_all(&vec![b's'; 300_000]).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    drop(client);
    assert_eq!(serving.join().unwrap(), 300_000);
    thread::sleep(Duration::from_millis(800));
    let events = json_lines(&stop_tool(life, life_out));
    let mine = events
        .iter()
        .find(|e| e["local_port"] == client_port && e["remote_port"] == server_port)
        .unwrap_or_else(|| panic!("no session {client_port}->{server_port}: {events:?}"));
    // The kernel's counters (as bcc reads them) include the sequence
    // numbers of the SYN and FIN: at most 2 bytes above the data.
    let within = |v: &Value, data: u64| v.as_u64().is_some_and(|b| (data..=data + 2).contains(&b));
    assert!(within(&mine["tx_bytes"], 300_000), "{mine}");
    assert!(within(&mine["rx_bytes"], 1000), "{mine}");
    assert_eq!(mine["pid"], std::process::id(), "{mine}");
    let theirs = events.iter().find(|e| e["local_port"] == server_port && e["remote_port"] == client_port).unwrap();
    assert!(within(&theirs["rx_bytes"], 300_000), "{theirs}");
    assert!(within(&theirs["tx_bytes"], 1000), "{theirs}");
}

/// A tun device routing a test network nowhere: SYNs sent there are
/// retransmitted.
struct Blackhole;

impl Blackhole {
    fn new() -> Self {
        let _ = Command::new("ip").args(["tuntap", "del", "dev", "pkblack0", "mode", "tun"]).status();
        for args in [
            &["tuntap", "add", "dev", "pkblack0", "mode", "tun"][..],
            &["link", "set", "pkblack0", "up"],
            &["route", "add", "198.51.100.0/24", "dev", "pkblack0"],
        ] {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        }
        Blackhole
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["tuntap", "del", "dev", "pkblack0", "mode", "tun"]).status();
    }
}

#[test]
fn tcpretrans_sees_syn_retransmissions() {
    let Some(_serial) = privileged() else { return };
    let _hole = Blackhole::new();
    let (t, t_out) = start_tool(&["tcpretrans", "--json"], "Tracing");
    thread::sleep(Duration::from_millis(1500));
    let attempt =
        std::net::TcpStream::connect_timeout(&"198.51.100.7:4242".parse().unwrap(), Duration::from_millis(2500));
    assert!(attempt.is_err());
    thread::sleep(Duration::from_millis(300));
    let events = json_lines(&stop_tool(t, t_out));
    let syns: Vec<&Value> =
        events.iter().filter(|e| e["remote_addr"] == "198.51.100.7" && e["remote_port"] == 4242).collect();
    assert!(!syns.is_empty(), "{events:?}");
    assert!(syns.iter().all(|e| e["state"] == "SYN_SENT"), "{syns:?}");
}

/// Two network namespaces joined by a veth pair: 10.200.0.1 (`a`) and
/// 10.200.0.2 (`b`); removed at the end.
struct VethPair {
    a: String,
    b: String,
}

impl VethPair {
    fn new() -> Self {
        let id = std::process::id();
        let pair = VethPair { a: format!("pka{id}"), b: format!("pkb{id}") };
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&["link", "add", "vpa", "netns", &pair.a, "type", "veth", "peer", "name", "vpb", "netns", &pair.b]);
        for (ns, dev, addr) in [(&pair.a, "vpa", "10.200.0.1/24"), (&pair.b, "vpb", "10.200.0.2/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
        let path = format!("/run/netns/{ns}");
        thread::spawn(move || {
            let file = fs::File::open(&path).unwrap();
            // SAFETY: setns(2) of this thread into a namespace file we opened.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// The namespace's `RetransSegs` (/proc/net/snmp).
    fn retrans_segs(ns: &str) -> u64 {
        let out = Command::new("ip").args(["netns", "exec", ns, "cat", "/proc/net/snmp"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let tcp: Vec<&str> = text.lines().filter(|l| l.starts_with("Tcp:")).collect();
        let (names, values) = (tcp[0].split_whitespace(), tcp[1].split_whitespace());
        names.zip(values).find(|(n, _)| *n == "RetransSegs").unwrap().1.parse().unwrap()
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

#[test]
fn tcpretrans_counts_segments_like_the_kernel() {
    let Some(_serial) = privileged() else { return };
    let pair = VethPair::new();
    let server = VethPair::within(&pair.b, || {
        let listener = std::net::TcpListener::bind("10.200.0.2:4243").unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let (t, t_out) = start_tool(&["tcpretrans", "--json"], "Tracing");
    thread::sleep(Duration::from_millis(500));
    let before = VethPair::retrans_segs(&pair.a);
    // A bulk sender for 7 s (TSO: skbs of many segments); the peer's link
    // is down from 1 s to 3.5 s.
    let client = VethPair::within(&pair.a, || {
        let mut conn = std::net::TcpStream::connect("10.200.0.2:4243").unwrap();
        let chunk = vec![7u8; 1 << 16];
        let end = Instant::now() + Duration::from_secs(7);
        while Instant::now() < end {
            if conn.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    thread::sleep(Duration::from_secs(1));
    let link = |state: &str| {
        assert!(Command::new("ip").args(["-n", &pair.b, "link", "set", "vpb", state]).status().unwrap().success());
    };
    link("down");
    thread::sleep(Duration::from_millis(2500));
    link("up");
    client.join().unwrap();
    server.join().unwrap();
    thread::sleep(Duration::from_millis(500));
    let kernel = VethPair::retrans_segs(&pair.a) - before;
    let events = json_lines(&stop_tool(t, t_out));
    let ours: Vec<&Value> = events.iter().filter(|e| e["local_addr"] == "10.200.0.1").collect();
    let segments: u64 = ours.iter().filter(|e| e["error"] == 0).map(|e| e["segments"].as_u64().unwrap()).sum();
    let failed = ours.iter().filter(|e| e["error"] != 0).count();
    eprintln!("RetransSegs +{kernel}; perfkit: {} retransmissions, {segments} segments, {failed} failed", ours.len());
    assert!(kernel >= 10, "the link down made only {kernel} retransmitted segments");
    assert!(
        segments.abs_diff(kernel) * 100 <= kernel * 5,
        "perfkit counted {segments} segments, the kernel's RetransSegs +{kernel}"
    );
}

#[test]
fn bcc_flags_mean_what_they_mean_in_bcc() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: syscount -T
    // bcc-flags: opensnoop -f -e
    // bcc-flags: execsnoop -t -T -n -U
    // syscount -T N: the top N rows (not timestamps and an interval).
    let out = tool(&["syscount", "-T", "3", "--json", "--", "/bin/sh", "-c", "ls / > /dev/null"]);
    let reports = json_lines(&out);
    assert_eq!(reports.len(), 1, "one report at the end: {out}");
    assert_eq!(reports[0]["rows"].as_array().unwrap().len(), 3, "{out}");
    // opensnoop -f O_WRONLY: only opens for writing; -e shows the flags.
    let dir = scratch_dir();
    let file = dir.path().join("written");
    let script = format!("echo x > {f}; cat {f} > /dev/null", f = file.display());
    let out = tool(&["opensnoop", "-f", "O_WRONLY", "--json", "--", "/bin/sh", "-c", &script]);
    let events = json_lines(&out);
    let path = file.to_str().unwrap();
    assert!(events.iter().any(|e| e["path"] == path), "the write open: {events:?}");
    assert!(events.iter().all(|e| e["flags"].as_u64().unwrap() & 1 == 1), "{events:?}");
    let text = tool(&["opensnoop", "-e", "--", "/bin/sh", "-c", &script]);
    assert!(text.lines().next().unwrap().contains("FLAGS"), "{text}");
    // execsnoop -x includes failed execs; -t adds seconds, -T the time.
    let out = tool(&["execsnoop", "-x", "-t", "-T", "--", "/bin/sh", "-c", "/nonexistent-x 2>/dev/null; true"]);
    let head = out.lines().next().unwrap();
    assert!(head.starts_with("TIME") && head.contains("TIME(s)"), "{out}");
    assert!(out.lines().any(|l| l.contains("-2")), "the failed exec: {out}");
    // A bcc flag perfkit does not take is refused by name, before anything
    // runs.
    let out = run(perfkit().args(["execsnoop", "--max-args", "5"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--max-args") && stderr(&out).contains("2560"), "{}", stderr(&out));
    // execsnoop -u UID, -n NAME: only root's execs of `true`.
    let out = tool(&[
        "execsnoop",
        "-u",
        "0",
        "-n",
        "true",
        "-U",
        "--",
        "/bin/sh",
        "-c",
        "/bin/true a; /bin/echo b > /dev/null",
    ]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].starts_with("0 ") && rows[0].contains("true a"), "{out}");
}

#[test]
fn bad_tool_input_is_a_clear_error() {
    for (args, needle) in [
        (&["runqlat", "0"][..], "interval"),
        (&["runqlat", "-p", "999999999"], "999999999"),
        (&["syscount", "--cgroup", "/no-such-group-zz"], "no-such-group-zz"),
        (&["offcpu", "-p", "1", "-m", "2ms", "-M", "1ms"], "--min-block"),
        (&["biolatency", "1", "0"], "0"),
    ] {
        let out = run(perfkit().args(args));
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn serve_exports_every_histogram_bucket_from_the_start() {
    let Some(_serial) = privileged() else { return };
    let (_serve, port) = serve(&["--probes", "runqlat"]);
    let les = |metrics: &str| -> Vec<String> {
        metrics
            .lines()
            .filter(|l| l.starts_with("perfkit_runqueue_latency_seconds_bucket{"))
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap().to_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(b) = http_get(port, "/metrics") {
            break b;
        }
        assert!(Instant::now() < deadline, "serve --probes never answered");
        thread::sleep(Duration::from_millis(200));
    };
    // Then a wait of tens of milliseconds: a hog on the CPU of a sleeper
    // (a bucket far above the first scrape's).
    let burner = workload("burner.c", "burner");
    let _hogs: Vec<Killed> = (0..3)
        .map(|_| Killed(Command::new("taskset").args(["-c", "0"]).arg(&burner).arg("3").spawn().unwrap()))
        .collect();
    thread::sleep(Duration::from_secs(2));
    let later = http_get(port, "/metrics").expect("a second scrape");
    let (a, b) = (les(&first), les(&later));
    // 2 µs to 2^32 µs, and +Inf: the same series at every scrape.
    assert_eq!(a.len(), 33, "{a:?}");
    assert_eq!(a, b, "le series changed between scrapes");
    assert_eq!(a.first().map(String::as_str), Some("0.000002"));
    assert_eq!(a.last().map(String::as_str), Some("+Inf"));
}

#[test]
fn prometheus_reads_the_probe_histograms() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["prometheus", "promtool"]) {
        return;
    }
    let burner = workload("burner.c", "burner");
    let _hogs: Vec<Killed> = (0..3)
        .map(|_| Killed(Command::new("taskset").args(["-c", "0"]).arg(&burner).arg("40").spawn().unwrap()))
        .collect();
    let (_serve, port) = serve(&["--probes", "runqlat,biolatency,syscount,tcpretrans"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        if let Some(b) = http_get(port, "/metrics") {
            break b;
        }
        assert!(Instant::now() < deadline, "serve --probes never answered");
        thread::sleep(Duration::from_millis(200));
    };
    for name in [
        "perfkit_runqueue_latency_seconds_bucket",
        "perfkit_syscalls_total{syscall=\"read\"}",
        "perfkit_probe_lost_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    assert_promtool_accepts(&metrics);

    let dir = scratch_dir();
    let (_prom, prom_port) = start_prometheus(dir.path(), port);
    let query =
        "/api/v1/query?query=histogram_quantile(0.9%2C%20rate(perfkit_runqueue_latency_seconds_bucket%5B10s%5D))";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(body) = http_get(prom_port, query) {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(first) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                let p90: f64 = first["value"][1].as_str().unwrap().parse().unwrap_or(f64::NAN);
                if p90.is_finite() {
                    // Three hogs on one CPU wait milliseconds at each of
                    // their hundreds of switches a second. The other CPU's
                    // many short waits (Prometheus, perfkit, the test) can
                    // outnumber them, so the median may stay at
                    // microseconds; the slowest tenth of the machine's
                    // waits is theirs.
                    assert!(p90 > 0.0002, "90th percentile run-queue latency {p90} s: {body}");
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never answered histogram_quantile on runqlat");
        thread::sleep(Duration::from_millis(1000));
    }
}
