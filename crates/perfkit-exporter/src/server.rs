//! Serving an axum `Router` over HTTP/1.1 (with TLS and authentication
//! from a [`WebConfig`]) so that slow, idle or looping clients cannot
//! starve a scraper.

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

use axum::{
    http::{StatusCode, header},
    response::IntoResponse,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tower::ServiceExt;

use crate::web_config::{BasicAuth, Verdict, WebConfig};

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

/// How a server treats its connections.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Connections served at once (slots). More wait for a slot in arrival
    /// order; while some wait, a served connection is closed after its
    /// current response.
    pub max_connections: usize,
    /// Connections that may wait for a slot, those that have not sent a
    /// byte included (the one idle the longest makes room). Past it, new
    /// connections wait in the kernel's accept backlog. Also bounded by
    /// the descriptor limit.
    pub max_queued: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { max_connections: 64, max_queued: 1024 }
    }
}

/// A listening socket on `addr` with a backlog of 1024 (and
/// `SO_REUSEADDR`). Call it within a tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Serves `app` on `listener` until the returned future is dropped: with
/// TLS and basic authentication (before any route: every path answers 401
/// without the right credentials) when `web` configures them, and the
/// fairness rules of [`crate`]'s documentation.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    web: Option<&WebConfig>,
    options: ServerOptions,
) -> std::io::Result<()> {
    let access = Access {
        tls: web.and_then(|w| w.tls.clone()).map(tokio_rustls::TlsAcceptor::from),
        basic_auth: web.and_then(|w| w.basic_auth.clone()),
    };
    let limits = Limits::new(options.max_connections.max(1), options.max_queued);
    accept_loop(listener, app, access, limits).await
}

/// TLS and authentication, from the web configuration.
#[derive(Clone)]
struct Access {
    tls: Option<tokio_rustls::TlsAcceptor>,
    basic_auth: Option<Arc<BasicAuth>>,
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
) -> std::io::Result<()> {
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
    basic_auth: Option<Arc<BasicAuth>>,
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
        // Sleeps until the connection could be idle too long, but at most
        // IDLE_WHILE_OTHERS_WAIT (the limit drops to it when others wait),
        // and at least 50 ms: a kept-alive scraper's connection wakes a
        // few times a second, not ten.
        let mut wait = Duration::from_millis(50);
        loop {
            tokio::time::sleep(wait).await;
            let last = Duration::from_millis(activity.last.load(Ordering::Relaxed));
            let idle_for = epoch.elapsed().saturating_sub(last);
            let limit = if conns.waiting.load(Ordering::Relaxed) > 0 { IDLE_WHILE_OTHERS_WAIT } else { IDLE_TIMEOUT };
            let busy = activity.busy.load(Ordering::Relaxed) != 0;
            if !busy && idle_for > limit {
                return;
            }
            let left = if busy { IDLE_WHILE_OTHERS_WAIT } else { limit.saturating_sub(idle_for) };
            wait = left.clamp(Duration::from_millis(50), IDLE_WHILE_OTHERS_WAIT);
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
