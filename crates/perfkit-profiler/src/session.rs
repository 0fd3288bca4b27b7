//! Starting, running and finishing a profile.

use std::{
    path::PathBuf,
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use perfkit_model::{
    CountUnit, FrameKind, Profile,
    raw::{RawSample, SampleKind},
};
use perfkit_perf_event::{PerfConfig, PerfSampler, PerfScope, SampleEvent, Unwind};
use perfkit_probes::{ProbeError, Selection, StackSampler, StackSamplerConfig, UserStacks};
use perfkit_symbols::{SymbolizeOptions, SymbolizeReport, Symbolizer};
use perfkit_target::{ExitStatus, HeldCommand, Modules};

use crate::notes::{ChildrenLeftOut, EarlyProgram, JitSource, Note};
use crate::wait::{Watches, wait_loop};
use perfkit_unwind::frame_pointers::Verdict;

use crate::{BackendChoice, Options, ProfileError, Target, TargetKind, UnwindChoice, choose, target::LeftOut};

/// The backend that runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// eBPF: stacks walked and counted in the kernel.
    Ebpf,
    /// perf_event: samples read from ring buffers.
    Perf,
}

/// How user stacks are walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Walker {
    /// Unwind tables from DWARF CFI, in the kernel (eBPF).
    Tables,
    /// Frame pointers.
    FramePointers,
    /// DWARF on a copy of each sample's user stack (perf_event).
    StackCopy,
}

/// What was chosen, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Choice {
    /// The backend.
    pub backend: Backend,
    /// The stack walker.
    pub walker: Walker,
    /// Only user mode is sampled (kernel sampling not permitted).
    pub user_only: bool,
    /// Why, in a sentence.
    pub reason: String,
}

impl Choice {
    /// A line for the summary: `backend: eBPF, DWARF unwind tables (...)`.
    pub fn describe(&self) -> String {
        let backend = match self.backend {
            Backend::Ebpf => "eBPF",
            Backend::Perf => "perf_event",
        };
        let walker = match self.walker {
            Walker::Tables => "DWARF unwind tables in the kernel (frame pointers in code without CFI)",
            Walker::FramePointers => "frame pointers",
            Walker::StackCopy => "DWARF unwinding of user stack copies",
        };
        if self.reason.is_empty() {
            format!("backend: {backend}, {walker}")
        } else {
            format!("backend: {backend}, {walker} ({})", self.reason)
        }
    }
}

/// Why sampling ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// Interrupted (Ctrl-C, SIGTERM).
    Interrupted,
    /// The duration was reached.
    Duration,
    /// Every process named as the target exited.
    TargetExited,
}

impl EndReason {
    /// The exit status a run ends with, as perf's: a command that exited
    /// on its own (`status`) passes its status on, as a shell reports it
    /// (128+N for signal N, at most 255); any other end is 0.
    pub fn exit_code(self, status: Option<perfkit_target::ExitStatus>) -> u8 {
        match (self, status) {
            (EndReason::TargetExited, Some(s)) => s.shell_code().clamp(0, 255) as u8,
            _ => 0,
        }
    }
}

/// A finished profile.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished {
    /// The symbolized profile.
    pub profile: Profile,
    /// What was lost along the way, and what was chosen.
    pub notes: Vec<Note>,
    /// The backend and walker.
    pub choice: Choice,
    /// The command perfkit started, when it is still running (to be
    /// terminated once every output is written).
    pub command: Option<HeldCommand>,
    /// The command's exit status, when it exited on its own.
    pub command_status: Option<ExitStatus>,
    /// Samples of the idle task (system-wide runs): not drawn.
    pub idle_samples: u64,
    /// The processes (or threads) whose exit was to end the profile
    /// ([`Session::watched`]).
    pub watched: Vec<u32>,
    /// Bytes the kernel handed over (perf_event).
    pub bytes_from_kernel: Option<u64>,
    /// Processes seen in samples.
    pub processes: usize,
    /// When a process given by PID got no samples, or few, while its
    /// existing descendants (not profiled without
    /// [`Target::with_children`]) were busy: a
    /// [`Note::ChildrenLeftOut`] saying what they used. Also among the
    /// notes.
    pub children_hint: Option<Note>,
}

enum Running {
    Ebpf(Box<StackSampler>),
    Perf(Box<PerfSampler>),
}

/// A running profile.
pub struct Session {
    running: Running,
    choice: Choice,
    options: Options,
    description: String,
    command: Option<HeldCommand>,
    watched: Vec<u32>,
    started: Instant,
    early_notes: Vec<Note>,
    exit: Option<ExitStatus>,
    children_left_out: Vec<LeftOut>,
    /// The Java frames of a JVM are walked from its code cache.
    java: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("choice", &self.choice).finish_non_exhaustive()
    }
}

/// Whether an eBPF failure means "use another backend" rather than "stop":
/// anything the eBPF path could not load, attach or read on this kernel.
/// A configuration the user asked for that perf_event cannot honour
/// either (an invalid size, a frequency above the kernel's limit) stops.
fn ebpf_unavailable(e: &ProbeError) -> bool {
    !matches!(e, ProbeError::InvalidConfig(_) | ProbeError::FrequencyTooHigh { .. })
}

/// An error with its causes, as one line ("a: b: c"); a verifier log is
/// cut to its last line, which says why the program was refused.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    fn short(text: String) -> String {
        let Some((before, log)) = text.split_once("Verifier output:") else { return text };
        let last = log.split("\\n").flat_map(|l| l.split('\n')).map(str::trim).filter(|l| !l.is_empty()).last();
        format!("{}{}", before.trim_end(), last.map(|l| format!(" (verifier: {l})")).unwrap_or_default())
    }
    let mut text = short(e.to_string());
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = short(cause.to_string());
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// How each backend will be told what to sample.
pub(crate) struct Plan {
    pub(crate) selection: Selection,
    scope: PerfScope,
    watched: Vec<u32>,
    pub(crate) command: Option<HeldCommand>,
    program: Option<PathBuf>,
    /// Processes whose mappings say whether frame pointers suffice.
    pids: Vec<u32>,
}

pub(crate) fn plan(kind: TargetKind, follow: bool) -> Plan {
    match kind {
        TargetKind::Processes(infos) => {
            let pids: Vec<u32> = infos.iter().map(|i| i.pid).collect();
            Plan {
                selection: Selection::Processes { pids: pids.clone(), follow_children: follow },
                scope: PerfScope::Processes { pids: pids.clone(), inherit: follow },
                watched: pids.clone(),
                command: None,
                program: None,
                pids,
            }
        }
        TargetKind::Threads(tids) => {
            let pids = tids.iter().filter_map(|&t| perfkit_target::process_of_thread(t)).collect();
            Plan {
                selection: Selection::Threads(tids.clone()),
                scope: PerfScope::Threads(tids.clone()),
                watched: tids,
                command: None,
                program: None,
                pids,
            }
        }
        TargetKind::Cgroup(c) => Plan {
            selection: Selection::Cgroup { id: c.id, level: c.level },
            scope: PerfScope::Cgroup(c.path.clone()),
            watched: Vec::new(),
            command: None,
            program: None,
            pids: c.pids(),
        },
        TargetKind::All => Plan {
            selection: Selection::All,
            scope: PerfScope::All,
            watched: Vec::new(),
            command: None,
            program: None,
            pids: Vec::new(),
        },
        TargetKind::Command { child, program, .. } => {
            let pid = child.pid();
            Plan {
                selection: Selection::Processes { pids: vec![pid], follow_children: follow },
                scope: PerfScope::Processes { pids: vec![pid], inherit: follow },
                watched: vec![pid],
                command: Some(child),
                program,
                pids: Vec::new(),
            }
        }
    }
}

impl Session {
    /// Starts sampling `target`. A command target is released (it runs its
    /// first instruction) only once sampling is ready.
    pub fn start(target: Target, options: &Options) -> Result<Session, ProfileError> {
        let description = target.describe();
        let Target { kind, follow_children, resolved_threads, children_left_out } = target;
        let early_notes: Vec<Note> =
            resolved_threads.iter().map(|&(tid, pid)| Note::ThreadOfProcess { tid, pid }).collect();
        if options.frequency_hz.is_none() && options.off_cpu.is_none() {
            return Err(ProfileError::Unsupported("nothing to sample: give a frequency or off-CPU time".into()));
        }
        let other_event = options.event != SampleEvent::CpuClock;
        if other_event && options.off_cpu.is_some() {
            return Err(ProfileError::Unsupported(
                "off-CPU time is measured with eBPF, which samples on cpu-clock only".into(),
            ));
        }
        if other_event && options.backend == BackendChoice::Ebpf {
            return Err(ProfileError::Unsupported(format!(
                "the eBPF backend samples on cpu-clock; {} needs the perf_event backend (perf, or auto)",
                options.event.name()
            )));
        }
        if options.off_cpu.is_some() && options.backend == BackendChoice::Perf {
            return Err(ProfileError::Unsupported("off-CPU time needs the eBPF backend".into()));
        }
        let mut plan = plan(kind, follow_children);
        // CPython's frames are read from the interpreter as each sample
        // arrives, which the perf_event backend allows (it hands samples
        // over one by one; the eBPF one counts them in the kernel).
        let cpython = crate::runtimes::is_cpython_target(plan.program.as_deref(), &plan.pids);
        // A JVM's Java frames are walked from its code cache, in the
        // stacks the perf_event backend copies (the eBPF one cannot read
        // the JVM's structures).
        let jvm = crate::runtimes::is_jvm_target(plan.program.as_deref(), &plan.pids);
        // Only processes the invoker named choose the backend: a cgroup's
        // processes are anyone's, and one that looks like CPython (any
        // user's program named python3) must not move the whole group to
        // the perf_event backend. `--backend perf` still reads its frames.
        let named = matches!(plan.scope, PerfScope::Processes { .. } | PerfScope::Threads(_));
        let for_python = cpython && named && options.backend == BackendChoice::Auto && options.off_cpu.is_none();
        let for_java = jvm && named && options.backend == BackendChoice::Auto && options.off_cpu.is_none();

        let mut ebpf_error = None;
        let mut started: Option<(Running, Choice)> = None;
        if !other_event && options.backend != BackendChoice::Perf && !for_python && !for_java {
            let mut config = StackSamplerConfig::new(plan.selection.clone());
            config.frequency_hz = options.frequency_hz;
            config.off_cpu = options.off_cpu;
            config.user_stacks = match options.unwind {
                UnwindChoice::FramePointers => UserStacks::FramePointers,
                _ => UserStacks::Tables,
            };
            config.stack_entries = options.stack_entries;
            config.counts_entries = options.counts_entries;
            config.table_rows = options.table_rows;
            config.publish_selected = plan.command.is_none();
            match StackSampler::start(&config) {
                Ok(sampler) => {
                    // The program, its loader and libraries: their tables are
                    // ready when the command runs.
                    if let Some(p) = &plan.program {
                        for f in choose::program_files(p) {
                            sampler.prepare_program(&f);
                        }
                    }
                    let walker =
                        if config.user_stacks == UserStacks::Tables { Walker::Tables } else { Walker::FramePointers };
                    let reason = match options.backend {
                        BackendChoice::Ebpf => "eBPF asked for".to_owned(),
                        _ => String::new(),
                    };
                    started = Some((
                        Running::Ebpf(Box::new(sampler)),
                        Choice { backend: Backend::Ebpf, walker, user_only: false, reason },
                    ));
                }
                // Off-CPU time has no perf_event equivalent: its failure stops.
                Err(e)
                    if options.backend == BackendChoice::Auto && options.off_cpu.is_none() && ebpf_unavailable(&e) =>
                {
                    ebpf_error = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (running, choice) = match started {
            Some(s) => s,
            None => {
                let (unwind, why) = match options.unwind {
                    // Java frames need the stack copies: JIT code keeps
                    // no frame pointers.
                    UnwindChoice::Auto if jvm && named => (Unwind::Dwarf, String::new()),
                    _ => perf_walker(options.unwind, &plan),
                };
                let config = {
                    let mut c = PerfConfig::new(1);
                    c.scope = plan.scope.clone();
                    c.event = options.event;
                    c.frequency_hz = options.frequency_hz.unwrap_or(99);
                    c.unwind = unwind;
                    c.stack_bytes = options.stack_bytes;
                    c.enable_on_exec = plan.command.is_some();
                    c.interpreters = cpython;
                    c.hotspot = jvm && named;
                    c
                };
                let sampler = match PerfSampler::start(&config) {
                    Ok(s) => s,
                    Err(perf) => {
                        return Err(match ebpf_error {
                            Some(ebpf) => ProfileError::NoBackend { ebpf: Box::new(ebpf), perf: Box::new(perf) },
                            None => perf.into(),
                        });
                    }
                };
                let mut reasons = Vec::new();
                if let Some(e) = &ebpf_error {
                    reasons.push(format!("eBPF unavailable: {}", with_causes(e)));
                } else if other_event {
                    reasons.push(format!("{} is sampled with perf_event", options.event.name()));
                } else if options.backend == BackendChoice::Perf {
                    reasons.push("perf_event asked for".to_owned());
                } else if for_python {
                    reasons.push("CPython: its Python frames are read at each sample".to_owned());
                } else if for_java {
                    reasons.push("a JVM: its Java frames are walked from its code cache".to_owned());
                } else if jvm && named && unwind == Unwind::Dwarf {
                    reasons.push("the JVM's Java frames are walked from its code cache".to_owned());
                }
                if !why.is_empty() {
                    reasons.push(why);
                }
                let user_only = sampler.stats().user_only;
                let walker = if unwind == Unwind::Dwarf { Walker::StackCopy } else { Walker::FramePointers };
                (
                    Running::Perf(Box::new(sampler)),
                    Choice { backend: Backend::Perf, walker, user_only, reason: reasons.join("; ") },
                )
            }
        };
        let java = jvm && named && choice.backend == Backend::Perf && choice.walker == Walker::StackCopy;
        // Sampling is ready: let the command run.
        if let Some(child) = &mut plan.command {
            child.release()?;
        }
        Ok(Session {
            running,
            choice,
            options: options.clone(),
            description,
            command: plan.command,
            watched: plan.watched,
            started: Instant::now(),
            early_notes,
            exit: None,
            children_left_out,
            java,
        })
    }
}

/// The perf_event backend's stack walker, and why.
fn perf_walker(unwind: UnwindChoice, plan: &Plan) -> (Unwind, String) {
    match unwind {
        UnwindChoice::FramePointers => (Unwind::FramePointer, String::new()),
        UnwindChoice::Dwarf => (Unwind::Dwarf, String::new()),
        UnwindChoice::Auto => {
            if matches!(plan.scope, PerfScope::All | PerfScope::Cgroup(_)) {
                return (
                    Unwind::FramePointer,
                    "frame pointers for many processes at once; the eBPF backend walks them without".to_owned(),
                );
            }
            let mut files: Vec<PathBuf> = Vec::new();
            if let Some(p) = &plan.program {
                files.extend(choose::program_files(p));
            }
            for &pid in &plan.pids {
                if let Ok(maps) = perfkit_target::maps::executable_mappings(std::path::Path::new("/proc"), pid) {
                    for m in maps {
                        if m.path.starts_with('/') && !files.iter().any(|f| f.as_os_str() == m.path.as_str()) {
                            files.push(PathBuf::from(&m.path));
                        }
                    }
                }
            }
            let lacking = choose::without_frame_pointers(&files);
            if lacking.is_empty()
                && !files.is_empty()
                && files.iter().all(|f| {
                    perfkit_target::ModuleFile::open_path(f)
                        .map(|m| choose::verdict(&m) == Verdict::FramePointers)
                        .unwrap_or(false)
                })
            {
                (Unwind::FramePointer, "every module keeps frame pointers".to_owned())
            } else if lacking.is_empty() {
                (Unwind::Dwarf, "nothing shows that the modules keep frame pointers".to_owned())
            } else {
                let mut names = lacking;
                names.truncate(4);
                (Unwind::Dwarf, format!("frame pointers cannot walk {}", names.join(", ")))
            }
        }
    }
}

impl Session {
    /// The backend and walker that run.
    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    /// What is profiled.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The processes (or threads) whose exit ends the profile; empty when
    /// only a duration or an interruption ends it.
    pub fn watched(&self) -> &[u32] {
        &self.watched
    }

    /// The command perfkit started, if any.
    pub fn command_pid(&self) -> Option<u32> {
        self.command.as_ref().map(HeldCommand::pid)
    }

    /// Whether the command perfkit started has exited (it is reaped then;
    /// [`Finished::command`] gives its status).
    pub fn command_exited(&mut self) -> bool {
        let Some(c) = &mut self.command else { return false };
        match c.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                true
            }
            _ => self.exit.is_some(),
        }
    }

    /// Samples so far (for a progress line).
    pub fn samples(&self) -> u64 {
        match &self.running {
            Running::Ebpf(s) => s.stats().map(|s| s.samples).unwrap_or(0),
            Running::Perf(s) => s.stats().samples,
        }
    }

    /// Time since sampling started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Blocks until every watched process (or thread) exited, or
    /// `duration` passed since sampling started. A zombie counts as gone,
    /// and the command perfkit started is reaped (`waitpid`: perfkit is its
    /// parent; [`Finished::command_status`] gives its status).
    pub fn wait(&mut self, duration: Option<Duration>) -> EndReason {
        static NEVER: AtomicBool = AtomicBool::new(false);
        self.wait_until(duration, &NEVER, |_| {})
    }

    /// [`Session::wait`], that also ends when `stop` is set (by a signal
    /// handler, or another thread: [`EndReason::Interrupted`]), and calls
    /// `on_tick` every 100 ms (for a progress line) and when a watched
    /// process exits.
    pub fn wait_until(
        &mut self,
        duration: Option<Duration>,
        stop: &AtomicBool,
        mut on_tick: impl FnMut(&Session),
    ) -> EndReason {
        let watches = Watches::new(&self.watched);
        let command = self.command_pid();
        wait_loop(self.started, duration, stop, &watches, || {
            on_tick(self);
            let reaped = command.filter(|_| self.command_exited());
            watches.all_gone(reaped)
        })
    }

    /// Stops sampling, symbolizes, and accounts for every loss.
    pub fn finish(self) -> Result<Finished, ProfileError> {
        self.finish_keeping(None)
    }

    /// As [`finish`](Self::finish), symbolizing only the samples of these
    /// processes (`None`: all): a whole-host session whose interesting
    /// processes are known only at the end pays for those alone.
    pub fn finish_keeping(self, processes: Option<&[u32]>) -> Result<Finished, ProfileError> {
        let elapsed = self.started.elapsed();
        let Session {
            running,
            choice,
            options,
            description,
            watched,
            mut command,
            early_notes,
            mut exit,
            children_left_out,
            java,
            ..
        } = self;
        if exit.is_none()
            && let Some(c) = &mut command
            && let Ok(Some(status)) = c.try_wait()
        {
            exit = Some(status);
        }
        let command = if exit.is_some() { None } else { command };
        let mut notes = early_notes;
        let (mut samples, modules, idle, lost_stacks, dropped, bytes) = match running {
            Running::Ebpf(s) => {
                let raw = s.finish()?;
                let st = raw.stats;
                let tables = raw.tables;
                ebpf_notes(&st, &tables, &mut notes);
                let late = raw.late;
                if late.finished + late.unfinished + late.lost > 0 {
                    notes.push(Note::LateWalks {
                        finished: late.finished,
                        unfinished: late.unfinished,
                        lost: late.lost,
                    });
                }
                notes.push(Note::ReadFromKernel { bytes: raw.bytes_read });
                (raw.samples, raw.modules, st.idle, st.stacks_full, st.counts_full, Some(raw.bytes_read))
            }
            Running::Perf(s) => {
                let p = s.finish();
                let st = p.stats;
                perf_notes(&st, &options, &mut notes);
                (p.samples, p.modules, st.idle, 0, st.lost, Some(st.bytes))
            }
        };
        if let Some(keep) = processes {
            samples.retain(|s| keep.contains(&s.tgid));
        }
        if choice.user_only {
            notes.push(Note::KernelExcluded { paranoid: perfkit_perf_event::paranoid() });
        }
        // JIT symbols the runtimes can still give (a JVM asked for its perf
        // map, or ended first when it writes it at exit).
        let mut command = command;
        let prepared = crate::runtimes::before_symbolizing(&samples, &mut command, &mut exit, &mut notes);
        // On-CPU samples against CPU time: not for off-CPU time alone.
        let children_hint = match options.frequency_hz {
            Some(hz) => children_hint(&children_left_out, &samples, hz),
            None => None,
        };
        if let Some(hint) = &children_hint {
            notes.push(hint.clone());
        }
        let unit = weigh(&mut samples, &options);
        let processes = samples.iter().map(|s| s.tgid).collect::<std::collections::HashSet<_>>().len();
        let mut symbolize_options = SymbolizeOptions::default();
        symbolize_options.grouping = options.grouping;
        symbolize_options.separate_debug_info = options.separate_debug_info;
        let (mut profile, report) = Symbolizer::new(&symbolize_options).profile(&samples, &modules);
        for &(pid, symbols) in &report.perf_maps_read {
            notes.push(Note::JitSymbols { pid, symbols, source: JitSource::PerfMap });
        }
        for &(pid, symbols) in &report.jitdumps_read {
            notes.push(Note::JitSymbols { pid, symbols, source: JitSource::JitDump });
        }
        crate::runtimes::hints(&samples, &modules, &report, &prepared, &mut notes);
        if report.interpreted > 0 && java {
            notes.push(Note::JavaFrames {
                samples: report.interpreted,
                paired: report.interpreted - report.interpreted_unpaired,
            });
        } else if report.interpreted > 0 {
            notes.push(Note::PythonFrames {
                samples: report.interpreted,
                paired: report.interpreted - report.interpreted_unpaired,
            });
        }
        for skipped in &report.perf_maps_skipped {
            notes.push(Note::JitMapSkipped(skipped.clone()));
        }
        for path in &report.debug_info_skipped {
            notes.push(Note::DebugInfoSkipped {
                path: path.clone(),
                limit_bytes: perfkit_unwind::MAX_DECOMPRESSED_SECTION,
            });
        }
        let depth_limit = match choice.backend {
            Backend::Ebpf => perfkit_probes::MAX_FRAMES,
            Backend::Perf => perfkit_perf_event::MAX_FRAMES,
        };
        truncation_note(&report, depth_limit, &mut notes);
        // What the readers of the targets' files refused (memory budget,
        // row bounds), each naming the file and the limit.
        for line in perfkit_target::notices::take() {
            notes.push(Note::Refused(line));
        }
        if choice.walker == Walker::FramePointers {
            early_stop_note(&profile, &modules, &mut notes);
        }
        let m = &mut profile.meta;
        m.command = description;
        m.duration = elapsed;
        m.frequency_hz = options.frequency_hz.unwrap_or(0);
        m.lost_stacks = lost_stacks;
        m.dropped_samples = dropped;
        m.unit = unit;
        Ok(Finished {
            profile,
            notes,
            choice,
            command,
            command_status: exit,
            idle_samples: idle,
            watched,
            bytes_from_kernel: bytes,
            processes,
            children_hint,
        })
    }
}

/// Puts on- and off-CPU counts in one unit: microseconds whenever off-CPU
/// time is in the profile (on-CPU samples weigh their period), samples
/// otherwise.
fn weigh(samples: &mut [RawSample], options: &Options) -> CountUnit {
    if options.off_cpu.is_none() {
        return CountUnit::Samples;
    }
    let period_ns = options.frequency_hz.map_or(0, |hz| 1_000_000_000 / hz.max(1));
    for s in samples.iter_mut() {
        let ns = match s.kind {
            SampleKind::OnCpu => s.count.saturating_mul(period_ns),
            _ => s.count,
        };
        s.count = ns / 1000;
    }
    CountUnit::Microseconds
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

fn ebpf_notes(st: &perfkit_probes::SampleStats, tables: &perfkit_probes::TableStats, notes: &mut Vec<Note>) {
    let candidates = [
        (st.stacks_full > 0, Note::StacksMapFull { lost: st.stacks_full }),
        (st.stack_errors > 0, Note::StackErrors { lost: st.stack_errors, last_errno: -st.last_error as i32 }),
        (st.counts_full > 0, Note::CountsMapFull { dropped: st.counts_full }),
        (st.requests_dropped > 0, Note::MappingRequestsDropped { dropped: st.requests_dropped }),
        (
            tables.files_over_capacity > 0,
            Note::TablesFull { files: tables.files_over_capacity, row_capacity: tables.row_capacity },
        ),
        (
            tables.mappings_dropped > 0,
            Note::MappingsDropped { dropped: tables.mappings_dropped, per_process: perfkit_probes::MAX_MAPPINGS },
        ),
        (
            tables.files > 0,
            Note::UnwindTables {
                files: tables.files,
                rows: tables.rows,
                row_capacity: tables.row_capacity,
                build_time: tables.build_time,
            },
        ),
        (
            tables.files_on_demand > 0 || tables.tables_requested > 0,
            Note::TablesOnDemand { built: tables.tables_requested, never_reached: tables.files_on_demand },
        ),
        (tables.files_evicted > 0, Note::TablesEvicted { files: tables.files_evicted, rows: tables.rows_evicted }),
        (tables.events_lost > 0, Note::SideBandLost { lost: tables.events_lost }),
        (tables.history_dropped > 0, Note::MappingHistoryDropped { dropped: tables.history_dropped }),
        (
            tables.maps_truncated > 0,
            Note::MapsTruncated { reads: tables.maps_truncated, limit_bytes: perfkit_probes::MAX_MAPS_READ },
        ),
    ];
    notes.extend(candidates.into_iter().filter(|(yes, _)| *yes).map(|(_, n)| n));
}

fn perf_notes(st: &perfkit_perf_event::PerfStats, options: &Options, notes: &mut Vec<Note>) {
    if st.lost > 0 {
        notes.push(Note::RingBuffersFull { lost: st.lost, buffer_bytes: st.buffer_bytes });
    }
    if st.throttled > 0 {
        notes.push(Note::Throttled { times: st.throttled });
    }
    if st.stack_copy_too_small > 0 {
        let needed = st.stack_bytes_needed.next_multiple_of(4096).min(65528);
        let suggested = (st.stack_bytes_needed <= 65528 && options.stack_bytes < 65528).then_some(needed as u32);
        notes.push(Note::StackCopyTooSmall {
            samples: st.stack_copy_too_small,
            copy_bytes: options.stack_bytes,
            needed_bytes: st.stack_bytes_needed,
            suggested,
        });
    }
    if st.bytes > 0 {
        notes.push(Note::ReadFromKernel { bytes: st.bytes });
    }
    if st.interpreted_late > 0 {
        notes.push(Note::InterpreterLate {
            late: st.interpreted_late,
            all: st.interpreted_late + st.interpreted_read,
            max_lag: perfkit_perf_event::MAX_INTERPRETER_LAG,
        });
    }
}

/// For each process given by PID whose existing descendants were left
/// out: when they used more CPU meanwhile than the process was sampled
/// for (at least 0.1 s, and twice its own), a sentence naming them and
/// `--children`.
fn children_hint(left_out: &[LeftOut], samples: &[RawSample], frequency_hz: u64) -> Option<Note> {
    let proc_root = std::path::Path::new("/proc");
    let tick = perfkit_target::family::clock_ticks_per_second() as f64;
    let mut parts = Vec::new();
    for l in left_out {
        let own: u64 =
            samples.iter().filter(|s| s.tgid == l.parent.pid && s.kind == SampleKind::OnCpu).map(|s| s.count).sum();
        let own_s = own as f64 / frequency_hz.max(1) as f64;
        let busy: Vec<(u32, f64)> = l
            .children
            .iter()
            .filter_map(|&(pid, before)| {
                let now = perfkit_target::family::cpu_ticks(proc_root, pid)?;
                Some((pid, now.saturating_sub(before) as f64 / tick))
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        let used: f64 = busy.iter().map(|(_, s)| s).sum();
        if used < 0.1 || used < 2.0 * own_s {
            continue;
        }
        parts.push(ChildrenLeftOut {
            pid: l.parent.pid,
            comm: l.parent.comm.clone(),
            own_samples: own,
            busy: busy.iter().take(8).map(|(p, _)| *p).collect(),
            busy_count: busy.len(),
            cpu_seconds: used,
        });
    }
    if parts.is_empty() {
        return None;
    }
    Some(Note::ChildrenLeftOut(parts))
}

/// How many user stacks end before their outermost frame, and why: the
/// reasons of the profile's `[truncated: REASON]` markers.
fn truncation_note(report: &SymbolizeReport, depth_limit: usize, notes: &mut Vec<Note>) {
    let early: u64 = report.truncated.values().sum();
    let user = report.user_stacks;
    if user == 0 || early == 0 {
        return;
    }
    let reasons = report.truncated.iter().map(|(r, n)| (*r, *n)).collect();
    notes.push(Note::StacksEndEarly { early, user, reasons, depth_limit });
    // With several programs (the whole machine), the ones whose stacks
    // end early the most, each with its reasons.
    if report.truncated_by_program.len() > 1 {
        let mut programs: Vec<EarlyProgram> = report
            .truncated_by_program
            .iter()
            .map(|(name, r)| EarlyProgram {
                name: name.clone(),
                stacks: r.values().sum(),
                reasons: r.iter().map(|(r, c)| (*r, *c)).collect(),
            })
            .collect();
        programs.sort_by(|a, b| b.stacks.cmp(&a.stacks).then(a.name.cmp(&b.name)));
        let more = programs.len().saturating_sub(5);
        programs.truncate(5);
        notes.push(Note::EarlyEndingPrograms { programs, more });
    }
}

/// Functions where a user stack legitimately starts.
const ROOT_FUNCTIONS: &[&str] = &[
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "clone",
    "clone3",
    "__clone",
    "__clone3",
    "thread_start",
    "runtime.goexit",
    "runtime.goexit.abi0",
    "runtime.mstart",
    "runtime.mstart.abi0",
    "runtime.rt0_go",
    "runtime.rt0_go.abi0",
];

/// After a frame-pointer run: when many user stacks do not start at a root
/// function and modules without frame pointers are involved, say so.
fn early_stop_note(profile: &Profile, modules: &Modules, notes: &mut Vec<Note>) {
    let (mut user, mut early) = (0u64, 0u64);
    for s in &profile.stacks {
        let Some(first) = s.frames.iter().find(|f| f.kind != FrameKind::Kernel) else { continue };
        user += s.count;
        if !ROOT_FUNCTIONS.contains(&&*first.name) {
            early += s.count;
        }
    }
    if user == 0 || share(early, user) < 5.0 {
        return;
    }
    let mut lacking: Vec<String> = modules
        .files
        .values()
        .filter(|f| choose::verdict(f) == Verdict::NoFramePointers)
        .map(|f| f.name().to_owned())
        .collect();
    lacking.sort();
    lacking.dedup();
    lacking.truncate(5);
    if lacking.is_empty() {
        return;
    }
    notes.push(Note::NoFramePointers { share_percent: share(early, user), files: lacking });
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfkit_model::Truncation;
    use std::collections::BTreeMap;

    #[derive(Debug, thiserror::Error)]
    #[error("bpf_raw_tracepoint_open failed")]
    struct Syscall(#[source] std::io::Error);

    #[test]
    fn early_ending_stacks_are_named_by_program_with_their_reasons() {
        let mut report = SymbolizeReport::default();
        report.user_stacks = 200;
        let by = |pairs: &[(Truncation, u64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        report.truncated_by_program.insert("qemu".into(), by(&[(Truncation::AnonCode, 77)]));
        report
            .truncated_by_program
            .insert("rustc".into(), by(&[(Truncation::Unmapped, 16), (Truncation::UnsupportedCfi, 33)]));
        report.truncated =
            by(&[(Truncation::AnonCode, 77), (Truncation::Unmapped, 16), (Truncation::UnsupportedCfi, 33)]);
        let mut notes = Vec::new();
        truncation_note(&report, 128, &mut notes);
        let text: Vec<String> = notes.iter().map(Note::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].starts_with("126 of 200 user stacks (63.0%)"), "{text:?}");
        let (anon, unmapped, cfi) =
            (Truncation::AnonCode.word(), Truncation::Unmapped.word(), Truncation::UnsupportedCfi.word());
        assert_eq!(
            text[1],
            format!("early-ending stacks by program: qemu 77 (77 {anon}), rustc 49 (16 {unmapped}, 33 {cfi})")
        );
        // One program: the reasons alone say it all.
        report.truncated_by_program.remove("qemu");
        let mut notes = Vec::new();
        truncation_note(&report, 128, &mut notes);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn auto_falls_back_on_any_load_or_attach_failure_and_says_why() {
        let attach = ProbeError::AttachTracepoint {
            program: "track_exit",
            tracepoint: "sched_process_exit",
            source: perfkit_probes::ProgramError::NotLoaded,
        };
        assert!(ebpf_unavailable(&attach));
        assert!(ebpf_unavailable(&ProbeError::Load(Box::new(Syscall(std::io::Error::from_raw_os_error(22))))));
        assert!(ebpf_unavailable(&ProbeError::Btf("no BTF".into())));
        assert!(ebpf_unavailable(&ProbeError::Tracefs("no tracefs".into())));
        // What perf_event would refuse too stops instead.
        assert!(!ebpf_unavailable(&ProbeError::InvalidConfig("0 entries".into())));
        assert!(!ebpf_unavailable(&ProbeError::FrequencyTooHigh { hz: 1_000_000, max: 100_000 }));
        // The reason names the cause, not just the step.
        let why = with_causes(&ProbeError::Load(Box::new(Syscall(std::io::Error::from_raw_os_error(22)))));
        assert!(why.contains("bpf_raw_tracepoint_open failed") && why.contains("Invalid argument"), "{why}");
        #[derive(Debug, thiserror::Error)]
        #[error(
            "BPF_PROG_LOAD returned E2BIG. Verifier output: 0: (b7) r0 = 0\\n1: (95) exit\\nprocessed 1000001 insns\\n"
        )]
        struct Refused;
        let why = with_causes(&ProbeError::Load(Box::new(Refused)));
        assert!(why.ends_with("E2BIG. (verifier: processed 1000001 insns)"), "{why}");
    }
}
