//! Go's function table, `.gopclntab`: names, files, lines, inlined calls
//! and each function's stack-pointer delta per PC, for Go binaries without
//! symbols or DWARF (`-ldflags=-s -w`, or `strip`): the Go runtime needs
//! the table for its own tracebacks, so no Go binary is without it.
//!
//! Three layouts are read, told apart by the header's magic:
//! - Go 1.16 and 1.17 (`0xfffffffa`): 64-bit entry
//!   addresses in the function table, funcdata as absolute pointers;
//! - Go 1.18 and 1.19 (`0xfffffff0`): 32-bit entry offsets from the text
//!   start, funcdata as offsets from `moduledata.gofunc`;
//! - Go 1.20 and newer (`0xfffffff1`): as 1.18, with each function's start
//!   line, and a smaller inline-tree entry.
//!
//! The table is found by its section (`.gopclntab`) or, in a file without
//! section headers, by its header's magic and shape. `moduledata`, the
//! runtime's description of the module, is found by its pointer to the
//! table; it gives `gofunc`, the base of the inline trees (1.18 and newer).
//!
//! The bytes are untrusted: every read is bounds-checked, every loop is
//! bounded by the bytes it consumes or by a fixed depth, nothing is
//! allocated in proportion to the input (lookups search the file's own
//! sorted function table), and a malformed table gives no answer rather
//! than a panic.

use std::borrow::Cow;

use object::{Object, ObjectSection};

use crate::ElfLayout;

/// The most inlined calls followed at one PC.
pub const MAX_INLINE_DEPTH: usize = 32;

/// The longest name or file name read; longer ones are cut there.
pub const MAX_NAME: usize = 4096;

/// Which layout a table has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Go 1.16 and 1.17.
    Go116,
    /// Go 1.18 and 1.19.
    Go118,
    /// Go 1.20 and newer.
    Go120,
}

impl Layout {
    /// The layout a header's magic names.
    pub fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            0xffff_fffa => Some(Self::Go116),
            0xffff_fff0 => Some(Self::Go118),
            0xffff_fff1 => Some(Self::Go120),
            _ => None,
        }
    }

    /// The size of a `_func` before its pcdata.
    fn func_size(self) -> usize {
        match self {
            Self::Go116 => 44,
            Self::Go118 => 40,
            Self::Go120 => 44,
        }
    }
}

/// `_PCDATA_InlTreeIndex`.
const PCDATA_INLINE: usize = 2;
/// `_FUNCDATA_InlTree`.
const FUNCDATA_INLINE: usize = 3;

/// One frame at a PC: the function, or a call inlined into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoFrame<'d> {
    /// The function's name, as Go prints it (`main.leaf`).
    pub name: Cow<'d, str>,
    /// The source file, when the table names one.
    pub file: Option<Cow<'d, str>>,
    /// The line, 0 when unknown.
    pub line: u32,
    /// An inlined call (not a physical frame).
    pub inlined: bool,
}

/// One function of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoFunc {
    /// Its entry, a virtual address.
    pub entry: u64,
    /// The end of its code (the next function's entry).
    pub end: u64,
    /// Where its `_func` is in the function table.
    func: usize,
    /// Its pcsp table (offset in pctab, 0 for none).
    pcsp: u32,
    /// `funcID`: which runtime function it is, if special.
    pub func_id: u8,
    /// `funcFlag` (1.18 and newer; 0 before).
    pub flag: u8,
}

/// The funcFlag bit of functions that write SP arbitrarily (1.18 and newer).
pub const FLAG_SPWRITE: u8 = 2;
/// The funcFlag bit of functions at the top of a stack (1.18 and newer).
pub const FLAG_TOPFRAME: u8 = 1;

/// A Go binary's function table, borrowed from the file's bytes.
#[derive(Clone, Debug)]
pub struct GoTable<'d> {
    /// The whole file.
    file: &'d [u8],
    /// From the table's header to the end of its section (or the file).
    table: &'d [u8],
    layout: Layout,
    quantum: u64,
    nfunc: usize,
    text_start: u64,
    funcname: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
    /// The file's segments, to read what pointers point at.
    elf: ElfLayout,
    /// `moduledata.gofunc` (1.18 and newer), when moduledata was found.
    gofunc: Option<u64>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// A NUL-terminated string at `at`, at most [`MAX_NAME`] bytes.
fn cstr(b: &[u8], at: usize) -> Option<Cow<'_, str>> {
    let rest = b.get(at..)?;
    let rest = &rest[..rest.len().min(MAX_NAME)];
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]))
}

/// Reads an unsigned LEB128 varint (32 bits, as Go's runtime reads them).
fn varint(b: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u32::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
}

/// The runs of a pc-value table: `(start, end, value)`, value in force
/// over `[start, end)`. Each step consumes at least two bytes, so the walk
/// is linear in the table.
#[derive(Clone, Debug)]
pub struct PcValues<'d> {
    bytes: &'d [u8],
    pos: usize,
    pc: u64,
    value: i32,
    quantum: u64,
    first: bool,
    done: bool,
    /// The function's end: the walk stops once the PC reaches it.
    end: u64,
    /// Steps left: a table of steps that add 0 to the PC ends here.
    steps_left: u64,
}

/// Steps of a pc-value table walked beyond one per quantum of the
/// function's code (steps that add 0 to the PC are legal, but a table of
/// only those must not make a walk as long as the table).
const EXTRA_PCVALUE_STEPS: u64 = 1024;

impl<'d> PcValues<'d> {
    /// The walk of `bytes` for a function over `[entry, end)`.
    fn new(bytes: &'d [u8], entry: u64, end: u64, quantum: u64) -> Self {
        // Each step reads at least a byte: never more steps than bytes.
        let steps_left = (end.saturating_sub(entry) / quantum.max(1))
            .saturating_add(EXTRA_PCVALUE_STEPS)
            .min(bytes.len() as u64 + 1);
        PcValues { bytes, pos: 0, pc: entry, value: -1, quantum, first: true, done: false, end, steps_left }
    }
}

impl Iterator for PcValues<'_> {
    type Item = (u64, u64, i32);
    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.steps_left == 0 || (!self.first && self.pc >= self.end) {
            self.done = true;
            return None;
        }
        self.steps_left -= 1;
        let step = (|| {
            let uvdelta = varint(self.bytes, &mut self.pos)?;
            if uvdelta == 0 && !self.first {
                return None;
            }
            self.first = false;
            let delta = ((uvdelta >> 1) as i32) ^ -((uvdelta & 1) as i32);
            self.value = self.value.wrapping_add(delta);
            let pcdelta = u64::from(varint(self.bytes, &mut self.pos)?) * self.quantum;
            let start = self.pc;
            self.pc = self.pc.checked_add(pcdelta)?;
            Some((start, self.pc, self.value))
        })();
        if step.is_none() {
            self.done = true;
        }
        step
    }
}

/// The most bytes of a file without section headers searched for the
/// table's header, over all its loadable segments.
const MAX_SCAN: usize = 512 << 20;

impl<'d> GoTable<'d> {
    /// The table of an ELF file, or `None` when it has none (or it does
    /// not parse).
    pub fn find(file: &'d [u8]) -> Option<Self> {
        let elf = ElfLayout::parse(file);
        let parsed = object::File::parse(file).ok();
        if let Some(section) = parsed.as_ref().and_then(|f| f.section_by_name(".gopclntab")) {
            let (offset, size) = section.file_range()?;
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(size).ok()?)?;
            let table = file.get(start..end)?;
            return Self::at(file, table, elf, section.address());
        }
        // No section headers: the header by its magic and shape, at a
        // pointer-aligned place inside a loadable segment (the runtime
        // reads the table, so it is loaded). A file with sections but no
        // .gopclntab is not Go's (and is not scanned), nor is a file that
        // is not ELF. Only the bytes segments load are read, at most
        // MAX_SCAN of them: the holes of a sparse file outside its
        // segments, or a huge file, cost nothing more.
        match parsed.as_ref() {
            None => return None,
            Some(f) if f.sections().any(|s| s.size() > 0) => return None,
            Some(_) => {}
        }
        let mut budget = MAX_SCAN;
        for segment in &elf.segments {
            let Ok(start) = usize::try_from(segment.offset) else { continue };
            let end = usize::try_from(segment.offset.saturating_add(segment.filesz)).unwrap_or(usize::MAX);
            let end = end.min(file.len()).min(start.saturating_add(budget));
            let Some(mut at) = start.checked_next_multiple_of(8) else { continue };
            while end.saturating_sub(at) >= 8 {
                let word = &file[at..at + 8];
                if (word[0] == 0xf0 || word[0] == 0xf1 || word[0] == 0xfa)
                    && word[1..4] == [0xff, 0xff, 0xff]
                    && word[4..8] == [0, 0, 1, 8]
                    && let Some(vaddr) = elf.offset_to_vaddr(at as u64)
                    && let Some(t) = Self::at(file, &file[at..], elf.clone(), vaddr)
                {
                    return Some(t);
                }
                at += 8;
            }
            budget = budget.saturating_sub(end.saturating_sub(start));
            if budget == 0 {
                break;
            }
        }
        None
    }

    /// The table whose header starts `table`, at virtual address `vaddr`.
    pub fn at(file: &'d [u8], table: &'d [u8], elf: ElfLayout, vaddr: u64) -> Option<Self> {
        let layout = Layout::from_magic(u32_at(table, 0)?)?;
        if table.get(4..6)? != [0, 0] || *table.get(7)? != 8 {
            return None;
        }
        let quantum = u64::from(*table.get(6)?);
        if quantum == 0 {
            return None;
        }
        let word = |i: usize| -> Option<usize> { usize::try_from(u64_at(table, 8 + 8 * i)?).ok() };
        let nfunc = word(0)?;
        let (text_start, rest) = match layout {
            Layout::Go116 => (0, 2),
            _ => (u64_at(table, 24)?, 3),
        };
        let mut t = Self {
            file,
            table,
            layout,
            quantum,
            nfunc,
            text_start,
            funcname: word(rest)?,
            cutab: word(rest + 1)?,
            filetab: word(rest + 2)?,
            pctab: word(rest + 3)?,
            pcln: word(rest + 4)?,
            elf,
            gofunc: None,
        };
        // The function table must be inside: nfunc + 1 entries.
        let entry_size = if layout == Layout::Go116 { 16 } else { 8 };
        let ftab_end = nfunc.checked_add(1)?.checked_mul(entry_size)?.checked_add(t.pcln)?;
        if ftab_end > table.len() || [t.funcname, t.cutab, t.filetab, t.pctab].iter().any(|&o| o > table.len()) {
            return None;
        }
        if layout != Layout::Go116 {
            t.gofunc = t.find_gofunc(vaddr);
        }
        Some(t)
    }

    /// `moduledata.gofunc`, from the moduledata that points at this table
    /// (`vaddr`) and at its function names right after.
    fn find_gofunc(&self, vaddr: u64) -> Option<u64> {
        let names = vaddr.checked_add(self.funcname as u64)?;
        // Word index of gofunc: after the header pointer, six slices,
        // findfunctab, minpc, maxpc, text, etext, eight data bounds, (1.20:
        // covctrs, ecovctrs), end, gcdata, gcbss, types, etypes, rodata.
        let index = if self.layout == Layout::Go120 { 40 } else { 38 };
        let mut at = 0;
        while at + 16 <= self.file.len() {
            if u64_at(self.file, at) == Some(vaddr) && u64_at(self.file, at + 8) == Some(names) {
                // The text start it names must be the table's.
                let text = u64_at(self.file, at + 22 * 8);
                let rodata = u64_at(self.file, at + (index - 1) * 8);
                let gofunc = u64_at(self.file, at + index * 8);
                if let (Some(text), Some(rodata), Some(gofunc)) = (text, rodata, gofunc)
                    && text == self.text_start
                    && rodata <= gofunc
                    && self.elf.vaddr_to_offset(gofunc).is_some()
                {
                    return Some(gofunc);
                }
            }
            at += 8;
        }
        None
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// How many functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Whether it has no function.
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// Whether inlined calls can be named (the inline trees were found).
    pub fn has_inline_trees(&self) -> bool {
        self.layout == Layout::Go116 || self.gofunc.is_some()
    }

    /// The `i`th entry of the function table: (entry address, `_func` offset).
    fn ftab(&self, i: usize) -> Option<(u64, usize)> {
        if i > self.nfunc {
            return None;
        }
        match self.layout {
            Layout::Go116 => {
                let at = self.pcln.checked_add(i.checked_mul(16)?)?;
                Some((u64_at(self.table, at)?, usize::try_from(u64_at(self.table, at + 8)?).ok()?))
            }
            _ => {
                let at = self.pcln.checked_add(i.checked_mul(8)?)?;
                let entry = self.text_start.checked_add(u64::from(u32_at(self.table, at)?))?;
                Some((entry, u32_at(self.table, at + 4)? as usize))
            }
        }
    }

    /// The `i`th function.
    pub fn func(&self, i: usize) -> Option<GoFunc> {
        if i >= self.nfunc {
            return None;
        }
        let (entry, off) = self.ftab(i)?;
        let (end, _) = self.ftab(i + 1)?;
        let func = self.pcln.checked_add(off)?;
        let f = self.table.get(func..func.checked_add(self.layout.func_size())?)?;
        let base = if self.layout == Layout::Go116 { 8 } else { 4 };
        let pcsp = u32_at(f, base + 12)?;
        let (func_id, flag) = match self.layout {
            Layout::Go116 => (f[40], 0),
            Layout::Go118 => (f[36], f[37]),
            Layout::Go120 => (f[40], f[41]),
        };
        Some(GoFunc { entry, end: end.max(entry), func, pcsp, func_id, flag })
    }

    /// The functions, in address order.
    pub fn functions(&self) -> impl Iterator<Item = GoFunc> + '_ {
        (0..self.nfunc).map_while(|i| self.func(i))
    }

    /// The function whose code holds `pc` (a virtual address): a binary
    /// search of the file's sorted function table.
    pub fn func_at(&self, pc: u64) -> Option<GoFunc> {
        let (mut lo, mut hi) = (0usize, self.nfunc);
        // The first entry after pc.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ftab(mid)?.0 <= pc {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let f = self.func(lo.checked_sub(1)?)?;
        (f.entry <= pc && pc < f.end).then_some(f)
    }

    /// A field of a `_func` after the entry: `index` counts 32-bit words
    /// from `nameoff` (0 nameoff, 1 args, 2 deferreturn, 3 pcsp, 4 pcfile,
    /// 5 pcln, 6 npcdata, 7 cuOffset).
    fn field(&self, f: &GoFunc, index: usize) -> Option<u32> {
        let base = if self.layout == Layout::Go116 { 8 } else { 4 };
        u32_at(self.table, f.func.checked_add(base + 4 * index)?)
    }

    /// The function's name.
    pub fn name(&self, f: &GoFunc) -> Option<Cow<'d, str>> {
        self.name_at(self.field(f, 0)? as i32)
    }

    fn name_at(&self, nameoff: i32) -> Option<Cow<'d, str>> {
        let at = self.funcname.checked_add(usize::try_from(nameoff).ok()?)?;
        cstr(self.table, at)
    }

    /// The runs of a pc-value table of `f` (at `off` in pctab).
    pub fn pcvalues(&self, f: &GoFunc, off: u32) -> PcValues<'d> {
        let bytes = if off == 0 {
            &[][..]
        } else {
            self.pctab.checked_add(off as usize).and_then(|a| self.table.get(a..)).unwrap_or(&[])
        };
        PcValues::new(bytes, f.entry, f.end, self.quantum)
    }

    /// The SP delta runs of `f`: how far SP is below its value at entry
    /// (the return address), per range of PCs.
    pub fn sp_deltas(&self, f: &GoFunc) -> PcValues<'d> {
        self.pcvalues(f, f.pcsp)
    }

    /// The value of a pc-value table at `pc`, -1 when none covers it. The
    /// walk stops once the running PC passes `pc`.
    fn value_at(&self, f: &GoFunc, off: u32, pc: u64) -> i32 {
        self.pcvalues(f, off)
            .take_while(|&(start, _, _)| start <= pc)
            .find(|&(start, end, _)| start <= pc && pc < end)
            .map_or(-1, |(_, _, v)| v)
    }

    /// The source file and line of `pc` in `f`.
    fn file_line(&self, f: &GoFunc, pc: u64) -> (Option<Cow<'d, str>>, u32) {
        let line = self.field(f, 5).map_or(-1, |t| self.value_at(f, t, pc));
        let file = (|| {
            let fileno = self.value_at(f, self.field(f, 4)?, pc);
            let cu = self.field(f, 7)? as usize;
            let index = cu.checked_add(usize::try_from(fileno).ok()?)?;
            let off = u32_at(self.table, self.cutab.checked_add(index.checked_mul(4)?)?)?;
            if off == u32::MAX {
                return None;
            }
            cstr(self.table, self.filetab.checked_add(off as usize)?)
        })();
        (file, u32::try_from(line).unwrap_or(0))
    }

    /// The inline tree of `f` and its pcdata table, when it has both.
    fn inline_tree(&self, f: &GoFunc) -> Option<(usize, u32)> {
        let npcdata = self.field(f, 6)? as usize;
        if npcdata <= PCDATA_INLINE {
            return None;
        }
        let fs = self.layout.func_size();
        let pcdata_at = f.func.checked_add(fs)?;
        let table = u32_at(self.table, pcdata_at + 4 * PCDATA_INLINE)?;
        let nfuncdata = usize::from(*self.table.get(f.func + fs - 1)?);
        if nfuncdata <= FUNCDATA_INLINE || table == 0 {
            return None;
        }
        let funcdata_at = pcdata_at.checked_add(npcdata.checked_mul(4)?)?;
        let tree = match self.layout {
            Layout::Go116 => {
                // Pointers, aligned to 8 in the table.
                let at = funcdata_at.next_multiple_of(8) + 8 * FUNCDATA_INLINE;
                u64_at(self.table, at)?
            }
            _ => {
                let off = u32_at(self.table, funcdata_at + 4 * FUNCDATA_INLINE)?;
                if off == u32::MAX {
                    return None;
                }
                self.gofunc?.checked_add(u64::from(off))?
            }
        };
        let at = usize::try_from(self.elf.vaddr_to_offset(tree)?).ok()?;
        Some((at, table))
    }

    /// The frames at `pc` (a virtual address), outermost first: the
    /// function, then each call inlined there, the innermost last. `None`
    /// when no function holds `pc`.
    pub fn lookup(&self, pc: u64) -> Option<Vec<GoFrame<'d>>> {
        let f = self.func_at(pc)?;
        let tree = self.inline_tree(&f);
        let mut frames = Vec::new();
        let mut at = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let (file, line) = self.file_line(&f, at);
            let inlined = tree.and_then(|(tree, table)| {
                let ix = usize::try_from(self.value_at(&f, table, at)).ok()?;
                self.inlined_call(tree, ix)
            });
            match inlined {
                Some((nameoff, parent_pc)) => {
                    let name = self.name_at(nameoff).unwrap_or(Cow::Borrowed("?"));
                    frames.push(GoFrame { name, file, line, inlined: true });
                    at = f.entry.checked_add(u64::try_from(parent_pc).ok()?)?;
                }
                None => {
                    let name = self.name(&f).unwrap_or(Cow::Borrowed("?"));
                    frames.push(GoFrame { name, file, line, inlined: false });
                    frames.reverse();
                    return Some(frames);
                }
            }
        }
        // Deeper than the bound (or a cycle in a hostile tree): the
        // function itself, outermost.
        frames.push(GoFrame { name: self.name(&f).unwrap_or(Cow::Borrowed("?")), file: None, line: 0, inlined: false });
        frames.reverse();
        Some(frames)
    }

    /// Entry `ix` of the inline tree at file offset `tree`: the inlined
    /// function's name offset and the parent PC (from the entry).
    fn inlined_call(&self, tree: usize, ix: usize) -> Option<(i32, i32)> {
        match self.layout {
            Layout::Go120 => {
                let at = tree.checked_add(ix.checked_mul(16)?)?;
                Some((u32_at(self.file, at + 4)? as i32, u32_at(self.file, at + 8)? as i32))
            }
            _ => {
                let at = tree.checked_add(ix.checked_mul(20)?)?;
                Some((u32_at(self.file, at + 12)? as i32, u32_at(self.file, at + 16)? as i32))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pc_value_tables_as_go_does() {
        // From Go's runtime: value deltas zig-zag encoded, PC deltas in
        // quanta, a zero value delta after the first step ends the table.
        // -1 + 9 = 8 over [0x100, 0x104), 8 + 16 = 24 over [0x104, 0x130),
        // 24 - 16 = 8 over [0x130, 0x131).
        let bytes = [18, 4, 32, 44, 31, 1, 0];
        let f = GoFunc { entry: 0x100, end: 0x131, func: 0, pcsp: 0, func_id: 0, flag: 0 };
        let runs: Vec<_> = PcValues::new(&bytes, f.entry, f.end, 1).collect();
        assert_eq!(runs, vec![(0x100, 0x104, 8), (0x104, 0x130, 24), (0x130, 0x131, 8)]);
        // Truncated or overlong varints end the table.
        let runs: Vec<_> = PcValues::new(&[0xff; 9], 0, 0x100, 1).collect();
        assert!(runs.is_empty());
    }

    /// A table of a million steps that add 0 to the PC (value +1, PC +0):
    /// legal varints, never a zero value delta to end it.
    fn zero_pc_steps(n: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(2 * n + 4);
        for _ in 0..n {
            bytes.extend_from_slice(&[2, 0]);
        }
        bytes
    }

    #[test]
    fn steps_that_add_nothing_to_the_pc_end_the_walk_early() {
        let bytes = zero_pc_steps(1_000_000);
        // A function of 0x40 bytes: at most 0x40 + EXTRA_PCVALUE_STEPS
        // steps, whatever the table's length.
        let runs = PcValues::new(&bytes, 0x1000, 0x1040, 1).count();
        assert_eq!(runs as u64, 0x40 + EXTRA_PCVALUE_STEPS);
        // With quantum 4, a quarter of the function's bytes.
        let runs = PcValues::new(&bytes, 0x1000, 0x1040, 4).count();
        assert_eq!(runs as u64, 0x10 + EXTRA_PCVALUE_STEPS);
        // Steps that reach the function's end stop it, whatever follows.
        let mut bytes = vec![2, 0x40];
        bytes.extend(zero_pc_steps(1_000_000));
        let runs: Vec<_> = PcValues::new(&bytes, 0x1000, 0x1040, 1).collect();
        assert_eq!(runs, vec![(0x1000, 0x1040, 0)]);
    }

    #[test]
    fn a_value_lookup_stops_past_its_pc() {
        // One real run, then zero-PC steps: a lookup before the run's
        // end stops at once; one after the function covers nothing.
        let mut bytes = vec![2, 0x10];
        bytes.extend(zero_pc_steps(1_000_000));
        let started = std::time::Instant::now();
        let found = PcValues::new(&bytes, 0x1000, 0x1000_0000, 1)
            .take_while(|&(start, _, _)| start <= 0x1008)
            .find(|&(start, end, _)| start <= 0x1008 && 0x1008 < end);
        assert_eq!(found, Some((0x1000, 0x1010, 0)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Past the real run: the zero-PC steps are walked, up to the
        // step bound (the function is huge here), not to the table's end.
        let walked = PcValues::new(&bytes, 0x1000, 0x1100, 1).count();
        assert!(walked as u64 <= 0x100 + EXTRA_PCVALUE_STEPS);
    }

    /// A table in `layout` as Go's linker lays it out, with two functions:
    /// `main.outer` (0x401000..0x401040: SP delta 0, then 0x18 from
    /// 0x401004; lines 10 then 12 from 0x401010; `main.inlined` inlined
    /// over 0x401020..0x401030, called at 0x401008) and `main.leaf`
    /// (0x401040..0x401060, no tables). Returns the file: the table at
    /// offset 0, the inline tree after it, at its file offset as address.
    fn synthesize(layout: Layout) -> (Vec<u8>, u64) {
        let text = 0x401000u64;
        let names = b"\0main.outer\0main.leaf\0main.inlined\0";
        let (outer, leaf, inlined) = (1u32, 12u32, 22u32);
        let files = b"main.go\0";
        // pctab: offset 0 means no table.
        let pctab: Vec<u8> = [
            &[0u8][..],
            &[2, 4, 0x30, 0x3c, 0][..],          // pcsp at 1: 0 over 4 bytes, then 0x18
            &[2, 0x40, 0][..],                   // pcfile at 6: file 0
            &[22, 0x10, 4, 0x30, 0][..],         // pcln at 9: 10, then 12
            &[0, 0x20, 2, 0x10, 1, 0x10, 0][..], // inline index at 14: -1, 0, -1
        ]
        .concat();
        let (pcsp, pcfile, pcln, pcinl) = (1u32, 6u32, 9u32, 14u32);
        let magic: u32 = match layout {
            Layout::Go116 => 0xffff_fffa,
            Layout::Go118 => 0xffff_fff0,
            Layout::Go120 => 0xffff_fff1,
        };
        let words = if layout == Layout::Go116 { 7 } else { 8 };
        let header = 8 + 8 * words;
        let funcname = header;
        let cutab = (funcname + names.len()).next_multiple_of(8);
        let filetab = cutab + 8;
        let pctab_at = filetab + files.len();
        let pcln_at = (pctab_at + pctab.len()).next_multiple_of(8);
        let entry_size = if layout == Layout::Go116 { 16 } else { 8 };
        let ftab_len: usize = 3 * entry_size;
        let func0 = ftab_len.next_multiple_of(8);
        let fsize = layout.func_size();
        // outer: 3 pcdata, 4 funcdata; leaf: none.
        let pcdata_end = func0 + fsize + 12;
        let funcdata_at = if layout == Layout::Go116 { pcdata_end.next_multiple_of(8) } else { pcdata_end };
        let func1 = (funcdata_at + if layout == Layout::Go116 { 32 } else { 16 }).next_multiple_of(8);
        let table_len = pcln_at + func1 + fsize;
        let tree_at = table_len.next_multiple_of(8) as u64;
        let gofunc = tree_at - 0x10;

        let mut b = vec![0u8; tree_at as usize + 32];
        let put32 = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 = |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, 0, magic);
        b[6] = 1;
        b[7] = 8;
        let mut w = vec![2u64, 1];
        if layout != Layout::Go116 {
            w.push(text);
        }
        w.extend([funcname, cutab, filetab, pctab_at, pcln_at].map(|v| v as u64));
        for (i, v) in w.iter().enumerate() {
            put64(&mut b, 8 + 8 * i, *v);
        }
        b[funcname..funcname + names.len()].copy_from_slice(names);
        put32(&mut b, cutab, 0);
        b[filetab..filetab + files.len()].copy_from_slice(files);
        b[pctab_at..pctab_at + pctab.len()].copy_from_slice(&pctab);
        for (i, (entry, func)) in [(text, func0), (text + 0x40, func1), (text + 0x60, 0)].into_iter().enumerate() {
            let at = pcln_at + i * entry_size;
            if layout == Layout::Go116 {
                put64(&mut b, at, entry);
                put64(&mut b, at + 8, func as u64);
            } else {
                put32(&mut b, at, (entry - text) as u32);
                put32(&mut b, at + 4, func as u32);
            }
        }
        for (func, entry, name, tables, npcdata, nfuncdata) in
            [(func0, text, outer, [pcsp, pcfile, pcln], 3u32, 4u8), (func1, text + 0x40, leaf, [0, 0, 0], 0, 0)]
        {
            let at = pcln_at + func;
            let base = if layout == Layout::Go116 {
                put64(&mut b, at, entry);
                at + 8
            } else {
                put32(&mut b, at, (entry - text) as u32);
                at + 4
            };
            put32(&mut b, base, name);
            for (i, t) in tables.into_iter().enumerate() {
                put32(&mut b, base + 12 + 4 * i, t);
            }
            put32(&mut b, base + 24, npcdata);
            b[at + fsize - 1] = nfuncdata;
        }
        put32(&mut b, pcln_at + func0 + fsize + 8, pcinl);
        let fd = pcln_at + funcdata_at;
        if layout == Layout::Go116 {
            put64(&mut b, fd + 24, tree_at);
        } else {
            put32(&mut b, fd + 12, (tree_at - gofunc) as u32);
        }
        // The inline tree's one call: main.inlined, called at entry + 8.
        let t = tree_at as usize;
        if layout == Layout::Go120 {
            put32(&mut b, t + 4, inlined);
            put32(&mut b, t + 8, 8);
        } else {
            put32(&mut b, t + 12, inlined);
            put32(&mut b, t + 16, 8);
        }
        (b, gofunc)
    }

    #[test]
    fn reads_the_three_layouts() {
        for layout in [Layout::Go116, Layout::Go118, Layout::Go120] {
            let (file, gofunc) = synthesize(layout);
            let elf = ElfLayout {
                segments: vec![crate::Segment {
                    vaddr: 0,
                    memsz: file.len() as u64,
                    offset: 0,
                    filesz: file.len() as u64,
                    executable: false,
                }],
            };
            let mut t = GoTable::at(&file, &file, elf, 0).unwrap_or_else(|| panic!("{layout:?}"));
            assert_eq!(t.layout(), layout);
            if layout != Layout::Go116 {
                // Found through moduledata in real files.
                assert_eq!(t.gofunc, None);
                t.gofunc = Some(gofunc);
            }
            assert_eq!(t.len(), 2);
            let names: Vec<_> = t.functions().map(|f| (f.entry, f.end, t.name(&f).unwrap().into_owned())).collect();
            assert_eq!(
                names,
                vec![(0x401000, 0x401040, "main.outer".into()), (0x401040, 0x401060, "main.leaf".into())],
                "{layout:?}"
            );
            let outer = t.func_at(0x40103f).unwrap();
            let sp: Vec<_> = t.sp_deltas(&outer).collect();
            assert_eq!(sp, vec![(0x401000, 0x401004, 0), (0x401004, 0x401040, 0x18)], "{layout:?}");
            let frame = |name: &str, line, inlined| GoFrame {
                name: name.to_owned().into(),
                file: Some("main.go".into()),
                line,
                inlined,
            };
            assert_eq!(t.lookup(0x401004).unwrap(), vec![frame("main.outer", 10, false)], "{layout:?}");
            assert_eq!(t.lookup(0x401011).unwrap(), vec![frame("main.outer", 12, false)], "{layout:?}");
            assert_eq!(
                t.lookup(0x401024).unwrap(),
                vec![frame("main.outer", 10, false), frame("main.inlined", 12, true)],
                "{layout:?}: the call site's line from the parent PC"
            );
            let leaf = t.lookup(0x401050).unwrap();
            assert_eq!((leaf.len(), &*leaf[0].name, leaf[0].line), (1, "main.leaf", 0), "{layout:?}");
            assert!(t.lookup(0x401060).is_none() && t.lookup(0x400fff).is_none(), "{layout:?}");
        }
    }

    /// A 64-bit ELF file without section headers: one read-only `PT_LOAD`
    /// at 0x400000 over the whole file, or (`loaded` false) over its
    /// headers only, and `table` at offset 0x1000.
    fn elf_without_sections(table: &[u8], loaded: bool) -> Vec<u8> {
        let at = 0x1000;
        let mut f = vec![0u8; at + table.len()];
        let put = |f: &mut Vec<u8>, at: usize, bytes: &[u8]| f[at..at + bytes.len()].copy_from_slice(bytes);
        put(&mut f, 0, b"\x7fELF\x02\x01\x01");
        for (at, v) in [(16, 2u16), (18, 62), (52, 64), (54, 56), (56, 1), (58, 64)] {
            put(&mut f, at, &v.to_le_bytes());
        }
        put(&mut f, 20, &1u32.to_le_bytes());
        put(&mut f, 32, &64u64.to_le_bytes());
        let filesz = if loaded { f.len() as u64 } else { at as u64 };
        put(&mut f, 64, &1u32.to_le_bytes());
        put(&mut f, 68, &4u32.to_le_bytes());
        for (i, v) in [0, 0x400000, 0x400000, filesz, filesz, 0x1000u64].into_iter().enumerate() {
            put(&mut f, 72 + 8 * i, &v.to_le_bytes());
        }
        put(&mut f, at, table);
        f
    }

    #[test]
    fn a_stripped_file_is_searched_only_where_it_is_loaded() {
        let (table, _) = synthesize(Layout::Go120);
        let file = elf_without_sections(&table, true);
        let t = GoTable::find(&file).expect("the table in a loaded segment is found");
        assert_eq!(t.nfunc, 2);
        // The same bytes outside every segment are not a table (and are
        // not read: the sparse-file test in perfkit-cli measures that).
        assert!(GoTable::find(&elf_without_sections(&table, false)).is_none());
    }

    #[test]
    fn refuses_what_is_not_a_table() {
        assert!(GoTable::find(b"not an ELF file").is_none());
        let mut header = vec![0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        header.extend_from_slice(&u64::MAX.to_le_bytes());
        header.resize(80, 0);
        assert!(GoTable::at(&header, &header, ElfLayout::default(), 0).is_none(), "nfunc past the end");
    }
}
