//! Choosing and driving a sampling backend for `perfkit profile`: eBPF
//! (perfkit-probes) or perf_event (perfkit-perf).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::ValueEnum;
use perfkit_perf::{PerfConfig, PerfSampler, SampleEvent, Unwind};
use perfkit_probes::{OnCpuConfig, OnCpuSampler, ProbeError};
use perfkit_profile::raw::RawSample;
use perfkit_symbols::MapsTracker;

/// `--backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// eBPF where it loads, else perf_event.
    #[default]
    Auto,
    /// eBPF: stacks counted in the kernel.
    Ebpf,
    /// perf_event_open: samples read from ring buffers.
    Perf,
}

/// `--unwind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum UnwindArg {
    /// Frame pointers, or DWARF when the program was built without them.
    #[default]
    Auto,
    /// Frame pointers (cheapest; truncated stacks without them).
    Fp,
    /// DWARF CFI on a copy of the user stack (perf backend).
    Dwarf,
}

/// `--event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    /// The CPU clock (any machine).
    #[default]
    CpuClock,
    /// The task clock (perf backend).
    TaskClock,
    /// CPU cycles (hardware counters; perf backend).
    Cycles,
    /// Instructions retired (hardware counters; perf backend).
    Instructions,
}

/// What the user asked for, and about what.
pub struct Request {
    pub event: EventArg,
    pub backend: BackendArg,
    pub unwind: UnwindArg,
    pub pid: u32,
    /// The executable, to judge whether it keeps frame pointers.
    pub executable: Option<PathBuf>,
    pub frequency_hz: u64,
    pub stack_map_size: u32,
    pub counts_map_size: u32,
    pub stack_bytes: u32,
    /// The target is a command held before exec.
    pub held: bool,
}

/// A running backend.
pub enum Backend {
    Ebpf { sampler: Box<OnCpuSampler>, maps: MapsTracker },
    Perf(Box<PerfSampler>),
}

/// What a finished backend hands over.
pub struct Finished {
    pub samples: Vec<RawSample>,
    pub maps: MapsTracker,
    /// Samples whose stacks were lost.
    pub lost_stacks: u64,
    /// Samples dropped entirely.
    pub dropped: u64,
    /// Lines for the summary that explain losses.
    pub notes: Vec<String>,
    /// Bytes the kernel handed over.
    pub bytes: Option<u64>,
}

/// Decides the unwinder: `auto` looks at the executable's code.
fn choose_unwind(req: &Request) -> (Unwind, Option<String>) {
    match req.unwind {
        UnwindArg::Fp => (Unwind::FramePointer, None),
        UnwindArg::Dwarf => (Unwind::Dwarf, None),
        UnwindArg::Auto => {
            let Some(exe) = &req.executable else { return (Unwind::FramePointer, None) };
            match perfkit_perf::frame_pointers::inspect(exe) {
                Some(r) if !r.has_frame_pointers() => (
                    Unwind::Dwarf,
                    Some(format!(
                        "{} has no frame pointers ({} of {} functions set one up): DWARF unwinding",
                        exe.display(),
                        r.with_frame_pointer,
                        r.functions
                    )),
                ),
                _ => (Unwind::FramePointer, None),
            }
        }
    }
}

/// Whether an eBPF failure means "use another backend" rather than "stop".
fn ebpf_unavailable(e: &ProbeError) -> bool {
    matches!(e, ProbeError::PermissionDenied { .. } | ProbeError::BpfUnsupported | ProbeError::Load(_))
}

impl Backend {
    /// Starts the backend the request calls for, and says which and why
    /// on stderr.
    pub fn start(req: &Request) -> Result<Self> {
        let (unwind, why_unwind) = choose_unwind(req);
        if let Some(why) = &why_unwind {
            eprintln!("{why}");
        }
        let perf = |why: &str| -> Result<Self> {
            let mut config = PerfConfig::new(req.pid);
            config.event = match req.event {
                EventArg::CpuClock => SampleEvent::CpuClock,
                EventArg::TaskClock => SampleEvent::TaskClock,
                EventArg::Cycles => SampleEvent::Cycles,
                EventArg::Instructions => SampleEvent::Instructions,
            };
            config.frequency_hz = req.frequency_hz;
            config.unwind = unwind;
            config.stack_bytes = req.stack_bytes;
            config.enable_on_exec = req.held;
            let sampler = PerfSampler::start(&config)?;
            let mode = if unwind == Unwind::Dwarf { "DWARF unwinding" } else { "frame pointers" };
            eprintln!("backend: perf_event, {mode} ({why})");
            Ok(Backend::Perf(Box::new(sampler)))
        };
        let other_event = req.event != EventArg::CpuClock;
        match (req.backend, unwind) {
            (BackendArg::Ebpf, Unwind::Dwarf) => {
                bail!("--unwind dwarf needs the perf backend: use --backend perf (or auto)")
            }
            (BackendArg::Ebpf, _) if other_event => {
                bail!("the eBPF backend samples on cpu-clock; other events need --backend perf (or auto)")
            }
            (BackendArg::Auto, _) if other_event => perf("events other than cpu-clock are sampled with perf_event"),
            (BackendArg::Perf, _) => perf("--backend perf"),
            (BackendArg::Auto, Unwind::Dwarf) => perf("DWARF unwinding copies user stacks with perf_event"),
            (BackendArg::Ebpf, Unwind::FramePointer) => Self::ebpf(req),
            (BackendArg::Auto, Unwind::FramePointer) => match Self::ebpf(req) {
                Ok(b) => Ok(b),
                Err(e) => match e.downcast_ref::<ProbeError>() {
                    Some(pe) if ebpf_unavailable(pe) => perf(&format!("eBPF unavailable: {pe}"))
                        .map_err(|perf_err| anyhow::anyhow!("{pe}; the perf_event fallback failed too: {perf_err:#}")),
                    _ => Err(e),
                },
            },
        }
    }

    fn ebpf(req: &Request) -> Result<Self> {
        let mut config = OnCpuConfig::new(req.pid);
        config.frequency_hz = req.frequency_hz;
        config.stack_entries = req.stack_map_size;
        config.counts_entries = req.counts_map_size;
        let sampler = OnCpuSampler::start(&config)?;
        if req.backend == BackendArg::Ebpf {
            eprintln!("backend: eBPF, frame pointers (--backend ebpf)");
        } else {
            eprintln!("backend: eBPF, frame pointers");
        }
        Ok(Backend::Ebpf { sampler: Box::new(sampler), maps: MapsTracker::new(req.pid) })
    }

    /// Periodic work while sampling: mappings, and draining ring buffers.
    pub fn tick(&mut self) {
        match self {
            Backend::Ebpf { maps, .. } => {
                let _ = maps.refresh();
            }
            Backend::Perf(s) => {
                s.poll();
                s.refresh_maps();
            }
        }
    }

    /// Samples so far, for the progress line.
    pub fn samples(&self) -> Option<u64> {
        match self {
            Backend::Ebpf { sampler, .. } => sampler.stats().ok().map(|s| s.samples),
            Backend::Perf(s) => Some(s.stats().samples),
        }
    }

    /// Stops sampling and collects the unique stacks.
    pub fn finish(self) -> Result<Finished> {
        match self {
            Backend::Ebpf { sampler, mut maps } => {
                let raw = sampler.finish()?;
                let _ = maps.refresh();
                let s = &raw.stats;
                let mut notes = Vec::new();
                if s.lost_stacks() > 0 {
                    notes.push(format!(
                        "lost stacks: {} (collisions: {} user, {} kernel; stack map full: {}); raise --stack-map-size",
                        s.lost_stacks(),
                        s.user_stack_collisions,
                        s.kernel_stack_collisions,
                        s.stack_map_full
                    ));
                }
                if s.counts_map_full > 0 {
                    notes.push(format!(
                        "dropped samples: {} (counts map full); raise --counts-map-size",
                        s.counts_map_full
                    ));
                }
                if s.stack_errors > 0 {
                    notes.push(format!("stack read errors: {} (last errno {})", s.stack_errors, -s.last_stack_error));
                }
                Ok(Finished {
                    lost_stacks: s.lost_stacks(),
                    dropped: s.counts_map_full,
                    samples: raw.samples,
                    maps,
                    notes,
                    bytes: None,
                })
            }
            Backend::Perf(s) => {
                let p = s.finish();
                let st = p.stats;
                let mut notes = Vec::new();
                if st.lost > 0 {
                    notes.push(format!("dropped samples: {} (perf ring buffer full; lower -F)", st.lost));
                }
                if st.throttled > 0 {
                    notes.push(format!(
                        "throttled {} times by the kernel (kernel.perf_event_max_sample_rate); lower -F",
                        st.throttled
                    ));
                }
                if st.unwind_failed > 0 {
                    notes.push(format!("{} samples could not be unwound past their first frame", st.unwind_failed));
                }
                if st.other_processes > 0 {
                    notes.push(format!("{} samples of child processes were left out", st.other_processes));
                }
                Ok(Finished {
                    samples: p.samples,
                    maps: p.maps,
                    lost_stacks: 0,
                    dropped: st.lost,
                    notes,
                    bytes: Some(st.bytes),
                })
            }
        }
    }
}

/// The executable a command line will run: the path as given, or found on
/// `PATH`.
pub fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}
