//! JIT perf maps (`/tmp/perf-PID.map`, written by the target): the
//! streaming reader, its bounds and lookups.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let budget = perfkit_safeio::Budget::new(64 << 20);
    let mut map = perfkit_symbols::perfmap::PerfMap::parse(data, std::path::Path::new("perf-1.map"), budget);
    for addr in [0, 0x1000, 0x7fff_0000_0000, u64::MAX] {
        let _ = map.lookup(addr);
    }
    let _ = map.notes();
});
