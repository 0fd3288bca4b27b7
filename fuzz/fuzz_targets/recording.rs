//! `perfkit sys record` recordings (v1 and v2).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = perfkit_procstat::record::read(data);
});
