//! Prometheus exporters, as `perfkit serve` is one, for in-house tools to
//! embed: give [`Exporter`] your [`Collector`]s (and perfkit's:
//! `perfkit_procstat::prometheus::ProcfsCollector`,
//! `perfkit_probes::tools::metrics::ProbeMetrics`) and a listener; or
//! give [`serve`] any axum `Router`.
//!
//! - [`Exporter`]: `/metrics` from collectors, asked at each scrape into
//!   one [`Writer`] (`perfkit-exposition`: the only writer of the text
//!   format), with each collector's duration and success; other routes
//!   beside it.
//! - [`WebConfig`]: the web configuration every Prometheus exporter reads
//!   (exporter-toolkit's format, node_exporter's `--web.config.file`): TLS,
//!   client certificates, and users with bcrypt hashes. Files other users
//!   could change are refused; unknown keys are errors.
//! - [`serve`]: HTTP/1.1 with TLS and authentication before any route, and
//!   fair under floods: a connection holds no slot until its client sends
//!   a byte; connections with a request wait for a slot in arrival order;
//!   while any wait, a served connection is closed after its current
//!   response and an idle one after half a second; at the open-connection
//!   limit the longest idle one is closed, otherwise accepting pauses and
//!   the kernel's backlog holds new connections: nothing is dropped for
//!   being busy. Headers must arrive within 5 s, idle connections close
//!   after 30 s, and a connection makes at most 1,000 requests.
//! - [`Shared`]: one collection shared by concurrent scrapes, and reused
//!   for a short time, so that many clients cost one collection.
//! - `pprof` (feature `pprof`): Go's `/debug/pprof/profile` CPU profile
//!   endpoint, with perfkit-profiler's profiles, for continuous profilers.
//! - `flags` (feature `clap`): `serve`'s command-line flags, with their
//!   help and validation, for clap programs.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Any router: no collectors, your own /metrics.
//! use perfkit_exporter::{ServerOptions, WebConfig};
//! let web = WebConfig::load(std::path::Path::new("/etc/mytool/web.yml"))?;
//! let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { "up 1\n" }));
//! let listener = perfkit_exporter::bind("127.0.0.1:9500".parse()?)?;
//! perfkit_exporter::serve(listener, app, Some(&web), ServerOptions::default()).await?;
//! # Ok(()) }
//! ```

mod exporter;
#[cfg(feature = "clap")]
pub mod flags;
#[cfg(feature = "pprof")]
pub mod pprof;
mod server;
pub mod web_config;

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

pub use axum::body::Bytes;
pub use exporter::{Exporter, landing_page};
pub use perfkit_exposition::{self as exposition, CONTENT_TYPE, Collector, Writer};
pub use server::{ServerOptions, bind, serve};
pub use web_config::{BasicAuth, Verdict, WebConfig, WebConfigError};

/// One result (a rendered exposition) shared by concurrent requests: a
/// request that arrives while a collection runs waits for it and gets its
/// result, and a result is reused for `max_age`. Failures are not kept.
pub struct Shared {
    max_age: Duration,
    /// The last result and when its collection started.
    last: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
    /// Collections finished so far.
    finished: AtomicU64,
}

impl Shared {
    /// Results reused for `max_age` (zero: only by requests that arrived
    /// while they were collected).
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, last: tokio::sync::Mutex::new(None), finished: AtomicU64::new(0) }
    }

    /// The last result if it is fresh enough, else the result of
    /// `collect`, run by one request at a time.
    pub async fn get<F, Fut, E>(&self, collect: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let seen = self.finished.load(Ordering::Acquire);
        let mut last = self.last.lock().await;
        // A collection finished while this request waited (it was running
        // when the request arrived), or a recent one.
        if let Some((at, body)) = &*last
            && (self.finished.load(Ordering::Acquire) != seen || at.elapsed() <= self.max_age)
        {
            return Ok(body.clone());
        }
        let started = Instant::now();
        let body = collect().await?;
        *last = Some((started, body.clone()));
        self.finished.fetch_add(1, Ordering::Release);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, atomic::AtomicUsize};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_collection() {
        let shared = Arc::new(Shared::new(Duration::ZERO));
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (shared, runs) = (shared.clone(), runs.clone());
                tokio::spawn(async move {
                    shared
                        .get(|| async {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Ok::<_, ()>(Bytes::from_static(b"x"))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "x");
        }
        // The first runs; those that arrived meanwhile share it (and at
        // most one more that arrived after it started).
        assert!(runs.load(Ordering::SeqCst) <= 2, "{} collections", runs.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_result_is_reused_for_max_age_and_failures_are_not() {
        let shared = Shared::new(Duration::from_secs(60));
        assert_eq!(shared.get(|| async { Err::<Bytes, _>("failed") }).await, Err("failed"));
        assert_eq!(shared.get(|| async { Ok::<_, ()>(Bytes::from_static(b"a")) }).await.unwrap(), "a");
        assert_eq!(shared.get(|| async { Ok::<_, ()>(Bytes::from_static(b"b")) }).await.unwrap(), "a");
    }
}
