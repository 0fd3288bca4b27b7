//! Any bytes through format detection and both readers, with a memory
//! budget: errors are fine, panics and blow-ups are not.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perfkit_fuzz::quiet_panics();
    let options = perfkit_formats::ReadOptions::with_budget(perfkit_formats::Budget::new(64 << 20));
    let _ = perfkit_formats::detect(data);
    let _ = perfkit_formats::read_folded(data, &options);
    let _ = perfkit_formats::read_profile(data, &options);
});
