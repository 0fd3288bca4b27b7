//! The signals that end a run early: Ctrl-C (SIGINT), SIGTERM and SIGHUP.
//! Each command stops at any of them and still writes every output.

use std::sync::{Arc, OnceLock, atomic::AtomicBool};

use anyhow::{Context, Result};

/// Resolves when an interrupting signal arrives (for async waits). A
/// signal whose listener could not be set up keeps its default action.
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    async fn on(kind: SignalKind) {
        match signal(kind) {
            Ok(mut listener) => {
                listener.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = on(SignalKind::interrupt()) => {}
        _ = on(SignalKind::terminate()) => {}
        _ = on(SignalKind::hangup()) => {}
    }
}

/// A flag set by an interrupting signal (for synchronous loops), installed
/// once.
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, flag.clone()).context("listening for signals")?;
    }
    Ok(FLAG.get_or_init(|| flag).clone())
}
