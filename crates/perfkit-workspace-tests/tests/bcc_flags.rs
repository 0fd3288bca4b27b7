//! The table of bcc's flags (crates/perfkit-cli/bcc-flags.tsv) against the
//! rest of the repository: docs/TOOLS.md holds it row by row, and every
//! flag accepted with bcc's meaning is exercised by a test marked
//! `// bcc-flags: TOOL FLAG...` in the CLI's integration tests (or the
//! kernel matrix's, `xtask/src/vmtest/guest.rs`). The CLI's own unit
//! tests parse the table and check each row against its command line.

use std::path::Path;

/// The table, as the CLI compiles it in.
const TABLE: &str = include_str!("../../perfkit-cli/bcc-flags.tsv");

/// Accepted rows no integration test can exercise on the machines the
/// tests run on, and why (docs/TOOLS.md says so in the row): the
/// markers' check lets these alone be unmarked.
const UNTESTED: &[(&str, &str, &str)] = &[];

/// One row: the columns the checks here read.
#[derive(Debug)]
struct Row<'a> {
    tool: &'a str,
    flag: &'a str,
    meaning: &'a str,
    /// `same`, `refused` or `bare-refused`.
    kind: &'a str,
    /// The example (same) or perfkit's equivalent.
    text: &'a str,
}

impl Row<'_> {
    fn accepted(&self) -> bool {
        self.kind == "same"
    }
}

fn rows() -> Vec<Row<'static>> {
    TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert!((5..=6).contains(&c.len()), "a row of 5 or 6 columns: {l:?}");
            Row { tool: c[0], flag: c[1], meaning: c[3], kind: c[4], text: c.get(5).copied().unwrap_or("") }
        })
        .collect()
}

/// The table as docs/TOOLS.md holds it, one row per flag.
fn markdown_rows() -> Vec<String> {
    rows()
        .iter()
        .map(|e| {
            let untested = UNTESTED.iter().find(|(tool, flag, _)| *tool == e.tool && *flag == e.flag);
            let what = match (e.kind, untested) {
                ("same", Some((.., why))) => format!("accepted, same meaning (untested: {why})"),
                ("same", None) => "accepted, same meaning".to_owned(),
                ("refused", _) => format!("refused: {}", e.text),
                ("bare-refused", _) => format!("refused without a value: {}", e.text),
                (other, _) => panic!("{other:?} is no disposition: {e:?}"),
            };
            format!("| {} | `{}` | {} | {what} |", e.tool, e.flag, e.meaning)
        })
        .collect()
}

/// A marker: (file, line number, tool, flag).
type Marker = (String, usize, String, String);

/// The markers `// bcc-flags: TOOL -x --long` in test sources. A marker
/// sits inside the test function whose assertions would fail if the flag
/// meant something else.
fn markers(sources: &[(String, String)]) -> Result<Vec<Marker>, String> {
    let mut out = Vec::new();
    for (file, text) in sources {
        for (n, line) in text.lines().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("// bcc-flags:") else { continue };
            let mut words = rest.split_whitespace();
            let (Some(tool), Some(first)) = (words.next(), words.next()) else {
                return Err(format!("{file}:{}: a marker names a tool and its flags: {line:?}", n + 1));
            };
            if !line.starts_with(char::is_whitespace) {
                return Err(format!("{file}:{}: a marker goes inside the test function: {line:?}", n + 1));
            }
            for flag in std::iter::once(first).chain(words) {
                out.push((file.clone(), n + 1, tool.to_owned(), flag.to_owned()));
            }
        }
    }
    Ok(out)
}

/// What is wrong with the markers against the table: markers naming no
/// accepted row (stale), and accepted rows no marker names (untested).
fn marker_problems(markers: &[Marker]) -> Vec<String> {
    let rows = rows();
    let mut problems = Vec::new();
    for (file, line, tool, flag) in markers {
        match rows.iter().find(|e| e.tool == tool && e.flag == flag) {
            None => problems.push(format!("{file}:{line}: marker `{tool} {flag}`: no such row in bcc-flags.tsv")),
            Some(e) if !e.accepted() => problems
                .push(format!("{file}:{line}: marker `{tool} {flag}`: the row refuses it, so no test exercises it")),
            Some(_) => {}
        }
    }
    for &(tool, flag, _) in UNTESTED {
        if !rows.iter().any(|e| e.tool == tool && e.flag == flag && e.accepted()) {
            problems.push(format!("UNTESTED names `{tool} {flag}`, which is no accepted row"));
        } else if markers.iter().any(|(_, _, t, f)| t == tool && f == flag) {
            problems.push(format!("UNTESTED names `{tool} {flag}`, which a test is marked to exercise"));
        }
    }
    let untested = |e: &Row| UNTESTED.iter().any(|(tool, flag, _)| *tool == e.tool && *flag == e.flag);
    for e in rows.iter().filter(|e| e.accepted() && !untested(e)) {
        if !markers.iter().any(|(_, _, tool, flag)| tool == e.tool && flag == e.flag) {
            problems.push(format!(
                "{} {} ({}): accepted, and no test is marked `// bcc-flags: {} {}`",
                e.tool, e.flag, e.meaning, e.tool, e.flag
            ));
        }
    }
    problems
}

fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Every accepted row is exercised by an integration test marked
/// `// bcc-flags: TOOL FLAG...`, and every marker names an accepted row.
#[test]
fn every_accepted_bcc_flag_is_exercised_by_a_marked_test() {
    let dir = repository().join("crates/perfkit-cli/tests");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&path).expect("a test source");
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            sources.push((name, text));
        }
    }
    assert!(!sources.is_empty(), "no integration tests in {}", dir.display());
    // The kernel matrix (`cargo xtask vmtest`, run by CI) exercises what
    // this machine's kernel cannot: capable needs kprobes.
    let matrix = repository().join("xtask/src/vmtest/guest.rs");
    let text = std::fs::read_to_string(&matrix).unwrap_or_else(|e| panic!("{}: {e}", matrix.display()));
    sources.push(("xtask/src/vmtest/guest.rs".to_owned(), text));
    sources.sort();
    let markers = markers(&sources).unwrap_or_else(|e| panic!("{e}"));
    let problems = marker_problems(&markers);
    assert!(problems.is_empty(), "{} problems with the bcc flag markers:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn markers_are_read_and_checked_against_the_table() {
    let src = |t: &str| vec![("t.rs".to_owned(), t.to_owned())];
    let m = markers(&src("fn t() {\n    // bcc-flags: runqlat -m -P\n}\n")).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!((m[1].1, m[1].2.as_str(), m[1].3.as_str()), (2, "runqlat", "-P"));
    assert!(markers(&src("// bcc-flags: runqlat -m\n")).is_err(), "outside a function");
    assert!(markers(&src("    // bcc-flags: runqlat\n")).is_err(), "no flag");
    let p = marker_problems(&m);
    assert!(p.iter().any(|p| p.starts_with("runqlat -L ")), "{p:?}");
    assert!(!p.iter().any(|p| p.starts_with("runqlat -m ")), "{p:?}");
    let stale = markers(&src("    // bcc-flags: runqlat -Z\n    // bcc-flags: runqlat -c\n")).unwrap();
    let p = marker_problems(&stale);
    assert!(p.iter().any(|p| p.contains("runqlat -Z`: no such row")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("runqlat -c`: the row refuses it")), "{p:?}");
}

#[test]
fn the_table_is_in_the_docs() {
    let path = repository().join("docs/TOOLS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows = markdown_rows();
    assert!(rows.len() > 200, "{}", rows.len());
    for row in rows {
        assert!(doc.contains(&row), "docs/TOOLS.md lacks the row\n{row}");
    }
}
