//! Nothing to link: this crate holds tests (`tests/`) that read the
//! repository beyond one crate, and so cannot ship in any crate's package:
//!
//! - the fuzzing corpus in `fuzz/corpus` and `fuzz/artifacts`, replayed
//!   against the parsers of perfkit-formats, perfkit-procstat,
//!   perfkit-symbols and perfkit-unwind, as the fuzz targets call them;
//! - `.gopclntab` read from the CLI tests' Go workload, built by the
//!   machine's Go, against Go's own tools.
//!
//! Keeping them in a crate that is never published lets every published
//! crate's own tests run from its package (`cargo xtask package`).
