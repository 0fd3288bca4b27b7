//! One way to consume every event tool: [`EventSource`] polls with a
//! timeout, [`Events`] is a blocking iterator over it, the source's file
//! descriptor ([`AsFd`]) says when events are ready (for `poll`, `epoll`
//! or any event loop), and with the `tokio` feature `EventStream` (in this
//! module) is a `futures_core::Stream` on tokio's reactor.
//!
//! ```no_run
//! use perfkit_probes::tools::{EventSource, ExecSnoop, ExecSnoopConfig};
//!
//! let mut snoop = ExecSnoop::start(ExecSnoopConfig::default())?;
//! for exec in snoop.iter().take(10) {
//!     println!("{} {:?}", exec.pid, exec.args);
//! }
//! # Ok::<(), perfkit_probes::ProbeError>(())
//! ```

use std::{collections::VecDeque, os::fd::AsFd, time::Duration};

/// A tool that reports events: execsnoop, opensnoop, biosnoop, tcplife,
/// tcpretrans... Its file descriptor (its ring buffer's) is readable when
/// the kernel side has written events; it stays the same, and open, for
/// the tool's life. Implemented by this crate's tools only (sealed), which
/// is what lets `EventStream` (with the `tokio` feature) hand the
/// descriptor to tokio.
pub trait EventSource: AsFd + sealed::Sealed {
    /// One event.
    type Event;

    /// Waits up to `timeout` (zero: not at all) for events and returns
    /// those that came, possibly none.
    fn poll_events(&mut self, timeout: Duration) -> Vec<Self::Event>;

    /// The events one by one, waiting for each: an iterator that ends
    /// only when the caller stops taking from it.
    fn iter(&mut self) -> Events<'_, Self>
    where
        Self: Sized,
    {
        Events { source: self, buffered: VecDeque::new() }
    }
}

pub(crate) mod sealed {
    /// Only this crate's tools are event sources.
    pub trait Sealed {}
}

/// A blocking iterator over an [`EventSource`]'s events.
#[derive(Debug)]
pub struct Events<'a, S: EventSource> {
    source: &'a mut S,
    buffered: VecDeque<S::Event>,
}

/// How long one wait inside [`Events::next`] lasts before it waits again.
const WAIT_STEP: Duration = Duration::from_millis(500);

impl<S: EventSource> Iterator for Events<'_, S> {
    type Item = S::Event;

    fn next(&mut self) -> Option<S::Event> {
        loop {
            if let Some(e) = self.buffered.pop_front() {
                return Some(e);
            }
            self.buffered.extend(self.source.poll_events(WAIT_STEP));
        }
    }
}

#[cfg(feature = "tokio")]
pub use stream::EventStream;

#[cfg(feature = "tokio")]
mod stream {
    use std::{
        collections::VecDeque,
        os::fd::{AsFd, AsRawFd, RawFd},
        pin::Pin,
        task::{Context, Poll},
        time::Duration,
    };

    use tokio::io::{Interest, unix::AsyncFd};

    use super::EventSource;

    /// Lends tokio the source's descriptor without giving it ownership.
    struct Fd<S>(S);

    impl<S: AsFd> AsRawFd for Fd<S> {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    /// An [`EventSource`] as a `futures_core::Stream` on tokio's reactor:
    /// it waits for the descriptor to be readable, never in a blocking
    /// call. Needs a tokio runtime with I/O enabled.
    pub struct EventStream<S: EventSource> {
        fd: AsyncFd<Fd<S>>,
        buffered: VecDeque<S::Event>,
    }

    impl<S: EventSource> std::fmt::Debug for EventStream<S> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("EventStream").field("buffered", &self.buffered.len()).finish()
        }
    }

    impl<S: EventSource> EventStream<S> {
        /// Registers the source with the current tokio runtime.
        pub fn new(source: S) -> std::io::Result<Self> {
            // SAFETY: the descriptor is the source's ring buffer, which the
            // source owns and keeps open, unchanged, until it is dropped;
            // the AsyncFd owns the source, so the descriptor outlives the
            // registration. EventSource is sealed: only this crate's tools,
            // which keep their ring for life, implement it.
            let fd = unsafe { AsyncFd::register_with_interest(Fd(source), Interest::READABLE) }?;
            Ok(Self { fd, buffered: VecDeque::new() })
        }

        /// The source, for its counters (`stats()`).
        pub fn get_ref(&self) -> &S {
            &self.fd.get_ref().0
        }

        /// Gives the source back.
        pub fn into_inner(self) -> S {
            self.fd.into_inner().0
        }
    }

    impl<S: EventSource + Unpin> futures_core::Stream for EventStream<S>
    where
        S::Event: Unpin,
    {
        type Item = S::Event;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Event>> {
            let this = self.get_mut();
            loop {
                if let Some(e) = this.buffered.pop_front() {
                    return Poll::Ready(Some(e));
                }
                let mut guard = match this.fd.poll_read_ready_mut(cx) {
                    Poll::Ready(Ok(g)) => g,
                    // The descriptor cannot be watched any more: the
                    // stream ends.
                    Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                };
                let events = guard.get_inner_mut().0.poll_events(Duration::ZERO);
                if events.is_empty() {
                    // Read out (or only half an event): wait for more.
                    guard.clear_ready();
                    continue;
                }
                this.buffered.extend(events);
            }
        }
    }
}
