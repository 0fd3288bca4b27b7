//! The signals that end a run early: Ctrl-C (SIGINT), SIGTERM and SIGHUP.
//!
//! [`install`] runs first in `main`, before anything is created. From then
//! on, a signal at any moment leaves no temporary file:
//!
//! - Commands that stop on a signal and still write their outputs
//!   (`profile`, the tools, `stat`, `sys`, `serve`) only note it: they see
//!   it at their next check ([`interrupted`], [`interrupt_flag`]), even if
//!   it came before they started listening. A second signal ends perfkit
//!   at once, as below (for a perfkit stuck writing into a stalled pipe).
//! - Other commands end as with the default action (killed by the signal),
//!   after the temporary files being written are removed.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::{Context, Result};

/// A signal arrived.
static STOP: AtomicBool = AtomicBool::new(false);
/// The first signal that arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The command stops on [`STOP`] by itself.
static HANDLED: AtomicBool = AtomicBool::new(false);

const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the handlers. `handled`: the command checks for signals and
/// ends by itself.
///
/// signal_hook's handler only notes the signal (on a self-pipe); a thread
/// of perfkit's reads it and acts: it marks the run stopped, or (for a
/// command that does not stop by itself, or at a second signal) removes
/// the temporary files being written and ends perfkit by the signal.
pub fn install(handled: bool) -> Result<()> {
    HANDLED.store(handled, Ordering::SeqCst);
    let mut signals = signal_hook::iterator::Signals::new(SIGNALS).context("listening for signals")?;
    std::thread::Builder::new()
        .name("perfkit-signals".to_owned())
        .spawn(move || {
            for sig in signals.forever() {
                let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                if HANDLED.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
                    continue;
                }
                perfkit_safeio::write::remove_temporaries();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
            }
        })
        .map_err(|e| {
            anyhow::anyhow!("cannot start the signal thread: {e}; raise the process limit (`ulimit -u`, RLIMIT_NPROC)")
        })?;
    Ok(())
}

/// After a command that stopped on a signal wrote its outputs: ends
/// perfkit by that signal, as perf does, so that the shell sees it
/// (Ctrl-C: exit status 130, and a script's loop stops). Returns when no
/// signal arrived.
pub fn reraise() {
    let sig = SIGNAL.load(Ordering::SeqCst);
    if sig != 0 {
        let _ = signal_hook::low_level::emulate_default_handler(sig);
    }
}

/// Whether an interrupting signal arrived.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Resolves when an interrupting signal has arrived (for async waits),
/// including one that came before the wait began. It looks at the flag
/// ten times a second: often enough for a prompt end, rarely enough that
/// a long-running `serve` adds nothing to the machine's run-queue
/// statistics it exports.
pub async fn interrupted() {
    while !stopped() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The flag an interrupting signal sets (for synchronous loops).
pub fn interrupt_flag() -> Result<&'static AtomicBool> {
    Ok(&STOP)
}
