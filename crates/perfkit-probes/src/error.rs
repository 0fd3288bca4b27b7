use std::io;

/// Why a probe could not be loaded, attached or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The process lacks the privileges BPF profiling needs.
    #[error(
        "permission denied: {what} needs root, or the capabilities CAP_BPF and CAP_PERFMON \
         (missing: {missing}); run as root, or give CAP_BPF and CAP_PERFMON to a copy of perfkit that only \
         trusted users can run (mode 0750 with their group, never the binary everyone runs: see the README's \
         Privileges section)"
    )]
    PermissionDenied {
        /// What was being done, for example `loading BPF programs`.
        what: &'static str,
        /// The missing capabilities, as a list such as `CAP_BPF, CAP_PERFMON`.
        missing: String,
    },
    /// The kernel has no `bpf()` system call.
    #[error(
        "this kernel does not support BPF: bpf() returned ENOSYS (needs CONFIG_BPF_SYSCALL=y); \
         use a kernel built with BPF support"
    )]
    BpfUnsupported,
    /// The sampling frequency is above `kernel.perf_event_max_sample_rate`.
    #[error(
        "sampling frequency {hz} Hz is above kernel.perf_event_max_sample_rate ({max} Hz); \
         lower the frequency or raise it with `sysctl kernel.perf_event_max_sample_rate={hz}`"
    )]
    FrequencyTooHigh {
        /// Requested frequency.
        hz: u64,
        /// The kernel's limit.
        max: u64,
    },
    /// A configuration value is out of range.
    #[error("invalid probe configuration: {0}")]
    InvalidConfig(String),
    /// Loading the object, creating its maps or verifying a program failed.
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Attaching a program to an event failed.
    #[error("attaching {program} to CPU {cpu} failed")]
    Attach {
        /// Program name.
        program: &'static str,
        /// CPU the event was for.
        cpu: u32,
        /// The underlying error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Reading a map failed.
    #[error("reading BPF map {map} failed")]
    Map {
        /// Map name.
        map: &'static str,
        /// The underlying error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Attaching a program to a tracepoint failed.
    #[error("attaching {program} to the {tracepoint} tracepoint failed")]
    AttachTracepoint {
        /// Program name.
        program: &'static str,
        /// The tracepoint.
        tracepoint: &'static str,
        /// The underlying error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Attaching a kprobe to a kernel function failed.
    #[error("attaching {program} to a kprobe on the kernel function {function} failed")]
    AttachKprobe {
        /// Program name.
        program: &'static str,
        /// The kernel function.
        function: &'static str,
        /// The underlying error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// tracefs is not available, or a tracepoint's format is unusable.
    #[error("{0}")]
    Tracefs(String),
    /// The kernel has no such tracepoint.
    #[error("the kernel has no tracepoint {category}:{name} (see /sys/kernel/tracing/events/{category})")]
    MissingTracepoint {
        /// Its category (`block`).
        category: String,
        /// Its name (`block_rq_issue`).
        name: String,
    },
    /// The kernel lacks a feature a tool needs (kprobes...).
    #[error("{tool} needs {feature}, which this kernel does not have ({detail})")]
    MissingKernelFeature {
        /// The tool.
        tool: &'static str,
        /// The feature, as a kernel option (`kprobes (CONFIG_KPROBES)`).
        feature: &'static str,
        /// How it was found missing.
        detail: String,
    },
    /// The kernel's BTF is missing or lacks what the programs need.
    #[error("{0}; perfkit's eBPF programs need a kernel with BTF (CONFIG_DEBUG_INFO_BTF=y)")]
    Btf(String),
    /// Listing the online CPUs failed.
    #[error("reading the online CPU list from {path} failed")]
    OnlineCpus {
        /// The file that could not be read.
        path: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A thread could not be started (RLIMIT_NPROC, or out of memory).
    #[error("cannot start the {what} thread: {error}; raise the process limit (`ulimit -u`, RLIMIT_NPROC)")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The underlying error (in the message, so not a source).
        error: io::Error,
    },
    /// Attaching a uprobe (a user function or USDT probe) failed.
    #[error("attaching a uprobe to {probe} failed")]
    AttachUprobe {
        /// The file and the function or probe.
        probe: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The first `io::Error` in an error's source chain, if any.
pub(crate) fn io_errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(code) = io.raw_os_error()
        {
            return Some(code);
        }
        cur = e.source();
    }
    None
}

/// Turns a failure to load or attach into the error a user can act on:
/// EPERM/EACCES become [`ProbeError::PermissionDenied`], ENOSYS
/// [`ProbeError::BpfUnsupported`].
pub(crate) fn classify(what: &'static str, err: &(dyn std::error::Error + 'static)) -> Option<ProbeError> {
    match io_errno(err)? {
        // With every capability BPF needs, EACCES is the verifier refusing
        // a program (the error carries its log), not a permission problem.
        libc_errno::EPERM | libc_errno::EACCES => {
            crate::privileges::missing_for_bpf().map(|missing| ProbeError::PermissionDenied { what, missing })
        }
        libc_errno::ENOSYS => Some(ProbeError::BpfUnsupported),
        _ => None,
    }
}

/// The few errno values this crate tells apart (Linux, all architectures).
pub(crate) mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const EACCES: i32 = 13;
    pub const EINVAL: i32 = 22;
    pub const ENOSYS: i32 = 38;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn finds_errno_down_the_source_chain() {
        let err = Outer(io::Error::from_raw_os_error(38));
        assert_eq!(io_errno(&err), Some(38));
        assert!(matches!(classify("loading", &err), Some(ProbeError::BpfUnsupported)));
    }

    #[test]
    fn eperm_is_a_permission_error_only_when_a_capability_is_missing() {
        let err = Outer(io::Error::from_raw_os_error(1));
        match crate::privileges::missing_for_bpf() {
            Some(_) => {
                let msg = classify("loading BPF programs", &err).unwrap().to_string();
                assert!(msg.contains("CAP_BPF") && msg.contains("CAP_PERFMON") && msg.contains("root"), "{msg}");
            }
            None => assert!(classify("loading BPF programs", &err).is_none()),
        }
    }

    #[test]
    fn the_permission_error_never_advises_capabilities_on_the_binary_everyone_runs() {
        let msg = ProbeError::PermissionDenied { what: "loading BPF programs", missing: "CAP_BPF".into() }.to_string();
        assert!(!msg.contains("setcap") && !msg.contains("on the binary"), "{msg}");
        assert!(msg.contains("only trusted users can run") && msg.contains("Privileges"), "{msg}");
    }

    #[test]
    fn other_errors_are_left_alone() {
        let err = Outer(io::Error::from_raw_os_error(libc_errno::EINVAL));
        assert!(classify("loading", &err).is_none());
    }
}
