//! `perfkit serve`: Prometheus metrics and Go's pprof profile endpoint,
//! served by `perfkit-exporter` (access control, fairness).

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use clap::Args;
use perfkit_exporter::pprof::PprofOptions;
use perfkit_probes::tools::metrics::{Probe, ProbeMetrics, ProbeMetricsConfig};
use perfkit_procstat::{CollectOptions, ProcessSelection, prometheus::ProcfsCollector};

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

impl From<ProbeArg> for Probe {
    fn from(p: ProbeArg) -> Self {
        match p {
            ProbeArg::Runqlat => Probe::Runqlat,
            ProbeArg::Biolatency => Probe::Biolatency,
            ProbeArg::Syscount => Probe::Syscount,
            ProbeArg::Tcpretrans => Probe::Tcpretrans,
            ProbeArg::Tcpconnect => Probe::Tcpconnect,
            ProbeArg::Tcpaccept => Probe::Tcpaccept,
            ProbeArg::Oomkill => Probe::Oomkill,
            ProbeArg::Softirqs => Probe::Softirqs,
            ProbeArg::Hardirqs => Probe::Hardirqs,
        }
    }
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
        let mut exporter = perfkit_exporter::Exporter::new("perfkit")
            .collector(procfs_collector(&args))
            .build_info(env!("CARGO_PKG_VERSION"))
            .metrics_cache(Duration::from_secs_f64(args.metrics_cache))
            .web_config(web)
            .server_options(options);
        if !args.probes.is_empty() {
            let mut config = ProbeMetricsConfig::new(args.probes.iter().map(|&p| Probe::from(p)));
            config.runqlat_per_cgroup = args.probe_per_cgroup;
            exporter = exporter.collector(ProbeMetrics::start(&config)?);
        }
        let routes = perfkit_exporter::pprof::routes(PprofOptions::new(args.max_profile_seconds)).merge(
            perfkit_exporter::landing_page(&["/metrics", "/debug/pprof/", "/debug/pprof/profile?seconds=10"]),
        );
        tokio::select! {
            r = exporter.routes(routes).serve(listener) => r.context("serving"),
            _ = crate::signals::interrupted() => Ok(()),
        }
    })
}

/// The procfs collector of `--pid`, `--comm` and `--cgroup-depth`.
fn procfs_collector(args: &ServeArgs) -> ProcfsCollector {
    let mut options = CollectOptions::default();
    options.cgroup_depth = args.cgroup_depth;
    if !args.pids.is_empty() {
        options.processes = ProcessSelection::Pids(args.pids.clone());
    }
    ProcfsCollector::new(options).comms(args.comm.clone())
}
