//! The one wait of a run: until every watched process (or thread) is gone,
//! a duration has passed, or a stop flag (set by a signal handler, or by
//! the caller's own thread) is raised.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use perfkit_target::ExitWatch;

use crate::EndReason;

/// How often the wait looks at its targets, the flag and the clock, and
/// calls its tick. The exit of a process with a pidfd ends the wait at
/// once (it sleeps in `poll` on the pidfds), and a signal interrupts that
/// sleep: the tick bounds only how late a flag set by another thread, or
/// the exit of a thread without a pidfd, is seen. Each tick wakes perfkit:
/// at 10 a second, a profile at 99 Hz spends little of its CPU waiting.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The exit watches of a list of processes or threads.
///
/// A pidfd per id where one can be had; a thread that is not its
/// process's main thread has none (before Linux 6.9's `PIDFD_THREAD`), and
/// past `RLIMIT_NOFILE` there is none: then `/proc/ID/stat`, where a
/// zombie counts as gone. Every id keeps its place, so that one without a
/// pidfd is still watched (an empty list of watches is never "all gone").
pub(crate) struct Watches {
    ids: Vec<(u32, Option<ExitWatch>)>,
}

impl Watches {
    pub(crate) fn new(ids: &[u32]) -> Self {
        Self { ids: ids.iter().map(|&id| (id, ExitWatch::new(id).ok())).collect() }
    }

    /// Sleeps for `step`, or until one of the processes with a pidfd that
    /// had not exited yet exits, or a signal arrives.
    pub(crate) fn sleep(&self, step: Duration) {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<libc::pollfd> = self
            .ids
            .iter()
            .filter_map(|(_, w)| w.as_ref())
            .filter(|w| !w.has_exited())
            .map(|w| libc::pollfd { fd: w.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        if fds.is_empty() {
            std::thread::sleep(step);
            return;
        }
        let ms = step.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds, whose
        // descriptors the watches keep open for the call. An error (EINTR)
        // ends the sleep early, which the caller's loop allows.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    }

    /// Whether every id is gone; `reaped` is one known to have exited
    /// (perfkit's own command, reaped by `waitpid`: no pidfd or `/proc`
    /// entry says so any more). False for an empty list.
    pub(crate) fn all_gone(&self, reaped: Option<u32>) -> bool {
        !self.ids.is_empty()
            && self.ids.iter().all(|(id, w)| {
                Some(*id) == reaped
                    || match w {
                        Some(w) => w.has_exited(),
                        None => perfkit_target::has_exited(*id),
                    }
            })
    }
}

/// Waits from `started` until `done` says the targets are gone, `duration`
/// has passed or `stop` is set, calling `done` every [`TICK`] and whenever
/// one of `watches` exits.
pub(crate) fn wait_loop(
    started: Instant,
    duration: Option<Duration>,
    stop: &AtomicBool,
    watches: &Watches,
    mut done: impl FnMut() -> bool,
) -> EndReason {
    let deadline = duration.map(|d| started + d);
    loop {
        if stop.load(Ordering::SeqCst) {
            return EndReason::Interrupted;
        }
        if done() {
            return EndReason::TargetExited;
        }
        let now = Instant::now();
        let step = match deadline {
            Some(d) if now >= d => return EndReason::Duration,
            Some(d) => (d - now).min(TICK),
            None => TICK,
        };
        watches.sleep(step);
    }
}

/// Waits until every process or thread of `ids` exited (a zombie counts),
/// `duration` passed, or `stop` was set: the wait of [`Session`](crate::Session)
/// for callers that count or trace without one (`perfkit stat`, tools).
/// An empty `ids` waits for the duration or the flag alone.
pub fn wait_for(ids: &[u32], duration: Option<Duration>, stop: &AtomicBool) -> EndReason {
    let watches = Watches::new(ids);
    wait_loop(Instant::now(), duration, stop, &watches, || watches.all_gone(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn an_empty_list_is_never_gone() {
        let never = AtomicBool::new(false);
        let started = Instant::now();
        assert_eq!(wait_for(&[], Some(Duration::from_millis(150)), &never), EndReason::Duration);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn a_zombie_is_gone_and_a_flag_stops() {
        let mut child = Command::new("true").spawn().unwrap();
        let never = AtomicBool::new(false);
        let started = Instant::now();
        // Not reaped: a zombie until the wait below.
        assert_eq!(wait_for(&[child.id()], Some(Duration::from_secs(10)), &never), EndReason::TargetExited);
        assert!(started.elapsed() < Duration::from_secs(5));
        child.wait().unwrap();

        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let stop = AtomicBool::new(true);
        assert_eq!(wait_for(&[child.id()], None, &stop), EndReason::Interrupted);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_thread_without_a_pidfd_is_watched() {
        // This test's own thread: alive, and not the main thread.
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            std::thread::sleep(Duration::from_millis(400));
        });
        let tid = rx.recv().unwrap();
        let never = AtomicBool::new(false);
        let started = Instant::now();
        let end = wait_for(&[tid], Some(Duration::from_secs(10)), &never);
        let waited = started.elapsed();
        worker.join().unwrap();
        assert_eq!(end, EndReason::TargetExited);
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5), "{waited:?}");
    }
}
