//! Any bytes through format detection and both readers, with a memory
//! budget: errors are fine, panics and blow-ups are not.
#![no_main]
/// perfkit-formats catches the panics of inferno's collapsers and reports
/// malformed input; libfuzzer-sys's panic hook would abort before that, so
/// it is replaced by a silent one. A panic nothing catches still aborts
/// (fuzz_target! aborts on it) and is kept as a crash.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quiet_panics();
    let mut options = perfkit_formats::ReadOptions::default();
    options.max_memory = 64 << 20;
    let _ = perfkit_formats::detect(data);
    let _ = perfkit_formats::read_folded(data, &options);
    let _ = perfkit_formats::read_profile(data, &options);
});
