//! Replays the recording fuzzer's corpus and crashes (fuzz/) as a normal
//! test: every input reads to samples, a corrupt-frame report or an error,
//! never a panic.

#[test]
fn recording_corpus() {
    for path in perfkit_workspace_tests::fuzz_inputs("recording") {
        let data = std::fs::read(&path).unwrap();
        let _ = perfkit_procstat::record::read(&data[..]);
    }
}
