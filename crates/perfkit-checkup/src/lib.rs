//! `perfkit checkup` as a library: the first minute of a bottleneck
//! analysis.
//!
//! 1. [`Observer`] takes snapshots of `/proc` and `/sys` (perfkit-procstat's
//!    collector, plus the TCP counters of `/proc/net/snmp` and
//!    `/proc/net/netstat`) for a window, into [`Observations`]: time
//!    series of CPU per mode and per CPU, run queue, PSI, memory, disks,
//!    interfaces and TCP, and each process's averages.
//! 2. [`analyze`] reads the observations by the USE method (utilization,
//!    saturation, errors per resource) against [`Thresholds`], into ranked
//!    [`Findings`]: each with its evidence and thresholds, its culprits
//!    (pid, comm, share) and the next command to run. It does no I/O, so a
//!    tool can feed observations of its own.
//! 3. [`CheckupDocument`] holds both (what `perfkit checkup --json`
//!    writes); [`report::render_html`] makes it one self-contained HTML
//!    page, [`text::summary`] the terminal summary, and [`compare`] tells
//!    what changed between two of them.
//!
//! The rules and the sources of their thresholds: docs/CHECKUP.md in the
//! repository.
//!
//! ```no_run
//! use std::{sync::atomic::AtomicBool, time::Duration};
//! use perfkit_checkup::{ObserveOptions, Observer, Thresholds, analyze};
//!
//! let mut options = ObserveOptions::default();
//! options.duration = Duration::from_secs(10);
//! let observations = Observer::new().observe(&options, &AtomicBool::new(false), |_| {})?;
//! let report = analyze(&observations, &Thresholds::default());
//! for f in &report.findings {
//!     println!("{} {} {}: {}", f.severity.name(), f.resource.name(), f.kind.name(), f.title);
//! }
//! # Ok::<(), perfkit_checkup::ObserveError>(())
//! ```

pub mod activity;
pub mod cgroup;
mod collect;
pub mod compare;
pub mod document;
#[cfg(feature = "clap")]
pub mod flags;
pub mod kmsg;
pub mod latency;
pub mod observe;
pub mod report;
mod rules;
pub mod stacks;
pub mod tcp;
pub mod text;

pub use collect::{ObserveError, ObserveOptions, Observer};
pub use document::{CheckupDocument, DocumentError, SCHEMA_VERSION};
pub use observe::{Observations, ObservationsBuilder, Snapshot};
pub use rules::{
    CgroupCulprit, Culprit, Evidence, Finding, Findings, Kind, Resource, ResourceLine, Severity, Thresholds, analyze,
};

#[cfg(test)]
mod tests;
