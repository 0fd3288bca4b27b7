//! System and process statistics from procfs, in the manner of the sysstat
//! tools (mpstat, pidstat, vmstat, iostat, sar -n DEV) and PSI.
//!
//! The pipeline has three stages, each usable on its own:
//!
//! 1. [`Collector`] reads `/proc` and `/sys` (or a captured copy under any
//!    root directory) into a raw [`Sample`]: counters as the kernel keeps
//!    them, parsed by the `procfs-core` crate.
//! 2. [`model`] turns two samples into rates and percentages, with
//!    sysstat's formulas. It does no I/O.
//! 3. Samples are recorded and replayed with [`record`], exported to
//!    Prometheus with [`prometheus`], and reported as sysstat's tables
//!    with [`text`] or as JSON lines with [`json`].
//!
//! ```no_run
//! use perfkit_procstat::{CollectOptions, Collector, ProcessSelection, model};
//! let collector = Collector::new();
//! let mut options = CollectOptions::default();
//! options.processes = ProcessSelection::All;
//! let before = collector.collect(&options)?;
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! let after = collector.collect(&options)?;
//! for row in model::processes(Some(&before), &after).iter().filter(|r| r.cpu_pct > 10.0) {
//!     println!("{} {} {:.1}%", row.pid, row.command, row.cpu_pct);
//! }
//! # Ok::<(), perfkit_procstat::CollectError>(())
//! ```

mod collect;
#[cfg(feature = "clap")]
pub mod flags;
pub mod json;
pub mod model;
pub mod prometheus;
pub mod record;
pub mod sample;
mod schedule;
pub mod text;

pub use collect::{CollectError, CollectOptions, Collector, ProcessSelection};
pub use sample::Sample;
pub use schedule::Schedule;
