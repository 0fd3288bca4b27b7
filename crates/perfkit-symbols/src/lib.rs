//! Symbolization of sampled stacks.
//!
//! [`Symbolizer`] turns raw samples into a [`perfkit_model::Profile`]:
//!
//! - user frames from the files the process mapped ([`perfkit_target::Modules`]:
//!   frames the eBPF sampler encoded as (file, offset), or addresses
//!   resolved through the process's mappings), with blazesym: demangled,
//!   with inlined functions and source lines where DWARF has them, and
//!   named from the ELF symbol tables as `perf` names them (qualified Rust
//!   paths, glibc's public aliases rather than `__GI_` ones);
//! - JIT-compiled code from the process's perf map (`/tmp/perf-PID.map`),
//!   read only when it is safe to ([`perfmap`]);
//! - kernel frames from kallsyms;
//! - anything unresolved keeps its place: `module+0xADDR`, with the file
//!   and offset for pprof.
//!
//! Every file is read through the descriptor perfkit opened when the
//! process mapped it, so symbolization works after the process exited or
//! replaced its files.

pub mod perfmap;
mod symbolizer;
mod symtab;

pub use symbolizer::{
    Grouping, JAVA_INTERPRETER, PYTHON_EVAL_LOOP, SymbolizeOptions, SymbolizeReport, Symbolizer, merge_interpreted,
};
