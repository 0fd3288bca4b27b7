//! bcc's probe specifications, parsed and resolved to what the kernel
//! attaches to.
//!
//! | spec | probe |
//! |---|---|
//! | `PATH:FUNC`, `LIB:FUNC`, `p:LIB:FUNC` | a uprobe on each function of the file that matches `FUNC` (a glob: `read*`) |
//! | `t:CATEGORY:NAME` | tracepoints (globs allowed in both parts) |
//! | `u:PATH:PROVIDER:NAME`, `u:PATH:NAME` | USDT probes from the file's `.note.stapsdt` (globs allowed) |
//!
//! `LIB` is a path (it holds a `/`), or a name found as the dynamic loader
//! would find it: in the mappings of the target process when there is one
//! (`c` is the `libc.so.6` it maps), else in the loader's directories
//! (`libc.so*`, `libNAME.so*`, `NAME`), else on `PATH` (an executable).
//! A bare `FUNC` or `p:FUNC` is a kernel function: it needs kprobes,
//! which perfkit does not use.
//!
//! Files are opened once (`O_PATH`), read through
//! [`perfkit_target::ModuleFile`] (a private copy charged to the memory
//! budget when another user may write them), and attached through
//! `/proc/self/fd/N`: the uprobe lands on the very file that was read.

use std::{
    ffi::CString,
    fmt,
    fs::File,
    io::Read,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};
use perfkit_safeio::Budget;
use perfkit_target::ModuleFile;

/// At most this many bytes of `/proc/PID/maps` are read.
const MAX_MAPS_BYTES: u64 = 16 << 20;
/// USDT notes read from one file at most.
const MAX_NOTES: usize = 100_000;

/// A probe as the user wrote it, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeSpec {
    /// User functions of a file (`PATH:FUNC`, `LIB:FUNC`).
    Uprobe {
        /// A path, or a library or program name.
        file: String,
        /// The function name, or a glob of names.
        function: String,
    },
    /// Tracepoints (`t:CATEGORY:NAME`).
    Tracepoint {
        /// The category (a glob).
        category: String,
        /// The name (a glob).
        name: String,
    },
    /// USDT probes (`u:PATH:PROVIDER:NAME`, `u:PATH:NAME`).
    Usdt {
        /// A path, or a library or program name.
        file: String,
        /// The provider (a glob), or `None` for any.
        provider: Option<String>,
        /// The probe name (a glob).
        name: String,
    },
}

/// Why a probe specification could not be parsed or resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Not in a form bcc's tools accept.
    #[error("{spec:?}: {why}")]
    Syntax {
        /// The specification.
        spec: String,
        /// What is wrong, and the form expected.
        why: String,
    },
    /// A kernel function: perfkit attaches no kprobes.
    #[error(
        "{0:?} names a kernel function, which needs kprobes ({1}); perfkit traces user functions (LIB:FUNC, \
         PATH:FUNC), USDT probes (u:PATH:NAME) and tracepoints (t:CATEGORY:NAME)"
    )]
    KernelFunction(String, &'static str),
    /// The library or program was not found.
    #[error("{0:?}: no such file, library (lib{0}.so in the loader's directories{1}) or program on PATH")]
    NotFound(String, &'static str),
    /// The file could not be read.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// Nothing matched.
    #[error("{0}: nothing matches")]
    NoMatch(String),
    /// More probes than one run counts.
    #[error("{spec}: {count} probes match, more than the {max} one run can attach; narrow the pattern")]
    TooMany {
        /// The specification.
        spec: String,
        /// How many matched.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl ProbeSpec {
    /// Parses a specification in bcc's syntax.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let syntax = |why: &str| SpecError::Syntax { spec: spec.to_owned(), why: why.to_owned() };
        if spec.is_empty() || spec.contains('\0') {
            return Err(syntax("empty, or holds a NUL byte"));
        }
        let parts: Vec<&str> = spec.split(':').collect();
        let nonempty = |p: &[&str]| p.iter().all(|s| !s.is_empty());
        match parts.as_slice() {
            ["t" | "tracepoint", category, name] if nonempty(&[category, name]) => {
                Ok(Self::Tracepoint { category: (*category).to_owned(), name: (*name).to_owned() })
            }
            ["t" | "tracepoint", ..] => Err(syntax("a tracepoint is t:CATEGORY:NAME")),
            ["u" | "usdt", file, provider, name] if nonempty(&[file, provider, name]) => Ok(Self::Usdt {
                file: (*file).to_owned(),
                provider: Some((*provider).to_owned()),
                name: (*name).to_owned(),
            }),
            ["u" | "usdt", file, name] if nonempty(&[file, name]) => {
                Ok(Self::Usdt { file: (*file).to_owned(), provider: None, name: (*name).to_owned() })
            }
            ["u" | "usdt", ..] => Err(syntax("a USDT probe is u:PATH:PROVIDER:NAME or u:PATH:NAME")),
            ["p", function] | [function] if !function.is_empty() => {
                Err(SpecError::KernelFunction(spec.to_owned(), kprobe_support()))
            }
            ["p" | "uprobe", file, function] | [file, function] if nonempty(&[file, function]) => {
                Ok(Self::Uprobe { file: (*file).to_owned(), function: (*function).to_owned() })
            }
            ["r", ..] => Err(syntax("return probes (r:) are not counted: funclatency times a function's calls")),
            _ => Err(syntax("expected LIB:FUNC, PATH:FUNC, t:CATEGORY:NAME or u:PATH:[PROVIDER:]NAME")),
        }
    }
}

impl fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uprobe { file, function } => write!(f, "{file}:{function}"),
            Self::Tracepoint { category, name } => write!(f, "t:{category}:{name}"),
            Self::Usdt { file, provider: Some(p), name } => write!(f, "u:{file}:{p}:{name}"),
            Self::Usdt { file, provider: None, name } => write!(f, "u:{file}:{name}"),
        }
    }
}

/// Whether this kernel has kprobes, for the error that names them.
fn kprobe_support() -> &'static str {
    if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        "this kernel has them, but perfkit's tools are built on tracepoints and uprobes only"
    } else {
        "this kernel has none: CONFIG_KPROBES is off"
    }
}

/// A file opened once, by which probes are both read and attached.
#[derive(Debug)]
pub struct ProbeFile {
    /// `O_PATH` descriptor of the file: the kernel attaches through it.
    fd: OwnedFd,
    /// The path as given or found.
    path: String,
}

impl ProbeFile {
    /// A path naming exactly this file (`/proc/self/fd/N`).
    pub fn fd_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }

    /// The path as given or found.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// What a resolved probe attaches to.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProbeTarget {
    /// A uprobe (a function's entry, or a USDT probe's address).
    Uprobe {
        /// The file.
        file: Arc<ProbeFile>,
        /// The probe's offset in the file.
        offset: u64,
        /// The file offset of the USDT semaphore the kernel increments
        /// while the probe is attached (0: none).
        semaphore: u64,
    },
    /// A tracepoint.
    Tracepoint {
        /// Its category.
        category: String,
        /// Its name.
        name: String,
    },
}

/// One probe to attach, with the name to report it by.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResolvedProbe {
    /// The function (`read`), USDT probe (`provider:name`) or tracepoint
    /// (`category:name`).
    pub name: String,
    /// Where it attaches.
    pub target: ProbeTarget,
    /// USDT probes: the argument specifications of the note
    /// (`-4@%eax 8@-8(%rbp)`); empty otherwise.
    pub usdt_args: String,
}

impl ResolvedProbe {
    /// The probe's file and offset, for uprobes and USDT probes.
    pub fn file_offset(&self) -> Option<(&str, u64)> {
        match &self.target {
            ProbeTarget::Uprobe { file, offset, .. } => Some((file.path(), *offset)),
            ProbeTarget::Tracepoint { .. } => None,
        }
    }

    /// Whether the probe is a uprobe at a function's first instruction (a
    /// user function; a USDT probe, named `provider:name`, sits inside one).
    pub fn at_function_entry(&self) -> bool {
        matches!(self.target, ProbeTarget::Uprobe { .. }) && !self.name.contains(':')
    }

    /// The semaphore's file offset, for USDT probes that have one.
    pub fn semaphore(&self) -> Option<u64> {
        match &self.target {
            ProbeTarget::Uprobe { semaphore, .. } if *semaphore != 0 => Some(*semaphore),
            _ => None,
        }
    }
}

/// Where `LIB` names are looked for.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Resolver {
    /// The target process: its mappings name the libraries it loaded.
    pub pid: Option<u32>,
    /// The dynamic loader's directories, in its order.
    pub library_dirs: Vec<PathBuf>,
    /// At most this many probes.
    pub max_probes: usize,
}

impl Resolver {
    /// A resolver for `pid` (or every process), searching `library_dirs`.
    pub fn new(pid: Option<u32>, library_dirs: Vec<PathBuf>) -> Self {
        Self { pid, library_dirs, max_probes: perfkit_probes_common::ufunc::MAX_PROBES }
    }

    /// Every probe `spec` matches, in address (or name) order, one per
    /// address (aliases such as `read` and `__read` count once, under the
    /// shortest name).
    pub fn resolve(&self, spec: &ProbeSpec) -> Result<Vec<ResolvedProbe>, SpecError> {
        let out = match spec {
            ProbeSpec::Tracepoint { category, name } => tracepoints(category, name)?,
            ProbeSpec::Uprobe { file, function } => {
                let file = Arc::new(self.find(file)?);
                let pattern = glob_pattern(function)?;
                functions(&file, &pattern)?
            }
            ProbeSpec::Usdt { file, provider, name } => {
                let file = Arc::new(self.find(file)?);
                let provider = provider.as_deref().map(glob_pattern).transpose()?;
                usdt(&file, provider.as_ref(), &glob_pattern(name)?)?
            }
        };
        if out.is_empty() {
            return Err(SpecError::NoMatch(spec.to_string()));
        }
        if out.len() > self.max_probes {
            return Err(SpecError::TooMany { spec: spec.to_string(), count: out.len(), max: self.max_probes });
        }
        Ok(out)
    }

    /// Opens the file a spec names.
    fn find(&self, name: &str) -> Result<ProbeFile, SpecError> {
        if name.contains('/') {
            return open(Path::new(name), name);
        }
        if let Some(pid) = self.pid
            && let Some((start, end, path)) = mapped_library(pid, name)
        {
            // The very file the process maps, whatever its path names now.
            return open(Path::new(&format!("/proc/{pid}/map_files/{start:x}-{end:x}")), &path);
        }
        if let Some(path) = library_in(&self.library_dirs, name) {
            return open(&path, &path.to_string_lossy());
        }
        if let Some(path) = on_path(name) {
            return open(&path, &path.to_string_lossy());
        }
        Err(SpecError::NotFound(name.to_owned(), if self.pid.is_some() { " or the process's mappings" } else { "" }))
    }
}

/// The file names a library name stands for, best first: `c` is
/// `libc.so`, `libc.so.6`...
fn library_matches(file: &str, name: &str) -> Option<u32> {
    let lib = if name.starts_with("lib") { name.to_owned() } else { format!("lib{name}") };
    if file == name {
        return Some(0);
    }
    // The versioned name first: `libc.so` is often a linker script.
    if let Some(rest) = file.strip_prefix(&format!("{lib}.so."))
        && rest.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(1);
    }
    if file == format!("{lib}.so") {
        return Some(2);
    }
    if let Some(rest) = file.strip_prefix(&format!("{lib}-"))
        && rest.ends_with(".so")
    {
        return Some(3);
    }
    None
}

/// The mapping of library `name` in process `pid`: (start, end, path).
fn mapped_library(pid: u32, name: &str) -> Option<(u64, u64, String)> {
    let mut text = String::new();
    File::open(format!("/proc/{pid}/maps")).ok()?.take(MAX_MAPS_BYTES).read_to_string(&mut text).ok()?;
    let mut best: Option<(u32, u64, u64, String)> = None;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(_perms), Some(_off), Some(_dev), Some(_ino)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path: String = f.collect::<Vec<_>>().join(" ");
        if !path.starts_with('/') {
            continue;
        }
        let base = path.rsplit('/').next().unwrap_or(&path);
        let Some(rank) = library_matches(base, name) else { continue };
        let Some((s, e)) = range.split_once('-') else { continue };
        let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else { continue };
        if best.as_ref().is_none_or(|b| rank < b.0) {
            best = Some((rank, s, e, path));
        }
    }
    best.map(|(_, s, e, p)| (s, e, p))
}

/// Library `name` in the loader's directories.
fn library_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut found: Vec<(u32, String)> = entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                library_matches(&n, name).map(|r| (r, n))
            })
            .collect();
        found.sort();
        if let Some((_, n)) = found.iter().find(|(_, n)| is_elf(&dir.join(n))) {
            return Some(dir.join(n));
        }
    }
    None
}

/// Whether `path` is a regular file that starts as an ELF file does (not a
/// linker script), read without blocking.
fn is_elf(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    let mut magic = [0u8; 4];
    f.metadata().is_ok_and(|m| m.is_file()) && (&f).read_exact(&mut magic).is_ok() && magic == *b"\x7fELF"
}

/// Program `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Opens `path` once with `O_PATH` (no FIFO blocks, no device opens).
fn open(path: &Path, shown: &str) -> Result<ProbeFile, SpecError> {
    let err = |why: String| SpecError::File { path: shown.to_owned(), why };
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| err("holds a NUL byte".into()))?;
    // SAFETY: a valid NUL-terminated path; the descriptor is checked.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(ProbeFile { fd, path: shown.to_owned() })
}

/// The file's ELF image, read through the memory budget, checked to be the
/// file held open.
fn read_elf(file: &ProbeFile) -> Result<(ModuleFile, memmap2::Mmap), SpecError> {
    let err = |why: String| SpecError::File { path: file.path.clone(), why };
    let module =
        ModuleFile::open_path_in(Path::new(&file.fd_path()), Budget::process()).map_err(|e| err(e.to_string()))?;
    let held = File::open(file.fd_path()).and_then(|f| f.metadata()).map_err(|e| err(e.to_string()))?;
    if module.identity() != (held.dev(), held.ino()) {
        return Err(err("changed while it was read".into()));
    }
    let map = module.map().map_err(|e| err(e.to_string()))?;
    Ok((module, map))
}

fn glob_pattern(p: &str) -> Result<glob::Pattern, SpecError> {
    glob::Pattern::new(p).map_err(|e| SpecError::Syntax { spec: p.to_owned(), why: format!("not a glob: {e}") })
}

/// The file offset of virtual address `addr` (its loadable segment's).
fn file_offset(elf: &object::File<'_>, addr: u64) -> Option<u64> {
    elf.segments().find_map(|s| {
        let (off, size) = s.file_range();
        (addr >= s.address() && addr - s.address() < size).then(|| off + (addr - s.address()))
    })
}

/// The functions of `file` whose names match.
fn functions(file: &Arc<ProbeFile>, pattern: &glob::Pattern) -> Result<Vec<ResolvedProbe>, SpecError> {
    let (_module, map) = read_elf(file)?;
    let elf = object::File::parse(&*map)
        .map_err(|e| SpecError::File { path: file.path.clone(), why: format!("not an ELF file: {e}") })?;
    // Address -> the shortest (then first in order) name.
    let mut by_addr: std::collections::BTreeMap<u64, String> = std::collections::BTreeMap::new();
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        if sym.kind() != SymbolKind::Text || sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        // Versioned dynamic names (`read@@GLIBC_2.2.5`) match by their name.
        let bare = name.split('@').next().unwrap_or(name);
        if bare.is_empty() || !pattern.matches(bare) {
            continue;
        }
        let slot = by_addr.entry(sym.address()).or_insert_with(|| bare.to_owned());
        if bare.len() < slot.len() {
            *slot = bare.to_owned();
        }
    }
    let mut out = Vec::new();
    for (addr, name) in by_addr {
        let Some(offset) = file_offset(&elf, addr) else { continue };
        out.push(ResolvedProbe {
            name,
            target: ProbeTarget::Uprobe { file: Arc::clone(file), offset, semaphore: 0 },
            usdt_args: String::new(),
        });
    }
    Ok(out)
}

/// One USDT probe from `.note.stapsdt`: its provider, name, address, the
/// `.stapsdt.base` address it was linked against, and its semaphore's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsdtNote {
    /// The provider.
    pub provider: String,
    /// The probe's name.
    pub name: String,
    /// Its address, as linked.
    pub pc: u64,
    /// `.stapsdt.base` as linked.
    pub base: u64,
    /// The semaphore's address (0: none).
    pub semaphore: u64,
    /// The arguments' specifications (`-4@%edi 8@%rsi`; empty for none).
    pub args: String,
}

/// Parses the notes of a `.note.stapsdt` section (type 3, owner
/// `stapsdt`; each description holds the three addresses, then the
/// provider, name and arguments, NUL-terminated). Malformed notes end the
/// walk; at most 100,000 are returned.
pub fn parse_stapsdt(data: &[u8], little_endian: bool) -> Vec<UsdtNote> {
    let u32_at = |b: &[u8]| -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if little_endian { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
    };
    let u64_at = |b: &[u8]| -> u64 {
        let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        if little_endian { u64::from_le_bytes(a) } else { u64::from_be_bytes(a) }
    };
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 12 <= data.len() && out.len() < MAX_NOTES {
        let namesz = u32_at(&data[at..]) as usize;
        let descsz = u32_at(&data[at + 4..]) as usize;
        let kind = u32_at(&data[at + 8..]);
        let Some(name_end) = align4(namesz).and_then(|n| (at + 12).checked_add(n)) else { break };
        let Some(desc_end) = align4(descsz).and_then(|d| name_end.checked_add(d)) else { break };
        // The last note's padding may be missing.
        if name_end.checked_add(descsz).is_none_or(|end| end > data.len()) {
            break;
        }
        let owner = &data[at + 12..at + 12 + namesz];
        let desc = &data[name_end..name_end + descsz];
        at = desc_end.min(data.len());
        if kind != 3 || owner.strip_suffix(b"\0").unwrap_or(owner) != b"stapsdt" || desc.len() < 24 {
            continue;
        }
        let (pc, base, semaphore) = (u64_at(desc), u64_at(&desc[8..]), u64_at(&desc[16..]));
        let mut strings = desc[24..].split(|&b| b == 0);
        let (Some(provider), Some(name)) = (strings.next(), strings.next()) else { continue };
        let args = strings.next().and_then(|a| std::str::from_utf8(a).ok()).unwrap_or("").to_owned();
        let (Ok(provider), Ok(name)) = (std::str::from_utf8(provider), std::str::from_utf8(name)) else { continue };
        if provider.is_empty() || name.is_empty() {
            continue;
        }
        out.push(UsdtNote { provider: provider.to_owned(), name: name.to_owned(), pc, base, semaphore, args });
    }
    out
}

/// The USDT probes of `file` that match.
fn usdt(
    file: &Arc<ProbeFile>,
    provider: Option<&glob::Pattern>,
    name: &glob::Pattern,
) -> Result<Vec<ResolvedProbe>, SpecError> {
    let (_module, map) = read_elf(file)?;
    let elf = object::File::parse(&*map)
        .map_err(|e| SpecError::File { path: file.path.clone(), why: format!("not an ELF file: {e}") })?;
    let Some(section) = elf.section_by_name(".note.stapsdt") else {
        return Err(SpecError::File { path: file.path.clone(), why: "has no USDT probes (no .note.stapsdt)".into() });
    };
    let data = section
        .data()
        .map_err(|e| SpecError::File { path: file.path.clone(), why: format!("unreadable .note.stapsdt: {e}") })?;
    // Prelinked or otherwise moved files: the probe moved as the base did.
    let actual_base = elf.section_by_name(".stapsdt.base").map(|s| s.address());
    let mut out: Vec<ResolvedProbe> = Vec::new();
    for note in parse_stapsdt(data, elf.is_little_endian()) {
        if !name.matches(&note.name) || provider.is_some_and(|p| !p.matches(&note.provider)) {
            continue;
        }
        let pc = match actual_base {
            Some(b) if note.base != 0 => note.pc.wrapping_add(b).wrapping_sub(note.base),
            _ => note.pc,
        };
        let why = |what: &str| SpecError::File {
            path: file.path.clone(),
            why: format!("USDT probe {}:{}: its {what} is in no loadable segment", note.provider, note.name),
        };
        let offset = file_offset(&elf, pc).ok_or_else(|| why("address"))?;
        let semaphore =
            if note.semaphore == 0 { 0 } else { file_offset(&elf, note.semaphore).ok_or_else(|| why("semaphore"))? };
        out.push(ResolvedProbe {
            name: format!("{}:{}", note.provider, note.name),
            target: ProbeTarget::Uprobe { file: Arc::clone(file), offset, semaphore },
            usdt_args: note.args,
        });
    }
    Ok(out)
}

/// The tracepoints that match, from tracefs.
fn tracepoints(category: &str, name: &str) -> Result<Vec<ResolvedProbe>, SpecError> {
    let root = super::tracefs::root()
        .map_err(|e| SpecError::File { path: super::tracefs::TRACEFS.into(), why: e.to_string() })?
        .join("events");
    let (cat, nm) = (glob_pattern(category)?, glob_pattern(name)?);
    let list = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for c in list(&root).into_iter().filter(|c| cat.matches(c)) {
        for n in list(&root.join(&c)).into_iter().filter(|n| nm.matches(n)) {
            out.push(ResolvedProbe {
                name: format!("{c}:{n}"),
                target: ProbeTarget::Tracepoint { category: c.clone(), name: n },
                usdt_args: String::new(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bcc_forms() {
        assert_eq!(
            ProbeSpec::parse("c:read*").unwrap(),
            ProbeSpec::Uprobe { file: "c".into(), function: "read*".into() }
        );
        assert_eq!(
            ProbeSpec::parse("p:/bin/ls:main").unwrap(),
            ProbeSpec::Uprobe { file: "/bin/ls".into(), function: "main".into() }
        );
        assert_eq!(
            ProbeSpec::parse("t:sched:sched_switch").unwrap(),
            ProbeSpec::Tracepoint { category: "sched".into(), name: "sched_switch".into() }
        );
        assert_eq!(
            ProbeSpec::parse("u:/usr/bin/x:prov:probe").unwrap(),
            ProbeSpec::Usdt { file: "/usr/bin/x".into(), provider: Some("prov".into()), name: "probe".into() }
        );
        assert_eq!(
            ProbeSpec::parse("u:pthread:mutex_entry").unwrap(),
            ProbeSpec::Usdt { file: "pthread".into(), provider: None, name: "mutex_entry".into() }
        );
        assert_eq!(ProbeSpec::parse("u:x:p:n").unwrap().to_string(), "u:x:p:n");
    }

    #[test]
    fn refuses_bad_forms_by_name() {
        assert!(matches!(ProbeSpec::parse("vfs_read"), Err(SpecError::KernelFunction(..))));
        assert!(matches!(ProbeSpec::parse("p:vfs_read"), Err(SpecError::KernelFunction(..))));
        for bad in ["", "t:sched", "t::x", "u:x", "a:b:c:d:e", ":f", "c:", "x\0y"] {
            let e = ProbeSpec::parse(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn library_names_match_as_the_loader_names_files() {
        assert_eq!(library_matches("libc.so.6", "c"), Some(1));
        assert_eq!(library_matches("libc.so", "c"), Some(2));
        assert_eq!(library_matches("libc-2.31.so", "c"), Some(3));
        assert_eq!(library_matches("libcrypt.so.1", "c"), None);
        assert_eq!(library_matches("libpthread.so.0", "pthread"), Some(1));
        assert_eq!(library_matches("libpthread.so.0", "libpthread"), Some(1));
        assert_eq!(library_matches("libc.so.6.x", "c"), None);
    }

    fn note(provider: &str, name: &str, pc: u64, base: u64, sem: u64) -> Vec<u8> {
        let mut desc = Vec::new();
        for v in [pc, base, sem] {
            desc.extend_from_slice(&v.to_le_bytes());
        }
        desc.extend_from_slice(provider.as_bytes());
        desc.push(0);
        desc.extend_from_slice(name.as_bytes());
        desc.push(0);
        desc.extend_from_slice(b"-4@%edi\0");
        let mut out = Vec::new();
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"stapsdt\0");
        out.extend_from_slice(&desc);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_stapsdt_notes_and_stops_at_garbage() {
        let mut data = note("app", "start", 0x1139, 0x2004, 0);
        data.extend(note("app", "tick", 0x1150, 0x2004, 0x4010));
        let notes = parse_stapsdt(&data, true);
        assert_eq!(notes.len(), 2);
        assert_eq!(
            notes[1],
            UsdtNote {
                provider: "app".into(),
                name: "tick".into(),
                pc: 0x1150,
                base: 0x2004,
                semaphore: 0x4010,
                args: "-4@%edi".into()
            }
        );
        // A size that runs past the end, and truncations, read nothing more.
        let mut bad = data.clone();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(parse_stapsdt(&bad, true).len(), 2);
        for cut in 0..data.len() {
            assert!(parse_stapsdt(&data[..cut], true).len() <= 2);
        }
    }
}
