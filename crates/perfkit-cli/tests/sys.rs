//! `perfkit sys` and `perfkit serve`, checked against sysstat (mpstat,
//! pidstat, iostat) and a real Prometheus server on the same live work.

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::*;

/// A process that burns one CPU until dropped.
struct Burner(Child);

impl Burner {
    fn start(seconds: u32) -> Self {
        Burner(Command::new(hotspots()).arg(seconds.to_string()).spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_output(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// perfkit's JSON lines.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// The value in column `name` of sysstat's `Average:` line whose first
/// field after `Average:` matches `key` (None: the first Average line).
fn sysstat_average(text: &str, name: &str, key: Option<&str>) -> f64 {
    // Column positions are the same in the timed and the Average lines
    // (pidstat prints no header of its own for the Average block).
    let header = text
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == name))
        .unwrap_or_else(|| panic!("no header with {name} in:\n{text}"));
    let col = header.split_whitespace().position(|w| w == name).unwrap();
    let row = text
        .lines()
        .filter(|l| l.starts_with("Average:") && *l != header)
        .find(|l| key.is_none_or(|k| l.split_whitespace().nth(1) == Some(k)))
        .unwrap_or_else(|| panic!("no Average row for {key:?} in:\n{text}"));
    row.split_whitespace().nth(col).unwrap().parse().unwrap()
}

#[test]
fn a_process_burning_one_cpu_shows_100_percent_like_pidstat() {
    if !tools(&["pidstat", "mpstat", "iostat"]) {
        return;
    }
    let _serial = serial();
    let burner = Burner::start(20);
    let pid = burner.pid().to_string();
    thread::sleep(Duration::from_millis(300));
    let ours = spawn_output(perfkit().args(["sys", "proc", "-p", &pid, "1", "3", "--json"]));
    let theirs = spawn_output(Command::new("pidstat").args(["-u", "-p", &pid, "1", "3"]).env("LC_ALL", "C"));
    let ours = json_lines(&finish(ours, "perfkit sys proc"));
    let theirs = finish(theirs, "pidstat");
    assert_eq!(ours.len(), 4, "3 reports and the average");
    let avg = ours.last().unwrap();
    assert_eq!(avg["average"], true);
    let row = &avg["processes"][0];
    assert_eq!(row["pid"], burner.pid());
    let our_cpu = row["cpu_percent"].as_f64().unwrap();
    let their_cpu = sysstat_average(&theirs, "%CPU", None);
    assert!((90.0..=101.0).contains(&our_cpu), "perfkit: {our_cpu} %CPU");
    assert!((our_cpu - their_cpu).abs() <= 5.0, "perfkit {our_cpu} vs pidstat {their_cpu}");
    for report in &ours[..3] {
        let cpu = report["processes"][0]["cpu_percent"].as_f64().unwrap();
        assert!((85.0..=105.0).contains(&cpu), "an interval shows {cpu}");
    }
}

#[test]
fn one_busy_cpu_of_two_shows_like_mpstat() {
    if !tools(&["pidstat", "mpstat", "iostat"]) {
        return;
    }
    let _serial = serial();
    let _burner = Burner::start(20);
    thread::sleep(Duration::from_millis(300));
    let ours = spawn_output(perfkit().args(["sys", "cpu", "1", "3", "--json"]));
    let theirs = spawn_output(Command::new("mpstat").args(["-P", "ALL", "1", "3"]).env("LC_ALL", "C"));
    let ours = json_lines(&finish(ours, "perfkit sys cpu"));
    let theirs = finish(theirs, "mpstat");
    let all = &ours.last().unwrap()["cpus"][0];
    assert_eq!(all["cpu"], "all");
    let cpus = ours.last().unwrap()["cpus"].as_array().unwrap().len() - 1;
    let our_busy = 100.0 - all["idle_percent"].as_f64().unwrap();
    let their_busy = 100.0 - sysstat_average(&theirs, "%idle", Some("all"));
    // At least one of N CPUs busy (more when something else runs too).
    let expected = 100.0 / cpus as f64;
    assert!(our_busy >= expected - 10.0, "perfkit: {our_busy} % busy, expected at least about {expected}");
    assert!((our_busy - their_busy).abs() <= 8.0, "perfkit {our_busy} vs mpstat {their_busy} % busy");
    // The columns add up to 100.
    let sum: f64 = [
        "usr_percent",
        "nice_percent",
        "sys_percent",
        "iowait_percent",
        "irq_percent",
        "soft_percent",
        "steal_percent",
        "idle_percent",
    ]
    .iter()
    .map(|k| all[*k].as_f64().unwrap())
    .sum();
    assert!((sum - 100.0).abs() < 0.1, "{sum}");
}

/// The block device holding `path`, as diskstats names it.
fn disk_of(path: &Path) -> String {
    let out = run(Command::new("df").arg("--output=source").arg(path));
    let source = String::from_utf8(out.stdout).unwrap().lines().nth(1).unwrap().trim().to_owned();
    let name = source.trim_start_matches("/dev/").to_owned();
    // A partition (vda1, nvme0n1p2) reports its writes on the whole disk.
    let sys = Path::new("/sys/class/block").join(&name);
    if sys.join("partition").exists() {
        let parent =
            fs::canonicalize(&sys).unwrap().parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        return parent;
    }
    name
}

/// iostat's cumulative kB written to `disk`.
fn iostat_kb_written(disk: &str) -> f64 {
    let out = run(Command::new("iostat").args(["-d", "-k", disk]).env("LC_ALL", "C"));
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().find(|l| l.starts_with("Device")).unwrap();
    let col = header.split_whitespace().position(|w| w == "kB_wrtn").unwrap();
    let row = text.lines().find(|l| l.split_whitespace().next() == Some(disk)).unwrap();
    row.split_whitespace().nth(col).unwrap().parse().unwrap()
}

#[test]
fn a_known_write_shows_in_disk_and_process_io_like_iostat_and_pidstat() {
    if !tools(&["pidstat", "mpstat", "iostat"]) {
        return;
    }
    let _serial = serial();
    // Write 64 MiB to the real disk (not tmpfs), synced, after a pause, from
    // a process that lives on after it so that both samples see it.
    let dir = tempfile::Builder::new().prefix("perfkit-io-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = dir.path().join("data");
    let disk = disk_of(dir.path());
    let script = format!(
        "import os, time\ntime.sleep(1.5)\nfd = os.open({:?}, os.O_WRONLY | os.O_CREAT)\nbuf = b'x' * (1 << 20)\n\
         for _ in range(64): os.write(fd, buf)\nos.fsync(fd)\nos.close(fd)\ntime.sleep(4)\n",
        file.display().to_string()
    );
    let mut writer = Command::new("python3").args(["-c", &script]).spawn().unwrap();
    let pid = writer.id().to_string();
    let iostat_before = iostat_kb_written(&disk);
    let rec = dir.path().join("io.rec");
    let recorder = spawn_output(perfkit().args(["sys", "record", "0.5", "11", "-o"]).arg(&rec));
    let ours = spawn_output(perfkit().args(["sys", "proc", "-p", &pid, "1", "5", "--json"]));
    let theirs = spawn_output(Command::new("pidstat").args(["-d", "-p", &pid, "1", "5"]).env("LC_ALL", "C"));
    let ours = json_lines(&finish(ours, "perfkit sys proc"));
    let theirs = finish(theirs, "pidstat");
    finish(recorder, "perfkit sys record");
    let iostat_after = iostat_kb_written(&disk);
    writer.wait().unwrap();

    // Process I/O: 65536 kB written over the run.
    let avg = &ours.last().unwrap();
    let written = avg["processes"][0]["write_kib_per_s"].as_f64().unwrap() * avg["interval_seconds"].as_f64().unwrap();
    assert!((65536.0 * 0.98..=65536.0 * 1.1).contains(&written), "perfkit: process wrote {written} kB");
    let pidstat_rate = sysstat_average(&theirs, "kB_wr/s", None);
    let our_rate = avg["processes"][0]["write_kib_per_s"].as_f64().unwrap();
    assert!(
        (our_rate - pidstat_rate).abs() <= 0.1 * pidstat_rate,
        "perfkit {our_rate} vs pidstat {pidstat_rate} kB_wr/s"
    );

    // Disk I/O, replayed from the recording: at least the 64 MiB, and the
    // same as iostat's count over about the same time.
    let report = run(perfkit().args(["sys", "report"]).arg(&rec).args(["disk", "--json"]));
    assert!(report.status.success());
    let intervals = json_lines(&String::from_utf8(report.stdout).unwrap());
    let disk_kb: f64 = intervals
        .iter()
        .filter(|r| r.get("average").is_none())
        .flat_map(|r| r["disks"].as_array().unwrap().clone())
        .filter(|d| d["device"] == disk.as_str())
        .map(|d| d["write_kib_per_s"].as_f64().unwrap() * 0.5)
        .sum();
    let iostat_kb = iostat_after - iostat_before;
    assert!(disk_kb >= 65536.0 * 0.95, "perfkit: {disk} wrote {disk_kb} kB");
    assert!(iostat_kb >= 65536.0 * 0.95, "iostat: {disk} wrote {iostat_kb} kB");
    assert!((disk_kb - iostat_kb).abs() <= 0.15 * iostat_kb, "perfkit {disk_kb} vs iostat {iostat_kb} kB");
}

#[test]
fn a_replayed_recording_gives_the_live_figures() {
    let dir = scratch_dir();
    let rec = dir.path().join("live.rec");
    for view in ["cpu", "mem", "disk", "net", "psi"] {
        let live = run(perfkit().args(["sys", view, "0.3", "3", "--json", "-o"]).arg(&rec));
        assert!(live.status.success());
        let replay = run(perfkit().args(["sys", "report"]).arg(&rec).args([view, "--json"]));
        assert!(replay.status.success(), "{view}");
        assert_eq!(
            String::from_utf8(replay.stdout).unwrap(),
            String::from_utf8(live.stdout).unwrap(),
            "{view}: the replay differs from the live run"
        );
    }
}

#[test]
fn ctrl_c_ends_a_recording_and_keeps_every_sample() {
    let dir = scratch_dir();
    let rec = dir.path().join("host.rec");
    let child = spawn_output(perfkit().args(["sys", "record", "0.2", "-o"]).arg(&rec));
    thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(ended_by(out.status, libc::SIGINT), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    let n: usize = err.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{err}"));
    assert!(n >= 5, "{n} samples in 1.5 s at 0.2 s");
    let report = run(perfkit().args(["sys", "report"]).arg(&rec).args(["proc", "--json"]));
    assert!(report.status.success());
    assert_eq!(String::from_utf8(report.stdout).unwrap().lines().count(), n, "n-1 intervals and the average");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = scratch_dir();
    let junk = dir.path().join("junk.rec");
    fs::write(&junk, "not a recording").unwrap();
    for (args, expect) in [
        (vec!["sys", "report", junk.to_str().unwrap()], "not a perfkit sys recording"),
        (vec!["sys", "report", "/nonexistent.rec"], "cannot read /nonexistent.rec"),
        (vec!["sys", "proc", "-p", "999999999", "1", "1"], "no process with PID 999999999"),
    ] {
        let out = run(perfkit().args(&args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(expect), "{}", stderr(&out));
    }
    for bad in [&["sys", "cpu", "0"][..], &["sys", "cpu", "abc"], &["sys", "cpu", "1", "0"], &["sys", "disk", "-1"]] {
        let out = run(perfkit().args(bad));
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    // A recording of one sample cannot make a report: one interval's
    // recording (two samples) cut inside its second sample.
    let one = dir.path().join("one.rec");
    assert!(run(perfkit().args(["sys", "record", "0.05", "1", "-o"]).arg(&one)).status.success());
    let len = fs::metadata(&one).unwrap().len();
    fs::OpenOptions::new().write(true).open(&one).unwrap().set_len(len - 8).unwrap();
    let out = run(perfkit().args(["sys", "report"]).arg(&one));
    assert!(stderr(&out).contains("holds 1 sample(s)"), "{}", stderr(&out));
}

/// `sys record` takes INTERVAL and COUNT as the views do: COUNT intervals,
/// replayed as the view with the same arguments prints them; the former
/// `-i`/`-c` are refused with the positional form named.
#[test]
fn record_takes_interval_and_count_like_the_views() {
    let dir = scratch_dir();
    let rec = dir.path().join("three.rec");
    let out = run(perfkit().args(["sys", "record", "0.1", "3", "-o"]).arg(&rec));
    assert!(out.status.success());
    assert!(stderr(&out).contains("recorded 4 samples"), "{}", stderr(&out));
    let replay = run(perfkit().args(["sys", "report"]).arg(&rec).args(["cpu", "--json"]));
    let live = run(perfkit().args(["sys", "cpu", "0.1", "3", "--json"]));
    let lines = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).lines().count();
    assert_eq!(lines(&replay), 4, "3 reports and the average");
    assert_eq!(lines(&replay), lines(&live), "the same reports as the view");
    for (args, form) in [
        (&["-i", "0.5", "-c", "11"][..], "perfkit sys record 0.5 10 -o FILE"),
        (&["-i", "2"], "perfkit sys record 2 -o FILE"),
        (&["-c", "4"], "perfkit sys record 1 3 -o FILE"),
    ] {
        let out = run(perfkit().args(["sys", "record"]).args(args).arg("-o").arg(dir.path().join("x.rec")));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(form), "{args:?}: {}", stderr(&out));
        assert!(!dir.path().join("x.rec").exists(), "nothing written");
    }
}

#[test]
fn prometheus_scrapes_perfkit_serve() {
    if !tools(&["prometheus", "promtool"]) {
        return;
    }
    let dir = scratch_dir();
    let me = std::process::id();
    let (serve, port) = serve(&["-p", &me.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Some(body) = http_get(port, "/metrics") {
            break body;
        }
        assert!(Instant::now() < deadline, "perfkit serve did not answer");
        thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.contains(&format!("perfkit_process_cpu_seconds_total{{pid=\"{me}\"")), "{metrics}");
    assert!(metrics.contains("perfkit_build_info{version="), "{metrics}");
    assert!(metrics.contains("perfkit_scrape_collector_success{collector=\"procfs\"} 1"), "{metrics}");
    assert!(!metrics.contains("00000001"), "no f32 noise: {metrics}");

    // promtool accepts the exposition.
    assert_promtool_accepts(&metrics);

    // A real Prometheus scrapes it.
    let (_prom, prom_port) = start_prometheus(dir.path(), port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let query = "/api/v1/query?query=sum(perfkit_cpu_seconds_total)";
    loop {
        if let Some(body) = http_get(prom_port, query) {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(first) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                let secs: f64 = first["value"][1].as_str().unwrap().parse().unwrap();
                assert!(secs > 0.0, "{body}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never had perfkit_cpu_seconds_total");
        thread::sleep(Duration::from_millis(500));
    }
    let body = http_get(prom_port, "/api/v1/query?query=up%7Bjob%3D%22perfkit%22%7D").unwrap();
    assert!(body.contains("\"1\"]"), "the target is up: {body}");
    let body =
        http_get(prom_port, &format!("/api/v1/query?query=perfkit_process_threads%7Bpid%3D%22{me}%22%7D")).unwrap();
    assert!(body.contains(&format!("\"pid\":\"{me}\"")), "{body}");
    drop(serve);
}

/// Clock times follow the local time zone (`TZ`, else /etc/localtime), as
/// sysstat's do: a sample taken now reads as UTC's time with `TZ=UTC`, and
/// nine hours later with `TZ=Asia/Tokyo` (no daylight saving time).
#[test]
fn clock_times_follow_the_time_zone() {
    let dir = scratch_dir();
    let rec = dir.path().join("tz.rec");
    let utc_now = || {
        let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        s % 86_400
    };
    let before = utc_now();
    assert!(run(perfkit().args(["sys", "record", "0.1", "1", "-o"]).arg(&rec)).status.success());
    let after = utc_now();
    let time_of = |tz: &str| -> u64 {
        let out = run(perfkit().env("TZ", tz).args(["sys", "report"]).arg(&rec).arg("psi"));
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let hms = text.lines().find(|l| l.contains("resource")).unwrap().split_whitespace().next().unwrap().to_owned();
        let f: Vec<u64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        f[0] * 3600 + f[1] * 60 + f[2]
    };
    let utc = time_of("UTC");
    let tokyo = time_of("Asia/Tokyo");
    // Across midnight, `after` wraps: compare on the 24-hour circle.
    let within = |t: u64, lo: u64, hi: u64| if lo <= hi { (lo..=hi + 1).contains(&t) } else { t >= lo || t <= hi + 1 };
    assert!(within(utc, before, after), "UTC {utc} s of the day, recorded between {before} and {after}");
    assert_eq!(tokyo, (utc + 9 * 3600) % 86_400, "Tokyo is UTC+9");
}
