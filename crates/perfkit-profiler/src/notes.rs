//! What a run lost, chose or could not do, as data: one [`Note`] variant
//! per kind, with the numbers, a [`Display`](std::fmt::Display) sentence
//! and, where a setting would have helped, a [`Remedy`] that names the
//! [`Options`](crate::Options) field or [`Target`](crate::Target) method,
//! never a command-line flag. A tool built on the library words remedies
//! its own way; the `perfkit` CLI maps them to its flags.

use std::{fmt, time::Duration};

use perfkit_model::Truncation;

/// How bad a note is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteLevel {
    /// For information.
    Info,
    /// Something was lost or may be wrong.
    Warning,
}

/// A setting that would have helped, in the library's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// A larger [`Options::stack_entries`](crate::Options::stack_entries).
    MoreStackEntries,
    /// A larger [`Options::counts_entries`](crate::Options::counts_entries).
    MoreCountsEntries,
    /// A larger [`Options::table_rows`](crate::Options::table_rows).
    MoreTableRows,
    /// A lower [`Options::frequency_hz`](crate::Options::frequency_hz).
    LowerFrequency,
    /// [`Options::stack_bytes`](crate::Options::stack_bytes) of this many
    /// bytes.
    StackBytes(u32),
    /// The perf_event backend
    /// ([`BackendChoice::Perf`](crate::BackendChoice::Perf), or `Auto`
    /// without off-CPU time).
    PerfBackend,
    /// DWARF unwinding ([`UnwindChoice::Dwarf`](crate::UnwindChoice::Dwarf)).
    DwarfUnwinding,
    /// The existing descendants too
    /// ([`Target::with_children`](crate::Target::with_children)).
    WithChildren,
}

/// Where JIT symbols were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JitSource {
    /// `/tmp/perf-PID.map`.
    PerfMap,
    /// `/tmp/jit-PID.dump`.
    JitDump,
}

/// A runtime that generates or interprets code, as told from a process's
/// executable and libraries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Runtime {
    /// HotSpot (libjvm.so).
    Jvm,
    /// Node.js.
    Node,
    /// CPython, with its (major, minor) version when the file names say it.
    Python(Option<(u32, u32)>),
    /// .NET (libcoreclr.so).
    DotNet,
    /// Something else that generated code.
    Other,
}

/// A process whose existing descendants were left out while they ran.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ChildrenLeftOut {
    /// The process given by PID.
    pub pid: u32,
    /// Its name.
    pub comm: String,
    /// Its own on-CPU samples.
    pub own_samples: u64,
    /// Descendants that existed before sampling and used CPU (at most 8
    /// listed).
    pub busy: Vec<u32>,
    /// How many there were in all.
    pub busy_count: usize,
    /// The CPU time they used meanwhile, in seconds.
    pub cpu_seconds: f64,
}

/// A program whose user stacks ended early, with its reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EarlyProgram {
    /// The program's name.
    pub name: String,
    /// Its stacks that ended early.
    pub stacks: u64,
    /// By reason.
    pub reasons: Vec<(Truncation, u64)>,
}

/// A line for the summary: what a run lost, and what would have helped.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Note {
    /// A thread ID was given: its whole process is profiled.
    ThreadOfProcess {
        /// The thread.
        tid: u32,
        /// Its process.
        pid: u32,
    },
    /// Stacks lost because the eBPF stacks map was full.
    StacksMapFull {
        /// Stacks lost (their samples count under `[lost stack]`).
        lost: u64,
    },
    /// Stacks that could not be read or stored for another reason.
    StackErrors {
        /// Stacks lost.
        lost: u64,
        /// The last error, an errno.
        last_errno: i32,
    },
    /// Samples dropped because the eBPF counts map was full.
    CountsMapFull {
        /// Samples dropped.
        dropped: u64,
    },
    /// Requests for a new process's mappings dropped (ring buffer full).
    MappingRequestsDropped {
        /// Requests dropped.
        dropped: u64,
    },
    /// Files whose unwind tables did not fit: walked with frame pointers.
    TablesFull {
        /// Files left out.
        files: u64,
        /// The table's capacity in rows.
        row_capacity: u64,
    },
    /// Executable mappings over the per-process bound, left out.
    MappingsDropped {
        /// Mappings left out.
        dropped: u64,
        /// The bound per process.
        per_process: usize,
    },
    /// The unwind tables' use.
    UnwindTables {
        /// Files with tables.
        files: u64,
        /// Rows used.
        rows: u64,
        /// Rows available.
        row_capacity: u64,
        /// Time spent building them.
        build_time: Duration,
    },
    /// Walks that reached a mapping or table not known yet (a program that
    /// just started, a library just mapped), finished in user space once
    /// they were known.
    LateWalks {
        /// Samples whose walk was finished.
        finished: u64,
        /// Samples whose walk could not be finished: they keep the stack
        /// the kernel walked (and its `[truncated: ...]` reason).
        unfinished: u64,
        /// Walks not kept (a full ring buffer or queue): as `unfinished`.
        lost: u64,
    },
    /// Tables of large files built when a walk first reached them.
    TablesOnDemand {
        /// Tables built.
        built: u64,
        /// Large files mapped but never reached.
        never_reached: u64,
    },
    /// Tables evicted to make room.
    TablesEvicted {
        /// Files evicted.
        files: u64,
        /// Rows freed.
        rows: u64,
    },
    /// Process and mapping events lost (ring buffer full).
    SideBandLost {
        /// Events lost.
        lost: u64,
    },
    /// Mappings not kept for naming (memory budget or per-process bound).
    MappingHistoryDropped {
        /// Mappings not kept.
        dropped: u64,
    },
    /// Reads of `/proc/PID/maps` stopped at their bound.
    MapsTruncated {
        /// Reads that stopped.
        reads: u64,
        /// The bound in bytes.
        limit_bytes: u64,
    },
    /// Bytes read from the kernel (stacks and counts, or perf samples).
    ReadFromKernel {
        /// Bytes.
        bytes: u64,
    },
    /// perf_event samples lost: the ring buffers were full.
    RingBuffersFull {
        /// Samples lost.
        lost: u64,
        /// Each CPU's buffer in bytes.
        buffer_bytes: u64,
    },
    /// The kernel throttled sampling (`kernel.perf_event_max_sample_rate`).
    Throttled {
        /// Times throttled.
        times: u64,
    },
    /// Stacks deeper than the stack copy.
    StackCopyTooSmall {
        /// Samples affected.
        samples: u64,
        /// The copy's size in bytes.
        copy_bytes: u32,
        /// The deepest stack seen, in bytes.
        needed_bytes: u64,
        /// A copy size that would have reached further, when one is
        /// possible (the largest is 65528 bytes).
        suggested: Option<u32>,
    },
    /// Python frames not read in time.
    InterpreterLate {
        /// Samples left without Python frames.
        late: u64,
        /// Samples of CPython in all.
        all: u64,
        /// The longest wait allowed.
        max_lag: Duration,
    },
    /// Kernel frames are excluded: `kernel.perf_event_paranoid` forbids
    /// them.
    KernelExcluded {
        /// The sysctl's value, as read.
        paranoid: String,
    },
    /// A JVM wrote its perf map on request.
    JvmPerfMapWritten {
        /// The JVM.
        pid: u32,
    },
    /// A JVM that writes its perf map at exit was ended before naming.
    JvmEndedForPerfMap {
        /// The JVM.
        pid: u32,
        /// Why it could not be asked.
        why: String,
    },
    /// A JVM gave no perf map (JDK 11 to 16 have no `Compiler.perfmap`,
    /// or attaching failed), and its compiled methods were named from its
    /// code cache instead.
    JvmNamedFromCodeCache {
        /// The JVM.
        pid: u32,
        /// Why it gave no perf map.
        why: String,
        /// Code blobs named from the code cache.
        blobs: usize,
    },
    /// Existing descendants were busy but not profiled.
    ChildrenLeftOut(Vec<ChildrenLeftOut>),
    /// JIT symbols read.
    JitSymbols {
        /// The process.
        pid: u32,
        /// Symbols read.
        symbols: usize,
        /// From where.
        source: JitSource,
    },
    /// Generated code stayed unnamed in a process.
    JitUnnamed {
        /// The process.
        pid: u32,
        /// Its name.
        process: String,
        /// The share of its samples affected, in percent.
        share_percent: f64,
        /// Its runtime.
        runtime: Runtime,
        /// For a JVM: why it could not be asked for its perf map.
        jvm_failure: Option<String>,
        /// Whether a perf map or jitdump of it was read.
        map_read: bool,
    },
    /// A CPython process whose samples show the interpreter, not Python
    /// functions.
    PythonUnnamed {
        /// The process.
        pid: u32,
        /// Its name.
        process: String,
        /// Its share of all samples, in percent.
        share_percent: f64,
        /// Its version, when known.
        version: Option<(u32, u32)>,
    },
    /// Python frames read from CPython.
    PythonFrames {
        /// Samples with Python frames.
        samples: u64,
        /// Of which paired one to one with the interpreter loop's frames.
        paired: u64,
    },
    /// Java frames walked from the JVM's code cache, interpreted ones named
    /// from the `Method*` in their frame.
    JavaFrames {
        /// Samples with interpreted Java frames.
        samples: u64,
        /// Of which paired one to one with the interpreter's native frames.
        paired: u64,
    },
    /// A perf map or jitdump skipped, and why.
    JitMapSkipped(String),
    /// Debug information not read: it would decompress past the bound.
    DebugInfoSkipped {
        /// The file.
        path: String,
        /// The bound in bytes.
        limit_bytes: u64,
    },
    /// User stacks that end before their outermost frame.
    StacksEndEarly {
        /// Stacks that end early.
        early: u64,
        /// User stacks in all.
        user: u64,
        /// By reason.
        reasons: Vec<(Truncation, u64)>,
        /// The frame limit (for [`Truncation::Depth`]).
        depth_limit: usize,
    },
    /// The programs whose stacks end early most (at most five), with how
    /// many more there are.
    EarlyEndingPrograms {
        /// The programs, most first.
        programs: Vec<EarlyProgram>,
        /// Programs not listed.
        more: usize,
    },
    /// A reader of the targets' files refused something (memory budget,
    /// bounds); the sentence names the file and the limit.
    Refused(String),
    /// Frame-pointer walks stopped early in code built without frame
    /// pointers.
    NoFramePointers {
        /// Share of user stacks that stopped early, in percent.
        share_percent: f64,
        /// Files without frame pointers (at most five).
        files: Vec<String>,
    },
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

impl Note {
    /// How bad it is.
    pub fn level(&self) -> NoteLevel {
        use Note::*;
        match self {
            ThreadOfProcess { .. }
            | UnwindTables { .. }
            | TablesOnDemand { .. }
            | LateWalks { .. }
            | TablesEvicted { .. }
            | ReadFromKernel { .. }
            | JvmPerfMapWritten { .. }
            | JvmEndedForPerfMap { .. }
            | JvmNamedFromCodeCache { .. }
            | JitSymbols { .. }
            | PythonFrames { .. }
            | JavaFrames { .. }
            | EarlyEndingPrograms { .. } => NoteLevel::Info,
            StacksEndEarly { early, user, .. } if share(*early, *user) < 5.0 => NoteLevel::Info,
            _ => NoteLevel::Warning,
        }
    }

    /// The setting that would have helped, if there is one.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Note::StacksMapFull { .. } => Some(Remedy::MoreStackEntries),
            Note::CountsMapFull { .. } => Some(Remedy::MoreCountsEntries),
            Note::TablesFull { .. } => Some(Remedy::MoreTableRows),
            Note::RingBuffersFull { .. } | Note::Throttled { .. } => Some(Remedy::LowerFrequency),
            Note::StackCopyTooSmall { suggested: Some(n), .. } => Some(Remedy::StackBytes(*n)),
            Note::ChildrenLeftOut(_) => Some(Remedy::WithChildren),
            Note::NoFramePointers { .. } => Some(Remedy::DwarfUnwinding),
            Note::PythonUnnamed { version: Some((3, minor)), .. } if (8..=13).contains(minor) => {
                Some(Remedy::PerfBackend)
            }
            Note::JitUnnamed { runtime: Runtime::Python(Some((3, minor))), map_read: false, .. }
                if (8..=13).contains(minor) =>
            {
                Some(Remedy::PerfBackend)
            }
            _ => None,
        }
    }
}

/// What to do on the target's side for a Python version.
fn python_fix(version: Option<(u32, u32)>) -> String {
    match version {
        Some((3, minor)) if (8..=13).contains(&minor) => format!(
            "perfkit reads the Python frames of CPython 3.{minor} with the perf_event backend{}",
            if minor >= 12 { "; or run it with -X perf (or PYTHONPERFSUPPORT=1)" } else { "" }
        ),
        Some((3, minor)) if minor >= 13 => "run it with -X perf or -X perf_jit (or PYTHONPERFSUPPORT=1)".to_owned(),
        Some((major, minor)) => {
            format!(
                "Python {major}.{minor} cannot name its functions for profilers (3.12 added -X perf); py-spy reads them"
            )
        }
        None => "Python 3.12 and newer name their functions with -X perf (or PYTHONPERFSUPPORT=1)".to_owned(),
    }
}

fn reasons_text(reasons: &[(Truncation, u64)], depth_limit: Option<usize>) -> String {
    reasons
        .iter()
        .map(|(reason, n)| match (reason, depth_limit) {
            (Truncation::Depth, Some(limit)) => format!("{n} deeper than {limit} frames [{}]", reason.word()),
            (_, Some(_)) => format!("{n} {} [{}]", reason.describe(), reason.word()),
            (_, None) => format!("{n} {}", reason.word()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::ThreadOfProcess { tid, pid } => {
                write!(f, "{tid} is a thread of process {pid}: profiling the whole process")
            }
            Note::StacksMapFull { lost } => {
                write!(f, "lost stacks: {lost} (the stacks map is full; their samples count under [lost stack])")
            }
            Note::StackErrors { lost, last_errno } => write!(
                f,
                "lost stacks: {lost} more could not be read or stored (last error: {}); their samples count under \
                 [lost stack]",
                std::io::Error::from_raw_os_error(*last_errno)
            ),
            Note::CountsMapFull { dropped } => write!(f, "dropped samples: {dropped} (the counts map is full)"),
            Note::MappingRequestsDropped { dropped } => write!(
                f,
                "{dropped} requests for mappings were dropped (ring buffer full); stacks of new processes may end \
                 early"
            ),
            Note::TablesFull { files, row_capacity } => write!(
                f,
                "{files} files did not fit the unwind table ({row_capacity} rows): their frames were walked with \
                 frame pointers"
            ),
            Note::MappingsDropped { dropped, per_process } => {
                write!(f, "{dropped} executable mappings left out (over {per_process} per process)")
            }
            Note::UnwindTables { files, rows, row_capacity, build_time } => write!(
                f,
                "unwind tables: {files} files, {rows} rows ({} KiB) of {row_capacity} ({} KiB), built in {:.0} ms",
                rows * 8 / 1024,
                row_capacity * 8 / 1024,
                build_time.as_secs_f64() * 1e3
            ),
            Note::LateWalks { finished, unfinished, lost } => write!(
                f,
                "stacks of new programs and libraries finished once their mappings and tables were known: \
                 {finished} samples finished late, {} could not be ({unfinished} unfinished, {lost} not kept)",
                unfinished + lost
            ),
            Note::TablesOnDemand { built, never_reached } => write!(
                f,
                "unwind tables built when a walk first reached a large file: {built} built, {never_reached} large \
                 files mapped but never reached (tables not built)"
            ),
            Note::TablesEvicted { files, rows } => write!(
                f,
                "unwind tables evicted to make room: {files} ({rows} rows), least recently used first, of files no \
                 running process mapped"
            ),
            Note::SideBandLost { lost } => write!(
                f,
                "{lost} process and mapping events were lost (ring buffer full); those processes were read from \
                 /proc instead"
            ),
            Note::MappingHistoryDropped { dropped } => write!(
                f,
                "{dropped} mappings were not kept for naming: the mapping history reached the memory budget or its \
                 bound per process (the frames of processes that exited in them may read module+0xADDR or [unknown])"
            ),
            Note::MapsTruncated { reads, limit_bytes } => write!(
                f,
                "{reads} reads of /proc/PID/maps stopped at {} MiB (processes with more mappings than that): the \
                 rest of their mappings were not seen",
                limit_bytes >> 20
            ),
            Note::ReadFromKernel { bytes } => write!(f, "read {} KiB from the kernel", bytes.div_ceil(1024)),
            Note::RingBuffersFull { lost, buffer_bytes } => write!(
                f,
                "dropped samples: {lost} (the kernel's ring buffers, {} KiB per CPU, were full)",
                buffer_bytes / 1024
            ),
            Note::Throttled { times } => {
                write!(f, "throttled {times} times by the kernel (kernel.perf_event_max_sample_rate)")
            }
            Note::StackCopyTooSmall { samples, copy_bytes, needed_bytes, suggested } => {
                write!(
                    f,
                    "{samples} samples' stacks were deeper than the {copy_bytes}-byte stack copy (at least \
                     {needed_bytes} bytes): "
                )?;
                match suggested {
                    Some(n) => write!(f, "a copy of {n} bytes would have reached further"),
                    None => write!(f, "deeper than the largest copy (65528 bytes); the eBPF backend copies no stack"),
                }
            }
            Note::InterpreterLate { late, all, max_lag } => write!(
                f,
                "Python frames: {late} of {all} samples of CPython ({:.1} %) were not read within {} ms of the \
                 sample (perfkit was short of CPU, or a stack took longer to read) and are left without them",
                share(*late, *all),
                max_lag.as_millis()
            ),
            Note::KernelExcluded { paranoid } => write!(
                f,
                "kernel frames are excluded: sampling the kernel is not permitted (kernel.perf_event_paranoid is \
                 {paranoid}; root, CAP_PERFMON or a value of 1 or less allows it)"
            ),
            Note::JvmPerfMapWritten { pid } => write!(
                f,
                "JIT symbols: the JVM (PID {pid}) wrote its perf map on request, as `jcmd {pid} Compiler.perfmap` \
                 makes it do"
            ),
            Note::JvmEndedForPerfMap { pid, why } => write!(
                f,
                "JIT symbols: the JVM (PID {pid}) writes its perf map at exit (-XX:+DumpPerfMapAtExit): it was \
                 ended before symbolizing ({why})"
            ),
            Note::JvmNamedFromCodeCache { pid, why, blobs } => write!(
                f,
                "JIT symbols: the JVM (PID {pid}) gave no perf map ({why}); its compiled methods are named from its \
                 code cache instead ({blobs} code blobs, as the perf map names them)"
            ),
            Note::ChildrenLeftOut(parents) => {
                let parts: Vec<String> = parents
                    .iter()
                    .map(|p| {
                        let mut pids: Vec<String> = p.busy.iter().map(u32::to_string).collect();
                        if p.busy_count > p.busy.len() {
                            pids.push("...".to_owned());
                        }
                        format!(
                            "PID {} ({}) got {} samples, while {} of its descendants that existed before sampling \
                             ({}) used {:.2} s of CPU, not profiled",
                            p.pid,
                            p.comm,
                            p.own_samples,
                            p.busy_count,
                            pids.join(", "),
                            p.cpu_seconds
                        )
                    })
                    .collect();
                write!(f, "{}", parts.join("; "))
            }
            Note::JitSymbols { pid, symbols, source } => match source {
                JitSource::PerfMap => write!(f, "JIT symbols: {symbols} from /tmp/perf-{pid}.map"),
                JitSource::JitDump => write!(f, "JIT symbols: {symbols} from /tmp/jit-{pid}.dump"),
            },
            Note::JitUnnamed { pid, process, share_percent, runtime, jvm_failure, map_read } => {
                write!(
                    f,
                    "{share_percent:.1} % of the samples of {process} (PID {pid}) are in JIT code without a name: "
                )?;
                match (runtime, jvm_failure) {
                    (Runtime::Jvm, Some(why)) => write!(
                        f,
                        "it is a JVM that could not be asked for its perf map ({why}); allow attaching (no \
                         -XX:+DisableAttachMechanism, JDK 17 or newer), or start it with \
                         -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit (JDK 17 or newer); JDK 11 to 16 have \
                         neither: profile it with the perf_event backend (--backend perf), which names compiled \
                         methods from the JVM's code cache"
                    ),
                    (Runtime::Jvm, None) => write!(
                        f,
                        "it is a JVM: its perf map did not cover this code (compiled after it was written, or \
                         freed); a longer run or -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit helps"
                    ),
                    (Runtime::Node, _) => write!(
                        f,
                        "it is Node: start it with --perf-basic-prof (or --perf-basic-prof-only-functions), which \
                         writes /tmp/perf-PID.map"
                    ),
                    (Runtime::DotNet, _) => write!(f, "it is .NET: start it with DOTNET_PerfMapEnabled=1"),
                    (Runtime::Python(_), _) if *map_read => write!(
                        f,
                        "it is CPython: its perf map or jitdump did not name this code (CPython buffers jitdump \
                         records until it exits: let it end, or use -X perf, which writes each line at once)"
                    ),
                    (Runtime::Python(v), _) => write!(f, "{}", python_fix(*v)),
                    (Runtime::Other, _) => {
                        write!(f, "the runtime that generated it writes no /tmp/perf-PID.map or /tmp/jit-PID.dump")
                    }
                }
            }
            Note::PythonUnnamed { pid, process, share_percent, version } => write!(
                f,
                "{process} (PID {pid}, {share_percent:.1} % of all samples) is CPython: its samples show the \
                 interpreter, not Python functions: {}",
                python_fix(*version)
            ),
            Note::PythonFrames { samples, paired } => write!(
                f,
                "Python frames: read from CPython for {samples} samples ({paired} paired one to one with the \
                 interpreter loop's native frames)"
            ),
            Note::JavaFrames { samples, paired } => write!(
                f,
                "Java frames: walked from the JVM's code cache; interpreted ones named from their Method* in \
                 {samples} samples ({paired} paired one to one with the interpreter's native frames)"
            ),
            Note::JitMapSkipped(why) => write!(f, "JIT symbols: {why}"),
            Note::DebugInfoSkipped { path, limit_bytes } => write!(
                f,
                "debug information of {path} not read: its compressed sections would decompress to over {} MiB \
                 (one section, or all of them together)",
                limit_bytes >> 20
            ),
            Note::StacksEndEarly { early, user, reasons, depth_limit } => write!(
                f,
                "{early} of {user} user stacks ({:.1}%) end before the outermost frame, under a [truncated: REASON] \
                 frame: {}",
                share(*early, *user),
                reasons_text(reasons, Some(*depth_limit))
            ),
            Note::EarlyEndingPrograms { programs, more } => {
                let shown: Vec<String> = programs
                    .iter()
                    .map(|p| format!("{} {} ({})", p.name, p.stacks, reasons_text(&p.reasons, None)))
                    .collect();
                write!(f, "early-ending stacks by program: {}", shown.join(", "))?;
                if *more > 0 {
                    write!(f, ", and {more} more")?;
                }
                Ok(())
            }
            Note::Refused(text) => f.write_str(text),
            Note::NoFramePointers { share_percent, files } => write!(
                f,
                "{share_percent:.0}% of user stacks stop before their outermost frame, in code built without frame \
                 pointers ({}): DWARF unwinding reaches further",
                files.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_name_no_flag_and_remedies_say_what_helps() {
        let notes = [
            Note::StacksMapFull { lost: 3 },
            Note::CountsMapFull { dropped: 2 },
            Note::TablesFull { files: 1, row_capacity: 10 },
            Note::RingBuffersFull { lost: 5, buffer_bytes: 8192 },
            Note::StackCopyTooSmall { samples: 1, copy_bytes: 8192, needed_bytes: 9000, suggested: Some(12288) },
            Note::NoFramePointers { share_percent: 40.0, files: vec!["libx.so".into()] },
            Note::PythonUnnamed { pid: 1, process: "python3".into(), share_percent: 90.0, version: Some((3, 11)) },
        ];
        for n in &notes {
            let text = n.to_string();
            assert!(!text.contains("--"), "a library note names a flag: {text}");
            assert!(n.remedy().is_some(), "{text}");
            assert_eq!(n.level(), NoteLevel::Warning);
        }
        assert_eq!(notes[4].remedy(), Some(Remedy::StackBytes(12288)));
        assert_eq!(Note::ReadFromKernel { bytes: 2048 }.to_string(), "read 2 KiB from the kernel");
        assert_eq!(Note::ReadFromKernel { bytes: 1 }.level(), NoteLevel::Info);
        // Python 3.7 has no remedy in perfkit's hands.
        let old = Note::PythonUnnamed { pid: 1, process: "python3".into(), share_percent: 90.0, version: Some((3, 7)) };
        assert_eq!(old.remedy(), None);
        assert!(old.to_string().contains("py-spy"), "{old}");
    }

    #[test]
    fn python_fixes_by_version() {
        assert!(python_fix(Some((3, 12))).contains("perf_event backend"));
        assert!(python_fix(Some((3, 12))).contains("-X perf (or PYTHONPERFSUPPORT=1)"));
        assert!(!python_fix(Some((3, 10))).contains("-X perf"));
        assert!(python_fix(Some((3, 14))).contains("perf_jit"));
        assert!(python_fix(Some((3, 7))).contains("3.7 cannot"));
    }

    #[test]
    fn early_stacks_are_info_under_five_percent() {
        let n = |early| Note::StacksEndEarly {
            early,
            user: 100,
            reasons: vec![(Truncation::Depth, early)],
            depth_limit: 128,
        };
        assert_eq!(n(4).level(), NoteLevel::Info);
        assert_eq!(n(5).level(), NoteLevel::Warning);
        assert!(n(4).to_string().contains("4 deeper than 128 frames [depth]"), "{}", n(4));
    }
}
