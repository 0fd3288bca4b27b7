//! Folded lines: the one validator, the line parser and the reader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = perfkit_model::parse_folded_line(line);
            let _ = perfkit_model::disambiguate(line);
        }
    }
    let _ = perfkit_model::parse_folded(data);
});
