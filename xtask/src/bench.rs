//! `cargo xtask bench`: perfkit against the classic tools, measured in the
//! same run on the same input, reported as ratios.
//!
//! - `flamegraph`: a profile of a million unique stacks rendered by
//!   `perfkit flamegraph` and by inferno's own `inferno-flamegraph`: wall
//!   time and peak memory (max RSS).
//! - `profile`: perfkit's backends (eBPF, perf with frame pointers, perf
//!   with DWARF) against `perf record -g` and `perf record --call-graph
//!   dwarf` on workloads with and without frame pointers: workload
//!   throughput relative to unprofiled, bytes of data, time from the end of
//!   sampling to the SVG, and the share of samples with full stacks.
//! - `procs`: the CPU time one collection of every process costs, with
//!   1,000 extra processes running, for `perfkit sys proc` and sysstat's
//!   `pidstat -u -r -d -w`.

use std::{
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// One measured run of a command.
struct Run {
    wall: Duration,
    max_rss_kib: u64,
    /// User plus system CPU time.
    cpu: Duration,
}

/// Runs `cmd` to completion with its output discarded, measuring its wall
/// time and peak resident memory (from `wait4`'s rusage).
fn measure(cmd: &mut Command) -> Result<Run, String> {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("running {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped; the pointers are valid
    // for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if rc != pid {
        return Err(format!("waiting for {cmd:?}: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (wait status {status})"));
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok(Run { wall, max_rss_kib: usage.ru_maxrss as u64, cpu: tv(usage.ru_utime) + tv(usage.ru_stime) })
}

/// The best (fastest wall time, least CPU) of `n` runs, and the largest
/// peak memory seen.
fn best_of(n: usize, mut make: impl FnMut() -> Command) -> Result<Run, String> {
    let mut best: Option<Run> = None;
    let mut max_rss = 0;
    let mut min_cpu = Duration::MAX;
    for _ in 0..n {
        let run = measure(&mut make())?;
        max_rss = max_rss.max(run.max_rss_kib);
        min_cpu = min_cpu.min(run.cpu);
        if best.as_ref().is_none_or(|b| run.wall < b.wall) {
            best = Some(run);
        }
    }
    let mut best = best.expect("n > 0");
    best.max_rss_kib = max_rss;
    best.cpu = min_cpu;
    Ok(best)
}

/// Child processes killed when dropped.
struct Sleepers(Vec<std::process::Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// The per-process collection benchmark.
pub fn procs(root: &Path, extra: usize, runs: usize) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let pidstat = find_on_path("pidstat").ok_or("pidstat not found: install Debian's sysstat")?;
    let mut sleepers = Sleepers(Vec::with_capacity(extra));
    for _ in 0..extra {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting sleep: {e}"))?;
        sleepers.0.push(child);
    }
    let total = fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok())))
        .count();
    // No interval: one collection of every process, figures since start.
    let ours = best_of(runs, || {
        let mut c = Command::new(&perfkit);
        c.args(["sys", "proc"]);
        c
    })?;
    let theirs = best_of(runs, || {
        let mut c = Command::new(&pidstat);
        c.args(["-u", "-r", "-d", "-w"]).env("LC_ALL", "C");
        c
    })?;
    drop(sleepers);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("one collection of all {total} processes, best of {runs}:");
    println!("  {:<28} {:>10} {:>10}", "", "CPU time", "wall");
    println!("  {:<28} {:>8.1}ms {:>8.1}ms", "perfkit sys proc", ms(ours.cpu), ms(ours.wall));
    println!("  {:<28} {:>8.1}ms {:>8.1}ms", "pidstat -u -r -d -w", ms(theirs.cpu), ms(theirs.wall));
    println!(
        "  ratio perfkit/pidstat: CPU time {:.2}x, wall {:.2}x",
        ours.cpu.as_secs_f64() / theirs.cpu.as_secs_f64().max(1e-6),
        ours.wall.as_secs_f64() / theirs.wall.as_secs_f64()
    );
    Ok(())
}

/// Writes a folded profile of `n` unique stacks, 5 to 30 frames deep over
/// 10,000 function names, with a deterministic generator (the same file in
/// every run).
fn write_big_profile(path: &Path, n: usize) -> Result<(), String> {
    let file = fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for i in 0..n {
        let depth = 5 + (next() % 26) as usize;
        write!(out, "app").map_err(|e| e.to_string())?;
        for _ in 0..depth - 1 {
            let f = next() % 10_000;
            write!(out, ";mod{}::func_{}", f / 200, f % 200).map_err(|e| e.to_string())?;
        }
        // The last frame carries the index: every stack is unique.
        writeln!(out, ";leaf_{i} {}", 1 + next() % 100).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

pub fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

fn ensure_inferno() -> Result<PathBuf, String> {
    if let Some(p) = find_on_path("inferno-flamegraph") {
        return Ok(p);
    }
    eprintln!("xtask: installing inferno's command-line tools (cargo install inferno) to compare against");
    let status = Command::new("cargo")
        .args(["install", "--locked", "inferno", "--version", "0.12.8"])
        .status()
        .map_err(|e| format!("running cargo install: {e}"))?;
    if !status.success() {
        return Err("cargo install inferno failed".into());
    }
    find_on_path("inferno-flamegraph")
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/inferno-flamegraph")))
        .filter(|p| p.is_file())
        .ok_or_else(|| "inferno-flamegraph not found after installing it".into())
}

fn build_perfkit(root: &Path) -> Result<PathBuf, String> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--locked", "-p", "perfkit-cli"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !status.success() {
        return Err("building perfkit failed".into());
    }
    Ok(root.join("target/release/perfkit"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The flame graph benchmark.
pub fn flamegraph(root: &Path, stacks: usize, runs: usize) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let inferno = ensure_inferno()?;
    let dir = root.join("target/bench");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let input = dir.join(format!("unique-{stacks}.folded"));
    if !input.exists() {
        eprintln!("xtask: writing {} ({stacks} unique stacks)", input.display());
        write_big_profile(&input, stacks)?;
    }
    let size = fs::metadata(&input).map_err(|e| e.to_string())?.len();
    let svg = dir.join("out.svg");
    eprintln!("xtask: rendering {} ({:.0} MiB), best of {runs}", input.display(), size as f64 / (1 << 20) as f64);

    let ours = best_of(runs, || {
        let mut c = Command::new(&perfkit);
        c.arg("flamegraph").arg(&input).arg("-o").arg(&svg);
        c
    })?;
    let theirs = best_of(runs, || {
        let mut c = Command::new(&inferno);
        // perfkit's defaults: java palette, hashed colours.
        c.args(["--colors", "java", "--hash"]).arg(&input);
        c
    })?;

    println!(
        "flame graph of {stacks} unique stacks ({:.0} MiB of folded input), best of {runs}:",
        size as f64 / (1 << 20) as f64
    );
    println!("  {:<22} {:>10} {:>14}", "", "wall", "peak memory");
    println!("  {:<22} {:>9.2}s {:>10.0} MiB", "perfkit flamegraph", ours.wall.as_secs_f64(), mib(ours.max_rss_kib));
    println!(
        "  {:<22} {:>9.2}s {:>10.0} MiB",
        "inferno-flamegraph",
        theirs.wall.as_secs_f64(),
        mib(theirs.max_rss_kib)
    );
    println!(
        "  ratio perfkit/inferno: time {:.2}x, memory {:.2}x; perfkit memory / input size {:.2}x",
        ours.wall.as_secs_f64() / theirs.wall.as_secs_f64(),
        ours.max_rss_kib as f64 / theirs.max_rss_kib as f64,
        ours.max_rss_kib as f64 * 1024.0 / size as f64
    );
    Ok(())
}

/// A workload binary for the profiling benchmark.
fn build_workload(root: &Path, out: &Path, flags: &[&str]) -> Result<(), String> {
    let src = root.join("crates/perfkit-cli/tests/workloads/hotspots.c");
    let status = Command::new("cc")
        .args(flags)
        .arg("-g")
        .arg("-o")
        .arg(out)
        .arg(&src)
        .status()
        .map_err(|e| format!("running cc: {e}"))?;
    if !status.success() {
        return Err("building the hotspots workload failed".into());
    }
    Ok(())
}

/// One profiled (or unprofiled) run of the workload.
struct ProfileRun {
    label: String,
    /// Workload rounds completed.
    rounds: u64,
    /// Bytes the tool wrote (perf.data; perfkit's SVG and folded files).
    written: u64,
    /// Bytes copied from the kernel to the tool, when known.
    from_kernel: Option<u64>,
    /// Wall time from the end of sampling to the written SVG.
    post: Option<Duration>,
    /// Samples in hot_a/hot_b with the full path main;parent;hot.
    full_share: Option<f64>,
}

fn rounds_of(stderr: &str) -> Result<u64, String> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("rounds ")?.trim().parse().ok())
        .ok_or_else(|| format!("the workload reported no rounds:\n{stderr}"))
}

/// Share of samples in hot_a and hot_b with their full call path.
fn full_share(folded: &str) -> f64 {
    let (mut hot, mut full) = (0u64, 0u64);
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let count: u64 = count.parse().unwrap_or(0);
        for leaf in ["hot_a", "hot_b"] {
            if stack.ends_with(&format!(";{leaf}")) {
                hot += count;
                let parent = if leaf == "hot_a" { "parent_a" } else { "parent_b" };
                if stack.ends_with(&format!(";main;{parent};{leaf}")) {
                    full += count;
                }
            }
        }
    }
    if hot == 0 { 0.0 } else { full as f64 / hot as f64 }
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

fn run_output(cmd: &mut Command) -> Result<std::process::Output, String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out)
}

/// The profiling benchmark: perfkit's backends against `perf record -g` and
/// `perf record --call-graph dwarf` on the same workloads, in one run.
pub fn profile(root: &Path, seconds: u32, hz: u32) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let perf = find_on_path("perf").ok_or("perf not found: install Debian's linux-perf")?;
    let flamegraph = ensure_inferno()?;
    // Installed beside inferno-flamegraph by the same package.
    let collapse = flamegraph.with_file_name("inferno-collapse-perf");
    let dir = root.join("target/bench/profile");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let workloads = [
        ("hotspots with frame pointers", dir.join("hotspots-fp"), vec!["-O0", "-fno-omit-frame-pointer"]),
        (
            "hotspots without frame pointers",
            dir.join("hotspots-nofp"),
            vec!["-O1", "-fomit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls"],
        ),
    ];
    let secs = seconds.to_string();
    let freq = hz.to_string();
    for (name, bin, flags) in &workloads {
        build_workload(root, bin, flags)?;
        let mut runs = Vec::new();
        // Unprofiled.
        let out = run_output(Command::new(bin).args([secs.as_str(), "report"]))?;
        let base = rounds_of(&String::from_utf8_lossy(&out.stderr))?;
        runs.push(ProfileRun {
            label: "unprofiled".into(),
            rounds: base,
            written: 0,
            from_kernel: None,
            post: None,
            full_share: None,
        });
        for (label, mode) in [
            ("perfkit eBPF, frame pointers", ["--backend", "ebpf", "--unwind", "fp"]),
            ("perfkit perf, frame pointers", ["--backend", "perf", "--unwind", "fp"]),
            ("perfkit perf, DWARF", ["--backend", "perf", "--unwind", "dwarf"]),
        ] {
            let svg = dir.join("perfkit.svg");
            let folded = dir.join("perfkit.folded");
            let out = run_output(
                Command::new(&perfkit)
                    .args(["profile", "-F", &freq])
                    .args(mode)
                    .arg("-o")
                    .arg(&svg)
                    .arg("--folded")
                    .arg(&folded)
                    .arg("--")
                    .arg(bin)
                    .args([secs.as_str(), "report"]),
            )?;
            let err = String::from_utf8_lossy(&out.stderr);
            let post = err.lines().find_map(|l| {
                let s = l.split(" (").nth(1)?.strip_suffix(" s after sampling ended)")?;
                s.parse::<f64>().ok().map(Duration::from_secs_f64)
            });
            let from_kernel = err.lines().find_map(|l| {
                l.strip_prefix("read ")?.strip_suffix(" KiB of samples from the kernel")?.parse::<u64>().ok()
            });
            runs.push(ProfileRun {
                label: label.into(),
                rounds: rounds_of(&err)?,
                written: file_len(&svg) + file_len(&folded),
                from_kernel: from_kernel.map(|k| k * 1024),
                post,
                full_share: Some(full_share(&fs::read_to_string(&folded).map_err(|e| e.to_string())?)),
            });
        }
        for (label, graph) in [("perf record -g", "fp"), ("perf record --call-graph dwarf", "dwarf")] {
            let data = dir.join("perf.data");
            let out = run_output(
                Command::new(&perf)
                    .args(["record", "-q", "-e", "cpu-clock", "-F", &freq, "--call-graph", graph, "-o"])
                    .arg(&data)
                    .arg("--")
                    .arg(bin)
                    .args([secs.as_str(), "report"]),
            )?;
            let rounds = rounds_of(&String::from_utf8_lossy(&out.stderr))?;
            // After sampling: perf script | inferno-collapse-perf | inferno-flamegraph.
            let started = Instant::now();
            let script = run_output(Command::new(&perf).args(["script", "-i"]).arg(&data))?;
            let mut c = Command::new(&collapse)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            {
                let mut stdin = c.stdin.take().ok_or("no stdin")?;
                stdin.write_all(&script.stdout).map_err(|e| e.to_string())?;
            }
            let folded = c.wait_with_output().map_err(|e| e.to_string())?.stdout;
            let folded_path = dir.join("perf.folded");
            fs::write(&folded_path, &folded).map_err(|e| e.to_string())?;
            let svg = run_output(Command::new(&flamegraph).arg(&folded_path))?;
            fs::write(dir.join("perf.svg"), &svg.stdout).map_err(|e| e.to_string())?;
            let post = started.elapsed();
            runs.push(ProfileRun {
                label: label.into(),
                rounds,
                written: file_len(&data),
                from_kernel: Some(file_len(&data)),
                post: Some(post),
                full_share: Some(full_share(&String::from_utf8_lossy(&folded))),
            });
        }
        print_profile_table(name, seconds, hz, &runs);
    }
    Ok(())
}

fn kib(b: u64) -> String {
    if b >= 10 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn print_profile_table(name: &str, seconds: u32, hz: u32, runs: &[ProfileRun]) {
    let base = runs[0].rounds.max(1) as f64;
    println!("\n{name}, {seconds} s at {hz} Hz:");
    println!(
        "  {:<34} {:>10} {:>12} {:>14} {:>13} {:>12}",
        "", "throughput", "written", "from kernel", "SVG after", "full stacks"
    );
    for r in runs {
        println!(
            "  {:<34} {:>9.1}% {:>12} {:>14} {:>13} {:>12}",
            r.label,
            100.0 * r.rounds as f64 / base,
            if r.written > 0 { kib(r.written) } else { "-".into() },
            r.from_kernel.map_or("-".into(), kib),
            r.post.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            r.full_share.map_or("-".into(), |s| format!("{:.1}%", 100.0 * s)),
        );
    }
    let find = |l: &str| runs.iter().find(|r| r.label == l);
    if let (Some(ours), Some(theirs)) = (find("perfkit perf, DWARF"), find("perf record --call-graph dwarf")) {
        println!(
            "  perfkit DWARF vs perf --call-graph dwarf: data written {:.3}x ({:.0}x less), throughput {:.3}x, SVG after sampling {:.2}x",
            ours.written as f64 / theirs.written.max(1) as f64,
            theirs.written as f64 / ours.written.max(1) as f64,
            ours.rounds as f64 / theirs.rounds.max(1) as f64,
            ours.post.zip(theirs.post).map_or(f64::NAN, |(a, b)| a.as_secs_f64() / b.as_secs_f64()),
        );
    }
    if let (Some(ours), Some(theirs)) = (find("perfkit eBPF, frame pointers"), find("perf record -g")) {
        println!(
            "  perfkit eBPF vs perf record -g: data written {:.3}x, throughput {:.3}x, SVG after sampling {:.2}x",
            ours.written as f64 / theirs.written.max(1) as f64,
            ours.rounds as f64 / theirs.rounds.max(1) as f64,
            ours.post.zip(theirs.post).map_or(f64::NAN, |(a, b)| a.as_secs_f64() / b.as_secs_f64()),
        );
    }
}
