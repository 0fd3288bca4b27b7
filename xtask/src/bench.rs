//! `cargo xtask bench`: perfkit against the classic tools, measured in the
//! same run on the same work, reported as ratios.
//!
//! Every figure is the median of at least three runs, with the range
//! (min-max) beside it; the contenders' runs are interleaved (round 1 of
//! each, then round 2 of each...), so that a slow moment of the machine
//! does not fall on one contender only. Never the best of N.
//!
//! - `flamegraph`: a profile of a million unique stacks rendered by
//!   `perfkit flamegraph` and by `inferno-flamegraph`: wall time, peak
//!   memory.
//! - `procs`: one collection of every process (with 1,000 extra), `perfkit
//!   sys proc` against `pidstat -u -r -d -w`: CPU time.
//! - `profile`: on workloads with known paths (C without frame pointers,
//!   Rust built by cargo's defaults, C++ linked by lld, Go, stripped `xz`):
//!   perfkit's default (eBPF, unwind tables in the kernel), perfkit's perf
//!   backend (DWARF stack copies), `perf record -g` and `perf record
//!   --call-graph dwarf`, each peer counted as its whole pipeline (`perf
//!   record` + `perf script` + `inferno-collapse-perf` +
//!   `inferno-flamegraph`). Reports the share of samples with a full path,
//!   samples lost, data copied from the kernel, the tool's CPU time and
//!   peak memory, the target's throughput, and the unwind tables' build
//!   time and size; then a system-wide row at 99 Hz with both CPUs busy,
//!   and the time to build the tables of a large binary.
//! - `tools`: the slowdown perfkit's syscount, runqlat and opensnoop cause
//!   on a syscall-heavy and a context-switch-heavy workload, against the
//!   same measurement by bpftrace.
//! - `host`: `-a` at 19, 99 and 999 Hz on a busy machine with programs
//!   starting and exiting, against `perf record -a -g` + `perf script` +
//!   inferno-collapse-perf and bpftrace's `profile:hz`: CPU (with the BPF
//!   programs' run time), peak memory, table memory, stacks rooted and
//!   samples named; and the eBPF profilers' CPU split into a fixed cost
//!   per run (start, end) and a rate while sampling ([`Phases`]).
//! - `checkup`: `perfkit checkup` over its window against the classic
//!   first minute in the same kind of window (sysstat's five tools,
//!   bpftrace runqlat and biolatency, `perf record -a -g` with its flame
//!   graph): CPU seconds (BPF run time included) and peak memory.

mod checkup;
mod runtimes;
pub use checkup::checkup;
pub use runtimes::runtimes;

use std::{
    collections::HashMap,
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// One measured run of a command.
#[derive(Clone, Debug, Default)]
struct Run {
    wall: Duration,
    max_rss_kib: u64,
    /// User plus system CPU time.
    cpu: Duration,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, its output in files, measuring wall time,
/// CPU time and peak memory (from `wait4`'s rusage).
fn measure(cmd: &mut Command) -> Result<Run, String> {
    let dir = tempdir()?;
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = cmd.stdout(out).stderr(err).spawn().map_err(|e| format!("running {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped; the pointers are valid
    // for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    if rc != pid {
        return Err(format!("waiting for {cmd:?}: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (wait status {status}):\n{stderr}"));
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok(Run { wall, max_rss_kib: usage.ru_maxrss as u64, cpu: tv(usage.ru_utime) + tv(usage.ru_stime), stdout, stderr })
}

fn tempdir() -> Result<PathBuf, String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("perfkit-bench-{}-{n}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Median and range of a series.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Stat { median, min: v[0], max: v[n - 1] })
    }

    /// `12.3 (11.9-12.8)` with `unit` and `decimals`.
    fn show(self, decimals: usize, unit: &str) -> String {
        format!("{:.d$}{unit} ({:.d$}-{:.d$})", self.median, self.min, self.max, d = decimals)
    }
}

fn show(values: &[f64], decimals: usize, unit: &str) -> String {
    Stat::of(values).map_or("-".into(), |s| s.show(decimals, unit))
}

fn median(values: &[f64]) -> f64 {
    Stat::of(values).map_or(f64::NAN, |s| s.median)
}

/// Runs each contender once per round, `rounds` times, interleaved.
fn interleaved<T>(
    rounds: usize,
    contenders: &mut [&mut dyn FnMut() -> Result<T, String>],
) -> Result<Vec<Vec<T>>, String> {
    let mut out: Vec<Vec<T>> = (0..contenders.len()).map(|_| Vec::new()).collect();
    for round in 0..rounds {
        eprintln!("xtask: round {} of {rounds}", round + 1);
        for (i, c) in contenders.iter_mut().enumerate() {
            out[i].push(c()?);
        }
    }
    Ok(out)
}

/// Child processes killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
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
        .args(["build", "--release", "--locked", "-p", "perfkit-cli", "-p", "perfkit-unwind", "--examples", "--bins"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !status.success() {
        return Err("building perfkit failed".into());
    }
    Ok(root.join("target/release/perfkit"))
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
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
    // The input is ours and trusted, and a million unique stacks take
    // more than the default budget for untrusted input (512 MiB): raised,
    // as a user would for a file they trust.
    let mut ours =
        || measure(Command::new(&perfkit).args(["--max-memory", "4G", "flamegraph"]).arg(&input).arg("-o").arg(&svg));
    // perfkit's defaults: java palette, hashed colours.
    let mut theirs = || measure(Command::new(&inferno).args(["--colors", "java", "--hash"]).arg(&input));
    let results = interleaved(runs, &mut [&mut ours, &mut theirs])?;
    let wall = |i: usize| results[i].iter().map(|r| r.wall.as_secs_f64()).collect::<Vec<_>>();
    let rss = |i: usize| results[i].iter().map(|r| mib(r.max_rss_kib as f64)).collect::<Vec<_>>();
    println!(
        "\nflame graph of {stacks} unique stacks ({:.0} MiB of folded input), median (range) of {runs} interleaved runs:",
        size as f64 / (1 << 20) as f64
    );
    println!("  {:<22} {:>22} {:>24}", "", "wall", "peak memory");
    println!("  {:<22} {:>22} {:>24}", "perfkit flamegraph", show(&wall(0), 2, " s"), show(&rss(0), 0, " MiB"));
    println!("  {:<22} {:>22} {:>24}", "inferno-flamegraph", show(&wall(1), 2, " s"), show(&rss(1), 0, " MiB"));
    println!(
        "  ratio perfkit/inferno (medians): time {:.2}x, memory {:.2}x; perfkit memory / input size {:.2}x",
        median(&wall(0)) / median(&wall(1)),
        median(&rss(0)) / median(&rss(1)),
        median(&rss(0)) * (1 << 20) as f64 / size as f64
    );
    Ok(())
}

/// Writes a folded profile of `n` unique stacks, 5 to 30 frames deep over
/// 10,000 function names, with a deterministic generator.
fn write_big_profile(path: &Path, n: usize) -> Result<(), String> {
    let file = fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
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
        writeln!(out, ";leaf_{i} {}", 1 + next() % 100).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// The per-process collection benchmark.
pub fn procs(root: &Path, extra: usize, runs: usize) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let pidstat = find_on_path("pidstat").ok_or("pidstat not found: install Debian's sysstat")?;
    let mut sleepers = Children(Vec::with_capacity(extra));
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
    let mut ours = || measure(Command::new(&perfkit).args(["sys", "proc"]));
    let mut theirs = || measure(Command::new(&pidstat).args(["-u", "-r", "-d", "-w"]).env("LC_ALL", "C"));
    let results = interleaved(runs, &mut [&mut ours, &mut theirs])?;
    drop(sleepers);
    let cpu = |i: usize| results[i].iter().map(|r| r.cpu.as_secs_f64() * 1e3).collect::<Vec<_>>();
    let wall = |i: usize| results[i].iter().map(|r| r.wall.as_secs_f64() * 1e3).collect::<Vec<_>>();
    println!("\none collection of all {total} processes, median (range) of {runs} interleaved runs:");
    println!("  {:<24} {:>24} {:>24}", "", "CPU time", "wall");
    println!("  {:<24} {:>24} {:>24}", "perfkit sys proc", show(&cpu(0), 1, " ms"), show(&wall(0), 1, " ms"));
    println!("  {:<24} {:>24} {:>24}", "pidstat -u -r -d -w", show(&cpu(1), 1, " ms"), show(&wall(1), 1, " ms"));
    println!(
        "  ratio perfkit/pidstat (medians): CPU time {:.2}x, wall {:.2}x",
        median(&cpu(0)) / median(&cpu(1)).max(1e-6),
        median(&wall(0)) / median(&wall(1)).max(1e-6)
    );
    Ok(())
}

/// A benchmark workload: how to run it for `seconds`, and the known path
/// that its hot leaves must have.
struct Workload {
    name: &'static str,
    command: Vec<String>,
    /// (leaf, path suffix of short names ending at it).
    paths: Vec<(&'static str, Vec<&'static str>)>,
    /// Whether it prints "rounds N" (throughput).
    reports: bool,
}

/// Builds the workloads the tests use, the same way.
fn workloads(root: &Path, dir: &Path, seconds: u32) -> Result<Vec<Workload>, String> {
    let src = root.join("crates/perfkit-cli/tests/workloads");
    let cc = |compiler: &str, source: &str, out: &str, flags: &[&str]| -> Result<String, String> {
        let out = dir.join(out);
        let st = Command::new(compiler)
            .args(flags)
            .arg("-g")
            .arg("-o")
            .arg(&out)
            .arg(src.join(source))
            .status()
            .map_err(|e| format!("running {compiler}: {e}"))?;
        if !st.success() {
            return Err(format!("building {source} failed"));
        }
        Ok(out.to_string_lossy().into_owned())
    };
    // The workloads outlive the profile by a second: the profilers attach
    // to them (-p), so that a profiler's CPU time and memory are its own.
    let secs = (seconds + 1).to_string();
    let mut out = Vec::new();
    let nofp = cc(
        "cc",
        "hotspots.c",
        "hotspots-nofp",
        &["-O1", "-fomit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls"],
    )?;
    out.push(Workload {
        name: "C, -O1 without frame pointers",
        command: vec![nofp, secs.clone(), "report".into()],
        paths: vec![("hot_a", vec!["main", "parent_a", "hot_a"]), ("hot_b", vec!["main", "parent_b", "hot_b"])],
        reports: true,
    });
    // Rust, cargo's defaults.
    let target = dir.join("rusthot-target");
    let st = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(&target)
        .current_dir(src.join("rusthot"))
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("building rusthot failed".into());
    }
    out.push(Workload {
        name: "Rust, cargo build --release",
        command: vec![target.join("release/rusthot").to_string_lossy().into_owned(), secs.clone()],
        paths: vec![("churn", vec!["main", "parse_phase", "churn"]), ("churn", vec!["main", "render_phase", "churn"])],
        reports: false,
    });
    let cpp = cc("g++", "cpphot.cpp", "cpphot-lld", &["-O2", "-fuse-ld=lld"])?;
    out.push(Workload {
        name: "C++, g++ -O2, lld",
        command: vec![cpp, secs.clone()],
        paths: vec![
            ("tokenize", vec!["main", "parse_request", "tokenize"]),
            ("rasterize", vec!["main", "draw_frame", "rasterize"]),
            ("mix", vec!["main", "digest", "mix"]),
        ],
        reports: false,
    });
    if find_on_path("go").is_some() {
        let bin = dir.join("gohot");
        let st = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(src.join("gohot"))
            .env("GOCACHE", dir.join("go-cache"))
            .env("GOFLAGS", "-mod=mod")
            .status()
            .map_err(|e| e.to_string())?;
        if st.success() {
            out.push(Workload {
                name: "Go",
                command: vec![bin.to_string_lossy().into_owned(), secs.clone()],
                paths: vec![
                    ("main.leaf", vec!["main.main", "main.parentA", "main.leaf"]),
                    ("main.leaf", vec!["main.main", "main.parentB", "main.leaf"]),
                ],
                reports: false,
            });
        }
    }
    // xz as Debian ships it, on data it takes `seconds` or so to compress.
    let input = dir.join("xz-input");
    if !input.exists() {
        let mut data = Vec::with_capacity(8 << 20);
        let mut x: u64 = 88172645463325252;
        while data.len() < 8 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(format!("{} ", x % 50_000).as_bytes());
        }
        fs::write(&input, data).map_err(|e| e.to_string())?;
    }
    out.push(Workload {
        name: "xz -9 (stripped, Debian)",
        command: vec![
            "xz".into(),
            "-9".into(),
            "-T1".into(),
            "-k".into(),
            "-c".into(),
            input.to_string_lossy().into_owned(),
        ],
        paths: vec![("", vec!["__libc_start_call_main"])],
        reports: false,
    });
    Ok(out)
}

/// A frame's short name: suffixes and the path before its last segment
/// removed, as the tests compare them.
fn short(frame: &str) -> &str {
    let f = frame.strip_suffix("_[i]").or_else(|| frame.strip_suffix("_[k]")).unwrap_or(frame);
    let f = f.split('(').next().unwrap_or(f);
    if f.starts_with("main.") { f } else { f.rsplit("::").next().unwrap_or(f) }
}

/// The share of the workload's hot samples whose stack has the full known
/// path from a root function (for xz: reaches `__libc_start_call_main`).
fn full_share(folded: &str, w: &Workload) -> f64 {
    const ROOTS: &[&str] = &["_start", "runtime.goexit", "runtime.goexit.abi0", "clone3", "clone"];
    let (mut hot, mut full) = (0u64, 0u64);
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let count: u64 = count.parse().unwrap_or(0);
        let frames: Vec<&str> =
            stack.split(';').skip(1).filter(|f| !f.ends_with("_[i]") && !f.ends_with("_[k]")).map(short).collect();
        if w.paths[0].0.is_empty() {
            // Any sample of the process: does it reach the libc start?
            if !stack.starts_with("xz") {
                continue;
            }
            hot += count;
            if frames.contains(&w.paths[0].1[0]) {
                full += count;
            }
            continue;
        }
        // The leaf among the innermost frames (perf writes inlined callees
        // as plain frames around their caller), and the known path in
        // order, from a root function.
        let tail = &frames[frames.len().saturating_sub(4)..];
        if !w.paths.iter().any(|(l, _)| tail.contains(l)) {
            continue;
        }
        hot += count;
        let rooted = frames.first().is_some_and(|f| ROOTS.contains(f));
        let in_order = |p: &[&str]| {
            let mut it = frames.iter();
            p.iter().all(|want| it.any(|f| f == want))
        };
        if rooted && w.paths.iter().filter(|(l, _)| tail.contains(l)).any(|(_, p)| in_order(p)) {
            full += count;
        }
    }
    if hot == 0 { f64::NAN } else { full as f64 / hot as f64 }
}

/// What one profiled run gave.
#[derive(Clone, Debug, Default)]
struct Profiled {
    /// Throughput of the workload, rounds (when it reports them).
    rounds: Option<f64>,
    full: f64,
    lost: f64,
    samples: f64,
    from_kernel_kib: f64,
    cpu_s: f64,
    peak_mib: f64,
    table_ms: Option<f64>,
    table_kib: Option<f64>,
}

fn rounds_of(stderr: &str) -> Option<f64> {
    stderr.lines().find_map(|l| l.strip_prefix("rounds ")?.trim().parse().ok())
}

/// A number after `prefix` in a line of `text` (the first whitespace-
/// separated word after it).
fn number_after(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let at = l.find(prefix)? + prefix.len();
        l[at..].split_whitespace().next()?.trim_end_matches([',', ')', ';']).parse().ok()
    })
}

fn folded_total(folded: &str) -> f64 {
    folded.lines().filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum()
}

/// Starts the workload, runs `tool` (given the workload's PID) attached to
/// it, and returns the tool's run and the workload's stderr.
fn attached(w: &Workload, tool: impl FnOnce(u32) -> Command) -> Result<(Run, String), String> {
    let dir = tempdir()?;
    let err_path = dir.join("workload.err");
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let child = Command::new(&w.command[0])
        .args(&w.command[1..])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {:?}: {e}", w.command))?;
    let mut kids = Children(vec![child]);
    std::thread::sleep(Duration::from_millis(200));
    let run = measure(&mut tool(kids.0[0].id()));
    let status = kids.0[0].wait().map_err(|e| e.to_string())?;
    kids.0.clear();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    if !status.success() {
        return Err(format!("the workload {:?} failed: {stderr}", w.command));
    }
    Ok((run?, stderr))
}

/// `perfkit profile -p` on a workload.
fn perfkit_run(
    perfkit: &Path,
    dir: &Path,
    w: &Workload,
    hz: u32,
    seconds: u32,
    mode: &[&str],
) -> Result<Profiled, String> {
    let folded = dir.join("perfkit.folded");
    let (run, workload_err) = attached(w, |pid| {
        let mut c = Command::new(perfkit);
        c.args(["profile", "-F", &hz.to_string()])
            .args(mode)
            .args(["-p", &pid.to_string(), "-d", &seconds.to_string(), "-o"])
            .arg(dir.join("perfkit.svg"))
            .arg("--folded")
            .arg(&folded);
        c
    })?;
    let text = fs::read_to_string(&folded).map_err(|e| e.to_string())?;
    let err = &run.stderr;
    let lost =
        number_after(err, "lost stacks: ").unwrap_or(0.0) + number_after(err, "dropped samples: ").unwrap_or(0.0);
    Ok(Profiled {
        rounds: rounds_of(&workload_err),
        full: full_share(&text, w),
        lost,
        samples: folded_total(&text),
        from_kernel_kib: number_after(err, "read ").unwrap_or(f64::NAN),
        cpu_s: run.cpu.as_secs_f64(),
        peak_mib: mib(run.max_rss_kib as f64),
        table_ms: number_after(err, "built in ").filter(|_| err.contains("unwind tables:")),
        table_kib: err.lines().find(|l| l.starts_with("unwind tables:")).and_then(|l| {
            let inner = l.split('(').nth(1)?;
            inner.split_whitespace().next()?.parse().ok()
        }),
    })
}

/// `perf record -p` + `perf script` + inferno on a workload: the whole
/// pipeline's CPU time and peak memory.
fn perf_run(
    perf: &Path,
    inferno: &Path,
    dir: &Path,
    w: &Workload,
    hz: u32,
    seconds: u32,
    graph: &str,
) -> Result<Profiled, String> {
    let data = dir.join("perf.data");
    let (record, workload_err) = attached(w, |pid| {
        let mut c = Command::new(perf);
        c.args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            &hz.to_string(),
            "--call-graph",
            graph,
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(&data)
        .args(["--", "sleep", &seconds.to_string()]);
        c
    })?;
    let PerfPost { script, collapse, graph: graph_run } = perf_post(perf, inferno, dir, &data)?;
    // perf record says "Processed N events and lost M chunks!" or "lost N
    // samples" when it loses data.
    let lost = record
        .stderr
        .lines()
        .filter(|l| l.contains("lost") || l.contains("Lost"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.parse::<f64>().ok()))
        .fold(0.0, |a, b| a + b);
    let runs = [&record, &script, &collapse, &graph_run];
    Ok(Profiled {
        rounds: rounds_of(&workload_err),
        full: full_share(&collapse.stdout, w),
        lost,
        // inferno-collapse-perf counts periods: count perf script's
        // samples instead (one header line each).
        samples: script.stdout.lines().filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace)).count() as f64,
        from_kernel_kib: fs::metadata(&data).map_or(f64::NAN, |m| m.len() as f64 / 1024.0),
        cpu_s: runs.iter().map(|r| r.cpu.as_secs_f64()).sum(),
        peak_mib: runs.iter().map(|r| mib(r.max_rss_kib as f64)).fold(0.0, f64::max),
        table_ms: None,
        table_kib: None,
    })
}

/// The steps after `perf record`, each measured.
struct PerfPost {
    script: Run,
    collapse: Run,
    graph: Run,
}

/// perf's way from `data` to a flame graph: `perf script`,
/// inferno-collapse-perf and inferno-flamegraph, through files in `dir`.
fn perf_post(perf: &Path, inferno: &Path, dir: &Path, data: &Path) -> Result<PerfPost, String> {
    let script = measure(Command::new(perf).args(["script", "-i"]).arg(data))?;
    let script_out = dir.join("perf.script");
    fs::write(&script_out, &script.stdout).map_err(|e| e.to_string())?;
    let collapse = measure(Command::new(inferno.with_file_name("inferno-collapse-perf")).arg(&script_out))?;
    let folded = dir.join("perf.folded");
    fs::write(&folded, &collapse.stdout).map_err(|e| e.to_string())?;
    let graph = measure(Command::new(inferno).arg(&folded))?;
    Ok(PerfPost { script, collapse, graph })
}

/// Sets kernel.perf_event_max_sample_rate to at least `hz` for the run.
fn allow_rate(hz: u32) {
    let path = "/proc/sys/kernel/perf_event_max_sample_rate";
    let now: u32 = fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    if now < hz {
        let _ = fs::write(path, hz.to_string());
    }
}

/// The profiling benchmark.
pub fn profile(root: &Path, seconds: u32, runs: usize, rates: &[u32]) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let perf = find_on_path("perf").ok_or("perf not found: install Debian's linux-perf")?;
    let inferno = ensure_inferno()?;
    let dir = root.join("target/bench/profile");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let workloads = workloads(root, &dir, seconds)?;
    println!(
        "\nprofiling: median (range) of {runs} interleaved runs; each profiler attached (-p) to the workload for {seconds} s; \
         peers counted as their whole pipeline; CPU time and memory are the profiler's own"
    );
    for &hz in rates {
        allow_rate(hz);
        for w in &workloads {
            // At the high rate, the workloads without frame pointers only.
            if hz > 1000 && !(w.reports || w.name.starts_with("Rust")) {
                continue;
            }
            eprintln!("xtask: {} at {hz} Hz", w.name);
            let mut base = || -> Result<Profiled, String> {
                let r = measure(Command::new(&w.command[0]).args(&w.command[1..]))?;
                Ok(Profiled { rounds: rounds_of(&r.stderr), ..Profiled::default() })
            };
            let mut ebpf = || perfkit_run(&perfkit, &dir, w, hz, seconds, &[]);
            let mut pk_perf =
                || perfkit_run(&perfkit, &dir, w, hz, seconds, &["--backend", "perf", "--unwind", "dwarf"]);
            let mut perf_fp = || perf_run(&perf, &inferno, &dir, w, hz, seconds, "fp");
            let mut perf_dwarf = || perf_run(&perf, &inferno, &dir, w, hz, seconds, "dwarf");
            let results = interleaved(runs, &mut [&mut base, &mut ebpf, &mut pk_perf, &mut perf_fp, &mut perf_dwarf])?;
            let labels = [
                "unprofiled",
                "perfkit (default: eBPF, tables)",
                "perfkit --backend perf, DWARF",
                "perf record -g | script | inferno",
                "perf --call-graph dwarf | ... ",
            ];
            println!("\n{} at {hz} Hz:", w.name);
            println!(
                "  {:<34} {:>20} {:>22} {:>18} {:>24} {:>22} {:>22}",
                "", "full paths", "lost / samples", "throughput", "from kernel", "CPU time", "peak memory"
            );
            let base_rounds = median(&results[0].iter().filter_map(|r| r.rounds).collect::<Vec<_>>());
            for (i, label) in labels.iter().enumerate().skip(1) {
                let r = &results[i];
                let col = |f: &dyn Fn(&Profiled) -> f64| r.iter().map(f).collect::<Vec<f64>>();
                let thr = if base_rounds.is_finite() {
                    show(&col(&|p| p.rounds.map_or(f64::NAN, |x| 100.0 * x / base_rounds)), 1, "%")
                } else {
                    "-".into()
                };
                println!(
                    "  {:<34} {:>20} {:>22} {:>18} {:>24} {:>22} {:>22}",
                    label,
                    show(&col(&|p| 100.0 * p.full), 1, "%"),
                    format!("{:.0} / {:.0}", median(&col(&|p| p.lost)), median(&col(&|p| p.samples))),
                    thr,
                    show(&col(&|p| p.from_kernel_kib), 0, " KiB"),
                    show(&col(&|p| p.cpu_s), 2, " s"),
                    show(&col(&|p| p.peak_mib), 0, " MiB"),
                );
            }
            let tables: Vec<f64> = results[1].iter().filter_map(|p| p.table_ms).collect();
            let table_kib: Vec<f64> = results[1].iter().filter_map(|p| p.table_kib).collect();
            if !tables.is_empty() {
                println!("  unwind tables: built in {}, {}", show(&tables, 1, " ms"), show(&table_kib, 0, " KiB"));
            }
            let m = |i: usize, f: &dyn Fn(&Profiled) -> f64| median(&results[i].iter().map(f).collect::<Vec<_>>());
            println!(
                "  perfkit default vs perf --call-graph dwarf (medians): full paths {:.1}% vs {:.1}%, data {:.0}x less, CPU {:.2}x, memory {:.2}x",
                100.0 * m(1, &|p| p.full),
                100.0 * m(4, &|p| p.full),
                m(4, &|p| p.from_kernel_kib) / m(1, &|p| p.from_kernel_kib).max(1e-9),
                m(1, &|p| p.cpu_s) / m(4, &|p| p.cpu_s).max(1e-9),
                m(1, &|p| p.peak_mib) / m(4, &|p| p.peak_mib).max(1e-9),
            );
            if w.reports {
                println!(
                    "  target throughput (medians): perfkit default {:.1}%, perf record -g {:.1}%",
                    100.0 * m(1, &|p| p.rounds.unwrap_or(f64::NAN)) / base_rounds,
                    100.0 * m(3, &|p| p.rounds.unwrap_or(f64::NAN)) / base_rounds,
                );
            }
        }
    }
    system_wide(&perfkit, &perf, &inferno, &dir, &workloads[0], runs)?;
    table_build(root, runs)?;
    Ok(())
}

/// perfkit -a against perf record -a -g (whole pipeline) at 99 Hz with both
/// CPUs busy: CPU time per second of profiling.
fn system_wide(
    perfkit: &Path,
    perf: &Path,
    inferno: &Path,
    dir: &Path,
    w: &Workload,
    runs: usize,
) -> Result<(), String> {
    const SECS: f64 = 5.0;
    let busy_cmd = |n: usize| -> Result<Children, String> {
        let mut kids = Vec::new();
        for _ in 0..n {
            kids.push(
                Command::new(&w.command[0])
                    .arg("3600")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(Children(kids))
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _busy = busy_cmd(cpus)?;
    let mut ours = || -> Result<f64, String> {
        let r = measure(
            Command::new(perfkit).args(["profile", "-a", "-F", "99", "-d", "5", "-o"]).arg(dir.join("all.svg")),
        )?;
        Ok(r.cpu.as_secs_f64() / SECS)
    };
    let mut theirs = || -> Result<f64, String> {
        let data = dir.join("all.data");
        let rec = measure(
            Command::new(perf).args(["record", "-a", "-g", "-F", "99", "-o"]).arg(&data).args(["--", "sleep", "5"]),
        )?;
        let post = perf_post(perf, inferno, dir, &data)?;
        Ok((rec.cpu + post.script.cpu + post.collapse.cpu + post.graph.cpu).as_secs_f64() / SECS)
    };
    let results = interleaved(runs, &mut [&mut ours, &mut theirs])?;
    println!(
        "\nsystem-wide at 99 Hz, {cpus} CPUs busy: the profiler's CPU time per second of profiling, median (range):"
    );
    println!(
        "  {:<40} {}",
        "perfkit profile -a",
        show(&results[0].iter().map(|x| x * 1000.0).collect::<Vec<_>>(), 1, " ms/s")
    );
    println!(
        "  {:<40} {}",
        "perf record -a -g + script + inferno",
        show(&results[1].iter().map(|x| x * 1000.0).collect::<Vec<_>>(), 1, " ms/s")
    );
    println!("  ratio perfkit/perf (medians): {:.2}x", median(&results[0]) / median(&results[1]).max(1e-9));
    Ok(())
}

/// The unwind tables of a large binary: perfkit's own release build.
fn table_build(root: &Path, runs: usize) -> Result<(), String> {
    let example = root.join("target/release/examples/unwind-table");
    let big = root.join("target/release/perfkit");
    let size = fs::metadata(&big).map_err(|e| e.to_string())?.len();
    let mut go = || -> Result<(f64, f64), String> {
        let r = measure(Command::new(&example).arg(&big))?;
        let ms = number_after(&r.stdout, "built in ").ok_or_else(|| format!("no build time in {:?}", r.stdout))?;
        Ok((ms, mib(r.max_rss_kib as f64)))
    };
    let results = interleaved(runs.max(3), &mut [&mut go])?;
    let ms: Vec<f64> = results[0].iter().map(|r| r.0).collect();
    let rss: Vec<f64> = results[0].iter().map(|r| r.1).collect();
    println!(
        "\nunwind tables of a {:.0} MiB binary (perfkit's release build): built in {}, peak memory {}",
        size as f64 / (1 << 20) as f64,
        show(&ms, 0, " ms"),
        show(&rss, 0, " MiB")
    );
    Ok(())
}

/// The tools benchmark: each tool's slowdown of a syscall-heavy and a
/// context-switch-heavy workload, against bpftrace doing the same.
pub fn tools(root: &Path, runs: usize, calls: usize) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let bpftrace = find_on_path("bpftrace").ok_or("bpftrace not found: install Debian's bpftrace")?;
    let dir = root.join("target/bench/tools");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = root.join("crates/perfkit-cli/tests/workloads");
    let build = |source: &str, out: &str| -> Result<PathBuf, String> {
        let out = dir.join(out);
        let st = Command::new("cc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&out)
            .arg(src.join(source))
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("building {source} failed"));
        }
        Ok(out)
    };
    let syscalls = build("syscalls.c", "syscalls")?;
    let pingpong = build("pingpong.c", "pingpong")?;
    let runqlat_bt = "tracepoint:sched:sched_wakeup,tracepoint:sched:sched_wakeup_new { @q[args->pid] = nsecs; } \
        tracepoint:sched:sched_switch { if (args->prev_state == 0) { @q[args->prev_pid] = nsecs; } \
        $ns = @q[args->next_pid]; if ($ns) { @usecs = hist((nsecs - $ns) / 1000); } delete(@q[args->next_pid]); }";
    let syscount_bt = "tracepoint:raw_syscalls:sys_exit { @[args->id] = count(); }";
    let opensnoop_bt = "tracepoint:syscalls:sys_enter_openat { @f[tid] = args->filename; } tracepoint:syscalls:sys_exit_openat /@f[tid]/ { printf(\"%d %s %d\\n\", pid, str(@f[tid]), args->ret); delete(@f[tid]); }";
    // (label, tracer command, ready marker on its output)
    type Tracer = (&'static str, Vec<String>, &'static str);
    let pk = |args: &[&str]| -> Vec<String> {
        std::iter::once(perfkit.to_string_lossy().into_owned()).chain(args.iter().map(|s| s.to_string())).collect()
    };
    let bt =
        |script: &str| -> Vec<String> { vec![bpftrace.to_string_lossy().into_owned(), "-e".into(), script.into()] };
    let cases: Vec<(&str, Vec<String>, Vec<Tracer>)> = vec![
        (
            "syscall-heavy: 2,000,000 getppid calls",
            vec![syscalls.to_string_lossy().into_owned(), "2000000".into()],
            vec![
                ("perfkit syscount", pk(&["syscount"]), "Tracing"),
                ("bpftrace @[args->id] = count()", bt(syscount_bt), "Attaching"),
                ("perfkit runqlat", pk(&["runqlat"]), "Tracing"),
                ("bpftrace runqlat (tracepoints)", bt(runqlat_bt), "Attaching"),
            ],
        ),
        (
            "context-switch-heavy: 100,000 pipe round trips (about 100k switches/s)",
            vec![pingpong.to_string_lossy().into_owned(), "100000".into()],
            vec![
                ("perfkit runqlat", pk(&["runqlat"]), "Tracing"),
                ("bpftrace runqlat (tracepoints)", bt(runqlat_bt), "Attaching"),
                ("perfkit syscount", pk(&["syscount"]), "Tracing"),
                ("bpftrace @[args->id] = count()", bt(syscount_bt), "Attaching"),
                ("perfkit opensnoop", pk(&["opensnoop"]), "Tracing"),
                ("bpftrace opensnoop (tracepoints)", bt(opensnoop_bt), "Attaching"),
            ],
        ),
    ];
    tools_uprobes(&perfkit, &bpftrace, &build("ucalls.c", "ucalls")?, runs, calls)?;
    println!("\ntools: the workload's wall time under each tracer, median (range) of {runs} interleaved runs");
    for (name, workload, tracers) in &cases {
        let mut plain = || -> Result<f64, String> {
            Ok(measure(Command::new(&workload[0]).args(&workload[1..]))?.wall.as_secs_f64())
        };
        let mut closures: Vec<Box<dyn FnMut() -> Result<f64, String>>> = Vec::new();
        for (_, cmd, ready) in tracers {
            let (cmd, ready, workload) = (cmd.clone(), *ready, workload.clone());
            closures.push(Box::new(move || traced(&cmd, ready, &workload)));
        }
        let mut all: Vec<&mut dyn FnMut() -> Result<f64, String>> = vec![&mut plain];
        for c in closures.iter_mut() {
            all.push(c.as_mut());
        }
        let results = interleaved(runs, &mut all)?;
        let base = median(&results[0]);
        println!("\n{name}:");
        println!("  {:<36} {}", "untraced", show(&results[0], 3, " s"));
        let mut slow: HashMap<&str, f64> = HashMap::new();
        for (i, (label, _, _)) in tracers.iter().enumerate() {
            let r = &results[i + 1];
            let pct: Vec<f64> = r.iter().map(|t| 100.0 * (t / base - 1.0)).collect();
            println!("  {:<36} {}   slowdown {}", label, show(r, 3, " s"), show(&pct, 1, "%"));
            slow.insert(label, median(&pct));
        }
        for (ours, theirs) in [
            ("perfkit syscount", "bpftrace @[args->id] = count()"),
            ("perfkit runqlat", "bpftrace runqlat (tracepoints)"),
            ("perfkit opensnoop", "bpftrace opensnoop (tracepoints)"),
        ] {
            if let (Some(a), Some(b)) = (slow.get(ours), slow.get(theirs)) {
                println!("  {ours}: slowdown {a:.1}% vs bpftrace's {b:.1}% (medians)");
            }
        }
    }
    Ok(())
}

/// The uprobe tools' rows: a loop calling one user function `calls` times,
/// untraced, under perfkit funccount and funclatency, and under bpftrace's
/// `uprobe:` count and latency histogram, interleaved. Each traced row
/// gives the loop's slowdown and the cost of one call's probes in
/// nanoseconds: (traced wall - untraced wall) / calls, from the medians.
fn tools_uprobes(perfkit: &Path, bpftrace: &Path, ucalls: &Path, runs: usize, calls: usize) -> Result<(), String> {
    let target = format!("{}:call_me", ucalls.display());
    let workload = vec![ucalls.to_string_lossy().into_owned(), calls.to_string()];
    let pk = |tool: &str| -> Vec<String> { vec![perfkit.to_string_lossy().into_owned(), tool.into(), target.clone()] };
    let bt = |script: String| -> Vec<String> { vec![bpftrace.to_string_lossy().into_owned(), "-e".into(), script] };
    let path = ucalls.display();
    let tracers: Vec<(&str, Vec<String>, &str)> = vec![
        ("perfkit funccount", pk("funccount"), "Tracing"),
        ("bpftrace uprobe count()", bt(format!("uprobe:{path}:call_me {{ @ = count(); }}")), "Attaching"),
        ("perfkit funclatency", pk("funclatency"), "Tracing"),
        (
            "bpftrace uprobe+uretprobe hist()",
            bt(format!(
                "uprobe:{path}:call_me {{ @s[tid] = nsecs; }} \
                 uretprobe:{path}:call_me /@s[tid]/ {{ @ns = hist(nsecs - @s[tid]); delete(@s[tid]); }}"
            )),
            "Attaching",
        ),
    ];
    let mut plain =
        || -> Result<f64, String> { Ok(measure(Command::new(&workload[0]).args(&workload[1..]))?.wall.as_secs_f64()) };
    let mut closures: Vec<Box<dyn FnMut() -> Result<f64, String>>> = Vec::new();
    for (_, cmd, ready) in &tracers {
        let (cmd, ready, workload) = (cmd.clone(), *ready, workload.clone());
        closures.push(Box::new(move || traced(&cmd, ready, &workload)));
    }
    let mut all: Vec<&mut dyn FnMut() -> Result<f64, String>> = vec![&mut plain];
    for c in closures.iter_mut() {
        all.push(c.as_mut());
    }
    println!(
        "\ntools, uprobes: a loop calling call_me() {calls} times (--calls N), wall time, median (range) of {runs} interleaved runs"
    );
    let results = interleaved(runs, &mut all)?;
    let base = median(&results[0]);
    println!("  {:<36} {}", "untraced", show(&results[0], 3, " s"));
    let mut per_call: HashMap<&str, f64> = HashMap::new();
    for (i, (label, _, _)) in tracers.iter().enumerate() {
        let r = &results[i + 1];
        let pct: Vec<f64> = r.iter().map(|t| 100.0 * (t / base - 1.0)).collect();
        let ns: Vec<f64> = r.iter().map(|t| (t - base).max(0.0) * 1e9 / calls as f64).collect();
        println!(
            "  {:<36} {}   slowdown {}   per call {}",
            label,
            show(r, 3, " s"),
            show(&pct, 0, "%"),
            show(&ns, 0, " ns")
        );
        per_call.insert(label, median(&ns));
    }
    for (ours, theirs) in
        [("perfkit funccount", "bpftrace uprobe count()"), ("perfkit funclatency", "bpftrace uprobe+uretprobe hist()")]
    {
        if let (Some(a), Some(b)) = (per_call.get(ours), per_call.get(theirs)) {
            println!("  {ours}: {a:.0} ns a call vs bpftrace's {b:.0} ns (medians), {:.2}x", a / b);
        }
    }
    Ok(())
}

/// The workload's wall time while `tracer` runs (started first, until it
/// says `ready`; stopped with SIGINT after).
fn traced(tracer: &[String], ready: &str, workload: &[String]) -> Result<f64, String> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(&tracer[0])
        .args(&tracer[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {tracer:?}: {e}"))?;
    let (out, err) = (child.stdout.take().ok_or("no stdout")?, child.stderr.take().ok_or("no stderr")?);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    for stream in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
        let tx = tx.clone();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
                line.clear();
            }
        });
    }
    let mut guard = Children(vec![child]);
    rx.recv_timeout(Duration::from_secs(60)).map_err(|_| format!("{tracer:?} did not start"))?;
    std::thread::sleep(Duration::from_millis(300));
    let wall = measure(Command::new(&workload[0]).args(&workload[1..]))?.wall.as_secs_f64();
    let c = guard.0.pop().ok_or("no tracer")?;
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let mut c = c;
    let _ = c.wait();
    Ok(wall)
}

/// A profiler run measured with its BPF programs' run time: the sum of
/// `run_time_ns` over the BPF program descriptors the process holds
/// (`/proc/PID/fdinfo`, with `kernel.bpf_stats_enabled`), read every
/// 50 ms while it runs (the last reading counts). With a `marker`, its CPU
/// is also split into start, steady rate and end ([`Phases`]) over a
/// sampling window of `window_s` seconds that begins at the marker.
fn measure_with_bpf(
    cmd: &mut Command,
    marker: Option<Marker>,
    window_s: f64,
) -> Result<(Run, f64, Option<Phases>), String> {
    let dir = tempdir()?;
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = cmd.stdout(out).stderr(err).spawn().map_err(|e| format!("running {cmd:?}: {e}"))?;
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let said = marker.map(|m| (if m.stderr { err_path.clone() } else { out_path.clone() }, m.prefix));
        // The last reading is taken this long before the window's end, so
        // that none falls into the end's work.
        let window = Duration::from_secs_f64(window_s).saturating_sub(Duration::from_millis(150));
        std::thread::spawn(move || {
            let mut last = 0u64;
            let (mut at_marker, mut before_end): (Option<CpuReading>, Option<CpuReading>) = (None, None);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(ns) = bpf_run_time_ns(pid) {
                    last = last.max(ns);
                }
                if let Some((path, prefix)) = &said {
                    match &at_marker {
                        None => {
                            let text = fs::read_to_string(path).unwrap_or_default();
                            if text.lines().any(|l| l.starts_with(prefix)) {
                                at_marker = cpu_reading(pid);
                            }
                        }
                        Some(m) if m.at.elapsed() < window => before_end = cpu_reading(pid).or(before_end),
                        Some(_) => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (last, at_marker, before_end)
        })
    };
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped.
    let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (bpf_ns, at_marker, before_end) = watcher.join().unwrap_or((0, None, None));
    let wall = started.elapsed();
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    if rc != pid as libc::pid_t {
        return Err(format!("waiting for {cmd:?}: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (wait status {status}):\n{stderr}"));
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let run =
        Run { wall, max_rss_kib: usage.ru_maxrss as u64, cpu: tv(usage.ru_utime) + tv(usage.ru_stime), stdout, stderr };
    let total_s = run.cpu.as_secs_f64() + bpf_ns as f64 / 1e9;
    let split = match (&at_marker, &before_end) {
        (Some(a), Some(b)) => phases(a, b, total_s, window_s),
        _ => None,
    };
    Ok((run, bpf_ns as f64, split))
}

/// Where a profiler says that it is sampling: a line beginning with
/// `prefix` in its standard error (`stderr`) or standard output.
#[derive(Clone, Copy, Debug)]
struct Marker {
    stderr: bool,
    prefix: &'static str,
}

/// A profiler's CPU split into the fixed cost of a run and its rate while
/// sampling, from readings of its CPU time taken every 50 ms while it runs.
#[derive(Clone, Copy, Debug, Default)]
struct Phases {
    /// CPU seconds (user and system, BPF programs included) until it said
    /// that it was sampling: loading programs, first reading of the
    /// machine.
    start_s: f64,
    /// CPU seconds per second while sampling (BPF programs included), from
    /// the first reading after the marker to the last one before the
    /// window's end.
    steady_rate: f64,
    /// CPU seconds of the rest: the end (reading maps, naming frames,
    /// writing outputs), what is left of the total once the start and the
    /// window at the steady rate are taken out.
    end_s: f64,
}

/// One reading of a running process's CPU time.
#[derive(Clone, Debug)]
struct CpuReading {
    at: Instant,
    /// utime + stime of the whole process (exited threads included), in
    /// seconds, at the clock tick's resolution (10 ms).
    ticks_s: f64,
    /// Run time of each live thread (`/proc/PID/task/TID/schedstat`), in
    /// nanoseconds: exact, but blind to threads that exited.
    threads_ns: HashMap<u32, u64>,
    bpf_ns: u64,
}

fn cpu_reading(pid: u32) -> Option<CpuReading> {
    let at = Instant::now();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks_s = (tick(11)? + tick(12)?) as f64 / hz;
    let mut threads_ns = HashMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let Ok(text) = fs::read_to_string(entry.path().join("schedstat")) else { continue };
        if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()) {
            threads_ns.insert(tid, ns);
        }
    }
    Some(CpuReading { at, ticks_s, threads_ns, bpf_ns: bpf_run_time_ns(pid).unwrap_or(0) })
}

/// Splits a run's CPU (`total_s`, BPF included) into start, steady rate and
/// end, from the reading at the marker and the last one before the end of
/// a sampling window of `window_s` seconds.
fn phases(at_marker: &CpuReading, before_end: &CpuReading, total_s: f64, window_s: f64) -> Option<Phases> {
    let span = before_end.at.duration_since(at_marker.at).as_secs_f64();
    if span < 0.5 * window_s {
        return None;
    }
    let threads_ns: u64 = before_end
        .threads_ns
        .iter()
        .map(|(tid, &ns)| ns.saturating_sub(at_marker.threads_ns.get(tid).copied().unwrap_or(0)))
        .sum();
    let bpf_ns = before_end.bpf_ns.saturating_sub(at_marker.bpf_ns);
    let steady_rate = (threads_ns + bpf_ns) as f64 / 1e9 / span;
    let start_s = at_marker.ticks_s + at_marker.bpf_ns as f64 / 1e9;
    let end_s = (total_s - start_s - steady_rate * window_s).max(0.0);
    Some(Phases { start_s, steady_rate, end_s })
}

/// The summed `run_time_ns` of the BPF programs process `pid` holds open.
fn bpf_run_time_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?.flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else { continue };
        if !text.contains("prog_type:") {
            continue;
        }
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("run_time_ns:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// What one system-wide profiler run cost and gave.
#[derive(Clone, Debug, Default)]
struct HostRun {
    /// CPU time (user, system and BPF programs) as % of one CPU, over the
    /// sampling window.
    cpu_percent: f64,
    /// While sampling: CPU time per second as % of one CPU.
    steady_percent: f64,
    /// CPU milliseconds before sampling began, and after it ended.
    start_ms: f64,
    end_ms: f64,
    peak_mib: f64,
    table_kib: f64,
    table_capacity_kib: f64,
    /// % of user stacks walked to their outermost frame (perfkit's count).
    rooted: f64,
    /// % of samples without an `[unknown]` frame.
    named: f64,
    /// % of the short-lived program's samples in its hot functions on
    /// their full path (it spends nearly all its time there).
    short_lived_full: f64,
}

/// Of folded text: % of samples without `[unknown]`, and % of the
/// short-lived `knownhot` copies' samples that are in hot_a/hot_b on the
/// full path from `_start` (samples inside the exec that starts a copy
/// left out: they are its parent's; the copies are deleted after they
/// run, as temporary programs are).
fn host_shares(folded: &str) -> (f64, f64) {
    let (mut all, mut named, mut hot, mut full) = (0.0, 0.0, 0.0, 0.0);
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let Ok(count) = count.parse::<f64>() else { continue };
        all += count;
        if !stack.split(';').any(|f| f == "[unknown]") {
            named += count;
        }
        if stack.starts_with("knownhot;") && !stack.contains("bprm_execve") {
            let user: Vec<&str> = stack.split(';').filter(|f| !f.ends_with("_[k]")).map(short).collect();
            hot += count;
            if matches!(user.last(), Some(&"hot_a" | &"hot_b"))
                && user.get(1) == Some(&"_start")
                && user.iter().any(|f| f.starts_with("parent_"))
            {
                full += count;
            }
        }
    }
    let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * a / b } else { f64::NAN };
    (pct(named, all), pct(full, hot))
}

/// `cargo xtask bench host`: `-a` on a busy machine (a hog per CPU, and
/// fresh copies of a known-answer program starting and exiting every
/// 0.1 s), perfkit against `perf record -a -g` + `perf script` +
/// inferno-collapse-perf and against bpftrace's `profile:hz`, interleaved.
pub fn host(root: &Path, seconds: u32, runs: usize, rates: &[u32]) -> Result<(), String> {
    let perfkit = build_perfkit(root)?;
    let perf = find_on_path("perf").ok_or("perf not found: install Debian's linux-perf")?;
    let bpftrace = find_on_path("bpftrace").ok_or("bpftrace not found: install Debian's bpftrace")?;
    let inferno = ensure_inferno()?;
    let dir = root.join("target/bench/host");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bin = dir.join("hotspots-nofp");
    let st = Command::new("cc")
        .args(["-O1", "-fomit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls", "-g", "-o"])
        .arg(&bin)
        .arg(root.join("crates/perfkit-cli/tests/workloads/hotspots.c"))
        .status()
        .map_err(|e| format!("running cc: {e}"))?;
    if !st.success() {
        return Err("building hotspots.c failed".into());
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut kids = Vec::new();
    for _ in 0..cpus {
        kids.push(
            Command::new(&bin)
                .arg("3600")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?,
        );
    }
    let copies = dir.join("copies");
    let _ = fs::remove_dir_all(&copies);
    fs::create_dir_all(&copies).map_err(|e| e.to_string())?;
    // A fresh copy (a new inode) each time, as a build or a script would
    // start new programs.
    let churn = format!(
        "i=0; while :; do i=$((i+1)); mkdir -p {d}/$i && cp {b} {d}/$i/knownhot && {d}/$i/knownhot 0.1; rm -rf {d}/$i; done",
        d = copies.display(),
        b = bin.display()
    );
    kids.push(
        Command::new("sh")
            .args(["-c", &churn])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let _busy = Children(kids);
    let stats_path = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = fs::read_to_string(stats_path).unwrap_or_default();
    fs::write(stats_path, "1").map_err(|e| format!("enabling kernel.bpf_stats_enabled: {e}"))?;
    let secs = f64::from(seconds);
    let result = (|| -> Result<(), String> {
        println!(
            "\nhost: -a for {seconds} s on {cpus} busy CPUs (a hog each, and a fresh copy of a known-answer program every \
             0.1 s); median (range) of {runs} interleaved runs; CPU is user + system + BPF programs' run time, as % of one \
             CPU; peers counted as their whole pipeline"
        );
        for &hz in rates {
            allow_rate(hz);
            eprintln!("xtask: host at {hz} Hz");
            let folded = dir.join("perfkit.folded");
            let mut ours = || -> Result<HostRun, String> {
                let (run, bpf_ns, split) = measure_with_bpf(
                    Command::new(&perfkit)
                        .args(["profile", "-a", "-F", &hz.to_string(), "-d", &seconds.to_string(), "-o"])
                        .arg(dir.join("perfkit.svg"))
                        .arg("--folded")
                        .arg(&folded),
                    Some(Marker { stderr: true, prefix: "backend: " }),
                    secs,
                )?;
                let text = fs::read_to_string(&folded).map_err(|e| e.to_string())?;
                let (named, short_lived_full) = host_shares(&text);
                let err = &run.stderr;
                let tables = err.lines().find(|l| l.starts_with("unwind tables:")).unwrap_or("");
                // "unwind tables: N files, R rows (X KiB) of C (Y KiB, --table-rows), ...".
                let kib = |nth: usize| -> f64 {
                    tables
                        .split('(')
                        .nth(nth)
                        .and_then(|s| s.split_whitespace().next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN)
                };
                // "N of M user stacks (P%) end before the outermost frame".
                let early = err
                    .lines()
                    .find(|l| l.contains("user stacks (") && l.contains("end before"))
                    .and_then(|l| l.split('(').nth(1)?.split('%').next()?.parse::<f64>().ok())
                    .unwrap_or(0.0);
                Ok(HostRun {
                    cpu_percent: 100.0 * (run.cpu.as_secs_f64() + bpf_ns / 1e9) / secs,
                    steady_percent: split.map_or(f64::NAN, |p| 100.0 * p.steady_rate),
                    start_ms: split.map_or(f64::NAN, |p| 1e3 * p.start_s),
                    end_ms: split.map_or(f64::NAN, |p| 1e3 * p.end_s),
                    peak_mib: mib(run.max_rss_kib as f64),
                    table_kib: kib(1),
                    table_capacity_kib: kib(2),
                    rooted: 100.0 - early,
                    named,
                    short_lived_full,
                })
            };
            let mut perf_peer = || -> Result<HostRun, String> {
                let data = dir.join("perf.data");
                let rec = measure(
                    Command::new(&perf)
                        .args(["record", "-e", "cpu-clock", "-a", "-g", "-F", &hz.to_string(), "-o"])
                        .arg(&data)
                        .args(["--", "sleep", &seconds.to_string()]),
                )?;
                let script = measure(Command::new(&perf).args(["script", "-i"]).arg(&data))?;
                let script_out = dir.join("perf.script");
                fs::write(&script_out, &script.stdout).map_err(|e| e.to_string())?;
                let collapse = measure(Command::new(inferno.with_file_name("inferno-collapse-perf")).arg(&script_out))?;
                let (named, short_lived_full) = host_shares(&collapse.stdout);
                let steps = [&rec, &script, &collapse];
                Ok(HostRun {
                    cpu_percent: 100.0 * steps.iter().map(|r| r.cpu.as_secs_f64()).sum::<f64>() / secs,
                    steady_percent: f64::NAN,
                    start_ms: f64::NAN,
                    end_ms: f64::NAN,
                    peak_mib: steps.iter().map(|r| mib(r.max_rss_kib as f64)).fold(0.0, f64::max),
                    table_kib: f64::NAN,
                    table_capacity_kib: f64::NAN,
                    rooted: f64::NAN,
                    named,
                    short_lived_full,
                })
            };
            let mut bpftrace_peer = || -> Result<HostRun, String> {
                let script = format!(
                    "profile:hz:{hz} {{ @[comm, ustack, kstack] = count(); }} interval:s:{seconds} {{ exit(); }}"
                );
                let (run, bpf_ns, split) = measure_with_bpf(
                    Command::new(&bpftrace).args(["-e", &script]),
                    Some(Marker { stderr: false, prefix: "Attaching " }),
                    secs,
                )?;
                Ok(HostRun {
                    cpu_percent: 100.0 * (run.cpu.as_secs_f64() + bpf_ns / 1e9) / secs,
                    steady_percent: split.map_or(f64::NAN, |p| 100.0 * p.steady_rate),
                    start_ms: split.map_or(f64::NAN, |p| 1e3 * p.start_s),
                    end_ms: split.map_or(f64::NAN, |p| 1e3 * p.end_s),
                    peak_mib: mib(run.max_rss_kib as f64),
                    table_kib: f64::NAN,
                    table_capacity_kib: f64::NAN,
                    rooted: f64::NAN,
                    named: f64::NAN,
                    short_lived_full: f64::NAN,
                })
            };
            let results = interleaved(runs, &mut [&mut ours, &mut perf_peer, &mut bpftrace_peer])?;
            println!("\n-a at {hz} Hz:");
            println!(
                "  {:<36} {:>22} {:>20} {:>26} {:>20} {:>20} {:>24}",
                "",
                "CPU (% of one)",
                "peak memory",
                "table memory (of budget)",
                "stacks rooted",
                "samples named",
                "short-lived full path"
            );
            let labels =
                ["perfkit profile -a", "perf record -a -g | script | collapse", "bpftrace profile:hz (ustack)"];
            for (label, r) in labels.iter().zip(&results) {
                let col = |f: &dyn Fn(&HostRun) -> f64| r.iter().map(f).collect::<Vec<f64>>();
                let table = match Stat::of(&col(&|h| h.table_kib)) {
                    Some(s) => format!("{} of {:.0} KiB", s.show(0, " KiB"), median(&col(&|h| h.table_capacity_kib))),
                    None => "-".into(),
                };
                println!(
                    "  {:<36} {:>22} {:>20} {:>26} {:>20} {:>20} {:>24}",
                    label,
                    show(&col(&|h| h.cpu_percent), 2, "%"),
                    show(&col(&|h| h.peak_mib), 0, " MiB"),
                    table,
                    show(&col(&|h| h.rooted), 1, "%"),
                    show(&col(&|h| h.named), 1, "%"),
                    show(&col(&|h| h.short_lived_full), 1, "%"),
                );
            }
            // The fixed cost of a run against its rate while sampling: what
            // a run of another length, or continuous profiling, costs.
            println!(
                "  {:<36} {:>22} {:>20} {:>20} {:>16} {:>16}",
                "CPU split", "while sampling", "start (CPU)", "end (CPU)", "60 s run", "1 h run"
            );
            for (label, r) in labels.iter().zip(&results) {
                let col = |f: &dyn Fn(&HostRun) -> f64| r.iter().map(f).collect::<Vec<f64>>();
                let steady = col(&|h| h.steady_percent);
                if Stat::of(&steady).is_none() {
                    println!("  {label:<36} {:>22}", "- (no reading while sampling)");
                    continue;
                }
                // Per run: the fixed cost spread over `len` seconds of sampling.
                let over = |len: f64| col(&|h| h.steady_percent + (h.start_ms + h.end_ms) / 10.0 / len);
                println!(
                    "  {:<36} {:>22} {:>20} {:>20} {:>16} {:>16}",
                    label,
                    show(&steady, 2, "%"),
                    show(&col(&|h| h.start_ms), 0, " ms"),
                    show(&col(&|h| h.end_ms), 0, " ms"),
                    show(&over(60.0), 2, "%"),
                    show(&over(3600.0), 2, "%"),
                );
            }
            let ours = &results[0];
            let steady = median(&ours.iter().map(|h| h.steady_percent).collect::<Vec<_>>());
            let window = median(&ours.iter().map(|h| h.cpu_percent).collect::<Vec<_>>());
            let fixed_ms = median(&ours.iter().map(|h| h.start_ms + h.end_ms).collect::<Vec<_>>());
            if steady.is_finite() && fixed_ms.is_finite() {
                let verdict = |v: f64| if v < 1.0 { "under" } else { "over" };
                let breakeven = if steady < 1.0 {
                    format!("runs of {:.0} s or longer stay under 1 %", fixed_ms / 10.0 / (1.0 - steady))
                } else {
                    "no run length brings it under 1 %".into()
                };
                println!(
                    "  perfkit at {hz} Hz: {steady:.2}% of one CPU while sampling ({} the 1 % target), plus {fixed_ms:.0} ms \
                     of CPU per run (start and end); over this {seconds} s window {window:.2}% ({} 1 %); {breakeven}",
                    verdict(steady),
                    verdict(window),
                );
            }
        }
        Ok(())
    })();
    let _ = fs::write(stats_path, stats_before.trim());
    let _ = fs::remove_dir_all(&copies);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, ticks_s: f64, threads: &[(u32, u64)], bpf_ns: u64) -> CpuReading {
        CpuReading { at, ticks_s, threads_ns: threads.iter().copied().collect(), bpf_ns }
    }

    #[test]
    fn phases_split_a_run_into_start_rate_and_end() {
        let t0 = Instant::now();
        // 300 ms to start; then over 4 s, two threads ran 20 ms and 10 ms,
        // a thread started in the window 6 ms, the BPF programs 4 ms: 40 ms
        // in 4 s is 1 %. A 5 s window at that rate is 50 ms; a total of
        // 1 s leaves 650 ms to the end.
        let start = reading(t0, 0.3, &[(1, 250_000_000), (2, 50_000_000)], 0);
        let end =
            reading(t0 + Duration::from_secs(4), 0.34, &[(1, 270_000_000), (2, 60_000_000), (3, 6_000_000)], 4_000_000);
        let p = phases(&start, &end, 1.0, 5.0).expect("a long enough span");
        assert!((p.steady_rate - 0.01).abs() < 1e-9, "{p:?}");
        assert!((p.start_s - 0.3).abs() < 1e-9, "{p:?}");
        assert!((p.end_s - 0.65).abs() < 1e-9, "{p:?}");
        // Readings that cover under half the window give no split.
        let early = reading(t0 + Duration::from_secs(2), 0.31, &[(1, 260_000_000)], 0);
        assert!(phases(&start, &early, 1.0, 5.0).is_none());
    }
}
