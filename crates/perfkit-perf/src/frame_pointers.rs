//! Whether a binary keeps frame pointers, judged from its code.
//!
//! Code built with frame pointers starts (nearly) every function with
//! `push %rbp; mov %rsp,%rbp`, possibly after `endbr64`. Reading the first
//! bytes of up to a few hundred function symbols answers the question in
//! well under a millisecond, before anything is sampled.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// The verdict on one binary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FramePointerReport {
    /// Functions whose prologue was read.
    pub functions: usize,
    /// Of those, functions that set up a frame pointer.
    pub with_frame_pointer: usize,
}

impl FramePointerReport {
    /// Whether the binary was built with frame pointers: at least half of
    /// its functions set one up (leaf functions and hand-written assembly
    /// may not, even in a frame-pointer build).
    pub fn has_frame_pointers(&self) -> bool {
        self.with_frame_pointer * 2 >= self.functions
    }
}

/// How many functions are inspected at most.
const MAX_FUNCTIONS: usize = 400;

/// Reads a binary's function prologues. `None` when it is not an x86-64
/// ELF file with function symbols (a stripped binary), where nothing can
/// be said.
pub fn inspect(path: &Path) -> Option<FramePointerReport> {
    let data = std::fs::read(path).ok()?;
    inspect_bytes(&data)
}

/// [`inspect`] on the file's bytes.
pub fn inspect_bytes(data: &[u8]) -> Option<FramePointerReport> {
    let file = object::File::parse(data).ok()?;
    if file.architecture() != object::Architecture::X86_64 {
        return None;
    }
    let text = file.section_by_name(".text")?;
    let (text_addr, text_data) = (text.address(), text.data().ok()?);
    let mut symbols: Vec<_> = file.symbols().collect();
    if symbols.is_empty() {
        symbols = file.dynamic_symbols().collect();
    }
    let mut report = FramePointerReport { functions: 0, with_frame_pointer: 0 };
    // Small functions are often leaves without a frame even in frame-pointer
    // builds; judge by the others.
    for sym in symbols.iter().filter(|s| s.kind() == SymbolKind::Text && s.size() >= 32).take(MAX_FUNCTIONS) {
        let Some(offset) = sym.address().checked_sub(text_addr) else { continue };
        let Some(code) = text_data.get(offset as usize..) else { continue };
        report.functions += 1;
        if sets_up_frame_pointer(code) {
            report.with_frame_pointer += 1;
        }
    }
    (report.functions > 0).then_some(report)
}

/// `[endbr64;] push %rbp; mov %rsp,%rbp` at the start of `code`.
fn sets_up_frame_pointer(code: &[u8]) -> bool {
    let code = code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa][..]).unwrap_or(code);
    // push %rbp, then mov %rsp,%rbp in either encoding.
    code.starts_with(&[0x55, 0x48, 0x89, 0xe5]) || code.starts_with(&[0x55, 0x48, 0x8b, 0xec])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_prologues() {
        assert!(sets_up_frame_pointer(&[0x55, 0x48, 0x89, 0xe5, 0x90]));
        assert!(sets_up_frame_pointer(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5]));
        assert!(!sets_up_frame_pointer(&[0x48, 0x83, 0xec, 0x08]));
        assert!(!sets_up_frame_pointer(&[0x55]));
    }

    #[test]
    fn not_elf_is_unknown() {
        assert_eq!(inspect_bytes(b"not an ELF file"), None);
    }
}
