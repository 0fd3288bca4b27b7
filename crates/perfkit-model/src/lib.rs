//! perfkit's profile model.
//!
//! A [`Profile`] is a set of symbolized stacks with sample counts and the
//! facts of how it was taken. This crate does no I/O of its own: it writes
//! to and reads from any `Write`/`BufRead`.
//!
//! The folded format is the one of FlameGraph and inferno: one line per
//! unique stack, frames root first separated by `;`, then a space and the
//! count. The first frame is the thread name. Kernel frames end in `_[k]`,
//! inlined frames in `_[i]` and JIT-compiled frames in `_[j]`, which flame
//! graph renderers colour (inferno's `java` palette, perfkit's default).
//!
//! ```
//! use perfkit_model::{Frame, Profile, Stack};
//! let mut profile = Profile::default();
//! profile.push(Stack::new("app", vec![Frame::user("main"), Frame::user("work")], 3));
//! profile.push(Stack::new("app", vec![Frame::user("main"), Frame::kernel("do_syscall_64")], 1));
//! let mut out = Vec::new();
//! profile.write_folded(&mut out).unwrap();
//! assert_eq!(String::from_utf8(out).unwrap(), "app;main;do_syscall_64_[k] 1\napp;main;work 3\n");
//! assert_eq!(profile.top_self(1)[0].folded_name(), "work");
//! ```

mod diff;
mod folded;
pub mod time;

use std::{collections::HashMap, sync::Arc, time::Duration};

pub use diff::{DiffInput, DiffReport, DiffRow, FunctionDelta, diff_functions, write_diff_summary};
pub use folded::{FoldedError, disambiguate, parse_folded, parse_line as parse_folded_line};

/// Text with its control characters made visible: each C0 control
/// character (ESC, BEL, NUL, tab, line breaks...), DEL, each C1 control
/// character, and the non-characters U+FFFE and U+FFFF (which XML forbids)
/// become `\xNN`, one per byte of their UTF-8 encoding; everything else is
/// kept (backslashes too, so the escape is for reading, not reversible).
/// Every format perfkit writes names through it: a frame or thread name
/// from a target or an input file reads the same in folded stacks, SVG,
/// JSON and pprof, and none of them carries a raw escape sequence.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\u{fffe}' || c == '\u{ffff}';
    // The bytes that can begin such a character: C0 controls, DEL, C1
    // controls (0xC2 0x80-0x9F) and U+FFFE/U+FFFF (0xEF 0xBF ..). Most
    // names have none: one pass over bytes, no decoding.
    // Branch-free per 32 bytes, which the compiler vectorizes.
    let suspect = |b: u8| (b < 0x20) | (b == 0x7f) | (b == 0xc2) | (b == 0xef);
    let maybe = s.as_bytes().chunks(32).any(|chunk| chunk.iter().fold(false, |acc, &b| acc | suspect(b)));
    if !maybe || !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Where a frame's code runs. Serialized as `user`, `inlined`, `kernel`,
/// `jit` or `interpreted`, as perfkit's JSON names kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// User-space code.
    User,
    /// A function inlined into the user frame before it (the caller side).
    Inlined,
    /// Kernel code.
    Kernel,
    /// Code a runtime generated (a JIT compiler's output), named from the
    /// runtime's perf map or jitdump.
    Jit,
    /// A function of an interpreted language (Python), read from the
    /// interpreter's own state at the sample; it replaces the native frame
    /// of the interpreter's loop that ran it, and carries its `file:line`.
    Interpreted,
}

/// A place in source code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// The source file, as the debug information names it (often absolute).
    pub file: Arc<str>,
    /// 1-based line; 0 when only the file is known.
    pub line: u32,
}

/// One symbolized stack frame. Names and places are shared (`Arc`): a
/// profile repeats the same frames in many stacks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// Function name, demangled; `[unknown]` forms when not resolved.
    pub name: Arc<str>,
    /// Where the code runs.
    pub kind: FrameKind,
    /// Where in its function's source the frame was executing (for an
    /// inlined frame, inside the inlined function), when debug information
    /// says. The folded format and flame graphs ignore it; pprof and JSON
    /// carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Arc<Location>>,
    /// For a frame that could not be symbolized: the file it is in and the
    /// place in it, so that a tool with the binary's symbols can resolve it
    /// later (pprof carries it as a Mapping and a Location address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<Origin>>,
}

/// Where an unresolved frame's code is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The file's path, as the process saw it.
    pub path: Arc<str>,
    /// The file's GNU build id, hex, when it has one.
    pub build_id: Option<Arc<str>>,
    /// The file offset of the frame's address.
    pub file_offset: u64,
}

impl Frame {
    /// A frame of this kind without a source location.
    pub fn new(name: impl Into<Arc<str>>, kind: FrameKind) -> Self {
        Self { name: name.into(), kind, location: None, origin: None }
    }
    /// A user-space frame.
    pub fn user(name: impl Into<Arc<str>>) -> Self {
        Self::new(name, FrameKind::User)
    }
    /// A kernel frame.
    pub fn kernel(name: impl Into<Arc<str>>) -> Self {
        Self::new(name, FrameKind::Kernel)
    }
    /// An inlined user-space frame.
    pub fn inlined(name: impl Into<Arc<str>>) -> Self {
        Self::new(name, FrameKind::Inlined)
    }
    /// A frame of JIT-compiled code.
    pub fn jit(name: impl Into<Arc<str>>) -> Self {
        Self::new(name, FrameKind::Jit)
    }
    /// A frame of interpreted code (a Python function).
    pub fn interpreted(name: impl Into<Arc<str>>) -> Self {
        Self::new(name, FrameKind::Interpreted)
    }
    /// The same frame at a source location.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location.map(Arc::new);
        self
    }

    /// The same frame, unresolved, at a place in a file.
    pub fn from_origin(mut self, origin: Option<Origin>) -> Self {
        self.origin = origin.map(Arc::new);
        self
    }

    /// Reads a frame back from its folded form: the `_[k]` and `_[i]`
    /// suffixes give the kind (and are removed from the name).
    pub fn from_folded(name: &str) -> Self {
        if let Some(n) = name.strip_suffix("_[k]") {
            Self::kernel(n)
        } else if let Some(n) = name.strip_suffix("_[i]") {
            Self::inlined(n)
        } else if let Some(n) = name.strip_suffix("_[j]") {
            Self::jit(n)
        } else {
            Self::user(name)
        }
    }
    /// The marker frame of a user stack whose walk ended before its
    /// outermost frame: `[truncated: REASON]`, placed under the root so
    /// that the innermost frames reached do not read as root callers.
    pub fn truncated(reason: Truncation) -> Self {
        Self::user(reason.marker())
    }

    /// The reason of a marker frame made by [`Frame::truncated`] (or read
    /// back from its folded form); `None` for every other frame.
    pub fn truncation(&self) -> Option<Truncation> {
        if self.kind != FrameKind::User {
            return None;
        }
        Truncation::from_marker(&self.name)
    }

    /// An unresolved user frame, naming the module when known, such as
    /// `[unknown] (libc.so.6)`.
    pub fn unknown_user(module: Option<&str>) -> Self {
        Self::user(unknown_name(module))
    }
    /// An unresolved kernel frame, naming the module when known.
    pub fn unknown_kernel(module: Option<&str>) -> Self {
        Self::kernel(unknown_name(module))
    }

    /// The frame as it appears in folded output: the name made safe for the
    /// format (no `;` or line breaks, no trailing number that would read as a
    /// count, other control characters as `\xNN`: [`escape_control`]) with
    /// the kind's suffix.
    pub fn folded_name(&self) -> String {
        let s: String = self
            .name
            .chars()
            .map(|c| match c {
                ';' => ':',
                '\n' | '\r' => ' ',
                c => c,
            })
            .collect();
        let mut s = escape_control(&s).into_owned();
        s.push_str(match self.kind {
            FrameKind::User => "",
            FrameKind::Inlined => "_[i]",
            FrameKind::Kernel => "_[k]",
            FrameKind::Jit => "_[j]",
            FrameKind::Interpreted => "",
        });
        match disambiguate(&s) {
            std::borrow::Cow::Owned(o) => o,
            std::borrow::Cow::Borrowed(_) => s,
        }
    }
}

fn unknown_name(module: Option<&str>) -> String {
    match module {
        Some(m) => format!("[unknown] ({m})"),
        None => "[unknown]".to_owned(),
    }
}

/// Why a user stack's walk ended before its outermost frame. Each reason
/// has a short stable word, rendered as the marker frame
/// `[truncated: WORD]` (see [`Frame::truncated`]); serialized as that
/// word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Truncation {
    /// The frame limit was reached with frames left (`depth`).
    Depth,
    /// Code with neither unwind information (CFI) nor a usable frame
    /// pointer in a file (`no-cfi`).
    NoCfi,
    /// Code in anonymous executable memory (JIT or generated code) without
    /// a usable frame pointer (`anon-code`).
    AnonCode,
    /// An address in no mapping known when the stack was walked: a
    /// process or library newer than its mappings' last reading, or beyond
    /// the mappings tracked per process (`unmapped`).
    Unmapped,
    /// A read of stack memory failed (`read-fault`).
    ReadFault,
    /// The copy of the stack taken with the sample ended first (the perf
    /// backend's DWARF unwinding; `stack-copy`).
    StackCopy,
    /// A signal frame (the signal trampoline), which the walker does not
    /// unwind through (`signal-frame`).
    SignalFrame,
    /// A CFI rule the walker cannot follow: a DWARF expression, or a frame
    /// address in a register other than the stack and frame pointers
    /// (`unsupported-cfi`).
    UnsupportedCfi,
    /// The walker's own bounds (`other`).
    Other,
    /// Code whose unwind table was still being built (a large file's table
    /// is built when a walk first reaches it): the walk went on with frame
    /// pointers and lost its way (`table-pending`).
    TablePending,
}

impl Truncation {
    /// Every reason, in declaration order.
    pub const ALL: [Truncation; 10] = [
        Truncation::Depth,
        Truncation::NoCfi,
        Truncation::AnonCode,
        Truncation::Unmapped,
        Truncation::ReadFault,
        Truncation::StackCopy,
        Truncation::SignalFrame,
        Truncation::UnsupportedCfi,
        Truncation::Other,
        Truncation::TablePending,
    ];

    /// The reason's short stable word.
    pub fn word(self) -> &'static str {
        match self {
            Truncation::Depth => "depth",
            Truncation::NoCfi => "no-cfi",
            Truncation::AnonCode => "anon-code",
            Truncation::Unmapped => "unmapped",
            Truncation::ReadFault => "read-fault",
            Truncation::StackCopy => "stack-copy",
            Truncation::SignalFrame => "signal-frame",
            Truncation::UnsupportedCfi => "unsupported-cfi",
            Truncation::Other => "other",
            Truncation::TablePending => "table-pending",
        }
    }

    /// What the reason means, for a summary.
    pub fn describe(self) -> &'static str {
        match self {
            Truncation::Depth => "deeper than the frame limit",
            Truncation::NoCfi => "code with neither CFI nor frame pointers",
            Truncation::AnonCode => "anonymous executable memory (JIT code) without frame pointers",
            Truncation::Unmapped => {
                "an address in no known mapping (a process or library newer than its mappings' last reading)"
            }
            Truncation::ReadFault => "unreadable stack memory",
            Truncation::StackCopy => "deeper than the stack copy",
            Truncation::SignalFrame => "a signal frame",
            Truncation::UnsupportedCfi => {
                "a CFI rule the walker cannot follow (a DWARF expression, or a frame address in another register)"
            }
            Truncation::Other => "the walker's own limits",
            Truncation::TablePending => {
                "code whose unwind table was still being built (large files get theirs when a walk first reaches \
                 them)"
            }
        }
    }

    /// The reason of a word made by [`Truncation::word`].
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.word() == word)
    }

    /// The marker frame's name: `[truncated: WORD]`.
    pub fn marker(self) -> String {
        format!("[truncated: {}]", self.word())
    }

    /// The reason a marker frame's name carries.
    pub fn from_marker(name: &str) -> Option<Self> {
        Self::from_word(name.strip_prefix("[truncated: ")?.strip_suffix(']')?)
    }
}

/// A stack with its sample count: its root, then frames outermost first.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stack {
    /// The root of the stack, first in folded output: the process's name
    /// (or, as the profile was grouped, the name with its PID, or the
    /// thread's name).
    #[serde(alias = "thread")]
    pub root: String,
    /// Frames from the outermost (`_start`, `main`) to the innermost.
    pub frames: Vec<Frame>,
    /// Samples with exactly this stack.
    pub count: u64,
}

impl Stack {
    /// A stack of `count` samples under `root`.
    pub fn new(root: impl Into<String>, frames: Vec<Frame>, count: u64) -> Self {
        Self { root: root.into(), frames, count }
    }

    /// A stack from one folded line's frames (without the count): the first
    /// frame is the root (perfkit writes the process name there), the rest
    /// are frames with kinds read from their suffixes. The stack's
    /// [`folded`](Self::folded) form is the input again, but for `;` and
    /// line breaks inside names.
    pub fn from_folded(stack: &str, count: u64) -> Self {
        let mut parts = stack.split(';');
        let thread = parts.next().unwrap_or_default().to_owned();
        Self { root: thread, frames: parts.map(Frame::from_folded).collect(), count }
    }

    /// The stack's folded form without the count.
    pub fn folded(&self) -> String {
        let mut line = escape_control(&self.root.replace([';', '\n', '\r'], "_")).into_owned();
        for frame in &self.frames {
            line.push(';');
            line.push_str(&frame.folded_name());
        }
        line
    }
}

/// How a profile was taken. `duration` is serialized as
/// `{"secs": S, "nanos": N}`, as serde writes a `Duration`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProfileMeta {
    /// The profiled command line (or a description of the target).
    pub command: String,
    /// Wall-clock time sampled.
    pub duration: Duration,
    /// Sampling frequency per CPU (0: not sampled at a frequency).
    pub frequency_hz: u64,
    /// Samples whose stacks were lost (full maps).
    pub lost_stacks: u64,
    /// Samples dropped entirely (full maps, full ring buffers).
    pub dropped_samples: u64,
    /// What a stack's count is.
    pub unit: CountUnit,
}

/// What a stack's count measures (`samples`, `microseconds`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CountUnit {
    /// Samples (on-CPU).
    #[default]
    Samples,
    /// Microseconds (off-CPU time, or on- and off-CPU time together).
    Microseconds,
}

impl CountUnit {
    /// The unit's name, as flame graph tooltips and pprof say it.
    pub fn name(self) -> &'static str {
        match self {
            CountUnit::Samples => "samples",
            CountUnit::Microseconds => "microseconds",
        }
    }
}

/// Symbolized stacks and their counts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// The stacks, possibly with repeats (the writers merge them).
    pub stacks: Vec<Stack>,
    /// How the profile was taken.
    pub meta: ProfileMeta,
}

/// A function's share of samples: the frame that counts (see
/// [`Profile::top_self`]), or `None` for samples with no frame at all.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct FunctionCount {
    /// The function's frame (name, kind, and the place of the first of its
    /// samples met); `None` for samples without a frame (`[no stack]`).
    pub frame: Option<Frame>,
    /// Samples.
    pub count: u64,
}

impl FunctionCount {
    /// A function's count.
    pub fn new(frame: Option<Frame>, count: u64) -> Self {
        Self { frame, count }
    }

    /// The name as the folded format writes it (`schedule_[k]`), or
    /// `[no stack]`.
    pub fn folded_name(&self) -> String {
        self.frame.as_ref().map_or_else(|| "[no stack]".to_owned(), Frame::folded_name)
    }
}

impl Profile {
    /// Adds a stack.
    pub fn push(&mut self, stack: Stack) {
        self.stacks.push(stack);
    }

    /// A profile of folded stacks, as [`parse_folded`] returns them.
    pub fn from_folded(lines: impl IntoIterator<Item = (String, u64)>) -> Self {
        let stacks = lines.into_iter().map(|(stack, count)| Stack::from_folded(&stack, count)).collect();
        Self { stacks, meta: ProfileMeta::default() }
    }

    /// Total samples over all stacks.
    pub fn total_samples(&self) -> u64 {
        self.stacks.iter().fold(0u64, |t, s| t.saturating_add(s.count))
    }

    /// Unique folded stacks with summed counts, sorted by stack, as the
    /// folded format lists them.
    pub fn folded_counts(&self) -> Vec<(String, u64)> {
        let mut merged: HashMap<String, u64> = HashMap::new();
        for stack in &self.stacks {
            let c = merged.entry(stack.folded()).or_default();
            *c = c.saturating_add(stack.count);
        }
        let mut lines: Vec<_> = merged.into_iter().collect();
        lines.sort_unstable();
        lines
    }

    /// Writes the folded format.
    pub fn write_folded<W: std::io::Write>(&self, mut out: W) -> std::io::Result<()> {
        for (stack, count) in self.folded_counts() {
            writeln!(out, "{stack} {count}")?;
        }
        out.flush()
    }

    /// Functions by self time, most first, at most `n`. A sample's
    /// function is its innermost frame that is not inlined, as `perf
    /// report` counts it: a function's inlined callees count as the
    /// function's own time. Marker frames ([`Frame::truncated`]) are not
    /// functions: a stack of nothing else counts as `[no stack]`.
    pub fn top_self(&self, n: usize) -> Vec<FunctionCount> {
        // Keyed by the folded name: one function, whatever the place of
        // each sample in it.
        let mut counts: HashMap<String, (Option<Frame>, u64)> = HashMap::new();
        for stack in &self.stacks {
            let leaf = stack.frames.iter().rev().find(|f| f.kind != FrameKind::Inlined && f.truncation().is_none());
            let key = leaf.map_or_else(|| "[no stack]".to_owned(), Frame::folded_name);
            let c = counts.entry(key).or_insert_with(|| (leaf.cloned(), 0));
            c.1 = c.1.saturating_add(stack.count);
        }
        let mut top: Vec<_> = counts.into_iter().collect();
        top.sort_unstable_by(|(a_name, a), (b_name, b)| b.1.cmp(&a.1).then_with(|| a_name.cmp(b_name)));
        top.truncate(n);
        top.into_iter().map(|(_, (frame, count))| FunctionCount { frame, count }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_serializes_as_data_and_reads_back() {
        let mut p = Profile::default();
        p.meta.frequency_hz = 99;
        let located = Frame::interpreted("Worker.hot").at(Some(Location { file: "app.py".into(), line: 12 }));
        p.push(Stack::new("python3", vec![Frame::user("main"), located.clone(), Frame::kernel("schedule")], 7));
        p.push(Stack::new("python3", vec![Frame::truncated(Truncation::NoCfi), Frame::user("leaf")], 1));
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains(r#""kind":"interpreted""#) && text.contains(r#""line":12"#), "{text}");
        assert!(text.contains(r#""unit":"samples""#), "{text}");
        let back: Profile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        // A top function is a frame, not a string to parse back.
        let top = serde_json::to_value(&p.top_self(1)[0]).unwrap();
        assert_eq!(top["frame"]["name"], "schedule");
        assert_eq!(top["frame"]["kind"], "kernel");
        assert_eq!(top["count"], 7);
        assert_eq!(serde_json::to_value(Truncation::UnsupportedCfi).unwrap(), "unsupported-cfi");
        for t in Truncation::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.word());
        }
    }

    #[test]
    fn folded_names_carry_kind_suffixes() {
        assert_eq!(Frame::kernel("schedule").folded_name(), "schedule_[k]");
        assert_eq!(Frame::inlined("core::iter::next").folded_name(), "core::iter::next_[i]");
        assert_eq!(Frame::user("main").folded_name(), "main");
    }

    #[test]
    fn separators_in_names_cannot_split_frames() {
        let f = Frame::user("odd;name\nwith breaks");
        assert_eq!(f.folded_name(), "odd:name with breaks");
        let s = Stack::new("a;b", vec![f], 1);
        assert_eq!(s.folded().matches(';').count(), 1);
    }

    #[test]
    fn folded_lines_read_back_into_the_same_stacks() {
        let line = "app;main;do_work_[i];schedule_[k]";
        let s = Stack::from_folded(line, 7);
        assert_eq!(s.root, "app");
        assert_eq!(s.frames, vec![Frame::user("main"), Frame::inlined("do_work"), Frame::kernel("schedule")]);
        assert_eq!(s.folded(), line);
        let p = Profile::from_folded(vec![(line.to_owned(), 7), ("app 2".to_owned(), 1)]);
        assert_eq!(p.total_samples(), 8);
        assert!(p.stacks[1].frames.is_empty());
    }

    #[test]
    fn unknown_frames_name_their_module() {
        assert_eq!(Frame::unknown_user(Some("libc.so.6")).folded_name(), "[unknown] (libc.so.6)");
        assert_eq!(Frame::unknown_kernel(None).folded_name(), "[unknown]_[k]");
    }

    #[test]
    fn identical_stacks_merge_and_lines_sort() {
        let mut p = Profile::default();
        let stack = |leaf: &str, n| Stack::new("t", vec![Frame::user("main"), Frame::user(leaf)], n);
        p.push(stack("b", 2));
        p.push(stack("a", 1));
        p.push(stack("b", 5));
        assert_eq!(p.folded_counts(), vec![("t;main;a".to_owned(), 1), ("t;main;b".to_owned(), 7)]);
        assert_eq!(p.total_samples(), 8);
    }

    #[test]
    fn top_self_folds_inlined_callees_into_their_caller() {
        let mut p = Profile::default();
        p.push(Stack::new("t", vec![Frame::user("main"), Frame::user("outer"), Frame::inlined("helper")], 5));
        p.push(Stack::new("t", vec![Frame::user("main"), Frame::user("other")], 4));
        let top = p.top_self(10);
        assert_eq!((top[0].folded_name(), top[0].count), ("outer".to_owned(), 5));
        assert!(top.iter().all(|f| f.folded_name() != "helper_[i]"));
    }

    #[test]
    fn truncation_markers_read_back_and_are_not_functions() {
        for t in Truncation::ALL {
            let f = Frame::truncated(t);
            assert_eq!(f.truncation(), Some(t));
            assert_eq!(Frame::from_folded(&f.folded_name()).truncation(), Some(t));
        }
        assert_eq!(Frame::truncated(Truncation::NoCfi).folded_name(), "[truncated: no-cfi]");
        assert_eq!(Frame::user("[truncated]").truncation(), None);
        assert_eq!(Frame::kernel("[truncated: depth]").truncation(), None);
        assert_eq!(Truncation::from_word("bogus"), None);
        let mut p = Profile::default();
        p.push(Stack::new("t", vec![Frame::truncated(Truncation::Depth), Frame::user("hot")], 4));
        p.push(Stack::new("t", vec![Frame::truncated(Truncation::ReadFault)], 1));
        let top = p.top_self(10);
        assert_eq!((top[0].folded_name(), top[0].count), ("hot".to_owned(), 4));
        assert_eq!(top[1], FunctionCount { frame: None, count: 1 });
        assert_eq!(top.len(), 2);
    }

    #[test]
    fn top_self_counts_leaves() {
        let mut p = Profile::default();
        p.push(Stack::new("t", vec![Frame::user("main"), Frame::user("hot")], 6));
        p.push(Stack::new("t", vec![Frame::user("x"), Frame::user("hot")], 3));
        p.push(Stack::new("t", vec![Frame::user("main")], 2));
        p.push(Stack::new("t", vec![], 1));
        let top = p.top_self(10);
        assert_eq!((top[0].folded_name(), top[0].count), ("hot".to_owned(), 9));
        assert_eq!((top[1].folded_name(), top[1].count), ("main".to_owned(), 2));
        assert_eq!((top[2].folded_name(), top[2].count), ("[no stack]".to_owned(), 1));
        assert_eq!(p.top_self(1).len(), 1);
    }
}

/// Stacks as sampled, before symbolization: what every sampling backend
/// produces and `perfkit-symbols` consumes.
pub mod raw {
    /// A user frame as the samplers record it: a process address, or a
    /// place in a file (the eBPF walker, and the perf backend once it knows
    /// the mapping). Stored encoded in one `u64` ([`RawFrame::encode`]) in
    /// [`RawStack::Frames`]: bit 63 set for a place in a file, the file id
    /// (an index into the run's `Modules`) in bits 40..63, the file
    /// offset in bits 0..40. Addresses are below 2^47, so they never have
    /// bit 63 set. The eBPF programs write the same encoding
    /// (`perfkit-probes-common`; a test in `perfkit-probes` keeps the two
    /// equal).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RawFrame {
        /// A process address.
        Address(u64),
        /// A place in a file.
        InFile {
            /// The file's id in the run.
            file: u32,
            /// The offset in the file.
            offset: u64,
        },
    }

    impl RawFrame {
        /// The bit that marks a place in a file.
        pub const IN_FILE: u64 = 1 << 63;
        /// Bits of file offset.
        pub const OFFSET_BITS: u32 = 40;
        /// The largest file id.
        pub const MAX_FILE_ID: u32 = (1 << 23) - 1;

        /// The frame's one-`u64` form. A file id or offset too large for
        /// its bits is cut to them.
        pub const fn encode(self) -> u64 {
            match self {
                RawFrame::Address(a) => a & !Self::IN_FILE,
                RawFrame::InFile { file, offset } => {
                    Self::IN_FILE
                        | ((file as u64 & Self::MAX_FILE_ID as u64) << Self::OFFSET_BITS)
                        | (offset & ((1 << Self::OFFSET_BITS) - 1))
                }
            }
        }

        /// A frame from its one-`u64` form.
        pub const fn decode(v: u64) -> RawFrame {
            if v & Self::IN_FILE == 0 {
                return RawFrame::Address(v);
            }
            RawFrame::InFile {
                file: ((v >> Self::OFFSET_BITS) & Self::MAX_FILE_ID as u64) as u32,
                offset: v & ((1 << Self::OFFSET_BITS) - 1),
            }
        }
    }

    /// A stack as recorded, innermost frame first.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    pub enum RawStack {
        /// No stack of this kind: a kernel stack of a sample taken in user
        /// mode, or a user stack of a kernel thread.
        None,
        /// The stack existed but was lost (a full map); the sample still
        /// counts.
        Lost,
        /// Frames, innermost first. All but the first are return
        /// addresses. A user frame is a [`RawFrame`] in its encoded form:
        /// a process address, or a place in a file.
        Frames(Vec<u64>),
    }

    /// What a sample's count measures.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum SampleKind {
        /// On-CPU samples.
        #[default]
        OnCpu,
        /// Nanoseconds spent off CPU (blocked).
        OffCpuNanos,
    }

    /// How a user stack's walk ended.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum StackEnd {
        /// At the outermost frame (or there is no user stack), or where
        /// the backend cannot tell (frame pointers followed by the kernel).
        #[default]
        Complete,
        /// Before the outermost frame, for this reason: the root is
        /// missing, and the symbolized stack starts with a marker frame.
        Truncated(crate::Truncation),
    }

    /// A frame of an interpreted language read from the interpreter at the
    /// sample (a CPython frame).
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    pub struct InterpretedFrame {
        /// The function's qualified name.
        pub name: std::sync::Arc<str>,
        /// Its source file.
        pub file: std::sync::Arc<str>,
        /// The line being run; 0 when unknown.
        pub line: u32,
        /// The outermost frame that one native call of the interpreter's
        /// loop runs (`_PyEval_EvalFrameDefault`): frames from one entry to
        /// the next inner one replace that native frame.
        pub entry: bool,
    }

    /// One unique (process, thread, names, user stack, kernel stack) and
    /// how many samples hit it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct RawSample {
        /// Process id (0: the idle task).
        pub tgid: u32,
        /// Thread id.
        pub tid: u32,
        /// Thread name (`comm`) at the time of the sample.
        pub comm: String,
        /// Process name (the main thread's `comm`) at the time of the
        /// sample.
        pub process: String,
        /// User-mode stack.
        pub user: RawStack,
        /// Kernel-mode stack.
        pub kernel: RawStack,
        /// Number of samples, or of nanoseconds with
        /// [`SampleKind::OffCpuNanos`].
        pub count: u64,
        /// What the count measures.
        pub kind: SampleKind,
        /// How the user stack's walk ended.
        pub user_end: StackEnd,
        /// The interpreted frames the thread was running, innermost first
        /// (empty for all but interpreters the backend reads).
        pub interpreted: Vec<InterpretedFrame>,
    }
}

/// Text for bytes that should be UTF-8 but may not be (a process name): the
/// valid parts as they are, each invalid byte and each control character
/// (escape sequences included) as `\xNN`, so that names stay distinct and
/// are safe wherever they are printed or written.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Text safe to print to a terminal: control characters (escape sequences
/// included) become `\xNN` (`\n`, `\t` as such); everything else is
/// kept.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn invalid_bytes_and_control_characters_are_escaped() {
        assert_eq!(escape_bytes(b"ok"), "ok");
        assert_eq!(escape_bytes(&[b'h', 0xff, 0xfe, b'g']), "h\\xff\\xfeg");
        assert_eq!(escape_bytes(b"hog\xff\x1b[7m"), "hog\\xff\\x1b[7m");
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("\u{1b}[31mred"), "\\x1b[31mred");
        assert_eq!(printable("a\nb\u{9b}c"), "a\\nb\\xc2\\x9bc");
    }

    #[test]
    fn control_characters_are_escaped_in_folded_names() {
        assert_eq!(escape_control("plain ok"), "plain ok");
        // Past the fast path's first 32-byte block, C1 controls and U+FFFF;
        // other characters that share those lead bytes stay as they are.
        let pad = "x".repeat(40);
        assert_eq!(escape_control(&format!("{pad}\u{9b}\u{ffff}")), format!("{pad}\\xc2\\x9b\\xef\\xbf\\xbf"));
        assert_eq!(escape_control(&format!("{pad}é£€")), format!("{pad}é£€"));
        assert_eq!(
            escape_control("\u{1b}[31mred\u{7}\u{7f}\u{0}\u{fffe}"),
            "\\x1b[31mred\\x07\\x7f\\x00\\xef\\xbf\\xbe"
        );
        let s = Stack::new("\u{1b}[31mred\u{7}", vec![Frame::user("a\u{1b}b"), Frame::kernel("k\u{7}")], 1);
        assert_eq!(s.folded(), "\\x1b[31mred\\x07;a\\x1bb;k\\x07_[k]");
        assert!(!s.folded().chars().any(char::is_control));
    }
}

#[cfg(test)]
mod raw_frame_tests {
    use super::raw::RawFrame;

    #[test]
    fn frames_round_trip_through_their_encoding() {
        let f = RawFrame::InFile { file: 5, offset: 0x1234 };
        assert_eq!(f.encode() >> 63, 1);
        assert_eq!(RawFrame::decode(f.encode()), f);
        let a = RawFrame::Address(0x7fff_1234_5678);
        assert_eq!(a.encode(), 0x7fff_1234_5678);
        assert_eq!(RawFrame::decode(a.encode()), a);
        let edge = RawFrame::InFile { file: RawFrame::MAX_FILE_ID, offset: (1 << 40) - 1 };
        assert_eq!(RawFrame::decode(edge.encode()), edge);
        // Out-of-range parts are cut to their bits, never spill over.
        let cut = RawFrame::InFile { file: u32::MAX, offset: u64::MAX };
        assert_eq!(RawFrame::decode(cut.encode()), edge);
    }
}
