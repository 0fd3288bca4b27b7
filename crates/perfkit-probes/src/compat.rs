//! Kernel compatibility: the one place where kernel differences are
//! decided.
//!
//! The object ships a variant of each program whose needs differ between
//! kernels; before anything loads, [`KernelFeatures::detect`] reads what
//! this kernel offers from its BTF (`/sys/kernel/btf/vmlinux`), and
//! [`KernelFeatures::programs`] names the variants to load. The rest of the
//! crate sees one interface on every kernel from 5.10 on.
//!
//! | kernel difference | detected by | variant below it |
//! |---|---|---|
//! | `sched_process_exit` passes `group_dead` (newer than 6.12) | its `btf_trace_sched_process_exit` prototype | `track_exit` reads the task only; a process is gone when its main thread exits |
//! | `bpf_loop` (5.17) | `BPF_FUNC_loop` in `enum bpf_func_id` | the `_loopless` samplers walk [`FRAMES_PER_RUN`] frames per run with bounded loops and tail-call a continuation for the rest |
//! | hash maps allocated as used in perf_event programs (6.1) | `struct bpf_mem_alloc` | the sampler's hash maps are preallocated, with smaller default sizes ([`PREALLOCATED_SIZES`]) |
//!
//! Helpers that need newer kernels than 5.10 are not used at all:
//! `bpf_get_current_task` (4.8) stands for `bpf_get_current_task_btf`
//! (5.11), since the programs read task fields at BTF offsets with
//! `bpf_probe_read_kernel`, and the user registers of a task are found at
//! the top of its kernel stack rather than with `bpf_task_pt_regs` (5.15).
//!
//! [`FRAMES_PER_RUN`]: perfkit_probes_common::sampler::FRAMES_PER_RUN

use perfkit_probes_common::names;

use crate::ProbeError;

/// The environment variable that takes features away
/// ([`KernelFeatures::detect`]).
pub const FEATURES_VARIABLE: &str = "PERFKIT_KERNEL_FEATURES";

/// What this kernel offers perfkit's programs, as its BTF says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KernelFeatures {
    /// The `sched_process_exit` tracepoint passes `group_dead` as a second
    /// argument.
    pub exit_group_dead: bool,
    /// The kernel has the `bpf_loop` helper (Linux 5.17).
    pub bpf_loop: bool,
    /// perf_event programs may use hash maps allocated as they fill
    /// (`BPF_F_NO_PREALLOC`; Linux 6.1, whose BTF has `struct
    /// bpf_mem_alloc`). Before, such maps must be preallocated, and the
    /// sampler's are then made smaller by default.
    pub lazy_hash_maps: bool,
}

/// The program variants that run on a kernel, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Programs {
    /// On `sched_process_exit`.
    pub exit: &'static str,
    /// On the cpu-clock perf event of every CPU.
    pub on_cpu: &'static str,
    /// On `sched_switch`, for off-CPU time.
    pub off_cpu: &'static str,
    /// The continuations the on-CPU and off-CPU programs tail-call, when
    /// they walk stacks without `bpf_loop`.
    pub walk_more: Option<(&'static str, &'static str)>,
}

impl KernelFeatures {
    /// Reads this kernel's features from `/sys/kernel/btf/vmlinux` (once per
    /// process).
    ///
    /// The environment variable `PERFKIT_KERNEL_FEATURES` can take
    /// features away, to run an older kernel's variants on a newer kernel
    /// (tests do): a comma-separated list of `no-bpf-loop` and
    /// `no-exit-group-dead` and `no-lazy-hash-maps`. It cannot add a
    /// feature the kernel lacks.
    pub fn detect() -> Result<Self, ProbeError> {
        let mut features = crate::btf::kernel_features()?;
        if let Ok(mask) = std::env::var(FEATURES_VARIABLE) {
            features.mask(&mask).map_err(ProbeError::InvalidConfig)?;
        }
        Ok(features)
    }

    /// Takes away the features `mask` names (see [`KernelFeatures::detect`]).
    fn mask(&mut self, mask: &str) -> Result<(), String> {
        for word in mask.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "no-bpf-loop" => self.bpf_loop = false,
                "no-exit-group-dead" => self.exit_group_dead = false,
                "no-lazy-hash-maps" => self.lazy_hash_maps = false,
                other => {
                    return Err(format!(
                        "{FEATURES_VARIABLE}: unknown word {other:?} (known: no-bpf-loop, no-exit-group-dead, no-lazy-hash-maps)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The program variants to load on a kernel with these features.
    pub fn programs(&self) -> Programs {
        let exit = if self.exit_group_dead { names::EXIT_GROUP_DEAD_PROGRAM } else { names::EXIT_PROGRAM };
        if self.bpf_loop {
            Programs { exit, on_cpu: names::ON_CPU_PROGRAM, off_cpu: names::OFF_CPU_PROGRAM, walk_more: None }
        } else {
            Programs {
                exit,
                on_cpu: names::ON_CPU_LOOPLESS_PROGRAM,
                off_cpu: names::OFF_CPU_LOOPLESS_PROGRAM,
                walk_more: Some((names::ON_CPU_MORE_PROGRAM, names::OFF_CPU_MORE_PROGRAM)),
            }
        }
    }
}

/// The sampler's hash maps and their default sizes on kernels that need
/// them preallocated (memory taken when they are created): about 35 MiB
/// in all, where the sizes used on newer kernels would take 270 MiB.
pub const PREALLOCATED_SIZES: [(&str, u32); 4] =
    [(names::STACKS, 1 << 14), (names::COUNTS, 1 << 15), (names::PROCS, 1 << 10), (names::PAGES, 1 << 16)];

impl std::fmt::Display for KernelFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "bpf_loop: {}; sched_process_exit passes group_dead: {}; hash maps allocated as used: {}",
            yes_no(self.bpf_loop),
            yes_no(self.exit_group_dead),
            yes_no(self.lazy_hash_maps)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(exit_group_dead: bool, bpf_loop: bool) -> KernelFeatures {
        KernelFeatures { exit_group_dead, bpf_loop, lazy_hash_maps: true }
    }

    #[test]
    fn each_exit_signature_gets_the_program_that_reads_only_its_arguments() {
        assert_eq!(features(false, true).programs().exit, "track_exit");
        assert_eq!(features(true, true).programs().exit, "track_exit_group_dead");
    }

    #[test]
    fn kernels_without_bpf_loop_get_the_loopless_walk_and_its_continuations() {
        let modern = features(true, true).programs();
        assert_eq!((modern.on_cpu, modern.off_cpu, modern.walk_more), ("on_cpu_sample", "off_cpu_switch", None));
        let old = features(false, false).programs();
        assert_eq!((old.on_cpu, old.off_cpu), ("on_cpu_sample_loopless", "off_cpu_switch_loopless"));
        assert_eq!(old.walk_more, Some(("on_cpu_walk_more", "off_cpu_walk_more")));
    }

    #[test]
    fn features_can_be_taken_away_not_added() {
        let mut f = features(false, true);
        f.mask("no-bpf-loop, no-exit-group-dead,no-lazy-hash-maps").unwrap();
        assert_eq!(f, KernelFeatures { exit_group_dead: false, bpf_loop: false, lazy_hash_maps: false });
        assert!(f.mask("bpf-loop").is_err());
        f.mask("").unwrap();
        assert!(!f.bpf_loop && !f.lazy_hash_maps);
    }

    #[test]
    fn every_variant_is_in_the_shipped_object() {
        use object::{Object, ObjectSymbol};
        let obj = object::File::parse(crate::object::OBJECT).unwrap();
        let has = |name: &str| obj.symbols().any(|s| s.name() == Ok(name) && s.kind() == object::SymbolKind::Text);
        for f in [features(false, false), features(true, true), features(true, false), features(false, true)] {
            let p = f.programs();
            let mut wanted = vec![p.exit, p.on_cpu, p.off_cpu];
            if let Some((a, b)) = p.walk_more {
                wanted.extend([a, b]);
            }
            for name in wanted {
                assert!(has(name), "the object has no program {name}");
            }
        }
    }
}
