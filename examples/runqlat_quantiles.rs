//! Run-queue latency quantiles of the whole machine: how long runnable
//! threads waited for a CPU, as `{"count", "p50_usecs", "p99_usecs"}`
//! JSON once per interval. The histogram comes from perfkit's runqlat and
//! the quantiles from `Histogram::quantile_us`, interval by interval
//! (`Histogram::since`).
//!
//! ```sh
//! sudo cargo run -p perfkit-examples --bin runqlat-quantiles -- 1 5
//! ```

use std::{process::ExitCode, time::Duration};

use perfkit_profiler::tools::{Histogram, Runqlat, RunqlatConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).map_or(Some(default), |a| a.parse::<u64>().ok());
    let (Some(interval), Some(count)) = (number(0, 1), number(1, 5)) else {
        eprintln!("usage: runqlat-quantiles [INTERVAL_SECONDS] [COUNT]");
        return ExitCode::from(2);
    };
    match run(Duration::from_secs(interval.max(1)), count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runqlat-quantiles: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(interval: Duration, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let runqlat = Runqlat::start(RunqlatConfig::default())?;
    let mut before = Histogram::new(0, 0);
    for _ in 0..count {
        std::thread::sleep(interval);
        // One histogram for the machine (RunqlatPer::All), merged in case
        // of more.
        let mut now = Histogram::new(0, 0);
        for h in runqlat.histograms()? {
            now.merge(&h);
        }
        let delta = now.since(&before);
        before = now;
        let line = serde_json::json!({
            "count": delta.count(),
            "p50_usecs": delta.quantile_us(0.50),
            "p99_usecs": delta.quantile_us(0.99),
        });
        println!("{line}");
    }
    Ok(())
}
