//! Symbolization of sampled stacks, with blazesym.
//!
//! A profiled process may exit before its samples are symbolized, and then
//! `/proc/PID/maps` is gone. [`MapsTracker`] therefore snapshots the
//! process's executable mappings while it runs (call
//! [`refresh`](MapsTracker::refresh) periodically) and holds each mapped file
//! open, so symbolization works after exit, for deleted files and across
//! mount namespaces. [`Symbolizer`] turns raw addresses into
//! [`perfkit_profile::Frame`]s: user frames from the mapped ELF files
//! (demangled, with inlined functions where DWARF has them), kernel frames
//! from kallsyms.

mod maps;
mod symbolizer;

pub use maps::{Mapping, MapsError, MapsTracker, own_vdso, parse_maps};
pub use symbolizer::{SymbolizeOptions, Symbolizer};
