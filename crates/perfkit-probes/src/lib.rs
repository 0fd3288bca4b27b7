//! User side of perfkit's eBPF probes.
//!
//! The kernel side (`perfkit-probes-ebpf`) is compiled ahead of time by
//! `cargo xtask build-ebpf` and shipped in `bpf/`, so depending on this crate
//! needs neither nightly nor bpf-linker.
//!
//! [`StackSampler`] samples stacks on every online CPU (a `perf_event`
//! program on the cpu-clock event) and, optionally, measures off-CPU time
//! (a `sched_switch` raw tracepoint). The kernel filters the tasks
//! ([`Selection`]), walks user stacks with unwind tables compiled from each
//! file's DWARF CFI ([`UserStacks::Tables`], loaded by a thread of its own
//! as files appear) or with frame pointers, and counts samples per unique
//! stack; user space reads only the unique stacks and their counts, in
//! [`StackSampler::finish`].
//!
//! ```no_run
//! use perfkit_probes::{Selection, StackSampler, StackSamplerConfig};
//! # fn main() -> Result<(), perfkit_probes::ProbeError> {
//! let config = StackSamplerConfig::new(Selection::Processes { pids: vec![1234], follow_children: true });
//! let sampler = StackSampler::start(&config)?;
//! std::thread::sleep(std::time::Duration::from_secs(5));
//! let profile = sampler.finish()?;
//! for sample in &profile.samples {
//!     println!("{} {:?} {}", sample.comm, sample.user, sample.count);
//! }
//! # Ok(())
//! # }
//! ```

pub mod btf;
pub mod compat;
mod error;
mod events;
mod late;
mod object;
pub mod privileges;
mod sampler;
mod tables;
pub mod tools;
mod warm;

/// The aya errors [`ProbeError`] carries as sources, re-exported so that
/// callers can inspect them without depending on aya themselves.
pub use aya::{maps::MapError, programs::ProgramError};
pub use compat::{KernelFeatures, Programs};
pub use error::ProbeError;
pub use late::LateStats;
pub use perfkit_model::raw::{RawSample, RawStack};
pub use perfkit_probes_common::sampler::{DEFAULT_COUNTS_ENTRIES, DEFAULT_STACK_ENTRIES, MAX_FRAMES, SampleStats};
pub use perfkit_probes_common::unwind::MAX_MAPPINGS;
pub use perfkit_target::Modules;
pub use sampler::{
    DEFAULT_TABLE_ROWS, MAX_DEFAULT_TABLE_ROWS, OffCpu, RawProfile, Selection, StackSampler, StackSamplerConfig,
    UserStacks, default_table_rows,
};
pub use tables::{MAX_MAPS_READ, TableStats};

#[cfg(test)]
mod frame_encoding_tests {
    use perfkit_model::raw::RawFrame;
    use perfkit_probes_common::unwind::{FRAME_IN_FILE, FRAME_OFFSET_BITS, MAX_FILE_ID, decode_frame, encode_frame};

    /// The eBPF programs and the model encode frames the same way.
    #[test]
    fn the_kernel_side_encodes_frames_as_the_model_decodes_them() {
        assert_eq!(FRAME_IN_FILE, RawFrame::IN_FILE);
        assert_eq!(FRAME_OFFSET_BITS, RawFrame::OFFSET_BITS);
        assert_eq!(MAX_FILE_ID, RawFrame::MAX_FILE_ID);
        for (file, offset) in [(1, 0), (5, 0x1234), (MAX_FILE_ID, (1 << 40) - 1)] {
            let v = encode_frame(file, offset);
            assert_eq!(v, RawFrame::InFile { file, offset }.encode());
            assert_eq!(RawFrame::decode(v), RawFrame::InFile { file, offset });
            assert_eq!(decode_frame(v), Some((file, offset)));
        }
        assert_eq!(decode_frame(0x7fff_1234_5678), None);
        assert_eq!(RawFrame::decode(0x7fff_1234_5678), RawFrame::Address(0x7fff_1234_5678));
    }
}
