//! The command-line flags of a perfkit exporter (`serve`), for programs
//! built with clap: listen address, web configuration, fairness limits,
//! the processes and eBPF probes exported, and the pprof endpoint's
//! longest profile. Enabled by the `clap` feature (which brings `pprof`,
//! perfkit-procstat's collector and perfkit-probes' metrics).
//!
//! ```
//! use clap::Parser;
//! use perfkit_exporter::flags::ServeArgs;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: ServeArgs,
//! }
//!
//! let cli = Cli::parse_from(["tool", "--listen", "127.0.0.1:9500", "--comm", "nginx"]);
//! assert_eq!(cli.serve.server_options().max_connections, 64);
//! assert!(cli.serve.probe_config().is_none());
//! ```

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use perfkit_probes::tools::metrics::{Probe, ProbeMetricsConfig};
use perfkit_procstat::{CollectOptions, ProcessSelection, prometheus::ProcfsCollector};

use crate::{ServerOptions, WebConfig, WebConfigError, pprof::PprofOptions};

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
#[non_exhaustive]
pub struct ServeArgs {
    /// Address to listen on. The default is loopback only; on any other
    /// address without --web-config authentication, perfkit warns.
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,

    /// Export these processes (repeat or separate with commas).
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,

    /// Export every process with this command name (repeatable).
    #[arg(long, value_name = "NAME")]
    pub comm: Vec<String>,

    /// cgroup v2 depth to export (0: none).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cgroup_depth: usize,

    /// The longest profile /debug/pprof/profile takes, in seconds; longer
    /// requests get 400 (a missing or bad `seconds` means 30, as in Go).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_profile_seconds: u64,

    /// eBPF probes to keep loaded and export, comma-separated: runqlat
    /// (run-queue latency histogram), biolatency (block I/O latency per
    /// disk), syscount (calls, errors and time per syscall), tcpretrans
    /// (retransmissions by TCP state), tcpconnect and tcpaccept (TCP
    /// connects by remote port, accepts by local port), oomkill (OOM kills),
    /// softirqs (time and runs per softirq vector), hardirqs (time and runs
    /// per hard IRQ handler name).
    #[arg(long, value_name = "PROBE[,PROBE...]", value_delimiter = ',', value_enum)]
    pub probes: Vec<ProbeArg>,

    /// With --probes runqlat: one histogram per cgroup v2 group (bounded by
    /// the number of groups), instead of one for the machine.
    #[arg(long)]
    pub probe_per_cgroup: bool,

    /// Connections served at once. More wait for a slot in arrival order;
    /// while some wait, a served connection is closed after its current
    /// response.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_connections: u32,

    /// Connections that may wait for a slot (those that have not sent a
    /// byte included; the one idle the longest makes room). Past it, new
    /// connections wait in the kernel's accept backlog.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_queued: u32,

    /// Seconds a collection of /metrics is reused for other scrapes (0:
    /// only scrapes that arrive while it runs share it).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_cache_seconds)]
    pub metrics_cache: f64,

    /// Exporter-toolkit web configuration (as node_exporter's
    /// --web.config.file): TLS (tls_server_config) and basic authentication
    /// (basic_auth_users, bcrypt hashes). With users or required client
    /// certificates, every endpoint requires them. The file must not be
    /// writable by other users. See the example below.
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
}

fn parse_cache_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=60.0).contains(&v) => Ok(v),
        _ => Err("a number of seconds from 0 to 60".to_owned()),
    }
}

impl ServeArgs {
    /// The web configuration of `--web-config`, loaded and checked
    /// ([`WebConfig::load`]); `None` without the flag.
    pub fn web_config(&self) -> Result<Option<WebConfig>, WebConfigError> {
        self.web_config.as_deref().map(WebConfig::load).transpose()
    }

    /// Whether anyone who can reach the listening address gets answers
    /// without authenticating: an address other than loopback, and `web`
    /// (from [`web_config`](Self::web_config)) does not authenticate.
    pub fn open_to_network(&self, web: Option<&WebConfig>) -> bool {
        !self.listen.ip().is_loopback() && !web.is_some_and(WebConfig::authenticates)
    }

    /// The server's fairness limits: `--max-connections`, `--max-queued`.
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            max_connections: self.max_connections as usize,
            max_queued: self.max_queued as usize,
            ..ServerOptions::default()
        }
    }

    /// How long a collection of /metrics is reused (`--metrics-cache`).
    pub fn metrics_cache(&self) -> Duration {
        Duration::from_secs_f64(self.metrics_cache)
    }

    /// The pprof endpoint's options (`--max-profile-seconds`).
    pub fn pprof_options(&self) -> PprofOptions {
        PprofOptions::new(self.max_profile_seconds)
    }

    /// The procfs collector of `--pid`, `--comm` and `--cgroup-depth`.
    pub fn procfs_collector(&self) -> ProcfsCollector {
        let mut options = CollectOptions::default();
        options.cgroup_depth = self.cgroup_depth;
        if !self.pids.is_empty() {
            options.processes = ProcessSelection::Pids(self.pids.clone());
        }
        ProcfsCollector::new(options).comms(self.comm.clone())
    }

    /// The eBPF probes of `--probes` and `--probe-per-cgroup`; `None`
    /// without probes.
    pub fn probe_config(&self) -> Option<ProbeMetricsConfig> {
        if self.probes.is_empty() {
            return None;
        }
        let mut config = ProbeMetricsConfig::new(self.probes.iter().map(|&p| Probe::from(p)));
        config.runqlat_per_cgroup = self.probe_per_cgroup;
        Some(config)
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.serve)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:9464".parse().unwrap());
        assert!(!a.open_to_network(None));
        assert_eq!(a.server_options().max_connections, 64);
        assert_eq!(a.server_options().max_queued, 1024);
        assert_eq!(a.metrics_cache(), Duration::from_secs(1));
        assert_eq!(a.pprof_options().max_seconds, 300);
        assert!(a.probe_config().is_none());
        assert!(a.web_config().unwrap().is_none());
    }

    #[test]
    fn flags() {
        let a = parse(&["-l", "0.0.0.0:1", "-p", "1,2", "--probes", "runqlat,oomkill", "--probe-per-cgroup"]).unwrap();
        assert!(a.open_to_network(None));
        assert_eq!(a.pids, [1, 2]);
        let c = a.probe_config().unwrap();
        assert_eq!(c.probes, [Probe::Runqlat, Probe::Oomkill]);
        assert!(c.runqlat_per_cgroup);
        let a = parse(&["--metrics-cache", "0", "--max-connections", "4096"]).unwrap();
        assert_eq!(a.metrics_cache(), Duration::ZERO);
        for bad in [
            &["--metrics-cache", "61"][..],
            &["--metrics-cache", "-1"],
            &["--max-connections", "0"],
            &["--max-queued", "65537"],
            &["--max-profile-seconds", "0"],
            &["--probes", "gpu"],
            &["-p", "abc"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
