//! pprof, gzipped or not.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = perfkit_formats::pprof::read_with(data, &perfkit_formats::Budget::new(64 << 20));
});
