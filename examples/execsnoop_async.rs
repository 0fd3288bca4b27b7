//! Execs as JSON lines from a tokio task: the event tools are
//! `futures_core::Stream`s on tokio's reactor (perfkit-profiler's `tokio`
//! feature), so an async service consumes them beside its other work
//! without a blocking thread. Stops after COUNT execs or SECONDS.
//!
//! ```sh
//! sudo cargo run -p perfkit-examples --bin execsnoop-async -- 10 30
//! ```

use std::{future::poll_fn, pin::Pin, process::ExitCode, time::Duration};

use futures_core::Stream;
use perfkit_profiler::tools::{EventStream, ExecSnoop, ExecSnoopConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).map_or(Some(default), |a| a.parse::<u64>().ok());
    let (Some(count), Some(seconds)) = (number(0, 10), number(1, 30)) else {
        eprintln!("usage: execsnoop-async [COUNT] [SECONDS]");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("execsnoop-async: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(count, Duration::from_secs(seconds))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("execsnoop-async: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(count: u64, limit: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let mut execs = EventStream::new(ExecSnoop::start(ExecSnoopConfig::default())?)?;
    // Readiness for the caller that waits on it (a test, a supervisor).
    eprintln!("ready");
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut seen = 0;
    while seen < count {
        let next = poll_fn(|cx| Pin::new(&mut execs).poll_next(cx));
        tokio::select! {
            exec = next => match exec {
                Some(exec) => {
                    println!("{}", serde_json::to_string(&exec)?);
                    seen += 1;
                }
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let stats = execs.get_ref().stats()?;
    eprintln!("{seen} execs; {} events lost", stats.ring_full);
    Ok(())
}
