//! A Prometheus exporter embedding perfkit-exporter: perfkit-procstat's
//! system metrics plus one custom collector, `team_processes_in_state{state}`
//! (processes by scheduler state), served on 127.0.0.1:9465 with the
//! exporter's web configuration, fairness and scrape sharing.
//!
//! ```sh
//! cargo run -p perfkit-examples --bin exporter &
//! curl -s 127.0.0.1:9465/metrics | grep team_
//! ```

use std::collections::BTreeMap;

use perfkit_exporter::{Collector, Exporter, Writer, exposition};
use perfkit_procstat::{CollectOptions, ProcessSelection, prometheus::ProcfsCollector};

/// The custom metric: processes by scheduler state (R, S, D, Z...).
struct ProcessStates(perfkit_procstat::Collector);

impl Collector for ProcessStates {
    fn name(&self) -> &str {
        "process_states"
    }

    fn collect(&self, out: &mut Writer) -> Result<(), exposition::Error> {
        let mut options = CollectOptions::default();
        options.processes = ProcessSelection::All;
        let sample = self.0.collect(&options)?;
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for p in &sample.processes {
            *by_state.entry(p.state.to_string()).or_default() += 1;
        }
        let mut f = out.gauge("team_processes_in_state", "Processes by scheduler state (R, S, D, Z...).");
        for (state, n) in &by_state {
            f.sample(&[("state", state)], *n);
        }
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9465".to_owned());
    let listener = perfkit_exporter::bind(addr.parse()?)?;
    eprintln!("serving http://{}/metrics", listener.local_addr()?);
    // Everything perfkit exports for the machine (no per-process series:
    // they are unbounded), then the custom metric.
    let exporter = Exporter::new("team")
        .collector(ProcfsCollector::new(CollectOptions::default()))
        .collector(ProcessStates(perfkit_procstat::Collector::new()));
    exporter.serve(listener).await?;
    Ok(())
}
