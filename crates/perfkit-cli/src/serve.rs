//! `perfkit serve`: Prometheus metrics and Go's pprof profile endpoint,
//! served by `perfkit-exporter` (access control, fairness).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use axum::{
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use clap::Args;
use perfkit_procstat::{CollectOptions, Collector, ProcessSelection};
use serde::Deserialize;

const SERVE_EXAMPLES: &str = "\
Examples:
  perfkit serve                                  # 127.0.0.1:9464/metrics
  perfkit serve --listen 0.0.0.0:9464 --comm nginx --comm postgres
  perfkit serve -p 1234,5678 --cgroup-depth 2
  go tool pprof -top http://127.0.0.1:9464/debug/pprof/profile?seconds=10
  curl http://127.0.0.1:9464/debug/pprof/        # the index, as Go's

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
profile of the whole machine, or of pid=PID[,PID] or cgroup=PATH; as in Go,
a seconds that is missing or not a positive number means 30.";

/// Serve system and process metrics to Prometheus, and CPU profiles to
/// continuous profilers.
///
/// Each scrape of /metrics collects a fresh sample (shared with the
/// scrapes of the same second, --metrics-cache) and returns it in the
/// Prometheus text format: CPU, memory, vmstat, disks, interfaces, PSI,
/// cgroups, and the chosen processes (labelled by pid and comm).
/// /debug/pprof/profile?seconds=N samples for N seconds (30 when N is
/// missing, not a number, zero or negative, as Go's net/http/pprof) and
/// returns a gzipped pprof CPU profile, one at a time; /debug/pprof/ is
/// the index. Listens on loopback by
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
    /// requests get 400 (a missing or bad `seconds` means 30, as in Go).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    max_profile_seconds: u64,

    /// eBPF probes to keep loaded and export, comma-separated: runqlat
    /// (run-queue latency histogram), biolatency (block I/O latency per
    /// disk), syscount (calls, errors and time per syscall), tcpretrans
    /// (retransmissions by TCP state), tcpconnect and tcpaccept (TCP
    /// connects by remote port, accepts by local port), oomkill (OOM kills),
    /// softirqs (time and runs per softirq vector), hardirqs (time and runs
    /// per hard IRQ handler name).
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
    /// TCP connects by remote port.
    Tcpconnect,
    /// TCP accepts (completed passive opens) by local port.
    Tcpaccept,
    /// OOM kills.
    Oomkill,
    /// Time in softirq vectors.
    Softirqs,
    /// Time in hard IRQ handlers.
    Hardirqs,
}

/// The eBPF probes `serve` keeps loaded.
#[derive(Default)]
struct Probes {
    runqlat: Option<std::sync::Mutex<perfkit_probes::tools::Runqlat>>,
    bio: Option<std::sync::Mutex<perfkit_probes::tools::BlockIo>>,
    syscount: Option<std::sync::Mutex<perfkit_probes::tools::Syscount>>,
    retrans: Option<std::sync::Mutex<perfkit_probes::tools::TcpRetrans>>,
    /// Connects and accepts by port (one probe counts both kinds).
    opens: Option<perfkit_probes::tools::TcpOpens>,
    connects: bool,
    accepts: bool,
    oomkill: Option<std::sync::Mutex<perfkit_probes::tools::OomKiller>>,
    /// softirqs and hardirqs, one probe for both.
    irqs: Option<(std::sync::Mutex<perfkit_probes::tools::Irqs>, perfkit_probes::tools::IrqsConfig)>,
    per_cgroup: bool,
}

impl Probes {
    fn any(&self) -> bool {
        self.runqlat.is_some()
            || self.bio.is_some()
            || self.syscount.is_some()
            || self.retrans.is_some()
            || self.opens.is_some()
            || self.oomkill.is_some()
            || self.irqs.is_some()
    }

    fn start(args: &ServeArgs) -> Result<Self> {
        use perfkit_probes::tools::*;
        let mut p = Probes { per_cgroup: args.probe_per_cgroup, ..Probes::default() };
        for probe in &args.probes {
            match probe {
                ProbeArg::Runqlat => {
                    let per = if args.probe_per_cgroup { RunqlatPer::Cgroup } else { RunqlatPer::All };
                    let mut c = RunqlatConfig::default();
                    c.per = per;
                    p.runqlat = Some(Runqlat::start(c).context("loading the runqlat probe")?.into());
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
                    p.retrans = Some(
                        TcpRetrans::start(TcpRetransConfig::default()).context("loading the tcpretrans probe")?.into(),
                    );
                }
                ProbeArg::Tcpconnect => p.connects = true,
                ProbeArg::Tcpaccept => p.accepts = true,
                ProbeArg::Oomkill => {
                    p.oomkill =
                        Some(OomKiller::start(OomKillConfig::default()).context("loading the oomkill probe")?.into());
                }
                ProbeArg::Softirqs | ProbeArg::Hardirqs => {}
            }
        }
        if p.connects || p.accepts {
            // Counts only: nothing is streamed.
            let opens =
                TcpOpens::start(TcpOpensConfig::counts_only()).context("loading the tcpconnect/tcpaccept probe")?;
            p.opens = Some(opens);
        }
        let (soft, hard) = (args.probes.contains(&ProbeArg::Softirqs), args.probes.contains(&ProbeArg::Hardirqs));
        if soft || hard {
            let config = IrqsConfig::new(hard, soft);
            p.irqs = Some((Irqs::start(config).context("loading the softirqs/hardirqs probe")?.into(), config));
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
            let counts = t.counts()?;
            type Value = fn(&perfkit_probes::tools::RetransCount) -> u64;
            let metrics: [(&str, &str, Value); 3] = [
                (
                    "perfkit_tcp_retransmitted_segments_total",
                    "TCP segments retransmitted (tcp_skb_pcount of each skb sent again, as the kernel's RetransSegs \
                     counts them), by the socket's TCP state (tcpretrans).",
                    |c| c.segments,
                ),
                (
                    "perfkit_tcp_retransmissions_total",
                    "TCP retransmissions sent (skbs, each of one or more segments), by the socket's TCP state \
                     (tcpretrans).",
                    |c| c.retransmissions,
                ),
                (
                    "perfkit_tcp_retransmit_failures_total",
                    "TCP retransmission attempts that sent nothing (an error such as EBUSY or ENOMEM; traced by \
                     kernels whose tcp_retransmit_skb tracepoint has err), by the socket's TCP state (tcpretrans).",
                    |c| c.failed,
                ),
            ];
            for (name, help, value) in metrics {
                header(out, name, "counter", help);
                for c in &counts {
                    let _ = writeln!(out, "{name}{{state=\"{}\"}} {}", c.state, value(c));
                }
            }
            lost.push(("tcpretrans", t.stats()?));
        }
        if let Some(o) = &self.opens {
            let counts = o.counts()?;
            for (wanted, kind, name, help) in [
                (
                    self.connects,
                    perfkit_probes::tools::TcpOpenKind::Connect,
                    "perfkit_tcp_connects_total",
                    "TCP connects (active opens: SYN sent), by remote port (tcpconnect).",
                ),
                (
                    self.accepts,
                    perfkit_probes::tools::TcpOpenKind::Accept,
                    "perfkit_tcp_accepts_total",
                    "TCP connections accepted (passive opens: handshakes completed on a listening socket), by local \
                     port (tcpaccept).",
                ),
            ] {
                if !wanted {
                    continue;
                }
                header(out, name, "counter", help);
                for c in counts.iter().filter(|c| c.kind == kind) {
                    let _ = writeln!(out, "{name}{{port=\"{}\"}} {}", c.port, c.count);
                }
            }
            lost.push(("tcpconnect", o.stats()?));
        }
        if let Some(k) = &self.oomkill {
            let mut k = k.lock().expect("probe lock");
            // Counted in the kernel; the events themselves are not kept.
            let _ = k.events(std::time::Duration::ZERO);
            header(out, "perfkit_oom_kills_total", "counter", "Processes killed by the OOM killer (oomkill).");
            let _ = writeln!(out, "perfkit_oom_kills_total {}", k.stats()?.events);
            lost.push(("oomkill", k.stats()?));
        }
        if let Some((irqs, config)) = &self.irqs {
            let irqs = irqs.lock().expect("probe lock");
            render_irqs(out, &irqs.times()?, config.soft, config.hard);
            if config.hard {
                lost.push(("hardirqs", irqs.stats(perfkit_probes::tools::IrqKind::Hard)?));
            }
            if config.soft {
                lost.push(("softirqs", irqs.stats(perfkit_probes::tools::IrqKind::Soft)?));
            }
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

/// softirq and hardirq time and runs as counters: every softirq vector
/// from the first scrape; hard IRQ handlers by name (IRQs of one name
/// summed) as they first run.
fn render_irqs(out: &mut String, times: &[perfkit_probes::tools::IrqTime], soft: bool, hard: bool) {
    use perfkit_probes::tools::{
        IrqKind,
        exposition::{header, label_value},
        softirq_name,
    };
    use std::{collections::BTreeMap, fmt::Write as _};
    if soft {
        // The kernel's ten vectors (NR_SOFTIRQS), present or not.
        let mut by_vector: BTreeMap<u32, (u64, u64)> = (0..10).map(|v| (v, (0, 0))).collect();
        for t in times.iter().filter(|t| t.kind == IrqKind::Soft) {
            let e = by_vector.entry(t.number).or_default();
            e.0 = e.0.saturating_add(t.hist.sum_ns);
            e.1 = e.1.saturating_add(t.hist.count());
        }
        header(
            out,
            "perfkit_softirq_seconds_total",
            "counter",
            "Time spent in softirq handlers, per vector (softirqs).",
        );
        for (v, (ns, _)) in &by_vector {
            let _ =
                writeln!(out, "perfkit_softirq_seconds_total{{vector=\"{}\"}} {}", softirq_name(*v), *ns as f64 / 1e9);
        }
        header(
            out,
            "perfkit_softirqs_total",
            "counter",
            "Softirq handler runs, per vector (as /proc/softirqs counts them).",
        );
        for (v, (_, n)) in &by_vector {
            let _ = writeln!(out, "perfkit_softirqs_total{{vector=\"{}\"}} {n}", softirq_name(*v));
        }
    }
    if hard {
        let mut by_name: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for t in times.iter().filter(|t| t.kind == IrqKind::Hard) {
            let e = by_name.entry(t.name.as_str()).or_default();
            e.0 = e.0.saturating_add(t.hist.sum_ns);
            e.1 = e.1.saturating_add(t.hist.count());
        }
        header(
            out,
            "perfkit_hardirq_seconds_total",
            "counter",
            "Time spent in hard IRQ handlers, per handler name as in /proc/interrupts (hardirqs).",
        );
        for (name, (ns, _)) in &by_name {
            let _ =
                writeln!(out, "perfkit_hardirq_seconds_total{{name=\"{}\"}} {}", label_value(name), *ns as f64 / 1e9);
        }
        header(out, "perfkit_hardirqs_total", "counter", "Hard IRQ handler runs, per handler name.");
        for (name, (_, n)) in &by_name {
            let _ = writeln!(out, "perfkit_hardirqs_total{{name=\"{}\"}} {n}", label_value(name));
        }
    }
}

struct AppState {
    args: ServeArgs,
    /// eBPF probes loaded for the server's life.
    probes: Probes,
    /// One profile at a time; the lock holds when it ends (for the
    /// Retry-After of a request that comes meanwhile).
    profiling: tokio::sync::Mutex<()>,
    profile_ends: std::sync::Mutex<Option<std::time::Instant>>,
    /// The last rendered /metrics: concurrent scrapes wait for one
    /// collection and share it.
    metrics: perfkit_exporter::Shared,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let web = match &args.web_config {
        Some(path) => Some(perfkit_exporter::WebConfig::load(path)?),
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
        let listener =
            perfkit_exporter::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        let scheme = if web.as_ref().is_some_and(|w| w.tls.is_some()) { "https" } else { "http" };
        eprintln!(
            "serving metrics at {scheme}://{local}/metrics and profiles at {scheme}://{local}/debug/pprof/profile (Ctrl-C stops)"
        );
        let mut options = perfkit_exporter::ServerOptions::default();
        options.max_connections = args.max_connections as usize;
        options.max_queued = args.max_queued as usize;
        let probes = Probes::start(&args)?;
        let shared = perfkit_exporter::Shared::new(Duration::from_secs_f64(args.metrics_cache));
        let state = Arc::new(AppState { args, probes, profiling: tokio::sync::Mutex::new(()),
            profile_ends: std::sync::Mutex::new(None),
            metrics: shared,
        });
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/debug/pprof/profile", axum::routing::get(profile))
            .route("/debug/pprof/", axum::routing::get(|| async { axum::response::Html(PPROF_INDEX) }))
            .route(
                "/debug/pprof",
                axum::routing::get(|| async { axum::response::Redirect::permanent("/debug/pprof/") }),
            )
            .route(
                "/",
                axum::routing::get(|| async {
                    axum::response::Html(
                        "<html><body><a href=\"/metrics\">/metrics</a><br>\
                         <a href=\"/debug/pprof/\">/debug/pprof/</a><br>\
                         <a href=\"/debug/pprof/profile?seconds=10\">/debug/pprof/profile?seconds=10</a></body></html>",
                    )
                }),
            )
            .with_state(state);
        tokio::select! {
            r = perfkit_exporter::serve(listener, app, web.as_ref(), options) => r.context("serving"),
            _ = crate::signals::interrupted() => Ok(()),
        }
    })
}

/// /metrics: a fresh collection, or the one just taken. A scrape that
/// arrives while a collection runs waits for it and shares it, and a
/// collection is reused for `--metrics-cache` seconds: so many concurrent
/// scrapes cost one collection.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let collected = state.metrics.get(|| collect_metrics(state.clone())).await;
    match collected {
        Ok(body) => ([(header::CONTENT_TYPE, perfkit_procstat::prometheus::CONTENT_TYPE)], body).into_response(),
        Err(response) => response,
    }
}

async fn collect_metrics(state: Arc<AppState>) -> Result<perfkit_exporter::Bytes, Response> {
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
        Ok(Ok(text)) => Ok(text.into()),
        Ok(Err(e)) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("collection failed: {e:#}\n")).into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("collection failed: {e}\n")).into_response()),
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
    /// With `pid`: `1` or `true` adds each process's existing descendants.
    children: Option<String>,
    cgroup: Option<String>,
    hz: Option<String>,
}

/// How long Go waits when `seconds` is missing or not a positive number.
const DEFAULT_PROFILE_SECONDS: f64 = 30.0;

/// The length of a profile, as Go's net/http/pprof reads `seconds`: a
/// missing, unparsable, zero or negative value means 30 s; perfkit also
/// takes fractions (`0.5`). Longer than `max` is refused (Go refuses what
/// exceeds its server's WriteTimeout).
fn profile_seconds(query: Option<&str>, max: u64) -> Result<f64, String> {
    let seconds = match query.map(|q| q.trim().parse::<f64>()) {
        Some(Ok(s)) if s.is_finite() && s > 0.0 => s,
        _ => DEFAULT_PROFILE_SECONDS,
    };
    if seconds > max as f64 {
        return Err(format!(
            "a profile of {seconds} s exceeds the server's --max-profile-seconds ({max}); ask for at most {max}"
        ));
    }
    Ok(seconds)
}

/// `/debug/pprof/`: the index of the profiles served, as Go's
/// net/http/pprof gives one.
const PPROF_INDEX: &str = "<html>
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

async fn profile(State(state): State<Arc<AppState>>, Query(q): Query<ProfileQuery>) -> Response {
    let max = state.args.max_profile_seconds;
    let seconds = match profile_seconds(q.seconds.as_deref(), max) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    let hz = match q.hz.as_deref().map(str::parse::<u64>) {
        None => 99,
        Some(Ok(h)) if (1..=10_000).contains(&h) => h,
        Some(_) => return bad_request("hz must be from 1 to 10000"),
    };
    let children = match q.children.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return bad_request("children must be 1, true, 0 or false"),
    };
    let target = if let Some(pids) = &q.pid {
        match perfkit_target::parse_pid_list(pids)
            .map_err(anyhow::Error::from)
            .and_then(|p| Ok(perfkit_profiler::Target::pids(&p)?))
        {
            Ok(t) if children => t.with_children(),
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
        // When the running profile ends.
        let ends = *state.profile_ends.lock().unwrap_or_else(|p| p.into_inner());
        let retry = ends
            .map(|e| e.saturating_duration_since(std::time::Instant::now()).as_secs_f64())
            .unwrap_or(seconds)
            .ceil()
            .max(1.0);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry.to_string())],
            "a profile is already being taken; retry later\n",
        )
            .into_response();
    };
    *state.profile_ends.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(std::time::Instant::now() + Duration::from_secs_f64(seconds));
    let mut options = perfkit_profiler::Options::default();
    options.frequency_hz = Some(hz);
    let session = match tokio::task::spawn_blocking(move || perfkit_profiler::Session::start(target, &options)).await {
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
        assert!(long.contains("--max-profile-seconds (300)"), "{long}");
        // The fallback itself is bounded by the maximum.
        assert!(profile_seconds(Some("abc"), 10).unwrap_err().contains("30 s"));
    }
}
