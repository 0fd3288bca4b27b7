//! `perf script` text: the input is given a perf script header line so the
//! detector takes the perf collapser's path, with every root choice.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perfkit_fuzz::quiet_panics();
    let mut input = b"prog 1234/1234 [000] 100.000000: 1 cpu-clock:\n".to_vec();
    input.extend_from_slice(data);
    for roots in [perfkit_formats::Roots::Command, perfkit_formats::Roots::Process, perfkit_formats::Roots::Thread] {
        let mut options = perfkit_formats::ReadOptions::with_budget(perfkit_formats::Budget::new(64 << 20));
        options.roots = roots;
        let _ = perfkit_formats::read_folded(&input, &options);
    }
});
