//! One entry point for profiling, for the `perfkit` command and for
//! in-house tools alike.
//!
//! [`Session::start`] takes a [`Target`] (processes and their children,
//! threads, a cgroup, the whole machine, or a command) and [`Options`], and
//! chooses a backend and a stack walker:
//!
//! - **eBPF** (`perfkit-probes`) where it loads: stacks are walked in the
//!   kernel with unwind tables compiled from each binary's DWARF CFI (frame
//!   pointers where a binary has none) and counted per unique stack there.
//! - **perf_event** (`perfkit-perf-event`) otherwise (no BPF, CAP_PERFMON without
//!   CAP_BPF, an unprivileged user, hardware events): frame pointers, or a
//!   copy of each sample's user stack unwound with DWARF in user space.
//!
//! The [`Session`] samples until [`Session::finish`], which symbolizes and
//! returns a [`Profile`] with [`Note`]s that
//! account for every loss (dropped samples, truncated stacks, what a backend
//! could not walk).
//!
//! ```no_run
//! use perfkit_profiler::{Options, Session, Target};
//! # fn main() -> Result<(), perfkit_profiler::ProfileError> {
//! let mut session = Session::start(Target::pids(&[1234])?, &Options::default())?;
//! // 5 s, or until the process exits (Session::wait_until also stops on a
//! // flag, such as one a signal handler sets).
//! session.wait(Some(std::time::Duration::from_secs(5)));
//! let finished = session.finish()?;
//! finished.profile.write_folded(std::io::stdout()).unwrap();
//! for note in &finished.notes {
//!     eprintln!("{note}");
//! }
//! # Ok(())
//! # }
//! ```

mod choose;
#[cfg(feature = "clap")]
pub mod flags;
mod ldpath;
pub mod notes;
mod runtimes;
mod session;
pub mod stack_tools;
mod summary;
mod target;
mod wait;

pub use notes::{Note, NoteLevel, Remedy};
/// The profile model, so that a tool built on this crate alone can read
/// what a session returns (and serialize it: the types derive serde's
/// traits).
pub use perfkit_model::{
    CountUnit, Frame, FrameKind, FunctionCount, Location, Origin, Profile, ProfileMeta, Stack, Truncation,
};
pub use perfkit_perf_event::SampleEvent;
pub use perfkit_probes::OffCpu;
/// The bcc-style tools (runqlat, execsnoop, ...), for tools built on this
/// crate alone.
pub use perfkit_probes::tools;
pub use perfkit_symbols::Grouping;
pub use session::{Backend, Choice, EndReason, Finished, Session, Walker};
pub use summary::EmptyProfile;
pub use target::{Target, TargetKind, ToolTarget};
pub use wait::wait_for;

use std::time::Duration;

/// Why profiling could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The target could not be found or started.
    #[error(transparent)]
    Target(#[from] perfkit_target::TargetError),
    /// The eBPF backend failed.
    #[error(transparent)]
    Probe(#[from] perfkit_probes::ProbeError),
    /// The perf_event backend failed.
    #[error(transparent)]
    Perf(#[from] perfkit_perf_event::PerfError),
    /// eBPF is unavailable and the perf_event fallback failed too.
    #[error("{ebpf}; the perf_event fallback failed too: {perf}")]
    NoBackend {
        /// Why eBPF could not be used.
        ebpf: Box<perfkit_probes::ProbeError>,
        /// Why perf_event could not be used.
        perf: Box<perfkit_perf_event::PerfError>,
    },
    /// The options ask for something no backend does.
    #[error("{0}")]
    Unsupported(String),
}

/// Which sampling backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendChoice {
    /// eBPF where it loads, else perf_event.
    #[default]
    Auto,
    /// eBPF only.
    Ebpf,
    /// perf_event only.
    Perf,
}

/// How user stacks are walked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnwindChoice {
    /// Complete stacks by the cheapest means: unwind tables in the kernel
    /// (eBPF); with perf_event, frame pointers when every module keeps
    /// them, else DWARF stack copies.
    #[default]
    Auto,
    /// Frame pointers only.
    FramePointers,
    /// DWARF CFI: unwind tables in the kernel (eBPF), stack copies
    /// (perf_event).
    Dwarf,
}

/// The largest stack copy the perf backend takes per sample, in bytes
/// (the kernel's limit, less one word).
pub const MAX_STACK_BYTES: u32 = 65528;

/// Why a `--call-graph` value (perf's spelling of an unwinder) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallGraphError {
    /// The stack size after `dwarf,` is not a number of bytes in range.
    #[error("stack size {0:?}: expected bytes from 8 to 65528")]
    StackSize(String),
    /// LBR: hardware branch records, which perfkit does not read.
    #[error("perfkit has no LBR call graphs (this needs hardware branch records): use fp or dwarf")]
    Lbr,
    /// Neither `fp` nor `dwarf[,SIZE]`.
    #[error("{0:?}: expected fp or dwarf[,SIZE], as perf takes them")]
    Unknown(String),
}

impl UnwindChoice {
    /// Reads perf's call-graph modes: `fp` and `dwarf[,SIZE]` (SIZE: the
    /// stack bytes copied per sample, 8 to [`MAX_STACK_BYTES`]); `lbr` is
    /// refused with what to use instead.
    ///
    /// ```
    /// use perfkit_profiler::UnwindChoice;
    /// assert_eq!(UnwindChoice::from_call_graph("dwarf,16384"), Ok((UnwindChoice::Dwarf, Some(16384))));
    /// assert_eq!(UnwindChoice::from_call_graph("fp"), Ok((UnwindChoice::FramePointers, None)));
    /// assert!(UnwindChoice::from_call_graph("lbr").is_err());
    /// ```
    pub fn from_call_graph(s: &str) -> Result<(UnwindChoice, Option<u32>), CallGraphError> {
        let (mode, size) = match s.split_once(',') {
            Some((m, size)) => (m, Some(size)),
            None => (s, None),
        };
        let size = size
            .map(|v| match v.parse::<u32>() {
                Ok(n) if (8..=MAX_STACK_BYTES).contains(&n) => Ok(n),
                _ => Err(CallGraphError::StackSize(v.to_owned())),
            })
            .transpose()?;
        match (mode, size) {
            ("fp", None) => Ok((UnwindChoice::FramePointers, None)),
            ("dwarf", size) => Ok((UnwindChoice::Dwarf, size)),
            ("lbr", _) => Err(CallGraphError::Lbr),
            _ => Err(CallGraphError::Unknown(s.to_owned())),
        }
    }
}

/// `bytes` as a stack copy size the perf backend takes: a whole number of
/// words, at most [`MAX_STACK_BYTES`].
pub fn stack_copy_bytes(bytes: u32) -> u32 {
    bytes.next_multiple_of(8).min(MAX_STACK_BYTES)
}

/// How to profile.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// On-CPU samples per second (per CPU); `None`: no on-CPU samples.
    pub frequency_hz: Option<u64>,
    /// Off-CPU time as well (eBPF only); on- and off-CPU time then share
    /// one unit, microseconds.
    pub off_cpu: Option<OffCpu>,
    /// The sampling backend.
    pub backend: BackendChoice,
    /// How user stacks are walked.
    pub unwind: UnwindChoice,
    /// The sampling event (perf_event backend for all but cpu-clock).
    pub event: SampleEvent,
    /// Bytes of user stack copied per sample (perf_event, DWARF).
    pub stack_bytes: u32,
    /// The root frame of each stack.
    pub grouping: Grouping,
    /// Distinct stacks kept at most (eBPF).
    pub stack_entries: u32,
    /// Distinct (task, names, stacks) counted at most (eBPF).
    pub counts_entries: u32,
    /// Unwind table rows held at most (eBPF; 8 bytes each); by default
    /// sized from the machine's memory ([`perfkit_probes::default_table_rows`]).
    pub table_rows: u32,
    /// Read separate debug files' DWARF (inlined frames and `file:line`
    /// of stripped distribution libraries) when naming frames
    /// ([`perfkit_symbols::SymbolizeOptions::separate_debug_info`]).
    pub separate_debug_info: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            frequency_hz: Some(99),
            off_cpu: None,
            backend: BackendChoice::Auto,
            unwind: UnwindChoice::Auto,
            event: SampleEvent::CpuClock,
            stack_bytes: perfkit_perf_event::DEFAULT_STACK_BYTES,
            grouping: Grouping::Process,
            stack_entries: perfkit_probes::DEFAULT_STACK_ENTRIES,
            counts_entries: perfkit_probes::DEFAULT_COUNTS_ENTRIES,
            table_rows: perfkit_probes::default_table_rows(),
            separate_debug_info: false,
        }
    }
}

/// Grace between SIGTERM and SIGKILL when ending a command.
pub const COMMAND_GRACE: Duration = Duration::from_secs(2);

/// The directories the dynamic loader searches for a library that a
/// program without `DT_RPATH`/`DT_RUNPATH` needs, in its order:
/// `LD_LIBRARY_PATH`, the directories of `/etc/ld.so.conf` and its
/// includes, then the built-in defaults. (What `lib:FUNC` probes are
/// resolved against when no process names its libraries.)
pub fn library_dirs() -> Vec<std::path::PathBuf> {
    let ld_library_path = std::env::var("LD_LIBRARY_PATH").ok();
    ldpath::search_dirs(
        std::path::Path::new("/"),
        None,
        None,
        ld_library_path.as_deref(),
        std::path::Path::new("/etc/ld.so.conf"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_graphs_as_perf_takes_them() {
        let cg = UnwindChoice::from_call_graph;
        assert_eq!(cg("dwarf"), Ok((UnwindChoice::Dwarf, None)));
        assert_eq!(cg("dwarf,8"), Ok((UnwindChoice::Dwarf, Some(8))));
        assert_eq!(cg("fp"), Ok((UnwindChoice::FramePointers, None)));
        assert_eq!(cg("dwarf,4").unwrap_err().to_string(), "stack size \"4\": expected bytes from 8 to 65528");
        assert_eq!(cg("dwarf,65536"), Err(CallGraphError::StackSize("65536".into())));
        assert_eq!(cg("lbr,64"), Err(CallGraphError::Lbr));
        assert!(cg("lbr").unwrap_err().to_string().ends_with("use fp or dwarf"));
        assert_eq!(cg("fp,64"), Err(CallGraphError::Unknown("fp,64".into())));
        assert_eq!(cg("").unwrap_err().to_string(), "\"\": expected fp or dwarf[,SIZE], as perf takes them");
        assert_eq!((stack_copy_bytes(8190), stack_copy_bytes(65535), stack_copy_bytes(0)), (8192, 65528, 0));
    }
}
