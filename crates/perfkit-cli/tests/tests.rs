//! perfkit's end-to-end tests: one test binary, run the real `perfkit`.
//!
//! Tests that need root are marked `#[privileged]`-style with
//! `cfg_attr(not(perfkit_privileged), ignore = ...)`: without root they are
//! reported as ignored with the reason; `cargo xtask test` (CI) builds them in
//! strict mode, where they must run and a missing privilege fails them.

#![allow(missing_docs)]

mod util;

mod browser;
mod fidelity;
mod perf_backend;
mod profile;
mod render;
mod sys;
