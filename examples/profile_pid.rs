//! Profiles a process for 5 seconds and prints its folded stacks: the
//! smallest in-house profiler. Backend choice and fallback, unwinding,
//! symbolization and loss accounting all come with `Session`.
//!
//! ```sh
//! cargo run -p perfkit-examples --bin profile-pid -- 1234 > app.folded
//! ```

use std::{process::ExitCode, time::Duration};

use perfkit_profiler::{Options, Session, Target};

fn main() -> ExitCode {
    let Some(pid) = std::env::args().nth(1).and_then(|a| a.parse::<u32>().ok()) else {
        eprintln!("usage: profile-pid PID");
        return ExitCode::from(2);
    };
    match run(pid) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profile-pid: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(pid: u32) -> Result<(), Box<dyn std::error::Error>> {
    let mut session = Session::start(Target::pids(&[pid])?, &Options::default())?;
    // Five seconds, or less when the process exits first.
    session.wait(Some(Duration::from_secs(5)));
    let finished = session.finish()?;
    // What could not be measured is said, never hidden.
    for note in &finished.notes {
        eprintln!("{note}");
    }
    finished.profile.write_folded(&mut std::io::stdout().lock())?;
    Ok(())
}
