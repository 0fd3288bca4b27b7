//! The event tools against known answers: N loopback connections seen by
//! tcpconnect and tcpaccept (against bpftrace on the same tracepoint), a
//! process killed by the OOM killer in a memory-limited cgroup, a tmpfs
//! mounted and unmounted in a new mount namespace, capable (or the kernel
//! feature it lacks), and serve's counters of the same.

use std::{
    fs,
    io::{BufReader, Read},
    net::{TcpListener, TcpStream},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    tools::{json_lines, stop_tool, tool},
    util::*,
};

/// A loopback server that accepts (and closes) every connection, in this
/// process.
fn server() -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    (port, handle)
}

/// Opens `n` connections to `port`, each closed once established.
fn connect_n(port: u16, n: usize) {
    for _ in 0..n {
        drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
}

/// Stops bpftrace and returns its maps (`{"@c": 25, ...}`).
fn stop_bpftrace(bt: Killed, mut out: BufReader<std::process::ChildStdout>) -> serde_json::Map<String, Value> {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(bt.0.id() as i32, libc::SIGINT) };
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    let mut maps = serde_json::Map::new();
    for v in text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        if v["type"] == "map"
            && let Some(m) = v["data"].as_object()
        {
            maps.extend(m.clone());
        }
    }
    maps
}

#[test]
fn tcpconnect_and_tcpaccept_count_n_connections_like_bpftrace() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["bpftrace"]) {
        return;
    }
    // bcc-flags: tcpconnect -P -c -4
    // bcc-flags: tcpaccept -P -T -t -4
    const N: usize = 25;
    let (port, srv) = server();
    let p = port.to_string();
    let me = std::process::id();
    // CLOSE (7) -> SYN_SENT (2) and SYN_RECV (3) -> ESTABLISHED (1) on the
    // port: the transitions both tools trace.
    let script = format!(
        "tracepoint:sock:inet_sock_set_state /args->protocol == 6 && args->oldstate == 7 && args->newstate == 2 && \
         args->dport == {port}/ {{ @c = count(); }} tracepoint:sock:inet_sock_set_state /args->protocol == 6 && \
         args->oldstate == 3 && args->newstate == 1 && args->sport == {port}/ {{ @a = count(); }}"
    );
    let (bt, bt_out) = start_bpftrace(&script);
    let (conn, conn_out) = start_tool(&["tcpconnect", "--json", "-P", &p], "Tracing connect");
    let (count, count_out) = start_tool(&["tcpconnect", "-c", "-4", "-u", "0", "--json", "-P", &p], "Tracing connect");
    let (acc, acc_out) = start_tool(&["tcpaccept", "--json", "-P", &p], "Tracing accept");
    let (acc_text, acc_text_out) = start_tool(&["tcpaccept", "-T", "-t", "-4", "-P", &p], "Tracing accept");
    connect_n(port, N);
    thread::sleep(Duration::from_millis(500));
    let connects = json_lines(&stop_tool(conn, conn_out));
    let counts = json_lines(&stop_tool(count, count_out));
    let accepts = json_lines(&stop_tool(acc, acc_out));
    let text = stop_tool(acc_text, acc_text_out);
    let theirs = stop_bpftrace(bt, bt_out);
    drop(srv);

    assert_eq!(theirs.get("@c"), Some(&Value::from(N)), "bpftrace: {theirs:?}");
    assert_eq!(theirs.get("@a"), Some(&Value::from(N)), "bpftrace: {theirs:?}");
    assert_eq!(connects.len(), N, "{connects:?}");
    for c in &connects {
        assert_eq!(c["pid"], me, "{c}");
        assert_eq!(c["remote_port"], port, "{c}");
        assert_eq!(c["remote_addr"], "127.0.0.1");
        assert_eq!(c["ip"], 4);
    }
    let rows = counts.last().unwrap()["counts"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["connects"], N, "{rows:?}");
    assert_eq!(rows[0]["remote_port"], port);
    // Accepted by this process (the server thread), on the server's port,
    // from N distinct client ports.
    assert_eq!(accepts.len(), N, "{accepts:?}");
    let mut clients: Vec<u64> = accepts.iter().map(|a| a["remote_port"].as_u64().unwrap()).collect();
    clients.sort_unstable();
    clients.dedup();
    assert_eq!(clients.len(), N);
    for a in &accepts {
        assert_eq!(a["pid"], me, "{a}");
        assert_eq!(a["local_port"], port, "{a}");
    }
    // bcc's layout: TIME, TIME(s), then PID COMM IP RADDR RPORT LADDR LPORT.
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("TIME") && head.contains("TIME(s)") && head.ends_with("LPORT"), "{text}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), N, "{text}");
    assert!(rows.iter().all(|r| r.trim_end().ends_with(&p) && r.contains(&format!(" {me} "))), "{text}");
}

/// Where the memory controller is: a new group under it, limited to
/// `limit` bytes (no swap), and the file that moves a process into it.
struct MemoryGroup {
    dir: PathBuf,
    procs: PathBuf,
}

impl MemoryGroup {
    fn new(limit: u64) -> Self {
        let mounts = fs::read_to_string("/proc/mounts").unwrap();
        let name = format!("perfkit-oom-{}", std::process::id());
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            let root = Path::new(f[1]);
            if f[2] == "cgroup" && f[3].split(',').any(|o| o == "memory") {
                let dir = root.join(&name);
                fs::create_dir(&dir).unwrap();
                fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
                }
                return Self { procs: dir.join("cgroup.procs"), dir };
            }
            if f[2] == "cgroup2"
                && fs::read_to_string(root.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
            {
                let _ = fs::write(root.join("cgroup.subtree_control"), "+memory");
                let dir = root.join(&name);
                fs::create_dir(&dir).unwrap();
                fs::write(dir.join("memory.max"), limit.to_string()).unwrap();
                let _ = fs::write(dir.join("memory.swap.max"), "0");
                return Self { procs: dir.join("cgroup.procs"), dir };
            }
        }
        panic!("no cgroup hierarchy holds the memory controller:\n{mounts}");
    }

    /// Runs `bin` in the group; its exit status.
    fn run(&self, bin: &Path, arg: &str) -> std::process::ExitStatus {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && exec {} {arg}", self.procs.display(), bin.display()))
            .status()
            .unwrap()
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

#[test]
fn oomkill_sees_a_process_killed_in_a_memory_limited_cgroup() {
    let Some(_serial) = privileged() else { return };
    let hog = build_c("cc", "memhog.c", "memhog", &["-O1"]);
    let group = MemoryGroup::new(32 << 20);
    let (oom, oom_out) = start_tool(&["oomkill", "--json"], "Tracing OOM kills");
    let (text_tool, text_out) = start_tool(&["oomkill"], "Tracing OOM kills");
    let status = group.run(&hog, "512");
    assert!(ended_by(status, libc::SIGKILL) || status.code() == Some(137), "the hog was not killed: {status}");
    thread::sleep(Duration::from_millis(500));
    let events = json_lines(&stop_tool(oom, oom_out));
    let text = stop_tool(text_tool, text_out);
    let kills: Vec<&Value> = events.iter().filter(|e| e["victim_comm"] == "memhog").collect();
    assert_eq!(kills.len(), 1, "{events:?}");
    let k = kills[0];
    // The hog allocated: it triggered the OOM killer and was its victim.
    assert_eq!(k["trigger_pid"], k["victim_pid"], "{k}");
    assert_eq!(k["trigger_comm"], "memhog", "{k}");
    // It had touched about the limit (32 MiB) when it was chosen; its
    // virtual size is at least that.
    if let Some(rss) = k["anon_rss_kb"].as_u64() {
        assert!((16 << 10..=64 << 10).contains(&rss), "anon_rss_kb {rss}: {k}");
        assert!(k["total_vm_pages"].as_u64().unwrap() * 4 >= rss, "{k}");
    }
    let line = text.lines().find(|l| l.contains("memhog")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&format!(
            "Triggered by PID {} (\"memhog\"), OOM kill of PID {} (\"memhog\"),",
            k["trigger_pid"], k["victim_pid"]
        )) && line.contains(" pages, loadavg: "),
        "{line}"
    );
}

#[test]
fn mountsnoop_sees_a_tmpfs_mount_and_its_umount() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: mountsnoop -t
    let dir = scratch_dir();
    let target = dir.path().to_str().unwrap().to_owned();
    let script = format!("mount -t tmpfs -o size=1m,nosuid perfkit-tmpfs {target} && umount {target}");
    let out =
        tool(&["mountsnoop", "--json", "--", "unshare", "-m", "--propagation", "private", "/bin/sh", "-c", &script]);
    let events = json_lines(&out);
    let mounts: Vec<&Value> = events.iter().filter(|e| e["call"] == "mount" && e["fstype"] == "tmpfs").collect();
    assert_eq!(mounts.len(), 1, "{events:?}");
    let m = mounts[0];
    assert_eq!(m["source"], "perfkit-tmpfs");
    assert_eq!(m["target"], target.as_str());
    assert_eq!(m["ret"], 0);
    // mount(8) passes nosuid as a flag and the rest as data.
    assert_eq!(m["flags_text"], "MS_NOSUID", "{m}");
    assert_eq!(m["data"], "size=1m", "{m}");
    // In the new namespace, not ours.
    let ours = fs::metadata("/proc/self/ns/mnt").unwrap().ino();
    let ns = m["mnt_ns"].as_u64().unwrap();
    assert!(ns != 0 && ns != ours, "mnt_ns {ns}, ours {ours}");
    let umounts: Vec<&Value> =
        events.iter().filter(|e| e["call"] == "umount" && e["target"] == target.as_str()).collect();
    assert_eq!(umounts.len(), 1, "{events:?}");
    assert_eq!(umounts[0]["ret"], 0);
    assert_eq!(umounts[0]["mnt_ns"], ns);
    // A failed mount, in bcc's layout with libbpf-tools' -t.
    let text = tool(&[
        "mountsnoop",
        "-t",
        "--",
        "unshare",
        "-m",
        "/bin/sh",
        "-c",
        &format!("mount -t perfkit-nofs x {target} 2>/dev/null; true"),
    ]);
    let head = text.lines().next().unwrap();
    assert!(head.starts_with("TIME(s)") && head.trim_end().ends_with("CALL"), "{text}");
    let line = text.lines().find(|l| l.contains("perfkit-nofs")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&format!("mount(\"x\", \"{target}\", \"perfkit-nofs\", ")) && line.ends_with("= -ENODEV"),
        "{line}"
    );
}

#[test]
fn capable_sees_cap_sys_admin_or_names_the_missing_kprobes() {
    let Some(_serial) = privileged() else { return };
    let kprobes = Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
        || Path::new("/sys/kernel/tracing/kprobe_events").exists()
        || Path::new("/sys/kernel/debug/tracing/kprobe_events").exists();
    if !kprobes {
        let out = run(perfkit().args(["capable", "-d", "1"]));
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("kprobes (CONFIG_KPROBES)") && err.contains("cap_capable"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        return;
    }
    let out = tool(&["capable", "--json", "-x", "--", "unshare", "-n", "true"]);
    let events = json_lines(&out);
    assert!(events.iter().any(|e| e["name"] == "CAP_SYS_ADMIN" && e["cap"] == 21 && e["comm"] == "unshare"), "{out}");
}

#[test]
fn serve_counts_connects_accepts_and_oom_kills() {
    let Some(_serial) = privileged() else { return };
    const N: usize = 12;
    let (_serve, sport) = serve(&["--probes", "tcpconnect,tcpaccept,oomkill"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        if let Some(b) = http_get(sport, "/metrics") {
            break b;
        }
        assert!(Instant::now() < deadline, "serve --probes never answered");
        thread::sleep(Duration::from_millis(200));
    };
    let value = |metrics: &str, series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    };
    for (name, kind) in [
        ("perfkit_tcp_connects_total", "counter"),
        ("perfkit_tcp_accepts_total", "counter"),
        ("perfkit_oom_kills_total", "counter"),
    ] {
        assert!(before.contains(&format!("# HELP {name} ")), "{name}: {before}");
        assert!(before.contains(&format!("# TYPE {name} {kind}")), "{name}");
    }
    let (port, srv) = server();
    connect_n(port, N);
    let hog = build_c("cc", "memhog.c", "memhog", &["-O1"]);
    let group = MemoryGroup::new(32 << 20);
    let status = group.run(&hog, "512");
    assert!(ended_by(status, libc::SIGKILL) || status.code() == Some(137), "{status}");
    thread::sleep(Duration::from_millis(300));
    // Past the metrics cache.
    thread::sleep(Duration::from_millis(1100));
    let after = http_get(sport, "/metrics").unwrap();
    drop(srv);
    let connects = format!("perfkit_tcp_connects_total{{port=\"{port}\"}}");
    let accepts = format!("perfkit_tcp_accepts_total{{port=\"{port}\"}}");
    assert_eq!(value(&after, &connects), N as u64, "{after}");
    assert_eq!(value(&after, &accepts), N as u64, "{after}");
    assert_eq!(value(&after, "perfkit_oom_kills_total") - value(&before, "perfkit_oom_kills_total"), 1, "{after}");
    if tools(&["promtool"]) {
        assert_promtool_accepts(&after);
    }
}
