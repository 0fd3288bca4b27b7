//! `perfkit stat` with perf's habits: `-a` with `-I` intervals, `-x` CSV,
//! `-r` repeats and `-p` lists, against known work and against `perf stat`
//! in the same run.

use std::{
    fs,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use crate::util::*;

fn naps() -> std::path::PathBuf {
    build_c("cc", "naps.c", "naps", &["-O1"])
}

fn online_cpus() -> f64 {
    let text = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    text.trim()
        .split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            (b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1) as f64
        })
        .sum()
}

/// `TIME,VALUE,UNIT,EVENT,...` lines of `-I` with `-x,`: (time, value or
/// None, event).
fn interval_csv(text: &str) -> Vec<(f64, Option<f64>, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() >= 8).then(|| (f[0].trim().parse().unwrap(), f[1].parse().ok(), f[3].to_owned()))
        })
        .collect()
}

/// System-wide, the task clock runs on every CPU the whole time (idle
/// included): each interval of 500 ms counts 500 ms per online CPU, as
/// perf's does in the same run.
#[test]
fn stat_all_cpus_prints_intervals_like_perf_stat() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["perf"]) {
        return;
    }
    let cpus = online_cpus();
    let events = "task-clock,context-switches,cycles";
    let out = run(perfkit().args(["stat", "-a", "-I", "500", "-x,", "-e", events, "-d", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = interval_csv(&stderr(&out));
    let perf = run(Command::new("perf").args(["stat", "-a", "-I", "500", "-x,", "-e", events, "--", "sleep", "2"]));
    let theirs = interval_csv(&stderr(&perf));
    for (who, lines) in [("perfkit", &ours), ("perf", &theirs)] {
        let clocks: Vec<&(f64, Option<f64>, String)> = lines.iter().filter(|l| l.2 == "task-clock").collect();
        // Four intervals of 500 ms (perf may add a short last one).
        let full: Vec<_> = clocks.iter().filter(|l| l.0 < 1.95).collect();
        assert!(full.len() >= 3 && clocks.len() <= 5, "{who}: {lines:?}");
        let mut before = 0.0;
        for l in full {
            let span_ms = (l.0 - before) * 1000.0;
            let ms = l.1.unwrap();
            assert!(
                (ms - cpus * span_ms).abs() < 0.05 * cpus * span_ms,
                "{who}: {ms} ms of task clock in {span_ms} ms"
            );
            before = l.0;
        }
        let switches = lines.iter().filter(|l| l.2 == "context-switches").count();
        assert_eq!(switches, clocks.len(), "{who}: {lines:?}");
    }
    let ours_cycles = ours.iter().find(|l| l.2 == "cycles").unwrap().1.is_some();
    let perf_cycles = theirs.iter().find(|l| l.2 == "cycles").unwrap().1.is_some();
    assert_eq!(ours_cycles, perf_cycles, "perf and perfkit agree on whether cycles count");

    // The text form: perf's header, then time-stamped lines.
    let out = run(perfkit().args(["stat", "-a", "-I", "500", "-e", "task-clock,cycles", "--", "sleep", "1.2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("#           time             counts unit events\n"), "{err}");
    let clock_lines = err.lines().filter(|l| l.contains("msec task-clock") && l.contains("CPUs utilized")).count();
    assert_eq!(clock_lines, 3, "0.5, 1.0 and the last 0.2 s: {err}");
    if !ours_cycles {
        assert_eq!(err.matches("<not supported>      cycles").count(), 3, "{err}");
    }
    assert!(!err.contains("Performance counter stats"), "no summary after intervals, as perf: {err}");
}

/// A known sleeper (200 sleeps of 1 ms: 200 voluntary context switches)
/// run three times: perf's mean and spread, in text and CSV, and the same
/// means as `perf stat -r 3` of the same command.
#[test]
fn stat_repeat_gives_means_and_spread_like_perf_stat() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["perf"]) {
        return;
    }
    let naps = naps();
    let naps = naps.to_str().unwrap();
    let out = run(perfkit().args(["stat", "-r", "3", "-e", "context-switches,task-clock,cycles", "--", naps, "200"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("Performance counter stats for '{naps} 200' (3 runs):")), "{err}");
    let line = err.lines().find(|l| l.contains("context-switches")).unwrap();
    let mean: f64 = line.split_whitespace().next().unwrap().replace(',', "").parse().unwrap();
    assert!((200.0..=240.0).contains(&mean), "{mean} switches for 200 sleeps: {line}");
    assert!(err.contains("seconds time elapsed  ( +- "), "{err}");

    let csv = |cmd: &mut Command| -> Vec<Vec<String>> {
        let out = run(cmd);
        assert!(out.status.success());
        stderr(&out)
            .lines()
            .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() >= 7)
            .collect()
    };
    let events = "context-switches,cycles";
    let ours = csv(perfkit().args(["stat", "-r", "3", "-x,", "-e", events, "--", naps, "200"]));
    let theirs = csv(Command::new("perf").args(["stat", "-r", "3", "-x,", "-e", events, "--", naps, "200"]));
    assert_eq!(ours.len(), 2, "{ours:?}");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a.len(), b.len(), "the same fields as perf: {a:?} {b:?}");
        assert_eq!(a[2], b[2].trim_end_matches(":u"));
        assert!(a[3].ends_with('%'), "the spread after the event: {a:?}");
    }
    let ours_switches: f64 = ours[0][0].parse().unwrap();
    let perf_switches: f64 = theirs[0][0].parse().unwrap();
    assert!(
        (200.0..=240.0).contains(&ours_switches) && (200.0..=240.0).contains(&perf_switches),
        "{ours:?} {theirs:?}"
    );

    // Ctrl-C in the third run: the two runs that ended are printed, and
    // perfkit ends by the signal, as perf does.
    let child = perfkit()
        .args(["stat", "-r", "5", "-e", "task-clock", "--", "sleep", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The middle of the third run: half a second from either end.
    thread::sleep(Duration::from_millis(2500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(ended_by(out.status, libc::SIGINT), "{err}");
    assert!(err.contains("'sleep 1' (2 runs):"), "{err}");

    let out = run(perfkit().args(["stat", "-r", "3", "-a", "-d", "1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-r repeats a command"), "{}", stderr(&out));
}

/// `-p` takes a list, as `profile -p` does: two sleepers' context switches
/// add up, each as /proc counts them.
#[test]
fn stat_pid_list_counts_every_process() {
    let Some(_serial) = privileged() else { return };
    let naps = naps();
    let mut a = Command::new(&naps).arg("4000").stdout(Stdio::null()).spawn().unwrap();
    let mut b = Command::new(&naps).arg("4000").stdout(Stdio::null()).spawn().unwrap();
    thread::sleep(Duration::from_millis(200));
    let switches = |pid: u32| -> u64 {
        let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .filter(|l| l.contains("ctxt_switches"))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let before = switches(a.id()) + switches(b.id());
    let before_a = switches(a.id());
    let list = format!("{},{}", a.id(), b.id());
    let out = run(perfkit().args(["stat", "--json", "-e", "context-switches", "-d", "1", "-p", &list]));
    let after = switches(a.id()) + switches(b.id());
    let after_a = switches(a.id());
    for c in [&mut a, &mut b] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pids"], serde_json::json!([a.id(), b.id()]));
    let counted = v["events"][0]["value"].as_f64().unwrap();
    let both = (after - before) as f64;
    let one = (after_a - before_a) as f64;
    assert!(counted <= both + 5.0 && counted >= 0.6 * both, "{counted} of {both} switches in the window");
    assert!(counted > 1.3 * one, "{counted}: more than one process's {one}");
}
