//! `cargo xtask bench runtimes`: what profiling costs a CPython and a JVM
//! workload, at 99 and 999 Hz, against the tools those runtimes use today,
//! measured in the same run: py-spy (`py-spy record`, its own CPU and the
//! target's slowdown) for CPython, and perf with a perf map (the JVM
//! started with `-XX:+PreserveFramePointer`, `perf record -g`, `jcmd PID
//! Compiler.perfmap`, `perf script` and inferno) for the JVM. perfkit
//! profiles both with no flag on the target.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    Workload, attached, build_perfkit, ensure_inferno, find_on_path, interleaved, median, mib, perf_post, rounds_of,
    show,
};

/// One profiler's run on a workload.
#[derive(Clone, Debug, Default)]
struct Cost {
    /// The workload's throughput (rounds it reported).
    rounds: Option<f64>,
    /// The profiler's CPU time (its whole pipeline), seconds.
    cpu_s: f64,
    /// The profiler's peak memory (largest process of its pipeline), MiB.
    peak_mib: f64,
    /// Samples that name the workload's hot functions, of all samples.
    named: f64,
}

/// The share of folded samples whose stack names one of `hot`.
fn named_share(folded: &str, hot: &[&str]) -> f64 {
    let (mut all, mut named) = (0.0, 0.0);
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let count: f64 = count.parse().unwrap_or(0.0);
        all += count;
        if hot.iter().any(|h| stack.contains(h)) {
            named += count;
        }
    }
    if all == 0.0 { f64::NAN } else { named / all }
}

/// pyenv's newest CPython 3.12 or 3.13 by full path (pyenv's shims run
/// only the selected version), or the system's python3.
fn python() -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT").map_or_else(|| PathBuf::from("/root/.pyenv"), PathBuf::from);
    for minor in ["3.12", "3.13"] {
        if let Ok(entries) = fs::read_dir(root.join("versions")) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{minor}.")))
                .map(|e| e.path().join(format!("bin/python{minor}")))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            if let Some(p) = found.pop() {
                return p;
            }
        }
    }
    PathBuf::from("python3")
}

fn py_spy(root: &Path) -> Result<PathBuf, String> {
    crate::ensure_py_spy(root)?;
    Ok(find_on_path("py-spy").unwrap_or_else(|| root.join("target/pyspy/bin/py-spy")))
}

/// The benchmark; `only` (`cpython` or `jvm`) keeps one runtime's rows.
pub fn runtimes(root: &Path, seconds: u32, runs: usize, rates: &[u32], only: Option<&str>) -> Result<(), String> {
    let (with_python, with_jvm) = match only {
        None => (true, true),
        Some("cpython") => (true, false),
        Some("jvm") => (false, true),
        Some(other) => return Err(format!("--only takes cpython or jvm, not {other:?}")),
    };
    let perfkit = build_perfkit(root)?;
    let perf = find_on_path("perf").ok_or("perf not found: install Debian's linux-perf")?;
    let inferno = ensure_inferno()?;
    let py_spy = py_spy(root)?;
    let dir = root.join("target/bench/runtimes");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let workloads = root.join("crates/perfkit-cli/tests/workloads");
    if with_jvm {
        for tool in ["java", "javac", "jcmd"] {
            find_on_path(tool).ok_or(format!("{tool} not found: install Debian's default-jdk-headless"))?;
        }
        let st = Command::new("javac")
            .arg("-d")
            .arg(&dir)
            .arg(workloads.join("HotSplit.java"))
            .status()
            .map_err(|e| format!("running javac: {e}"))?;
        if !st.success() {
            return Err("javac HotSplit.java failed".into());
        }
    }
    // The workloads outlive the profile by a second; they report their
    // throughput ("rounds N") at exit.
    let secs = (seconds + 1).to_string();
    let python = python();
    let py = Workload {
        name: "CPython",
        command: vec![
            python.to_string_lossy().into_owned(),
            workloads.join("pyhot.py").to_string_lossy().into_owned(),
            secs.clone(),
            "report".into(),
        ],
        paths: Vec::new(),
        reports: true,
    };
    // The JVMs run 4 s past the profile: `jcmd PID Compiler.perfmap`,
    // itself a JVM, attaches after perf's window and must find the target
    // alive.
    let java_secs = (seconds + 4).to_string();
    let java = |flags: &[&str]| -> Workload {
        let mut command = vec!["java".to_owned()];
        command.extend(flags.iter().map(|f| f.to_string()));
        command.extend([
            "-cp".into(),
            dir.to_string_lossy().into_owned(),
            "HotSplit".into(),
            java_secs.clone(),
            "report".into(),
        ]);
        Workload { name: "JVM", command, paths: Vec::new(), reports: true }
    };
    let jvm = java(&[]);
    let jvm_fp = java(&["-XX:+PreserveFramePointer"]);
    println!(
        "\nruntimes: median (range) of {runs} interleaved runs; each profiler attached (-p) for {seconds} s; \
         CPU time and peak memory are the profiler's own (its whole pipeline), throughput is the target's \
         against the same target unprofiled"
    );
    // The workload alone, as the profile benchmark measures it.
    let sample = |w: &Workload| -> Result<Cost, String> {
        let r = super::measure(Command::new(&w.command[0]).args(&w.command[1..]))?;
        Ok(Cost { rounds: rounds_of(&r.stderr), ..Cost::default() })
    };
    let perfkit_run = |w: &Workload, hz: u32, hot: &[&str]| -> Result<Cost, String> {
        let folded = dir.join("perfkit.folded");
        let (run, err) = attached(w, |pid| {
            let mut c = Command::new(&perfkit);
            c.args(["profile", "-F", &hz.to_string(), "-p", &pid.to_string(), "-d", &seconds.to_string(), "-o"])
                .arg(dir.join("perfkit.svg"))
                .arg("--folded")
                .arg(&folded);
            c
        })?;
        let text = fs::read_to_string(&folded).unwrap_or_default();
        Ok(Cost {
            rounds: rounds_of(&err),
            cpu_s: run.cpu.as_secs_f64(),
            peak_mib: mib(run.max_rss_kib as f64),
            named: named_share(&text, hot),
        })
    };
    for &hz in rates {
        super::allow_rate(hz);
        if with_python {
            // CPython: perfkit (no flag) against py-spy record.
            eprintln!("xtask: CPython at {hz} Hz");
            let py_hot = ["hot_alpha", "hot_beta"];
            let mut base = || sample(&py);
            let mut pk = || perfkit_run(&py, hz, &py_hot);
            let mut spy = || -> Result<Cost, String> {
                let out = dir.join("py-spy.txt");
                let (run, err) = attached(&py, |pid| {
                    let mut c = Command::new(&py_spy);
                    c.args(["record", "-r", &hz.to_string(), "-d", &seconds.to_string(), "-p", &pid.to_string()])
                        .args(["-f", "raw", "-o"])
                        .arg(&out);
                    c
                })?;
                let text = fs::read_to_string(&out).unwrap_or_default();
                Ok(Cost {
                    rounds: rounds_of(&err),
                    cpu_s: run.cpu.as_secs_f64(),
                    peak_mib: mib(run.max_rss_kib as f64),
                    named: named_share(&text, &py_hot),
                })
            };
            let results = interleaved(runs, &mut [&mut base, &mut pk, &mut spy])?;
            report(
                &format!("CPython ({}) at {hz} Hz", py.command[0]),
                &results,
                &["perfkit profile (no flag)", "py-spy record"],
            );
        }
        if !with_jvm {
            continue;
        }

        // The JVM: perfkit (no flag) against perf with a perf map.
        eprintln!("xtask: JVM at {hz} Hz");
        let java_hot = ["hotAlpha", "hotBeta"];
        let mut base = || sample(&jvm);
        let mut base_fp = || sample(&jvm_fp);
        let mut pk = || perfkit_run(&jvm, hz, &java_hot);
        let mut perf_map = || -> Result<Cost, String> {
            let data = dir.join("perf.data");
            // perf record for the duration, then the JVM's perf map, as a
            // perf user does it: one shell, measured as a whole.
            let (record, err) = attached(&jvm_fp, |pid| {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "{} record -e cpu-clock -F {hz} -g -p {pid} -o {} -- sleep {seconds} && jcmd {pid} Compiler.perfmap",
                        perf.display(),
                        data.display()
                    ));
                c
            })?;
            let post = perf_post(&perf, &inferno, &dir, &data)?;
            let steps = [&record, &post.script, &post.collapse, &post.graph];
            Ok(Cost {
                rounds: rounds_of(&err),
                cpu_s: steps.iter().map(|r| r.cpu.as_secs_f64()).sum(),
                peak_mib: steps.iter().map(|r| mib(r.max_rss_kib as f64)).fold(0.0, f64::max),
                named: named_share(&post.collapse.stdout, &java_hot),
            })
        };
        let results = interleaved(runs, &mut [&mut base, &mut pk, &mut base_fp, &mut perf_map])?;
        // perf's target runs with -XX:+PreserveFramePointer: its slowdown
        // counts against the JVM without flags, as that flag is part of
        // perf's way.
        report(
            &format!("JVM at {hz} Hz"),
            &[results[0].clone(), results[1].clone(), results[3].clone()],
            &["perfkit profile (no flag)", "perf -g + perf map (-XX:+PreserveFramePointer)"],
        );
        let fp = median(&results[2].iter().filter_map(|c| c.rounds).collect::<Vec<_>>());
        let none = median(&results[0].iter().filter_map(|c| c.rounds).collect::<Vec<_>>());
        println!(
            "  -XX:+PreserveFramePointer alone, unprofiled: {:.1}% of the throughput without it",
            100.0 * fp / none
        );
    }
    Ok(())
}

/// Prints one table: `results[0]` the unprofiled runs, then one row per
/// profiler, and perfkit's cost against the peer's.
fn report(title: &str, results: &[Vec<Cost>], labels: &[&str]) {
    let base = median(&results[0].iter().filter_map(|c| c.rounds).collect::<Vec<_>>());
    println!("\n{title}:");
    println!(
        "  {:<50} {:>22} {:>22} {:>22} {:>22}",
        "", "named hot samples", "target throughput", "CPU time", "peak memory"
    );
    for (i, label) in labels.iter().enumerate() {
        let r = &results[i + 1];
        let col = |f: &dyn Fn(&Cost) -> f64| r.iter().map(f).collect::<Vec<f64>>();
        println!(
            "  {:<50} {:>22} {:>22} {:>22} {:>22}",
            label,
            show(&col(&|c| 100.0 * c.named), 1, "%"),
            show(&col(&|c| c.rounds.map_or(f64::NAN, |x| 100.0 * x / base)), 1, "%"),
            show(&col(&|c| c.cpu_s), 3, " s"),
            show(&col(&|c| c.peak_mib), 0, " MiB"),
        );
    }
    let m = |i: usize, f: &dyn Fn(&Cost) -> f64| median(&results[i].iter().map(f).collect::<Vec<_>>());
    let slow = |i: usize| 100.0 - 100.0 * m(i, &|c| c.rounds.unwrap_or(f64::NAN)) / base;
    println!(
        "  perfkit vs {} (medians): CPU {:.2}x, memory {:.2}x, target slowdown {:.1}% vs {:.1}%",
        labels[1],
        m(1, &|c| c.cpu_s) / m(2, &|c| c.cpu_s).max(1e-9),
        m(1, &|c| c.peak_mib) / m(2, &|c| c.peak_mib).max(1e-9),
        slow(1),
        slow(2),
    );
}
