//! Whether a binary keeps frame pointers, judged from what it says: its
//! CFI and its language, not from byte patterns at function entries (which
//! shrink-wrapping and instruction scheduling move).
//!
//! - A function whose body computes its CFA from RBP set up a frame
//!   pointer: compilers emit `.cfi_def_cfa_register rbp` right after
//!   `mov %rsp,%rbp`, wherever the prologue ended up.
//! - Go has kept frame pointers on amd64 since Go 1.7, except in functions
//!   without a frame (small leaves), while its `.debug_frame` describes
//!   every frame from RSP. A frame-pointer walk from a frameless leaf skips
//!   the leaf's caller, so a Go binary with its CFI is unwound from the CFI;
//!   a stripped one (`-ldflags=-s -w`) has exact CFI in the SP deltas of its
//!   `.gopclntab`, which walkers use the same way.
//! - A binary with no CFI at all says nothing: that is not evidence of
//!   frame pointers.

use object::Object;

use crate::{UnwindError, UnwindTable};

/// The verdict on one binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It keeps frame pointers.
    FramePointers,
    /// It does not: frame pointers cannot walk it.
    NoFramePointers,
    /// Nothing says (no CFI, and no language known to keep them).
    Unknown,
}

/// What the verdict rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePointerReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Functions of 32 bytes or more with CFI.
    pub functions: usize,
    /// Of those, functions with an RBP-based CFA.
    pub with_frame_pointer: usize,
    /// A Go binary (without CFI or `.gopclntab`, it is judged to keep frame
    /// pointers).
    pub go: bool,
}

impl FramePointerReport {
    /// Whether frame pointers walk this binary.
    pub fn has_frame_pointers(&self) -> bool {
        self.verdict == Verdict::FramePointers
    }
}

/// Judges an ELF file (its bytes).
pub fn inspect(data: &[u8]) -> Result<FramePointerReport, UnwindError> {
    inspect_in(data, perfkit_safeio::Budget::process(), "an ELF file")
}

/// [`inspect`] with the table built within `budget` (`what` names the
/// file in the error when the budget is reached).
pub fn inspect_in(data: &[u8], budget: &perfkit_safeio::Budget, what: &str) -> Result<FramePointerReport, UnwindError> {
    let file = object::File::parse(data).map_err(|e| UnwindError::NotElf(e.to_string()))?;
    let go = file.section_by_name(".go.buildinfo").is_some()
        || file.section_by_name(".gopclntab").is_some()
        || file.section_by_name(".note.go.buildid").is_some();
    let stats = UnwindTable::build_in(data, budget, what)?.stats();
    if go && stats.go_functions > 0 {
        // Go's code has no CFI (stripped), and its rows come from its SP
        // deltas: frameless leaves make a frame-pointer walk skip their
        // callers, as with the CFI of an unstripped Go binary.
        return Ok(judge(go, stats.go_functions, 0));
    }
    Ok(judge(go, stats.sized_functions, stats.sized_rbp_functions))
}

/// [`inspect_in`]'s verdict alone, for less work: a binary without frame
/// pointers is judged from its first FDEs
/// ([`UnwindTable::frame_pointer_counts`]) rather than from a whole
/// unwind table.
pub fn verdict_in(data: &[u8], budget: &perfkit_safeio::Budget, what: &str) -> Result<Verdict, UnwindError> {
    let file = object::File::parse(data).map_err(|e| UnwindError::NotElf(e.to_string()))?;
    let go = file.section_by_name(".go.buildinfo").is_some()
        || file.section_by_name(".gopclntab").is_some()
        || file.section_by_name(".note.go.buildid").is_some();
    if go {
        // Go's verdict rests on its .gopclntab's functions too.
        return inspect_in(data, budget, what).map(|r| r.verdict);
    }
    let stats = UnwindTable::frame_pointer_counts(data, budget, what)?;
    Ok(judge(false, stats.sized_functions, stats.sized_rbp_functions).verdict)
}

/// The verdict from the counts: frame pointers walk a binary only when
/// (nearly) every sizeable function sets one up. A function that does not
/// makes the walk skip its caller when it is sampled: GCC leaves them out
/// of leaf functions even with `-fno-omit-frame-pointer`, and a Rust binary
/// mixes the standard library (built with them) with the program's own
/// code (built without).
pub fn judge(go: bool, functions: usize, with_frame_pointer: usize) -> FramePointerReport {
    let verdict = if functions == 0 && go {
        Verdict::FramePointers
    } else if functions == 0 {
        Verdict::Unknown
    } else if with_frame_pointer * 20 >= functions * 19 {
        Verdict::FramePointers
    } else {
        Verdict::NoFramePointers
    };
    FramePointerReport { verdict, functions, with_frame_pointer, go }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(judge(false, 100, 96).verdict, Verdict::FramePointers);
        assert_eq!(judge(false, 3, 1).verdict, Verdict::NoFramePointers, "leaves without them");
        assert_eq!(judge(false, 427, 370).verdict, Verdict::NoFramePointers, "std with, program without");
        assert_eq!(judge(false, 100, 10).verdict, Verdict::NoFramePointers);
        assert_eq!(judge(false, 0, 0).verdict, Verdict::Unknown, "no CFI is no evidence");
        assert_eq!(judge(true, 0, 0).verdict, Verdict::FramePointers, "stripped Go keeps them");
        assert_eq!(judge(true, 400, 0).verdict, Verdict::NoFramePointers, "Go's frameless leaves need its CFI");
        assert!(inspect(b"not an ELF file").is_err());
        assert!(verdict_in(b"not an ELF file", perfkit_safeio::Budget::process(), "x").is_err());
    }

    #[test]
    fn the_short_verdict_is_the_whole_one() {
        // Libraries of this machine (with and without frame pointers),
        // and this test binary (Rust: std with them, the rest without).
        let budget = perfkit_safeio::Budget::process();
        let mut files = vec![std::env::current_exe().unwrap()];
        for dir in ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"] {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut libs: Vec<_> =
                entries.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().ends_with(".so.6")).collect();
            libs.sort();
            files.extend(libs);
        }
        let mut judged = 0;
        for f in files {
            let Ok(data) = std::fs::read(&f) else { continue };
            let Ok(whole) = inspect_in(&data, budget, "a file") else { continue };
            assert_eq!(verdict_in(&data, budget, "a file").unwrap(), whole.verdict, "{}", f.display());
            judged += 1;
        }
        assert!(judged >= 2, "{judged} files judged");
    }
}
