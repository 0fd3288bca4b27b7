//! The top functions by self time of a running process, as JSON lines: one
//! `{"share": .., "count": .., "frame": {"name", "kind", "location"}}` per
//! function, most first. Built on perfkit-profiler alone; the model's types
//! serialize themselves, so nothing here parses names back.
//!
//! ```sh
//! cargo run -p perfkit-examples --bin top-json -- 1234 5 10 | jq .
//! ```

use std::{process::ExitCode, time::Duration};

use perfkit_profiler::{FunctionCount, Options, Session, Target};

/// One output line.
#[derive(serde::Serialize)]
struct Line<'a> {
    /// Of all samples, 0 to 1.
    share: f64,
    #[serde(flatten)]
    function: &'a FunctionCount,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).map_or(Some(default), |a| a.parse::<u64>().ok());
    let (Some(pid), Some(seconds), Some(n)) =
        (args.first().and_then(|a| a.parse::<u32>().ok()), number(1, 5), number(2, 10))
    else {
        eprintln!("usage: top-json PID [SECONDS] [N]");
        return ExitCode::from(2);
    };
    match run(pid, seconds, n as usize) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("top-json: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(pid: u32, seconds: u64, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut session = Session::start(Target::pids(&[pid])?, &Options::default())?;
    session.wait(Some(Duration::from_secs(seconds)));
    let finished = session.finish()?;
    for note in &finished.notes {
        eprintln!("{note}");
    }
    let total = finished.profile.total_samples().max(1) as f64;
    for function in finished.profile.top_self(n) {
        let line = Line { share: function.count as f64 / total, function: &function };
        println!("{}", serde_json::to_string(&line)?);
    }
    Ok(())
}
