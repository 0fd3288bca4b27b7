//! `perfkit serve`: Prometheus metrics and Go's pprof profile endpoint,
//! served by `perfkit-exporter` (access control, fairness); the flags are
//! `perfkit_exporter::flags`.

use anyhow::{Context, Result};
use perfkit_exporter::flags::ServeArgs;
use perfkit_probes::tools::metrics::ProbeMetrics;

pub(crate) const SERVE_EXAMPLES: &str = "\
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

pub fn serve(args: ServeArgs) -> Result<()> {
    let web = args.web_config()?;
    if args.open_to_network(web.as_ref()) {
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
        let mut exporter = perfkit_exporter::Exporter::new("perfkit")
            .collector(args.procfs_collector())
            .build_info(env!("CARGO_PKG_VERSION"))
            .metrics_cache(args.metrics_cache())
            .web_config(web)
            .server_options(args.server_options());
        if let Some(config) = args.probe_config() {
            exporter = exporter.collector(ProbeMetrics::start(&config)?);
        }
        let routes = perfkit_exporter::pprof::routes(args.pprof_options()).merge(
            perfkit_exporter::landing_page(&["/metrics", "/debug/pprof/", "/debug/pprof/profile?seconds=10"]),
        );
        tokio::select! {
            r = exporter.routes(routes).serve(listener) => r.context("serving"),
            _ = crate::signals::interrupted() => Ok(()),
        }
    })
}
