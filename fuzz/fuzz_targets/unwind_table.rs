//! The ELF/CFI table builder (perfkit-unwind): bytes of a file a target
//! maps in, rows and verdicts out, within a memory budget.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Smaller than the process's budget: libFuzzer's -rss_limit_mb=512
    // must hold with the fuzzer's own memory.
    let budget = perfkit_safeio::Budget::new(128 << 20);
    if let Ok(table) = perfkit_unwind::UnwindTable::build_in(data, &budget, "fuzz input") {
        for (_, rows, carried) in table.pages().take(1 << 12) {
            let _ = perfkit_unwind::encode_page(rows, carried);
        }
        let _ = table.lookup(0x1000);
    }
    let _ = perfkit_unwind::frame_pointers::inspect_in(data, &budget, "fuzz input");
    let layout = perfkit_unwind::ElfLayout::parse(data);
    let _ = layout.load_bias(0x5555_5555_4000, 0x1000, true);
    let _ = perfkit_unwind::compressed_sizes(data);
    let _ = perfkit_unwind::has_oversized_compressed_section(data);
});
