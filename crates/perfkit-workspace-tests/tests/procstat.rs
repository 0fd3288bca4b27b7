//! Replays the recording fuzzer's corpus and crashes (fuzz/) as a normal
//! test: every input reads to samples, a corrupt-frame report or an error,
//! never a panic.

use std::path::Path;

#[test]
fn recording_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("recording")) else { continue };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&path).unwrap();
            let _ = perfkit_procstat::record::read(&data[..]);
            n += 1;
        }
    }
    assert!(n > 0, "no recording corpus under {}", root.display());
}
