//! `cargo xtask bench checkup`: what `perfkit checkup` costs over its
//! window (60 s by default), in CPU seconds and peak memory, against the
//! classic first minute run in the same kind of window: vmstat, mpstat,
//! pidstat, iostat and sar side by side, bpftrace's runqlat and
//! biolatency (tracepoint scripts, as on a kernel without kprobes), and
//! `perf record -a -g` at checkup's rate followed by `perf script`,
//! inferno-collapse-perf and inferno-flamegraph. Runs alternate (checkup,
//! then the classic way, round after round); each figure is the median of
//! the rounds with its range. CPU counts user and system time of every
//! process of a pipeline and the run time of its BPF programs
//! (`kernel.bpf_stats_enabled`).

use std::{
    collections::HashMap,
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use super::{bpf_run_time_ns, build_perfkit, ensure_inferno, find_on_path, interleaved, median, mib, show};

/// The on-CPU rate of checkup's profile, and so of perf's.
const HZ: u32 = 19;

/// runqlat from tracepoints: the time from a wakeup (or a preemption) to
/// running, per task, as a log2 histogram of microseconds.
const RUNQLAT: &str = r#"
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new { @queued[args->pid] = nsecs; }
tracepoint:sched:sched_switch {
  if (args->prev_state == 0) { @queued[args->prev_pid] = nsecs; }
  $t = @queued[args->next_pid];
  if ($t) { @usecs = hist((nsecs - $t) / 1000); delete(@queued[args->next_pid]); }
}
interval:s:SECONDS { exit(); }
END { clear(@queued); }
"#;

/// biolatency from tracepoints: issue to completion per request, per disk.
const BIOLATENCY: &str = r#"
tracepoint:block:block_rq_issue { @start[args->dev, args->sector] = nsecs; }
tracepoint:block:block_rq_complete /@start[args->dev, args->sector]/ {
  @usecs[args->dev] = hist((nsecs - @start[args->dev, args->sector]) / 1000);
  delete(@start[args->dev, args->sector]);
}
interval:s:SECONDS { exit(); }
END { clear(@start); }
"#;

/// What one pipeline cost.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    /// User + system + BPF programs, seconds.
    cpu_s: f64,
    /// Of that, BPF programs' run time, seconds.
    bpf_s: f64,
    /// The memory its processes held at once at most, MiB: the sum of the
    /// peaks of those running side by side (an upper bound), or the
    /// largest step after the window when larger.
    peak_mib: f64,
}

/// A child whose BPF programs' run time is sampled while it runs.
struct Watched {
    name: String,
    child: Child,
    bpf_ns: Arc<std::sync::atomic::AtomicU64>,
}

fn spawn(name: &str, cmd: &mut Command, out: &Path) -> Result<Watched, String> {
    let file = fs::File::create(out).map_err(|e| e.to_string())?;
    let err = fs::File::create(out.with_extension("err")).map_err(|e| e.to_string())?;
    let child =
        cmd.stdout(file).stderr(err).stdin(Stdio::null()).spawn().map_err(|e| format!("running {name}: {e}"))?;
    Ok(Watched { name: name.to_string(), child, bpf_ns: Arc::new(0.into()) })
}

/// Waits for every child, sampling the BPF run time of each every 100 ms
/// meanwhile; their CPU (user + system, reaped children included), BPF
/// time and peak resident memory.
fn wait_all(mut kids: Vec<Watched>) -> Result<Vec<(String, f64, f64, f64)>, String> {
    let done = Arc::new(AtomicBool::new(false));
    let pids: Vec<(u32, Arc<std::sync::atomic::AtomicU64>)> =
        kids.iter().map(|k| (k.child.id(), k.bpf_ns.clone())).collect();
    let watcher = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for (pid, ns) in &pids {
                    if let Some(v) = bpf_run_time_ns(*pid) {
                        ns.fetch_max(v, Ordering::Relaxed);
                    }
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut out = Vec::new();
    let mut failure = None;
    for k in &mut kids {
        let pid = k.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: rusage is plain data that wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            failure.get_or_insert(format!("{} failed (wait status {status})", k.name));
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        out.push((k.name.clone(), tv(usage.ru_utime) + tv(usage.ru_stime), 0.0, mib(usage.ru_maxrss as f64)));
    }
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    for (o, k) in out.iter_mut().zip(&kids) {
        o.2 = k.bpf_ns.load(Ordering::Relaxed) as f64 / 1e9;
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(out),
    }
}

/// `cargo xtask bench checkup`.
pub fn checkup(root: &Path, seconds: u32, runs: usize) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let perf = find_on_path("perf").ok_or("perf not found: install Debian's linux-perf")?;
    let bpftrace = find_on_path("bpftrace").ok_or("bpftrace not found: install Debian's bpftrace")?;
    for tool in ["vmstat", "mpstat", "pidstat", "iostat", "sar"] {
        find_on_path(tool).ok_or(format!("{tool} not found: install Debian's sysstat and procps"))?;
    }
    let inferno = ensure_inferno()?;
    let dir = root.join("target/bench/checkup");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let stats_path = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = fs::read_to_string(stats_path).unwrap_or_default();
    fs::write(stats_path, "1").map_err(|e| format!("enabling kernel.bpf_stats_enabled: {e}"))?;
    super::allow_rate(HZ);
    let d = seconds.to_string();
    let result = (|| -> Result<(), String> {
        let mut per_step: HashMap<String, Vec<f64>> = HashMap::new();
        let mut ours = || -> Result<Cost, String> {
            let kid = spawn(
                "perfkit checkup",
                Command::new(&perfkit).args(["checkup", "-d", &d, "--json"]).arg(dir.join("checkup.json")),
                &dir.join("checkup.txt"),
            )?;
            let r = wait_all(vec![kid])?;
            let (_, cpu, bpf, peak) = r[0].clone();
            Ok(Cost { cpu_s: cpu + bpf, bpf_s: bpf, peak_mib: peak })
        };
        let mut classic = || -> Result<Cost, String> {
            let data = dir.join("perf.data");
            let n = d.as_str();
            let script = |s: &str| s.replace("SECONDS", n);
            let kids = vec![
                spawn("vmstat", Command::new("vmstat").args(["1", n]), &dir.join("vmstat.txt"))?,
                spawn("mpstat", Command::new("mpstat").args(["-P", "ALL", "1", n]), &dir.join("mpstat.txt"))?,
                spawn(
                    "pidstat",
                    Command::new("pidstat").args(["-u", "-r", "-d", "-w", "1", n]),
                    &dir.join("pidstat.txt"),
                )?,
                spawn("iostat", Command::new("iostat").args(["-x", "1", n]), &dir.join("iostat.txt"))?,
                spawn(
                    "sar",
                    Command::new("sar").args(["-n", "DEV,EDEV,TCP,ETCP", "-q", "-B", "1", n]),
                    &dir.join("sar.txt"),
                )?,
                spawn("bpftrace runqlat", Command::new(&bpftrace).args(["-e", &script(RUNQLAT)]), &dir.join("rq.txt"))?,
                spawn(
                    "bpftrace biolatency",
                    Command::new(&bpftrace).args(["-e", &script(BIOLATENCY)]),
                    &dir.join("bio.txt"),
                )?,
                spawn(
                    "perf record",
                    Command::new(&perf)
                        .args(["record", "-q", "-e", "cpu-clock", "-a", "-g", "-F", &HZ.to_string(), "-o"])
                        .arg(&data)
                        .args(["--", "sleep", n]),
                    &dir.join("record.txt"),
                )?,
            ];
            let window = wait_all(kids)?;
            let script_out = dir.join("perf.script");
            let post1 = wait_all(vec![spawn(
                "perf script",
                Command::new(&perf).args(["script", "-i"]).arg(&data),
                &script_out,
            )?])?;
            let folded = dir.join("perf.folded");
            let post2 = wait_all(vec![spawn(
                "inferno-collapse-perf",
                Command::new(inferno.with_file_name("inferno-collapse-perf")).arg(&script_out),
                &folded,
            )?])?;
            let post3 = wait_all(vec![spawn(
                "inferno-flamegraph",
                Command::new(&inferno).arg(&folded),
                &dir.join("perf.svg"),
            )?])?;
            let mut cost = Cost::default();
            let mut window_peak = 0.0;
            let mut post_peak: f64 = 0.0;
            for (i, (name, cpu, bpf, peak)) in
                window.iter().chain(&post1).chain(&post2).chain(&post3).cloned().enumerate()
            {
                cost.cpu_s += cpu + bpf;
                cost.bpf_s += bpf;
                if i < window.len() {
                    window_peak += peak;
                } else {
                    post_peak = post_peak.max(peak);
                }
                per_step.entry(name).or_default().push(cpu + bpf);
            }
            cost.peak_mib = post_peak.max(window_peak);
            Ok(cost)
        };
        let results = interleaved(runs, &mut [&mut ours, &mut classic])?;
        println!(
            "\ncheckup: the first minute's cost over {seconds} s on this host (as busy as it is), median (range) of \
             {runs} alternating runs; CPU is user + system + BPF programs' run time of every process of the pipeline"
        );
        println!("  {:<58} {:>24} {:>22} {:>22}", "", "CPU", "of which BPF", "peak memory");
        let labels = [
            "perfkit checkup (incl. runqlat, 19 Hz profile, cgroups, kmsg)",
            "classic: sysstat x5 + bpftrace x2 + perf -a -g 19 Hz + flame graph",
        ];
        for (label, r) in labels.iter().zip(&results) {
            let col = |f: &dyn Fn(&Cost) -> f64| r.iter().map(f).collect::<Vec<f64>>();
            println!(
                "  {:<58} {:>24} {:>22} {:>22}",
                label,
                show(&col(&|c| c.cpu_s), 2, " s"),
                show(&col(&|c| c.bpf_s), 2, " s"),
                show(&col(&|c| c.peak_mib), 0, " MiB"),
            );
        }
        let mut steps: Vec<(&String, &Vec<f64>)> = per_step.iter().collect();
        steps.sort_by(|a, b| median(b.1).total_cmp(&median(a.1)));
        println!("  the classic way by step (CPU):");
        for (name, v) in steps {
            println!("    {:<56} {:>24}", name, show(v, 2, " s"));
        }
        let ratio = median(&results[0].iter().map(|c| c.cpu_s).collect::<Vec<_>>())
            / median(&results[1].iter().map(|c| c.cpu_s).collect::<Vec<_>>()).max(1e-9);
        println!(
            "  ratio checkup/classic CPU (medians): {ratio:.2}x ({})",
            if ratio < 1.0 { "less CPU than the classic way: target met" } else { "target missed" }
        );
        Ok(())
    })();
    let _ = fs::write(stats_path, stats_before.trim());
    result
}
