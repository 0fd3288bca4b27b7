//! Hostile CFI: files a target controls must not decide how much memory
//! the table builder uses. The inputs are built here with `cc` and
//! `objcopy` (binutils).

use std::{path::Path, process::Command};

use perfkit_safeio::Budget;
use perfkit_unwind::{UnwindError, UnwindTable};

/// A `.debug_frame` of one CIE and one FDE at `start` whose instructions
/// are `rows` `DW_CFA_advance_loc 1`: one row each.
fn debug_frame(start: u64, rows: usize) -> Vec<u8> {
    let mut cie = vec![0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x78, 16, 0x0c, 7, 8, 0x90, 1];
    while (cie.len() + 4) % 8 != 0 {
        cie.push(0);
    }
    let mut out = (cie.len() as u32).to_le_bytes().to_vec();
    out.extend(cie);
    let fde_len = 4 + 8 + 8 + rows;
    out.extend((fde_len as u32).to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend((rows as u64 + 16).to_le_bytes());
    out.resize(out.len() + rows, 0x41);
    out
}

/// A small x86-64 executable without `.eh_frame`, and its `.text` start.
fn base(dir: &Path) -> Option<(std::path::PathBuf, u64)> {
    let src = dir.join("main.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let exe = dir.join("main");
    let ok = Command::new("cc")
        .args(["-O1", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let data = std::fs::read(&exe).unwrap();
    use object::{Object, ObjectSection};
    let text = object::File::parse(&*data).unwrap().section_by_name(".text")?.address();
    Some((exe, text))
}

/// Adds `sections` (name, bytes) to `exe`, compressed with zlib.
fn with_compressed(exe: &Path, out: &Path, sections: &[(&str, Vec<u8>)]) -> bool {
    let mut add = Command::new("objcopy");
    // Without `.eh_frame` (the C runtime's objects bring some), the
    // `.debug_frame` is what describes the code.
    add.args(["--remove-section", ".eh_frame", "--remove-section", ".eh_frame_hdr"]);
    for (i, (name, bytes)) in sections.iter().enumerate() {
        let f = out.with_extension(format!("sec{i}"));
        std::fs::write(&f, bytes).unwrap();
        add.arg("--add-section").arg(format!("{name}={}", f.display()));
    }
    let plain = out.with_extension("plain");
    if !add.arg(exe).arg(&plain).status().is_ok_and(|s| s.success()) {
        return false;
    }
    Command::new("objcopy")
        .arg("--compress-debug-sections=zlib")
        .arg(&plain)
        .arg(out)
        .status()
        .is_ok_and(|s| s.success())
}

fn tools() -> bool {
    let ok = |c: &str| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success());
    ok("cc") && ok("objcopy")
}

#[test]
fn one_fde_with_64_mi_rows_is_refused_within_the_budget() {
    if !tools() {
        eprintln!("skipped: cc and objcopy are needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, text) = base(dir.path()).unwrap();
    let hostile = dir.path().join("hostile");
    assert!(with_compressed(&exe, &hostile, &[(".debug_frame", debug_frame(text, 64 << 20))]));
    let data = std::fs::read(&hostile).unwrap();
    assert!(data.len() < 1 << 20, "{} bytes", data.len());
    let budget = Budget::new(128 << 20);
    let err = UnwindTable::build_in(&data, &budget, "hostile").unwrap_err();
    match &err {
        UnwindError::Budget(e) => {
            assert!(e.to_string().contains("hostile"), "{e}");
            assert_eq!(e.limit, 128 << 20);
        }
        other => panic!("{other}"),
    }
    assert_eq!(budget.used(), 0, "everything charged is released");
}

#[test]
fn rows_inside_one_fde_are_bounded_by_max_rows() {
    if !tools() {
        eprintln!("skipped: cc and objcopy are needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, text) = base(dir.path()).unwrap();
    let hostile = dir.path().join("hostile");
    let rows = perfkit_unwind::MAX_ROWS + 16;
    assert!(with_compressed(&exe, &hostile, &[(".debug_frame", debug_frame(text, rows))]));
    let data = std::fs::read(&hostile).unwrap();
    // A budget large enough that only the row bound stops it.
    let budget = Budget::new(8 << 30);
    let err = UnwindTable::build_in(&data, &budget, "hostile").unwrap_err();
    assert!(matches!(err, UnwindError::TooManyRows { section: ".debug_frame" }), "{err}");
    assert!(err.to_string().contains("rows"), "{err}");
}

#[test]
fn a_small_fde_still_builds() {
    if !tools() {
        eprintln!("skipped: cc and objcopy are needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, text) = base(dir.path()).unwrap();
    let file = dir.path().join("small");
    assert!(with_compressed(&exe, &file, &[(".debug_frame", debug_frame(text, 64))]));
    let data = std::fs::read(&file).unwrap();
    let budget = Budget::new(1 << 20);
    let table = UnwindTable::build_in(&data, &budget, "small").unwrap();
    assert!(!table.rows().is_empty());
    assert_eq!(table.stats().debug_frame_functions, 1);
    assert_eq!(budget.used(), 0);
}

#[test]
fn compressed_sections_are_bounded_in_total() {
    if !tools() {
        eprintln!("skipped: cc and objcopy are needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, _) = base(dir.path()).unwrap();
    let file = dir.path().join("eight");
    // Eight sections of 48 MiB of zeros: each under the per-section bound,
    // 384 MiB together.
    let names = [
        ".debug_info",
        ".debug_abbrev",
        ".debug_line",
        ".debug_str",
        ".debug_ranges",
        ".debug_aranges",
        ".debug_loc",
        ".debug_line_str",
    ];
    let sections: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (*n, vec![0u8; 48 << 20])).collect();
    assert!(with_compressed(&exe, &file, &sections));
    let data = std::fs::read(&file).unwrap();
    assert!(data.len() < 4 << 20, "{} bytes", data.len());
    assert!(perfkit_unwind::compressed_sections_size(&data) >= 8 * (48 << 20));
    assert!(perfkit_unwind::has_oversized_compressed_section(&data));
    // The table builder decompresses only the CFI sections: none here.
    let budget = Budget::new(1 << 20);
    let table = UnwindTable::build_in(&data, &budget, "eight").unwrap();
    assert_eq!(table.stats().functions, 0);
}
