//! `perfkit checkup` on known workloads: four busy copies of one program on
//! this two-CPU machine (CPU saturation, that program the culprit, its
//! run-queue wait checked against pidstat's in the same window), direct
//! writes to a loop device throttled by a cgroup (disk saturation, the
//! writer the culprit, at the throttled rate), a quiet scope, Ctrl-C, and
//! bad input.
//!
//! Other work may run on the machine at the same time (other builds and
//! tests). The tests judge what they control: the culprits and waits of
//! their own processes, found by `-p`, and for the host-wide run only that
//! their program is among the culprits. A `-p` scope lowers findings that
//! none of its processes causes to info, so the quiet test holds however
//! busy the rest of the machine is.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use serde_json::Value;

use crate::util::*;

const PROGRAM: &str = "burner-checkup";

/// `n` copies of the burner workload (tests/workloads/burner.c), each
/// burning a CPU for `seconds`; killed when dropped.
fn burners(n: usize, seconds: u32) -> Vec<Killed> {
    let exe = build_c("cc", "burner.c", PROGRAM, &["-O1"]);
    (0..n).map(|_| Killed(Command::new(&exe).arg(seconds.to_string()).spawn().unwrap())).collect()
}

fn checkup(args: &[&str]) -> (Value, String) {
    let out = run(perfkit().arg("checkup").args(args).args(["--json", "-"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("checkup --json - prints one JSON document");
    assert_eq!(json["schema_version"], 1);
    (json, stderr(&out))
}

/// `perfkit checkup ARGS --json -`, with `release` called once checkup
/// says its window has started (what it does then falls inside the
/// window, however long checkup took to start).
fn checkup_released(args: &[&str], release: impl FnOnce()) -> (Value, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = perfkit()
        .arg("checkup")
        .args(args)
        .args(["--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    while !text.contains("Observing for") {
        assert!(err.read_line(&mut text).unwrap() > 0, "checkup ended before its window: {text}");
    }
    release();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    err.read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success(), "{text}");
    let json: Value = serde_json::from_slice(&out).expect("checkup --json - prints one JSON document");
    assert_eq!(json["schema_version"], 1);
    (json, text)
}

fn pids_of(list: &[Killed]) -> Vec<u32> {
    list.iter().map(|k| k.0.id()).collect()
}

/// pidstat's `Average:` %wait of each pid.
fn pidstat_wait(text: &str) -> Vec<(u32, f64)> {
    let header = text.lines().find(|l| l.contains("%wait")).expect("pidstat prints %wait");
    let cols: Vec<&str> = header.split_whitespace().collect();
    let (pid_col, wait_col) =
        (cols.iter().position(|c| *c == "PID").unwrap(), cols.iter().position(|c| *c == "%wait").unwrap());
    text.lines()
        .filter(|l| l.starts_with("Average:"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // The timed lines have a time where Average lines have
            // "Average:": the same columns.
            Some((f.get(pid_col)?.parse().ok()?, f.get(wait_col)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn cpu_saturation_names_the_busy_program() {
    let _serial = serial();
    let hogs = burners(4, 40);
    let pids = pids_of(&hogs);
    let list = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    thread::sleep(Duration::from_millis(500));

    // pidstat on the same processes in the same window, for their %wait.
    let pidstat = have("pidstat")
        .then(|| Command::new("pidstat").args(["-u", "-p", &list, "1", "6"]).stdout(Stdio::piped()).spawn().unwrap());
    let (json, text) = checkup(&["-d", "6", "-p", &list]);
    let top = &json["findings"][0];
    assert_eq!((top["resource"].as_str(), top["kind"].as_str()), (Some("cpu"), Some("saturation")), "{text}");
    // Four runnable tasks for two CPUs, and more if anything else runs.
    assert_eq!(top["severity"], "critical", "{text}");
    let culprits = top["culprits"].as_array().unwrap();
    let mut found: Vec<u32> = culprits.iter().map(|c| c["pid"].as_u64().unwrap() as u32).collect();
    found.sort_unstable();
    let mut expected = pids.clone();
    expected.sort_unstable();
    assert_eq!(found, expected, "every copy is a culprit: {text}");
    for c in culprits {
        assert_eq!(c["comm"], PROGRAM);
        // Four tasks on two CPUs: each waits at least as long as it runs
        // (half the time), more when other work competes.
        let wait = c["wait_percent"].as_f64().expect("schedstat wait");
        assert!(wait >= 35.0, "a copy waited only {wait}% for a CPU: {text}");
    }
    assert!(top["next"][0].as_str().unwrap().starts_with("perfkit profile -p "), "{text}");
    let intervals = json["observations"]["intervals"].as_array().unwrap();
    assert!((5..=7).contains(&intervals.len()), "{} intervals in 6 s", intervals.len());

    // As root, the copies' run-queue latency traced with eBPF: its total
    // is the wait schedstat counted for them.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let h = &json["observations"]["run_queue_latency"];
        assert!(h.is_object(), "runqlat as root: {}", json["observations"]["notes"]);
        let traced_s = h["mean_usecs"].as_f64().unwrap() * h["count"].as_f64().unwrap() / 1e6;
        let secs = json["observations"]["duration_seconds"].as_f64().unwrap();
        let schedstat_s: f64 = culprits.iter().map(|c| c["wait_percent"].as_f64().unwrap() / 100.0 * secs).sum();
        assert!(
            (traced_s - schedstat_s).abs() <= 0.35 * schedstat_s,
            "runqlat total {traced_s:.2} s, schedstat wait {schedstat_s:.2} s"
        );
        assert!(h["p99_usecs"].as_u64().unwrap() >= 1000, "four copies on two CPUs wait milliseconds: {h}");
        // The on-CPU profile of the copies: burner.c spins in main.
        let p = &json["observations"]["on_cpu"];
        assert!(p["samples"].as_u64().unwrap() >= 20, "{p}");
        let hot = &p["top_functions"][0];
        assert_eq!(hot["name"], "main", "{p}");
        assert!(hot["percent"].as_f64().unwrap() >= 60.0, "{p}");
        assert!(text.contains("on-CPU ("), "{text}");
    } else {
        assert!(json["observations"]["notes"][0].as_str().unwrap().contains("run-queue latency"));
    }

    if let Some(child) = pidstat {
        let out = child.wait_with_output().unwrap();
        let waits = pidstat_wait(&String::from_utf8_lossy(&out.stdout));
        for c in culprits {
            let pid = c["pid"].as_u64().unwrap() as u32;
            let ours = c["wait_percent"].as_f64().unwrap();
            let theirs = waits.iter().find(|(p, _)| *p == pid).map(|(_, w)| *w).expect("pidstat has the pid");
            assert!((ours - theirs).abs() <= 15.0, "pid {pid}: checkup {ours}% wait, pidstat {theirs}%");
        }
    } else {
        assert!(!strict(), "strict mode installs sysstat: pidstat is missing");
    }

    // The whole host. When the copies had most of the CPU time (nothing
    // else of weight ran), they are the top culprits; on a machine shared
    // with other work, the saturation is still the top finding.
    let (json, text) = checkup(&["-d", "4"]);
    let top = &json["findings"][0];
    assert_eq!((top["resource"].as_str(), top["kind"].as_str()), (Some("cpu"), Some("saturation")), "{text}");
    assert!(!text.contains("no bottleneck found"), "{text}");
    let obs = &json["observations"];
    let ours: f64 = obs["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["comm"] == PROGRAM)
        .map(|p| p["cpu_percent"].as_f64().unwrap())
        .sum();
    let busy: f64 = obs["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| 100.0 - i["cpu"]["idle_percent"].as_f64().unwrap())
        .sum::<f64>()
        / obs["intervals"].as_array().unwrap().len() as f64
        * obs["cpus"].as_f64().unwrap();
    if ours >= 0.5 * busy {
        assert_eq!(top["culprits"][0]["comm"], PROGRAM, "{text}");
    } else {
        eprintln!(
            "checkup test: the machine is shared ({ours:.0}% of {busy:.0}% busy is ours): culprit order not judged"
        );
    }
}

#[test]
fn a_quiet_scope_has_no_finding_above_info() {
    let _serial = serial();
    let quiet = Killed(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = quiet.0.id().to_string();
    let (json, text) = checkup(&["-d", "3", "-p", &pid]);
    assert!(text.contains("no bottleneck found"), "{text}");
    for f in json["findings"].as_array().unwrap() {
        assert_eq!(f["severity"], "info", "{f}");
        // No culprit from procfs (only the quiet process is read); the
        // kernel log may name others' processes (an OOM victim of another
        // test on this machine), never the one in scope.
        let culprits = f["culprits"].as_array().unwrap();
        assert!(f["resource"] == "kernel" || f["resource"] == "memory" || culprits.is_empty(), "{f}");
        assert!(culprits.iter().all(|c| c["pid"].as_u64().map(|p| p.to_string()) != Some(pid.clone())), "{f}");
        assert!(f["note"].is_string(), "{f}");
    }
    let obs = &json["observations"];
    assert_eq!(obs["scope_pids"][0].as_u64().map(|p| p.to_string()), Some(pid.clone()));
    let procs = obs["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "only the process in scope is read: {procs:?}");
    assert!(procs[0]["cpu_percent"].as_f64().unwrap() < 1.0);
    // Every resource has its line.
    let resources: Vec<&str> =
        json["summary"].as_array().unwrap().iter().map(|l| l["resource"].as_str().unwrap()).collect();
    assert_eq!(resources[..5], ["cpu", "memory", "disk", "network", "process"]);
    // The kernel log's line, where it can be read (root).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(resources[5..], ["kernel"], "{text}");
    }
}

#[test]
fn ctrl_c_ends_the_observation_and_still_reports() {
    let dir = scratch_dir();
    let json_path = dir.path().join("checkup.json");
    let child: Child = perfkit()
        .args(["checkup", "-d", "60", "--json"])
        .arg(&json_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(2));
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(ended_by(out.status, libc::SIGINT), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("stopped early") && text.contains("resources:"), "{text}");
    let json: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    // The signal may come while the eBPF programs are still being loaded
    // on a busy machine: then the window is shorter still, never longer.
    let secs = json["observations"]["duration_seconds"].as_f64().unwrap();
    assert!(secs < 10.0, "observed {secs} s of 60 after Ctrl-C at 2 s");
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = run(perfkit().args(["checkup", "-d", "1", "-p", "999999999"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no process 999999999"), "{}", stderr(&out));
    let out = run(perfkit().args(["checkup", "-d", "1", "--json", "/nonexistent-dir/x.json"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent-dir"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    let out = run(perfkit().args(["checkup", "-d", "0"]));
    assert!(!out.status.success() && !stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// A cgroup made for the test, removed when dropped (after its processes
/// are gone).
struct Group(PathBuf);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// A cgroup limiting writes to `dev` (major, minor) to `iops` a second:
/// `io.max` where cgroup v2 holds the io controller, else v1's
/// `blkio.throttle.write_iops_device`.
fn write_throttled_group(dev: (u32, u32), iops: u32) -> Option<Group> {
    let name = format!("perfkit-checkup-test-{}", std::process::id());
    let v2 = std::path::Path::new("/sys/fs/cgroup");
    if fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|x| x == "io")) {
        let _ = fs::write(v2.join("cgroup.subtree_control"), "+io");
        let group = Group(v2.join(&name));
        fs::create_dir(&group.0).ok()?;
        fs::write(group.0.join("io.max"), format!("{}:{} wiops={iops}", dev.0, dev.1)).ok()?;
        return Some(group);
    }
    let v1 = std::path::Path::new("/sys/fs/cgroup/blkio");
    if v1.join("blkio.throttle.write_iops_device").exists() {
        let group = Group(v1.join(&name));
        fs::create_dir(&group.0).ok()?;
        fs::write(group.0.join("blkio.throttle.write_iops_device"), format!("{}:{} {iops}", dev.0, dev.1)).ok()?;
        return Some(group);
    }
    None
}

#[test]
fn disk_saturation_names_the_writer() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["losetup", "dd"]) {
        return;
    }
    let dir = scratch_dir();
    let dev = Loop::new(dir.path());
    let rdev = fs::metadata(&dev.0).unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    // 20 writes a second of 4 KiB: 80 KiB/s, each write waiting about 50 ms.
    let Some(group) = write_throttled_group((major, minor), 20) else {
        panic!("no blkio (v1) or io (v2) cgroup controller to throttle writes with");
    };
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec dd if=/dev/zero of={} bs=4k count=100000 oflag=direct",
        group.0.display(),
        dev.0
    );
    let writer = Killed(Command::new("sh").args(["-c", &script]).stderr(Stdio::null()).spawn().unwrap());
    thread::sleep(Duration::from_secs(1));
    let pid = writer.0.id();
    let (json, text) = checkup(&["-d", "5", "-p", &pid.to_string()]);
    drop(writer);
    let top = &json["findings"][0];
    assert_eq!((top["resource"].as_str(), top["kind"].as_str()), (Some("disk"), Some("saturation")), "{text}");
    assert_ne!(top["severity"], "info", "{text}");
    let culprit = &top["culprits"][0];
    assert_eq!((culprit["pid"].as_u64(), culprit["comm"].as_str()), (Some(pid as u64), Some("dd")), "{text}");
    // The throttle's rate: 20 x 4 KiB a second.
    let rate = culprit["io_kib_per_s"].as_f64().unwrap();
    assert!((60.0..=100.0).contains(&rate), "the writer wrote {rate} KiB/s, throttled to 80: {text}");
    assert!(top["next"][0].as_str().unwrap().starts_with(&format!("perfkit offcpu -p {pid}")), "{text}");
    // biolatency of the loop device (host-wide, but nothing else writes
    // to it): as many I/Os as the throttle let through, 20 a second.
    let name = dev.0.trim_start_matches("/dev/");
    let disks = json["observations"]["block_io_latency"].as_array().expect("biolatency as root");
    let ours = disks.iter().find(|d| d["device"] == name).unwrap_or_else(|| panic!("{name} in {disks:?}"));
    let ios = ours["histogram"]["count"].as_f64().unwrap();
    let secs = json["observations"]["duration_seconds"].as_f64().unwrap();
    assert!((14.0 * secs..=26.0 * secs).contains(&ios), "{ios} I/Os of {name} in {secs} s, throttled to 20/s");
    let buckets: u64 =
        ours["histogram"]["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(buckets as f64, ios, "the buckets hold every I/O");
}

/// A network namespace with one end of a veth pair (the other end, named
/// second, in ours), both removed when dropped: sockets still
/// retransmitting can keep a deleted namespace, and so the pair, alive.
struct Netns(String, String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.1]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
}

#[test]
fn tcp_retransmits_when_the_peer_goes_down() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["ip", "python3"]) {
        return;
    }
    let id = std::process::id() % 100_000;
    let (here, there) = (format!("pkck{id}a"), format!("pkck{id}b"));
    let ns = Netns(format!("pkck{id}"), here.clone());
    ip(&["netns", "add", &ns.0]);
    ip(&["link", "add", &here, "type", "veth", "peer", "name", &there, "netns", &ns.0]);
    ip(&["addr", "add", "10.251.77.1/24", "dev", &here]);
    ip(&["link", "set", &here, "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.251.77.2/24", "dev", &there]);
    ip(&["-n", &ns.0, "link", "set", &there, "up"]);
    // A peer that accepts and never reads.
    let server = "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind(('10.251.77.2',4477))\ns.listen(64)\nc=[s.accept() for _ in range(16)]\ntime.sleep(60)\n";
    let _peer = Killed(Command::new("ip").args(["netns", "exec", &ns.0, "python3", "-c", server]).spawn().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut conns = Vec::new();
    while conns.len() < 16 {
        match std::net::TcpStream::connect_timeout(&"10.251.77.2:4477".parse().unwrap(), Duration::from_millis(500)) {
            Ok(c) => conns.push(c),
            Err(_) if std::time::Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("connecting to the peer: {e}"),
        }
    }
    // Once the window starts, the peer's link goes down; what is sent
    // next is never acknowledged, and retransmitted at about 0.2, 0.6, 1.4
    // and 3 s, inside the window.
    let (json, text) = checkup_released(&["-d", "6"], || {
        ip(&["-n", &ns.0, "link", "set", &there, "down"]);
        for c in &mut conns {
            c.set_nonblocking(true).unwrap();
            let _ = std::io::Write::write(c, &[7u8; 4096]);
        }
    });
    let f = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["resource"] == "network" && f["kind"] == "errors" && f["object"] == "tcp")
        .unwrap_or_else(|| panic!("no TCP retransmit finding: {text}"));
    // Nothing but retransmits leaves: far past the 5% of critical. (Not
    // necessarily the top finding: others' work may saturate the CPUs,
    // and saturation ranks first.)
    assert_eq!(f["severity"], "critical", "{text}");
    assert_eq!(f["next"][0], "perfkit tcpretrans");
    // 16 connections, each retransmitting with exponential backoff: at
    // least once each in the 6 s.
    let per_s =
        f["evidence"].as_array().unwrap().iter().find(|e| e["metric"] == "tcp_retransmits_per_s").unwrap()["value"]
            .as_f64()
            .unwrap();
    assert!(per_s >= 16.0 / 6.0, "{per_s} retransmits/s: {text}");
    drop(conns);
}

/// A new cgroup for `controller` (`memory`, `cpu`) in whichever hierarchy
/// holds it here: cgroup2 (wherever mounted) when its root lists the
/// controller (enabled for its children), else the v1 hierarchy mounted
/// with it. `None` when neither does.
fn controller_group(controller: &str, name: &str) -> Option<(Group, bool)> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let mount = |fstype: &str, option: Option<&str>| {
        mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[2] == fstype && option.is_none_or(|o| f[3].split(',').any(|x| x == o)))
                .then(|| PathBuf::from(f[1]))
        })
    };
    if let Some(v2) = mount("cgroup2", None).filter(|m| {
        fs::read_to_string(m.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    }) {
        let _ = fs::write(v2.join("cgroup.subtree_control"), format!("+{controller}"));
        let group = Group(v2.join(name));
        fs::create_dir(&group.0).ok()?;
        return Some((group, true));
    }
    let v1 = mount("cgroup", Some(controller))?;
    let group = Group(v1.join(name));
    fs::create_dir(&group.0).ok()?;
    Some((group, false))
}

/// A memory cgroup limited to `bytes`, swap included.
fn memory_limited_group(name: &str, bytes: u64) -> Group {
    let (group, v2) = controller_group("memory", name).expect("a memory cgroup controller (v1 or v2)");
    if v2 {
        fs::write(group.0.join("memory.max"), bytes.to_string()).unwrap();
        let _ = fs::write(group.0.join("memory.swap.max"), "0");
    } else {
        fs::write(group.0.join("memory.limit_in_bytes"), bytes.to_string()).unwrap();
        let _ = fs::write(group.0.join("memory.memsw.limit_in_bytes"), bytes.to_string());
    }
    group
}

/// A shell that joins `group` and then runs `script` (so its pid is the
/// workload's when the script ends in `exec`).
fn in_group(group: &Group, script: &str) -> Killed {
    let script = format!("echo $$ > {}/cgroup.procs && {script}", group.0.display());
    Killed(Command::new("sh").args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
}

/// The group's path as checkup names it: below its hierarchy's mount.
fn group_name(group: &Group) -> String {
    format!("/{}", group.0.file_name().unwrap().to_string_lossy())
}

#[test]
fn memory_thrashing_in_a_limited_cgroup_names_the_reader() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["python3"]) {
        return;
    }
    // A file three times the group's limit, on disk and out of the page
    // cache (pages cached by the writer would be charged to its group, and
    // the reader would hit them).
    let dir = tempfile::Builder::new().prefix("perfkit-test-").tempdir_in("/var/tmp").unwrap();
    let data = dir.path().join("big.dat");
    {
        use std::{io::Write, os::fd::AsRawFd};
        let mut f = fs::File::create(&data).unwrap();
        let block = vec![0x5au8; 1 << 20];
        for _ in 0..192 {
            f.write_all(&block).unwrap();
        }
        f.sync_all().unwrap();
        // SAFETY: an open descriptor; the advice has no memory effects.
        assert_eq!(unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) }, 0);
    }
    let group = memory_limited_group(&format!("perfkit-checkup-mem-{}", std::process::id()), 64 << 20);
    let reader_py = format!(
        "import time\nend=time.time()+40\nwhile time.time()<end:\n f=open('{}','rb',buffering=0)\n \
while f.read(1<<20): pass\n f.close()\n",
        data.display()
    );
    let reader = in_group(&group, &format!("exec python3 -c \"{reader_py}\""));
    let idle = Killed(Command::new("sleep").arg("60").spawn().unwrap());
    thread::sleep(Duration::from_secs(2));
    let pid = reader.0.id();
    let (json, text) = checkup(&["-d", "5", "-p", &format!("{pid},{}", idle.0.id())]);
    drop(reader);
    let top = &json["findings"][0];
    assert_eq!((top["resource"].as_str(), top["kind"].as_str()), (Some("memory"), Some("saturation")), "{text}");
    assert_ne!(top["severity"], "info", "{text}");
    assert_eq!(top["object"].as_str(), Some(group_name(&group).as_str()), "{text}");
    let culprit = &top["culprits"][0];
    assert_eq!((culprit["pid"].as_u64(), culprit["comm"].as_str()), (Some(pid as u64), Some("python3")), "{text}");
    assert_eq!(top["culprits"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(top["cgroups"][0]["path"].as_str(), Some(group_name(&group).as_str()), "{text}");
    // What thrashing means: the group re-reads from disk what its limit
    // evicted, many times over its size in the window.
    let g = json["observations"]["cgroups"]["memory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["path"].as_str() == Some(&group_name(&group)))
        .unwrap_or_else(|| panic!("the group is observed: {text}"));
    assert_eq!(g["limit_kib"], 65536, "{g}");
    let refaults = g["refaults_per_s"].as_f64().unwrap();
    assert!(refaults >= 1000.0, "{refaults} refaults/s: {text}");
    // Read back at the rate it refaults (4 KiB pages), within a factor:
    // part of each pass may still be cached, readahead reads ahead.
    let read = culprit["io_kib_per_s"].as_f64().unwrap();
    assert!(read >= 2.0 * refaults, "read {read} KiB/s for {refaults} refaults/s: {text}");
    assert!(g["pids"].as_array().unwrap().iter().any(|p| p.as_u64() == Some(pid as u64)), "{g}");
}

#[test]
fn an_oom_kill_in_a_limited_cgroup_names_the_victim() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["dd"]) {
        return;
    }
    let group = memory_limited_group(&format!("perfkit-checkup-oom-{}", std::process::id()), 32 << 20);
    // dd's 256 MiB buffer, filled from /dev/zero: far past the limit. It
    // starts once checkup's window has (a line on its standard input).
    let script = format!(
        "echo $$ > {}/cgroup.procs && read go && exec dd if=/dev/zero of=/dev/null bs=256M count=1",
        group.0.display()
    );
    let mut victim = Killed(
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = victim.0.id();
    let mut go = victim.0.stdin.take().unwrap();
    let (json, text) = checkup_released(&["-d", "5", "-p", &pid.to_string()], || {
        std::io::Write::write_all(&mut go, b"go\n").unwrap();
    });
    drop(victim);
    let f = &json["findings"][0];
    assert_eq!((f["resource"].as_str(), f["kind"].as_str()), (Some("memory"), Some("errors")), "{text}");
    assert_eq!(f["severity"], "critical", "{text}");
    // Other work on the machine may be OOM-killed in the same window: ours
    // is among the victims and groups, not necessarily first.
    let culprit = f["culprits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pid"].as_u64() == Some(pid as u64))
        .unwrap_or_else(|| panic!("the victim is a culprit: {text}"));
    assert_eq!(culprit["comm"], "dd", "{text}");
    assert!(
        f["cgroups"].as_array().unwrap().iter().any(|g| g["path"].as_str() == Some(group_name(&group).as_str())),
        "{text}"
    );
    let kills = f["evidence"].as_array().unwrap().iter().find(|e| e["metric"] == "oom_kills").unwrap();
    assert!(kills["value"].as_f64().unwrap() >= 1.0, "{text}");
    // The kernel's own line is kept, as dmesg shows it.
    let during = json["observations"]["kernel"]["during"].as_array().unwrap();
    let line = during
        .iter()
        .find(|m| m["class"] == "oom_kill" && m["pid"].as_u64() == Some(pid as u64))
        .unwrap_or_else(|| panic!("the kill's kernel message: {during:?}"));
    assert_eq!(line["pid"].as_u64(), Some(pid as u64));
    assert!(line["text"].as_str().unwrap().contains(&format!("Killed process {pid} (dd)")), "{line}");
    if have("dmesg") {
        let out = run(&mut Command::new("dmesg"));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Killed process {pid} (dd)")));
    }
    assert!(text.contains("kernel messages during the window:"), "{text}");
}

#[test]
fn a_cgroup_with_a_tiny_cpu_quota_is_reported_throttled() {
    let Some(_serial) = privileged() else { return };
    let name = format!("perfkit-checkup-cpu-{}", std::process::id());
    let (group, v2) = controller_group("cpu", &name).expect("a cpu cgroup controller (v1 or v2)");
    // 10 ms of CPU every 100 ms: a tenth of a CPU.
    if v2 {
        fs::write(group.0.join("cpu.max"), "10000 100000").unwrap();
    } else {
        fs::write(group.0.join("cpu.cfs_period_us"), "100000").unwrap();
        fs::write(group.0.join("cpu.cfs_quota_us"), "10000").unwrap();
    }
    let exe = build_c("cc", "burner.c", PROGRAM, &["-O1"]);
    let spinner = in_group(&group, &format!("exec {} 30", exe.display()));
    thread::sleep(Duration::from_millis(500));
    let pid = spinner.0.id();
    let (json, text) = checkup(&["-d", "4", "-p", &pid.to_string()]);
    drop(spinner);
    let f = &json["findings"][0];
    assert_eq!((f["resource"].as_str(), f["kind"].as_str()), (Some("cpu"), Some("saturation")), "{text}");
    assert_eq!(f["severity"], "critical", "{text}");
    assert_eq!(f["object"].as_str(), Some(group_name(&group).as_str()), "{text}");
    assert_eq!(f["cgroups"][0]["path"].as_str(), Some(group_name(&group).as_str()), "{text}");
    assert_eq!(
        (f["culprits"][0]["pid"].as_u64(), f["culprits"][0]["comm"].as_str()),
        (Some(pid as u64), Some(PROGRAM))
    );
    // A spinning task uses its quota in each period: throttled in nearly
    // all, and gets a tenth of a CPU (pidstat's figure, from the same
    // procfs counters).
    let throttled = f["evidence"].as_array().unwrap().iter().find(|e| e["metric"] == "throttled_percent").unwrap();
    assert!(throttled["value"].as_f64().unwrap() >= 80.0, "{text}");
    let cpu = f["culprits"][0]["cpu_percent"].as_f64().unwrap();
    assert!((5.0..=15.0).contains(&cpu), "a tenth of a CPU, got {cpu}%: {text}");
    let quota = f["evidence"].as_array().unwrap().iter().find(|e| e["metric"] == "quota_cpus").unwrap();
    assert_eq!(quota["value"], 0.1);
}

/// Headless Chromium's DOM of `url` once its scripts ran, and a screenshot
/// of the page at `png`.
fn chromium(url: &str, profile: &std::path::Path, png: &std::path::Path) -> String {
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ];
    let profile = format!("--user-data-dir={}", profile.display());
    let out = run(Command::new("chromium").args(base).arg(&profile).args(["--dump-dom", url]));
    assert!(out.status.success(), "chromium --dump-dom: {}", stderr(&out));
    let shot = run(Command::new("chromium")
        .args(base)
        .arg(&profile)
        .arg("--window-size=1280,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url));
    assert!(shot.status.success(), "chromium --screenshot: {}", stderr(&shot));
    String::from_utf8(out.stdout).unwrap()
}

/// The HTML report of a CPU saturation (four busy copies of a program on
/// two CPUs, their checkup by `-p`): one self-contained file that renders
/// in Chromium with its charts, its interactive flame graph (the copies'
/// hot function, found by the graph's own search) and the culprit, whose
/// off-CPU stacks (waiting for a CPU) are there too. Then `--compare` of a
/// quiet checkup against it names the saturation and draws the hot
/// function in the differential flame graph.
#[test]
fn html_report_and_compare_of_a_cpu_saturation() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let (busy_json, report, quiet_json, diff) = (
        dir.path().join("busy.json"),
        dir.path().join("report.html"),
        dir.path().join("quiet.json"),
        dir.path().join("diff.html"),
    );
    let quiet = Killed(Command::new("sleep").arg("60").spawn().unwrap());
    let out = run(perfkit().args(["checkup", "-d", "3", "-p", &quiet.0.id().to_string(), "--json"]).arg(&quiet_json));
    assert!(out.status.success(), "{}", stderr(&out));

    let hogs = burners(4, 30);
    let list = pids_of(&hogs).iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    thread::sleep(Duration::from_millis(500));
    let out = run(perfkit().args(["checkup", "-d", "5", "-p", &list, "--json"]).arg(&busy_json).arg("-o").arg(&report));
    drop(hogs);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("wrote {}", report.display())), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&fs::read(&busy_json).unwrap()).unwrap();
    assert_eq!(json["findings"][0]["kind"], "saturation", "{}", json["findings"]);
    let culprit = json["findings"][0]["culprits"][0]["pid"].as_u64().unwrap();
    // --json carries what --compare needs: the folded on-CPU stacks, and
    // the culprits' off-CPU stacks (their wait for a CPU: preemption).
    let stacks = json["observations"]["on_cpu"]["stacks"].as_array().unwrap();
    assert!(stacks.iter().any(|s| s["stack"].as_str().unwrap().starts_with(&format!("{PROGRAM};"))), "{stacks:?}");
    let off = json["observations"]["off_cpu"]["processes"].as_array().expect("off-CPU stacks as root");
    let ours = off.iter().find(|p| p["pid"] == culprit).expect("the culprit's off-CPU stacks");
    // Four copies on two CPUs: each waits about half the window, 2.5 s of 5.
    let waited = ours["total_usecs"].as_f64().unwrap() / 1e6;
    assert!(waited >= 1.0, "the culprit was off CPU {waited:.2} s");
    assert!(off.iter().all(|p| p["comm"] == PROGRAM), "only the culprits' stacks are kept: {off:?}");

    let html = fs::read_to_string(&report).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "no URL: the report is self-contained");
    assert!(!html.contains(" src=") && !html.contains("<link"), "nothing loaded from elsewhere");
    assert!(html.matches("<svg class=\"chart\"").count() >= 8, "charts of cpu, memory, disk, network");
    assert!(html.contains("id=\"flamegraph-on-cpu\""));
    assert!(html.contains(&format!("<td class=\"comm\">{PROGRAM}</td>")), "the culprit in the findings");
    assert!(html.contains(&format!("{PROGRAM} ({culprit}): ")), "the culprit's off-CPU stacks");
    assert!(html.contains("<section id=\"kernel-messages\""));

    if tools(&["chromium"]) {
        let png = dir.path().join("report.png");
        let dom = chromium(&format!("file://{}?s=main", report.display()), &dir.path().join("chromium"), &png);
        assert!(dom.matches("<svg class=\"chart\"").count() >= 8, "the charts are in the DOM");
        assert!(dom.contains(PROGRAM), "the culprit is in the DOM");
        // inferno's script ran inline: it found its own <svg> (its width
        // now fits the page) and its search (?s=main) matched the copies'
        // hot function.
        let fg = &dom[dom.find("<svg id=\"flamegraph-on-cpu\"").expect("the flame graph in the DOM")..];
        let tag = &fg[..fg.find('>').unwrap()];
        assert!(!tag.contains(" width="), "init() ran on the flame graph: {tag}");
        let matched = &fg[fg.find("id=\"matched\"").unwrap()..];
        let matched = &matched[matched.find('>').unwrap() + 1..matched.find('<').unwrap()];
        let share: f64 = matched.trim().trim_start_matches("Matched: ").trim_end_matches('%').parse().unwrap_or(0.0);
        assert!(share >= 50.0, "search for main matched {matched:?}");
        let size = fs::metadata(&png).unwrap().len();
        assert!(size > 50_000, "a screenshot of {size} bytes is not the report");
    }

    let out = run(perfkit().args(["checkup", "--compare"]).arg(&quiet_json).arg(&busy_json).arg("-o").arg(&diff));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // The quiet scope's findings are all info (lowered: none of its doing);
    // the saturation either appeared or got worse, to critical.
    let line = text.lines().find(|l| l.contains("cpu saturation")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.trim_start().starts_with("appeared") || line.trim_start().starts_with("worse"), "{line}\n{text}");
    assert!(line.contains("critical"), "{line}");
    assert!(text.contains("cpu_busy_percent") && text.contains("runnable_per_cpu"), "{text}");
    let html = fs::read_to_string(&diff).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    let fg = &html[html.find("<svg id=\"flamegraph-diff\"").expect("the differential flame graph")..];
    assert!(fg.contains("<title>main ("), "the hot function in the differential flame graph");
}

#[test]
fn compare_refuses_bad_and_mismatched_inputs() {
    let dir = scratch_dir();
    let (scoped, host, bad, old) = (
        dir.path().join("scoped.json"),
        dir.path().join("host.json"),
        dir.path().join("bad.json"),
        dir.path().join("v9.json"),
    );
    let quiet = Killed(Command::new("sleep").arg("60").spawn().unwrap());
    let out = run(perfkit().args(["checkup", "-d", "1", "-p", &quiet.0.id().to_string(), "--json"]).arg(&scoped));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(perfkit().args(["checkup", "-d", "1", "--json"]).arg(&host));
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(&bad, "{\"schema_version\": 1, \"findings\": [").unwrap();
    fs::write(&old, "{\"schema_version\": 9}").unwrap();
    let compare = |a: &std::path::Path, b: &std::path::Path| {
        let out = run(perfkit().args(["checkup", "--compare"]).arg(a).arg(b));
        assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let err = compare(&scoped, &host);
    assert!(err.contains("the whole host") && err.contains("same scope"), "{err}");
    let err = compare(&bad, &host);
    assert!(err.contains("BEFORE") && err.contains("not a perfkit checkup JSON document"), "{err}");
    let err = compare(&host, &old);
    assert!(err.contains("AFTER") && err.contains("schema_version 9"), "{err}");
    let err = compare(&host, &dir.path().join("missing.json"));
    assert!(err.contains("missing.json"), "{err}");
    // Comparing observes nothing: -p and -d are refused with it.
    let out = run(perfkit().args(["checkup", "--compare"]).arg(&host).arg(&host).args(["-d", "5"]));
    assert!(!out.status.success() && stderr(&out).contains("cannot be used with"), "{}", stderr(&out));
    // A checkup compared with itself: nothing changed.
    let out = run(perfkit().args(["checkup", "--compare"]).arg(&host).arg(&host));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("appeared") && !text.contains("gone"), "{text}");
}

/// The eBPF activity of a known window: 40 execs of `true` (under a name
/// of their own), 12 TCP connects to a local port and its 12 accepts, all
/// once checkup says the window started; and two busy copies per CPU (about
/// one waiting on each, wherever the scheduler puts them).
#[test]
fn activity_counts_known_execs_connections_and_queues() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let truth = dir.path().join("perfkit-true");
    fs::copy("/bin/true", &truth).unwrap();
    let cpus = thread::available_parallelism().map_or(2, |n| n.get());
    let burning = burners(2 * cpus, 20);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (json, text) = checkup_released(&["-d", "6"], || {
        for _ in 0..40 {
            assert!(Command::new(&truth).status().unwrap().success());
        }
        for _ in 0..12 {
            let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (s, _) = listener.accept().unwrap();
            drop((c, s));
        }
    });
    drop(burning);
    let a = &json["observations"]["activity"];
    let top = a["execs"]["top"].as_array().unwrap_or_else(|| panic!("{a}\n{text}"));
    let ours = top.iter().find(|c| c["name"] == "perfkit-true").unwrap_or_else(|| panic!("{a}\n{text}"));
    assert_eq!(ours["count"], 40, "{a}");
    let port = port.to_string();
    let by = |kind: &str| a["tcp_opens"][kind].as_array().unwrap().iter().find(|c| c["name"] == port.as_str()).cloned();
    assert_eq!(by("connects").map(|c| c["count"].clone()), Some(serde_json::json!(12)), "{a}");
    assert_eq!(by("accepts").map(|c| c["count"].clone()), Some(serde_json::json!(12)), "{a}");
    // Twice as many busy loops as CPUs: `cpus` of them wait at any time,
    // however the scheduler spreads them (other work only adds).
    let queues = a["run_queue_length"].as_array().unwrap();
    assert_eq!(queues.len(), cpus, "{a}");
    let waiting: f64 = queues.iter().map(|q| q["mean_waiting"].as_f64().unwrap()).sum();
    assert!(waiting >= 0.8 * cpus as f64, "{a}\n{text}");
    assert!(text.contains("perfkit-true 40"), "{text}");
}
