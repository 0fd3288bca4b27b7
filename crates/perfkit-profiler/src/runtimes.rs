//! Runtimes that generate code (the JVM, Node, CPython, .NET): getting
//! their JIT symbols before symbolizing, and saying what to do when their
//! frames stay unnamed.

use std::{collections::HashMap, time::Duration};

use perfkit_profile::raw::RawSample;
use perfkit_symbols::SymbolizeReport;
use perfkit_target::{
    HeldCommand,
    jvm::{AttachError, Jvm},
};

use crate::session::Note;

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
            Ok(()) => notes.push(Note::info(format!(
                "JIT symbols: the JVM (PID {pid}) wrote its perf map on request, as `jcmd {pid} Compiler.perfmap` \
                 makes it do"
            ))),
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
                        notes.push(Note::info(format!(
                            "JIT symbols: the JVM (PID {pid}) writes its perf map at exit (-XX:+DumpPerfMapAtExit): \
                             it was ended before symbolizing ({e})"
                        )));
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

/// A runtime, from the process's executable and libraries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Runtime {
    Jvm,
    Node,
    /// CPython, with its version when the file names say it.
    Python(Option<(u32, u32)>),
    DotNet,
    Other,
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
pub(crate) fn hints(samples: &[RawSample], report: &SymbolizeReport, prepared: &Prepared, notes: &mut Vec<Note>) {
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
        let share = 100.0 * unnamed as f64 / total.max(1) as f64;
        let what =
            format!("{share:.1} % of the samples of {} (PID {pid}) are in JIT code without a name", name_of(pid));
        let runtime = runtime_of(pid, name_of(pid));
        let fix = match &runtime {
            Runtime::Jvm => match prepared.jvm_failures.get(&pid) {
                Some(why) => format!(
                    "it is a JVM that could not be asked for its perf map ({why}); allow attaching (no \
                     -XX:+DisableAttachMechanism, JDK 17 or newer), or start it with \
                     -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit (JDK 11 to 16: load perf-map-agent)"
                ),
                None => "it is a JVM: its perf map did not cover this code (compiled after it was written, or \
                         freed); a longer run or -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit helps"
                    .to_owned(),
            },
            Runtime::Node => "it is Node: start it with --perf-basic-prof (or --perf-basic-prof-only-functions), \
                              which writes /tmp/perf-PID.map"
                .to_owned(),
            Runtime::DotNet => "it is .NET: start it with DOTNET_PerfMapEnabled=1".to_owned(),
            Runtime::Python(_) if read.contains(&pid) => "it is CPython: its perf map or jitdump did not name this \
                                                           code (CPython buffers jitdump records until it exits: let \
                                                           it end, or use -X perf, which writes each line at once)"
                .to_owned(),
            Runtime::Python(_) => python_fix(runtime.clone()),
            Runtime::Other => {
                "the runtime that generated it writes no /tmp/perf-PID.map or /tmp/jit-PID.dump".to_owned()
            }
        };
        notes.push(Note::warn(format!("{what}: {fix}")));
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
        if matches!(runtime, Runtime::Python(_)) {
            notes.push(Note::warn(format!(
                "{} (PID {pid}, {:.1} % of all samples) is CPython: its samples show the interpreter, not Python \
                 functions: {}",
                name_of(pid),
                100.0 * n as f64 / total.max(1) as f64,
                python_fix(runtime)
            )));
        }
    }
}

fn python_fix(runtime: Runtime) -> String {
    match runtime {
        Runtime::Python(Some((3, minor))) if (8..=13).contains(&minor) => format!(
            "perfkit reads the Python frames of CPython 3.{minor} with the perf_event backend (--backend perf, or \
             auto without --off-cpu){}",
            if minor >= 12 { "; or run it with -X perf (or PYTHONPERFSUPPORT=1)" } else { "" }
        ),
        Runtime::Python(Some((3, minor))) if minor >= 13 => {
            "run it with -X perf or -X perf_jit (or PYTHONPERFSUPPORT=1)".to_owned()
        }
        Runtime::Python(Some((3, 12))) => "run it with -X perf (or PYTHONPERFSUPPORT=1)".to_owned(),
        Runtime::Python(Some((major, minor))) => format!(
            "Python {major}.{minor} cannot name its functions for profilers (3.12 added -X perf); py-spy reads them"
        ),
        _ => "Python 3.12 and newer name their functions with -X perf (or PYTHONPERFSUPPORT=1)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_versions_from_file_names() {
        assert!(python_fix(Runtime::Python(Some((3, 12)))).contains("--backend perf"));
        assert!(python_fix(Runtime::Python(Some((3, 12)))).contains("-X perf (or PYTHONPERFSUPPORT=1)"));
        assert!(!python_fix(Runtime::Python(Some((3, 10)))).contains("-X perf"));
        assert!(python_fix(Runtime::Python(Some((3, 14)))).contains("perf_jit"));
        assert!(python_fix(Runtime::Python(Some((3, 7)))).contains("3.7 cannot"));
    }
}
