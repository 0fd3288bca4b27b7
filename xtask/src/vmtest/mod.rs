//! `cargo xtask vmtest`: perfkit's known-answer suite on Debian's own 5.10,
//! 6.1 and 6.12 kernels, each booted under QEMU (software emulation) with a
//! small initramfs.
//!
//! The host builds perfkit (release) and the C workloads, fetches each
//! kernel's package (cached under `target/vmtest/`, see [`kernel`]), and
//! writes one uncompressed initramfs ([`cpio`]) holding busybox, perfkit,
//! the workloads, the xtask executable itself (the suite's runner,
//! [`guest`]), the shared libraries `ldd` lists for them, and each kernel's
//! loop.ko. Its /init mounts the kernel's file systems and runs
//! `xtask vmtest-guest`; the host reads the serial console, echoes it
//! prefixed with the kernel's name, keeps it in `target/vmtest/KERNEL.log`,
//! and prints a table of kernels by tests and the overall line
//! `vmtest: N passed, N failed`.

mod cpio;
pub mod guest;
mod kernel;
mod report;

use std::{
    collections::BTreeSet,
    fs,
    io::{self, BufRead, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use report::KernelRun;

/// The options of `cargo xtask vmtest`.
pub const USAGE: &str = "vmtest [--host] [--kernels 5.10,6.1,6.12] [--only TEST,...] [--timeout SECS] [--perfkit PATH]";

/// What to run.
struct Options {
    /// The suite on the host itself instead of the kernels.
    host: bool,
    /// The kernels (names of `kernel::KERNELS`).
    kernels: Vec<&'static kernel::Spec>,
    /// The tests (all when empty).
    only: Vec<String>,
    /// How long one kernel may take, boot to power-off.
    timeout: Duration,
    /// A perfkit binary to test instead of building target/release/perfkit.
    perfkit: Option<PathBuf>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        host: false,
        kernels: kernel::KERNELS.iter().collect(),
        only: Vec::new(),
        timeout: Duration::from_secs(300),
        perfkit: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} takes a value\nusage: cargo xtask {USAGE}"));
        match a.as_str() {
            "--host" => o.host = true,
            "--kernels" => {
                o.kernels = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(kernel::spec)
                    .collect::<Result<_, _>>()?;
                if o.kernels.is_empty() {
                    return Err("--kernels takes kernel names, comma-separated".into());
                }
            }
            "--only" => o.only = guest::parse_only(value()?)?,
            "--timeout" => {
                let secs: u64 =
                    value()?.parse().ok().filter(|&s| s > 0).ok_or("--timeout takes a number of seconds")?;
                o.timeout = Duration::from_secs(secs);
            }
            "--perfkit" => {
                let p = PathBuf::from(value()?);
                if !p.is_file() {
                    return Err(format!("--perfkit {}: no such file", p.display()));
                }
                o.perfkit = Some(p);
            }
            other => return Err(format!("unknown option {other:?}\nusage: cargo xtask {USAGE}")),
        }
    }
    Ok(o)
}

/// `cargo xtask vmtest ...`.
pub fn main(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    let started = Instant::now();
    let cache = root.join("target/vmtest");
    let root_user = crate::is_root();
    if options.host && !root_user {
        return Err("the suite loads BPF programs: run `cargo xtask vmtest --host` as root".into());
    }
    let mut tools = vec![("cc", "gcc")];
    if !options.host {
        tools.extend([
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("busybox", "busybox-static"),
            ("dpkg-deb", "dpkg"),
            ("apt-get", "apt"),
            ("ldd", "libc-bin"),
            ("xz", "xz-utils"),
        ]);
    }
    crate::ensure_tools(&tools, "cargo xtask vmtest")?;
    let perfkit = match options.perfkit {
        Some(p) => p,
        None => build_perfkit(root)?,
    };
    let bin = cache.join("bin");
    build_workloads(root, &bin)?;
    if options.host {
        let config = guest::Config { perfkit, workloads: bin, only: options.only, full_stderr: false };
        let (_, failed) = guest::run_suite(&config);
        eprintln!("xtask: the suite took {:.0} s on the host", started.elapsed().as_secs_f64());
        return if failed > 0 { Err(format!("{failed} test(s) failed on the host")) } else { Ok(()) };
    }

    let mut kernels = Vec::new();
    for spec in &options.kernels {
        let k = kernel::prepare(spec, &cache, root_user)?;
        eprintln!("xtask: kernel {}: {} ({})", k.name, k.package, k.release);
        kernels.push(k);
    }
    let initramfs = cache.join("initramfs.cpio");
    let t = Instant::now();
    write_initramfs(&initramfs, &perfkit, &bin, &kernels, &options.only)?;
    let size = fs::metadata(&initramfs).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "xtask: wrote {} ({} MiB) in {:.1} s; ready after {:.0} s",
        initramfs.display(),
        size >> 20,
        t.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let tests = guest::selected(&options.only);
    let mut runs = Vec::new();
    for k in &kernels {
        let log = cache.join(format!("{}.log", k.name));
        let run = boot(k, &initramfs, &log, options.timeout);
        let (p, f) = run.counts(&tests);
        println!(
            "vmtest: kernel {} ({}): {p} passed, {f} failed; {}{}; log {}",
            k.name,
            k.release,
            run.state(),
            run.problem.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
            log.display()
        );
        runs.push((k.name, run));
    }

    let refs: Vec<(&str, &KernelRun)> = runs.iter().map(|(n, r)| (*n, r)).collect();
    println!("\n{}(- : no result, counted as failed)\n", report::table(&tests, &refs));
    for (name, run) in &runs {
        for (test, outcome) in &run.results {
            if let report::Outcome::Fail(reason) = outcome {
                println!("[{name}] FAIL {test}: {reason}");
            }
        }
    }
    let (passed, failed) = runs.iter().map(|(_, r)| r.counts(&tests)).fold((0, 0), |(p, f), (rp, rf)| (p + rp, f + rf));
    eprintln!("xtask: the kernel matrix took {:.0} s", started.elapsed().as_secs_f64());
    println!("vmtest: {passed} passed, {failed} failed");
    let bad: Vec<String> =
        runs.iter().filter(|(_, r)| !r.ok(&tests)).map(|(n, r)| format!("{n} ({})", r.state())).collect();
    if bad.is_empty() { Ok(()) } else { Err(format!("the kernel matrix failed on {}", bad.join(", "))) }
}

/// `cargo build --release -p perfkit-cli`; returns the binary.
fn build_perfkit(root: &Path) -> Result<PathBuf, String> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--locked", "-p", "perfkit-cli"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("building perfkit failed ({status})"));
    }
    Ok(root.join("target/release/perfkit"))
}

/// Builds the suite's C workloads into `dir`.
fn build_workloads(root: &Path, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let sources = root.join("crates/perfkit-cli/tests/workloads");
    for (name, source, flags) in guest::WORKLOADS {
        let out = Command::new("cc")
            .args(*flags)
            .arg("-g")
            .arg("-o")
            .arg(dir.join(name))
            .arg(sources.join(source))
            .output()
            .map_err(|e| format!("running cc: {e}"))?;
        if !out.status.success() {
            return Err(format!("building the {name} workload failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

/// The shared libraries `ldd` lists (paths after `=>`, and the loader's
/// bare path); none for a static executable.
pub fn ldd_paths(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.trim(),
                None => l,
            };
            let path = path.split(" (0x").next().unwrap_or(path).trim();
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// The libraries of an executable, per `ldd`.
fn libraries(exe: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("ldd").arg(exe).output().map_err(|e| format!("running ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static executable: "not a dynamic executable".
        let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        return if all.contains("not a dynamic executable") {
            Ok(Vec::new())
        } else {
            Err(format!("ldd {} failed: {}", exe.display(), all.trim()))
        };
    }
    Ok(ldd_paths(&text))
}

/// The guest's /init: mounts, limits, loopback, loop.ko, the suite, the
/// kernel log (for the log file only), power-off.
fn init_script(lib_dirs: &[String], only: &[String]) -> String {
    let only = if only.is_empty() { String::new() } else { format!(" --only {}", only.join(",")) };
    format!(
        r#"#!/bin/sh
# perfkit's vmtest: written by xtask/src/vmtest/mod.rs.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH={libs}
export HOME=/root
m() {{ mkdir -p "$3"; mount -t "$1" "$2" "$3" || echo "vmtest: warning: mounting $1 on $3 failed"; }}
m proc proc /proc
m sysfs sysfs /sys
m devtmpfs devtmpfs /dev
m tmpfs tmpfs /tmp
m debugfs debugfs /sys/kernel/debug
m tracefs tracefs /sys/kernel/tracing
m bpf bpf /sys/fs/bpf
m cgroup2 cgroup2 /sys/fs/cgroup
dmesg -n 1
ulimit -l unlimited
ip link set lo up || echo "vmtest: warning: no loopback"
R=$(uname -r)
if [ -f /vmtest/modules/$R/loop.ko ]; then
    insmod /vmtest/modules/$R/loop.ko || echo "vmtest: warning: insmod loop.ko failed"
fi
echo "vmtest: booted Linux $R"
/vmtest/bin/xtask vmtest-guest --perfkit /vmtest/bin/perfkit --workloads /vmtest/bin{only} </dev/null
echo "vmtest: suite exited with status $?"
echo "{begin}: the kernel log"
dmesg
echo "{end}"
sync
poweroff -f
"#,
        libs = lib_dirs.join(":"),
        begin = guest::LOG_ONLY_BEGIN,
        end = guest::LOG_ONLY_END,
    )
}

/// Writes the initramfs: busybox and its applet links, perfkit, the
/// runner (this executable), the workloads, their libraries at their
/// paths, each kernel's loop.ko under vmtest/modules/RELEASE, and /init.
fn write_initramfs(
    path: &Path,
    perfkit: &Path,
    workloads: &Path,
    kernels: &[kernel::Kernel],
    only: &[String],
) -> Result<(), String> {
    let io_err = |e: io::Error| format!("writing {}: {e}", path.display());
    let file = fs::File::create(path).map_err(io_err)?;
    let mut w = cpio::Writer::new(BufWriter::with_capacity(1 << 20, file));
    for (dir, perm) in
        [("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("tmp", 0o1777), ("root", 0o700), ("run", 0o755)]
    {
        w.dir(dir, perm).map_err(io_err)?;
    }
    w.char_device("dev/console", 0o600, 5, 1).map_err(io_err)?;
    w.char_device("dev/null", 0o666, 1, 3).map_err(io_err)?;

    let busybox = crate::bench::find_on_path("busybox").ok_or("busybox is not on PATH")?;
    w.file_from_path("bin/busybox", 0o755, &busybox).map_err(io_err)?;
    let list = Command::new(&busybox).arg("--list-full").output().map_err(|e| format!("running busybox: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        // `linuxrc` (no directory) is not wanted; /init is ours.
        if applet.contains('/') && !w.contains(applet) {
            w.symlink(applet, "/bin/busybox").map_err(io_err)?;
        }
    }

    // The suite's runner is this very executable (`xtask vmtest-guest`).
    let runner = std::env::current_exe().map_err(|e| format!("finding the xtask executable: {e}"))?;
    w.file_from_path("vmtest/bin/perfkit", 0o755, perfkit).map_err(io_err)?;
    w.file_from_path("vmtest/bin/xtask", 0o755, &runner).map_err(io_err)?;
    let mut executables = vec![busybox, perfkit.to_owned(), runner];
    for (name, _, _) in guest::WORKLOADS {
        let p = workloads.join(name);
        w.file_from_path(&format!("vmtest/bin/{name}"), 0o755, &p).map_err(io_err)?;
        executables.push(p);
    }
    let mut libs = BTreeSet::new();
    for exe in &executables {
        libs.extend(libraries(exe)?);
    }
    let mut lib_dirs: Vec<String> = Vec::new();
    for lib in &libs {
        // Copied at the same path, content of the file a link points at.
        w.file_from_path(lib, 0o755, Path::new(lib)).map_err(|e| format!("copying {lib}: {e}"))?;
        if let Some(dir) = Path::new(lib).parent().map(|d| d.to_string_lossy().into_owned())
            && !lib_dirs.contains(&dir)
        {
            lib_dirs.push(dir);
        }
    }
    for k in kernels {
        if let Some(m) = &k.loop_module {
            w.file_from_path(&format!("vmtest/modules/{}/loop.ko", k.release), 0o644, m).map_err(io_err)?;
        }
    }
    w.file("init", 0o755, init_script(&lib_dirs, only).as_bytes()).map_err(io_err)?;
    w.finish().map_err(io_err)?.flush().map_err(io_err)
}

/// Boots `k` with the initramfs and reads its console until it powers off
/// or `timeout` passes (then QEMU is killed). Echoes the console prefixed
/// with the kernel's name, except the log-only blocks (the kernel log at
/// the end, whole stderr of failed commands), which go to the log file
/// only, like everything else.
fn boot(k: &kernel::Kernel, initramfs: &Path, log_path: &Path, timeout: Duration) -> KernelRun {
    let mut run = KernelRun::default();
    let mut log = match fs::File::create(log_path) {
        Ok(f) => BufWriter::new(f),
        Err(e) => {
            run.problem = Some(format!("creating {}: {e}", log_path.display()));
            return run;
        }
    };
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2G"])
        .args(["-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 quiet panic=-1 rdinit=/init"])
        // CI has no stdin, and QEMU must never wait on one.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("xtask: booting {} ({}) under QEMU, at most {} s", k.name, k.release, timeout.as_secs());
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            run.problem = Some(format!("starting qemu-system-x86_64: {e}"));
            return run;
        }
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    if let Some(out) = child.stdout.take() {
        thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
    }
    let stderr = child.stderr.take().map(|mut e| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let deadline = started + timeout;
    // The kernel log and whole stderr of failed commands go to the log
    // file only.
    let mut log_only = false;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(raw) => {
                let raw = String::from_utf8_lossy(&raw);
                let _ = log.write_all(raw.replace('\r', "").as_bytes());
                for line in report::console_lines(&raw) {
                    match line.as_str() {
                        l if l.starts_with(guest::LOG_ONLY_BEGIN) => log_only = true,
                        guest::LOG_ONLY_END => log_only = false,
                        _ if log_only => {}
                        _ => {
                            if line.starts_with("vmtest: booted") {
                                eprintln!("xtask: {} booted in {:.1} s", k.name, started.elapsed().as_secs_f64());
                            }
                            println!("[{}] {line}", k.name);
                            run.feed(&line);
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                run.problem = Some(format!("timed out after {} s; QEMU killed", timeout.as_secs()));
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait();
    let qemu_err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64();
    if run.problem.is_none() {
        match &status {
            Ok(s) if s.success() => {}
            Ok(s) => run.problem = Some(format!("QEMU exited with {s}: {}", qemu_err.trim())),
            Err(e) => run.problem = Some(format!("waiting for QEMU: {e}")),
        }
    }
    let _ = writeln!(
        log,
        "\n--- xtask: {} ({}) ran {elapsed:.1} s; {}; QEMU stderr: {}",
        k.name,
        k.package,
        run.problem.as_deref().unwrap_or("no VM problem"),
        qemu_err.trim()
    );
    let _ = log.flush();
    eprintln!("xtask: {} ran {elapsed:.0} s", k.name);
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_libraries_from_ldd() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f7c7a33c000)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7c7a15a000)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f7c7a4a8000)\n\
                   \tlibmissing.so => not found\n";
        assert_eq!(
            ldd_paths(out),
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
        );
        assert!(ldd_paths("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn options_parse_and_refuse_bad_input() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = parse_options(&args("--kernels 5.10,6.12 --only offcpu --timeout 60")).unwrap();
        assert_eq!(o.kernels.iter().map(|k| k.name).collect::<Vec<_>>(), ["5.10", "6.12"]);
        assert_eq!(o.only, ["offcpu"]);
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert!(!o.host);
        let all = parse_options(&[]).unwrap();
        assert_eq!(all.kernels.len(), kernel::KERNELS.len());
        assert!(parse_options(&args("--host")).unwrap().host);
        for bad in ["--kernels 4.19", "--kernels ,", "--only nope", "--timeout 0", "--timeout", "--frobnicate"] {
            assert!(parse_options(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn init_runs_the_suite_with_the_selection() {
        let s = init_script(&["/lib/x86_64-linux-gnu".into()], &["offcpu".into(), "tcplife".into()]);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("--only offcpu,tcplife"));
        assert!(s.contains("LD_LIBRARY_PATH=/lib/x86_64-linux-gnu\n"));
        assert!(s.contains("poweroff -f"));
        assert!(!init_script(&[], &[]).contains("--only"));
    }
}
