//! Unwind tables for walking stacks without frame pointers.
//!
//! [`UnwindTable::build`] reads an x86-64 ELF file's call frame information
//! (`.eh_frame`, and `.debug_frame`, compressed or not, where `.eh_frame`
//! has no entry) and evaluates it into one [`TableRow`] per change of rule:
//! where the canonical frame address (CFA) is (RSP or RBP plus an offset),
//! and where the caller's RBP was saved. The return address is always at
//! CFA − 8 on x86-64, so these two rules are all a stack walker needs.
//!
//! Rows are keyed by **file offset**, not by virtual address. A profiler
//! knows a sampled address's mapping (start address and file offset), so
//! `address − start + offset` is the file offset, whatever the linker's
//! segment layout: GNU ld, gold, lld and mold lay out segments differently,
//! and deriving a load bias from program headers is where stack walkers go
//! wrong.
//!
//! [`cpython`] reads the Python stacks of a running CPython (3.8 to 3.13)
//! from its memory, for naming interpreted frames.
//!
//! [`frame_pointers`] judges from the same CFI (and the binary's language)
//! whether a binary keeps frame pointers.
//!
//! ```no_run
//! let data = std::fs::read("/usr/bin/xz").unwrap();
//! let table = perfkit_unwind::UnwindTable::build(&data).unwrap();
//! println!("{} rows over {} pages", table.rows().len(), table.pages().count());
//! ```

pub mod cpython;
mod elf;
mod eval;
pub mod frame_pointers;
pub mod gopclntab;
pub mod hotspot;
mod table;

pub use elf::{ElfLayout, Segment};
pub use eval::{Regs, StepError, step};
use perfkit_safeio::{Budget, BudgetError, Charge};

pub use table::{CfaRule, MAX_ROWS, RbpRule, TableRow, TableStats, UnwindTable, encode_page, go_debug_frame};

/// The largest section this crate decompresses: a compressed section that
/// claims more is treated as absent. The files come from the processes
/// profiled, and a few KiB of compressed zeros must not make perfkit
/// allocate GiBs.
pub const MAX_DECOMPRESSED_SECTION: u64 = 256 << 20;

/// The most one file's compressed sections may claim together: a file
/// with more has its debug information left unread (its symbol tables
/// still name functions). Eight sections just under
/// [`MAX_DECOMPRESSED_SECTION`] each must not add up to 2 GiB.
pub const MAX_DECOMPRESSED_TOTAL: u64 = 256 << 20;

/// A section's bytes: borrowed from the file, or decompressed and charged
/// to a [`Budget`] for as long as they live.
#[derive(Debug)]
pub struct SectionData<'data> {
    bytes: std::borrow::Cow<'data, [u8]>,
    charge: Option<Charge>,
}

impl<'data> SectionData<'data> {
    /// The bytes, and the charge that holds their memory in the budget
    /// (`None` when they are the file's own, mapped, bytes).
    pub fn into_parts(self) -> (std::borrow::Cow<'data, [u8]>, Option<Charge>) {
        (self.bytes, self.charge)
    }
}

impl std::ops::Deref for SectionData<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A section's bytes, decompressed if compressed (Go compresses
/// `.debug_frame`). `Ok(None)` when it cannot be read, or when it would
/// decompress to more than [`MAX_DECOMPRESSED_SECTION`]; an error when the
/// decompressed bytes do not fit `budget` (`what` names the file). Only
/// the sections asked for are decompressed.
pub fn section_data<'data>(
    section: &impl object::ObjectSection<'data>,
    budget: &Budget,
    what: &str,
) -> Result<Option<SectionData<'data>>, BudgetError> {
    let Ok(compressed) = section.compressed_data() else { return Ok(None) };
    if compressed.format == object::CompressionFormat::None {
        return Ok(compressed.decompress().ok().map(|bytes| SectionData { bytes, charge: None }));
    }
    if compressed.uncompressed_size > MAX_DECOMPRESSED_SECTION {
        return Ok(None);
    }
    let name = section.name().unwrap_or("a section");
    let charge = budget.charge(compressed.uncompressed_size, format_args!("{what} ({name}, decompressed)"))?;
    Ok(compressed.decompress().ok().map(|bytes| SectionData { bytes, charge: Some(charge) }))
}

/// What the compressed sections of an ELF file claim to decompress to:
/// debug sections (`.debug_*`) and the others, each sum saturating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressedSizes {
    /// The `.debug_*` (and `.zdebug_*`) sections.
    pub debug: u64,
    /// Every other compressed section (symbol tables, CFI).
    pub other: u64,
}

impl CompressedSizes {
    /// Both sums together.
    pub fn total(&self) -> u64 {
        self.debug.saturating_add(self.other)
    }
}

/// What the compressed sections of an ELF file claim to decompress to.
pub fn compressed_sizes(data: &[u8]) -> CompressedSizes {
    use object::{Object, ObjectSection};
    let mut sizes = CompressedSizes::default();
    let Ok(file) = object::File::parse(data) else { return sizes };
    for s in file.sections() {
        let Ok(c) = s.compressed_data() else { continue };
        if c.format == object::CompressionFormat::None {
            continue;
        }
        let sum = if s.name().is_ok_and(|n| n.starts_with(".debug_") || n.starts_with(".zdebug_")) {
            &mut sizes.debug
        } else {
            &mut sizes.other
        };
        *sum = sum.saturating_add(c.uncompressed_size);
    }
    sizes
}

/// What the compressed sections of an ELF file claim to decompress to,
/// together (saturating).
pub fn compressed_sections_size(data: &[u8]) -> u64 {
    compressed_sizes(data).total()
}

/// Whether the compressed sections of an ELF file would decompress beyond
/// the bounds: one over [`MAX_DECOMPRESSED_SECTION`], or all of them over
/// [`MAX_DECOMPRESSED_TOTAL`]. Its debug information is then left unread
/// (the symbol tables still name its functions).
pub fn has_oversized_compressed_section(data: &[u8]) -> bool {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(data) else { return false };
    file.sections().any(|s| s.compressed_data().is_ok_and(|c| c.uncompressed_size > MAX_DECOMPRESSED_SECTION))
        || compressed_sections_size(data) > MAX_DECOMPRESSED_TOTAL
}

/// The bytes an unwind table of an ELF file is built from: its
/// `.eh_frame`, `.debug_frame` and `.gopclntab` sections (decompressed
/// sizes for compressed ones), saturating; 0 when the file does not parse.
/// The time a table takes grows with it, not with the file's size.
pub fn cfi_size(data: &[u8]) -> u64 {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(data) else { return 0 };
    file.sections()
        .filter(|s| s.name().is_ok_and(|n| matches!(n, ".eh_frame" | ".debug_frame" | ".gopclntab")))
        .map(|s| s.compressed_data().map_or(s.size(), |c| c.uncompressed_size))
        .fold(0, u64::saturating_add)
}

/// Why a file's unwind table could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnwindError {
    /// Not an ELF file, or a malformed one.
    #[error("not a readable ELF file: {0}")]
    NotElf(String),
    /// An ELF file for another architecture.
    #[error("unwind tables are built for x86-64 only; this file is {0}")]
    Architecture(String),
    /// Building the table would take more memory than the budget allows.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The CFI describes more rows and functions than [`MAX_ROWS`].
    #[error(
        "{section} describes over {max} rows and functions: refused, so that a file cannot decide how much memory is used",
        max = MAX_ROWS
    )]
    TooManyRows {
        /// `.eh_frame` or `.debug_frame`.
        section: &'static str,
    },
    /// The CFI did not parse.
    #[error("malformed call frame information in {section}: {reason}")]
    Cfi {
        /// `.eh_frame` or `.debug_frame`.
        section: &'static str,
        /// What gimli said.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn cfi_size_counts_the_unwind_sections_only() {
        use object::{Object, ObjectSection};
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let file = object::File::parse(&*exe).unwrap();
        let eh = file.section_by_name(".eh_frame").map_or(0, |s| s.size());
        let size = super::cfi_size(&exe);
        assert!(eh > 0 && size >= eh && size < exe.len() as u64, "{size} of {} bytes", exe.len());
        assert_eq!(super::cfi_size(b"not an ELF file"), 0);
    }
}
