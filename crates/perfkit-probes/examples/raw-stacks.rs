//! Samples a process for a few seconds and prints the raw stacks the
//! kernel side aggregated (frames still encoded): a check of the probes
//! without symbolization. `raw-stacks PID [SECONDS] [fp]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let pid: u32 = args.next().and_then(|a| a.parse().ok()).expect("usage: raw-stacks PID [SECONDS] [fp]");
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let mut config = perfkit_probes::StackSamplerConfig::new(perfkit_probes::Selection::Processes {
        pids: vec![pid],
        follow_children: true,
    });
    config.frequency_hz = Some(99);
    if args.next().as_deref() == Some("fp") {
        config.user_stacks = perfkit_probes::UserStacks::FramePointers;
    }
    let sampler = match perfkit_probes::StackSampler::start(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            if let perfkit_probes::ProbeError::Load(inner) = &e {
                eprintln!("{inner:?}");
            }
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            std::process::exit(1);
        }
    };
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let p = sampler.finish().expect("finish");
    println!("{:?}\n{:?}", p.stats, p.tables);
    for (id, f) in &p.modules.files {
        println!("file {id}: {}", f.path());
    }
    let mut samples = p.samples;
    samples.sort_by_key(|s| std::cmp::Reverse(s.count));
    for s in samples.iter().take(8) {
        println!("{} {} {:?} {:x?}", s.count, s.process, s.user_end, s.user);
    }
}
