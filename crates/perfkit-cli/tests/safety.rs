//! perfkit runs as root: output paths it did not check, hostile targets
//! and hostile inputs must not make it destroy, leak or hang. Device nodes
//! and symbolic links are made in temporary directories, never the
//! system's own `/dev`.

use std::{
    fs,
    io::{Read, Write},
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A directory like /tmp: world-writable and sticky.
fn sticky_dir() -> tempfile::TempDir {
    let dir = scratch_dir();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Runs a command as user `nobody` (uid 65534).
fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(program);
    c
}

/// A root-only file with known contents, to be protected.
fn secret_file(dir: &Path) -> PathBuf {
    let secret = dir.join("secret");
    fs::write(&secret, "root's secret\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    secret
}

/// Every way of writing a file: (arguments before `-o FILE`, arguments
/// after it).
fn writers() -> Vec<Vec<String>> {
    let folded = data("perfkit.folded").to_string_lossy().into_owned();
    vec![
        vec!["flamegraph".into(), folded.clone()],
        vec!["convert".into(), "-f".into(), "json".into(), folded.clone()],
        vec!["diff".into(), folded.clone(), folded],
        vec!["sys".into(), "record".into(), "0.1".into(), "1".into()],
        vec!["sys".into(), "cpu".into(), "0.1".into(), "1".into()],
    ]
}

fn write_to(args: &[String], output: &Path) -> std::process::Output {
    // `-o` goes right after the subcommand's name(s).
    let split = if args[0] == "sys" { 2 } else { 1 };
    run(perfkit().args(&args[..split]).arg("-o").arg(output).args(&args[split..]))
}

#[test]
fn a_symlink_planted_by_another_user_is_never_followed() {
    let Some(_serial) = privileged() else { return };
    let dir = sticky_dir();
    let secret = secret_file(dir.path());
    let link = dir.path().join("out");
    let made = run(as_nobody("ln").arg("-s").arg(&secret).arg(&link));
    assert!(made.status.success());
    for args in writers() {
        let out = write_to(&args, &link);
        assert!(!out.status.success(), "{args:?} wrote through the link");
        assert!(stderr(&out).contains("symbolic link") && stderr(&out).contains("65534"), "{}", stderr(&out));
        assert_eq!(fs::read_to_string(&secret).unwrap(), "root's secret\n", "{args:?}");
        assert_eq!(fs::metadata(&secret).unwrap().permissions().mode() & 0o7777, 0o600);
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }
    // A link root made itself is followed, as users expect.
    let own = dir.path().join("own-link");
    let target = dir.path().join("own-target.svg");
    std::os::unix::fs::symlink(&target, &own).unwrap();
    let out = write_to(&writers()[0], &own);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read_to_string(&target).unwrap().contains("<svg"));
}

#[test]
fn a_new_file_is_never_taken_over_from_another_user() {
    let Some(_serial) = privileged() else { return };
    // A file another user owns at the output path is replaced, not written
    // through: their inode keeps its contents, and the output is root's.
    let dir = sticky_dir();
    let path = dir.path().join("out.svg");
    let made = run(as_nobody("sh").arg("-c").arg(format!("echo theirs > {}", path.display())));
    assert!(made.status.success());
    let theirs = fs::metadata(&path).unwrap();
    let out = write_to(&writers()[0], &path);
    // Either refused, or replaced atomically; never written through.
    let now = fs::metadata(&path).unwrap();
    if out.status.success() {
        assert_ne!(now.ino(), theirs.ino(), "written through another user's file");
    } else {
        assert_eq!(fs::read_to_string(&path).unwrap(), "theirs\n");
    }
}

fn mknod(path: &Path, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; mknod has no memory preconditions.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(major, minor)) };
    assert_eq!(rc, 0, "mknod {}: {}", path.display(), std::io::Error::last_os_error());
}

#[test]
fn device_nodes_are_written_into_and_never_replaced() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let full = dir.path().join("full");
    let null = dir.path().join("null");
    mknod(&full, 1, 7);
    mknod(&null, 1, 3);
    for args in writers() {
        let out = write_to(&args, &full);
        assert!(!out.status.success(), "{args:?}: writing to a full device succeeded");
        assert!(stderr(&out).contains("No space left on device"), "{args:?}: {}", stderr(&out));
        let out = write_to(&args, &null);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        for node in [&full, &null] {
            assert!(fs::metadata(node).unwrap().file_type().is_char_device(), "{args:?} replaced {}", node.display());
        }
    }
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 2, "temporary files left: {leftovers:?}");
    // Anything else that is not a regular file is refused, clearly.
    let sub = dir.path().join("a-directory");
    fs::create_dir(&sub).unwrap();
    let out = write_to(&writers()[0], &sub);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a regular file") || stderr(&out).contains("directory"), "{}", stderr(&out));
}

#[test]
fn a_fifo_is_written_into() {
    let dir = scratch_dir();
    let fifo = dir.path().join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        thread::spawn(move || {
            let mut s = String::new();
            fs::File::open(&fifo).unwrap().read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = write_to(&writers()[0], &fifo);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(reader.join().unwrap().contains("</svg>"));
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn outputs_honour_the_umask_and_never_widen_a_mode() {
    let dir = scratch_dir();
    let folded = data("perfkit.folded");
    let run_with_umask = |umask: &str, out: &Path| {
        let script = format!("umask {umask}; exec \"$0\" flamegraph -o \"$1\" \"$2\"");
        run(Command::new("sh").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_perfkit")).arg(out).arg(&folded))
    };
    let new = dir.path().join("new.svg");
    assert!(run_with_umask("077", &new).status.success());
    assert_eq!(fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600, "umask 077 gives 0600");
    let shared = dir.path().join("shared.svg");
    assert!(run_with_umask("022", &shared).status.success());
    assert_eq!(fs::metadata(&shared).unwrap().permissions().mode() & 0o777, 0o644);
    // An existing 0600 file stays 0600 under umask 022.
    let private = dir.path().join("private.svg");
    fs::write(&private, "old").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(run_with_umask("022", &private).status.success());
    assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600, "the mode was widened");
    assert!(fs::read_to_string(&private).unwrap().contains("<svg"));
}

#[test]
fn a_failed_start_never_truncates_an_existing_recording() {
    let dir = scratch_dir();
    let rec = dir.path().join("existing.rec");
    let out = run(perfkit().args(["sys", "record", "0.1", "2", "-o"]).arg(&rec));
    assert!(out.status.success(), "{}", stderr(&out));
    let before = fs::read(&rec).unwrap();
    assert!(before.len() > 1000);
    let out = run(perfkit().args(["sys", "proc", "-p", "999999999", "-o"]).arg(&rec).args(["1", "1"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("999999999"), "{}", stderr(&out));
    assert_eq!(fs::read(&rec).unwrap(), before, "the recording was touched");
}

#[test]
fn the_title_option_keeps_arguments_out_of_the_graph() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let svg = dir.path().join("f.svg");
    let script = format!("{} 0.5 # --password=hunter2", hotspots().display());
    let out =
        run(perfkit().args(["profile", "--title", "api under load", "-o"]).arg(&svg).args(["--", "sh", "-c", &script]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.contains("api under load") && !text.contains("hunter2"));
}

/// Sends `signal` to a running `perfkit` after `after`, and returns its
/// output.
fn signal_after(mut cmd: Command, signal: i32, after: Duration) -> std::process::Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    thread::sleep(after);
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn sigterm_and_sighup_write_every_output_and_leave_no_temporary_file() {
    let Some(_serial) = privileged() else { return };
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let target = Command::new(hotspots()).arg("8").stdout(Stdio::null()).spawn().unwrap();
        let dir = scratch_dir();
        let (svg, folded) = (dir.path().join("f.svg"), dir.path().join("f.folded"));
        let mut cmd = perfkit();
        // 499 Hz: a hundred samples within the 2 s, however long perfkit
        // takes to start.
        cmd.args(["profile", "-F", "499", "-p", &target.id().to_string(), "-o"]).arg(&svg).arg("--folded").arg(&folded);
        let out = signal_after(cmd, signal, Duration::from_secs(2));
        let mut target = target;
        let _ = target.kill();
        let _ = target.wait();
        assert!(ended_by(out.status, signal), "signal {signal}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(fs::read_to_string(&svg).unwrap().contains("</svg>"));
        assert_hotspots_profile(&read_folded(&folded));
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");

        // A recording keeps every sample taken.
        let rec = dir.path().join("host.rec");
        let mut cmd = perfkit();
        cmd.args(["sys", "record", "0.2", "-o"]).arg(&rec);
        let out = signal_after(cmd, signal, Duration::from_millis(1500));
        assert!(ended_by(out.status, signal), "signal {signal}: {}", String::from_utf8_lossy(&out.stderr));
        let report = run(perfkit().args(["sys", "report"]).arg(&rec).args(["cpu", "--json"]));
        assert!(report.status.success());
        assert!(String::from_utf8_lossy(&report.stdout).lines().count() >= 4, "samples lost");
    }
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_closed_stdout_is_an_error() {
    let folded = data("perfkit.folded");
    // `| head -c 100`: perfkit's writes fail with EPIPE once head exits.
    let script = "\"$0\" flamegraph -o - \"$1\" | head -c 100 > /dev/null; exit ${PIPESTATUS[0]}";
    let out = run(Command::new("bash").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_perfkit")).arg(&folded));
    // As coreutils: killed by SIGPIPE, 141 in a shell (0 when the graph
    // fit in the pipe before head left).
    assert!(matches!(out.status.code(), Some(0 | 141)), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
    // `>&-`: no standard output at all.
    let script = "\"$0\" convert -f folded -o - \"$1\" >&-";
    let out = run(Command::new("bash").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_perfkit")).arg(&folded));
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("standard output"), "{}", stderr(&out));
}

#[test]
fn diff_to_stdout_is_pure_svg_and_the_summary_goes_to_stderr() {
    let folded = data("perfkit.folded");
    let out = run(perfkit().args(["diff", "-o", "-"]).arg(&folded).arg(&folded));
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(svg.trim_start().starts_with("<?xml") && svg.trim_end().ends_with("</svg>"), "{svg:.200}");
    assert!(!stderr(&out).is_empty(), "the summary is on stderr");
}

#[test]
fn a_target_swapping_its_executable_for_a_fifo_cannot_block_perfkit() {
    let Some(_serial) = privileged() else { return };
    let dir = sticky_dir();
    let exe = dir.path().join("swapper");
    fs::copy(hotspots_nofp(), &exe).unwrap();
    let mut target = Command::new(&exe).arg("2").stdout(Stdio::null()).spawn().unwrap();
    let pid = target.id().to_string();
    let swap = {
        let exe = exe.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(800));
            fs::remove_file(&exe).unwrap();
            assert!(Command::new("mkfifo").arg(&exe).status().unwrap().success());
        })
    };
    let started = Instant::now();
    let svg = dir.path().join("f.svg");
    let folded = dir.path().join("f.folded");
    // 499 Hz: a hundred samples of hot_a within the target's 2 s, however
    // long perfkit takes to start.
    let out = run(perfkit().args(["profile", "-F", "499", "-p", &pid, "-o"]).arg(&svg).arg("--folded").arg(&folded));
    swap.join().unwrap();
    target.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "perfkit hung: {:?}", started.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    // Symbols still come from the mapped file, opened once through
    // /proc/PID/map_files before the swap.
    let folded = read_folded(&folded);
    let (a, _) = leaf_samples(&folded, "hot_a", ";parent_a;hot_a");
    assert!(a > 100, "{folded:?}");
    assert!(fs::metadata(&exe).unwrap().file_type().is_fifo());
}

/// Runs `cmd` to its end; returns its stderr, whether it succeeded, and
/// its peak memory in KiB (measured by [`run_measured`]).
fn run_with_peak_memory(cmd: &mut Command) -> (String, bool, u64) {
    let ran = run_measured(cmd, None);
    (ran.stderr, ran.ok, ran.rss >> 10)
}

#[test]
fn a_binary_with_a_decompression_bomb_cannot_blow_up_memory() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["objcopy"]) {
        return;
    }
    // A program whose debug sections are 300 MiB of zeros each, compressed
    // to a few hundred KiB: what a target may hand perfkit's ELF readers.
    let dir = scratch_dir();
    let zeros = dir.path().join("zeros");
    fs::File::create(&zeros).unwrap().set_len(300 << 20).unwrap();
    let plain = dir.path().join("plain");
    let stripped = dir.path().join("stripped");
    assert!(
        Command::new("objcopy").arg("--strip-debug").arg(hotspots_nofp()).arg(&stripped).status().unwrap().success()
    );
    let mut add = Command::new("objcopy");
    for section in [".debug_frame", ".debug_info", ".debug_abbrev", ".debug_line"] {
        add.arg(format!("--add-section={section}={}", zeros.display()));
        add.arg(format!("--set-section-flags={section}=noload,readonly"));
    }
    assert!(add.arg(&stripped).arg(&plain).status().unwrap().success());
    let bomb = dir.path().join("bomb");
    assert!(
        Command::new("objcopy")
            .arg("--compress-debug-sections=zlib")
            .arg(&plain)
            .arg(&bomb)
            .status()
            .unwrap()
            .success()
    );
    fs::remove_file(&zeros).unwrap();
    fs::remove_file(&plain).unwrap();
    assert!(fs::metadata(&bomb).unwrap().len() < 16 << 20);
    for backend in ["ebpf", "perf"] {
        let folded = dir.path().join(format!("{backend}.folded"));
        let (err, ok, peak_kib) = run_with_peak_memory(
            perfkit()
                .args(["profile", "--backend", backend, "-F", "199", "-o"])
                .arg(dir.path().join("f.svg"))
                .arg("--folded")
                .arg(&folded)
                .arg("--")
                .arg(&bomb)
                .arg("1"),
        );
        assert!(ok, "{backend}: {err}");
        assert!(err.contains("debug information of") && err.contains("not read"), "{backend}: {err}");
        assert!(peak_kib < 200 << 10, "{backend}: perfkit peaked at {} MiB on a small file", peak_kib >> 10);
        // The symbol tables still name the functions; the unwind tables
        // come from .eh_frame.
        let (all, full) = leaf_samples(&read_folded(&folded), "hot_a", "main;parent_a;hot_a");
        assert!(all > 50 && full * 100 >= all * 95, "{backend}: {full} of {all} hot_a samples with their full path");
    }
}

#[test]
fn a_command_that_is_a_fifo_is_refused_without_waiting_on_it() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let fifo = dir.path().join("prog");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o755)).unwrap();
    let svg = dir.path().join("f.svg");
    for backend in ["ebpf", "perf"] {
        let mut child = perfkit()
            .args(["profile", "--backend", backend, "-d", "1", "-o"])
            .arg(&svg)
            .arg("--")
            .arg(&fifo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{backend}: perfkit blocked on a command that is a FIFO");
            }
            thread::sleep(Duration::from_millis(100));
        };
        assert!(!status.success(), "{backend}: a FIFO ran");
        assert!(!svg.exists(), "{backend}: an output without a profile");
    }
}

fn oddname() -> PathBuf {
    build_c("cc", "oddname.c", "oddname", &["-O1", "-fno-omit-frame-pointer"])
}

#[test]
fn a_process_whose_name_is_not_utf8_is_shown_escaped() {
    let Some(_serial) = privileged() else { return };
    let mut hog = Command::new(oddname()).arg("6").spawn().unwrap();
    let pid = hog.id().to_string();
    thread::sleep(Duration::from_millis(300));
    let escaped = "hog\\xff\\x1b[7m";
    // sys proc: listed among the busy processes, and by PID.
    for args in [vec!["sys", "proc", "1", "1"], vec!["sys", "proc", "-p", &pid, "1", "1"]] {
        let out = run(perfkit().args(&args));
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).expect("output is UTF-8");
        assert!(text.lines().any(|l| l.contains(&pid) && l.contains(escaped)), "{args:?}: {text}");
        assert!(!text.contains('\x1b'), "a raw escape reached the terminal");
    }
    // profile -p: found, and its root frame escaped.
    let dir = scratch_dir();
    let folded = dir.path().join("f.folded");
    let out = run(perfkit().args(["profile", "-d", "1", "-p", &pid, "-f", "folded", "-o"]).arg(&folded));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\x1b'), "a raw escape in the summary");
    let stacks = read_folded(&folded);
    assert!(stacks.iter().any(|(s, _)| s.starts_with(escaped) && s.contains("burn_oddly")), "{stacks:?}");
    // serve, with the process asked for: its series are there, escaped.
    let (server, port) = serve(&["-p", &pid]);
    let body = http_get(port, "/metrics").expect("perfkit serve answered");
    drop(server);
    let _ = hog.kill();
    let _ = hog.wait();
    assert!(body.lines().any(|l| l.contains(&format!("pid=\"{pid}\"")) && l.contains("hog\\\\xff")), "{body}");
}

#[test]
fn short_lived_threads_are_sampled_or_their_loss_reported() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "shortthreads.c", "shortthreads", &["-O1", "-pthread", "-fno-omit-frame-pointer"]);
    // About 1.2 s of CPU in short threads over 4 s.
    let (auto, err) = profile_command(&["-F", "99"], &[bin.as_os_str(), std::ffi::OsStr::new("4")]);
    assert!(err.contains("backend: eBPF"), "auto picks the backend that sees them: {err}");
    let total: u64 = auto.iter().map(|(_, c)| c).sum();
    assert!(total >= 60, "eBPF sampled {total} of about 120 samples' worth of short threads");
    let dir = scratch_dir();
    let out = run(perfkit()
        .args(["profile", "--backend", "perf", "-F", "99", "-f", "folded", "-o"])
        .arg(dir.path().join("p.folded"))
        .arg("--")
        .arg(&bin)
        .arg("4"));
    let err = stderr(&out);
    let perf: u64 =
        if out.status.success() { read_folded(&dir.path().join("p.folded")).iter().map(|(_, c)| c).sum() } else { 0 };
    // The perf backend either sees them too, or says what it missed.
    assert!(perf * 2 >= total || err.contains("short-lived") || err.contains("threads"), "perf: {perf} samples: {err}");
}

/// Runs perfkit with its address space capped at `limit_mib`.
fn capped(limit_mib: u64, args: &[&str], input: &Path) -> std::process::Output {
    let script = format!("ulimit -v {}; exec \"$0\" \"$@\"", limit_mib * 1024);
    run(Command::new("bash").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_perfkit")).args(args).arg(input))
}

#[test]
fn bombs_are_clear_errors_within_bounded_memory() {
    let dir = scratch_dir();
    // A gzip bomb: 2 GiB of zeros compressed to about 2 MiB.
    let bomb = dir.path().join("bomb.gz");
    let mut enc = flate2::write::GzEncoder::new(fs::File::create(&bomb).unwrap(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..2048 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap();
    for cmd in ["flamegraph", "convert"] {
        let args: &[&str] =
            if cmd == "convert" { &[cmd, "-f", "folded", "-o", "/dev/null"] } else { &[cmd, "-o", "/dev/null"] };
        let out = capped(1024, args, &bomb);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
        assert!(stderr(&out).contains("--max-memory") || stderr(&out).contains("limit"), "{}", stderr(&out));
    }
    // A JSON profile whose frames multiply into a huge graph.
    let mut json = String::from(
        r#"{"schema_version":1,"meta":{"duration_seconds":1,"frequency_hz":99,"unit":"samples"},"frames":["#,
    );
    for i in 0..1000 {
        json.push_str(&format!(r#"{{"name":"f{i}"}}"#));
        json.push(if i < 999 { ',' } else { ']' });
    }
    json.push_str(r#","stacks":["#);
    for i in 0..5000 {
        json.push_str(r#"{"frames":["#);
        json.push_str(&(0..1000).map(|f| ((f + i) % 1000).to_string()).collect::<Vec<_>>().join(","));
        json.push_str(r#"],"count":1}"#);
        json.push(if i < 4999 { ',' } else { ']' });
    }
    json.push('}');
    let wide = dir.path().join("wide.json");
    fs::write(&wide, &json).unwrap();
    let out = capped(1024, &["flamegraph", "-o", "/dev/null"], &wide);
    assert!(matches!(out.status.code(), Some(0 | 1)), "no crash: {}", stderr(&out));
}

#[test]
fn absurd_numbers_are_errors_not_panics() {
    let dir = scratch_dir();
    let json = dir.path().join("p.json");
    fs::write(
        &json,
        r#"{"schema_version":1,"meta":{"duration_seconds":1e300,"frequency_hz":99,"unit":"samples"},"frames":[{"name":"a"}],"stacks":[{"frames":[0],"count":1}]}"#,
    )
    .unwrap();
    let json_s = json.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["convert", "-f", "folded", "-o", "-", json_s],
        vec!["flamegraph", "-o", "/dev/null", json_s],
        vec!["diff", "-o", "/dev/null", json_s, json_s],
        vec!["sys", "cpu", "1e308", "1"],
        vec!["sys", "record", "1e20", "-o", "/dev/null"],
        vec!["sys", "cpu", "nan", "1"],
        vec!["profile", "-d", "1e300", "-p", "1"],
    ];
    for args in cases {
        let out = run(perfkit().args(&args));
        assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn serve_closes_slow_clients_and_survives_a_flood_of_idle_ones() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Under `ulimit -n 256`, as the issue found it.
    let script = format!("ulimit -n 256; exec \"$0\" serve --listen 127.0.0.1:{port} --max-connections 64");
    let mut server = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_perfkit"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(50));
    }
    let scrape = || -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    // A half-sent request is closed after the header timeout.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let _ = slow.read(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a slow client held its connection for {:?}",
        started.elapsed()
    );
    // 300 idle connections: scrapes still answer.
    let idle: Vec<_> = (0..300).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    let started = Instant::now();
    let body = scrape();
    let took = started.elapsed();
    drop(idle);
    let _ = server.kill();
    let _ = server.wait();
    assert!(body.as_deref().is_some_and(|b| b.contains("200 OK")), "a scrape failed under a flood: {body:?}");
    assert!(took < Duration::from_secs(8), "a scrape took {took:?} under a flood");
}

/// The command perfkit starts begins as from a shell: no signal ignored
/// (perfkit's own ignored SIGPIPE is not inherited) and none blocked, so a
/// pipeline in it ends quietly.
#[test]
fn the_held_command_starts_with_default_signals() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let out = run(perfkit().args(["profile", "-o"]).arg(dir.path().join("f.svg")).args([
        "--",
        "sh",
        "-c",
        "grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -1",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SigIgn:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("SigBlk:\t0000000000000000"), "{stdout}");
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}
