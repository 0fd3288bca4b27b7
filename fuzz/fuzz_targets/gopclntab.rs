//! Go's function table reader (perfkit-unwind's gopclntab): bytes of a
//! file a target maps in, names, lines, inlined calls and SP deltas out,
//! never a panic, in time linear in the input. The input is read as a
//! whole ELF file and as a bare table.
#![no_main]
use perfkit_unwind::{ElfLayout, gopclntab::GoTable};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bare = GoTable::at(data, data, ElfLayout::parse(data), 0);
    for table in GoTable::find(data).into_iter().chain(bare) {
        for f in table.functions().take(64) {
            let _ = table.name(&f);
            let _ = table.sp_deltas(&f).count();
            let _ = table.lookup(f.entry);
            let _ = table.lookup(f.entry.wrapping_add(f.end.wrapping_sub(f.entry) / 2));
        }
        let _ = table.lookup(0x401000);
    }
});
