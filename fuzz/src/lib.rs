//! What the fuzz targets share.

/// perfkit-formats catches the panics of inferno's collapsers and reports
/// malformed input; libfuzzer-sys's panic hook would abort before that, so
/// it is replaced by a silent one. A panic nothing catches still aborts
/// (fuzz_target! aborts on it) and is kept as a crash.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
