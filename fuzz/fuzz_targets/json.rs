//! perfkit's JSON profile schema.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = perfkit_formats::json::read(data);
});
