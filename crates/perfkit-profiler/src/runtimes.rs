//! Runtimes that generate code (the JVM, Node, CPython, .NET): getting
//! their JIT symbols before symbolizing, and saying what to do when their
//! frames stay unnamed.

use std::{collections::HashMap, time::Duration};

use perfkit_model::raw::RawSample;
use perfkit_symbols::SymbolizeReport;
use perfkit_target::{
    HeldCommand,
    jvm::{AttachError, Jvm},
};

use crate::notes::{Note, Runtime};

/// The most sampled processes looked at for a JVM.
const MAX_PROCESSES: usize = 64;
/// The longest a JVM is given to write its perf map.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest all JVMs together are given.
const ATTACH_TOTAL: Duration = Duration::from_secs(15);

/// What was learnt about the sampled processes' runtimes before
/// symbolizing.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// JVMs that did not give their perf map, and why.
    jvm_failures: HashMap<u32, String>,
}

/// Asks every sampled JVM for its perf map, as `jcmd PID Compiler.perfmap`
/// does. A JVM perfkit started that writes its map at exit
/// (`-XX:+DumpPerfMapAtExit`) and could not be asked is ended first, so
/// that the map it writes then is read. Returns notes, and what the hints
/// after symbolizing need.
pub(crate) fn before_symbolizing(
    samples: &[RawSample],
    command: &mut Option<HeldCommand>,
    exit: &mut Option<perfkit_target::ExitStatus>,
    notes: &mut Vec<Note>,
) -> Prepared {
    let mut prepared = Prepared::default();
    let started = std::time::Instant::now();
    for pid in by_samples(samples).into_iter().take(MAX_PROCESSES) {
        let Some(jvm) = Jvm::detect(pid) else { continue };
        let left = ATTACH_TOTAL.saturating_sub(started.elapsed());
        let result = if left.is_zero() {
            Err(AttachError::NoListener(Duration::ZERO))
        } else {
            jvm.request_perf_map(left.min(ATTACH_TIMEOUT))
        };
        match result {
            Ok(()) => notes.push(Note::JvmPerfMapWritten { pid }),
            Err(e) => {
                let ours = command.as_ref().is_some_and(|c| c.pid() == pid);
                if ours && jvm.dumps_map_at_exit && exit.is_none() {
                    // It writes its map when it exits: end it now, not
                    // after symbolizing.
                    if let Some(c) = command.as_mut()
                        && let Ok(status) = c.terminate(crate::COMMAND_GRACE)
                    {
                        *exit = Some(status);
                        *command = None;
                        notes.push(Note::JvmEndedForPerfMap { pid, why: e.to_string() });
                        continue;
                    }
                }
                prepared.jvm_failures.insert(pid, e.to_string());
            }
        }
    }
    prepared
}

/// Sampled processes, the most sampled first.
fn by_samples(samples: &[RawSample]) -> Vec<u32> {
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for s in samples.iter().filter(|s| s.tgid != 0) {
        *counts.entry(s.tgid).or_default() += s.count;
    }
    let mut pids: Vec<(u32, u64)> = counts.into_iter().collect();
    pids.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    pids.into_iter().map(|(p, _)| p).collect()
}

fn runtime_of(pid: u32, process: &str) -> Runtime {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let exe_name = exe.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let name = exe_name.as_deref().unwrap_or(process);
    let libs = mapped_libraries(pid);
    if libs.iter().any(|l| l == "libjvm.so") || name == "java" {
        return Runtime::Jvm;
    }
    if name == "node" || name == "nodejs" || libs.iter().any(|l| l.starts_with("libnode.so")) {
        return Runtime::Node;
    }
    if libs.iter().any(|l| l == "libcoreclr.so") || name == "dotnet" {
        return Runtime::DotNet;
    }
    let python = |n: &str| {
        let rest = n.strip_prefix("libpython").or_else(|| n.strip_prefix("python"))?;
        let version = rest.split(".so").next().unwrap_or(rest).trim_end_matches(['d', 'm', 't']);
        let mut parts = version.split('.');
        let major = parts.next().filter(|p| !p.is_empty())?.parse().ok()?;
        let minor = parts.next().and_then(|p| p.parse().ok());
        Some(minor.map(|m| (major, m)))
    };
    if let Some(v) = libs.iter().find_map(|l| python(l)).or_else(|| python(name)) {
        return Runtime::Python(v);
    }
    Runtime::Other
}

/// Whether the target runs CPython: a command whose program is python or
/// links libpython, or processes that map libpython or run python.
pub(crate) fn is_cpython_target(program: Option<&std::path::Path>, pids: &[u32]) -> bool {
    let python = |name: &str| name.starts_with("libpython3") || name.starts_with("python3");
    let named = |p: &std::path::Path| p.file_name().is_some_and(|n| python(&n.to_string_lossy()));
    if let Some(program) = program {
        return crate::choose::program_files(program).iter().any(|f| named(f));
    }
    pids.iter().take(MAX_PROCESSES).any(|&pid| matches!(runtime_of(pid, ""), Runtime::Python(_)))
}

/// Whether the target runs a JVM: a command whose program is `java` or
/// links libjvm.so, or processes that map libjvm.so or run `java`.
pub(crate) fn is_jvm_target(program: Option<&std::path::Path>, pids: &[u32]) -> bool {
    if let Some(program) = program {
        let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        return name(program).as_deref() == Some("java")
            || crate::choose::program_files(program).iter().any(|f| name(f).as_deref() == Some("libjvm.so"));
    }
    pids.iter().take(MAX_PROCESSES).any(|&pid| runtime_of(pid, "") == Runtime::Jvm)
}

/// The file names of a process's mapped libraries (bounded).
fn mapped_libraries(pid: u32) -> Vec<String> {
    use std::io::BufRead;
    let Ok(maps) = std::fs::File::open(format!("/proc/{pid}/maps")) else { return Vec::new() };
    let mut libs: Vec<String> = std::io::BufReader::new(maps)
        .lines()
        .take(1 << 16)
        .map_while(Result::ok)
        .filter_map(|l| l.rsplit('/').next().filter(|n| n.contains(".so")).map(str::to_owned))
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// After symbolizing: for each process whose generated code stayed
/// unnamed, or whose interpreter's frames show no functions, a note naming
/// the runtime, the share of its samples affected and the exact fix.
pub(crate) fn hints(
    samples: &[RawSample],
    modules: &perfkit_target::Modules,
    report: &SymbolizeReport,
    prepared: &Prepared,
    notes: &mut Vec<Note>,
) {
    let process_names: HashMap<u32, &str> = samples
        .iter()
        .map(|s| (s.tgid, if s.process.is_empty() { s.comm.as_str() } else { s.process.as_str() }))
        .collect();
    let name_of = |pid: u32| process_names.get(&pid).copied().unwrap_or("?");
    let read: std::collections::HashSet<u32> =
        report.perf_maps_read.iter().chain(&report.jitdumps_read).map(|&(p, _)| p).collect();
    for &(pid, unnamed, total) in &report.jit_unnamed {
        if unnamed * 100 < total {
            continue;
        }
        let runtime = runtime_of(pid, name_of(pid));
        notes.push(Note::JitUnnamed {
            pid,
            process: name_of(pid).to_owned(),
            share_percent: 100.0 * unnamed as f64 / total.max(1) as f64,
            jvm_failure: if runtime == Runtime::Jvm { prepared.jvm_failures.get(&pid).cloned() } else { None },
            map_read: read.contains(&pid),
            runtime,
        });
    }
    // A JVM without a perf map (JDK 11 to 16, or attaching failed) whose
    // compiled methods were named from its code cache: say where the
    // names came from.
    let mut failed: Vec<(&u32, &String)> = prepared.jvm_failures.iter().collect();
    failed.sort_unstable();
    for (&pid, why) in failed {
        let unnamed = notes.iter().any(|n| matches!(n, Note::JitUnnamed { pid: p, .. } if *p == pid));
        let blobs = modules.code_names.get(&pid).map_or(0, |n| n.len());
        if !unnamed && blobs > 0 {
            notes.push(Note::JvmNamedFromCodeCache { pid, why: why.clone(), blobs });
        }
    }
    // CPython without perf support: its samples show the interpreter's
    // loop, not Python functions, and no map is written.
    let mut per_pid: HashMap<u32, u64> = HashMap::new();
    let interpreted: std::collections::HashSet<u32> =
        samples.iter().filter(|s| !s.interpreted.is_empty()).map(|s| s.tgid).collect();
    for s in samples.iter().filter(|s| s.tgid != 0 && !read.contains(&s.tgid) && !interpreted.contains(&s.tgid)) {
        *per_pid.entry(s.tgid).or_default() += s.count;
    }
    let total: u64 = samples.iter().map(|s| s.count).sum();
    let mut pids: Vec<(u32, u64)> = per_pid.into_iter().filter(|&(_, n)| n * 100 >= total.max(1)).collect();
    pids.sort_unstable();
    for (pid, n) in pids.into_iter().take(MAX_PROCESSES) {
        let runtime = runtime_of(pid, name_of(pid));
        if let Runtime::Python(version) = runtime {
            notes.push(Note::PythonUnnamed {
                pid,
                process: name_of(pid).to_owned(),
                share_percent: 100.0 * n as f64 / total.max(1) as f64,
                version,
            });
        }
    }
}
