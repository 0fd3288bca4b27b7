//! Nothing to link: this crate holds tests (`tests/`) that read the
//! repository beyond one crate, and so cannot ship in any crate's package:
//!
//! - the fuzzing corpus in `fuzz/corpus` and `fuzz/artifacts`, replayed
//!   against the parsers of perfkit-formats, perfkit-procstat,
//!   perfkit-symbols and perfkit-unwind, as the fuzz targets call them;
//! - the table of bcc's flags (`crates/perfkit-cli/bcc-flags.tsv`) against
//!   docs/TOOLS.md and the markers of the CLI's integration tests;
//! - `.gopclntab` read from the CLI tests' Go workload, built by the
//!   machine's Go, against Go's own tools.
//!
//! Keeping them in a crate that is never published lets every published
//! crate's own tests run from its package (`cargo xtask package`).

use std::path::{Path, PathBuf};

/// The repository's fuzzing directory (`fuzz/`).
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every input of one fuzz target, sorted: its corpus
/// (`fuzz/corpus/TARGET`) and the crashes its fuzzer found
/// (`fuzz/artifacts/TARGET`). Panics when there is none: a replay of
/// nothing would pass without testing anything.
pub fn fuzz_inputs(target: &str) -> Vec<PathBuf> {
    let root = fuzz_dir();
    let mut out = Vec::new();
    for dir in ["corpus", "artifacts"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    assert!(!out.is_empty(), "no corpus for the {target} fuzz target under {}", root.display());
    out.sort();
    out
}
