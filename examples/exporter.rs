//! A Prometheus exporter with one custom metric: perfkit-procstat's system
//! metrics plus `team_processes_in_state{state}` (processes by scheduler
//! state), served on 127.0.0.1:9465 with nothing but the standard library.
//!
//! ```sh
//! cargo run -p perfkit-examples --bin exporter &
//! curl -s 127.0.0.1:9465/metrics | grep team_
//! ```

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead, BufReader, Write},
    net::TcpListener,
};

use perfkit_procstat::{CollectOptions, Collector, ProcessSelection, prometheus};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9465".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("serving http://{addr}/metrics");
    let collector = Collector::new();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // Read the request line and headers; any path gets the metrics.
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let body = match metrics(&collector) {
            Ok(b) => b,
            Err(e) => format!("# collection failed: {e}\n"),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            prometheus::CONTENT_TYPE,
            body.len()
        );
    }
    Ok(())
}

fn metrics(collector: &Collector) -> Result<String, Box<dyn std::error::Error>> {
    let mut options = CollectOptions::default();
    options.processes = ProcessSelection::All;
    let sample = collector.collect(&options)?;
    // Everything perfkit exports, minus the per-process series (unbounded).
    let mut without_processes = sample.clone();
    without_processes.processes.clear();
    let mut out = prometheus::render(&without_processes);
    // The custom metric.
    let mut by_state: BTreeMap<char, u64> = BTreeMap::new();
    for p in &sample.processes {
        *by_state.entry(p.state).or_default() += 1;
    }
    writeln!(out, "# HELP team_processes_in_state Processes by scheduler state (R, S, D, Z...).")?;
    writeln!(out, "# TYPE team_processes_in_state gauge")?;
    for (state, n) in by_state {
        writeln!(out, "team_processes_in_state{{state=\"{state}\"}} {n}")?;
    }
    Ok(out)
}
