//! The profile formats perfkit reads and writes.
//!
//! Reading detects the format from the content:
//!
//! | format | detected by | read as |
//! |---|---|---|
//! | pprof | gzip magic, or binary protobuf | [`pprof`] |
//! | perfkit JSON | a JSON object with `"perfkit_profile"` | [`json`] |
//! | folded stacks | every line `frame;frame... COUNT` | as is |
//! | `perf script` | perf's sample header and stack lines | inferno's perf collapser |
//! | DTrace, macOS sample, VTune, ... | inferno's format guesser | inferno's collapsers |
//!
//! Writing produces folded stacks, perfkit JSON or pprof from a
//! [`Profile`]. Nothing here touches the file system: inputs are bytes,
//! outputs any `Write`.
//!
//! ```
//! use perfkit_formats::{Format, ReadOptions, read_profile};
//! let input = b"app;main;work 3\napp;main 1\n";
//! let (format, profile) = read_profile(input, &ReadOptions::default()).unwrap();
//! assert_eq!(format, Format::Folded);
//! assert_eq!(profile.total_samples(), 4);
//! let mut pprof = Vec::new();
//! perfkit_formats::pprof::write(&profile, &mut pprof).unwrap();
//! let (format, again) = read_profile(&pprof, &ReadOptions::default()).unwrap();
//! assert_eq!(format, Format::Pprof);
//! assert_eq!(again.folded_counts(), profile.folded_counts());
//! ```

#[cfg(feature = "clap")]
pub mod flags;
pub mod json;
pub mod pprof;

use std::{borrow::Cow, fmt, io::Write, str::FromStr};

use inferno::collapse::{Collapse, dtrace, ghcprof, perf, sample, vsprof, vtune, xctrace};
use perfkit_model::{Profile, Stack};
pub use perfkit_safeio::{Budget, BudgetError};

/// Why an input could not be read or an output written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Nothing to read.
    #[error("the input is empty")]
    Empty,
    /// No reader recognised the input.
    #[error(
        "unrecognised profile format (expected folded stacks, `perf script` output, perfkit JSON, pprof, \
         or another format inferno collapses)"
    )]
    Unrecognised,
    /// Folded stacks with a malformed line.
    #[error("malformed folded stacks: {0}")]
    Folded(#[from] perfkit_model::FoldedError),
    /// The input looked like this format but did not parse.
    #[error("malformed {format} input: {reason}")]
    Malformed {
        /// The format it looked like.
        format: Format,
        /// What was wrong.
        reason: String,
    },
    /// A text format that is not UTF-8.
    #[error("the input is not valid UTF-8 text (line {line})")]
    NotText {
        /// The 1-based line of the first invalid byte.
        line: usize,
    },
    /// Reading it would take more memory than the budget allows
    /// ([`ReadOptions::budget`]).
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// A folded line longer than [`MAX_FOLDED_LINE`] bytes or deeper than
    /// [`MAX_STACK_DEPTH`] frames.
    #[error("line {line} of the folded stacks {what}")]
    LineTooLong {
        /// The 1-based line.
        line: usize,
        /// What is too much, and the limit.
        what: String,
    },
    /// Reading or writing failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
}

/// A profile format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Folded stacks: `frame;frame... COUNT` per line, root first.
    Folded,
    /// `perf script` output.
    PerfScript,
    /// Another format inferno collapses (DTrace, macOS sample, VTune,
    /// Visual Studio, xctrace, GHC prof).
    OtherCollapsible,
    /// perfkit's JSON schema ([`json`]).
    Json,
    /// pprof's protobuf, gzipped or not ([`pprof`]).
    Pprof,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Folded => "folded",
            Format::PerfScript => "perf script",
            Format::OtherCollapsible => "collapsible",
            Format::Json => "perfkit JSON",
            Format::Pprof => "pprof",
        })
    }
}

/// What perfkit writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputFormat {
    /// An interactive flame graph (rendered by `perfkit-flamegraph`; this
    /// crate does not draw).
    Svg,
    /// Folded stacks.
    Folded,
    /// Gzipped pprof protobuf.
    Pprof,
    /// perfkit JSON.
    Json,
}

impl OutputFormat {
    /// Every output format, in the order `--help` lists them.
    pub const ALL: [OutputFormat; 4] =
        [OutputFormat::Svg, OutputFormat::Folded, OutputFormat::Pprof, OutputFormat::Json];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Svg => "svg",
            OutputFormat::Folded => "folded",
            OutputFormat::Pprof => "pprof",
            OutputFormat::Json => "json",
        }
    }

    /// The conventional file name for this format: `flame.svg`,
    /// `profile.folded`, `profile.pb.gz`, `profile.json`.
    pub fn default_file_name(self) -> &'static str {
        match self {
            OutputFormat::Svg => "flame.svg",
            OutputFormat::Folded => "profile.folded",
            OutputFormat::Pprof => "profile.pb.gz",
            OutputFormat::Json => "profile.json",
        }
    }

    /// Writes `profile` in this format; `Svg` is rendered elsewhere and is
    /// an error here.
    pub fn write<W: Write>(self, profile: &Profile, out: W) -> Result<(), FormatError> {
        match self {
            OutputFormat::Folded => Ok(profile.write_folded(out)?),
            OutputFormat::Json => json::write(profile, out),
            OutputFormat::Pprof => pprof::write(profile, out),
            OutputFormat::Svg => Err(std::io::Error::other("SVG is rendered by perfkit-flamegraph").into()),
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = OutputFormat::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format {s:?} (one of: {})", names.join(", "))
        })
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the root frame of each stack is, for inputs that carry process and
/// thread ids (`perf script`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// The command name: all processes and threads of one name merge.
    #[default]
    Command,
    /// One root per process: `name-PID`.
    Process,
    /// One root per thread: `name-PID/TID`.
    Thread,
}

/// How to read inputs.
///
/// ```
/// use perfkit_formats::ReadOptions;
/// use perfkit_formats::Budget;
/// // The process's budget (512 MiB unless the CLI's --max-memory says):
/// let shared = ReadOptions::default();
/// // A budget of its own, here 64 MiB:
/// let own = ReadOptions::with_budget(Budget::new(64 << 20));
/// assert_eq!(own.budget.limit(), 64 << 20);
/// # let _ = shared;
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Roots for `perf script` input.
    pub roots: Roots,
    /// The memory budget a read charges what it builds against (decoded
    /// messages, strings, frames, collapsed text), before building it;
    /// beyond it, the read fails with [`FormatError::Budget`]. Default: the
    /// process's budget, [`Budget::process`]. The charges of a read are
    /// released when it returns: a caller that keeps what several reads
    /// return charges it itself (see [`profile_bytes`]).
    pub budget: Budget,
}

impl ReadOptions {
    /// Options reading within `budget` (a limit of its own:
    /// `Budget::new(bytes)`, or a shared one).
    pub fn with_budget(budget: Budget) -> Self {
        Self { budget, ..Self::default() }
    }
}

/// Frames a stack may have at most.
pub const MAX_STACK_DEPTH: usize = 16_384;
/// The longest folded line read, in bytes (a deep stack of long C++ names
/// is well under 1 MiB).
pub const MAX_FOLDED_LINE: usize = 4 << 20;
/// How much of an input format detection looks at: the formats are told
/// apart by their first lines, and looking at a bounded prefix keeps
/// detection's time independent of the input's size.
pub const DETECT_PREFIX: usize = 64 << 10;

/// Roughly the memory `profile` holds: what a caller that keeps a profile
/// read from untrusted input charges to its budget.
pub fn profile_bytes(profile: &Profile) -> u64 {
    let frame = std::mem::size_of::<perfkit_model::Frame>() as u64;
    profile
        .stacks
        .iter()
        .map(|s| STACK_COST + s.root.len() as u64 + frame * s.frames.len() as u64)
        .fold(0, u64::saturating_add)
}

/// The size of `profile`'s folded form (and of the lines a flame graph is
/// drawn from), but for escapes: frames shared by many stacks in a small input
/// unfold into much text. Callers charge it before writing or drawing.
pub fn folded_bytes(profile: &Profile) -> u64 {
    profile
        .stacks
        .iter()
        .map(|s| {
            let frames = s.frames.iter().map(|f| f.name.len() as u64 + 5).fold(0, u64::saturating_add);
            (s.root.len() as u64 + 24).saturating_add(frames)
        })
        .fold(0, u64::saturating_add)
}

/// What one stack costs beyond its frames: the `Stack` and its vector.
pub(crate) const STACK_COST: u64 = std::mem::size_of::<Stack>() as u64 + 16;
/// What one frame costs when its name is its own: the `Frame`, the name's
/// allocation and its header.
pub(crate) fn frame_cost(name_len: usize) -> u64 {
    std::mem::size_of::<perfkit_model::Frame>() as u64 + 16 + name_len as u64
}

/// Guesses the format of `data` from its content, without parsing it all.
pub fn detect(data: &[u8]) -> Option<Format> {
    detect_text(data).map(|(format, _)| format)
}

/// The format of `data`, and `data` as text for the text formats, so that
/// a large input is checked for UTF-8 once.
/// The input as text, when it is text.
#[derive(Clone, Copy, Debug)]
enum Body<'a> {
    /// UTF-8 text.
    Text(&'a str),
    /// Binary (pprof).
    Binary,
    /// Text with an invalid byte at this line.
    BadText(usize),
}

fn detect_text(data: &[u8]) -> Option<(Format, Body<'_>)> {
    if data.starts_with(&[0x1f, 0x8b]) {
        return Some((Format::Pprof, Body::Binary));
    }
    // Text formats are UTF-8 throughout; binary protobuf is not. Text with
    // a stray invalid byte is still text (and an error), not pprof. (One
    // linear pass over the input: a text reader needs it as `str` anyway.)
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) if looks_like_text(data) => {
            let line = data[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            return Some((Format::Folded, Body::BadText(line)));
        }
        Err(_) => return Some((Format::Pprof, Body::Binary)),
    };
    // Everything else is decided from a bounded prefix: detection costs the
    // same for 1 KiB and 1 GiB.
    let start = text.len() - text.trim_start().len();
    if start == text.len() {
        return None;
    }
    let prefix = prefix_of(&text[start..], DETECT_PREFIX);
    if prefix.starts_with('{') {
        return Some((Format::Json, Body::Text(text)));
    }
    // The prefix's whole lines (the last one may be cut short).
    let whole = match prefix.len() < text.len() - start {
        true => prefix.rfind('\n').map_or("", |i| &prefix[..i]),
        false => prefix,
    };
    if whole.is_empty() {
        // A first line longer than the prefix: no other format has one;
        // the folded reader checks it (and its length) in full.
        return Some((Format::Folded, Body::Text(text)));
    }
    let sample: Vec<&str> = whole.lines().filter(|l| !l.trim().is_empty()).take(50).collect();
    if sample.iter().all(|l| looks_folded(l)) {
        return Some((Format::Folded, Body::Text(text)));
    }
    let head: String = whole.lines().take(200).collect::<Vec<_>>().join("\n");
    let mut perf = perf::Folder::default();
    if perf.is_applicable(&head) == Some(true) {
        return Some((Format::PerfScript, Body::Text(text)));
    }
    Some((Format::OtherCollapsible, Body::Text(text)))
}

/// The first `max` bytes of `text` at most, cut at a character boundary.
fn prefix_of(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn looks_folded(line: &str) -> bool {
    !line.starts_with(char::is_whitespace) && perfkit_model::parse_folded_line(line).is_ok()
}

/// Most of the first 4 KiB are printable ASCII or whitespace, with line
/// breaks: text, whatever an invalid byte further on says.
fn looks_like_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(4096)];
    let texty =
        head.iter().filter(|&&b| b.is_ascii_graphic() || b == b' ' || b == b'\n' || b == b'\t' || b >= 0x80).count();
    head.contains(&b'\n') && texty * 100 >= head.len() * 97 && !head.contains(&0)
}

/// The input as folded stacks, ready for a flame graph: folded input is
/// checked and passed through without copying (but for lines with control
/// characters, written as `\xNN`, and stacks ending in a number); `perf
/// script` and other collapsible text is collapsed by inferno; JSON and
/// pprof are converted. What is built is charged to the options' budget
/// while it is built.
pub fn read_folded<'a>(data: &'a [u8], options: &ReadOptions) -> Result<(Format, Cow<'a, str>), FormatError> {
    let (format, text) = detect_text(data).ok_or(FormatError::Empty)?;
    let folded = match format {
        Format::Json | Format::Pprof => {
            let profile = read_structured(format, data, options)?;
            // Shared frames unfold: charged before they are written out.
            let _text = options.budget.charge(folded_bytes(&profile), "the folded stacks")?;
            let mut out = Vec::new();
            profile.write_folded(&mut out)?;
            Cow::Owned(String::from_utf8(out).expect("folded output is UTF-8"))
        }
        _ => fold(format, text, data, options)?,
    };
    Ok((format, folded))
}

/// Reads any supported input into a [`Profile`]. Folded and collapsed
/// inputs have no source locations or metadata.
pub fn read_profile(data: &[u8], options: &ReadOptions) -> Result<(Format, Profile), FormatError> {
    let (format, text) = detect_text(data).ok_or(FormatError::Empty)?;
    let profile = match format {
        Format::Json | Format::Pprof => read_structured(format, data, options)?,
        _ => {
            let folded = fold(format, text, data, options)?;
            let mut charge = options.budget.start("the profile's stacks");
            let mut profile = Profile::default();
            for line in folded.lines() {
                if let Ok(Some((stack, count))) = perfkit_model::parse_folded_line(line) {
                    let frames = stack.split(';').map(|f| frame_cost(f.len())).fold(STACK_COST, u64::saturating_add);
                    charge.grow(frames)?;
                    profile.push(Stack::from_folded(stack, count));
                }
            }
            profile
        }
    };
    Ok((format, profile))
}

/// Reads the formats that carry more than folded stacks.
fn read_structured(format: Format, data: &[u8], options: &ReadOptions) -> Result<Profile, FormatError> {
    match format {
        Format::Json => json::read_with(data, &options.budget),
        _ => pprof::read_with(data, &options.budget),
    }
}

/// Folded stacks from a folded or collapsible text input.
fn fold<'a>(
    format: Format,
    text: Body<'a>,
    data: &'a [u8],
    options: &ReadOptions,
) -> Result<Cow<'a, str>, FormatError> {
    match format {
        Format::Folded => match text {
            Body::Text(t) => check_folded(t, &options.budget),
            Body::BadText(line) => Err(FormatError::NotText { line }),
            Body::Binary => Err(FormatError::NotText { line: 1 }),
        },
        _ => Ok(Cow::Owned(collapse(data, format, options)?)),
    }
}

/// Checks every line of folded text with the one folded validator, and
/// makes stacks that end in a number unambiguous for the renderer and
/// control characters visible (`\xNN`). Lines are at most
/// [`MAX_FOLDED_LINE`] bytes and [`MAX_STACK_DEPTH`] frames. One pass over
/// the text (and a second to copy it, only when a line must change).
fn check_folded<'t>(text: &'t str, budget: &Budget) -> Result<Cow<'t, str>, FormatError> {
    let mut changed = false;
    let mut total: u64 = 0;
    for (i, line) in text.lines().enumerate() {
        if line.len() > MAX_FOLDED_LINE {
            return Err(FormatError::LineTooLong {
                line: i + 1,
                what: format!("is longer than {} MiB", MAX_FOLDED_LINE >> 20),
            });
        }
        match perfkit_model::parse_folded_line(line) {
            Ok(Some((stack, count))) => {
                // The frames, counted without splitting (memchr speed).
                if stack.bytes().filter(|&b| b == b';').count() >= MAX_STACK_DEPTH {
                    return Err(FormatError::LineTooLong {
                        line: i + 1,
                        what: format!("has more than {MAX_STACK_DEPTH} frames"),
                    });
                }
                changed |= matches!(perfkit_model::disambiguate(stack), Cow::Owned(_))
                    || matches!(perfkit_model::escape_control(stack), Cow::Owned(_));
                total = total.saturating_add(count);
            }
            Ok(None) => {}
            Err(()) => {
                return Err(perfkit_model::FoldedError::Malformed {
                    line: i + 1,
                    text: perfkit_model::escape_control(line.trim_end()).chars().take(80).collect(),
                }
                .into());
            }
        }
    }
    if total >= u64::MAX / 2 {
        return Err(FormatError::Malformed {
            format: Format::Folded,
            reason: "the counts add up to more than 2^63".into(),
        });
    }
    if !changed {
        return Ok(Cow::Borrowed(text));
    }
    let _copy = budget.charge(text.len() as u64 + 64, "the folded stacks")?;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        if let Ok(Some((stack, count))) = perfkit_model::parse_folded_line(line) {
            out.push_str(&perfkit_model::escape_control(&perfkit_model::disambiguate(stack)));
            out.push(' ');
            out.push_str(&count.to_string());
            out.push('\n');
        }
    }
    Ok(Cow::Owned(out))
}

/// What inferno's collapsers keep per byte of input, at most (their
/// stack tables and the collapsed text): charged before they run, since
/// they cannot be asked to charge as they go.
const COLLAPSE_FACTOR: u64 = 2;

fn collapse(data: &[u8], format: Format, options: &ReadOptions) -> Result<String, FormatError> {
    let mut charge =
        options.budget.charge((data.len() as u64).saturating_mul(COLLAPSE_FACTOR), "collapsing the input")?;
    let mut out = Vec::new();
    // inferno's collapsers assert on some malformed inputs (found by
    // fuzzing: a perf script whose events it cannot filter): a panic there
    // is a malformed input, not a crash of the caller.
    let collapsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if format == Format::PerfScript {
            let mut opts = perf::Options::default();
            opts.annotate_kernel = true;
            opts.include_pid = options.roots != Roots::Command;
            opts.include_tid = options.roots == Roots::Thread;
            perf::Folder::from(opts).collapse(data, &mut out).map(|()| true)
        } else {
            guess_and_collapse(data, &mut out)
        }
    }));
    match collapsed {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(FormatError::Unrecognised),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            return Err(FormatError::Malformed {
                format,
                reason: "the collapser rejected the input (inconsistent events or stack lines)".into(),
            });
        }
    }
    if out.is_empty() {
        return Err(if format == Format::PerfScript {
            FormatError::Malformed { format, reason: "no samples with stacks (record with `perf record -g`)".into() }
        } else {
            FormatError::Unrecognised
        });
    }
    charge.shrink(charge.bytes().saturating_sub(out.len() as u64));
    let text = String::from_utf8(out).map_err(|_| FormatError::NotText { line: 1 })?;
    // The collapsers copy names as they are: control characters made
    // visible, as for folded input.
    if text.lines().all(|l| matches!(perfkit_model::escape_control(l), Cow::Borrowed(_))) {
        return Ok(text);
    }
    let mut escaped = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        escaped.push_str(&perfkit_model::escape_control(line));
        escaped.push('\n');
    }
    Ok(escaped)
}

/// inferno's format guesser, on a bounded prefix. inferno's own
/// (`guess::Folder`) asks each collapser about the whole input read so
/// far, again after every 10 lines: quadratic (320 KB of `x` lines took
/// minutes). Here each collapser is asked once, about the first
/// [`DETECT_PREFIX`] bytes, and the one that recognises them collapses
/// the whole input in one linear pass. `Ok(false)`: none recognised it.
fn guess_and_collapse(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<bool> {
    let text = String::from_utf8_lossy(&data[..data.len().min(DETECT_PREFIX)]);
    let head = match text.rfind('\n') {
        Some(i) if data.len() > DETECT_PREFIX => &text[..=i],
        _ => &text[..],
    };
    macro_rules! try_collapser {
        ($folder:expr) => {{
            let mut folder = $folder;
            if folder.is_applicable(head) == Some(true) {
                folder.collapse(data, &mut *out)?;
                return Ok(true);
            }
        }};
    }
    try_collapser!(perf::Folder::default());
    try_collapser!(dtrace::Folder::default());
    try_collapser!(sample::Folder::default());
    try_collapser!(vtune::Folder::default());
    try_collapser!(vsprof::Folder::default());
    try_collapser!(ghcprof::Folder::default());
    try_collapser!(xctrace::Folder::default());
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERF_SCRIPT: &str = "\
hot 4242/4242 [001] 100.000001:   10101010 cpu-clock:ppp: 
\t    55555555512a hot_a+0x1a (/tmp/hot)
\t    555555555160 parent_a+0x9 (/tmp/hot)
\t    5555555551a0 main+0x40 (/tmp/hot)
\t    7ffff7dbd24a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)

hot 4242/4243 [000] 100.000002:   10101010 cpu-clock:ppp: 
\tffffffff81000010 do_syscall_64+0x10 ([kernel.kallsyms])
\t    55555555512a hot_b+0x1a (/tmp/hot)
\t    5555555551a0 main+0x40 (/tmp/hot)

";

    #[test]
    fn detects_each_format() {
        assert_eq!(detect(b"a;b 1\na;c 2\n"), Some(Format::Folded));
        assert_eq!(detect(PERF_SCRIPT.as_bytes()), Some(Format::PerfScript));
        assert_eq!(detect(b"  {\"perfkit_profile\": 1}"), Some(Format::Json));
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Some(Format::Pprof));
        assert_eq!(detect(&[0x0a, 0x04, 0xff, 0xfe]), Some(Format::Pprof));
        assert_eq!(detect(b" \n\n"), None);
    }

    #[test]
    fn perf_script_collapses_with_chosen_roots() {
        let (format, folded) = read_folded(PERF_SCRIPT.as_bytes(), &ReadOptions::default()).unwrap();
        assert_eq!(format, Format::PerfScript);
        // With a period field in the capture, as stackcollapse-perf does,
        // each sample weighs its period.
        assert_eq!(
            folded,
            "hot;__libc_start_call_main;main;parent_a;hot_a 10101010\nhot;main;hot_b;do_syscall_64_[k] 10101010\n"
        );
        let per_thread = ReadOptions { roots: Roots::Thread, ..Default::default() };
        let (_, folded) = read_folded(PERF_SCRIPT.as_bytes(), &per_thread).unwrap();
        assert!(folded.contains("hot-4242/4242;") && folded.contains("hot-4242/4243;"), "{folded}");
        let per_process = ReadOptions { roots: Roots::Process, ..Default::default() };
        let (_, folded) = read_folded(PERF_SCRIPT.as_bytes(), &per_process).unwrap();
        assert_eq!(folded.lines().filter(|l| l.starts_with("hot-4242;")).count(), 2, "{folded}");
    }

    #[test]
    fn malformed_input_is_an_error_naming_the_line() {
        let err = read_folded(b"a;b 1\na;b 2\na;c\n", &ReadOptions::default()).unwrap_err();
        // The third line does not look folded, so the whole input is not.
        assert!(matches!(err, FormatError::Unrecognised), "{err}");
        let mut many = "a;b 1\n".repeat(60);
        many.push_str("a;c x\n");
        let err = read_folded(many.as_bytes(), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("line 61"), "{err}");
        assert!(matches!(read_profile(b"", &ReadOptions::default()), Err(FormatError::Empty)));
        assert!(read_profile(b"{not json", &ReadOptions::default()).is_err());
        assert!(read_profile(&[0x1f, 0x8b, 1, 2, 3], &ReadOptions::default()).is_err());
    }

    #[test]
    fn output_formats_parse_by_name() {
        assert_eq!("pprof".parse::<OutputFormat>().unwrap(), OutputFormat::Pprof);
        assert!("svgz".parse::<OutputFormat>().unwrap_err().contains("svg, folded, pprof, json"));
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    #[test]
    fn a_bad_byte_in_a_folded_file_is_named_as_such() {
        let mut data = b"app;main;work 3\napp;main 1\n".repeat(20);
        data.extend(b"app;ma\xffin 2\n");
        let err = read_profile(&data, &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, FormatError::NotText { line: 41 }), "{err}");
        assert!(err.to_string().contains("UTF-8") && !err.to_string().contains("pprof"), "{err}");
    }

    #[test]
    fn infinite_and_huge_counts_are_rejected_or_saturate() {
        assert!(read_folded(b"a;b inf\n", &ReadOptions::default()).is_err());
        let err =
            read_folded(b"a;b 18446744073709551615\na;c 18446744073709551615\n", &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("2^63"), "{err}");
    }

    #[test]
    fn folded_lines_are_bounded_in_length_and_depth() {
        let long = format!("a;{} 1\n", "x".repeat(MAX_FOLDED_LINE));
        let err = read_folded(long.as_bytes(), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("line 1 of the folded stacks is longer than 4 MiB"), "{err}");
        let deep = format!("t{} 1\n", ";f".repeat(MAX_STACK_DEPTH));
        let err = read_profile(deep.as_bytes(), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("more than 16384 frames"), "{err}");
        // Within the limits, the frames built are charged.
        let many = format!("t{} 1\n", ";f".repeat(1000)).repeat(100);
        let small = ReadOptions::with_budget(Budget::new(1 << 20));
        assert!(matches!(read_profile(many.as_bytes(), &small), Err(FormatError::Budget(_))));
        assert!(read_profile(many.as_bytes(), &ReadOptions::with_budget(Budget::new(64 << 20))).is_ok());
    }

    /// Input that no reader recognises took quadratic time in inferno's
    /// guesser (160,000 lines of `x`: 45 s). Detection now looks at a
    /// bounded prefix ([`DETECT_PREFIX`]) and each collapser is asked once,
    /// so the time is one linear pass (UTF-8 check) plus a constant: 1 MiB
    /// takes milliseconds; 5 s is a bound no noise reaches.
    #[test]
    fn unrecognised_input_is_rejected_in_linear_time() {
        let data = "x\n".repeat(1 << 19);
        let started = std::time::Instant::now();
        let err = read_folded(data.as_bytes(), &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, FormatError::Unrecognised), "{err}");
        let err = read_profile(data.as_bytes(), &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, FormatError::Unrecognised), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        // A first line longer than the prefix is read as folded stacks.
        let long = format!("app;{} 1\n", "f".repeat(2 * DETECT_PREFIX));
        assert_eq!(detect(long.as_bytes()), Some(Format::Folded));
    }

    #[test]
    fn control_characters_in_folded_input_are_made_visible() {
        let input = "\u{1b}[31mred\u{7};main;f\u{1b}]0;x\u{7} 3\napp;main 1\n";
        let (format, folded) = read_folded(input.as_bytes(), &ReadOptions::default()).unwrap();
        assert_eq!(format, Format::Folded);
        assert_eq!(folded, "\\x1b[31mred\\x07;main;f\\x1b]0;x\\x07 3\napp;main 1\n");
        let (_, profile) = read_profile(input.as_bytes(), &ReadOptions::default()).unwrap();
        let mut out = Vec::new();
        profile.write_folded(&mut out).unwrap();
        assert!(!String::from_utf8(out).unwrap().chars().any(|c| c.is_control() && c != '\n'));
    }

    #[test]
    fn stacks_ending_in_a_number_are_not_differential() {
        let (_, folded) = read_folded(b"app;retry 3 10\napp;main 5\n", &ReadOptions::default()).unwrap();
        assert!(folded.contains("app;retry\u{a0}3 10"), "{folded}");
    }
}
