//! Replays the fuzzing corpus and every crash the fuzzers found (fuzz/) as
//! a normal test: each input must give a result or an error, never a panic,
//! within the memory budget. The same calls as the fuzz targets.

/// Each input gets a budget of its own, as the fuzz targets give it.
fn options() -> perfkit_formats::ReadOptions {
    perfkit_formats::ReadOptions::with_budget(perfkit_formats::Budget::new(64 << 20))
}

#[test]
fn detect_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("detect") {
        let data = std::fs::read(&path).unwrap();
        let _ = perfkit_formats::detect(&data);
        let _ = perfkit_formats::read_folded(&data, &options());
        let _ = perfkit_formats::read_profile(&data, &options());
    }
}

#[test]
fn folded_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("folded") {
        let data = std::fs::read(&path).unwrap();
        if let Ok(text) = std::str::from_utf8(&data) {
            for line in text.lines() {
                let _ = perfkit_model::parse_folded_line(line);
                let _ = perfkit_model::disambiguate(line);
            }
        }
        let _ = perfkit_model::parse_folded(&data[..]);
    }
}

#[test]
fn perf_script_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("perf_script") {
        let mut input = b"prog 1234/1234 [000] 100.000000: 1 cpu-clock:\n".to_vec();
        input.extend(std::fs::read(&path).unwrap());
        for roots in [perfkit_formats::Roots::Command, perfkit_formats::Roots::Process, perfkit_formats::Roots::Thread]
        {
            let mut o = options();
            o.roots = roots;
            let _ = perfkit_formats::read_folded(&input, &o);
        }
    }
}

#[test]
fn pprof_corpus() {
    let mut read_ok = 0;
    for path in perfkit_workspace_tests::fuzz_inputs("pprof") {
        if perfkit_formats::pprof::read_with(&std::fs::read(&path).unwrap(), &options().budget).is_ok() {
            read_ok += 1;
        }
    }
    assert!(read_ok > 0, "the seeds are valid pprof");
}

#[test]
fn json_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("json") {
        let _ = perfkit_formats::json::read_with(&std::fs::read(&path).unwrap(), &options().budget);
    }
}
