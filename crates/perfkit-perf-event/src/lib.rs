//! Sampling and counting with `perf_event_open`.
//!
//! This is perfkit's backend where eBPF is unavailable, and the one that
//! copies user stacks for DWARF unwinding of code built without frame
//! pointers:
//!
//! - [`PerfSampler`] samples every thread of a process (threads it creates
//!   later included) on a software clock, reads the ring buffers while the
//!   target runs, and aggregates identical stacks in memory, so what it
//!   keeps grows with the number of unique stacks, not with time.
//!   [`Unwind::FramePointer`] takes the kernel's callchains;
//!   [`Unwind::Dwarf`] copies a bounded slice of the user stack and the
//!   user registers per sample and unwinds them at once with `framehop`
//!   from the binaries' `.eh_frame`/`.debug_frame`.
//! - [`stat`] counts events like `perf stat`.
//!
//! Events, ring buffers and records come from the `perf-event2` crate.

mod error;
#[cfg(feature = "clap")]
pub mod flags;
mod sampler;
pub mod stat;
mod unwind;

pub use error::{PerfError, paranoid};
pub use sampler::{
    DEFAULT_STACK_BYTES, MAX_INTERPRETER_LAG, PerfConfig, PerfProfile, PerfSampler, PerfScope, PerfStats, SampleEvent,
    Unwind,
};
pub use unwind::{DwarfUnwinder, MAX_FRAMES, UnwindEnd, Unwound};
