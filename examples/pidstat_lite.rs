//! pidstat-like rows: the processes that used CPU in the last second,
//! busiest first, from perfkit-procstat's collector and model.
//!
//! ```sh
//! cargo run -p perfkit-examples --bin pidstat-lite
//! ```

use std::time::Duration;

use perfkit_procstat::{CollectOptions, Collector, ProcessSelection, model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = Collector::new();
    let mut options = CollectOptions::default();
    options.processes = ProcessSelection::All;
    let before = collector.collect(&options)?;
    std::thread::sleep(Duration::from_secs(1));
    let after = collector.collect(&options)?;
    let mut rows: Vec<model::ProcRow> =
        model::processes(Some(&before), &after).into_iter().filter(|r| r.cpu_pct > 0.0).collect();
    rows.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
    println!("{:>7} {:>7} {:>9} {:>9} Command", "PID", "%CPU", "RSS(KiB)", "cswch/s");
    for r in rows {
        println!("{:>7} {:>7.2} {:>9} {:>9.2} {}", r.pid, r.cpu_pct, r.rss_kib, r.cswch_s, r.command);
    }
    Ok(())
}
