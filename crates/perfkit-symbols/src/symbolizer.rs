use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    sync::Arc,
};

use blazesym::symbolize::{
    self, CodeInfo, Input, Symbolized,
    source::{Elf, Kernel, Source},
};
use perfkit_model::{
    Frame, FrameKind, Location, Origin, Profile, Stack, Truncation,
    raw::{InterpretedFrame, RawFrame, RawSample, RawStack, SampleKind, StackEnd},
};
use perfkit_target::{ModuleFile, Modules};
use perfkit_unwind::{ElfLayout, gopclntab::GoTable};

use crate::{perfmap::PerfMap, symtab::SymbolIndex};

/// What the root frame of each stack is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grouping {
    /// The process's name: all processes of one name merge.
    #[default]
    Process,
    /// One root per process: `name-PID`.
    PerProcess,
    /// One root per thread: `thread-name-PID/TID`.
    PerThread,
}

/// What to resolve beyond function names, and how to root stacks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SymbolizeOptions {
    /// Report functions inlined at an address as their own frames.
    pub inlined: bool,
    /// Demangle Rust and C++ names.
    pub demangle: bool,
    /// The root frame of each stack.
    pub grouping: Grouping,
    /// Read the DWARF of separate debug files (found by build id or
    /// `.gnu_debuglink`, as `/usr/lib/debug` holds them for distribution
    /// libraries) for the inlined frames and `file:line` of stripped
    /// files. Off by default: such a file is usually compressed, and
    /// decompressing it costs more than a short profile (libc's, 4 MiB,
    /// inflates to tens); its `.symtab` names their functions all the same.
    /// Files that carry their own debug information are always read.
    pub separate_debug_info: bool,
}

impl Default for SymbolizeOptions {
    fn default() -> Self {
        Self { inlined: true, demangle: true, grouping: Grouping::Process, separate_debug_info: false }
    }
}

/// Turns addresses into frames. Caches parsed files between calls.
pub struct Symbolizer {
    inner: symbolize::Symbolizer,
    options: SymbolizeOptions,
    /// What blazesym decompresses and caches (the files' compressed
    /// sections), held in the budget while the symbolizer lives.
    charges: std::sync::Mutex<Vec<perfkit_safeio::Charge>>,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Symbolizer")
    }
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new(&SymbolizeOptions::default())
    }
}

/// Frames for one address, outermost first (the function, then what was
/// inlined into it).
type Frames = Vec<Frame>;

/// A place in a file: which file (by identity) and its file offset.
type Place = (usize, u64);

/// What symbolizing a profile found worth telling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SymbolizeReport {
    /// JIT symbol maps read, per process.
    pub perf_maps_read: Vec<(u32, usize)>,
    /// Jitdump files (`/tmp/jit-PID.dump`) read, per process: entries.
    pub jitdumps_read: Vec<(u32, usize)>,
    /// JIT symbol maps not read, and why.
    pub perf_maps_skipped: Vec<String>,
    /// Per process with code outside any file (JIT code) that no perf map
    /// or jitdump named: (pid, samples with such a frame, all its samples).
    pub jit_unnamed: Vec<(u32, u64, u64)>,
    /// Files whose debug information was not read because a compressed
    /// section of theirs would decompress beyond
    /// [`perfkit_unwind::MAX_DECOMPRESSED_SECTION`], or all of them beyond
    /// [`perfkit_unwind::MAX_DECOMPRESSED_TOTAL`].
    pub debug_info_skipped: Vec<String>,
    /// On-CPU samples with a user stack (walked, or lost).
    pub user_stacks: u64,
    /// Of those, the samples whose user stack ended before its outermost
    /// frame, by reason (each marked `[truncated: REASON]` in the profile).
    pub truncated: BTreeMap<Truncation, u64>,
    /// The same, per program (the process name): on a whole machine, which
    /// programs' stacks end early, and why.
    pub truncated_by_program: BTreeMap<String, BTreeMap<Truncation, u64>>,
    /// On-CPU samples with interpreted (Python) frames.
    pub interpreted: u64,
    /// Of those, the samples whose interpreted frames did not pair one to
    /// one with the native frames of the interpreter's loop (a stack read
    /// as it changed, or a native walk that ended early): merged as well
    /// as they pair, from the root (see [`merge_interpreted`]).
    pub interpreted_unpaired: u64,
}

/// The native function of CPython's evaluation loop (3.8 to 3.13): each
/// of its frames runs one group of Python frames.
pub const PYTHON_EVAL_LOOP: &str = "_PyEval_EvalFrameDefault";

/// HotSpot's template interpreter, as the JVM's perf map names its code
/// blob: each of its frames runs one interpreted Java method.
pub const JAVA_INTERPRETER: &str = "Interpreter";

/// Whether a native frame runs interpreted frames: CPython's evaluation
/// loop, or HotSpot's interpreter (JIT code the perf map names).
fn runs_interpreted(frame: &Frame) -> bool {
    match frame.kind {
        FrameKind::User => &*frame.name == PYTHON_EVAL_LOOP,
        FrameKind::Jit => &*frame.name == JAVA_INTERPRETER,
        _ => false,
    }
}

/// Puts interpreted frames (`interpreted`, innermost first) into a
/// symbolized user stack (`frames[start..]`, root first) where the
/// interpreter runs them, as `py-spy --native` does: each native frame of
/// the evaluation loop ([`PYTHON_EVAL_LOOP`], with the frames inlined into
/// it), or of HotSpot's interpreter ([`JAVA_INTERPRETER`]), is replaced by
/// the group of interpreted frames it runs (from an entry frame to the
/// next inner one; every interpreted Java frame is an entry). Groups and loop frames pair from the
/// root; extra groups go at the innermost loop frame, or after the native
/// frames when there is none; extra loop frames stay. Returns whether they
/// paired one to one.
pub fn merge_interpreted(frames: &mut Vec<Frame>, start: usize, interpreted: &[InterpretedFrame]) -> bool {
    if interpreted.is_empty() {
        return true;
    }
    // Groups, root first, each root first.
    let mut groups: Vec<Vec<Frame>> = Vec::new();
    for f in interpreted.iter().rev() {
        // Java frames have no file (their class is in their name).
        let place = (!f.file.is_empty()).then(|| Location { file: f.file.clone(), line: f.line });
        let frame = Frame::interpreted(f.name.clone()).at(place);
        match groups.last_mut() {
            Some(g) if !f.entry => g.push(frame),
            _ => groups.push(vec![frame]),
        }
    }
    let loops: Vec<usize> = (start..frames.len()).filter(|&i| runs_interpreted(&frames[i])).collect();
    let paired = loops.len() == groups.len();
    if loops.is_empty() {
        frames.extend(groups.into_iter().flatten());
        return false;
    }
    // Extra groups join the innermost loop frame's.
    let pairs = loops.len().min(groups.len());
    let extra: Vec<Frame> = groups.drain(pairs..).flatten().collect();
    if let Some(last) = groups.last_mut() {
        last.extend(extra);
    }
    // Replace from the innermost, so that earlier indices stay valid.
    for (i, group) in loops.iter().take(pairs).zip(groups).rev() {
        let mut end = i + 1;
        while end < frames.len() && frames[end].kind == FrameKind::Inlined {
            end += 1;
        }
        frames.splice(*i..end, group);
    }
    paired
}

/// The signal trampolines of C libraries (glibc, musl): where a signal
/// handler returns to.
const SIGNAL_TRAMPOLINES: &[&str] = &["__restore_rt", "__restore"];

/// Why a user stack ended, with what the backend said refined by where its
/// outermost frame reached is: a walk that stopped in anonymous executable
/// memory stopped at code without unwind information or frame pointer
/// (`anon-code`), and one that stopped at an address in no known mapping
/// could not know how to go on (`unmapped`). A stack whose outermost frame
/// is either did not reach its root whatever the backend said (a frame
/// pointer of 0 there is not the root's, and the kernel's frame-pointer
/// callchains say nothing).
fn stack_end(end: StackEnd, tgid: u32, ips: &[u64], modules: &Modules) -> StackEnd {
    let reason = match end {
        StackEnd::Truncated(Truncation::Depth | Truncation::StackCopy | Truncation::SignalFrame) => return end,
        StackEnd::Truncated(r) => Some(r),
        _ => None,
    };
    let in_file = |f: &u64| matches!(RawFrame::decode(*f), RawFrame::InFile { .. });
    let Some((outermost, inner)) = ips.split_last() else { return end };
    if in_file(outermost) {
        return end;
    }
    let refined = match modules.find(tgid, *outermost) {
        Some(m) if m.is_anonymous() => Some(Truncation::AnonCode),
        Some(_) => reason,
        // A walk that was in known files all along and stepped, by frame
        // pointers, out of one whose table was still being built: the
        // address it reached is the wrong step's, not a mapping missed.
        None if reason == Some(Truncation::TablePending) && !inner.is_empty() && inner.iter().all(in_file) => reason,
        None => Some(Truncation::Unmapped),
    };
    refined.map_or(StackEnd::Complete, StackEnd::Truncated)
}

impl Symbolizer {
    /// A symbolizer with these options.
    pub fn new(options: &SymbolizeOptions) -> Self {
        let inner = symbolize::Symbolizer::builder()
            .enable_inlined_fns(options.inlined)
            .enable_demangling(options.demangle)
            .enable_code_info(options.inlined)
            .build();
        Self { inner, options: options.clone(), charges: std::sync::Mutex::new(Vec::new()) }
    }

    /// Symbolizes raw samples into a profile. User frames are resolved
    /// through `modules`: encoded frames by file id, plain addresses by the
    /// process's mappings, JIT code by the process's perf map.
    pub fn profile(&self, samples: &[RawSample], modules: &Modules) -> (Profile, SymbolizeReport) {
        let mut report = SymbolizeReport::default();
        // Every distinct file, numbered.
        let mut files: Vec<Arc<ModuleFile>> = Vec::new();
        let mut file_index: HashMap<*const ModuleFile, usize> = HashMap::new();
        let mut index_of = |f: &Arc<ModuleFile>| -> usize {
            *file_index.entry(Arc::as_ptr(f)).or_insert_with(|| {
                files.push(f.clone());
                files.len() - 1
            })
        };
        // Resolve each distinct user address to a place in a file, or to
        // JIT code, or to nothing.
        enum Target {
            Place(Place),
            /// In a known anonymous executable mapping: generated code.
            Jit(u32, u64),
            /// In no mapping known even now (a mapping never seen, or a
            /// wrong step): a perf map may still name it, but it does not
            /// count as a runtime's unnamed code.
            Unmapped(u32, u64),
            Unknown,
        }
        let mut user_targets: HashMap<(u32, u64), Target> = HashMap::new();
        let mut kernel_addrs: HashSet<u64> = HashSet::new();
        for s in samples {
            if let RawStack::Frames(ips) = &s.user {
                for (i, &ip) in ips.iter().enumerate() {
                    let key = (s.tgid, ip);
                    if user_targets.contains_key(&key) {
                        continue;
                    }
                    let t = match RawFrame::decode(ip) {
                        RawFrame::InFile { file: id, offset: off } => match modules.files.get(&id) {
                            Some(f) => Target::Place((index_of(f), call_site(i, off))),
                            None => Target::Unknown,
                        },
                        RawFrame::Address(_) => match modules.find(s.tgid, ip) {
                            Some(m) => match &m.file {
                                Some(f) => Target::Place((index_of(f), call_site(i, m.file_offset(ip)))),
                                // Anonymous executable memory: JIT code.
                                None if !m.path.starts_with('/') => Target::Jit(s.tgid, call_site(i, ip)),
                                None => Target::Unknown,
                            },
                            None => Target::Unmapped(s.tgid, call_site(i, ip)),
                        },
                    };
                    user_targets.insert(key, t);
                }
            }
            if let RawStack::Frames(ips) = &s.kernel {
                for (i, &ip) in ips.iter().enumerate() {
                    kernel_addrs.insert(call_site(i, ip));
                }
            }
        }

        // Symbolize each file's places in one batch.
        let mut by_file: HashMap<usize, Vec<u64>> = HashMap::new();
        for t in user_targets.values() {
            if let Target::Place((f, off)) = t {
                by_file.entry(*f).or_default().push(*off);
            }
        }
        let mut resolved: HashMap<Place, Frames> = HashMap::new();
        for (f, mut offsets) in by_file {
            offsets.sort_unstable();
            offsets.dedup();
            let frames = self.file(&files[f], &offsets, &mut report);
            for (off, fr) in offsets.into_iter().zip(frames) {
                resolved.insert((f, off), fr);
            }
        }

        // JIT code: each process's perf map, read once.
        let mut jit_pids: Vec<u32> = user_targets
            .values()
            .filter_map(|t| match t {
                Target::Jit(pid, _) | Target::Unmapped(pid, _) => Some(*pid),
                _ => None,
            })
            .collect();
        jit_pids.sort_unstable();
        jit_pids.dedup();
        let mut maps: HashMap<u32, PerfMap> = HashMap::new();
        let mut dumps: HashMap<u32, PerfMap> = HashMap::new();
        for pid in jit_pids {
            let mut m = PerfMap::default();
            match m.update(&PerfMap::path_of(pid), modules.uids.get(&pid).copied()) {
                Ok(()) => {
                    report.perf_maps_read.push((pid, m.len()));
                    report.perf_maps_skipped.extend(m.notes());
                    maps.insert(pid, m);
                }
                Err(crate::perfmap::PerfMapError::Missing(_)) => {}
                Err(e) => report.perf_maps_skipped.push(e.to_string()),
            }
            match PerfMap::read_jitdump(&PerfMap::jitdump_path_of(pid), modules.uids.get(&pid).copied()) {
                Ok(m) => {
                    report.jitdumps_read.push((pid, m.len()));
                    report.perf_maps_skipped.extend(m.notes());
                    dumps.insert(pid, m);
                }
                Err(crate::perfmap::PerfMapError::Missing(_)) => {}
                Err(e) => report.perf_maps_skipped.push(e.to_string()),
            }
        }
        // Per process: samples with an unnamed JIT frame, and all samples.
        let mut jit_unnamed: HashMap<u32, (u64, u64)> = HashMap::new();

        let kernel_addrs: Vec<u64> = {
            let mut v: Vec<u64> = kernel_addrs.into_iter().collect();
            v.sort_unstable();
            v
        };
        let kernel = if kernel_addrs.is_empty() { HashMap::new() } else { self.kernel(&kernel_addrs) };

        let mut profile = Profile::default();
        let unknown = vec![Frame::unknown_user(None)];
        for s in samples {
            let mut frames = Vec::new();
            let mut unnamed_jit = false;
            match &s.user {
                RawStack::Frames(ips) => {
                    let mut end = if ips.is_empty() { s.user_end } else { stack_end(s.user_end, s.tgid, ips, modules) };
                    let outermost = match ips.last().map(|&ip| &user_targets[&(s.tgid, ip)]) {
                        Some(Target::Place(p)) => resolved.get(p).and_then(|f| f.first()).map(|f| &*f.name),
                        _ => None,
                    };
                    match end {
                        // A rule the walker could not follow in the signal
                        // trampoline (its CFI is an expression): a signal
                        // frame.
                        StackEnd::Truncated(Truncation::UnsupportedCfi)
                            if outermost.is_some_and(|n| SIGNAL_TRAMPOLINES.contains(&n)) =>
                        {
                            end = StackEnd::Truncated(Truncation::SignalFrame);
                        }
                        // A walk that reached the program's entry point
                        // (the dynamic loader's `_start`, early in a
                        // process) is complete, even when the unwinder
                        // failed to step beyond it.
                        StackEnd::Truncated(Truncation::NoCfi | Truncation::ReadFault | Truncation::Other)
                            if outermost == Some("_start") =>
                        {
                            end = StackEnd::Complete;
                        }
                        _ => {}
                    }
                    if let StackEnd::Truncated(reason) = end {
                        frames.push(Frame::truncated(reason));
                        if s.kind == SampleKind::OnCpu {
                            *report.truncated.entry(reason).or_default() += s.count;
                            let program = report.truncated_by_program.entry(s.process.clone()).or_default();
                            *program.entry(reason).or_default() += s.count;
                        }
                    }
                    if s.kind == SampleKind::OnCpu {
                        report.user_stacks += s.count;
                    }
                    for (i, &ip) in ips.iter().enumerate().rev() {
                        match &user_targets[&(s.tgid, ip)] {
                            Target::Place(p) => frames.extend(resolved.get(p).unwrap_or(&unknown).iter().cloned()),
                            Target::Jit(pid, addr) | Target::Unmapped(pid, addr) => {
                                let name = maps.get_mut(pid).and_then(|m| m.lookup(*addr)).map(str::to_owned);
                                let name = name
                                    .or_else(|| dumps.get_mut(pid).and_then(|m| m.lookup(*addr)).map(str::to_owned))
                                    // Read from the runtime (a JVM's code
                                    // cache) when no map names it.
                                    .or_else(|| modules.code_name(*pid, *addr).map(|n| n.to_string()));
                                match name {
                                    Some(name) => {
                                        frames.push(Frame::jit(name));
                                        // The methods the runtime inlined
                                        // there (a JVM's compiled code).
                                        let inlined = modules.inlined_at(*pid, *addr);
                                        frames.extend(inlined.iter().map(|n| Frame::inlined(n.clone())));
                                    }
                                    None => {
                                        let target = &user_targets[&(s.tgid, ip)];
                                        unnamed_jit |= matches!(target, Target::Jit(..));
                                        frames.push(Frame::user("[unknown]"));
                                    }
                                }
                            }
                            Target::Unknown => frames.push(Frame::unknown_user(None)),
                        }
                        let _ = i;
                    }
                    if !s.interpreted.is_empty() {
                        let paired = merge_interpreted(&mut frames, 0, &s.interpreted);
                        if s.kind == SampleKind::OnCpu {
                            report.interpreted += s.count;
                            report.interpreted_unpaired += if paired { 0 } else { s.count };
                        }
                    }
                }
                RawStack::Lost | RawStack::None if !s.interpreted.is_empty() => {
                    merge_interpreted(&mut frames, 0, &s.interpreted);
                    if s.kind == SampleKind::OnCpu {
                        report.interpreted += s.count;
                        report.interpreted_unpaired += s.count;
                    }
                }
                RawStack::Lost => {
                    frames.push(Frame::user("[lost stack]"));
                    if s.kind == SampleKind::OnCpu {
                        report.user_stacks += s.count;
                    }
                }
                RawStack::None => {}
            }
            match &s.kernel {
                RawStack::Frames(ips) => {
                    let start = frames.len();
                    for (i, &ip) in ips.iter().enumerate().rev() {
                        match kernel.get(&call_site(i, ip)) {
                            Some(f) => frames.extend(f.iter().cloned()),
                            None => frames.push(Frame::unknown_kernel(None)),
                        }
                    }
                    // A stack taken in a tracepoint program ends in the
                    // program and the kernel's code that ran it: cut at the
                    // outermost tracing-hook frame, so that the task's own
                    // stack ends where it scheduled whatever ran the
                    // program (a direct static call with one program on
                    // the tracepoint; `__traceiter_*` with two or more).
                    if let Some(hook) = frames[start..].iter().position(|f| is_tracing_hook(&f.name)) {
                        frames.truncate(start + hook);
                    }
                }
                RawStack::Lost => frames.push(Frame::kernel("[lost stack]")),
                RawStack::None => {}
            }
            let e = jit_unnamed.entry(s.tgid).or_default();
            e.0 += if unnamed_jit { s.count } else { 0 };
            e.1 += s.count;
            profile.push(Stack::new(self.root(s), frames, s.count));
        }
        let mut unnamed: Vec<(u32, u64, u64)> =
            jit_unnamed.into_iter().filter(|(_, (u, _))| *u > 0).map(|(p, (u, t))| (p, u, t)).collect();
        unnamed.sort_unstable();
        report.jit_unnamed = unnamed;
        (profile, report)
    }

    /// The root frame's name for a sample.
    fn root(&self, s: &RawSample) -> String {
        let process = if s.process.is_empty() { &s.comm } else { &s.process };
        match self.options.grouping {
            Grouping::Process => process.clone(),
            Grouping::PerProcess => format!("{process}-{}", s.tgid),
            Grouping::PerThread => format!("{}-{}/{}", s.comm, s.tgid, s.tid),
        }
    }

    /// Symbolizes file offsets of one file.
    fn file(&self, file: &ModuleFile, offsets: &[u64], report: &mut SymbolizeReport) -> Vec<Frames> {
        let data = file.map().ok();
        let budget = perfkit_safeio::Budget::process();
        let index = data.as_deref().map(|d| SymbolIndex::new(d, budget, file.path())).unwrap_or_default();
        let layout = data.as_deref().map(ElfLayout::parse).unwrap_or_default();
        let build_id: Option<std::sync::Arc<str>> = data.as_deref().and_then(build_id).map(Into::into);
        let origin_path: std::sync::Arc<str> = file.path().into();
        let path = file.fd_path();
        let module = file.name().to_owned();
        let unresolved = |off: u64| -> Frames {
            // Unknown functions keep their place, as perf shows them:
            // module + address in the module.
            let addr = layout.offset_to_vaddr(off).unwrap_or(off);
            let origin = Origin { path: origin_path.clone(), build_id: build_id.clone(), file_offset: off };
            vec![Frame::user(format!("{module}+{addr:#x}")).from_origin(Some(origin))]
        };
        // A stripped file: without separate debug files' DWARF, its
        // functions are named from its symbol tables and its debug file's.
        if !self.options.separate_debug_info && data.as_deref().is_some_and(|d| !has_own_debug_info(d)) {
            let mut index = index;
            let debug = data.as_deref().and_then(|d| separate_debug_file(d, file.path()));
            let debug_map = debug.as_ref().and_then(|f| f.map().ok());
            if let (Some(f), Some(d)) = (&debug, debug_map.as_deref()) {
                index.add(d, budget, f.path());
            }
            let mut go = GoNames::new(data.as_deref(), budget, file.path());
            return offsets
                .iter()
                .map(|&off| {
                    let vaddr = layout.offset_to_vaddr(off);
                    match vaddr.and_then(|a| index.containing(a)) {
                        Some((_, name)) => vec![Frame::user(name)],
                        None => vaddr.and_then(|a| go.frames(a)).unwrap_or_else(|| unresolved(off)),
                    }
                })
                .collect();
        }
        let mut elf = Elf::new(&path);
        // blazesym decompresses each compressed section it reads, whole,
        // and keeps it as long as it caches the file: their total is
        // bounded ([`perfkit_unwind::MAX_DECOMPRESSED_TOTAL`]) and charged
        // to the budget, or the debug information is not read.
        let sizes = data.as_deref().map(perfkit_unwind::compressed_sizes).unwrap_or_default();
        let mut decompress_ok = true;
        if data.as_deref().is_some_and(perfkit_unwind::has_oversized_compressed_section) {
            report.debug_info_skipped.push(file.path().to_owned());
            decompress_ok = false;
        } else if sizes.total() > 0 {
            match budget.charge(sizes.total(), format_args!("{} (compressed sections)", file.path())) {
                Ok(c) => self.charges.lock().unwrap_or_else(|e| e.into_inner()).push(c),
                Err(e) => {
                    perfkit_target::notices::push(format!("{e}; its debug information is not read"));
                    decompress_ok = false;
                }
            }
        }
        if !decompress_ok {
            elf.debug_syms = false;
            // Symbol tables compressed too (only a hostile file does
            // that): blazesym is not given the file at all.
            if sizes.other > 0 {
                return offsets.iter().map(|&o| unresolved(o)).collect();
            }
        }
        let mut go = GoNames::new(data.as_deref(), budget, file.path());
        let src = Source::Elf(elf);
        let results = match self.inner.symbolize(&src, Input::FileOffset(offsets)) {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(path = file.path(), %err, "symbolizing a module failed");
                return offsets.iter().map(|&o| unresolved(o)).collect();
            }
        };
        offsets
            .iter()
            .zip(results)
            .map(|(&off, sym)| match sym {
                Symbolized::Sym(sym) => {
                    // The symbol tables' name, as perf prints it, where one
                    // starts at the function: qualified, public alias.
                    let name = index.best_name(sym.addr).unwrap_or_else(|| sym.name.to_string());
                    let mut frames = vec![Frame::user(name).at(location(sym.code_info.as_deref()))];
                    frames.extend(
                        sym.inlined
                            .iter()
                            .map(|f| Frame::inlined(f.name.to_string()).at(location(f.code_info.as_ref()))),
                    );
                    frames
                }
                Symbolized::Unknown(_) => {
                    // blazesym found nothing; a local symbol may still
                    // cover it, or Go's function table (stripped Go).
                    let vaddr = layout.offset_to_vaddr(off);
                    match vaddr.and_then(|a| index.containing(a)) {
                        Some((_, name)) => vec![Frame::user(name)],
                        None => vaddr.and_then(|a| go.frames(a)).unwrap_or_else(|| unresolved(off)),
                    }
                }
            })
            .collect()
    }

    /// Symbolizes kernel addresses with kallsyms (and vmlinux when found).
    pub fn kernel(&self, addrs: &[u64]) -> HashMap<u64, Frames> {
        let src = Source::Kernel(Kernel::default());
        match self.inner.symbolize(&src, Input::AbsAddr(addrs)) {
            Ok(results) => addrs
                .iter()
                .zip(results)
                .map(|(&addr, sym)| {
                    let frames = match sym {
                        Symbolized::Sym(sym) => {
                            let mut v = vec![Frame::kernel(sym.name.into_owned())];
                            v.extend(sym.inlined.iter().map(|f| Frame::kernel(f.name.to_string())));
                            v
                        }
                        Symbolized::Unknown(_) => vec![Frame::unknown_kernel(None)],
                    };
                    (addr, frames)
                })
                .collect(),
            Err(err) => {
                tracing::warn!(%err, "kernel symbolization failed");
                addrs.iter().map(|&a| (a, vec![Frame::unknown_kernel(None)])).collect()
            }
        }
    }
}

/// Names from a Go binary's `.gopclntab`, for code no symbol names
/// (stripped Go): the table is found once, on the first address that needs
/// it, and the frames built from it are charged to the budget.
struct GoNames<'d> {
    data: Option<&'d [u8]>,
    table: Option<Option<GoTable<'d>>>,
    charge: perfkit_safeio::Charge,
}

impl<'d> GoNames<'d> {
    fn new(data: Option<&'d [u8]>, budget: &perfkit_safeio::Budget, what: &str) -> Self {
        Self { data, table: None, charge: budget.start(format_args!("{what} (Go function names)")) }
    }

    /// The frames at a virtual address, outermost first, inlined calls
    /// marked; `None` when the file has no table, no function holds the
    /// address, or the budget is spent.
    fn frames(&mut self, vaddr: u64) -> Option<Frames> {
        let data = self.data?;
        let table = self.table.get_or_insert_with(|| GoTable::find(data)).as_ref()?;
        let found = table.lookup(vaddr)?;
        let size: usize = found
            .iter()
            .map(|f| std::mem::size_of::<Frame>() + f.name.len() + f.file.as_ref().map_or(0, |f| f.len()))
            .sum();
        self.charge.grow(size as u64).ok()?;
        Some(
            found
                .into_iter()
                .map(|f| {
                    let at = f.file.map(|file| Location { file: file.into_owned().into(), line: f.line });
                    let name = f.name.into_owned();
                    if f.inlined { Frame::inlined(name) } else { Frame::user(name) }.at(at)
                })
                .collect(),
        )
    }
}

/// Return addresses point after their call: all frames but the innermost
/// are looked up one byte earlier, at the call itself.
fn call_site(index: usize, addr: u64) -> u64 {
    if index == 0 { addr } else { addr.saturating_sub(1) }
}

/// Whether an ELF file carries DWARF of its own (a `.debug_info` with
/// bytes in the file), compressed or not.
fn has_own_debug_info(data: &[u8]) -> bool {
    use object::{Object, ObjectSection, SectionKind};
    let Ok(file) = object::File::parse(data) else { return false };
    file.section_by_name(".debug_info").is_some_and(|s| s.kind() != SectionKind::UninitializedData && s.size() > 0)
}

/// The separate debug file of a stripped ELF file, where the system keeps
/// one, as gdb and perf find it: by build id under
/// `/usr/lib/debug/.build-id`, or by its `.gnu_debuglink` name beside the
/// file, in its `.debug` directory or under `/usr/lib/debug`. Taken only
/// when its build id is the file's: another build's symbols would name
/// the wrong functions.
fn separate_debug_file(data: &[u8], path: &str) -> Option<ModuleFile> {
    use object::Object;
    const ROOT: &str = "/usr/lib/debug";
    let file = object::File::parse(data).ok()?;
    let id = file.build_id().ok()??.to_vec();
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut candidates = Vec::new();
    if hex.len() > 2 {
        candidates.push(std::path::PathBuf::from(format!("{ROOT}/.build-id/{}/{}.debug", &hex[..2], &hex[2..])));
    }
    if let Ok(Some((name, _crc))) = file.gnu_debuglink()
        && let Ok(name) = std::str::from_utf8(name)
        && !name.is_empty()
        && !name.contains('/')
        && let Some(dir) = Path::new(path.strip_suffix(" (deleted)").unwrap_or(path)).parent()
    {
        candidates.push(dir.join(name));
        candidates.push(dir.join(".debug").join(name));
        candidates.push(Path::new(ROOT).join(dir.strip_prefix("/").unwrap_or(dir)).join(name));
    }
    candidates.into_iter().find_map(|candidate| {
        let f = ModuleFile::open_path(&candidate).ok()?;
        let map = f.map().ok()?;
        let same = object::File::parse(&*map).ok()?.build_id().ok()?? == id.as_slice();
        same.then_some(f)
    })
}

/// The GNU build id of an ELF file, hex.
fn build_id(data: &[u8]) -> Option<String> {
    use object::Object;
    let file = object::File::parse(data).ok()?;
    let id = file.build_id().ok()??;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

fn location(info: Option<&CodeInfo<'_>>) -> Option<Location> {
    let info = info?;
    let file = match &info.dir {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(&info.file),
        _ => Path::new(&info.file).to_owned(),
    };
    Some(Location { file: file.to_string_lossy().into_owned().into(), line: info.line.unwrap_or(0) })
}

/// Kernel functions through which a BPF tracing program runs: frames from
/// the outermost of them to the leaf are the probe's, not the traced
/// task's. The tracepoint iterator (`__traceiter_*`, called when more than
/// one program or tracer is attached) and its static-call trampoline, the
/// BPF glue (`__bpf_trace_*`, `bpf_trace_run*`, `__bpf_trace_run`,
/// `trace_call_bpf`, `perf_trace_*`, `perf_syscall_*` for the syscalls
/// tracepoints, `__probestub_*`), and BPF programs and trampolines
/// themselves.
fn is_tracing_hook(name: &str) -> bool {
    const PREFIXES: [&str; 11] = [
        "__traceiter_",
        "__SCT__tp_func_",
        "__bpf_trace_",
        "bpf_trace_run",
        "__bpf_trace_run",
        "trace_call_bpf",
        "perf_trace_",
        "perf_syscall_",
        "__probestub_",
        "bpf_prog_",
        "bpf_trampoline_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use perfkit_target::Mapping;

    use super::*;

    fn encode_frame(file: u32, offset: u64) -> u64 {
        RawFrame::InFile { file, offset }.encode()
    }

    fn modules() -> Modules {
        let mut m = Modules::default();
        let map = |start, path: &str| Mapping { start, end: start + 0x1000, offset: 0, path: path.into(), file: None };
        m.processes.insert(7, vec![map(0x1000, ""), map(0x3000, "[anon:jit]"), map(0x5000, "[vdso]")]);
        m
    }

    #[test]
    fn a_walk_that_stops_in_anonymous_memory_or_nowhere_says_so() {
        let m = modules();
        let cut = StackEnd::Truncated;
        // Stopped in generated code, whatever the walker said.
        assert_eq!(stack_end(cut(Truncation::NoCfi), 7, &[0x1010], &m), cut(Truncation::AnonCode));
        assert_eq!(stack_end(cut(Truncation::ReadFault), 7, &[0x3010], &m), cut(Truncation::AnonCode));
        // A frame pointer of 0 in generated code is not the root.
        assert_eq!(stack_end(StackEnd::Complete, 7, &[0x1010], &m), cut(Truncation::AnonCode));
        // An address in no mapping.
        assert_eq!(stack_end(StackEnd::Complete, 7, &[0x9000], &m), cut(Truncation::Unmapped));
        assert_eq!(stack_end(cut(Truncation::NoCfi), 8, &[0x1010], &m), cut(Truncation::Unmapped));
        // The vDSO is not anonymous memory; a place in a file stays as said.
        assert_eq!(stack_end(cut(Truncation::NoCfi), 7, &[0x5010], &m), cut(Truncation::NoCfi));
        assert_eq!(stack_end(StackEnd::Complete, 7, &[encode_frame(3, 0x10)], &m), StackEnd::Complete);
        assert_eq!(stack_end(cut(Truncation::ReadFault), 7, &[encode_frame(3, 0x10)], &m), cut(Truncation::ReadFault));
        // The depth limit and the stack copy are what they are.
        assert_eq!(stack_end(cut(Truncation::Depth), 7, &[0x1010], &m), cut(Truncation::Depth));
        assert_eq!(stack_end(cut(Truncation::StackCopy), 7, &[0x9000], &m), cut(Truncation::StackCopy));
    }

    #[test]
    fn a_step_out_of_a_file_whose_table_was_pending_is_not_called_unmapped() {
        let m = modules();
        let cut = StackEnd::Truncated;
        let leaf = encode_frame(3, 0x10);
        // Known files, then a wrong frame-pointer step into nowhere.
        assert_eq!(stack_end(cut(Truncation::TablePending), 7, &[leaf, 0x9000], &m), cut(Truncation::TablePending));
        // An unknown address before the last: a mapping was missed.
        assert_eq!(stack_end(cut(Truncation::TablePending), 7, &[0x9100, leaf, 0x9000], &m), cut(Truncation::Unmapped));
        // Nothing known at all.
        assert_eq!(stack_end(cut(Truncation::TablePending), 7, &[0x9000], &m), cut(Truncation::Unmapped));
        // The pending file itself is the outermost frame.
        assert_eq!(stack_end(cut(Truncation::TablePending), 7, &[leaf], &m), cut(Truncation::TablePending));
        // Stopped in generated code after all.
        assert_eq!(stack_end(cut(Truncation::TablePending), 7, &[leaf, 0x3010], &m), cut(Truncation::AnonCode));
    }
}

#[cfg(test)]
mod interpreted_tests {
    use std::sync::Arc;

    use super::*;

    fn py(name: &str, line: u32, entry: bool) -> InterpretedFrame {
        InterpretedFrame { name: name.into(), file: Arc::from("/app/x.py"), line, entry }
    }

    fn names(frames: &[Frame]) -> Vec<String> {
        frames.iter().map(Frame::folded_name).collect()
    }

    #[test]
    fn python_frames_replace_the_loop_frames_that_run_them() {
        // Native, root first: two loop frames (the inner one with a frame
        // inlined into it), a C call between them.
        let mut frames = vec![
            Frame::user("main"),
            Frame::user(PYTHON_EVAL_LOOP),
            Frame::inlined("eval_helper"),
            Frame::user("PyObject_Call"),
            Frame::user(PYTHON_EVAL_LOOP),
            Frame::user("_PyObject_Malloc"),
        ];
        // Python, innermost first: leaf and caller in the inner loop call,
        // <module> alone in the outer one.
        let python = [py("leaf", 7, false), py("Caller.run", 3, true), py("<module>", 20, true)];
        assert!(merge_interpreted(&mut frames, 0, &python));
        assert_eq!(names(&frames), ["main", "<module>", "PyObject_Call", "Caller.run", "leaf", "_PyObject_Malloc"]);
        assert_eq!(frames[4].kind, FrameKind::Interpreted);
        assert_eq!(frames[4].location.as_deref().map(|l| (&*l.file, l.line)), Some(("/app/x.py", 7)));
    }

    #[test]
    fn java_frames_replace_the_interpreter_frames_that_run_them() {
        // Root first: the call stub's caller, two frames of the
        // interpreter, a compiled method, the sampled one.
        let mut frames = vec![
            Frame::user("JavaCalls::call_helper"),
            Frame::jit("StubRoutines (1)"),
            Frame::jit(JAVA_INTERPRETER),
            Frame::jit(JAVA_INTERPRETER),
            Frame::jit("long HotSplit.callerOne(long)"),
            Frame::jit("long HotSplit.hotAlpha(long, int)"),
        ];
        let java = |name: &str| InterpretedFrame { name: name.into(), file: Arc::from(""), line: 0, entry: true };
        let interpreted = [java("void HotSplit.loop()"), java("void HotSplit.main(java.lang.String[])")];
        assert!(merge_interpreted(&mut frames, 0, &interpreted));
        assert_eq!(
            names(&frames),
            [
                "JavaCalls::call_helper",
                "StubRoutines (1)_[j]",
                "void HotSplit.main(java.lang.String[])",
                "void HotSplit.loop()",
                "long HotSplit.callerOne(long)_[j]",
                "long HotSplit.hotAlpha(long, int)_[j]",
            ]
        );
        assert_eq!(frames[3].kind, FrameKind::Interpreted);
        assert_eq!(frames[3].location, None, "a Java frame has no file");
    }

    #[test]
    fn unpaired_frames_are_merged_from_the_root_and_said() {
        // More groups than loop frames: the rest go at the innermost.
        let mut frames = vec![Frame::user("main"), Frame::user(PYTHON_EVAL_LOOP), Frame::user("hot_c")];
        let python = [py("b", 2, true), py("a", 1, true)];
        assert!(!merge_interpreted(&mut frames, 0, &python));
        assert_eq!(names(&frames), ["main", "a", "b", "hot_c"]);
        // No loop frame (a walk that ended early): after the native ones.
        let mut frames = vec![Frame::user("[unknown]")];
        assert!(!merge_interpreted(&mut frames, 0, &python));
        assert_eq!(names(&frames), ["[unknown]", "a", "b"]);
        // Nothing to merge: nothing changes.
        let mut frames = vec![Frame::user(PYTHON_EVAL_LOOP)];
        assert!(merge_interpreted(&mut frames, 0, &[]));
        assert_eq!(names(&frames), [PYTHON_EVAL_LOOP]);
    }
}
