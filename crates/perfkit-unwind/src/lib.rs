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
//! [`frame_pointers`] judges from the same CFI (and the binary's language)
//! whether a binary keeps frame pointers.
//!
//! ```no_run
//! let data = std::fs::read("/usr/bin/xz").unwrap();
//! let table = perfkit_unwind::UnwindTable::build(&data).unwrap();
//! println!("{} rows over {} pages", table.rows().len(), table.pages().count());
//! ```

mod elf;
mod eval;
pub mod frame_pointers;
mod table;

pub use elf::{ElfLayout, Segment};
pub use eval::{Regs, StepError, step};
pub use table::{CfaRule, MAX_ROWS, RbpRule, TableRow, TableStats, UnwindTable, encode_page};

/// The largest section this crate decompresses: a compressed section that
/// claims more is treated as absent. The files come from the processes
/// profiled, and a few KiB of compressed zeros must not make perfkit
/// allocate GiBs.
pub const MAX_DECOMPRESSED_SECTION: u64 = 256 << 20;

/// A section's bytes, decompressed if compressed (Go compresses
/// `.debug_frame`); `None` when it cannot be read, or when it would
/// decompress to more than [`MAX_DECOMPRESSED_SECTION`].
pub fn section_data<'data>(section: &impl object::ObjectSection<'data>) -> Option<std::borrow::Cow<'data, [u8]>> {
    let compressed = section.compressed_data().ok()?;
    if compressed.uncompressed_size > MAX_DECOMPRESSED_SECTION {
        return None;
    }
    compressed.decompress().ok()
}

/// Whether a section of an ELF file is compressed and would decompress to
/// more than [`MAX_DECOMPRESSED_SECTION`]: its debug information is then
/// left unread (the symbol tables still name its functions).
pub fn has_oversized_compressed_section(data: &[u8]) -> bool {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(data) else { return false };
    file.sections().any(|s| s.compressed_data().is_ok_and(|c| c.uncompressed_size > MAX_DECOMPRESSED_SECTION))
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
    /// The CFI did not parse.
    #[error("malformed call frame information in {section}: {reason}")]
    Cfi {
        /// `.eh_frame` or `.debug_frame`.
        section: &'static str,
        /// What gimli said.
        reason: String,
    },
}
