use std::io;

/// Why sampling or counting could not start or continue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfError {
    /// The kernel refused to open the event.
    #[error(
        "permission denied opening perf events ({what}): run as root, or give CAP_PERFMON to a copy of \
         perfkit that only trusted users can run (README: Privileges), or lower kernel.perf_event_paranoid (now {paranoid}; \
         sysctl -w kernel.perf_event_paranoid=1 lets users profile their own processes with kernel stacks)"
    )]
    PermissionDenied {
        /// What was being opened.
        what: &'static str,
        /// The current `kernel.perf_event_paranoid`, or `unknown`.
        paranoid: String,
    },
    /// The process does not exist (or exited before it could be attached).
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    /// This kernel or machine does not support the event.
    #[error("{event} is not supported by this kernel or machine")]
    Unsupported {
        /// The event.
        event: String,
    },
    /// A bad configuration.
    #[error("{0}")]
    InvalidConfig(String),
    /// The sampling frequency is above `kernel.perf_event_max_sample_rate`.
    #[error(
        "sampling frequency {hz} Hz is above kernel.perf_event_max_sample_rate ({max} Hz); lower the frequency \
         or raise it with `sysctl kernel.perf_event_max_sample_rate={hz}`"
    )]
    FrequencyTooHigh {
        /// Asked for.
        hz: u64,
        /// The limit.
        max: u64,
    },
    /// Another failure of perf_event_open or of its ring buffer.
    #[error("{what} failed")]
    Io {
        /// What failed.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// `kernel.perf_event_paranoid`, for error messages.
pub fn paranoid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Maps an error of perf_event_open to the error a user can act on.
pub(crate) fn classify(what: &'static str, pid: Option<u32>, err: io::Error) -> PerfError {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => PerfError::PermissionDenied { what, paranoid: paranoid() },
        Some(libc::ESRCH) if pid.is_some() => PerfError::NoSuchProcess(pid.unwrap_or(0)),
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => {
            PerfError::Unsupported { event: what.to_owned() }
        }
        Some(libc::ENOSYS) => PerfError::Unsupported { event: "perf_event_open".to_owned() },
        _ => PerfError::Io { what, source: err },
    }
}
