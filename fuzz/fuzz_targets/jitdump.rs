//! Jitdump files (`/tmp/jit-PID.dump`, written by the target): records,
//! code moves, bounds and lookups.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let budget = perfkit_safeio::Budget::new(64 << 20);
    let mut map = perfkit_symbols::perfmap::PerfMap::parse_jitdump(data, std::path::Path::new("jit-1.dump"), budget);
    for addr in [0, 0x1000, 0x7fff_0000_0000, u64::MAX] {
        let _ = map.lookup(addr);
    }
    let _ = map.notes();
});
