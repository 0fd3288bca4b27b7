//! The two safety rules every perfkit crate follows, in one place.
//!
//! - [`budget`]: one memory budget for every byte that a target, an input
//!   file or a network client controls. Readers charge what they build
//!   from such bytes (decoded messages, strings, rows, decompressed
//!   sections) before building it; past the limit they fail with a
//!   [`BudgetError`] naming the input and the limit, instead of growing.
//!   The process has one budget ([`Budget::process`], 512 MiB unless the
//!   CLI's `--max-memory` says otherwise), shared by every reader of a job.
//! - [`write`](mod@write): the one way a file perfkit writes is opened: the path is
//!   walked from a trusted start without following other users' links,
//!   planted files are refused, and files appear whole.
//!
//! This crate is small on purpose and depends on nothing of perfkit's, so
//! every other crate can use it.

pub mod budget;
pub mod write;

pub use budget::{Budget, BudgetError, Charge, SizeError, parse_size};
