//! The collector on a captured /proc and /sys tree (tests/data/root), with
//! answers read off the captured files by hand.

#![allow(missing_docs)]

use std::path::PathBuf;

use perfkit_procstat::{CollectOptions, Collector, ProcessSelection, model, prometheus, text};

fn collector() -> Collector {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/root");
    Collector::with_root(root, 100, 4096)
}

#[test]
fn system_files_parse_to_the_captured_values() {
    let s = collector().collect(&CollectOptions::default()).unwrap();
    assert_eq!(s.uptime, 1978.02);
    let cpu = s.cpu.as_ref().unwrap();
    // cpu  81083 26 17893 294491 712 0 158 42 0 0
    assert_eq!((cpu.total.user, cpu.total.nice, cpu.total.system, cpu.total.idle), (81083, 26, 17893, 294491));
    assert_eq!((cpu.total.iowait, cpu.total.softirq, cpu.total.steal), (712, 158, 42));
    assert_eq!(cpu.per_cpu.len(), 2);
    assert_eq!(cpu.per_cpu[1].0, 1);
    assert_eq!(cpu.per_cpu[1].1.user, 42199);
    assert!(cpu.interrupts > 0 && cpu.context_switches > 0 && cpu.forks > 0);

    let m = s.memory.unwrap();
    assert_eq!(m.total, 24684092 * 1024);
    let l = s.load.unwrap();
    assert_eq!((l.one, l.runnable, l.total), (0.28, 1, 80), "the decimal the kernel wrote, not its f32");

    // Only whole disks (in sys/block): vda, not loop* or zram0.
    let names: Vec<&str> = s.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["vda"]);
    let vda = &s.disks[0];
    // 254 0 vda 188606 12119 11395410 267276 54171 51733 20109656 62699 0 15940 332132
    assert_eq!((vda.reads, vda.reads_merged, vda.sectors_read, vda.read_ms), (188606, 12119, 11395410, 267276));
    assert_eq!((vda.writes, vda.sectors_written, vda.io_ms, vda.weighted_io_ms), (54171, 20109656, 15940, 332132));

    let names: Vec<&str> = s.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "ifb0", "ifb1", "lo"]);
    let eth0 = &s.interfaces[0];
    assert_eq!((eth0.rx_bytes, eth0.rx_packets, eth0.tx_bytes, eth0.tx_packets), (514730571, 15897, 791401, 8838));
    assert_eq!(eth0.speed_mbps, Some(1000));
    assert_eq!(s.interfaces[3].speed_mbps, None, "no speed file for lo");

    let p = s.pressure.unwrap();
    // io: some total=6352283, full total=4312865
    assert_eq!(p.io.some.total_us, 6352283);
    assert_eq!(p.io.full.unwrap().total_us, 4312865);
    assert_eq!(p.io.some.avg10, 0.27);
    assert!(s.processes.is_empty() && s.cgroups.is_empty(), "not asked for");
}

#[test]
fn processes_threads_and_missing_io() {
    let mut opts = CollectOptions::default();
    opts.processes = ProcessSelection::All;
    let s = collector().collect(&opts).unwrap();
    let pids: Vec<u32> = s.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [1, 3636]);
    let py = &s.processes[1];
    // 3636 (python3) S ... minflt 2903 ... majflt 2 ... utime 1 stime 1 ...
    // num_threads 2 ... starttime 197803 vsize 92479488 rss 3349
    assert_eq!((py.comm.as_str(), py.state, py.minflt, py.majflt), ("python3", 'S', 2903, 2));
    assert_eq!((py.utime, py.stime, py.threads, py.start_ticks), (1, 1, 2, 197803));
    assert_eq!((py.vsize, py.rss), (92479488, 3349 * 4096));
    assert_eq!((py.voluntary_switches, py.involuntary_switches), (22, 4));
    assert_eq!(py.io.unwrap().read_bytes, 1003520);
    assert_eq!(py.io.unwrap().write_bytes, 8192);
    assert!(s.processes[0].io.is_none(), "/proc/1/io unreadable: no I/O figures, no error");

    opts.processes = ProcessSelection::Pids(vec![3636, 99999]);
    opts.threads = true;
    let s = collector().collect(&opts).unwrap();
    let tids: Vec<(u32, Option<u32>)> = s.processes.iter().map(|p| (p.pid, p.tid)).collect();
    assert_eq!(tids, [(3636, Some(3636)), (3636, Some(3678))], "a missing pid is skipped");

    // Since-boot rates: python3 started 1978.02 - 1978.03 s ago.
    let rows = model::processes(None, &s);
    assert_eq!(rows.len(), 2);
}

#[test]
fn cgroups_down_to_the_asked_depth() {
    let mut opts = CollectOptions::default();
    opts.cgroup_depth = 2;
    let s = collector().collect(&opts).unwrap();
    let paths: Vec<&str> = s.cgroups.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["/", "/system.slice", "/system.slice/app.service"]);
    let root = &s.cgroups[0];
    assert_eq!((root.usage_us, root.memory_bytes), (987654321, None));
    assert_eq!((root.io_read_bytes, root.io_write_bytes), (5834577920 + 4096, 10295123968));
    let app = &s.cgroups[2];
    assert_eq!((app.usage_us, app.user_us, app.memory_bytes), (1500000, 1000000, Some(73400320)));
    opts.cgroup_depth = 1;
    assert_eq!(collector().collect(&opts).unwrap().cgroups.len(), 2);
}

#[test]
fn exposition_of_the_captured_sample() {
    let mut opts = CollectOptions::default();
    opts.processes = ProcessSelection::Pids(vec![3636]);
    opts.cgroup_depth = 2;
    let mut out = perfkit_exposition::Writer::new();
    prometheus::write(&collector().collect(&opts).unwrap(), &mut out);
    let text = out.finish();
    assert!(text.contains("perfkit_cpu_seconds_total{cpu=\"1\",mode=\"user\"} 421.99\n"), "{text}");
    assert!(text.contains("perfkit_disk_written_bytes_total{device=\"vda\"} 10296143872\n"));
    assert!(text.contains("perfkit_network_receive_bytes_total{interface=\"eth0\"} 514730571\n"));
    assert!(text.contains("perfkit_pressure_some_stalled_seconds_total{resource=\"io\"} 6.352283\n"));
    assert!(text.contains("perfkit_process_written_bytes_total{pid=\"3636\",comm=\"python3\"} 8192\n"));
    assert!(text.contains("perfkit_cgroup_memory_bytes{cgroup=\"/system.slice/app.service\"} 73400320\n"));
    assert!(text.contains("perfkit_memory_total_bytes 25276510208\n"));
}

#[test]
fn the_cpu_table_of_the_captured_sample_is_mpstats() {
    // Since boot: each CPU's ticks in /proc/stat over its total, worked
    // out by hand (cpu  81083 26 17893 294491 712 0 158 42 0 0: user
    // 81083 / 394405 = 20.56 %).
    let s = collector().collect(&CollectOptions::default()).unwrap();
    let mut out = Vec::new();
    text::Reporter::new(text::View::Cpu, false).write_interval(&mut out, None, &s).unwrap();
    let time = text::clock_time(s.unix_ms);
    let expected = [
        "",
        "CPU  %usr %nice %sys %iowait %irq %soft %steal %guest %gnice %idle",
        "all 20.56  0.01 4.54    0.18 0.00  0.04   0.01   0.00   0.00 74.67",
        "  0 19.73  0.01 4.11    0.10 0.00  0.02   0.01   0.00   0.00 76.03",
        "  1 21.39  0.01 4.97    0.26 0.00  0.06   0.01   0.00   0.00 73.31",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| if i == 0 { String::new() } else { format!("{time:<10} {l}") })
    .collect::<Vec<_>>();
    assert_eq!(String::from_utf8(out).unwrap().lines().collect::<Vec<_>>(), expected);

    // The same report as a JSON line.
    let mut out = Vec::new();
    text::Reporter::new(text::View::Cpu, true).write_interval(&mut out, None, &s).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["cpus"][0]["usr_percent"], 20.56);
    assert_eq!(doc["cpus"][2]["idle_percent"], 73.31);
}

#[test]
fn a_missing_proc_is_a_clear_error() {
    let c = Collector::with_root("/nonexistent-root", 100, 4096);
    let err = c.collect(&CollectOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "cannot read /nonexistent-root/proc/uptime");
}

/// Two samples of the captured tree with fixed times: what the golden
/// recordings hold.
fn canonical_samples() -> Vec<perfkit_procstat::Sample> {
    let mut options = CollectOptions::default();
    options.processes = ProcessSelection::All;
    options.cgroup_depth = 2;
    let mut a = collector().collect(&options).unwrap();
    a.unix_ms = 1_790_000_000_000;
    // The golden recordings were made when load and pressure averages went
    // through f32 (as procfs-core parses them): they hold those values.
    let through_f32 = |x: &mut f64| *x = *x as f32 as f64;
    if let Some(l) = &mut a.load {
        for v in [&mut l.one, &mut l.five, &mut l.fifteen] {
            through_f32(v);
        }
    }
    if let Some(p) = &mut a.pressure {
        for r in [&mut p.cpu, &mut p.memory, &mut p.io] {
            for st in std::iter::once(&mut r.some).chain(r.full.as_mut()) {
                for v in [&mut st.avg10, &mut st.avg60, &mut st.avg300] {
                    through_f32(v);
                }
            }
        }
    }
    let mut b = a.clone();
    b.unix_ms += 1000;
    b.uptime += 1.0;
    vec![a, b]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn bless() -> bool {
    std::env::var_os("PERFKIT_BLESS").is_some_and(|v| v == "1")
}

/// The evolution rule of recordings: a change to the sample's layout must
/// bump the format version (and keep a reader for the old layout). This
/// golden encoding fails whenever the layout changes.
#[test]
fn the_sample_layout_is_frozen_for_this_format_version() {
    let encoded = postcard::to_stdvec(&canonical_samples()[0]).unwrap();
    let path = golden_path(&format!("sample-layout-v{}.postcard", perfkit_procstat::record::FORMAT_VERSION));
    if bless() {
        std::fs::write(&path, &encoded).unwrap();
    }
    let golden = std::fs::read(&path).unwrap();
    assert!(
        golden == encoded,
        "the recorded sample's layout changed: bump record::FORMAT_VERSION, keep a reader for the old layout, \
         and bless a new golden recording (PERFKIT_BLESS=1)"
    );
}

/// Recordings made by earlier perfkits keep reading.
#[test]
fn golden_recordings_of_every_version_read() {
    let samples = canonical_samples();
    let v2 = golden_path("recording-v2.rec");
    if bless() {
        let mut rec = perfkit_procstat::record::Recorder::new(Vec::new()).unwrap();
        for s in &samples {
            rec.push(s).unwrap();
        }
        std::fs::write(&v2, rec.into_inner()).unwrap();
        // Version 1, as perfkit 0.1 wrote it: header, then length and
        // payload per sample.
        let mut v1 = b"PERFKIT-SYS".to_vec();
        v1.extend(1u32.to_le_bytes());
        for s in &samples {
            let payload = postcard::to_stdvec(s).unwrap();
            v1.extend((payload.len() as u32).to_le_bytes());
            v1.extend(payload);
        }
        std::fs::write(golden_path("recording-v1.rec"), v1).unwrap();
    }
    for (name, version) in [("recording-v1.rec", 1), ("recording-v2.rec", 2)] {
        let data = std::fs::read(golden_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let rec = perfkit_procstat::record::read(&data[..]).unwrap();
        assert_eq!(rec.version, version);
        assert!(rec.corrupt.is_empty() && !rec.truncated, "{name}");
        assert_eq!(rec.samples, samples, "{name} reads back what was recorded");
    }
}
