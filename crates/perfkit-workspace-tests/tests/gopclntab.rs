//! `.gopclntab` read from real Go binaries, against Go's own tools: the
//! gohot workload built stripped (`-ldflags=-s -w`) and unstripped by the
//! machine's Go, every function's name against the unstripped symbol
//! table, and names, files and lines at PCs against `go tool addr2line`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use object::{Object, ObjectSymbol, SymbolKind};
use perfkit_unwind::gopclntab::{GoTable, Layout};

/// Builds gohot with extra flags; `None` without Go (outside strict CI).
fn build(name: &str, flags: &[&str]) -> Option<PathBuf> {
    if Command::new("go").arg("version").output().is_err() {
        assert!(std::env::var_os("PERFKIT_REQUIRE_PRIVILEGED").is_none(), "go is missing");
        eprintln!("perfkit-test: skipped: needs go (golang-go)");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../perfkit-cli/tests/workloads/gohot");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .args(flags)
        .arg(".")
        .current_dir(&dir)
        .env("GOCACHE", Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache"))
        .env("GOFLAGS", "-mod=mod")
        .status()
        .expect("running go build");
    assert!(status.success());
    Some(out)
}

#[test]
fn names_every_function_of_a_stripped_binary_as_its_symbol_table_does() {
    let (Some(stripped), Some(full)) = (build("gohot-stripped", &["-ldflags=-s -w"]), build("gohot-full", &[])) else {
        return;
    };
    let stripped = std::fs::read(stripped).unwrap();
    let full = std::fs::read(full).unwrap();
    let table = GoTable::find(&stripped).expect("a table in the stripped binary");
    assert!(matches!(table.layout(), Layout::Go118 | Layout::Go120), "{:?}", table.layout());
    assert!(table.has_inline_trees(), "moduledata found");
    assert!(object::File::parse(&*stripped).unwrap().symbols().next().is_none(), "stripped");
    // Same code in both: -s -w only drops symbols and DWARF.
    let file = object::File::parse(&*full).unwrap();
    let mut checked = 0;
    for s in file.symbols().filter(|s| s.kind() == SymbolKind::Text && s.size() > 0) {
        // Assembly functions carry their ABI in the symbol table only.
        let name = s.name().unwrap().trim_end_matches(".abi0");
        let f = table.func_at(s.address()).unwrap_or_else(|| panic!("no function at {name}"));
        assert_eq!(f.entry, s.address(), "{name}");
        // Go 1.19 names generic and type instances in the table with
        // `[...]` for their arguments.
        if !name.contains('[') {
            assert_eq!(table.name(&f).as_deref(), Some(name));
        }
        checked += 1;
    }
    assert!(checked > 1000, "{checked} functions");
    assert_eq!(checked, table.len(), "every function");
}

#[test]
fn names_files_lines_and_inlined_calls_as_go_tool_addr2line_does() {
    let Some(stripped) = build("gohot-stripped", &["-ldflags=-s -w"]) else { return };
    let data = std::fs::read(&stripped).unwrap();
    let table = GoTable::find(&data).unwrap();
    // Every 7th byte of every function.
    let pcs: Vec<u64> = table.functions().flat_map(|f| (f.entry..f.end).step_by(7)).collect();
    let mut child = Command::new("go")
        .args(["tool", "addr2line"])
        .arg(&stripped)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), pcs.len() * 2);
    let mut inlined = 0;
    for (pc, pair) in pcs.iter().zip(lines.chunks(2)) {
        let frames = table.lookup(*pc).unwrap();
        // addr2line names the physical function and the innermost position.
        let (outer, inner) = (&frames[0], frames.last().unwrap());
        assert!(!outer.inlined);
        assert_eq!(outer.name, pair[0], "{pc:#x}");
        let (file, line) = pair[1].rsplit_once(':').unwrap();
        assert_eq!(inner.file.as_deref().unwrap_or(""), file, "{pc:#x}");
        assert_eq!(inner.line, line.parse::<u32>().unwrap_or(0), "{pc:#x}");
        inlined += usize::from(frames.len() > 1);
    }
    assert!(inlined > 100, "{inlined} PCs in inlined code");
    // The workload's own inlined call: step into leaf.
    let leaf = table.functions().find(|f| table.name(f).as_deref() == Some("main.leaf")).unwrap();
    let steps = (leaf.entry..leaf.end)
        .filter_map(|pc| table.lookup(pc))
        .filter(|fr| fr.len() == 2 && fr[1].name == "main.step" && fr[1].inlined && fr[1].line == 17)
        .count();
    assert!(steps > 0, "main.step inlined into main.leaf");
}

#[test]
fn sp_deltas_give_the_cfa_go_s_own_debug_frame_gives() {
    use perfkit_unwind::{CfaRule, ElfLayout, RbpRule, UnwindTable};
    let (Some(stripped), Some(full)) = (build("gohot-stripped", &["-ldflags=-s -w"]), build("gohot-full", &[])) else {
        return;
    };
    let stripped = std::fs::read(stripped).unwrap();
    let full = std::fs::read(full).unwrap();
    // The stripped binary has no CFI: its rows come from .gopclntab.
    let from_pcsp = UnwindTable::build(&stripped).unwrap();
    assert_eq!(from_pcsp.stats().functions, 0);
    assert!(from_pcsp.stats().go_functions > 1000);
    // The unstripped one has the linker's .debug_frame, itself made from
    // the same SP deltas: the CFA agrees at every PC of every function.
    let from_dwarf = UnwindTable::build(&full).unwrap();
    assert!(from_dwarf.stats().debug_frame_functions > 1000);
    let (ls, lf) = (ElfLayout::parse(&stripped), ElfLayout::parse(&full));
    let table = GoTable::find(&stripped).unwrap();
    let (mut compared, mut framed) = (0, 0);
    for f in table.functions() {
        let name = table.name(&f).unwrap();
        let switch =
            ["runtime.systemstack", "runtime.mcall", "runtime.morestack", "runtime.asmcgocall"].contains(&&*name);
        for pc in f.entry..f.end {
            let mine = from_pcsp.lookup(ls.vaddr_to_offset(pc).unwrap()).unwrap();
            if switch {
                assert_eq!(mine.cfa, CfaRule::StackSwitch(16), "{name} walked by its frame pointer");
                continue;
            }
            let Some(theirs) = from_dwarf.lookup(lf.vaddr_to_offset(pc).unwrap()) else { continue };
            if theirs.cfa == CfaRule::None || mine.cfa == CfaRule::StackSwitch(16) {
                continue;
            }
            assert_eq!(mine.cfa, theirs.cfa, "{name} at {pc:#x}");
            compared += 1;
            if matches!(mine.cfa, CfaRule::Rsp(o) if o > 8) {
                assert_eq!(mine.rbp, RbpRule::AtCfa(-16), "{name} at {pc:#x}");
                framed += 1;
            }
        }
    }
    assert!(compared > 100_000 && framed > 50_000, "{compared} PCs compared, {framed} in frames");
}

#[test]
fn the_cfi_made_from_sp_deltas_gives_the_rows_the_table_gives() {
    use gimli::{BaseAddresses, CfaRule as G, DebugFrame, LittleEndian, RegisterRule, UnwindContext, UnwindSection};
    use perfkit_unwind::{CfaRule, ElfLayout, RbpRule, UnwindTable};
    let Some(stripped) = build("gohot-stripped", &["-ldflags=-s -w"]) else { return };
    let data = std::fs::read(stripped).unwrap();
    let budget = perfkit_safeio::Budget::new(64 << 20);
    let (cfi, charge) = perfkit_unwind::go_debug_frame(&data, &budget, "gohot").unwrap().expect("made");
    assert!(budget.used() >= cfi.len() as u64);
    let table = UnwindTable::build(&data).unwrap();
    let layout = ElfLayout::parse(&data);
    let go = GoTable::find(&data).unwrap();
    let section = DebugFrame::new(&cfi, LittleEndian);
    let bases = BaseAddresses::default();
    let mut ctx = UnwindContext::new();
    let mut compared = 0;
    // gimli searches .debug_frame linearly: every PC of every 40th function.
    for f in go.functions().step_by(40) {
        for pc in f.entry..f.end {
            let row = section
                .unwind_info_for_address(&bases, &mut ctx, pc, DebugFrame::cie_from_offset)
                .unwrap_or_else(|e| panic!("{pc:#x}: {e}"));
            let cfa = match *row.cfa() {
                G::RegisterAndOffset { register, offset } if register == gimli::X86_64::RSP => {
                    CfaRule::Rsp(offset as i32)
                }
                G::RegisterAndOffset { register, offset } if register == gimli::X86_64::RBP => {
                    CfaRule::StackSwitch(offset as i32)
                }
                ref other => panic!("{pc:#x}: {other:?}"),
            };
            let rbp = match row.register(gimli::X86_64::RBP) {
                Some(RegisterRule::Offset(o)) => RbpRule::AtCfa(o as i32),
                _ => RbpRule::Same,
            };
            let mine = table.lookup(layout.vaddr_to_offset(pc).unwrap()).unwrap();
            if mine.cfa == CfaRule::None {
                // Padding after the SP deltas end.
                continue;
            }
            assert_eq!((cfa, rbp), (mine.cfa, mine.rbp), "{pc:#x}");
            compared += 1;
        }
    }
    assert!(compared > 5_000, "{compared}");
    drop(charge);
    assert_eq!(budget.used(), 0);
}

#[test]
fn finds_the_table_without_section_headers() {
    let Some(stripped) = build("gohot-stripped", &["-ldflags=-s -w"]) else { return };
    let data = std::fs::read(stripped).unwrap();
    let with = GoTable::find(&data).unwrap();
    // The section headers removed (e_shoff, e_shnum, e_shstrndx zeroed), as
    // sstrip leaves a file: the table by its header's magic.
    let mut bare = data.clone();
    bare[0x28..0x30].fill(0);
    bare[0x3c..0x40].fill(0);
    assert_eq!(object::File::parse(&*bare).unwrap().sections().count(), 0);
    let without = GoTable::find(&bare).expect("found by its magic");
    assert_eq!(without.len(), with.len());
    assert!(without.has_inline_trees());
    for f in with.functions().step_by(97) {
        for pc in [f.entry, (f.entry + f.end) / 2] {
            assert_eq!(with.lookup(pc), without.lookup(pc), "{pc:#x}");
        }
    }
}
