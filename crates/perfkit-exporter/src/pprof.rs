//! Go's `net/http/pprof` CPU profile endpoint, for continuous profilers
//! (Parca, Grafana Alloy's `pyroscope.scrape`, `go tool pprof URL`) to
//! pull: [`routes`] gives `/debug/pprof/profile` and Go's index page, to
//! add beside `/metrics` with [`Exporter::routes`](crate::Exporter::routes).
//!
//! `GET /debug/pprof/profile?seconds=N` profiles the whole machine (or
//! `pid=PID[,PID]`, with `children=1` their descendants, or
//! `cgroup=PATH`) at `hz=N` (99) with `perfkit-profiler`, and answers the
//! gzipped pprof protobuf. As in Go, a `seconds` that is missing or not a
//! positive number means 30. One profile at a time: a request while one
//! runs gets 429 with `Retry-After` (when it ends). Behind the `pprof`
//! feature.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let exporter = perfkit_exporter::Exporter::new("mytool")
//!     .routes(perfkit_exporter::pprof::routes(perfkit_exporter::pprof::PprofOptions::default()));
//! exporter.serve(perfkit_exporter::bind("127.0.0.1:9500".parse()?)?).await?;
//! # Ok(()) }
//! ```

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Query, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use perfkit_profiler::{Options, Session, Target};
use serde::Deserialize;

/// The profile's length when `seconds` is missing or not a positive
/// number, as Go's.
pub const DEFAULT_PROFILE_SECONDS: f64 = 30.0;

/// The sampling rate when `hz` is not given.
pub const DEFAULT_PROFILE_HZ: u64 = 99;

/// What the profile endpoint allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PprofOptions {
    /// The longest profile a request may ask for, in seconds (longer ones
    /// get 400, naming this limit).
    pub max_seconds: u64,
}

impl Default for PprofOptions {
    fn default() -> Self {
        Self { max_seconds: 300 }
    }
}

impl PprofOptions {
    /// Profiles of at most `max_seconds`.
    pub fn new(max_seconds: u64) -> Self {
        Self { max_seconds }
    }
}

/// The routes: `/debug/pprof/profile`, the index at `/debug/pprof/`, and
/// `/debug/pprof` redirected to it.
pub fn routes(options: PprofOptions) -> axum::Router {
    let state =
        Arc::new(PprofState { options, running: Arc::new(tokio::sync::Mutex::new(())), ends: Mutex::new(None) });
    axum::Router::new()
        .route("/debug/pprof/profile", get(profile))
        .route("/debug/pprof/", get(|| async { Html(INDEX) }))
        .route("/debug/pprof", get(|| async { Redirect::permanent("/debug/pprof/") }))
        .with_state(state)
}

/// The longest profile any server takes, whatever its options say (a day).
pub const MAX_PROFILE_SECONDS: u64 = 86_400;

/// The length of a profile from its `seconds` parameter: Go's fallback to
/// 30 for a missing or bad one; an error (its text for a 400 answer) when
/// it exceeds `max` (or [`MAX_PROFILE_SECONDS`]).
pub fn profile_seconds(query: Option<&str>, max: u64) -> Result<f64, String> {
    let seconds = match query.map(|q| q.trim().parse::<f64>()) {
        Some(Ok(s)) if s.is_finite() && s > 0.0 => s,
        _ => DEFAULT_PROFILE_SECONDS,
    };
    // A day at most, whatever the caller set: durations stay far from
    // the clock's limits.
    let max = max.min(MAX_PROFILE_SECONDS);
    if seconds > max as f64 {
        return Err(format!("a profile of {seconds} s exceeds the server's maximum of {max} s; ask for at most {max}"));
    }
    Ok(seconds)
}

struct PprofState {
    options: PprofOptions,
    /// Held while a profile runs.
    running: Arc<tokio::sync::Mutex<()>>,
    /// When the running profile ends.
    ends: Mutex<Option<Instant>>,
}

/// The profile request's parameters, as text: each is checked, and a bad
/// one named in a 400 answer.
#[derive(Debug, Deserialize)]
struct ProfileQuery {
    seconds: Option<String>,
    pid: Option<String>,
    children: Option<String>,
    cgroup: Option<String>,
    hz: Option<String>,
}

/// Go's index page, listing the one profile served.
const INDEX: &str = "<html>
<head><title>/debug/pprof/</title></head>
<body>
/debug/pprof/<br>
<br>
Types of profiles available:
<table>
<thead><td>Count</td><td>Profile</td></thead>
<tr><td></td><td><a href='profile'>profile</a></td></tr>
</table>
<br>
<p>
Profile Descriptions:
<ul>
<li><div class=profile-name>profile: </div> CPU profile (perfkit: every process on the machine, sampled
with stacks by eBPF, or perf_event where eBPF is unavailable). You can specify the duration in the seconds
GET parameter (default 30); pid=PID[,PID] (with children=1 for their descendants) or cgroup=PATH narrows it,
and hz=N sets the sampling rate (default 99). After you get the profile file, use the go tool pprof command
to investigate the profile.</li>
</ul>
</p>
</body>
</html>
";

fn bad_request(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, format!("{}\n", msg.into())).into_response()
}

fn failed(what: &str, e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}\n")).into_response()
}

/// An error with its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The target and rate a request asks for, or why it is refused (the
/// text of a 400 answer).
fn request_target(q: &ProfileQuery) -> Result<(Target, u64), String> {
    let hz = match q.hz.as_deref().map(str::parse::<u64>) {
        None => DEFAULT_PROFILE_HZ,
        Some(Ok(h)) if (1..=10_000).contains(&h) => h,
        Some(_) => return Err("hz must be from 1 to 10000".to_owned()),
    };
    let children = match q.children.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err("children must be 1, true, 0 or false".to_owned()),
    };
    let target = if let Some(pids) = &q.pid {
        let pids = perfkit_target::parse_pid_list(pids).map_err(|e| chain(&e))?;
        let t = Target::pids(&pids).map_err(|e| chain(&e))?;
        if children { t.with_children() } else { t }
    } else if let Some(cg) = &q.cgroup {
        Target::cgroup(std::path::Path::new(cg)).map_err(|e| e.to_string())?
    } else {
        Target::all()
    };
    Ok((target, hz))
}

async fn profile(State(state): State<Arc<PprofState>>, Query(q): Query<ProfileQuery>) -> Response {
    let seconds = match profile_seconds(q.seconds.as_deref(), state.options.max_seconds) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    let (target, hz) = match request_target(&q) {
        Ok(t) => t,
        Err(e) => return bad_request(e),
    };
    // One profile at a time: a second request gets 429. The profile runs
    // in a task of its own that holds the guard until its session is
    // finished, so a client that goes away cannot free the place early.
    let Ok(running) = state.running.clone().try_lock_owned() else {
        let ends = *state.ends.lock().unwrap_or_else(|p| p.into_inner());
        let retry =
            ends.map(|e| e.saturating_duration_since(Instant::now()).as_secs_f64()).unwrap_or(seconds).ceil().max(1.0);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry.to_string())],
            "a profile is already being taken; retry later\n",
        )
            .into_response();
    };
    let duration = Duration::from_secs_f64(seconds);
    *state.ends.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now().checked_add(duration);
    let mut options = Options::default();
    options.frequency_hz = Some(hz);
    let task = tokio::spawn(async move {
        let _running = running;
        let session = match tokio::task::spawn_blocking(move || Session::start(target, &options)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(("cannot profile", format!("{e:#}"))),
            Err(e) => return Err(("cannot profile", e.to_string())),
        };
        tokio::time::sleep(duration).await;
        match tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let finished = session.finish().map_err(|e| format!("{e:#}"))?;
            let mut out = Vec::new();
            perfkit_formats::pprof::write(&finished.profile, &mut out).map_err(|e| format!("{e:#}"))?;
            Ok(out)
        })
        .await
        {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(("profiling failed", e)),
            Err(e) => Err(("profiling failed", e.to_string())),
        }
    });
    match task.await {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"profile\""),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err((what, e))) => failed(what, e),
        Err(e) => failed("profiling failed", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_seconds_fall_back_to_30_as_in_go() {
        for bad in [None, Some("abc"), Some("0"), Some("-5"), Some(""), Some("NaN"), Some("inf"), Some("-0.5")] {
            assert_eq!(profile_seconds(bad, 300), Ok(30.0), "{bad:?}");
        }
        assert_eq!(profile_seconds(Some("10"), 300), Ok(10.0));
        assert_eq!(profile_seconds(Some("0.5"), 300), Ok(0.5));
        let long = profile_seconds(Some("301"), 300).unwrap_err();
        assert!(long.contains("maximum of 300 s"), "{long}");
        // No limit a caller sets lets a duration reach the clock's limits.
        assert!(profile_seconds(Some("1e19"), u64::MAX).unwrap_err().contains("maximum of 86400 s"));
        // The fallback itself is bounded by the maximum.
        assert!(profile_seconds(Some("abc"), 10).unwrap_err().contains("30 s"));
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        let q = |hz: Option<&str>, children: Option<&str>, pid: Option<&str>| ProfileQuery {
            seconds: None,
            pid: pid.map(str::to_owned),
            children: children.map(str::to_owned),
            cgroup: None,
            hz: hz.map(str::to_owned),
        };
        let refused = |q: ProfileQuery| request_target(&q).err();
        assert_eq!(refused(q(Some("0"), None, None)).as_deref(), Some("hz must be from 1 to 10000"));
        assert_eq!(refused(q(Some("x"), None, None)).as_deref(), Some("hz must be from 1 to 10000"));
        assert_eq!(refused(q(None, Some("maybe"), None)).as_deref(), Some("children must be 1, true, 0 or false"));
        assert!(refused(q(None, None, Some("abc"))).is_some_and(|e| e.contains("abc")));
        assert!(refused(q(Some("99"), Some("1"), None)).is_none());
        assert_eq!(bad_request("no").status(), StatusCode::BAD_REQUEST);
    }
}
