//! The perf_event backend: sampling without eBPF, DWARF unwinding of code
//! without frame pointers, backend choice, and `perfkit stat`.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use crate::util::*;

fn share(folded: &[(String, u64)], leaf: &str) -> f64 {
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    let (n, _) = leaf_samples(folded, leaf, leaf);
    n as f64 / total as f64
}

#[test]
fn perf_backend_gives_the_known_profile() {
    let Some(_serial) = privileged() else { return };
    let hot = hotspots().to_str().unwrap();
    let (folded, err) = profile_command(&["--backend", "perf", "-F", "997"], &[hot, "3"]);
    assert!(err.contains("backend: perf_event"), "{err}");
    assert!(err.contains("KiB from the kernel"), "{err}");
    assert_hotspots_profile(&folded);
}

#[test]
fn both_backends_agree_on_shares() {
    let Some(_serial) = privileged() else { return };
    let hot = hotspots().to_str().unwrap();
    let (ebpf, err) = profile_command(&["--backend", "ebpf", "-F", "997"], &[hot, "3"]);
    assert!(err.contains("backend: eBPF"), "{err}");
    let (perf, _) = profile_command(&["--backend", "perf", "-F", "997"], &[hot, "3"]);
    for leaf in ["hot_a", "hot_b"] {
        let (a, b) = (share(&ebpf, leaf), share(&perf, leaf));
        assert!((a - b).abs() <= 0.06, "{leaf}: eBPF {a:.3} vs perf {b:.3}");
    }
    // The same stacks, frame for frame (those with at least 5 % of the
    // samples: rare ones, such as samples in a prologue, come and go).
    let paths = |f: &[(String, u64)]| -> Vec<String> {
        let total: u64 = f.iter().map(|(_, c)| c).sum();
        let mut v: Vec<String> = f.iter().filter(|(_, c)| c * 20 >= total).map(|(s, _)| s.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(paths(&ebpf), paths(&perf));
}

#[test]
fn dwarf_unwinding_recovers_full_paths_without_frame_pointers() {
    let Some(_serial) = privileged() else { return };
    let nofp = hotspots_nofp().to_str().unwrap();
    // Frame pointers cannot walk this binary: the stacks stop at the leaf.
    let (fp, _) = profile_command(&["--backend", "perf", "--unwind", "fp", "-F", "199"], &[nofp, "2"]);
    let (a, a_full) = leaf_samples(&fp, "hot_a", ";main;parent_a;hot_a");
    assert!(a_full * 2 < a, "frame pointers should not find main;parent_a in a -fomit-frame-pointer build: {fp:?}");
    // DWARF unwinding does, for at least 95 % of the samples: with stack
    // copies on the perf backend,
    let (dwarf, err) = profile_command(&["--backend", "perf", "--unwind", "dwarf", "-F", "997"], &[nofp, "3"]);
    assert!(err.contains("backend: perf_event, DWARF unwinding of user stack copies"), "{err}");
    assert_hotspots_profile(&dwarf);
    // and with unwind tables in the kernel on the eBPF backend.
    let (tables, err) = profile_command(&["--backend", "ebpf", "--unwind", "dwarf", "-F", "997"], &[nofp, "3"]);
    assert!(err.contains("backend: eBPF, DWARF unwind tables"), "{err}");
    assert_hotspots_profile(&tables);
}

#[test]
fn auto_unwind_detects_missing_frame_pointers() {
    let Some(_serial) = privileged() else { return };
    // The default walks complete stacks without frame pointers.
    let (tables, err) = profile_command(&["-F", "997"], &[hotspots_nofp().to_str().unwrap(), "2"]);
    assert!(err.contains("backend: eBPF, DWARF unwind tables"), "{err}");
    assert_hotspots_profile(&tables);
    // The perf backend judges each module from its CFI and picks DWARF,
    // naming the modules without frame pointers.
    let (dwarf, err) = profile_command(&["--backend", "perf", "-F", "997"], &[hotspots_nofp().to_str().unwrap(), "2"]);
    assert!(err.contains("DWARF unwinding of user stack copies") && err.contains("hotspots-nofp"), "{err}");
    assert!(err.contains("frame pointers cannot walk"), "{err}");
    assert_hotspots_profile(&dwarf);
    // A frame-pointer build still runs on Debian's libc, built without
    // them: DWARF again, and the reason names libc (or its loader), not
    // the program.
    let (_, err) = profile_command(&["--backend", "perf", "-F", "99"], &[hotspots().to_str().unwrap(), "1"]);
    assert!(err.contains("DWARF unwinding") && !err.contains("hotspots without"), "{err}");
    assert!(err.contains("libc.so.6") || err.contains("ld-linux"), "{err}");
}

#[test]
fn threads_created_during_the_run_are_sampled_by_both_backends() {
    let Some(_serial) = privileged() else { return };
    for backend in ["ebpf", "perf"] {
        // Attach to a running process before it creates its `late` thread.
        let mut target = Command::new(threads()).arg("3").spawn().unwrap();
        thread::sleep(Duration::from_millis(150));
        let dir = scratch_dir();
        let folded = dir.path().join("out.folded");
        let out = run(perfkit()
            .args(["profile", "--backend", backend, "--per-thread", "-F", "199", "-p", &target.id().to_string(), "-o"])
            .arg(dir.path().join("f.svg"))
            .arg("--folded")
            .arg(&folded));
        target.wait().unwrap();
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let folded = read_folded(&folded);
        // Per thread, roots are name-PID/TID.
        let by_thread = |name: &str, leaf: &str| -> u64 {
            let prefix = format!("{name}-{}/", target.id());
            folded.iter().filter(|(s, _)| s.starts_with(&prefix) && s.contains(leaf)).map(|(_, c)| c).sum()
        };
        let (early, late) = (by_thread("early", "spin_early"), by_thread("late", "spin_late"));
        // early spins ~2.85 s, late ~2.5 s, on two CPUs.
        assert!(early >= 200 && late >= 150, "{backend}: early {early}, late {late} samples: {folded:?}");
    }
}

#[test]
fn without_cap_bpf_auto_falls_back_to_perf_event() {
    let Some(_serial) = privileged() else { return };
    // As nobody with CAP_PERFMON but not CAP_BPF: eBPF cannot load, perf
    // events can. The workload is copied where nobody may run it.
    let dir = scratch_dir();
    let hot = dir.path().join("hotspots");
    fs::copy(hotspots(), &hot).unwrap();
    fs::set_permissions(&hot, fs::Permissions::from_mode(0o755)).unwrap();
    let folded = dir.path().join("out.folded");
    let out = run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .args(["--inh-caps=+perfmon", "--ambient-caps=+perfmon"])
        .arg(env!("CARGO_BIN_EXE_perfkit"))
        .args(["profile", "-F", "997", "-o"])
        .arg(dir.path().join("f.svg"))
        .arg("--folded")
        .arg(&folded)
        .arg("--")
        .arg(&hot)
        .arg("2"));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("backend: perf_event") && err.contains("eBPF unavailable"), "{err}");
    assert_hotspots_profile(&read_folded(&folded));

    // --backend ebpf there is an error naming the capability.
    let out = run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .args(["--inh-caps=+perfmon", "--ambient-caps=+perfmon"])
        .arg(env!("CARGO_BIN_EXE_perfkit"))
        .args(["profile", "--backend", "ebpf", "-o"])
        .arg(dir.path().join("g.svg"))
        .arg("--")
        .arg(&hot)
        .arg("1"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("CAP_BPF"), "{}", stderr(&out));
}

#[test]
fn other_sampling_events_use_perf_event() {
    let Some(_serial) = privileged() else { return };
    let hot = hotspots().to_str().unwrap();
    let (folded, err) = profile_command(&["-e", "task-clock", "-F", "997"], &[hot, "2"]);
    assert!(err.contains("backend: perf_event") && err.contains("task-clock is sampled with perf_event"), "{err}");
    assert_hotspots_profile(&folded);
    // Hardware events work where the machine counts them, and are a clear
    // one-line error where it does not (this VM).
    let dir = scratch_dir();
    let out =
        run(perfkit().args(["profile", "-e", "cycles", "-o"]).arg(dir.path().join("c.svg")).args(["--", hot, "1"]));
    if out.status.success() {
        assert!(dir.path().join("c.svg").exists());
    } else {
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("sampling on cycles is not supported"), "{err}");
        assert_no_output(dir.path());
    }
}

#[test]
fn bad_backend_combinations_are_clear_errors() {
    let out = run(perfkit().args(["profile", "--backend", "ebpf", "-e", "cycles", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cycles needs the perf_event backend"), "{}", stderr(&out));
    let out = run(perfkit().args(["profile", "--backend", "perf", "--off-cpu", "--", "true"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("off-CPU time needs the eBPF backend"), "{}", stderr(&out));
    for bad in [&["--backend", "dtrace"][..], &["--unwind", "lbr"], &["--stack-size", "0"], &["--stack-size", "70000"]]
    {
        let out = run(perfkit().arg("profile").args(bad).args(["--", "true"]));
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// Parses `perf stat -x,` output: event name → value (None: not supported).
fn perf_stat_csv(text: &str) -> HashMap<String, Option<f64>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 3).then(|| (f[2].trim_end_matches(":u").to_owned(), f[0].parse::<f64>().ok()))
        })
        .collect()
}

#[test]
fn stat_counts_like_perf_stat() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["perf"]) {
        return;
    }
    let hot = hotspots().to_str().unwrap();
    let out = run(perfkit().args(["stat", "--json", "--", hot, "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev = |name: &str| v["events"].as_array().unwrap().iter().find(|e| e["event"] == name).unwrap().clone();
    let task = ev("task-clock");
    let ms = task["value"].as_f64().unwrap() / 1e6;
    assert!((900.0..=1100.0).contains(&ms), "task-clock {ms} ms for a 1 s CPU burner");
    assert!((0.85..=1.1).contains(&task["derived"].as_f64().unwrap()), "{task}");
    assert_eq!(task["derived_unit"], "CPUs utilized");
    assert!(ev("page-faults")["value"].as_u64().unwrap() > 10);
    // Hardware events either count or say they cannot, as on this VM.
    for hw in ["cycles", "instructions", "branches", "branch-misses"] {
        let e = ev(hw);
        assert_eq!(e["supported"].as_bool().unwrap(), e["value"].is_u64(), "{e}");
    }
    assert_eq!(v["exit"], serde_json::json!({ "code": 0, "signal": null }));
    assert_eq!(v["schema_version"], 1);

    // The same work under perf stat.
    let out = run(Command::new("perf")
        .args(["stat", "-x,", "-e", "task-clock,page-faults,cycles", "--", hot, "1"])
        .stdout(Stdio::null()));
    let perf = perf_stat_csv(&stderr(&out));
    let perf_ms = perf["task-clock"].unwrap();
    assert!((ms - perf_ms).abs() <= 0.1 * perf_ms, "perfkit {ms} vs perf {perf_ms} ms task-clock");
    let faults = ev("page-faults")["value"].as_f64().unwrap();
    let perf_faults = perf["page-faults"].unwrap();
    assert!((faults - perf_faults).abs() <= 0.2 * perf_faults + 5.0, "perfkit {faults} vs perf {perf_faults} faults");
    assert_eq!(
        perf["cycles"].is_some(),
        ev("cycles")["supported"].as_bool().unwrap(),
        "perf and perfkit agree on cycles"
    );

    // Text output as perf prints it.
    let out = run(perfkit().args(["stat", "-e", "task-clock,cycles", "--", hot, "0.3"]));
    let err = stderr(&out);
    assert!(err.contains("Performance counter stats for") && err.contains("msec task-clock"), "{err}");
    assert!(err.contains("CPUs utilized") && err.contains("seconds time elapsed"), "{err}");
    if !ev("cycles")["supported"].as_bool().unwrap() {
        assert!(err.contains("<not supported>      cycles"), "{err}");
    }
}

#[test]
fn stat_of_a_running_process_for_a_duration() {
    let Some(_serial) = privileged() else { return };
    let mut target = Command::new(threads()).arg("5").spawn().unwrap();
    thread::sleep(Duration::from_millis(700));
    let out = run(perfkit().args([
        "stat",
        "--json",
        "-d",
        "1",
        "-e",
        "task-clock,context-switches",
        "-p",
        &target.id().to_string(),
    ]));
    target.kill().unwrap();
    target.wait().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Two spinning threads on two CPUs: about 2 CPUs utilized.
    let cpus = v["events"][0]["derived"].as_f64().unwrap();
    assert!((1.6..=2.1).contains(&cpus), "{cpus} CPUs utilized");
    let out = run(perfkit().args(["stat", "-p", "999999999", "-d", "1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no process with PID 999999999"), "{}", stderr(&out));
    let out = run(perfkit().args(["stat", "-e", "flops", "--", "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown event"));
}
