//! Prints the Python stacks of a running CPython (3.8 to 3.13), as
//! `py-spy dump --pid PID` does: `cargo run -p perfkit-unwind --example
//! pystack -- PID` (as root, or with CAP_SYS_PTRACE).

use perfkit_unwind::cpython::CPython;

fn main() {
    let Some(pid) = std::env::args().nth(1).and_then(|a| a.parse().ok()) else {
        eprintln!("usage: pystack PID");
        std::process::exit(2);
    };
    let budget = perfkit_safeio::Budget::default();
    let result = CPython::attach(pid, &budget).and_then(|py| Ok((py.version(), py.threads()?)));
    let (version, threads) = match result {
        Ok(found) => found,
        Err(e) => {
            eprintln!("pystack: {e}");
            std::process::exit(1);
        }
    };
    if let Some(n) = std::env::args().nth(2).and_then(|a| a.parse::<u32>().ok()) {
        // `pystack PID N`: times N reads of the main thread's stack.
        let py = CPython::attach(pid, &budget).expect("attached above");
        let started = std::time::Instant::now();
        let mut slowest = std::time::Duration::ZERO;
        let mut over_2ms = 0;
        for _ in 0..n {
            let t = std::time::Instant::now();
            let _ = py.stack(pid);
            slowest = slowest.max(t.elapsed());
            over_2ms += u32::from(t.elapsed().as_millis() >= 2);
        }
        println!("{:?} per stack, slowest {slowest:?}, {over_2ms} over 2 ms", started.elapsed() / n.max(1));
    }
    println!("Process {pid}: CPython {version} (* marks frames that began a call of the evaluation loop)");
    for thread in threads {
        let tid = thread.native_tid.map_or_else(|| "?".to_owned(), |t| t.to_string());
        println!("Thread {tid} ({:#x})", thread.thread_id);
        for f in &thread.frames {
            let line = f.line.map_or_else(|| "?".to_owned(), |l| l.to_string());
            let entry = if f.entry { "*" } else { " " };
            println!("  {entry} {} ({}:{line})", f.qualname, f.file);
        }
    }
}
