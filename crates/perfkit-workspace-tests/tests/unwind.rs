//! Replays the fuzzing corpora of the table builder and of the Go table
//! reader (gopclntab), and every crash the
//! fuzzer found (fuzz/corpus/unwind_table, fuzz/artifacts/unwind_table) as
//! a normal test: each input gives a table or an error, never a panic,
//! within the budget. The same calls as fuzz/fuzz_targets/unwind_table.rs.

#[test]
fn unwind_table_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("unwind_table") {
        let data = std::fs::read(&path).unwrap();
        let budget = perfkit_safeio::Budget::new(128 << 20);
        if let Ok(table) = perfkit_unwind::UnwindTable::build_in(&data, &budget, "fuzz input") {
            for (_, rows, carried) in table.pages().take(1 << 12) {
                let _ = perfkit_unwind::encode_page(rows, carried);
            }
            let _ = table.lookup(0x1000);
        }
        let _ = perfkit_unwind::frame_pointers::inspect_in(&data, &budget, "fuzz input");
        let layout = perfkit_unwind::ElfLayout::parse(&data);
        let _ = layout.load_bias(0x5555_5555_4000, 0x1000, true);
        let _ = perfkit_unwind::compressed_sizes(&data);
        let _ = perfkit_unwind::has_oversized_compressed_section(&data);
        assert_eq!(budget.used(), 0, "{}: a charge outlived the table", path.display());
    }
}

#[test]
fn gopclntab_corpus() {
    use perfkit_unwind::{ElfLayout, gopclntab::GoTable};
    // The same calls as fuzz/fuzz_targets/gopclntab.rs.
    for path in perfkit_workspace_tests::fuzz_inputs("gopclntab") {
        let data = std::fs::read(&path).unwrap();
        let bare = GoTable::at(&data, &data, ElfLayout::parse(&data), 0);
        for table in GoTable::find(&data).into_iter().chain(bare) {
            for f in table.functions().take(64) {
                let _ = table.name(&f);
                let _ = table.sp_deltas(&f).count();
                let _ = table.lookup(f.entry);
                let _ = table.lookup(f.entry.wrapping_add(f.end.wrapping_sub(f.entry) / 2));
            }
            let _ = table.lookup(0x401000);
        }
    }
}
