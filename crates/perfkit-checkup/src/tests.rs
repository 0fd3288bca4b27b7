//! The rules on synthetic observations: each fires on its case, and none on
//! a quiet host.

use crate::{
    observe::{
        CpuBusy, CpuModes, DiskInterval, InterfaceInterval, Interval, MemoryInterval, Observations, PressureShares,
        ProcessUsage, TcpInterval,
    },
    *,
};

const GIB: u64 = 1 << 20; // in KiB

/// A quiet two-CPU host for `n` one-second intervals: 3% busy, one
/// runnable task (the observer), half the memory available, an idle disk
/// and interface.
fn quiet(n: usize) -> Observations {
    let interval = |k: usize| Interval {
        end_seconds: (k + 1) as f64,
        seconds: 1.0,
        cpu: CpuModes { usr_percent: 2.0, sys_percent: 1.0, idle_percent: 97.0, ..CpuModes::default() },
        per_cpu: vec![busy(0, 4.0), busy(1, 2.0)],
        runnable: 1,
        blocked: 0,
        load_1m: 0.1,
        context_switches_per_s: 300.0,
        pressure: Some(PressureShares { cpu_some_percent: 0.5, ..PressureShares::default() }),
        memory: MemoryInterval { available_kib: 4 * GIB, cache_kib: 2 * GIB, ..MemoryInterval::default() },
        disks: vec![DiskInterval {
            device: "vda".into(),
            util_percent: 1.0,
            await_ms: 0.5,
            queue_size: 0.01,
            iops: 3.0,
            kib_per_s: 20.0,
        }],
        interfaces: vec![InterfaceInterval {
            iface: "eth0".into(),
            rx_kib_per_s: 2.0,
            tx_kib_per_s: 1.0,
            util_percent: Some(0.01),
            errors_per_s: 0.0,
            drops_per_s: 0.0,
        }],
        tcp: Some(TcpInterval { segments_out_per_s: 20.0, ..TcpInterval::default() }),
    };
    Observations {
        duration_seconds: n as f64,
        cpus: 2,
        memory_total_kib: 8 * GIB,
        intervals: (0..n).map(interval).collect(),
        processes: vec![
            proc(100, "sshd", 1.0),
            proc(200, "cron", 0.5),
            ProcessUsage { write_kib_per_s: 20.0, ..proc(300, "journald", 0.5) },
        ],
        ..Observations::default()
    }
}

fn busy(cpu: u32, busy_percent: f64) -> CpuBusy {
    CpuBusy { cpu, busy_percent }
}

fn proc(pid: u32, comm: &str, cpu: f64) -> ProcessUsage {
    ProcessUsage { pid, comm: comm.into(), cpu_percent: cpu, wait_percent: Some(0.0), ..ProcessUsage::default() }
}

fn run(obs: &Observations) -> Findings {
    analyze(obs, &Thresholds::default())
}

fn top(f: &Findings) -> &Finding {
    f.findings.first().unwrap_or_else(|| panic!("no finding: {f:#?}"))
}

#[test]
fn a_quiet_host_has_no_finding() {
    let f = run(&quiet(10));
    assert!(f.findings.is_empty(), "{:#?}", f.findings);
    assert_eq!(f.worst(), None);
    let resources: Vec<&str> = f.summary.iter().map(|l| l.resource.name()).collect();
    assert_eq!(resources, ["cpu", "memory", "disk", "network", "process"]);
}

#[test]
fn no_observations_no_findings_no_panic() {
    let f = run(&Observations::default());
    assert!(f.findings.is_empty() && f.summary.is_empty());
}

#[test]
fn cpu_saturation_names_the_busy_program() {
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        i.cpu = CpuModes { usr_percent: 99.0, sys_percent: 1.0, ..CpuModes::default() };
        i.per_cpu = vec![busy(0, 100.0), busy(1, 100.0)];
        i.runnable = 5; // four burners and the observer
        i.pressure.as_mut().unwrap().cpu_some_percent = 98.0;
    }
    obs.processes =
        (0..4).map(|k| ProcessUsage { wait_percent: Some(50.0), ..proc(1000 + k, "burner", 49.0) }).collect();
    obs.processes.push(proc(100, "sshd", 1.0));
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Cpu, Kind::Saturation, Severity::Critical));
    let runnable = t.evidence.iter().find(|e| e.metric == "runnable_per_cpu").unwrap();
    assert_eq!((runnable.value, runnable.warning, runnable.critical), (2.0, Some(1.0), Some(2.0)));
    assert_eq!(t.culprits.len(), 4, "sshd's 0.5% share is below the culprit threshold");
    // Each copy runnable all the time (49% running, 50% waiting) of the
    // four runnable tasks' time.
    assert!(t.culprits.iter().all(|c| c.comm == "burner" && c.share_percent == 24.75), "{:#?}", t.culprits);
    // Utilization's shares are of the CPU time.
    assert!(f.findings[1].culprits.iter().all(|c| c.share_percent == 24.5));
    assert_eq!(t.next[0], "perfkit profile -p 1000 -d 30");
    // Utilization comes after saturation at the same severity.
    assert_eq!((f.findings[1].resource, f.findings[1].kind), (Resource::Cpu, Kind::Utilization));
}

#[test]
fn one_hot_cpu_is_found_where_the_average_hides_it() {
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        i.cpu = CpuModes { usr_percent: 50.0, idle_percent: 50.0, ..CpuModes::default() };
        i.per_cpu = vec![busy(0, 1.0), busy(1, 99.5)];
    }
    obs.processes.push(proc(4242, "single", 99.0));
    let f = run(&obs);
    assert_eq!(f.findings.len(), 1, "{:#?}", f.findings);
    let t = top(&f);
    assert_eq!((t.kind, t.object.as_deref(), t.severity), (Kind::Utilization, Some("cpu1"), Severity::Critical));
    assert_eq!(t.culprits[0].pid, 4242);
}

#[test]
fn steal_is_cpu_saturation_without_culprits() {
    let mut obs = quiet(4);
    for i in &mut obs.intervals {
        i.cpu.steal_percent = 12.0;
        i.cpu.idle_percent = 85.0;
    }
    let t = run(&obs).findings.remove(0);
    assert_eq!((t.kind, t.severity), (Kind::Saturation, Severity::Warning));
    assert_eq!(t.evidence[0].metric, "cpu_steal_percent");
}

#[test]
fn memory_pressure_names_the_faulting_process() {
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        i.memory.major_faults_per_s = 2500.0;
        let p = i.pressure.as_mut().unwrap();
        p.memory_some_percent = 40.0;
        p.memory_full_percent = 20.0;
    }
    obs.processes.push(ProcessUsage { major_faults_per_s: 2400.0, ..proc(777, "reader", 20.0) });
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Saturation, Severity::Critical));
    assert_eq!(t.culprits[0].comm, "reader");
    assert_eq!(t.culprits[0].share_percent, 100.0);
}

#[test]
fn low_available_memory_is_utilization() {
    let mut obs = quiet(3);
    for i in &mut obs.intervals {
        i.memory.available_kib = GIB / 2; // 6.25% of 8 GiB
    }
    let t = run(&obs).findings.remove(0);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Utilization, Severity::Warning));
    assert!(t.evidence[0].lower_is_worse);
}

#[test]
fn swapping_is_memory_saturation() {
    let mut obs = quiet(3);
    for i in &mut obs.intervals {
        i.memory.swap_in_kib_per_s = 40.0;
    }
    let t = run(&obs).findings.remove(0);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Saturation, Severity::Warning));
}

#[test]
fn disk_saturation_names_the_writer_and_the_device() {
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        i.disks[0] = DiskInterval {
            device: "vda".into(),
            util_percent: 99.0,
            await_ms: 80.0,
            queue_size: 12.0,
            iops: 150.0,
            kib_per_s: 600.0,
        };
        i.pressure.as_mut().unwrap().io_some_percent = 60.0;
    }
    obs.processes.push(ProcessUsage { write_kib_per_s: 580.0, io_delay_percent: 90.0, ..proc(55, "writer", 3.0) });
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Disk, Kind::Saturation, Severity::Critical));
    assert_eq!(t.culprits[0].comm, "writer");
    assert!(f.findings.iter().any(|x| x.kind == Kind::Utilization && x.object.as_deref() == Some("vda")));
}

#[test]
fn interface_errors_and_tcp_retransmits() {
    let mut obs = quiet(5);
    for i in &mut obs.intervals {
        i.interfaces[0].errors_per_s = 5.0;
        i.tcp = Some(TcpInterval { segments_out_per_s: 100.0, retransmits_per_s: 8.0, ..TcpInterval::default() });
    }
    let f = run(&obs);
    let kinds: Vec<(Resource, Kind, Option<&str>, Severity)> =
        f.findings.iter().map(|x| (x.resource, x.kind, x.object.as_deref(), x.severity)).collect();
    assert_eq!(
        kinds,
        [
            (Resource::Network, Kind::Errors, Some("tcp"), Severity::Critical),
            (Resource::Network, Kind::Errors, Some("eth0"), Severity::Warning),
        ]
    );
    assert_eq!(f.findings[0].next, ["perfkit tcpretrans"]);
}

#[test]
fn few_retransmits_on_little_traffic_are_not_judged() {
    let mut obs = quiet(5);
    for i in &mut obs.intervals {
        i.tcp = Some(TcpInterval { segments_out_per_s: 2.0, retransmits_per_s: 0.2, ..TcpInterval::default() });
    }
    assert!(run(&obs).findings.is_empty());
}

#[test]
fn listen_overflows_are_network_saturation() {
    let mut obs = quiet(5);
    obs.intervals[2].tcp.as_mut().unwrap().listen_overflows_per_s = 3.0;
    let t = run(&obs).findings.remove(0);
    assert_eq!((t.resource, t.kind, t.object.as_deref()), (Resource::Network, Kind::Saturation, Some("tcp")));
}

#[test]
fn interface_utilization_needs_a_known_speed() {
    let mut obs = quiet(5);
    for i in &mut obs.intervals {
        i.interfaces[0].util_percent = Some(95.0);
    }
    assert_eq!(run(&obs).findings[0].severity, Severity::Critical);
    for i in &mut obs.intervals {
        i.interfaces[0].util_percent = None;
    }
    assert!(run(&obs).findings.is_empty());
}

#[test]
fn with_a_scope_a_finding_without_culprit_in_it_is_info() {
    // The host is saturated by others; the processes in scope are quiet.
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        i.cpu = CpuModes { usr_percent: 100.0, ..CpuModes::default() };
        i.runnable = 9;
    }
    obs.scope_pids = vec![4000];
    obs.processes = vec![proc(4000, "sleeper", 0.1)];
    let f = run(&obs);
    assert!(!f.findings.is_empty());
    assert_eq!(f.worst(), Some(Severity::Info));
    assert!(f.findings.iter().all(|x| x.note.is_some()));
}

#[test]
fn findings_and_observations_serialize() {
    let obs = quiet(2);
    let json = serde_json::to_value(&obs).unwrap();
    assert_eq!(json["intervals"][0]["cpu"]["usr_percent"], 2.0);
    let mut busy = quiet(2);
    busy.intervals[0].memory.swap_out_kib_per_s = 5000.0;
    let f = serde_json::to_value(run(&busy)).unwrap();
    assert_eq!(f["findings"][0]["resource"], "memory");
    assert_eq!(f["findings"][0]["kind"], "saturation");
    assert_eq!(f["findings"][0]["severity"], "critical");
}

#[test]
fn observations_from_captured_snapshots() {
    // Two hand-made procstat samples one second apart.
    use perfkit_procstat::sample::*;
    let sample = |uptime: f64, busy: u64, idle: u64, utime: u64| Sample {
        uptime,
        ticks_per_second: 100,
        page_size: 4096,
        cpu: Some(CpuStat {
            total: CpuTicks { user: busy, idle, ..CpuTicks::default() },
            per_cpu: vec![
                (0, CpuTicks { user: busy, ..CpuTicks::default() }),
                (1, CpuTicks { idle, ..CpuTicks::default() }),
            ],
            procs_running: 2,
            ..CpuStat::default()
        }),
        memory: Some(Memory { total: 8 << 30, available: 4 << 30, ..Memory::default() }),
        vmstat: Some(VmCounters::default()),
        processes: vec![Process { pid: 9, comm: "spin".into(), start_ticks: 5, utime, ..Process::default() }],
        ..Sample::default()
    };
    let snaps =
        [Snapshot::new(sample(100.0, 1000, 1000, 500), None), Snapshot::new(sample(101.0, 1100, 1100, 600), None)];
    let obs = Observations::from_snapshots(&snaps, &[]).unwrap();
    assert_eq!((obs.duration_seconds, obs.cpus, obs.intervals.len()), (1.0, 2, 1));
    let i = &obs.intervals[0];
    assert_eq!((i.cpu.usr_percent, i.cpu.idle_percent), (50.0, 50.0));
    assert_eq!(i.per_cpu, [busy(0, 100.0), busy(1, 0.0)]);
    assert_eq!(obs.processes.len(), 1);
    assert_eq!((obs.processes[0].comm.as_str(), obs.processes[0].cpu_percent), ("spin", 100.0));
}

#[test]
fn waiting_tasks_in_scope_are_culprits_of_saturation_on_a_shared_host() {
    // Eleven runnable tasks for two CPUs; the four in scope get 9% of a CPU
    // each and wait the rest: each is one of the eleven runnable tasks.
    let mut obs = quiet(5);
    for i in &mut obs.intervals {
        i.cpu = CpuModes { usr_percent: 100.0, ..CpuModes::default() };
        i.runnable = 12;
    }
    obs.scope_pids = (1..=4).collect();
    obs.processes = (1..=4).map(|pid| ProcessUsage { wait_percent: Some(90.0), ..proc(pid, "burner", 9.0) }).collect();
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.kind, t.severity, t.note.as_deref()), (Kind::Saturation, Severity::Critical, None));
    assert_eq!(t.culprits.len(), 4);
    assert!(t.culprits.iter().all(|c| c.share_percent == 9.0), "{:#?}", t.culprits);
    // Their CPU time alone is below the culprit threshold of utilization.
    let u = f.findings.iter().find(|x| x.kind == Kind::Utilization).unwrap();
    assert_eq!((u.severity, u.culprits.len()), (Severity::Info, 0));
}

#[test]
fn run_queue_latency_is_context_of_cpu_saturation() {
    use crate::observe::{LatencyBucket, LatencyHistogram};
    let mut obs = quiet(5);
    for i in &mut obs.intervals {
        i.runnable = 5;
    }
    obs.run_queue_latency = Some(LatencyHistogram {
        count: 1000,
        mean_usecs: 2500.0,
        p50_usecs: 4095,
        p99_usecs: 8191,
        buckets: vec![LatencyBucket { low_usecs: 2048, high_usecs: 4095, count: 1000 }],
    });
    let f = run(&obs);
    let t = top(&f);
    let p99 = t.evidence.iter().find(|e| e.metric == "runqlat_p99_usecs").unwrap();
    assert_eq!((p99.value, p99.warning), (8191.0, None));
    assert!(f.summary[0].line.contains("p99 under 8191 us"), "{}", f.summary[0].line);
}

#[test]
fn the_hottest_functions_close_the_cpu_line() {
    use crate::observe::{FunctionShare, OnCpuProfile};
    let mut obs = quiet(3);
    obs.on_cpu = Some(OnCpuProfile {
        frequency_hz: 19,
        samples: 200,
        top_functions: vec![
            FunctionShare { name: "spin".into(), samples: 150, percent: 75.0 },
            FunctionShare { name: "memcpy".into(), samples: 50, percent: 25.0 },
        ],
        stacks: Vec::new(),
    });
    let f = run(&obs);
    assert!(f.findings.is_empty());
    assert!(
        f.summary[0].line.ends_with("; on-CPU (200 samples at 19 Hz): spin 75.0%, memcpy 25.0%"),
        "{}",
        f.summary[0].line
    );
}

fn limited_group(path: &str, pids: &[u32]) -> crate::observe::CgroupMemoryUsage {
    crate::observe::CgroupMemoryUsage {
        path: path.into(),
        limit_kib: Some(65536),
        peak_kib: 65000,
        peak_working_set_kib: 4000,
        working_set_percent_of_limit: Some(6.1),
        pids: pids.to_vec(),
        ..Default::default()
    }
}

#[test]
fn a_limited_cgroup_at_rest_is_no_finding() {
    let mut obs = quiet(10);
    obs.cgroups.memory.push(limited_group("/app", &[100]));
    obs.cgroups.cpu.push(crate::observe::CgroupCpuUsage {
        path: "/app".into(),
        quota_cpus: Some(0.5),
        periods: 50,
        ..Default::default()
    });
    obs.kernel = Some(crate::observe::KernelLog::default());
    obs.oom_kills = Some(0);
    let f = run(&obs);
    assert!(f.findings.is_empty(), "{:#?}", f.findings);
    let resources: Vec<&str> = f.summary.iter().map(|l| l.resource.name()).collect();
    assert_eq!(resources, ["cpu", "memory", "disk", "network", "process", "kernel"]);
}

#[test]
fn page_cache_thrashing_in_a_cgroup_names_the_reader() {
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        i.pressure.as_mut().unwrap().memory_some_percent = 4.0;
        i.memory.refaults_per_s = 30000.0;
    }
    obs.processes.push(ProcessUsage { read_kib_per_s: 120_000.0, io_delay_percent: 60.0, ..proc(4242, "cat", 30.0) });
    obs.processes.push(proc(4243, "sleep", 0.0));
    obs.cgroups.memory_version = Some(crate::cgroup::Version::V1);
    obs.cgroups.memory.push(crate::observe::CgroupMemoryUsage {
        refaults_per_s: 29000.0,
        limit_hits: 3000,
        ..limited_group("/thrash", &[4242, 4243])
    });
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Saturation, Severity::Critical));
    assert_eq!(t.object.as_deref(), Some("/thrash"));
    assert_eq!((t.culprits[0].pid, t.culprits[0].comm.as_str()), (4242, "cat"));
    assert_eq!(t.culprits.len(), 1, "the idle member is no culprit: {:#?}", t.culprits);
    assert_eq!(t.cgroups[0].path, "/thrash");
    assert_eq!(t.cgroups[0].version, Some(crate::cgroup::Version::V1));
    assert_eq!(t.next[0], "perfkit offcpu -p 4242 -d 30");
    // Its working set is small: the cache is what thrashes, no utilization finding.
    assert!(!f.findings.iter().any(|f| f.kind == Kind::Utilization), "{:#?}", f.findings);
}

#[test]
fn a_cgroup_near_its_limit_is_utilization() {
    let mut obs = quiet(10);
    obs.cgroups.memory.push(crate::observe::CgroupMemoryUsage {
        peak_working_set_kib: 64000,
        working_set_percent_of_limit: Some(97.7),
        ..limited_group("/big", &[100])
    });
    let f = run(&obs);
    assert_eq!(f.findings.len(), 1, "{:#?}", f.findings);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Utilization, Severity::Warning));
    assert_eq!(t.cgroups[0].path, "/big");
    assert_eq!(t.culprits[0].comm, "sshd");
}

#[test]
fn a_throttled_cgroup_is_cpu_saturation_with_the_group_as_culprit() {
    let mut obs = quiet(10);
    obs.processes.push(proc(777, "spin", 10.0));
    obs.cgroups.cpu_version = Some(crate::cgroup::Version::V1);
    obs.cgroups.cpu.push(crate::observe::CgroupCpuUsage {
        path: "/capped".into(),
        quota_cpus: Some(0.1),
        periods: 100,
        throttled_periods: 99,
        throttled_percent: 99.0,
        throttled_seconds: 8.9,
        pids: vec![777],
    });
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Cpu, Kind::Saturation, Severity::Critical));
    assert_eq!(t.object.as_deref(), Some("/capped"));
    assert_eq!(t.cgroups[0].path, "/capped");
    assert_eq!((t.culprits[0].pid, t.culprits[0].share_percent), (777, 100.0));
    assert_eq!(t.next[0], "perfkit profile -p 777 -d 30");
}

fn message(seconds: f64, text: &str) -> crate::kmsg::KernelMessage {
    let record = format!("3,1,{},-;{text}", (seconds * 1e6) as u64);
    crate::kmsg::parse_record(record.as_bytes()).unwrap().1
}

#[test]
fn an_oom_kill_in_the_window_names_the_victim_and_its_cgroup() {
    let mut obs = quiet(10);
    obs.oom_kills = Some(1);
    let mut kill = message(1005.0, "Memory cgroup out of memory: Killed process 5151 (hog) total-vm:300000kB");
    kill.oom_memcg = Some("/boxed".into());
    obs.kernel =
        Some(crate::observe::KernelLog { window_start_seconds: 1000.0, during: vec![kill], ..Default::default() });
    obs.cgroups.memory.push(crate::observe::CgroupMemoryUsage { oom_kills: 1, ..limited_group("/boxed", &[]) });
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Errors, Severity::Critical));
    assert_eq!((t.culprits[0].pid, t.culprits[0].comm.as_str()), (5151, "hog"));
    assert_eq!(t.cgroups.len(), 1, "{:#?}", t.cgroups);
    assert_eq!(t.cgroups[0].path, "/boxed");
    assert!(t.title.contains("hog (5151)"), "{}", t.title);
    // The OOM kill is not also a generic kernel error.
    assert_eq!(f.findings.iter().filter(|f| f.severity > Severity::Info).count(), 1, "{:#?}", f.findings);
    // With -p of another process, it is context.
    obs.scope_pids = vec![100];
    assert_eq!(top(&run(&obs)).severity, Severity::Info);
}

#[test]
fn kernel_errors_during_the_window_and_before_it() {
    let mut obs = quiet(10);
    obs.kernel = Some(crate::observe::KernelLog {
        window_start_seconds: 10_000.0,
        during: vec![
            message(10_002.0, "INFO: task kworker/0:1:42 blocked for more than 120 seconds."),
            message(10_003.0, "loop0: detected capacity change"),
        ],
        before_errors: vec![message(100.0, "I/O error, dev sdb, sector 0 op 0x0:(READ)")],
        before_counts: [("io_error".to_string(), 1)].into(),
        ..Default::default()
    });
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Kernel, Kind::Errors, Severity::Critical));
    assert_eq!(t.object.as_deref(), Some("hung_task"));
    assert_eq!((t.culprits[0].pid, t.culprits[0].comm.as_str()), (42, "kworker/0:1"));
    // An error 9,900 s before the window: information.
    let before = f.findings.iter().find(|f| f.object.as_deref() == Some("before")).unwrap();
    assert_eq!(before.severity, Severity::Info);
    // Ten minutes before: a warning.
    obs.kernel.as_mut().unwrap().before_errors[0].seconds = 9_400.0;
    let f = run(&obs);
    let before = f.findings.iter().find(|f| f.object.as_deref() == Some("before")).unwrap();
    assert_eq!(before.severity, Severity::Warning);
    assert!(before.title.contains("600 s before"), "{}", before.title);
}

#[test]
fn host_memory_pressure_names_the_stalled_cgroup_and_its_reader() {
    let mut obs = quiet(10);
    for i in &mut obs.intervals {
        let p = i.pressure.as_mut().unwrap();
        p.memory_some_percent = 40.0;
        p.memory_full_percent = 20.0;
    }
    obs.processes.push(ProcessUsage { read_kib_per_s: 50_000.0, ..proc(4242, "reader", 20.0) });
    obs.cgroups.memory_version = Some(crate::cgroup::Version::V2);
    let stalled = |path: &str, psi: f64, pids: &[u32]| crate::observe::CgroupMemoryUsage {
        path: path.into(),
        psi_some_percent: Some(psi),
        pids: pids.to_vec(),
        ..Default::default()
    };
    // No limit anywhere: the host's memory is what is short. The parent
    // slice stalls because its child does.
    obs.cgroups.memory.push(stalled("/work.slice", 38.0, &[]));
    obs.cgroups.memory.push(stalled("/work.slice/job.scope", 36.0, &[4242]));
    obs.cgroups.memory.push(stalled("/system.slice", 1.0, &[100]));
    let f = run(&obs);
    let t = top(&f);
    assert_eq!((t.resource, t.kind, t.severity), (Resource::Memory, Kind::Saturation, Severity::Critical));
    let paths: Vec<&str> = t.cgroups.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["/work.slice/job.scope", "/system.slice"]);
    assert_eq!(t.cgroups[0].share_percent, 90.0);
    assert_eq!((t.culprits[0].pid, t.culprits.len()), (4242, 1));
    // Unlimited groups give no finding of their own.
    assert_eq!(f.findings.iter().filter(|f| f.resource == Resource::Memory).count(), 1, "{:#?}", f.findings);
}
