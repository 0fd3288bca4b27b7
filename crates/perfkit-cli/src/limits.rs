//! Resource limits perfkit cannot work under, said before any work
//! instead of a panic or a hang half-way.

use anyhow::{Result, bail};

/// The fewest file descriptors the commands that sample or trace run
/// with: an eBPF object holds about 50 (maps, programs, links), the perf
/// backend an event per CPU and thread, plus the standard streams, an
/// output's directory and temporary file and the `/proc` files read.
pub const MIN_NOFILE: u64 = 64;

/// The fewest for `sys`: the `/proc` files read at once, a recording's
/// directory and file, and the runtime's timer.
pub const MIN_NOFILE_SYS: u64 = 16;

/// The fewest for the commands that only read and write files (`flamegraph`,
/// `diff`, `convert`...): the standard streams, an input, an output's
/// directory and temporary file.
pub const MIN_NOFILE_RENDER: u64 = 8;

/// Fails when the descriptor limit (after `main` raised the soft limit to
/// the hard one) is below `min`.
pub fn check(min: u64) -> Result<()> {
    // None: unlimited.
    let Some(have) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else { return Ok(()) };
    if have < min {
        bail!(
            "too few file descriptors (RLIMIT_NOFILE {have}): perfkit needs at least {min}; raise it with `ulimit -n {min}` or more"
        );
    }
    Ok(())
}
