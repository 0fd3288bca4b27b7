//! The parts of an ELF file's layout that relate virtual addresses and
//! file offsets.

use object::{Object, ObjectSegment, elf, read::elf::ProgramHeader as _};

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_offset`.
    pub offset: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `PF_X`: the segment holds code.
    pub executable: bool,
}

/// The loadable segments of an ELF file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfLayout {
    /// `PT_LOAD` segments in file order.
    pub segments: Vec<Segment>,
}

impl ElfLayout {
    /// The layout of an ELF file (32- or 64-bit, either endianness); empty
    /// when `data` is not ELF.
    pub fn parse(data: &[u8]) -> Self {
        let Ok(file) = object::File::parse(data) else { return Self::default() };
        Self::of(&file)
    }

    pub(crate) fn of(file: &object::File<'_>) -> Self {
        let mut segments = Vec::new();
        match file {
            object::File::Elf64(f) => {
                let endian = f.endian();
                for ph in f.elf_program_headers() {
                    if ph.p_type(endian) == elf::PT_LOAD {
                        segments.push(Segment {
                            vaddr: ph.p_vaddr(endian),
                            memsz: ph.p_memsz(endian),
                            offset: ph.p_offset(endian),
                            filesz: ph.p_filesz(endian),
                            executable: ph.p_flags(endian) & elf::PF_X != 0,
                        });
                    }
                }
            }
            other => {
                // Without program header flags, any segment may hold code.
                for s in other.segments() {
                    let (offset, filesz) = s.file_range();
                    segments.push(Segment { vaddr: s.address(), memsz: s.size(), offset, filesz, executable: true });
                }
            }
        }
        Self { segments }
    }

    /// The file offset of virtual address `vaddr`, when a segment holds it
    /// in the file.
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let delta = vaddr.checked_sub(s.vaddr)?;
            if delta < s.filesz { s.offset.checked_add(delta) } else { None }
        })
    }

    /// The virtual address of file offset `offset`, preferring code
    /// segments (several segments' page-rounded ranges can share a page
    /// of the file).
    pub fn offset_to_vaddr(&self, offset: u64) -> Option<u64> {
        let in_segment = |s: &&Segment| offset >= s.offset && offset - s.offset < s.filesz;
        let seg = self
            .segments
            .iter()
            .filter(in_segment)
            .find(|s| s.executable)
            .or_else(|| self.segments.iter().find(in_segment))?;
        (offset - seg.offset).checked_add(seg.vaddr)
    }

    /// For a mapping of the file at `start` from file offset `map_offset`
    /// (page-aligned, as mappings are), the difference between process
    /// addresses and the file's virtual addresses in it. `executable` says
    /// the mapping holds code: the segment is then chosen among code
    /// segments, which matters when a read-only segment shares the
    /// mapping's first page (lld's layout).
    pub fn load_bias(&self, start: u64, map_offset: u64, executable: bool) -> Option<u64> {
        const PAGE: u64 = 4096;
        let covers = |s: &&Segment| {
            let first = s.offset & !(PAGE - 1);
            // Program headers come from the file: their sums may overflow.
            map_offset >= first && map_offset < s.offset.saturating_add(s.filesz.max(1))
        };
        let seg = if executable { self.segments.iter().filter(|s| s.executable).find(covers) } else { None }
            .or_else(|| self.segments.iter().find(covers))?;
        // The mapping's first byte is file offset `map_offset`, which the
        // segment places at vaddr + (map_offset - offset).
        let vaddr_of_start = seg.vaddr.wrapping_add(map_offset).wrapping_sub(seg.offset);
        Some(start.wrapping_sub(vaddr_of_start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lld's layout: a read-only segment ending mid-page, then the code
    /// segment at the next file offset, one page further in memory.
    fn lld_like() -> ElfLayout {
        ElfLayout {
            segments: vec![
                Segment { vaddr: 0, memsz: 0x1234, offset: 0, filesz: 0x1234, executable: false },
                Segment { vaddr: 0x2240, memsz: 0x5000, offset: 0x1240, filesz: 0x5000, executable: true },
            ],
        }
    }

    #[test]
    fn offsets_and_addresses_convert_through_the_right_segment() {
        let l = lld_like();
        assert_eq!(l.vaddr_to_offset(0x2300), Some(0x1300));
        assert_eq!(l.vaddr_to_offset(0x100), Some(0x100));
        assert_eq!(l.offset_to_vaddr(0x1300), Some(0x2300));
        assert_eq!(l.vaddr_to_offset(0x9000_0000), None);
    }

    #[test]
    fn load_bias_of_a_code_mapping_uses_the_code_segment() {
        // The code mapping starts at file offset 0x1000 (page-rounded), at
        // process address 0x5555_5555_6000.
        let l = lld_like();
        let bias = l.load_bias(0x5555_5555_6000, 0x1000, true).unwrap();
        // vaddr 0x2240 is file offset 0x1240, at 0x5555_5555_6240.
        assert_eq!(0x2240u64.wrapping_add(bias), 0x5555_5555_6240);
        // The read-only segment would have given a bias a page off.
        let wrong = l.load_bias(0x5555_5555_6000, 0x1000, false).unwrap();
        assert_eq!(bias.wrapping_sub(wrong), 0u64.wrapping_sub(0x1000));
    }
}
