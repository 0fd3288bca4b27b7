//! `perfkit serve`: Prometheus metrics and Go's pprof profile endpoint,
//! over a small HTTP/1 server that slow or idle clients cannot starve.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use axum::{
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use perfkit_procstat::{CollectOptions, Collector, ProcessSelection};
use serde::Deserialize;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tower::ServiceExt;

const SERVE_EXAMPLES: &str = "\
Examples:
  perfkit serve                                  # 127.0.0.1:9464/metrics
  perfkit serve --listen 0.0.0.0:9464 --comm nginx --comm postgres
  perfkit serve -p 1234,5678 --cgroup-depth 2
  go tool pprof -top http://127.0.0.1:9464/debug/pprof/profile?seconds=10

Prometheus scrape config:
  scrape_configs:
    - job_name: perfkit
      static_configs: [{ targets: ['127.0.0.1:9464'] }]

Access control (--web-config web.yml, owned by root, mode 0600 or 0644):
  tls_server_config:
    cert_file: /etc/perfkit/server.crt
    key_file: /etc/perfkit/server.key
    # client_auth_type: RequireAndVerifyClientCert
    # client_ca_file: /etc/perfkit/clients-ca.crt
  basic_auth_users:
    prometheus: $2y$10$...        # htpasswd -nBC 10 prometheus
  perfkit serve --listen 0.0.0.0:9464 --web-config /etc/perfkit/web.yml
Without it, everyone who can reach the port can read every process's
metrics and profiles, with command lines: keep the default 127.0.0.1.

Continuous profiling (Parca, Grafana Alloy's pyroscope.scrape) pulls
/debug/pprof/profile?seconds=N, the endpoint of Go's net/http/pprof: a CPU
profile of the whole machine, or of pid=PID[,PID] or cgroup=PATH.";

/// Serve system and process metrics to Prometheus, and CPU profiles to
/// continuous profilers.
///
/// Each scrape of /metrics collects a fresh sample (shared with the
/// scrapes of the same second, --metrics-cache) and returns it in the
/// Prometheus text format: CPU, memory, vmstat, disks, interfaces, PSI,
/// cgroups, and the chosen processes (labelled by pid and comm).
/// /debug/pprof/profile?seconds=N samples for N seconds and returns a
/// gzipped pprof CPU profile, one at a time. Listens on loopback by
/// default: its answers are root's view of every process. --web-config
/// adds TLS and authentication on every endpoint.
#[derive(Debug, Args)]
#[command(after_help = SERVE_EXAMPLES)]
pub struct ServeArgs {
    /// Address to listen on. The default is loopback only; on any other
    /// address without --web-config authentication, perfkit warns.
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    listen: SocketAddr,

    /// Export these processes (repeat or separate with commas).
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pids: Vec<u32>,

    /// Export every process with this command name (repeatable).
    #[arg(long, value_name = "NAME")]
    comm: Vec<String>,

    /// cgroup v2 depth to export (0: none).
    #[arg(long, value_name = "N", default_value_t = 1)]
    cgroup_depth: usize,

    /// The longest profile /debug/pprof/profile takes, in seconds; longer
    /// requests get 400.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    max_profile_seconds: u64,

    /// eBPF probes to keep loaded and export, comma-separated: runqlat
    /// (run-queue latency histogram), biolatency (block I/O latency per
    /// disk), syscount (calls, errors and time per syscall), tcpretrans
    /// (retransmissions by TCP state).
    #[arg(long, value_name = "PROBE[,PROBE...]", value_delimiter = ',', value_enum)]
    probes: Vec<ProbeArg>,

    /// With --probes runqlat: one histogram per cgroup v2 group (bounded by
    /// the number of groups), instead of one for the machine.
    #[arg(long)]
    probe_per_cgroup: bool,

    /// Connections served at once. More wait for a slot in arrival order;
    /// while some wait, a served connection is closed after its current
    /// response.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_connections: u32,

    /// Connections that may wait for a slot (those that have not sent a
    /// byte included; the one idle the longest makes room). Past it, new
    /// connections wait in the kernel's accept backlog.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_queued: u32,

    /// Seconds a collection of /metrics is reused for other scrapes (0:
    /// only scrapes that arrive while it runs share it).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_cache_seconds)]
    metrics_cache: f64,

    /// Exporter-toolkit web configuration (as node_exporter's
    /// --web.config.file): TLS (tls_server_config) and basic authentication
    /// (basic_auth_users, bcrypt hashes). With users or required client
    /// certificates, every endpoint requires them. The file must not be
    /// writable by other users. See the example below.
    #[arg(long, value_name = "FILE")]
    web_config: Option<std::path::PathBuf>,
}

fn parse_cache_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=60.0).contains(&v) => Ok(v),
        _ => Err("a number of seconds from 0 to 60".to_owned()),
    }
}

/// `--probes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeArg {
    /// Run-queue latency.
    Runqlat,
    /// Block I/O latency per disk.
    Biolatency,
    /// Syscall counts, errors and time.
    Syscount,
    /// TCP retransmissions.
    Tcpretrans,
}

/// The eBPF probes `serve` keeps loaded.
#[derive(Default)]
struct Probes {
    runqlat: Option<std::sync::Mutex<perfkit_probes::tools::Runqlat>>,
    bio: Option<std::sync::Mutex<perfkit_probes::tools::BlockIo>>,
    syscount: Option<std::sync::Mutex<perfkit_probes::tools::Syscount>>,
    retrans: Option<std::sync::Mutex<perfkit_probes::tools::TcpRetrans>>,
    per_cgroup: bool,
}

impl Probes {
    fn any(&self) -> bool {
        self.runqlat.is_some() || self.bio.is_some() || self.syscount.is_some() || self.retrans.is_some()
    }

    fn start(args: &ServeArgs) -> Result<Self> {
        use perfkit_probes::tools::*;
        let mut p = Probes { per_cgroup: args.probe_per_cgroup, ..Probes::default() };
        for probe in &args.probes {
            match probe {
                ProbeArg::Runqlat => {
                    let per = if args.probe_per_cgroup { RunqlatPer::Cgroup } else { RunqlatPer::All };
                    p.runqlat = Some(Runqlat::start(None, per).context("loading the runqlat probe")?.into());
                }
                ProbeArg::Biolatency => {
                    let mut c = BlockIoConfig::default();
                    c.histograms = true;
                    c.per_disk = true;
                    p.bio = Some(BlockIo::start(c).context("loading the biolatency probe")?.into());
                }
                ProbeArg::Syscount => {
                    let mut c = SyscountConfig::default();
                    c.latency = true;
                    p.syscount = Some(Syscount::start(c).context("loading the syscount probe")?.into());
                }
                ProbeArg::Tcpretrans => {
                    p.retrans = Some(TcpRetrans::start().context("loading the tcpretrans probe")?.into());
                }
            }
        }
        Ok(p)
    }

    /// The probes' metrics in the text exposition format.
    fn render(&self, out: &mut String) -> Result<()> {
        use perfkit_probes::tools::exposition::{header, histogram, label_value};
        use std::fmt::Write as _;
        let mut lost: Vec<(&str, perfkit_probes::tools::ToolStats)> = Vec::new();
        if let Some(r) = &self.runqlat {
            let r = r.lock().expect("probe lock");
            header(
                out,
                "perfkit_runqueue_latency_seconds",
                "histogram",
                "Time runnable threads waited for a CPU (runqlat).",
            );
            for h in r.histograms()? {
                let labels = if self.per_cgroup { format!("cgroup_id=\"{}\"", h.id) } else { String::new() };
                histogram(out, "perfkit_runqueue_latency_seconds", &labels, &h);
            }
            lost.push(("runqlat", r.stats()?));
        }
        if let Some(b) = &self.bio {
            let b = b.lock().expect("probe lock");
            header(
                out,
                "perfkit_block_io_latency_seconds",
                "histogram",
                "Block I/O latency from issue to completion, per disk (biolatency).",
            );
            for h in b.histograms()? {
                let (major, minor) = perfkit_probes::tools::kernel_dev(h.id);
                let name = perfkit_probes::tools::disk_name(major, minor);
                histogram(out, "perfkit_block_io_latency_seconds", &format!("disk=\"{}\"", label_value(&name)), &h);
            }
            lost.push(("biolatency", b.stats()?));
        }
        if let Some(sc) = &self.syscount {
            let sc = sc.lock().expect("probe lock");
            let counts = sc.counts()?;
            header(out, "perfkit_syscalls_total", "counter", "System calls made, per syscall (syscount).");
            for c in &counts {
                let _ =
                    writeln!(out, "perfkit_syscalls_total{{syscall=\"{}\"}} {}", label_value(&sc.name(c.nr)), c.count);
            }
            header(out, "perfkit_syscall_errors_total", "counter", "System calls that failed, per syscall.");
            for c in &counts {
                let _ = writeln!(
                    out,
                    "perfkit_syscall_errors_total{{syscall=\"{}\"}} {}",
                    label_value(&sc.name(c.nr)),
                    c.errors
                );
            }
            header(out, "perfkit_syscall_seconds_total", "counter", "Time spent in system calls, per syscall.");
            for c in &counts {
                let _ = writeln!(
                    out,
                    "perfkit_syscall_seconds_total{{syscall=\"{}\"}} {}",
                    label_value(&sc.name(c.nr)),
                    c.total_ns as f64 / 1e9
                );
            }
            lost.push(("syscount", sc.stats()?));
        }
        if let Some(t) = &self.retrans {
            let t = t.lock().expect("probe lock");
            header(
                out,
                "perfkit_tcp_retransmits_total",
                "counter",
                "TCP segments retransmitted, by the socket's TCP state (tcpretrans).",
            );
            for (state, n) in t.counts()? {
                let _ = writeln!(out, "perfkit_tcp_retransmits_total{{state=\"{state}\"}} {n}");
            }
            lost.push(("tcpretrans", t.stats()?));
        }
        if !lost.is_empty() {
            header(out, "perfkit_probe_lost_total", "counter", "Events a probe could not record, by probe and reason.");
            for (probe, s) in lost {
                for (reason, n) in
                    [("ring_full", s.ring_full), ("starts_lost", s.starts_lost), ("updates_lost", s.updates_lost)]
                {
                    let _ = writeln!(out, "perfkit_probe_lost_total{{probe=\"{probe}\",reason=\"{reason}\"}} {n}");
                }
            }
        }
        Ok(())
    }
}

/// A client must send a request's headers (and, with TLS, finish its
/// handshake) within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no request in flight is closed after this long idle.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// While connections wait for a slot, a served one idle this long is closed.
const IDLE_WHILE_OTHERS_WAIT: Duration = Duration::from_millis(500);
/// A connection that waited this long for a slot is closed: its client has
/// given up (Prometheus's default scrape timeout is 10 s).
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests one connection may make before it is closed (the client
/// reconnects, behind those waiting).
const MAX_REQUESTS_PER_CONNECTION: u64 = 1000;
/// The kernel's queue of connections not yet accepted.
const ACCEPT_BACKLOG: u32 = 1024;
/// Descriptors kept free for everything else (probes, profiles, files).
const RESERVED_FDS: u64 = 64;

struct AppState {
    args: ServeArgs,
    /// eBPF probes loaded for the server's life.
    probes: Probes,
    /// One profile at a time.
    profiling: tokio::sync::Mutex<()>,
    /// The last rendered /metrics and when it was collected: concurrent
    /// scrapes wait for one collection and share it.
    metrics: tokio::sync::Mutex<Option<(Instant, axum::body::Bytes)>>,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let web = match &args.web_config {
        Some(path) => Some(crate::webconfig::WebConfig::load(path)?),
        None => None,
    };
    if !args.listen.ip().is_loopback() && !web.as_ref().is_some_and(|w| w.authenticates()) {
        eprintln!(
            "perfkit: warning: listening on {} without authentication: anyone who can reach this port can read \
             the metrics and take CPU profiles, with the command lines, of every process, root's included; \
             set basic_auth_users or client certificates with --web-config, or listen on 127.0.0.1",
            args.listen
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let socket = if args.listen.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .context("creating the listening socket")?;
        socket.set_reuseaddr(true)?;
        socket.bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
        let listener = socket.listen(ACCEPT_BACKLOG).with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        let scheme = if web.as_ref().is_some_and(|w| w.tls.is_some()) { "https" } else { "http" };
        eprintln!(
            "serving metrics at {scheme}://{local}/metrics and profiles at {scheme}://{local}/debug/pprof/profile (Ctrl-C stops)"
        );
        let limits = Limits::new(args.max_connections as usize, args.max_queued as usize);
        let probes = Probes::start(&args)?;
        let state = Arc::new(AppState {
            args,
            probes,
            profiling: tokio::sync::Mutex::new(()),
            metrics: tokio::sync::Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/debug/pprof/profile", axum::routing::get(profile))
            .route(
                "/",
                axum::routing::get(|| async {
                    axum::response::Html(
                        "<html><body><a href=\"/metrics\">/metrics</a><br>\
                         <a href=\"/debug/pprof/profile?seconds=10\">/debug/pprof/profile?seconds=10</a></body></html>",
                    )
                }),
            )
            .with_state(state);
        let access = Access {
            tls: web.as_ref().and_then(|w| w.tls.clone()).map(tokio_rustls::TlsAcceptor::from),
            basic_auth: web.as_ref().and_then(|w| w.basic_auth.clone()),
        };
        tokio::select! {
            r = accept_loop(listener, app, access, limits) => r,
            _ = crate::signals::interrupted() => Ok(()),
        }
    })
}

/// TLS and authentication, from `--web-config`.
#[derive(Clone)]
struct Access {
    tls: Option<tokio_rustls::TlsAcceptor>,
    basic_auth: Option<Arc<crate::webconfig::BasicAuth>>,
}

/// How many connections are served at once, and how many may be open.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Connections served at once (slots).
    active: usize,
    /// Connections open at once: served, waiting for a slot, or not yet
    /// sent a byte. Past it, accepting pauses and the kernel's backlog
    /// holds new connections.
    open: usize,
}

impl Limits {
    fn new(active: usize, queued: usize) -> Self {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit with a valid out pointer.
        let fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
        let by_fds = fds.saturating_sub(RESERVED_FDS).max(8) as usize;
        let open = (active + queued).min(by_fds).max(2);
        Self { active: active.min(open - 1).max(1), open }
    }
}

/// Where a connection is.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Accepted; its client has sent nothing yet.
    Pending = 0,
    /// Its request has arrived; waiting for a slot.
    Queued = 1,
    /// Holding a slot.
    Served = 2,
}

/// Activity on one connection.
struct Activity {
    /// Milliseconds since the server's epoch of the last read or write.
    last: AtomicU64,
    /// Requests in flight.
    busy: AtomicUsize,
    /// A `Phase`.
    phase: AtomicU8,
    /// Set when the connection ends or is told to close.
    closed: AtomicBool,
    /// Tells the connection to close (to make room).
    close: tokio::sync::Notify,
}

/// The server's connections and slots.
struct Connections {
    epoch: Instant,
    limits: Limits,
    /// Every open connection.
    live: std::sync::Mutex<Vec<Arc<Activity>>>,
    /// One permit per slot; waiters are served in arrival order.
    slots: Arc<tokio::sync::Semaphore>,
    /// Connections waiting for a slot.
    waiting: AtomicUsize,
}

impl Connections {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Makes room for one more connection: true when there is room (after
    /// closing the idle connection that waited the longest, if needed).
    fn make_room(&self) -> bool {
        let mut live = self.live.lock().expect("connection list");
        live.retain(|a| !a.closed.load(Ordering::Relaxed));
        if live.len() < self.limits.open {
            return true;
        }
        // Idle: not yet sent a byte, or served with no request in flight.
        let idle = live
            .iter()
            .filter(|a| match a.phase.load(Ordering::Relaxed) {
                p if p == Phase::Pending as u8 => true,
                p if p == Phase::Served as u8 => a.busy.load(Ordering::Relaxed) == 0,
                _ => false,
            })
            .min_by_key(|a| a.last.load(Ordering::Relaxed))
            .cloned();
        match idle {
            Some(oldest) => {
                tracing::debug!("connection limit: closing the longest idle connection");
                oldest.closed.store(true, Ordering::Relaxed);
                oldest.close.notify_one();
                live.retain(|a| !Arc::ptr_eq(a, &oldest));
                true
            }
            None => false,
        }
    }
}

/// Accepts connections and serves them fairly:
///
/// - A connection waits, holding no slot, until its client sends a byte
///   (at most the header timeout): idle connections cost a descriptor and
///   nothing else.
/// - Connections with a request then wait for one of the slots, in the
///   order they arrived.
/// - While any wait, each served connection is closed after its current
///   response (its client reconnects, behind them), and one idle for half a
///   second is closed: no client keeps a slot by looping on it.
/// - At most `limits.open` connections are open; past it the one idle the
///   longest is closed, and when none is idle, accepting pauses (the
///   kernel's backlog holds new connections) until one closes. Nothing is
///   dropped for being busy.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    access: Access,
    limits: Limits,
) -> Result<()> {
    let conns = Arc::new(Connections {
        epoch: Instant::now(),
        limits,
        live: Default::default(),
        slots: Arc::new(tokio::sync::Semaphore::new(limits.active)),
        waiting: AtomicUsize::new(0),
    });
    tracing::debug!(?limits, "serving");
    loop {
        while !conns.make_room() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            // Out of descriptors, or a connection reset before accept:
            // wait a little and go on.
            Err(e) => {
                tracing::debug!(%e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            last: AtomicU64::new(conns.now_ms()),
            busy: AtomicUsize::new(0),
            phase: AtomicU8::new(Phase::Pending as u8),
            closed: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        conns.live.lock().expect("connection list").push(activity.clone());
        let (app, access, conns) = (app.clone(), access.clone(), conns.clone());
        tokio::spawn(async move {
            connection(stream, app, access, activity.clone(), &conns).await;
            activity.closed.store(true, Ordering::Relaxed);
        });
    }
}

/// Counts a connection among those waiting for a slot while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    stream: TcpStream,
    app: axum::Router,
    access: Access,
    activity: Arc<Activity>,
    conns: &Arc<Connections>,
) {
    // Until the client sends something, it holds no slot.
    tokio::select! {
        r = stream.readable() => if r.is_err() { return },
        () = tokio::time::sleep(HEADER_TIMEOUT) => return,
        () = activity.close.notified() => return,
    }
    activity.phase.store(Phase::Queued as u8, Ordering::Relaxed);
    let permit = {
        let _waiting = Waiting::new(&conns.waiting);
        tokio::select! {
            p = conns.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            () = tokio::time::sleep(QUEUE_TIMEOUT) => return,
            () = activity.close.notified() => return,
        }
    };
    activity.last.store(conns.now_ms(), Ordering::Relaxed);
    activity.phase.store(Phase::Served as u8, Ordering::Relaxed);
    let tracked = Tracked { inner: stream, activity: activity.clone(), epoch: conns.epoch };
    match &access.tls {
        None => drive(tracked, app, access.basic_auth, activity, conns).await,
        Some(acceptor) => {
            let tls = tokio::select! {
                r = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tracked)) => r,
                () = activity.close.notified() => return,
            };
            match tls {
                Ok(Ok(tls)) => drive(tls, app, access.basic_auth, activity, conns).await,
                Ok(Err(e)) => tracing::debug!(%e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
    drop(permit);
}

/// Serves HTTP/1.1 on one connection while it holds a slot.
async fn drive<I>(
    io: I,
    app: axum::Router,
    basic_auth: Option<Arc<crate::webconfig::BasicAuth>>,
    activity: Arc<Activity>,
    conns: &Arc<Connections>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let in_flight = activity.clone();
    let requests = Arc::new(AtomicU64::new(0));
    let for_service = conns.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let guard = Busy::new(in_flight.clone());
        let auth = basic_auth.clone();
        let conns = for_service.clone();
        let n = requests.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            use crate::webconfig::Verdict;
            let verdict = match &auth {
                None => Verdict::Allowed,
                Some(auth) => auth.check(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes())).await,
            };
            let mut response = match verdict {
                Verdict::Allowed => app.oneshot(req.map(axum::body::Body::new)).await?,
                Verdict::Denied => (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"perfkit\"")],
                    "authentication required\n",
                )
                    .into_response(),
                Verdict::Busy => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    "too many new credentials to check at once; retry later\n",
                )
                    .into_response(),
            };
            // Others wait for a slot, or this connection has had its
            // share: this is its last response.
            if conns.waiting.load(Ordering::Relaxed) > 0 || n >= MAX_REQUESTS_PER_CONNECTION {
                response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            }
            drop(guard);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    let epoch = conns.epoch;
    let idle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let last = Duration::from_millis(activity.last.load(Ordering::Relaxed));
            let idle_for = epoch.elapsed().saturating_sub(last);
            let limit = if conns.waiting.load(Ordering::Relaxed) > 0 { IDLE_WHILE_OTHERS_WAIT } else { IDLE_TIMEOUT };
            if activity.busy.load(Ordering::Relaxed) == 0 && idle_for > limit {
                return;
            }
        }
    };
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(%e, "connection ended");
            }
        }
        () = idle => tracing::debug!("idle connection closed"),
        () = activity.close.notified() => tracing::debug!("connection closed to make room"),
    }
}

/// Marks a request in flight for its lifetime.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: Arc<Activity>) -> Self {
        a.busy.fetch_add(1, Ordering::Relaxed);
        Self(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that notes when it last read or wrote.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.activity.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// /metrics: a fresh collection, or the one just taken. A scrape that
/// arrives while a collection runs waits for it and shares it, and a
/// collection is reused for `--metrics-cache` seconds: so many concurrent
/// scrapes cost one collection.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let arrived = Instant::now();
    let max_age = Duration::from_secs_f64(state.args.metrics_cache);
    let mut cached = state.metrics.lock().await;
    if let Some((at, body)) = &*cached
        && (*at >= arrived || at.elapsed() <= max_age)
    {
        return ([(header::CONTENT_TYPE, perfkit_procstat::prometheus::CONTENT_TYPE)], body.clone()).into_response();
    }
    let started = Instant::now();
    let response = collect_metrics(state.clone()).await;
    if response.status() == StatusCode::OK {
        let (parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "collection failed\n").into_response();
        };
        *cached = Some((started, bytes.clone()));
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    response
}

async fn collect_metrics(state: Arc<AppState>) -> Response {
    let result = tokio::task::spawn_blocking(move || -> Result<String> {
        // As node_exporter: each collector's duration and success, so that a
        // failing part shows in the data rather than failing the scrape.
        let mut scrape = Vec::new();
        let started = Instant::now();
        let mut text = match collect(&state.args) {
            Ok(t) => {
                scrape.push(("procfs", started.elapsed(), true));
                t
            }
            Err(e) => {
                tracing::warn!(%e, "procfs collection failed");
                scrape.push(("procfs", started.elapsed(), false));
                String::new()
            }
        };
        if state.probes.any() {
            let started = Instant::now();
            let ok = match state.probes.render(&mut text) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(%e, "reading the probes failed");
                    false
                }
            };
            scrape.push(("probes", started.elapsed(), ok));
        }
        use std::fmt::Write as _;
        let _ = writeln!(text, "# HELP perfkit_build_info perfkit's version (always 1).");
        let _ = writeln!(text, "# TYPE perfkit_build_info gauge");
        let _ = writeln!(text, "perfkit_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(text, "# HELP perfkit_scrape_collector_duration_seconds How long each collector took.");
        let _ = writeln!(text, "# TYPE perfkit_scrape_collector_duration_seconds gauge");
        for (c, d, _) in &scrape {
            let _ =
                writeln!(text, "perfkit_scrape_collector_duration_seconds{{collector=\"{c}\"}} {}", d.as_secs_f64());
        }
        let _ = writeln!(text, "# HELP perfkit_scrape_collector_success Whether each collector succeeded.");
        let _ = writeln!(text, "# TYPE perfkit_scrape_collector_success gauge");
        for (c, _, ok) in &scrape {
            let _ = writeln!(text, "perfkit_scrape_collector_success{{collector=\"{c}\"}} {}", u8::from(*ok));
        }
        Ok(text)
    })
    .await;
    match result {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, perfkit_procstat::prometheus::CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("collection failed: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("collection failed: {e}\n")).into_response(),
    }
}

fn collect(args: &ServeArgs) -> Result<String> {
    let mut options = CollectOptions::default();
    options.cgroup_depth = args.cgroup_depth;
    options.processes = if !args.comm.is_empty() {
        ProcessSelection::All
    } else if !args.pids.is_empty() {
        ProcessSelection::Pids(args.pids.clone())
    } else {
        ProcessSelection::None
    };
    let mut sample = Collector::new().collect(&options)?;
    if !args.comm.is_empty() {
        sample.processes.retain(|p| args.pids.contains(&p.pid) || args.comm.contains(&p.comm));
    }
    Ok(perfkit_procstat::prometheus::render(&sample))
}

/// The query of /debug/pprof/profile, as Go's net/http/pprof takes it,
/// with perfkit's target parameters.
#[derive(Debug, Deserialize)]
struct ProfileQuery {
    seconds: Option<String>,
    pid: Option<String>,
    cgroup: Option<String>,
    hz: Option<String>,
}

fn bad_request(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, format!("{}\n", msg.into())).into_response()
}

async fn profile(State(state): State<Arc<AppState>>, Query(q): Query<ProfileQuery>) -> Response {
    let max = state.args.max_profile_seconds;
    let seconds = match q.seconds.as_deref().map(str::parse::<f64>) {
        None => 30.0,
        Some(Ok(s)) if s.is_finite() && s > 0.0 && s <= max as f64 => s,
        Some(_) => return bad_request(format!("seconds must be a number of seconds above 0 and at most {max}")),
    };
    let hz = match q.hz.as_deref().map(str::parse::<u64>) {
        None => 99,
        Some(Ok(h)) if (1..=10_000).contains(&h) => h,
        Some(_) => return bad_request("hz must be from 1 to 10000"),
    };
    let target = if let Some(pids) = &q.pid {
        match perfkit_target::parse_pid_list(pids)
            .map_err(anyhow::Error::from)
            .and_then(|p| Ok(perfkit_profiler::Target::pids(&p)?))
        {
            Ok(t) => t,
            Err(e) => return bad_request(format!("{e:#}")),
        }
    } else if let Some(cg) = &q.cgroup {
        match perfkit_profiler::Target::cgroup(std::path::Path::new(cg)) {
            Ok(t) => t,
            Err(e) => return bad_request(e.to_string()),
        }
    } else {
        perfkit_profiler::Target::all()
    };
    // One profile at a time: a second request gets 429.
    let Ok(_running) = state.profiling.try_lock() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.ceil().to_string())],
            "a profile is already being taken; retry later\n",
        )
            .into_response();
    };
    let mut options = perfkit_profiler::Options::default();
    options.frequency_hz = Some(hz);
    let session = match tokio::task::spawn_blocking(move || perfkit_profiler::Profiler::start(target, &options)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot profile: {e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot profile: {e}\n")).into_response(),
    };
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let result = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let finished = session.finish()?;
        let mut out = Vec::new();
        perfkit_formats::pprof::write(&finished.profile, &mut out)?;
        Ok(out)
    })
    .await;
    match result {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"profile\""),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("profiling failed: {e:#}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("profiling failed: {e}\n")).into_response(),
    }
}
