//! DWARF unwinding of copied user stacks with `framehop`.

use std::collections::HashSet;

use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use object::{Object, ObjectSection, ObjectSegment};
use perfkit_symbols::{Mapping, MapsTracker};

/// Frames kept per stack at most.
pub const MAX_FRAMES: usize = 256;

/// Unwinds the user stacks of one process from the unwind tables
/// (`.eh_frame`, `.eh_frame_hdr`, `.debug_frame`) of its mapped binaries.
pub struct DwarfUnwinder {
    unwinder: UnwinderX86_64<Vec<u8>>,
    cache: CacheX86_64,
    /// Start addresses of the mappings added (or found unusable).
    known: HashSet<u64>,
    modules: usize,
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
        Self { unwinder: UnwinderX86_64::new(), cache: CacheX86_64::new(), known: HashSet::new(), modules: 0 }
    }

    /// Modules with unwind information loaded so far.
    pub fn modules(&self) -> usize {
        self.modules
    }

    /// Adds the executable mappings `maps` has seen and this unwinder has
    /// not, reading their unwind sections.
    pub fn update(&mut self, maps: &MapsTracker) {
        for m in maps.mappings() {
            if !self.known.insert(m.start) {
                continue;
            }
            match load_module(m) {
                Some(module) => {
                    self.unwinder.add_module(module);
                    self.modules += 1;
                }
                None => tracing::debug!(path = %m.path, "no unwind information"),
            }
        }
    }

    /// Unwinds from the user registers `ip`, `sp`, `bp` through `stack`, the
    /// copy of user memory starting at `sp`. Returns the instruction
    /// pointer, then return addresses, innermost first, as callchains are.
    pub fn unwind(&mut self, ip: u64, sp: u64, bp: u64, stack: &[u8]) -> Vec<u64> {
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(sp).ok_or(())? as usize;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut frames = Vec::with_capacity(32);
        let mut iter = self.unwinder.iter_frames(ip, regs, &mut self.cache, &mut read_stack);
        while frames.len() < MAX_FRAMES {
            match iter.next() {
                Ok(Some(FrameAddress::InstructionPointer(a))) => frames.push(a),
                Ok(Some(FrameAddress::ReturnAddress(a))) => frames.push(a.get()),
                Ok(None) | Err(_) => break,
            }
        }
        frames
    }
}

/// The unwind data of one mapped binary: its unwind sections copied out
/// of the file, and where it is loaded.
fn load_module(m: &Mapping) -> Option<Module<Vec<u8>>> {
    let data: Vec<u8> = if m.path == "[vdso]" {
        own_vdso()?
    } else {
        let path = m.symbolize_path()?;
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the file is opened read-only and only read while mapped;
        // a binary changing under a running process would break the
        // process itself first.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        return module_from_elf(&mmap, m, m.offset);
    };
    module_from_elf(&data, m, 0)
}

fn module_from_elf(data: &[u8], m: &Mapping, map_offset: u64) -> Option<Module<Vec<u8>>> {
    let elf = object::File::parse(data).ok()?;
    if elf.architecture() != object::Architecture::X86_64 {
        return None;
    }
    // Load bias: the segment holding the mapped file offset tells how file
    // addresses (SVMAs) relate to process addresses (AVMAs).
    let bias = if m.path == "[vdso]" {
        // The vDSO is mapped whole from its start.
        let first = elf.segments().next()?;
        m.start.wrapping_sub(first.address())
    } else {
        let seg = elf.segments().find(|s| {
            let (off, size) = s.file_range();
            off <= map_offset && map_offset < off + size.max(1)
        })?;
        let (seg_off, _) = seg.file_range();
        m.start.wrapping_sub(map_offset).wrapping_add(seg_off).wrapping_sub(seg.address())
    };
    let section = |name: &str| -> Option<(std::ops::Range<u64>, Vec<u8>)> {
        let s = elf.section_by_name(name)?;
        let bytes = s.uncompressed_data().ok()?.into_owned();
        Some((s.address()..s.address() + s.size(), bytes))
    };
    let text = section(".text");
    let eh_frame = section(".eh_frame");
    let eh_frame_hdr = section(".eh_frame_hdr");
    let debug_frame = section(".debug_frame");
    if eh_frame.is_none() && debug_frame.is_none() {
        return None;
    }
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: text.as_ref().map(|t| t.0.clone()),
        text: text.map(|t| t.1),
        eh_frame_svma: eh_frame.as_ref().map(|t| t.0.clone()),
        eh_frame: eh_frame.map(|t| t.1),
        eh_frame_hdr_svma: eh_frame_hdr.as_ref().map(|t| t.0.clone()),
        eh_frame_hdr: eh_frame_hdr.map(|t| t.1),
        debug_frame: debug_frame.map(|t| t.1),
        ..Default::default()
    };
    Some(Module::new(m.path.clone(), m.start..m.end, bias, info))
}

/// This process's own vDSO image: the same bytes as every process's.
fn own_vdso() -> Option<Vec<u8>> {
    let v = perfkit_symbols::own_vdso()?;
    // SAFETY: the vDSO mapping is readable for the life of the process and
    // never changes; its range comes from our own /proc/self/maps.
    let bytes = unsafe { std::slice::from_raw_parts(v.start as *const u8, (v.end - v.start) as usize) };
    Some(bytes.to_vec())
}
