//! `cargo xtask bench`: perfkit against the classic tools, measured in the
//! same run on the same input, reported as ratios.
//!
//! - `flamegraph`: a profile of a million unique stacks rendered by
//!   `perfkit flamegraph` and by inferno's own `inferno-flamegraph`: wall
//!   time and peak memory (max RSS).
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
