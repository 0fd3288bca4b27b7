//! DWARF unwinding of copied user stacks with `framehop`.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
    time::Instant,
};

use framehop::{
    Error as FramehopError, ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use object::{Object, ObjectSection};
use perfkit_target::{Mapping, MapsTracker, ModuleFile};
use perfkit_unwind::{
    ElfLayout,
    hotspot::{BlobKind, HotSpot},
};

/// Frames kept per stack at most.
pub const MAX_FRAMES: usize = 256;

/// A section's bytes, shared by every process that maps its file: a range
/// of the file's mapping (never a copy, so a huge or sparse file costs no
/// memory), or the decompressed bytes, charged to the budget while they
/// live.
#[derive(Clone, Debug, Default)]
pub struct SectionBytes(Arc<Backing>);

#[derive(Debug)]
enum Backing {
    Mapped(Arc<memmap2::Mmap>, std::ops::Range<usize>),
    Owned { bytes: Vec<u8>, _charge: Option<perfkit_safeio::Charge> },
}

impl Default for Backing {
    fn default() -> Self {
        Self::Owned { bytes: Vec::new(), _charge: None }
    }
}

impl std::ops::Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &*self.0 {
            Backing::Mapped(map, range) => &map[range.clone()],
            Backing::Owned { bytes, .. } => bytes,
        }
    }
}

/// The unwind sections of one file, read once.
#[derive(Clone, Debug, Default)]
struct Sections {
    text: Option<(std::ops::Range<u64>, SectionBytes)>,
    eh_frame: Option<(std::ops::Range<u64>, SectionBytes)>,
    eh_frame_hdr: Option<(std::ops::Range<u64>, SectionBytes)>,
    debug_frame: Option<SectionBytes>,
    layout: ElfLayout,
    /// The file is a Go program (it has a `.gopclntab`).
    go: bool,
}

/// Sections by file, shared by the unwinders of all processes.
fn section_cache() -> &'static Mutex<HashMap<*const ModuleFile, Option<Arc<Sections>>>> {
    struct Cache(Mutex<HashMap<*const ModuleFile, Option<Arc<Sections>>>>);
    // SAFETY: the pointers are identities of files kept open elsewhere,
    // never dereferenced.
    unsafe impl Sync for Cache {}
    // SAFETY: as above.
    unsafe impl Send for Cache {}
    static CACHE: OnceLock<Cache> = OnceLock::new();
    &CACHE.get_or_init(|| Cache(Mutex::new(HashMap::new()))).0
}

/// How an unwind ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnwindEnd {
    /// At the outermost frame.
    Root,
    /// At the frame limit (256 frames).
    DepthLimit,
    /// The stack copy ended first; the walk needed at least this many bytes
    /// above the stack pointer.
    StackCopy(u64),
    /// A read of stack memory inside the copy's range failed.
    ReadFault,
    /// Unwind information was missing or wrong, and the frame-pointer
    /// fallback went nowhere.
    Failed,
}

/// The frames of one stack and how the walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unwound {
    /// Instruction pointer, then return addresses, innermost first.
    pub frames: Vec<u64>,
    /// How it ended.
    pub end: UnwindEnd,
    /// The frames among `frames` in a JVM's code cache, innermost first.
    pub java: Vec<JavaFrame>,
}

/// A frame of an unwound stack in a JVM's code cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JavaFrame {
    /// Its index in [`Unwound::frames`].
    pub index: usize,
    /// Its code blob's kind.
    pub kind: BlobKind,
    /// The `Method*` it runs (compiled or interpreted), when known.
    pub method: Option<u64>,
    /// Its code blob's code (start, end).
    pub code: (u64, u64),
    /// Where its code blob's name is.
    pub name: u64,
    /// Its code blob's address.
    pub blob: u64,
}

/// The longest the Java frames of one stack are read for.
pub const JAVA_STACK_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2);

/// Unwinds the user stacks of one process from the unwind tables
/// (`.eh_frame`, `.eh_frame_hdr`, `.debug_frame`) of its mapped binaries.
pub struct DwarfUnwinder {
    unwinder: UnwinderX86_64<SectionBytes>,
    cache: CacheX86_64,
    /// Start addresses of the mappings added (or found unusable).
    known: HashSet<(u64, u64)>,
    modules: usize,
    /// Address ranges of the Go programs' mappings.
    go: Vec<std::ops::Range<u64>>,
}

impl std::fmt::Debug for DwarfUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfUnwinder").field("modules", &self.modules).finish()
    }
}

impl Default for DwarfUnwinder {
    fn default() -> Self {
        Self::new()
    }
}

impl DwarfUnwinder {
    /// An unwinder that knows no modules yet.
    pub fn new() -> Self {
        Self {
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            known: HashSet::new(),
            modules: 0,
            go: Vec::new(),
        }
    }

    /// Modules with unwind information loaded so far.
    pub fn modules(&self) -> usize {
        self.modules
    }

    /// Adds the executable mappings `maps` has seen and this unwinder has
    /// not, reading their unwind sections (once per file).
    pub fn update(&mut self, maps: &MapsTracker) {
        for m in maps.mappings() {
            if !self.known.insert((m.start, m.end)) {
                continue;
            }
            match load_module(m) {
                Some((module, go)) => {
                    self.unwinder.add_module(module);
                    self.modules += 1;
                    if go {
                        self.go.push(m.start..m.end);
                    }
                }
                None => tracing::debug!(path = %m.path, "no unwind information"),
            }
        }
    }

    /// Whether `addr` is in a Go program's code. Go's runtime switches to
    /// another stack (`systemstack`, `mcall`, `morestack`, signal and cgo
    /// transitions); a copy of one stack cannot be unwound past such a
    /// switch, but Go keeps frame pointers across it, so the kernel's
    /// frame-pointer callchain goes on where the copy ends
    /// (see the sampler).
    pub fn in_go(&self, addr: u64) -> bool {
        self.go.iter().any(|r| r.contains(&addr))
    }

    /// Unwinds from the user registers `ip`, `sp`, `bp` through `stack`, the
    /// copy of user memory starting at `sp`. With `hotspot`, the frames in
    /// that JVM's code cache are stepped through with its code blobs'
    /// frame sizes and frame pointers ([`HotSpot::step`]), the others with
    /// their CFI.
    pub fn unwind(&mut self, ip: u64, sp: u64, bp: u64, stack: &[u8], hotspot: Option<&HotSpot>) -> Unwound {
        let mut beyond: Option<u64> = None;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(sp).ok_or(())?;
            let bytes = usize::try_from(off).ok().and_then(|o| stack.get(o..o.checked_add(8)?)).ok_or_else(|| {
                // A read past the copy's end (but plausibly in the
                // stack): the copy was too small.
                if off >= stack.len() as u64 && off < 8 << 20 {
                    beyond = Some(beyond.unwrap_or(0).max(off + 8));
                }
            })?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut frames = Vec::with_capacity(32);
        let mut java = Vec::new();
        let mut address = FrameAddress::from_instruction_pointer(ip);
        frames.push(ip);
        // The JVM's memory is read for each Java frame: a stack whose reads
        // take longer than this is left where it got.
        let deadline = hotspot.map(|_| Instant::now() + JAVA_STACK_DEADLINE);
        let end = loop {
            if frames.len() >= MAX_FRAMES {
                break UnwindEnd::DepthLimit;
            }
            let pc = address.address();
            let first = matches!(address, FrameAddress::InstructionPointer(_));
            let stepped = match (hotspot, deadline) {
                (Some(hs), Some(d)) if hs.contains(pc) && Instant::now() < d => {
                    match hs.step(pc, first, regs.sp(), regs.bp(), |a| read_stack(a).ok()) {
                        Ok(Some(step)) => {
                            java.push(JavaFrame {
                                index: frames.len() - 1,
                                kind: step.kind,
                                method: step.method,
                                code: step.code,
                                name: step.name,
                                blob: step.blob,
                            });
                            regs.set_sp(step.sp);
                            regs.set_bp(step.bp);
                            Some(Ok(Some(step.pc)))
                        }
                        Ok(None) => None,
                        Err(e) => {
                            tracing::debug!(%e, "Java frame not stepped");
                            None
                        }
                    }
                }
                _ => None,
            };
            let next = match stepped {
                Some(next) => next,
                None => self.unwinder.unwind_frame(address, &mut regs, &mut self.cache, &mut read_stack),
            };
            match next {
                Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                    Some(a) => {
                        frames.push(ra);
                        address = a;
                    }
                    None => break UnwindEnd::Failed,
                },
                Ok(None) => break UnwindEnd::Root,
                Err(FramehopError::CouldNotReadStack(_)) => break UnwindEnd::ReadFault,
                Err(_) => break UnwindEnd::Failed,
            }
        };
        let end = match (end, beyond) {
            (UnwindEnd::Failed | UnwindEnd::ReadFault, Some(needed)) => UnwindEnd::StackCopy(needed),
            (end, _) => end,
        };
        Unwound { frames, end, java }
    }
}

/// Continues `dwarf`, a walk of one stack copy that ended early, with `fp`,
/// the kernel's frame-pointer walk of the same sample (innermost first):
/// from the outermost frame of `dwarf` that `fp` also holds, `fp`'s
/// callers are appended. Only the last few frames of `dwarf` are tried, so
/// a frame-pointer walk that went astray early is not followed. Returns
/// whether frames were added.
pub(crate) fn splice_frame_pointers(dwarf: &mut Vec<u64>, fp: &[u64]) -> bool {
    const TRIED: usize = 4;
    for k in (dwarf.len().saturating_sub(TRIED)..dwarf.len()).rev() {
        // An address that repeats (recursion): the same occurrence,
        // counted from the leaf, in both walks.
        let nth = dwarf[..k].iter().filter(|&&a| a == dwarf[k]).count();
        let Some(j) = fp.iter().enumerate().filter(|&(_, &a)| a == dwarf[k]).map(|(j, _)| j).nth(nth) else {
            continue;
        };
        if j + 1 >= fp.len() {
            return false;
        }
        dwarf.truncate(k + 1);
        dwarf.extend(fp[j + 1..].iter().take(MAX_FRAMES.saturating_sub(k + 1)));
        return true;
    }
    false
}

/// The unwind data of one mapped binary, and where it is loaded.
fn load_module(m: &Mapping) -> Option<(Module<SectionBytes>, bool)> {
    let sections = if m.path == "[vdso]" {
        let (_, image) = perfkit_target::own_vdso()?;
        Arc::new(read_sections(image, None, "[vdso]")?)
    } else {
        let file = m.file.as_ref()?;
        let key = Arc::as_ptr(file);
        let mut cache = section_cache().lock().expect("section cache lock");
        match cache.get(&key) {
            Some(s) => s.clone()?,
            None => {
                let s =
                    file.map().ok().map(Arc::new).and_then(|d| read_sections(&d, Some(&d), file.path())).map(Arc::new);
                cache.insert(key, s.clone());
                s?
            }
        }
    };
    // Load bias from the code segment that the mapping's offset falls in
    // (not any segment sharing its first page: lld puts the read-only
    // segment there).
    let map_offset = if m.path == "[vdso]" { 0 } else { m.offset };
    let bias = sections.layout.load_bias(m.start, map_offset, true)?;
    if sections.eh_frame.is_none() && sections.debug_frame.is_none() {
        return None;
    }
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: sections.text.as_ref().map(|t| t.0.clone()),
        text: sections.text.as_ref().map(|t| t.1.clone()),
        eh_frame_svma: sections.eh_frame.as_ref().map(|t| t.0.clone()),
        eh_frame: sections.eh_frame.as_ref().map(|t| t.1.clone()),
        eh_frame_hdr_svma: sections.eh_frame_hdr.as_ref().map(|t| t.0.clone()),
        eh_frame_hdr: sections.eh_frame_hdr.as_ref().map(|t| t.1.clone()),
        debug_frame: sections.debug_frame.clone(),
        ..Default::default()
    };
    Some((Module::new(m.path.clone(), m.start..m.end, bias, info), sections.go))
}

/// Finds the sections an unwinder needs: ranges of the file's mapping
/// `map` (whose bytes `data` are), or decompressed (Go compresses
/// `.debug_frame`) within the process's memory budget. A section that does
/// not fit the budget is left out, and the file named in the log.
fn read_sections(data: &[u8], map: Option<&Arc<memmap2::Mmap>>, path: &str) -> Option<Sections> {
    let elf = object::File::parse(data).ok()?;
    if elf.architecture() != object::Architecture::X86_64 {
        return None;
    }
    let budget = perfkit_safeio::Budget::process();
    let section = |name: &str| -> Option<(std::ops::Range<u64>, SectionBytes)> {
        let s = elf.section_by_name(name)?;
        let range = s.address()..s.address() + s.size();
        let data = match perfkit_unwind::section_data(&s, budget, path) {
            Ok(d) => d?,
            Err(e) => {
                tracing::debug!(%e, "section left out");
                perfkit_target::notices::push(e.to_string());
                return None;
            }
        };
        let backing = match data.into_parts() {
            (std::borrow::Cow::Borrowed(bytes), _) if map.is_some() => {
                let map = map?;
                let start = (bytes.as_ptr() as usize).checked_sub(map.as_ptr() as usize)?;
                Backing::Mapped(map.clone(), start..start + bytes.len())
            }
            (bytes, charge) => Backing::Owned { bytes: bytes.into_owned(), _charge: charge },
        };
        Some((range, SectionBytes(Arc::new(backing))))
    };
    // A Go binary without .debug_frame (stripped): CFI made from the SP
    // deltas of its .gopclntab.
    let go_cfi = || match perfkit_unwind::go_debug_frame(data, budget, path) {
        Ok(made) => made.map(|(bytes, charge)| SectionBytes(Arc::new(Backing::Owned { bytes, _charge: Some(charge) }))),
        Err(e) => {
            perfkit_target::notices::push(e.to_string());
            None
        }
    };
    let (debug_frame, go) = match section(".debug_frame") {
        Some(s) => (Some(s.1), false),
        None => go_cfi().map_or((None, false), |s| (Some(s), true)),
    };
    // framehop reads .eh_frame when there is one, and .debug_frame only
    // otherwise: with cgo, .eh_frame describes only the C code, so it is
    // left out and the Go code (nearly all of it) is walked with its CFI.
    Some(Sections {
        text: section(".text"),
        eh_frame: if go { None } else { section(".eh_frame") },
        eh_frame_hdr: if go { None } else { section(".eh_frame_hdr") },
        debug_frame,
        layout: ElfLayout::parse(data),
        go: go || perfkit_unwind::gopclntab::GoTable::find(data).is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::splice_frame_pointers;

    #[test]
    fn a_walk_that_stopped_at_a_stack_switch_goes_on_with_the_frame_pointers() {
        // The copy's walk reached systemstack's frame (0x30); the kernel's
        // frame-pointer walk skipped the frameless leaf's caller (0x20) but
        // went on to the goroutine's frames.
        let mut dwarf = vec![0x10, 0x20, 0x30];
        assert!(splice_frame_pointers(&mut dwarf, &[0x10, 0x30, 0x40, 0x50]));
        assert_eq!(dwarf, [0x10, 0x20, 0x30, 0x40, 0x50]);
        // No frame in common, or nothing beyond: unchanged.
        let mut dwarf = vec![0x10, 0x20];
        assert!(!splice_frame_pointers(&mut dwarf, &[0x11, 0x40]));
        assert!(!splice_frame_pointers(&mut dwarf, &[0x10, 0x20]));
        assert_eq!(dwarf, [0x10, 0x20]);
        // Recursion: the copy's third `0x20` is the chain's third, not its
        // first.
        let mut dwarf = vec![0x10, 0x20, 0x20, 0x20];
        assert!(splice_frame_pointers(&mut dwarf, &[0x10, 0x20, 0x20, 0x20, 0x20, 0x40]));
        assert_eq!(dwarf, [0x10, 0x20, 0x20, 0x20, 0x20, 0x40]);
        // Only the walk's last frames are matched.
        let mut dwarf = vec![0x10, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34];
        assert!(!splice_frame_pointers(&mut dwarf, &[0x10, 0x99]));
    }
}
