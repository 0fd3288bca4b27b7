//! Types shared by the kernel side (`perfkit-probes-ebpf`) and the user side
//! (`perfkit-probes`) of perfkit's eBPF probes.
//!
//! Everything here is `#[repr(C)]` plain data: the layout is the contract
//! between the BPF object and the loader, so a change here requires rebuilding
//! the object with `cargo xtask build-ebpf`.
#![no_std]

/// Length of a task's command name, as the kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// Deepest stack the kernel records (`PERF_MAX_STACK_DEPTH`).
pub const MAX_STACK_DEPTH: usize = 127;

/// Names of the maps and globals in the on-CPU object, used by the loader.
pub mod names {
    /// Program attached to the cpu-clock perf event on every CPU.
    pub const ON_CPU_PROGRAM: &str = "on_cpu_sample";
    /// Global `u32`: thread group id to sample; never 0 once loaded.
    pub const TARGET_TGID: &str = "TARGET_TGID";
    /// Hash map from [`StackKey`](super::StackKey) to a `u64` sample count.
    pub const COUNTS: &str = "COUNTS";
    /// Stack trace map holding user and kernel stacks by id.
    pub const STACKS: &str = "STACKS";
    /// Per-CPU array with one [`SampleStats`](super::SampleStats).
    pub const STATS: &str = "STATS";
}

/// Default number of entries in the counts map.
pub const DEFAULT_COUNTS_ENTRIES: u32 = 65_536;
/// Default number of entries in the stack trace map.
pub const DEFAULT_STACK_ENTRIES: u32 = 16_384;

/// Stack id recorded when there is no stack of that kind (a kernel stack for
/// a sample taken in user mode, a user stack for a kernel thread).
pub const STACK_ID_NONE: i32 = -1;
/// Stack id recorded when the stack existed but the stack map could not hold
/// it (a hash collision or a full map); the sample is still counted.
pub const STACK_ID_LOST: i32 = -2;

/// Key of the counts map: one unique (process, thread name, stacks) tuple.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackKey {
    /// Thread group id (the process id).
    pub tgid: u32,
    /// User stack id in the stack map, or [`STACK_ID_NONE`] / [`STACK_ID_LOST`].
    pub user_stack_id: i32,
    /// Kernel stack id in the stack map, or [`STACK_ID_NONE`] / [`STACK_ID_LOST`].
    pub kernel_stack_id: i32,
    /// Padding, always zero, so the key has no uninitialised bytes.
    pub _pad: u32,
    /// The sampled thread's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// Counters kept per CPU by the sampling program. User space sums them over
/// CPUs; each field only ever grows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleStats {
    /// Samples of the target process.
    pub samples: u64,
    /// User stacks lost because their stack map bucket held another stack.
    pub user_stack_collisions: u64,
    /// Kernel stacks lost because their stack map bucket held another stack.
    pub kernel_stack_collisions: u64,
    /// Stacks lost because the stack map had no free entry.
    pub stack_map_full: u64,
    /// Stack lookups that failed for another reason (errno of the last one in
    /// `last_stack_error`).
    pub stack_errors: u64,
    /// Samples not counted because the counts map was full.
    pub counts_map_full: u64,
    /// Negative errno of the most recent unexpected stack lookup failure.
    pub last_stack_error: i64,
}

impl SampleStats {
    /// Adds another CPU's counters to these.
    pub fn merge(&mut self, other: &SampleStats) {
        self.samples += other.samples;
        self.user_stack_collisions += other.user_stack_collisions;
        self.kernel_stack_collisions += other.kernel_stack_collisions;
        self.stack_map_full += other.stack_map_full;
        self.stack_errors += other.stack_errors;
        self.counts_map_full += other.counts_map_full;
        if other.last_stack_error != 0 {
            self.last_stack_error = other.last_stack_error;
        }
    }

    /// Stacks that were lost to map collisions or full maps.
    pub fn lost_stacks(&self) -> u64 {
        self.user_stack_collisions + self.kernel_stack_collisions + self.stack_map_full
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are `#[repr(C)]`, `Copy`, made only of integers and
    // integer arrays with explicit padding, so every bit pattern is valid.
    unsafe impl aya::Pod for super::StackKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SampleStats {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<StackKey>(), 32);
        assert_eq!(core::mem::size_of::<SampleStats>(), 56);
    }

    #[test]
    fn merge_sums_counters() {
        let mut a = SampleStats { samples: 3, stack_map_full: 1, ..Default::default() };
        let b = SampleStats { samples: 4, user_stack_collisions: 2, last_stack_error: -22, ..Default::default() };
        a.merge(&b);
        assert_eq!(a.samples, 7);
        assert_eq!(a.lost_stacks(), 3);
        assert_eq!(a.last_stack_error, -22);
    }
}
