//! bcc's flags, each against a known answer: the filters (a user, a
//! command name, an argument, a parent, a thread, ports, address
//! families) shown to keep exactly the events they name and drop the
//! others, the columns and units shown where bcc shows them, and the
//! verbose flag showing the BPF load. Each test carries the markers
//! `// bcc-flags: TOOL FLAGS` that `every_accepted_bcc_flag_is_exercised_by_a_marked_test`
//! (src/bcc_flags.rs) reads.

use std::{
    fs,
    io::Write,
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    tools::{json_lines, stop_tool, tool},
    util::*,
};

/// `setpriv` as the user nobody (65534) with its group: the exec that
/// follows is that user's.
const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

/// Whether `line` is a clock time, HH:MM:SS.
fn is_hms(line: &str) -> bool {
    let b = line.trim().as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && b.iter().enumerate().all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
}

/// A shell started now, waiting for a line on its stdin before it runs
/// `script`: a process that exists before a tool starts (so `-p` of
/// another process does not follow it as a child started later).
fn held_shell(shell: &str, script: &str) -> Killed {
    Killed(
        Command::new(shell)
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn release(shell: &mut Killed) {
    shell.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = shell.0.wait().unwrap();
    assert!(status.success(), "the held shell: {status}");
}

#[test]
fn verbose_flag_shows_the_bpf_load_on_every_tool() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: offcpu -v
    // bcc-flags: runqlat -v
    // bcc-flags: biolatency -v
    // bcc-flags: biosnoop -v
    // bcc-flags: syscount -v
    // bcc-flags: execsnoop -v
    // bcc-flags: opensnoop -v
    // bcc-flags: tcplife -v
    // bcc-flags: tcpretrans -v
    // bcc-flags: tcpconnect -v
    // bcc-flags: mountsnoop -v
    // bcc-flags: hardirqs -v
    // bcc-flags: softirqs -v
    // bcc-flags: runqlen -v
    // bcc-flags: funclatency -v
    let dir = scratch_dir();
    let folded = dir.path().join("off.folded");
    let folded = folded.to_str().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["offcpu", "-v", "-f", "folded", "-o", folded, "--", "sleep", "0.2"],
        vec!["runqlat", "-v", "--", "true"],
        vec!["biolatency", "-v", "1", "1"],
        vec!["biosnoop", "-v", "--duration", "1"],
        vec!["syscount", "-v", "--", "true"],
        vec!["execsnoop", "-v", "--", "true"],
        vec!["opensnoop", "-v", "--", "true"],
        vec!["tcplife", "-v", "--duration", "1"],
        vec!["tcpretrans", "-v", "--duration", "1"],
        vec!["tcpconnect", "-v", "--", "true"],
        vec!["mountsnoop", "-v", "--", "true"],
        vec!["hardirqs", "-v", "1", "1"],
        vec!["softirqs", "-v", "1", "1"],
        vec!["runqlen", "-v", "1", "1"],
        vec!["funclatency", "-v", "c:getppid", "--", "true"],
    ];
    // All at once: each waits a second or runs `true`.
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            let child = perfkit().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
            (args, child)
        })
        .collect();
    for (args, child) in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("loaded the BPF object") && err.contains("programs="), "{args:?}: {err}");
    }
    // Without -v, no log line.
    let out = run(perfkit().args(["runqlat", "--", "true"]));
    assert!(out.status.success() && !stderr(&out).contains("loaded the BPF object"), "{}", stderr(&out));
}

#[test]
fn execsnoop_filters_by_user_argument_and_parent_and_quotes() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["setpriv"]) {
        return;
    }
    // bcc-flags: execsnoop -u -q -x
    // -u 65534: only nobody's execs (setpriv's own exec is root's); -x:
    // its failed exec too; -q: each argument in quotes.
    let script = format!(
        "{AS_NOBODY} /bin/echo 'a b' c > /dev/null; /bin/true root-exec; {AS_NOBODY} /nonexistent-pk-x 2>/dev/null; true"
    );
    let out = tool(&["execsnoop", "-x", "-q", "-u", "65534", "--", "/bin/sh", "-c", &script]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].starts_with("echo ") && rows[0].ends_with(" 0 \"/bin/echo\" \"a b\" \"c\""), "{out}");
    let failed: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(failed[0], "setpriv", "{out}");
    assert_eq!(failed[3], "-2", "{out}");
    assert!(rows[1].contains("\"/nonexistent-pk-x\""), "{out}");

    // bcc-flags: execsnoop -l
    // -l: execs with an argument containing the word (the shell's own
    // script holds it too).
    let out = tool(&[
        "execsnoop",
        "-l",
        "needle",
        "--json",
        "--",
        "/bin/sh",
        "-c",
        "/bin/true needle-1; /bin/true hay; /bin/echo xneedlex > /dev/null",
    ]);
    let events = json_lines(&out);
    let args: Vec<String> = events.iter().map(|e| e["args"][1].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(args, ["-c", "needle-1", "xneedlex"], "{events:?}");

    // bcc-flags: execsnoop -P
    // -P: execs by children of one shell only, not by this process's.
    let mut shell = held_shell("/bin/sh", "/bin/true from-the-shell; true");
    let ppid = shell.0.id().to_string();
    let (snoop, snoop_out) = start_tool(&["execsnoop", "--json", "-P", &ppid], "Tracing execs");
    assert!(Command::new("/bin/true").arg("from-the-test").status().unwrap().success());
    release(&mut shell);
    thread::sleep(Duration::from_millis(500));
    let events = json_lines(&stop_tool(snoop, snoop_out));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["args"], serde_json::json!(["/bin/true", "from-the-shell"]), "{events:?}");
    assert_eq!(events[0]["ppid"].to_string(), ppid);
}

#[test]
fn opensnoop_filters_by_user_name_process_and_thread_and_stops_after_its_duration() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["setpriv"]) {
        return;
    }
    let dir = scratch_dir();
    let f = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (f1, f2, f3) = (f("by-nobody-cat"), f("by-root-cat"), f("by-nobody-head"));
    for p in [&f1, &f2, &f3] {
        fs::write(p, "x\n").unwrap();
    }
    // bcc-flags: opensnoop -T -U -u -n
    // -u 65534 -n cat: the opens of cat run as nobody only (not root's
    // cat, not nobody's head, not setpriv's); -T a seconds column, -U the
    // UID column.
    let script = format!(
        "{AS_NOBODY} cat {f1} > /dev/null 2>&1; cat {f2} > /dev/null; {AS_NOBODY} head {f3} > /dev/null 2>&1; true"
    );
    let out = tool(&["opensnoop", "-T", "-U", "-u", "65534", "-n", "cat", "--", "/bin/sh", "-c", &script]);
    let mut lines = out.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head[..4], ["TIME(s)", "UID", "PID", "COMM"], "{out}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().any(|r| r.last() == Some(&f1.as_str())), "{out}");
    for r in &rows {
        assert!(r[0].parse::<f64>().is_ok() && r[1] == "65534" && r[3] == "cat", "{out}");
        assert!(r.last() != Some(&f2.as_str()) && r.last() != Some(&f3.as_str()), "{out}");
    }

    // bcc-flags: opensnoop -p -t -d
    // -t: one thread of this process; -p: this process (not a process it
    // started before); both stop by themselves after -d 3.
    let (fa, fb, fc) = (f("thread-a"), f("thread-main"), f("other-process"));
    for p in [&fa, &fb, &fc] {
        fs::write(p, "x\n").unwrap();
    }
    let mut other = held_shell("/bin/sh", &format!("cat {fc} > /dev/null"));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let fa2 = fa.clone();
    let opener = thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        go_rx.recv().unwrap();
        fs::read(&fa2).unwrap();
    });
    let tid = tid_rx.recv().unwrap().to_string();
    let me = std::process::id().to_string();
    let started = Instant::now();
    let (by_tid, by_tid_out) = start_tool(&["opensnoop", "--json", "-t", &tid, "-d", "3"], "Tracing opens");
    let (by_pid, by_pid_out) = start_tool(&["opensnoop", "--json", "-p", &me, "-d", "3"], "Tracing opens");
    go_tx.send(()).unwrap();
    opener.join().unwrap();
    fs::read(&fb).unwrap();
    release(&mut other);
    let ended = |mut t: Killed, out: thread::JoinHandle<String>| {
        let status = t.0.wait().unwrap();
        assert!(status.success(), "{status}");
        json_lines(&out.join().unwrap())
    };
    let (tid_events, pid_events) = (ended(by_tid, by_tid_out), ended(by_pid, by_pid_out));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(20), "{elapsed:?}");
    let paths = |ev: &[Value]| -> Vec<String> {
        ev.iter()
            .filter_map(|e| e["path"].as_str())
            .filter(|p| p.starts_with(dir.path().to_str().unwrap()))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(paths(&tid_events), std::slice::from_ref(&fa), "{tid_events:?}");
    assert!(
        tid_events.iter().all(|e| e["tid"].as_i64().map(|t| t.to_string()).as_ref() == Some(&tid)),
        "{tid_events:?}"
    );
    assert_eq!(paths(&pid_events), [fa, fb], "{pid_events:?}");
}

/// A loopback listener on `addr` that reads each connection to its end,
/// then answers 100 bytes: sessions with bytes both ways.
fn echo_server(addr: &str, sessions: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while Instant::now() < deadline && served < sessions {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut got = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut s, &mut got);
                    let _ = s.write_all(&[b'r'; 100]);
                    served += 1;
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (port, handle)
}

/// One session to `addr`: 1000 bytes out, the answer back; the client's
/// local port.
fn session(addr: SocketAddr) -> u16 {
    let mut c = TcpStream::connect(addr).unwrap();
    let port = c.local_addr().unwrap().port();
    c.write_all(&[b's'; 1000]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut c, &mut back).unwrap();
    port
}

#[test]
fn tcp_tools_filter_by_port_family_and_process() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["bash"]) {
        return;
    }
    let (p4, srv4) = echo_server("127.0.0.1:0", 2);
    let (p6, srv6) = echo_server("[::1]:0", 1);
    let me = std::process::id().to_string();
    // Another process's session to the IPv4 server, by the user nobody,
    // from a shell started before the tools (so -p of this process does
    // not follow it); setpriv and the inner bash keep its pid.
    let mut other = held_shell(
        "bash",
        &format!("exec {AS_NOBODY} bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p4}; echo hi >&3; exec 3>&-'"),
    );
    let other_pid = other.0.id();
    let (l4, l6) = (p4.to_string(), p6.to_string());
    let ports = format!("{p4},{p6}");
    // bcc-flags: tcplife -L -D -4 -6 -p -T -t -w
    let (local, local_out) = start_tool(&["tcplife", "--json", "-L", &ports], "Tracing");
    let (remote, remote_out) = start_tool(&["tcplife", "--json", "-D", &l4], "Tracing");
    let (v4, v4_out) = start_tool(&["tcplife", "--json", "-4", "-D", &ports], "Tracing");
    let (v6, v6_out) = start_tool(&["tcplife", "--json", "-6"], "Tracing");
    let (text, text_out) = start_tool(&["tcplife", "-T", "-t", "-w", "-p", &me], "Tracing");
    // bcc-flags: tcpconnect -t -U -6 -p
    let (conn, conn_out) = start_tool(&["tcpconnect", "-t", "-U", "-6", "-p", &me], "Tracing connect");
    // bcc-flags: tcpconnect -u
    let (by_uid, by_uid_out) = start_tool(&["tcpconnect", "--json", "-u", "65534", "-P", &ports], "Tracing connect");
    // bcc-flags: tcpaccept -6 -p
    let (acc, acc_out) = start_tool(&["tcpaccept", "--json", "-6", "-p", &me], "Tracing accept");
    let c4 = session(SocketAddr::from(([127, 0, 0, 1], p4)));
    let c6 = session(SocketAddr::from((Ipv6Addr::LOCALHOST, p6)));
    release(&mut other);
    srv4.join().unwrap();
    srv6.join().unwrap();
    thread::sleep(Duration::from_millis(800));
    let (local, remote) = (json_lines(&stop_tool(local, local_out)), json_lines(&stop_tool(remote, remote_out)));
    let (v4, v6) = (json_lines(&stop_tool(v4, v4_out)), json_lines(&stop_tool(v6, v6_out)));
    let text = stop_tool(text, text_out);
    let conn = stop_tool(conn, conn_out);
    let acc = json_lines(&stop_tool(acc, acc_out));
    let by_uid = json_lines(&stop_tool(by_uid, by_uid_out));
    let pair = |e: &Value| (e["local_port"].as_u64().unwrap() as u16, e["remote_port"].as_u64().unwrap() as u16);
    let pairs = |ev: &[Value]| -> Vec<(u16, u16)> {
        let mut v: Vec<(u16, u16)> = ev.iter().map(pair).collect();
        v.sort_unstable();
        v
    };
    // -L the servers' ports: the three server ends (the other process's
    // session too), not the clients'.
    let server_ends = pairs(&local);
    assert_eq!(server_ends.len(), 3, "{local:?}");
    assert!(server_ends.contains(&(p4, c4)) && server_ends.contains(&(p6, c6)), "{local:?}");
    assert!(server_ends.iter().all(|(l, _)| *l == p4 || *l == p6), "{local:?}");
    // -D the IPv4 server's port: the two IPv4 clients' ends.
    let client_ends = pairs(&remote);
    assert_eq!(client_ends.len(), 2, "{remote:?}");
    assert!(client_ends.contains(&(c4, p4)) && client_ends.iter().all(|(_, r)| *r == p4), "{remote:?}");
    // -4 (with -D both ports): the IPv4 clients only; -6: both ends of
    // the IPv6 session and nothing else.
    assert_eq!(pairs(&v4), client_ends, "{v4:?}");
    assert!(v4.iter().all(|e| e["local_addr"] == "127.0.0.1"), "{v4:?}");
    let mut want6 = vec![(c6, p6), (p6, c6)];
    want6.sort_unstable();
    assert_eq!(pairs(&v6), want6, "{v6:?}");
    assert!(v6.iter().all(|e| e["local_addr"] == "::1"), "{v6:?}");
    // -p this process: its four ends, not the other process's own end
    // (the server end of that session is this process's if it was
    // closed here, not in the other's softirq); -T the time, -t seconds;
    // -w addresses in 39 columns.
    let other_port = client_ends.iter().find(|(l, _)| *l != c4).unwrap().0.to_string();
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("TIME     TIME(s)"), "{text}");
    assert!(head.contains(&format!("{:<39} {:>5}", "LADDR", "LPORT")), "{text}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    for r in &rows {
        assert!(is_hms(r[0]) && r[1].parse::<f64>().is_ok() && r[2] == me && r[5] != other_port, "{text}");
    }
    for end in [(c4, p4), (p4, c4), (c6, p6), (p6, c6)] {
        let (l, r) = (end.0.to_string(), end.1.to_string());
        assert!(rows.iter().any(|row| row[5] == l && row[7] == r), "{end:?}: {text}");
    }
    assert!(rows.len() <= 5, "{text}");
    // tcpconnect -6 -p: this process's one IPv6 connect; -t seconds, -U
    // the UID.
    let mut lines = conn.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head[..3], ["TIME(s)", "UID", "PID"], "{conn}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 1, "{conn}");
    assert!(rows[0][0].parse::<f64>().is_ok() && rows[0][1] == "0" && rows[0][2] == me, "{conn}");
    assert!(rows[0].contains(&"::1") && rows[0].last() == Some(&l6.as_str()), "{conn}");
    // tcpconnect -u 65534: nobody's connect only.
    assert_eq!(by_uid.len(), 1, "{by_uid:?}");
    assert_eq!((by_uid[0]["uid"].as_u64(), by_uid[0]["pid"].as_u64()), (Some(65534), Some(other_pid.into())));
    // tcpaccept -6 -p: the IPv6 accept, by this process.
    assert_eq!(acc.len(), 1, "{acc:?}");
    assert_eq!((acc[0]["local_port"].as_u64(), acc[0]["remote_port"].as_u64()), (Some(p6.into()), Some(c6.into())));
    assert_eq!(acc[0]["pid"].to_string(), me);
}

/// A tun device routing an IPv4 and an IPv6 test network nowhere: SYNs
/// sent there are retransmitted.
struct Blackhole;

impl Blackhole {
    fn new() -> Self {
        let _ = Command::new("ip").args(["tuntap", "del", "dev", "pkblack1", "mode", "tun"]).status();
        for args in [
            &["tuntap", "add", "dev", "pkblack1", "mode", "tun"][..],
            &["link", "set", "pkblack1", "up"],
            &["route", "add", "203.0.113.0/24", "dev", "pkblack1"],
            &["-6", "route", "add", "2001:db8:7::/48", "dev", "pkblack1"],
        ] {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        }
        Blackhole
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["tuntap", "del", "dev", "pkblack1", "mode", "tun"]).status();
    }
}

#[test]
fn tcpretrans_counts_by_flow_and_filters_by_family() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: tcpretrans -c -4 -6
    let _hole = Blackhole::new();
    let (counts, counts_out) = start_tool(&["tcpretrans", "-c", "--json", "-4"], "Tracing");
    let (v4, v4_out) = start_tool(&["tcpretrans", "--json", "-4"], "Tracing");
    let (v6, v6_out) = start_tool(&["tcpretrans", "--json", "-6"], "Tracing");
    // Two unanswered connects at once: the first SYN retransmission
    // comes after 1 s.
    let attempts: Vec<_> = ["203.0.113.7:4242", "[2001:db8:7::7]:4243"]
        .into_iter()
        .map(|a| {
            let addr: SocketAddr = a.parse().unwrap();
            thread::spawn(move || TcpStream::connect_timeout(&addr, Duration::from_millis(2500)).is_err())
        })
        .collect();
    for a in attempts {
        assert!(a.join().unwrap(), "a connect into the black hole succeeded");
    }
    thread::sleep(Duration::from_millis(300));
    let report = json_lines(&stop_tool(counts, counts_out));
    let (v4, v6) = (json_lines(&stop_tool(v4, v4_out)), json_lines(&stop_tool(v6, v6_out)));
    let to = |ev: &[Value], addr: &str| -> usize {
        ev.iter().filter(|e| e["remote_addr"] == addr && e["error"] == 0).count()
    };
    let n4 = to(&v4, "203.0.113.7");
    assert!(n4 >= 1, "{v4:?}");
    assert!(v4.iter().all(|e| !e["local_addr"].as_str().unwrap().contains(':')), "-4 showed IPv6: {v4:?}");
    assert!(to(&v6, "2001:db8:7::7") >= 1, "{v6:?}");
    assert!(v6.iter().all(|e| e["local_addr"].as_str().unwrap().contains(':')), "-6 showed IPv4: {v6:?}");
    // -c: one row per flow, as many retransmissions as the events of
    // that flow, and no IPv6 flow under -4.
    let flows = report.last().unwrap()["by_flow"].as_array().unwrap().clone();
    let hole: Vec<&Value> = flows.iter().filter(|f| f["remote"] == "203.0.113.7:4242").collect();
    assert_eq!(hole.len(), 1, "{flows:?}");
    assert_eq!(hole[0]["retransmissions"].as_u64(), Some(n4 as u64), "{flows:?} against {v4:?}");
    assert!(
        flows
            .iter()
            .all(|f| !f["remote"].as_str().unwrap().starts_with('[')
                && !f["remote"].as_str().unwrap().starts_with("2001")),
        "{flows:?}"
    );
}

#[test]
fn offcpu_selects_a_process_a_thread_and_a_state() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: offcpu -p -t --state -m
    let bin = build_c("cc", "sleeper.c", "sleeper", &["-O1", "-pthread", "-fno-omit-frame-pointer"]);
    let sleeper = Killed(Command::new(&bin).arg("8").spawn().unwrap());
    let pid = sleeper.0.id().to_string();
    // The napper thread, once named.
    let deadline = Instant::now() + Duration::from_secs(5);
    let napper = loop {
        let found = fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten().find_map(|t| {
            let comm = fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim() == "napper").then(|| t.file_name().to_string_lossy().into_owned())
        });
        if let Some(tid) = found {
            break tid;
        }
        assert!(Instant::now() < deadline, "no napper thread");
        thread::sleep(Duration::from_millis(20));
    };
    let dir = scratch_dir();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let runs: Vec<(String, Vec<String>)> = [
        ("pid", vec!["-p", &pid]),
        ("tid", vec!["-t", &napper]),
        ("interruptible", vec!["-p", &pid, "--state", "interruptible"]),
        ("uninterruptible", vec!["-p", &pid, "--state", "uninterruptible"]),
        // bcc's unit: microseconds.
        ("long-blocks", vec!["-p", &pid, "-m", "50000"]),
    ]
    .into_iter()
    .map(|(name, sel)| (out(name), sel.into_iter().map(str::to_owned).collect()))
    .collect();
    let children: Vec<_> = runs
        .iter()
        .map(|(o, sel)| {
            perfkit()
                .args(["offcpu", "-d", "2", "-f", "folded", "-o", o])
                .args(sel)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut totals = Vec::new();
    for ((o, sel), child) in runs.iter().zip(children) {
        let res = child.wait_with_output().unwrap();
        let stacks = if Path::new(o).exists() { read_folded(Path::new(o)) } else { Vec::new() };
        assert!(res.status.success() || stacks.is_empty(), "{sel:?}: {}", String::from_utf8_lossy(&res.stderr));
        let total: u64 = stacks.iter().map(|(_, c)| c).sum();
        let naps: u64 = stacks.iter().filter(|(s, _)| s.contains("take_nap")).map(|(_, c)| c).sum();
        totals.push((total, naps, stacks));
    }
    drop(sleeper);
    // -p: the napper's 2 s, and the main thread's wait in pthread_join
    // if it is counted before it ends (the spinner never blocks); nothing
    // of the machine's other threads.
    let (total, naps, stacks) = &totals[0];
    assert!((1_500_000..=4_400_000).contains(total), "-p: {total} us off CPU in 2 s: {stacks:?}");
    assert!(*naps >= 1_500_000, "-p: naps {naps} us");
    // -t the napper: its naps only.
    let (total, naps, stacks) = &totals[1];
    assert!((1_500_000..=2_200_000).contains(naps) && naps == total, "-t: {naps} of {total} us: {stacks:?}");
    // nanosleep and pthread_join sleep interruptibly: all of -p's time is
    // in that state, none uninterruptible.
    let (total, naps, _) = &totals[2];
    assert!(*total >= 1_500_000 && *naps >= 1_500_000, "--state interruptible: {total} us");
    let (total, _, stacks) = &totals[3];
    assert!(*total < 50_000, "--state uninterruptible: {total} us: {stacks:?}");
    // -m 50000: blocks of 50 ms and more only, not the 10 ms naps (a few
    // may be stretched that long on a busy machine).
    let (_, naps, stacks) = &totals[4];
    assert!(*naps < 300_000, "-m 50000: {naps} us of naps: {stacks:?}");
}

#[test]
fn runqlat_per_thread_per_namespace_one_process_and_milliseconds() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "sleeper.c", "sleeper", &["-O1", "-pthread", "-fno-omit-frame-pointer"]);
    // bcc-flags: runqlat -L
    // -L: one histogram per thread, named: the napper wakes 100 times a
    // second.
    let out = tool(&["runqlat", "-L", "--json", "--", bin.to_str().unwrap(), "1"]);
    let hists = json_lines(&out).last().unwrap()["histograms"].as_array().unwrap().clone();
    let napper = hists.iter().find(|h| h["per"]["comm"] == "napper").unwrap_or_else(|| panic!("{hists:?}"));
    assert!(napper["count"].as_u64().unwrap() >= 50, "{napper}");
    let mut tids: Vec<u64> = hists.iter().map(|h| h["per"]["tid"].as_u64().unwrap()).collect();
    tids.sort_unstable();
    tids.dedup();
    assert!(tids.len() >= 2 && tids.len() == hists.len(), "{hists:?}");
    // bcc-flags: runqlat --pidnss
    // --pidnss: unshare in this namespace, the shell it forks in a new one.
    let ours = fs::metadata("/proc/self/ns/pid").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let out =
        tool(&["runqlat", "--pidnss", "--json", "--", "unshare", "-p", "-f", "/bin/sh", "-c", "sleep 0.1; sleep 0.1"]);
    let hists = json_lines(&out).last().unwrap()["histograms"].as_array().unwrap().clone();
    let nss: Vec<u64> = hists.iter().map(|h| h["per"]["pidns"].as_u64().unwrap()).collect();
    assert_eq!(nss.len(), 2, "{hists:?}");
    assert!(nss.contains(&ours) && nss.iter().any(|&n| n != ours), "ours {ours}: {hists:?}");
    // bcc-flags: runqlat -p
    // -p: that process's waits only (-P shows whose they are).
    let sleeper = Killed(Command::new(&bin).arg("4").spawn().unwrap());
    let pid = sleeper.0.id();
    thread::sleep(Duration::from_millis(100));
    let out = tool(&["runqlat", "-P", "-p", &pid.to_string(), "--json", "1", "1"]);
    let hists = json_lines(&out).last().unwrap()["histograms"].as_array().unwrap().clone();
    assert_eq!(hists.len(), 1, "{hists:?}");
    assert_eq!(hists[0]["per"]["pid"], pid, "{hists:?}");
    assert!(hists[0]["count"].as_u64().unwrap() >= 50, "{hists:?}");
    drop(sleeper);
    // bcc-flags: runqlat -T -m
    // -T the time of each interval, -m milliseconds.
    let out = tool(&["runqlat", "-T", "-m", "1", "1"]);
    assert!(out.lines().any(is_hms), "{out}");
    assert!(out.contains("msecs               : count     distribution"), "{out}");
}

#[test]
fn syscount_one_process_failed_calls_only_and_milliseconds() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: syscount -x
    // 200 opens of a missing file, each failing: -x counts them, and
    // none of the calls that succeed (brk, mmap, the execve).
    let script = "exec 2>/dev/null; i=0; while [ $i -lt 200 ]; do true < /nonexistent-pk-x; i=$((i+1)); done; true";
    let out = tool(&["syscount", "-x", "--json", "--", "/bin/sh", "-c", script]);
    let rows = json_lines(&out).last().unwrap()["rows"].as_array().unwrap().clone();
    let openat = rows.iter().find(|r| r["syscall"] == "openat").unwrap_or_else(|| panic!("{rows:?}"));
    let n = openat["count"].as_u64().unwrap();
    assert!(n >= 200, "{rows:?}");
    // Every call counted failed.
    assert!(rows.iter().all(|r| r["errors"] == r["count"]), "{rows:?}");
    for ok in ["brk", "mmap", "execve", "exit_group"] {
        assert!(rows.iter().all(|r| r["syscall"] != ok), "{ok} never fails: {rows:?}");
    }
    // bcc-flags: syscount -p
    // -p: one of two processes making getppid calls, exactly its 3000.
    let bin = build_c("cc", "syscalls.c", "syscalls", &["-O1", "-pthread", "-fno-omit-frame-pointer"]);
    let mut targets: Vec<Killed> = ["3000", "5000"]
        .into_iter()
        .map(|n| Killed(Command::new(&bin).args([n, "wait"]).stdin(Stdio::piped()).spawn().unwrap()))
        .collect();
    let pid = targets[0].0.id().to_string();
    let (sc, sc_out) = start_tool(&["syscount", "--json", "-p", &pid], "Tracing syscalls");
    for t in &mut targets {
        t.0.stdin.take().unwrap().write_all(b"x").unwrap();
    }
    for t in &mut targets {
        assert!(t.0.wait().unwrap().success());
    }
    thread::sleep(Duration::from_millis(300));
    let rows = json_lines(&stop_tool(sc, sc_out)).last().unwrap()["rows"].as_array().unwrap().clone();
    let getppid = rows.iter().find(|r| r["syscall"] == "getppid").unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(getppid["count"], 3000, "{rows:?}");
    // bcc-flags: syscount -m
    // -L -m: time in milliseconds.
    let out = tool(&["syscount", "-L", "-m", "--", "/bin/sh", "-c", script]);
    let head = out.lines().find(|l| l.starts_with("SYSCALL")).unwrap_or_else(|| panic!("{out}"));
    assert!(head.split_whitespace().eq(["SYSCALL", "COUNT", "TIME", "(ms)"]), "{out}");
}

#[test]
fn block_tools_one_disk_queued_time_and_milliseconds() {
    let Some(_serial) = privileged() else { return };
    let dir = tempfile::Builder::new().prefix("perfkit-bioflags-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dev = Loop::new(dir.path());
    // A scheduler, so that requests are inserted (queued) before issue.
    let _ = fs::write(format!("/sys/block/{}/queue/scheduler", dev.name()), "mq-deadline");
    thread::sleep(Duration::from_millis(300));
    const N: usize = 23;
    // bcc-flags: biosnoop -d -Q
    // bcc-flags: biolatency -Q -T -m
    let (snoop, snoop_out) = start_tool(&["biosnoop", "-Q", "-d", dev.name()], "Tracing");
    let (issued, issued_out) = start_tool(&["biolatency", "--json", "-D", "-F"], "Tracing block device I/O");
    let (queued, queued_out) = start_tool(&["biolatency", "--json", "-D", "-F", "-Q"], "Tracing block device I/O");
    let (text, text_out) = start_tool(&["biolatency", "-T", "-m"], "Tracing block device I/O");
    thread::sleep(Duration::from_millis(300));
    let dd = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", dev.0), "bs=4k", &format!("count={N}"), "oflag=direct"])
        .output()
        .unwrap();
    assert!(dd.status.success());
    // Other disks' I/O meanwhile, which -d leaves out.
    let mut f = fs::File::create(dir.path().join("other")).unwrap();
    f.write_all(&[7u8; 8192]).unwrap();
    f.sync_all().unwrap();
    thread::sleep(Duration::from_millis(500));
    // -d: the loop device's I/O only; -Q: the QUE(ms) column.
    let snooped = stop_tool(snoop, snoop_out);
    let mut lines = snooped.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head[7..], ["QUE(ms)", "LAT(ms)"], "{snooped}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 9 && r[3] == dev.name()), "-d: {snooped}");
    let writes = rows.iter().filter(|r| r[4] == "W" && r[6] == "4096").count();
    assert_eq!(writes, N, "{snooped}");
    assert!(rows.iter().all(|r| r[7].parse::<f64>().is_ok_and(|q| q >= 0.0)), "{snooped}");
    let on_loop = |report: &[Value]| -> (u64, f64) {
        let hists = report.last().unwrap()["histograms"].as_array().unwrap().clone();
        hists
            .iter()
            .filter(|h| {
                h["per"]["disk"] == dev.name() && h["per"]["flags"].as_str().is_some_and(|f| f.contains("Write"))
            })
            .fold((0, 0.0), |(c, s), h| (c + h["count"].as_u64().unwrap(), s + h["sum_usecs"].as_f64().unwrap()))
    };
    let (n_issued, t_issued) = on_loop(&json_lines(&stop_tool(issued, issued_out)));
    let (n_queued, t_queued) = on_loop(&json_lines(&stop_tool(queued, queued_out)));
    // The same writes; each timed from its insertion with -Q, no later
    // than its issue.
    assert_eq!((n_issued, n_queued), (N as u64, N as u64));
    // Two tools time the same I/O from their own programs: a microsecond
    // or two apart.
    assert!(t_queued + 2.0 * N as f64 >= t_issued, "-Q {t_queued} us, from issue {t_issued} us");
    let text = stop_tool(text, text_out);
    assert!(text.lines().any(is_hms), "{text}");
    assert!(text.contains("msecs               : count     distribution"), "{text}");
}

#[test]
fn mountsnoop_follows_one_process() {
    let Some(_serial) = privileged() else { return };
    // bcc-flags: mountsnoop -p
    let dir = scratch_dir();
    let target = dir.path().to_str().unwrap().to_owned();
    let script = |source: &str| {
        format!("unshare -m --propagation private /bin/sh -c 'mount -t tmpfs {source} {target} && umount {target}'")
    };
    let mut mine = held_shell("/bin/sh", &script("pk-selected"));
    let mut other = held_shell("/bin/sh", &script("pk-other"));
    let pid = mine.0.id().to_string();
    let (snoop, snoop_out) = start_tool(&["mountsnoop", "--json", "-p", &pid], "Tracing mount");
    release(&mut mine);
    release(&mut other);
    thread::sleep(Duration::from_millis(300));
    let events = json_lines(&stop_tool(snoop, snoop_out));
    // unshare's own mount (making / private) is the selected process's too.
    let mounts: Vec<&Value> = events.iter().filter(|e| e["call"] == "mount" && e["fstype"] == "tmpfs").collect();
    assert_eq!(mounts.len(), 1, "{events:?}");
    assert_eq!(mounts[0]["source"], "pk-selected", "{events:?}");
    assert!(events.iter().all(|e| e["source"] != "pk-other"), "{events:?}");
}
