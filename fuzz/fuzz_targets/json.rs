//! perfkit's JSON profile schema.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = perfkit_formats::json::read_with(data, &perfkit_formats::Budget::new(64 << 20));
});
