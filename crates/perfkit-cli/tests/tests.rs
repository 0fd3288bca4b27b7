//! perfkit's end-to-end tests: one test binary, run the real `perfkit`.
//!
//! Tests that need root begin with `let Some(_serial) = privileged() else
//! { return };`, and tests that compare with other tools with
//! `if !tools(&[...]) { return; }`: run-time checks. Without root or the
//! tool, such a test prints `perfkit-test: skipped NAME: needs ...` on the
//! terminal and returns. `cargo xtask test` (CI) sets
//! `PERFKIT_REQUIRE_PRIVILEGED=1`, strict mode, where it runs as root with
//! every tool installed and a missing privilege or tool fails the test.

#![allow(missing_docs)]

mod util;

mod bcc_flags;
mod browser;
mod checkup;
mod fidelity;
mod hardening_inputs;
mod hardening_python;
mod hardening_serve;
mod hardening_targets;
mod hardening_write;
mod irqtools;
mod kernels;
mod memleak;
mod perf_backend;
mod profile;
mod render;
mod runtimes;
mod safety;
mod scope;
mod session;
mod stat;
mod sys;
mod tools;
mod tools_events;
mod trace;
mod ufunc;
mod wakestack;
