//! Builds the unwind table of each file given and prints what went into it:
//! `cargo run --release -p perfkit-unwind --example unwind-table -- /usr/bin/xz`.

use std::time::Instant;

fn main() {
    for path in std::env::args().skip(1) {
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let started = Instant::now();
        match perfkit_unwind::UnwindTable::build(&data) {
            Ok(t) => {
                let took = started.elapsed();
                let pages = t.pages().count();
                let fp = perfkit_unwind::frame_pointers::inspect(&data).map(|r| r.verdict);
                println!(
                    "{path}: {} MiB, {} rows, {pages} pages, built in {:.1} ms; {:?}; frame pointers: {fp:?}",
                    data.len() >> 20,
                    t.rows().len(),
                    took.as_secs_f64() * 1e3,
                    t.stats()
                );
            }
            Err(e) => println!("{path}: {e}"),
        }
    }
}
