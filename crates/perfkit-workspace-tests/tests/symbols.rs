//! Replays the fuzzing corpus of the perf-map and jitdump readers and every
//! crash the fuzzer found (fuzz/corpus/perf_map, fuzz/artifacts/perf_map,
//! and the same for jitdump) as a
//! normal test: never a panic, within the budget. The same calls as
//! fuzz/fuzz_targets/perf_map.rs and jitdump.rs.

use std::path::Path;

use perfkit_symbols::perfmap::PerfMap;

#[test]
fn perf_map_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("perf_map") {
        let data = std::fs::read(&path).unwrap();
        let budget = perfkit_safeio::Budget::new(64 << 20);
        let mut map = PerfMap::parse(&data, Path::new("perf-1.map"), budget.clone());
        for addr in [0, 0x1000, 0x7fff_0000_0000, u64::MAX] {
            let _ = map.lookup(addr);
        }
        let _ = map.notes();
        drop(map);
        assert_eq!(budget.used(), 0);
    }
}

#[test]
fn jitdump_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("jitdump") {
        let data = std::fs::read(&path).unwrap();
        let budget = perfkit_safeio::Budget::new(64 << 20);
        let mut map = PerfMap::parse_jitdump(&data, Path::new("jit-1.dump"), budget.clone());
        for addr in [0, 0x1000, 0x7fff_0000_0000, u64::MAX] {
            let _ = map.lookup(addr);
        }
        let _ = map.notes();
        drop(map);
        assert_eq!(budget.used(), 0);
    }
}

#[test]
fn the_seeds_parse_as_a_file_does() {
    // The seed with a 6000-byte line: the entries around it are kept.
    let root = perfkit_workspace_tests::fuzz_dir().join("corpus/perf_map/seed-long");
    let data = std::fs::read(&root).unwrap();
    let mut map = PerfMap::parse(&data, Path::new("perf-1.map"), perfkit_safeio::Budget::new(1 << 20));
    assert_eq!(map.lookup(0x1005), Some("first"));
    assert_eq!(map.lookup(0x2005), Some("after-long"));
    assert_eq!(map.len(), 2, "the unfinished last line waits");
    assert!(map.notes().iter().any(|n| n.contains("skipped: 1")), "{:?}", map.notes());
}
