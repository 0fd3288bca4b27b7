//! User side of perfkit's eBPF probes.
//!
//! The kernel side (`perfkit-probes-ebpf`) is compiled ahead of time by
//! `cargo xtask build-ebpf` and shipped in `bpf/`, so depending on this crate
//! needs neither nightly nor bpf-linker.
//!
//! [`OnCpuSampler`] samples one process on every online CPU with a
//! `perf_event` program on the cpu-clock software event. The kernel filters
//! samples to the target and aggregates them per unique stack; user space
//! reads only the unique stacks and their counts, in [`OnCpuSampler::finish`].
//!
//! ```no_run
//! use perfkit_probes::{OnCpuConfig, OnCpuSampler};
//! # fn main() -> Result<(), perfkit_probes::ProbeError> {
//! let sampler = OnCpuSampler::start(&OnCpuConfig::new(1234))?;
//! std::thread::sleep(std::time::Duration::from_secs(5));
//! let profile = sampler.finish()?;
//! for sample in &profile.samples {
//!     println!("{} {:?} {}", sample.comm, sample.user, sample.count);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod on_cpu;
pub mod privileges;

pub use error::ProbeError;
pub use on_cpu::{OnCpuConfig, OnCpuSampler, RawProfile};
pub use perfkit_probes_common::{DEFAULT_COUNTS_ENTRIES, DEFAULT_STACK_ENTRIES, SampleStats};
pub use perfkit_profile::raw::{RawSample, RawStack};
