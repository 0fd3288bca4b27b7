//! pprof, gzipped or not.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = perfkit_formats::pprof::read(data);
});
