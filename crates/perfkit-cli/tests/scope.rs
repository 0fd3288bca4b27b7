//! What `perfkit profile` watches: children of a command, the whole
//! machine, process and thread lists, cgroups, grouping of roots, and the
//! command's lifecycle (exit status, SIGTERM, SIGKILL), each with a known
//! answer.

use std::{
    ffi::OsStr,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

/// Samples whose root frame starts with `prefix`.
fn rooted(folded: &[(String, u64)], prefix: &str) -> u64 {
    folded.iter().filter(|(s, _)| s.split(';').next().is_some_and(|r| r.starts_with(prefix))).map(|(_, c)| c).sum()
}

/// The second workload, with functions of its own: tokenize, rasterize and
/// mix at 3:2:1 under main.
fn cpphot() -> PathBuf {
    build_c("g++", "cpphot.cpp", "cpphot-lld", &["-O2", "-fuse-ld=lld"])
}

/// The five known paths of hotspots and cpphot running side by side on
/// their own CPUs: each program has half the samples.
const BOTH: [(&[&str], f64); 5] = [
    (&["main", "parent_a", "hot_a"], 0.375),
    (&["main", "parent_b", "hot_b"], 0.125),
    (&["main", "parse_request", "tokenize"], 0.25),
    (&["main", "draw_frame", "rasterize"], 0.5 / 3.0),
    (&["main", "digest", "mix"], 0.5 / 6.0),
];

/// Runs `perfkit profile` with `args` (sampling options and target),
/// writing folded stacks; returns them, stderr and the exit code.
fn profile(args: &[&OsStr]) -> (Vec<(String, u64)>, String, Option<i32>) {
    let dir = scratch_dir();
    let folded = dir.path().join("out.folded");
    let out =
        run(perfkit().arg("profile").arg("-o").arg(dir.path().join("f.svg")).arg("--folded").arg(&folded).args(args));
    let stacks = if folded.exists() { read_folded(&folded) } else { Vec::new() };
    (stacks, stderr(&out), out.status.code())
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

fn spawn(bin: &Path, args: &[&str]) -> Killed {
    Killed(Command::new(bin).args(args).stdout(Stdio::null()).spawn().unwrap())
}

#[test]
fn children_of_a_shell_are_followed_at_their_known_shares() {
    let Some(_serial) = privileged() else { return };
    let (hot, cpp) = (hotspots(), cpphot());
    let script = format!("{} 3 & {} 3 & wait", hot.display(), cpp.display());
    for backend in ["ebpf", "perf"] {
        let (folded, err, code) =
            profile(&[os("--backend"), os(backend), os("-F"), os("499"), os("sh"), os("-c"), os(&script)]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        assert_shares(&folded, &BOTH, 0.97);
        let (h, c) = (rooted(&folded, "hotspots"), rooted(&folded, "cpphot-lld"));
        assert!(h > 500 && c > 500, "{backend}: hotspots {h}, cpphot {c} samples: {err}");
    }
}

#[test]
fn no_inherit_keeps_only_the_named_process() {
    let Some(_serial) = privileged() else { return };
    // The shell itself burns CPU in a loop while its child runs.
    let script = format!("{} 2 & i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; wait", hotspots().display());
    for backend in ["ebpf", "perf"] {
        let (folded, err, code) = profile(&[
            os("--backend"),
            os(backend),
            os("--no-inherit"),
            os("-F"),
            os("499"),
            os("sh"),
            os("-c"),
            os(&script),
        ]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        let total: u64 = folded.iter().map(|(_, c)| c).sum();
        assert!(total > 50, "{backend}: the shell's own loop is sampled: {folded:?}");
        assert_eq!(rooted(&folded, "sh"), total, "{backend}: only the shell: {folded:?}");
        // With children followed, the child is there too.
        let (folded, err, _) =
            profile(&[os("--backend"), os(backend), os("-F"), os("499"), os("sh"), os("-c"), os(&script)]);
        assert!(rooted(&folded, "hotspots") > 200, "{backend}: {err}\n{folded:?}");
    }
}

#[test]
fn make_j2_is_dominated_by_the_compiler() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    // Four C files, each slow to optimise.
    let mut objects = Vec::new();
    for n in 0..4 {
        let mut src = String::new();
        for f in 0..600 {
            src.push_str(&format!(
                "int f{n}_{f}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += (i * {f}) ^ (s >> 3); return s + f{n}_{}(x - 1); }}\n",
                f.max(1) - 1
            ));
        }
        src = src.replacen(&format!("return s + f{n}_0(x - 1);"), "return s;", 1);
        fs::write(dir.path().join(format!("u{n}.c")), src).unwrap();
        objects.push(format!("u{n}.o"));
    }
    fs::write(dir.path().join("Makefile"), format!("all: {}\n%.o: %.c\n\tcc -O2 -c $< -o $@\n", objects.join(" ")))
        .unwrap();
    let out = run(perfkit().current_dir(dir.path()).args([
        "profile",
        "-F",
        "499",
        "-f",
        "folded",
        "-o",
        "make.folded",
        "--",
        "make",
        "-j2",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let folded = read_folded(&dir.path().join("make.folded"));
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    let cc1 = rooted(&folded, "cc1");
    assert!(total > 100, "{folded:?}");
    assert!(cc1 * 100 >= total * 80, "cc1 has {cc1} of {total} samples");
}

#[test]
fn system_wide_sees_two_workloads_at_their_shares() {
    let Some(_serial) = privileged() else { return };
    for backend in ["ebpf", "perf"] {
        let _a = spawn(hotspots(), &["3.5"]);
        let _b = spawn(&cpphot(), &["3.5"]);
        thread::sleep(Duration::from_millis(200));
        // The perf backend walks frame pointers system-wide unless asked
        // (stack copies of every process cost too much by default), and
        // says so.
        let unwind = if backend == "perf" { "dwarf" } else { "auto" };
        let (folded, err, code) = profile(&[
            os("--backend"),
            os(backend),
            os("--unwind"),
            os(unwind),
            os("-a"),
            os("-F"),
            os("199"),
            os("-d"),
            os("2.5"),
        ]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        assert_shares(&folded, &BOTH, 0.95);
        // Idle time is not drawn, and no other process dominates.
        assert!(!folded.iter().any(|(s, _)| s.contains("do_idle") || s.contains("cpuidle")), "{backend}: idle drawn");
        let (h, c) = (rooted(&folded, "hotspots"), rooted(&folded, "cpphot-lld"));
        let total: u64 = folded.iter().map(|(_, c)| c).sum();
        assert!((h + c) * 100 >= total * 85, "{backend}: the workloads have {h}+{c} of {total}");
    }
}

/// Whether a frame is named: not `[unknown]`, not a module and offset.
fn named(frame: &str) -> bool {
    frame != "[unknown]" && !frame.contains("+0x")
}

/// Runs a fresh copy of the hotspots workload built without frame pointers
/// (a new file, so a new inode and a table never built before) for 0.1 s,
/// one after another, until `until`; returns how many ran.
fn fresh_copies_until(dir: &Path, until: Instant) -> u32 {
    let mut runs = 0;
    while Instant::now() < until {
        let copy_dir = dir.join(format!("run{runs}"));
        fs::create_dir(&copy_dir).unwrap();
        let copy = copy_dir.join("knownhot");
        fs::copy(hotspots_nofp(), &copy).unwrap();
        let status = Command::new(&copy).arg("0.1").stdout(Stdio::null()).status().unwrap();
        assert!(status.success());
        runs += 1;
    }
    runs
}

#[test]
fn system_wide_names_and_roots_programs_that_start_and_exit() {
    let Some(_serial) = privileged() else { return };
    let (folded, err, runs) = system_wide_during_fresh_copies("99", 8, "9.5");
    check_fresh_copies(&folded, runs, &err);
}

/// `-a` at `hz` for `duration` seconds while fresh copies of the
/// no-frame-pointer known-answer program run for `copies_secs` seconds,
/// starting 0.7 s after sampling has (every copy starts and exits while
/// perfkit runs): the folded stacks, the summary, and how many copies ran.
fn system_wide_during_fresh_copies(hz: &str, copies_secs: u64, duration: &str) -> (Vec<(String, u64)>, String, u32) {
    let dir = scratch_dir();
    hotspots_nofp();
    let runner = {
        let dir = dir.path().to_owned();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(700));
            fresh_copies_until(&dir, Instant::now() + Duration::from_secs(copies_secs))
        })
    };
    let (folded, err, code) = profile(&[os("-a"), os("-F"), os(hz), os("-d"), os(duration)]);
    let runs = runner.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    (folded, err, runs)
}

/// Samples the summary says were finished late (walks that met a mapping
/// or table not known yet, finished in user space); 0 when it says none.
fn finished_late(err: &str) -> u64 {
    err.lines()
        .find_map(|l| {
            let (before, _) = l.split_once(" samples finished late")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// At 997 Hz a fresh copy of a program without frame pointers gets its
/// first samples (the dynamic loader at work, its first calls) before the
/// loader has published its mappings or built its table: those walks are
/// sent to user space with a copy of the stack and finished there, so the
/// copies' stacks are still rooted and named. The summary counts them.
#[test]
fn system_wide_finishes_late_the_walks_of_programs_newer_than_their_mappings() {
    let Some(_serial) = privileged() else { return };
    let (folded, err, runs) = system_wide_during_fresh_copies("997", 4, "5.5");
    let late = finished_late(&err);
    assert!(late > 0, "no walk was finished late:\n{err}");
    check_fresh_copies(&folded, runs, &err);
}

/// Asserts that the samples of the fresh copies `fresh_copies_until` ran
/// (`runs` of them) are named and rooted: at least 99 % rooted, at most 1 %
/// with an unnamed frame, and hot_a/hot_b on their full paths.
fn check_fresh_copies(folded: &[(String, u64)], runs: u32, err: &str) {
    // Samples inside the exec that starts each copy have the new name but
    // the old program's user stack (the new one has none yet): they are
    // the parent's, not the program's, and left out.
    let ours: Vec<&(String, u64)> = folded
        .iter()
        .filter(|(s, _)| s.split(';').next() == Some("knownhot") && !s.contains(";bprm_execve_[k]"))
        .collect();
    let total: u64 = ours.iter().map(|(_, c)| c).sum();
    // 0.1 s per run at 99 Hz: up to ten samples each (fewer when the
    // machine is busy).
    assert!(runs >= 20 && total >= 100, "{total} samples in {runs} runs: {err}");
    let mut rooted = 0;
    let mut unnamed = 0;
    let mut odd = Vec::new();
    let mut hot = 0;
    let mut hot_full = 0;
    for (stack, count) in &ours {
        let frames = physical(stack);
        // A stack without user frames (in the kernel since exec or until
        // exit) is complete as it is.
        if frames.is_empty() || frames.first().is_some_and(|f| ROOTS.contains(f)) {
            rooted += count;
        } else {
            odd.push(stack.as_str());
        }
        if stack.split(';').skip(1).any(|f| !named(f)) {
            unnamed += count;
            odd.push(stack.as_str());
        }
        if matches!(frames.last(), Some(&"hot_a" | &"hot_b")) {
            hot += count;
            if frames.first() == Some(&"_start")
                && (frames.ends_with(&["main", "parent_a", "hot_a"])
                    || frames.ends_with(&["main", "parent_b", "hot_b"]))
            {
                hot_full += count;
            }
        }
    }
    let report = format!(
        "{runs} runs, {total} samples: {rooted} rooted, {unnamed} with an unnamed frame, {hot_full} of {hot} in hot_a/hot_b \
         on their full paths\n{err}\nunrooted or unnamed: {odd:#?}"
    );
    eprintln!("{report}");
    assert!(rooted * 100 >= total * 99, "{report}");
    assert!(unnamed * 100 <= total, "{report}");
    assert!(hot * 100 >= total * 90 && hot_full * 100 >= hot * 99, "{report}");
}

#[test]
fn system_wide_names_the_compilers_and_linker_of_a_parallel_build() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    // A multi-file C program: four units slow to optimise, linked three
    // times (a linker run long enough to be sampled).
    let mut objects = Vec::new();
    for n in 0..4 {
        let mut src = String::new();
        for f in 0..500 {
            src.push_str(&format!(
                "int f{n}_{f}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += (i * {f}) ^ (s >> 3); return s + f{n}_{}(x - 1); }}\n",
                f.max(1) - 1
            ));
        }
        src = src.replacen(&format!("return s + f{n}_0(x - 1);"), "return s;", 1);
        if n == 0 {
            src.push_str("int main(int argc, char **argv) { (void)argv; return f0_499(argc) & 1; }\n");
        }
        fs::write(dir.path().join(format!("u{n}.c")), src).unwrap();
        objects.push(format!("u{n}.o"));
    }
    let objs = objects.join(" ");
    fs::write(
        dir.path().join("Makefile"),
        format!(
            "all: p1 p2 p3\np%: {objs}\n\tcc -g -o $@ {objs}\n%.o: %.c\n\tcc -O2 -g -c $< -o $@\n.SECONDARY: {objs}\n"
        ),
    )
    .unwrap();
    let folded_path = dir.path().join("all.folded");
    let perfkit_run = perfkit()
        .args(["profile", "-a", "-F", "499", "-d", "60", "-f", "folded", "-o"])
        .arg(&folded_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let made = Command::new("make").arg("-j2").current_dir(dir.path()).output().unwrap();
    let took = started.elapsed();
    // SIGINT ends sampling; the profile is written.
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(perfkit_run.id() as i32, libc::SIGINT) };
    let out = perfkit_run.wait_with_output().unwrap();
    assert!(made.status.success(), "make: {}", String::from_utf8_lossy(&made.stderr));
    assert!(ended_by(out.status, libc::SIGINT), "{}", stderr(&out));
    let err = stderr(&out);
    let folded = read_folded(&folded_path);
    // Samples of a process, and those without an [unknown] frame (a
    // stripped program's frames are its module and offset, as with perf:
    // named, unlike [unknown]).
    let of = |comm: &str| -> (u64, u64) {
        let (mut all, mut named_all) = (0, 0);
        for (stack, count) in folded.iter().filter(|(s, _)| s.split(';').next() == Some(comm)) {
            if stack.contains(";bprm_execve_[k]") {
                continue;
            }
            all += count;
            if stack.split(';').skip(1).all(|f| f != "[unknown]") {
                named_all += count;
            }
        }
        (all, named_all)
    };
    let (cc, cc_named) = of("cc");
    let (cc1, cc1_named) = of("cc1");
    let (ld, ld_named) = of("ld");
    let report = format!(
        "build {took:?}: cc {cc} samples ({cc_named} named), cc1 {cc1} ({cc1_named} named), ld {ld} ({ld_named} \
         named)\n{err}"
    );
    eprintln!("{report}");
    // The compiler proper dominates, the linker is seen, and the driver
    // runs between them; each under its own name, its frames known.
    assert!(cc1 >= 200 && ld >= 3, "{report}");
    assert!(cc1_named * 100 >= cc1 * 95 && ld_named * 100 >= ld * 95, "{report}");
    assert!(cc + cc1 + ld > 0 && (cc1 + ld) * 2 > cc, "{report}");
}

/// A PostgreSQL server of the machine's own packages in a scratch
/// directory, run as the `postgres` user on a Unix socket only; stopped
/// (immediately) when dropped, even after a failed assertion.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
        let bin = fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server (package postgresql) is installed")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("postgres").is_file())
            .max()
            .expect("a PostgreSQL server under /usr/lib/postgresql/VERSION/bin");
        let (data, socket) = (dir.join("pgdata"), dir.join("pgsock"));
        for d in [&data, &socket] {
            fs::create_dir(d).unwrap();
            assert!(Command::new("chown").arg("postgres:").arg(d).status().unwrap().success());
        }
        let port = 20000 + (std::process::id() % 20000) as u16;
        let pg = Postgres { bin, data, socket, port };
        let ok = |out: Output, what: &str| assert!(out.status.success(), "{what}: {}", stderr(&out));
        ok(pg.as_postgres("initdb").args(["-A", "trust", "-D"]).arg(&pg.data).output().unwrap(), "initdb");
        ok(
            pg.as_postgres("pg_ctl")
                .arg("-D")
                .arg(&pg.data)
                .arg("-o")
                .arg(format!("-k {} -p {} -c listen_addresses=", pg.socket.display(), pg.port))
                .arg("-l")
                .arg(pg.data.join("log"))
                .args(["-w", "start"])
                .output()
                .unwrap(),
            "pg_ctl start",
        );
        ok(pg.pgbench().args(["-i", "-s", "4", "postgres"]).output().unwrap(), "pgbench -i");
        pg
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(self.bin.join(tool));
        c.stdin(Stdio::null());
        c
    }

    fn pgbench(&self) -> Command {
        let mut c = self.as_postgres("pgbench");
        c.arg("-h").arg(&self.socket).arg("-p").arg(self.port.to_string());
        c
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.as_postgres("pg_ctl").arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]).output();
    }
}

#[test]
fn system_wide_with_postgres_under_load_and_a_build_fits_the_tables() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["pgbench", "pg_ctlcluster", "make", "cc", "setpriv"]) {
        return;
    }
    let dir = scratch_dir();
    let pg = Postgres::start(dir.path());
    // A build beside the database: one more set of programs and libraries
    // whose tables the kernel must hold at once.
    let mut objects = Vec::new();
    for n in 0..4 {
        let mut src = String::new();
        for f in 0..400 {
            src.push_str(&format!("int f{n}_{f}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += (i * {f}) ^ (s >> 3); return s + x; }}\n"));
        }
        fs::write(dir.path().join(format!("u{n}.c")), src).unwrap();
        objects.push(format!("u{n}.o"));
    }
    fs::write(dir.path().join("Makefile"), format!("all: {}\n%.o: %.c\n\tcc -O2 -g -c $< -o $@\n", objects.join(" ")))
        .unwrap();
    let _bench = Killed(
        pg.pgbench()
            .args(["-c", "4", "-j", "2", "-T", "30", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let build_dir = dir.path().to_owned();
    let build = thread::spawn(move || {
        // Builds again and again for the whole profile.
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            let _ = Command::new("make").args(["-s", "-B", "-j2"]).current_dir(&build_dir).output();
        }
    });
    thread::sleep(Duration::from_millis(1500));
    let (folded, err, code) = profile(&[os("-a"), os("-F"), os("99"), os("-d"), os("6")]);
    build.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    // Every file's table fitted with the default budget, and the summary
    // says how much of it the tables used.
    assert!(!err.contains("did not fit"), "{err}");
    let tables = err.lines().find(|l| l.starts_with("unwind tables: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(tables.contains("KiB") && tables.contains("--table-rows"), "{tables}");
    // The database's samples, named and whole.
    let postgres: Vec<_> = folded.iter().filter(|(s, _)| s.starts_with("postgres;")).collect();
    let total: u64 = postgres.iter().map(|(_, c)| c).sum();
    let whole: u64 = postgres.iter().filter(|(s, _)| !s.contains("[truncated")).map(|(_, c)| c).sum();
    let report = format!("postgres: {total} samples, {whole} whole\n{err}");
    eprintln!("{report}");
    assert!(total >= 40, "{report}");
    assert!(whole * 100 >= total * 90, "{report}");
    assert!(rooted(&folded, "cc1") > 0, "the build is seen: {report}");
}

#[test]
fn an_idle_machine_gives_an_honest_summary() {
    let Some(_serial) = privileged() else { return };
    let (folded, err, code) = profile(&[os("-a"), os("-F"), os("99"), os("-d"), os("1")]);
    // Either a little background work is drawn and the idle time reported,
    // or nothing ran and that is said.
    if code == Some(0) {
        assert!(err.contains("idle:") && err.contains("not drawn"), "{err}");
        let total: u64 = folded.iter().map(|(_, c)| c).sum();
        assert!(total < 99, "an idle machine: {total} samples drawn: {folded:?}");
    } else {
        assert!(err.contains("CPUs were idle"), "{err}");
    }
}

/// `-p` of a process that loads a fresh copy of a library (a new file,
/// so a new inode and a table never built) every 5 ms and runs a known
/// path in it: the library's mappings come from the kernel's mmap events
/// as they happen, so its samples are named and rooted, not ended at an
/// address no reading of `/proc/PID/maps` knew yet.
#[test]
fn a_pid_that_dlopens_fresh_libraries_gets_them_named_and_rooted() {
    let Some(_serial) = privileged() else { return };
    let lib = build_c("cc", "libhot.c", "libhot.so", &["-O2", "-fPIC", "-shared", "-fomit-frame-pointer"]);
    let host = build_c("cc", "dlloop.c", "dlloop", &["-O2", "-ldl"]);
    let dir = scratch_dir();
    let target =
        Killed(Command::new(&host).arg(&lib).arg("7").arg(dir.path()).arg("5").stdout(Stdio::null()).spawn().unwrap());
    thread::sleep(Duration::from_millis(300));
    let pid = target.0.id().to_string();
    let (folded, err, code) = profile(&[os("-p"), os(&pid), os("-F"), os("997"), os("-d"), os("4")]);
    assert_eq!(code, Some(0), "{err}");
    // Every sample that ran in a copy of the library, however its stack
    // ended: named in it, unresolved in it (`libcopy-N.so+0x...`), or
    // with no mapping at all.
    let mut total = 0;
    let mut full = 0;
    let mut odd = Vec::new();
    for (stack, count) in &folded {
        let frames = physical(stack);
        let in_library = frames
            .iter()
            .any(|f| matches!(*f, "lib_hot" | "lib_inner") || f.starts_with("libcopy-") || f.starts_with("[unknown]"))
            || stack.contains("[truncated: ");
        if !in_library {
            continue;
        }
        total += count;
        if frames.first().is_some_and(|f| ROOTS.contains(f))
            && (frames.ends_with(&["main", "run_copy", "lib_hot", "lib_inner"])
                || frames.ends_with(&["main", "run_copy", "lib_hot"]))
        {
            full += count;
        } else {
            odd.push((stack.as_str(), *count));
        }
    }
    let report = format!("{full} of {total} samples in the library named and rooted\n{err}\nothers: {odd:#?}");
    eprintln!("{report}");
    assert!(total > 500, "{report}");
    assert!(full * 100 >= total * 95, "{report}");
}

/// `--cgroup` of a group whose shell runs a fresh copy of the hotspots
/// workload (a new inode each time) for 0.1 s, one after another: each
/// program is learned from the kernel's exec and mmap events of the
/// group's tasks, so its samples are named and rooted as with `-a`.
#[test]
fn a_cgroup_whose_programs_exec_fresh_copies_gets_them_named() {
    let Some(_serial) = privileged() else { return };
    let mount = cgroup2_mount();
    let group = TempCgroup(mount.join(format!("perfkit-fresh-{}", std::process::id())));
    fs::create_dir(&group.0).unwrap();
    let dir = scratch_dir();
    let script = r#"sleep 0.7; n=0; while [ $n -lt 45 ]; do mkdir "$1/run$n" && cp "$2" "$1/run$n/knownhot" && "$1/run$n/knownhot" 0.1 >/dev/null || exit 1; n=$((n+1)); done"#;
    let shell = Killed(
        Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(dir.path())
            .arg(hotspots_nofp())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    fs::write(group.0.join("cgroup.procs"), shell.0.id().to_string()).unwrap();
    let (folded, err, code) = profile(&[os("--cgroup"), group.0.as_os_str(), os("-F"), os("199"), os("-d"), os("6.5")]);
    assert_eq!(code, Some(0), "{err}");
    let runs = fs::read_dir(dir.path()).unwrap().count() as u32;
    check_fresh_copies(&folded, runs, &err);
}

#[test]
fn a_pid_list_profiles_exactly_those_processes() {
    let Some(_serial) = privileged() else { return };
    for backend in ["ebpf", "perf"] {
        // Far longer than the run (they are killed after it), so that a
        // slow start on four busy threads never outlasts them.
        let a = spawn(hotspots(), &["10"]);
        let b = spawn(&cpphot(), &["10"]);
        let _other = spawn(&build_c("cc", "samename.c", "samename", &["-O1", "-pthread"]), &["10"]);
        thread::sleep(Duration::from_millis(100));
        let list = format!("{},{}", a.0.id(), b.0.id());
        let (folded, err, code) = profile(&[
            os("--backend"),
            os(backend),
            os("--per-process"),
            os("-p"),
            os(&list),
            os("-F"),
            os("199"),
            os("-d"),
            os("2"),
        ]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        let (h, c) =
            (rooted(&folded, &format!("hotspots-{}", a.0.id())), rooted(&folded, &format!("cpphot-lld-{}", b.0.id())));
        let total: u64 = folded.iter().map(|(_, c)| c).sum();
        // Four busy threads on two CPUs: about 199 samples each, less
        // under an unfair share of the CPUs.
        assert!(h > 120 && c > 120, "{backend}: {h} and {c}: {folded:?}");
        assert_eq!(h + c, total, "{backend}: only the two processes: {folded:?}");
    }
}

/// The thread IDs of a process's threads named `name`.
fn threads_named(pid: u32, name: &str) -> Vec<u32> {
    let mut tids = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            tids.push(entry.file_name().to_string_lossy().parse().unwrap());
        }
    }
    tids
}

#[test]
fn a_tid_profiles_that_thread_alone() {
    let Some(_serial) = privileged() else { return };
    for backend in ["ebpf", "perf"] {
        let target = spawn(&build_c("cc", "samename.c", "samename", &["-O1", "-pthread"]), &["3"]);
        let pid = target.0.id();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut workers = threads_named(pid, "worker");
        while workers.len() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            workers = threads_named(pid, "worker");
        }
        assert_eq!(workers.len(), 2, "two threads named worker");
        let tid = workers[0].to_string();
        let (folded, err, code) = profile(&[
            os("--backend"),
            os(backend),
            os("--per-thread"),
            os("-t"),
            os(&tid),
            os("-F"),
            os("199"),
            os("-d"),
            os("1.5"),
        ]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        let total: u64 = folded.iter().map(|(_, c)| c).sum();
        let mine = rooted(&folded, &format!("worker-{pid}/{tid};"));
        let mine = mine + rooted(&folded, &format!("worker-{pid}/{tid}"));
        assert!(total > 150, "{backend}: {folded:?}");
        assert_eq!(mine, total, "{backend}: only thread {tid}: {folded:?}");
        // A thread that does not exist is named in the error.
        let (_, err, code) = profile(&[os("-t"), os("999999999"), os("-d"), os("1")]);
        assert_ne!(code, Some(0));
        assert!(err.contains("999999999"), "{err}");
    }
}

#[test]
fn per_thread_splits_threads_that_share_a_name() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "samename.c", "samename", &["-O1", "-pthread"]);
    for backend in ["ebpf", "perf"] {
        let (folded, err, code) =
            profile(&[os("--backend"), os(backend), os("--per-thread"), os("-F"), os("199"), bin.as_os_str(), os("2")]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        let mut roots: Vec<(&str, u64)> = Vec::new();
        for (s, c) in &folded {
            let root = s.split(';').next().unwrap();
            if root.starts_with("worker-") && s.contains("spin") {
                match roots.iter_mut().find(|(r, _)| *r == root) {
                    Some(e) => e.1 += c,
                    None => roots.push((root, *c)),
                }
            }
        }
        assert_eq!(roots.len(), 2, "{backend}: two worker roots: {roots:?}");
        assert!(roots.iter().all(|(_, c)| *c > 150), "{backend}: {roots:?}");
        // By default they merge under one name.
        let (folded, _, _) = profile(&[os("--backend"), os(backend), os("-F"), os("199"), bin.as_os_str(), os("1")]);
        assert!(
            rooted(&folded, "samename") > 200 && folded.iter().all(|(s, _)| !s.starts_with("worker")),
            "{folded:?}"
        );
    }
}

/// The cgroup v2 mount point, wherever it is (`/sys/fs/cgroup` or, on
/// hybrid hierarchies, `/sys/fs/cgroup/unified`).
pub(crate) fn cgroup2_mount() -> PathBuf {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in info.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        if right.starts_with("cgroup2 ") {
            return PathBuf::from(left.split(' ').nth(4).unwrap());
        }
    }
    panic!("no cgroup2 mount: {info}");
}

pub(crate) struct TempCgroup(pub(crate) PathBuf);

impl Drop for TempCgroup {
    fn drop(&mut self) {
        // Move any remaining process out, then remove the group.
        if let Ok(procs) = fs::read_to_string(self.0.join("cgroup.procs")) {
            let parent = self.0.parent().unwrap().join("cgroup.procs");
            for pid in procs.lines() {
                let _ = fs::write(&parent, pid);
            }
        }
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn a_cgroup_holds_one_workload_and_the_other_is_absent() {
    let Some(_serial) = privileged() else { return };
    let mount = cgroup2_mount();
    let group = TempCgroup(mount.join(format!("perfkit-test-{}", std::process::id())));
    fs::create_dir(&group.0).unwrap();
    for backend in ["ebpf", "perf"] {
        // Far longer than the two runs need (they are killed after them):
        // the second run's window must not outlast the workload.
        let inside = spawn(hotspots(), &["30"]);
        let _outside = spawn(&cpphot(), &["30"]);
        fs::write(group.0.join("cgroup.procs"), inside.0.id().to_string()).unwrap();
        // The path given relative to the cgroup root, as systemd and
        // container runtimes name groups.
        let relative = format!("/{}", group.0.file_name().unwrap().to_string_lossy());
        for path in [group.0.to_str().unwrap(), relative.as_str()] {
            let (folded, err, code) = profile(&[
                os("--backend"),
                os(backend),
                os("--cgroup"),
                os(path),
                os("-F"),
                os("199"),
                os("-d"),
                os("2"),
            ]);
            assert_eq!(code, Some(0), "{backend} {path}: {err}");
            let total: u64 = folded.iter().map(|(_, c)| c).sum();
            // About 398 samples of its busy CPU; far fewer on a machine
            // busy with other work.
            assert!(rooted(&folded, "hotspots") > 100, "{backend}: {folded:?}");
            assert_eq!(rooted(&folded, "hotspots"), total, "{backend}: only the cgroup's process: {folded:?}");
        }
        drop(inside);
    }
    let (_, err, code) = profile(&[os("--cgroup"), os("/no-such-group-here"), os("-d"), os("1")]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no-such-group-here"), "{err}");
}

#[test]
fn the_command_exit_status_is_passed_on() {
    let Some(_serial) = privileged() else { return };
    let script = format!("{} 0.5; exit 3", hotspots().display());
    for backend in ["ebpf", "perf"] {
        let (folded, err, code) = profile(&[os("--backend"), os(backend), os("sh"), os("-c"), os(&script)]);
        assert_eq!(code, Some(3), "{backend}: {err}");
        assert!(!folded.is_empty(), "{backend}: the outputs are written too");
    }
    let out = run(perfkit().args(["stat", "--", "sh", "-c", "exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Without `--`, like perf stat.
    let out = run(perfkit().args(["stat", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Not found: 127, as a shell.
    let (_, err, code) = profile(&[os("no-such-command-perfkit")]);
    assert_eq!(code, Some(127), "{err}");
    let out = run(perfkit().args(["stat", "--", "no-such-command-perfkit"]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

#[test]
fn stat_of_a_short_command_counts_its_own_time() {
    let Some(_serial) = privileged() else { return };
    let out = run(perfkit().args(["stat", "--json", "--", "true"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let task_clock = doc["events"].as_array().unwrap().iter().find(|e| e["event"] == "task-clock").unwrap();
    let cpus = task_clock["derived"].as_f64().unwrap_or_else(|| panic!("{doc}"));
    // One thread cannot use more than one CPU: a ratio above 1 means the
    // clock started after the command began to run.
    assert!(cpus > 0.0 && cpus <= 1.0, "`true` cannot use {cpus} CPUs: the clock must start before it runs");
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_and_the_profile_written() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let svg = dir.path().join("f.svg");
    let marker = format!("perfkit-stubborn-{}", std::process::id());
    let script = format!("trap '' TERM; {marker}=1; while :; do :; done");
    let started = Instant::now();
    let out = run(perfkit().args(["profile", "-d", "1", "-o"]).arg(&svg).args(["--", "bash", "-c", &script, &marker]));
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read_to_string(&svg).unwrap().contains("<svg"), "the SVG is written");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "no process left behind");
}

#[test]
fn with_output_on_stdout_the_command_writes_to_stderr() {
    let Some(_serial) = privileged() else { return };
    let script = format!("echo from-the-command; {} 0.5", hotspots().display());
    let out = run(perfkit().args(["profile", "-f", "folded", "-o", "-", "--", "sh", "-c", &script]));
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!stdout.contains("from-the-command"), "{stdout}");
    assert!(stderr(&out).contains("from-the-command"));
    assert!(stdout.lines().all(|l| l.rsplit_once(' ').is_some_and(|(_, n)| n.parse::<u64>().is_ok())), "{stdout}");
}

#[test]
fn a_target_that_exits_before_the_first_sample_writes_nothing() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let out = run(perfkit().arg("profile").arg("-o").arg(dir.path().join("f.svg")).args(["--", "true"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no samples"), "{}", stderr(&out));
    assert_no_output(dir.path());
}

/// Serves on a free port, returning the server and its port.
/// The status code of a GET.
fn status_of(port: u16, path: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn go_tool_pprof_pulls_a_profile_from_serve() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["go"]) {
        return;
    }
    let (_server, port) = serve(&[]);
    // Killed when the test ends; long enough for both requests however
    // slowly `go tool pprof` starts on a loaded machine.
    let _work = spawn(hotspots(), &["60"]);
    let dir = scratch_dir();
    // pprof waits 1.5 times the duration by default: too short for a
    // whole-machine profile's start and end on a loaded machine.
    let url = format!("http://127.0.0.1:{port}/debug/pprof/profile?seconds=2");
    let out = run(Command::new("go")
        .args(["tool", "pprof", "-timeout", "60", "-top", &url])
        .env("HOME", dir.path())
        .env("PPROF_TMPDIR", dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let top = String::from_utf8_lossy(&out.stdout);
    let first =
        top.lines().skip_while(|l| !l.trim_start().starts_with("flat")).nth(1).unwrap_or_else(|| panic!("{top}"));
    assert!(first.contains("hot_a"), "hot_a leads go tool pprof -top: {top}");
    // A process's profile, by pid.
    let url = format!("http://127.0.0.1:{port}/debug/pprof/profile?seconds=1&pid={}", _work.0.id());
    let out = run(Command::new("go")
        .args(["tool", "pprof", "-timeout", "60", "-top", &url])
        .env("HOME", dir.path())
        .env("PPROF_TMPDIR", dir.path()));
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && top.contains("hot_b"), "{top}\n{}", stderr(&out));
}

#[test]
fn serve_bounds_profile_requests() {
    let Some(_serial) = privileged() else { return };
    let (_server, port) = serve(&[]);
    assert_eq!(status_of(port, "/debug/pprof/profile?seconds=100000"), 400);
    // A bad `seconds` means 30 s, as in Go (hardening_serve tests it).
    assert_eq!(status_of(port, "/debug/pprof/profile?seconds=1&pid=999999999"), 400);
    // One profile at a time: a second request while one runs gets 429.
    let first = thread::spawn(move || status_of(port, "/debug/pprof/profile?seconds=3"));
    thread::sleep(Duration::from_millis(700));
    assert_eq!(status_of(port, "/debug/pprof/profile?seconds=1"), 429);
    assert_eq!(first.join().unwrap(), 200);
    // And once it is done, the next one runs.
    assert_eq!(status_of(port, "/debug/pprof/profile?seconds=1"), 200);
}

/// A program whose file is larger than the files whose tables are built
/// as soon as they are mapped (4 MiB: 6 MiB of zeros after its last
/// section, which no loader reads) and whose CFI is larger than what is
/// built at once whatever the file's size (256 KiB: 16,000 functions),
/// built without frame pointers so that only its table roots its stacks:
/// `NAME SECONDS` spins in `spin` under `main`, `NAME sleep` sleeps 3 s.
fn large_program(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let mut src: String = (0..16_000).map(|i| format!("int f{i}(int x) {{ return x * {i} + (x >> 3); }}\n")).collect();
    src.push_str(
        "#include <stdlib.h>\n#include <time.h>\n#include <unistd.h>\nstatic volatile int sink;\n\
         __attribute__((noinline)) void spin(double secs) { struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a); \
         do { for (int i = 0; i < 100000; i++) sink += i; clock_gettime(CLOCK_MONOTONIC, &b); } \
         while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < secs); }\n\
         int main(int argc, char **argv) { if (argc > 1 && argv[1][0] == 's') { sleep(3); return 0; } \
         spin(argc > 1 ? atof(argv[1]) : 1); return sink & 0; }\n",
    );
    let (c, built) = (dir.join("large.c"), dir.join("large"));
    fs::write(&c, src).unwrap();
    let status = Command::new("cc").args(["-O0", "-fomit-frame-pointer", "-o"]).arg(&built).arg(&c).status().unwrap();
    assert!(status.success());
    names
        .iter()
        .map(|name| {
            let to = dir.join(name);
            fs::copy(&built, &to).unwrap();
            let mut file = fs::OpenOptions::new().append(true).open(&to).unwrap();
            file.write_all(&vec![0u8; 6 << 20]).unwrap();
            to
        })
        .collect()
}

#[test]
fn system_wide_builds_a_large_files_table_when_a_walk_first_reaches_it() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let copies = large_program(dir.path(), &["bighot", "bigsleep"]);
    let runner = {
        let (hot, idle) = (copies[0].clone(), copies[1].clone());
        thread::spawn(move || {
            // Both start after sampling has: their mappings come from the
            // kernel's events. The sleeper is mapped and runs almost no
            // code of its own; the busy one spins for 4 s.
            thread::sleep(Duration::from_millis(700));
            let mut sleeper = Command::new(&idle).arg("sleep").spawn().unwrap();
            let status = Command::new(&hot).arg("4").status().unwrap();
            let _ = sleeper.wait();
            status.success()
        })
    };
    let (folded, err, code) = profile(&[os("-a"), os("-F"), os("199"), os("-d"), os("6")]);
    assert!(runner.join().unwrap());
    assert_eq!(code, Some(0), "{err}");
    let ours: Vec<&(String, u64)> = folded
        .iter()
        .filter(|(s, _)| s.split(';').next() == Some("bighot") && !s.contains(";bprm_execve_[k]"))
        .collect();
    let total: u64 = ours.iter().map(|(_, c)| c).sum();
    let full: u64 = ours
        .iter()
        .filter(|(s, _)| {
            let frames = physical(s);
            frames.first() == Some(&"_start") && frames.ends_with(&["main", "spin"])
        })
        .map(|(_, c)| c)
        .sum();
    // "... a large file: N built, M large files mapped but never reached".
    let line = err.lines().find(|l| l.contains("when a walk first reached a large file")).unwrap_or("");
    let numbers: Vec<u64> = line.split([':', ',']).filter_map(|p| p.split_whitespace().next()?.parse().ok()).collect();
    let report = format!("{full} of {total} samples of the large program on their full path; {line:?}\n{err}");
    eprintln!("{report}");
    // 4 s at 199 Hz on one CPU: about 800 samples (under 100 on a machine
    // busy with builds). Its table is built after its first sample: the
    // samples taken until it is loaded (milliseconds; more than a second
    // when builds compete for the CPUs and the builders) are walked
    // without it, the others on their full path. Without the table none
    // is.
    assert!(total >= 40, "{report}");
    assert!(full * 100 >= total * 50, "{report}");
    // The busy program's table was built on request, the sleeper's not.
    assert!(numbers.len() == 2 && numbers[0] >= 1 && numbers[1] >= 1, "{report}");
}
