//! bcc's (and libbpf-tools') flags on the tools named after theirs: each is
//! accepted with bcc's meaning, or refused here, before clap parses, with a
//! message naming perfkit's equivalent. A flag perfkit also spells but
//! means otherwise is never taken silently. The table is data,
//! crates/perfkit-cli/bcc-flags.tsv; docs/TOOLS.md holds it row by row (a
//! test keeps them in step).

use std::ffi::OsString;

/// What perfkit does with a bcc flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted, with bcc's meaning; the example parses.
    Same(&'static str),
    /// Refused, naming perfkit's equivalent.
    Refused(&'static str),
    /// Refused when given bare (bcc's flag takes no value; perfkit's flag
    /// of that letter takes one, which is accepted).
    BareRefused(&'static str),
}

/// One flag of a bcc tool.
#[derive(Clone, Copy, Debug)]
pub struct BccFlag {
    /// The perfkit command (bcc's tool name, `offcpu` for offcputime).
    pub tool: &'static str,
    /// The flag as bcc spells it (`-T`, `--max-args`).
    pub flag: &'static str,
    /// Whether bcc's flag takes a value.
    pub takes_value: bool,
    /// What it means in bcc.
    pub meaning: &'static str,
    /// What perfkit does with it.
    pub disposition: Disposition,
}

use Disposition::{BareRefused, Refused, Same};

/// The table, one flag per line (crates/perfkit-cli/bcc-flags.tsv says how).
const TABLE: &str = include_str!("../bcc-flags.tsv");

/// Reads one row of the table: `tool, flag, value|bare, meaning,
/// same|refused|bare-refused, example or equivalent`, separated by tabs.
fn parse_row(line: &'static str) -> Result<BccFlag, String> {
    let mut cols = line.split('\t');
    let mut next = |what: &str| cols.next().ok_or_else(|| format!("no {what} in the bcc flag row {line:?}"));
    let (tool, flag, value, meaning, kind) =
        (next("tool")?, next("flag")?, next("value")?, next("meaning")?, next("disposition")?);
    let text = cols.next();
    if cols.next().is_some() {
        return Err(format!("more than six columns in the bcc flag row {line:?}"));
    }
    let takes_value = match value {
        "value" => true,
        "bare" => false,
        other => return Err(format!("{other:?} is neither value nor bare in the bcc flag row {line:?}")),
    };
    let disposition = match (kind, text) {
        ("same", example) => Same(example.unwrap_or("")),
        ("refused", Some(eq)) if !eq.is_empty() => Refused(eq),
        ("bare-refused", Some(eq)) if !eq.is_empty() => BareRefused(eq),
        _ => return Err(format!("{kind:?} is not a disposition with its text in the bcc flag row {line:?}")),
    };
    if tool.is_empty() || flag.is_empty() || meaning.is_empty() {
        return Err(format!("an empty column in the bcc flag row {line:?}"));
    }
    Ok(BccFlag { tool, flag, takes_value, meaning, disposition })
}

/// Reads the table, skipping blank lines and `#` comments.
fn parse_table(table: &'static str) -> Result<Vec<BccFlag>, String> {
    table.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).map(parse_row).collect()
}

/// Every flag of bcc's and libbpf-tools' versions of perfkit's tools.
fn flags() -> &'static [BccFlag] {
    static FLAGS: std::sync::LazyLock<Vec<BccFlag>> = std::sync::LazyLock::new(|| {
        // The table is compiled in, and a unit test parses every row.
        parse_table(TABLE).unwrap_or_else(|e| panic!("bcc-flags.tsv: {e}"))
    });
    &FLAGS
}

/// Accepted rows no integration test can exercise on the machines the
/// tests run on, and why (docs/TOOLS.md says so in the row): the
/// markers' check lets these alone be unmarked.
#[cfg(test)]
const UNTESTED: &[(&str, &str, &str)] = &[];

/// Options of perfkit's wakeuptime that take a value.
const WAKEUPTIME_VALUES: &[&str] = &[
    "-p",
    "--pid",
    "--cgroup",
    "-d",
    "--duration",
    "-m",
    "--min-block-time",
    "-M",
    "--max-block-time",
    "--stack-storage-size",
    "--max-memory",
];

/// Options of perfkit's offcpu that take a value (their values are not the
/// command).
const OFFCPU_VALUES: &[&str] = &[
    "-p",
    "--pid",
    "-t",
    "--tid",
    "--cgroup",
    "-d",
    "--duration",
    "-o",
    "--output",
    "-f",
    "--format",
    "--folded",
    "--title",
    "--top",
    "-m",
    "--min-block",
    "-M",
    "--max-block",
    "--state",
    "--unwind",
    "--stack-map-size",
    "--counts-map-size",
    "--table-rows",
    "--max-memory",
];

fn refusal(e: &BccFlag, equivalent: &str) -> String {
    format!(
        "perfkit {}: {} is bcc's \"{}\", which perfkit does not take; instead: {equivalent} (docs/TOOLS.md lists bcc's flags)",
        e.tool, e.flag, e.meaning
    )
}

/// Refuses a bcc flag perfkit does not take with bcc's meaning, naming
/// perfkit's equivalent. `args` is the whole command line.
pub fn check(args: &[OsString]) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    // The command: the first word after the global options.
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--max-memory" {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    let Some(tool) = args.get(i).map(String::as_str) else { return Ok(()) };
    let flags: Vec<&BccFlag> = flags().iter().filter(|e| e.tool == tool).collect();
    if flags.is_empty() {
        return Ok(());
    }
    let rest = &args[i + 1..];
    let mut skip_value = false;
    for (k, a) in rest.iter().enumerate() {
        if a == "--" {
            break;
        }
        if skip_value {
            skip_value = false;
            continue;
        }
        let next = rest.get(k + 1);
        for e in &flags {
            let matches = if e.flag.starts_with("--") {
                a == e.flag || a.strip_prefix(e.flag).is_some_and(|r| r.starts_with('='))
            } else if e.flag.starts_with('-') {
                a == e.flag || (e.takes_value && a.starts_with(e.flag) && !a.starts_with("--"))
            } else {
                false
            };
            match e.disposition {
                Refused(eq) if matches => return Err(refusal(e, eq)),
                BareRefused(eq) if a == e.flag && next.is_none_or(|n| n.starts_with('-')) => {
                    return Err(refusal(e, eq));
                }
                _ => {}
            }
        }
        let values = match tool {
            "offcpu" => Some(OFFCPU_VALUES),
            "wakeuptime" => Some(WAKEUPTIME_VALUES),
            _ => None,
        };
        if let Some(values) = values {
            if values.contains(&a.as_str()) {
                skip_value = true;
            } else if !a.starts_with('-') {
                // The first word that is not an option starts the command:
                // bcc's positional DURATION would be run as one.
                if a.parse::<f64>().is_ok() {
                    let e = flags.iter().find(|e| e.flag == "DURATION").expect("the DURATION row");
                    if let Refused(eq) = e.disposition {
                        return Err(refusal(e, eq));
                    }
                }
                break;
            }
        }
    }
    Ok(())
}

/// The table as docs/TOOLS.md holds it, one row per flag.
#[cfg(test)]
fn markdown_rows() -> Vec<String> {
    flags()
        .iter()
        .map(|e| {
            let untested = UNTESTED.iter().find(|(tool, flag, _)| *tool == e.tool && *flag == e.flag);
            let what = match (e.disposition, untested) {
                (Same(_), Some((.., why))) => format!("accepted, same meaning (untested: {why})"),
                (Same(_), None) => "accepted, same meaning".to_owned(),
                (Refused(eq), _) => format!("refused: {eq}"),
                (BareRefused(eq), _) => format!("refused without a value: {eq}"),
            };
            format!("| {} | `{}` | {} | {what} |", e.tool, e.flag, e.meaning)
        })
        .collect()
}

/// The markers `// bcc-flags: TOOL -x --long` in the integration tests'
/// sources: (file, line number, tool, flag). A marker sits inside the test
/// function whose assertions would fail if the flag meant something else.
#[cfg(test)]
fn markers(sources: &[(String, String)]) -> Result<Vec<(String, usize, String, String)>, String> {
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
#[cfg(test)]
fn marker_problems(markers: &[(String, usize, String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, line, tool, flag) in markers {
        match flags().iter().find(|e| e.tool == tool && e.flag == flag) {
            None => problems.push(format!("{file}:{line}: marker `{tool} {flag}`: no such row in bcc-flags.tsv")),
            Some(e) if !matches!(e.disposition, Same(_)) => problems
                .push(format!("{file}:{line}: marker `{tool} {flag}`: the row refuses it, so no test exercises it")),
            Some(_) => {}
        }
    }
    for &(tool, flag, _) in UNTESTED {
        if !flags().iter().any(|e| e.tool == tool && e.flag == flag && matches!(e.disposition, Same(_))) {
            problems.push(format!("UNTESTED names `{tool} {flag}`, which is no accepted row"));
        } else if markers.iter().any(|(_, _, t, f)| t == tool && f == flag) {
            problems.push(format!("UNTESTED names `{tool} {flag}`, which a test is marked to exercise"));
        }
    }
    let untested = |e: &BccFlag| UNTESTED.iter().any(|(tool, flag, _)| *tool == e.tool && *flag == e.flag);
    for e in flags().iter().filter(|e| matches!(e.disposition, Same(_)) && !untested(e)) {
        if !markers.iter().any(|(_, _, tool, flag)| tool == e.tool && flag == e.flag) {
            problems.push(format!(
                "{} {} ({}): accepted, and no test is marked `// bcc-flags: {} {}`",
                e.tool, e.flag, e.meaning, e.tool, e.flag
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("perfkit").chain(words.iter().copied()).map(OsString::from).collect()
    }

    /// Every flag of the table, as a bcc user types it.
    #[test]
    fn every_bcc_flag_is_taken_with_its_meaning_or_refused_by_name() {
        for e in flags() {
            match e.disposition {
                Same(example) => {
                    let mut words = vec![e.tool, e.flag];
                    if !example.is_empty() {
                        words.push(example);
                    }
                    assert!(check(&argv(&words)).is_ok(), "{e:?}");
                    if let Err(err) = crate::Cli::try_parse_from(argv(&words)) {
                        panic!("{words:?} does not parse: {err}");
                    }
                }
                Refused(eq) => {
                    let mut words = vec![e.tool];
                    if e.flag != "DURATION" {
                        words.push(e.flag);
                    }
                    if e.takes_value {
                        words.push("5");
                    }
                    let err = check(&argv(&words)).expect_err(e.flag);
                    assert!(err.contains(e.flag) && err.contains(eq), "{err}");
                    // The refusal comes first: clap would have taken some
                    // of these with another meaning.
                }
                BareRefused(eq) => {
                    let err = check(&argv(&[e.tool, e.flag, "-p", "1"])).expect_err(e.flag);
                    assert!(err.contains(eq), "{err}");
                    assert!(check(&argv(&[e.tool, e.flag])).is_err());
                    // With a value, perfkit's own flag of that letter.
                    assert!(check(&argv(&[e.tool, e.flag, "folded"])).is_ok());
                }
            }
        }
    }

    #[test]
    fn refusals_stop_at_the_command_and_skip_option_values() {
        // After `--`, the command's own flags.
        assert!(check(&argv(&["execsnoop", "--", "ls", "-l"])).is_ok());
        assert!(check(&argv(&["-v", "execsnoop", "--max-args", "5"])).is_err());
        assert!(check(&argv(&["--max-memory", "1G", "tcplife", "-s"])).is_err());
        // offcpu: a number after -d is its value, a bare number is bcc's
        // DURATION, a word is the command.
        assert!(check(&argv(&["offcpu", "-d", "5", "-p", "1"])).is_ok());
        assert!(check(&argv(&["offcpu", "5"])).is_err());
        assert!(check(&argv(&["offcpu", "sleep", "5"])).is_ok());
        // wakeuptime: bcc's positional DURATION is refused, -d is taken.
        assert!(check(&argv(&["wakeuptime", "5"])).is_err());
        assert!(check(&argv(&["wakeuptime", "-m", "5", "-d", "5"])).is_ok());
        assert!(check(&argv(&["profile", "-K"])).is_ok(), "not a bcc tool");
        // syscount -T is the top count, not timestamps and an interval.
        let cli = crate::Cli::try_parse_from(argv(&["syscount", "-T", "5"])).unwrap();
        assert!(format!("{cli:?}").contains("top: 5"), "{cli:?}");
    }

    /// Every accepted row is exercised by an integration test marked
    /// `// bcc-flags: TOOL FLAG...`, and every marker names an accepted row.
    #[test]
    fn every_accepted_bcc_flag_is_exercised_by_a_marked_test() {
        // The integration tests' sources, read at run time: a published
        // package has its tests/ but the check belongs to the repository.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut sources = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a test source");
                    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    sources.push((name, text));
                }
            }
        }
        if sources.is_empty() {
            assert!(
                std::env::var("PERFKIT_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "no integration tests in {}; strict mode checks the markers in them",
                dir.display()
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "perfkit-test: skipped every_accepted_bcc_flag_is_exercised_by_a_marked_test: no tests/*.rs beside this package; `cargo xtask test` runs it"
            );
            return;
        }
        // The kernel matrix (`cargo xtask vmtest`, run by CI) exercises
        // what this machine's kernel cannot: capable needs kprobes.
        let matrix = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/src/vmtest/guest.rs");
        if let Ok(text) = std::fs::read_to_string(&matrix) {
            sources.push(("xtask/src/vmtest/guest.rs".to_owned(), text));
        }
        sources.sort();
        let markers = markers(&sources).unwrap_or_else(|e| panic!("{e}"));
        let problems = marker_problems(&markers);
        assert!(problems.is_empty(), "{} problems with the bcc flag markers:\n{}", problems.len(), problems.join("\n"));
    }

    #[test]
    fn every_row_of_the_table_parses() {
        let rows = parse_table(TABLE).unwrap_or_else(|e| panic!("{e}"));
        let lines = TABLE.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
        assert_eq!(rows.len(), lines);
        assert!(rows.len() > 200, "{}", rows.len());
        let mut seen = std::collections::HashSet::new();
        for e in &rows {
            assert!(seen.insert((e.tool, e.flag)), "{} {} twice", e.tool, e.flag);
        }
        let e = rows.iter().find(|e| e.tool == "runqlat" && e.flag == "-c").unwrap();
        assert_eq!(e.disposition, Refused("--cgroup PATH"));
        assert!(e.takes_value);
        let e = rows.iter().find(|e| e.tool == "offcpu" && e.flag == "-d").unwrap();
        assert!(matches!(e.disposition, BareRefused(eq) if eq.ends_with("perfkit's -d is DURATION")));
        let e = rows.iter().find(|e| e.tool == "runqlat" && e.flag == "-m").unwrap();
        assert_eq!((e.disposition, e.takes_value), (Same(""), false));
    }

    #[test]
    fn malformed_rows_are_refused() {
        assert!(parse_row("t\t-x\tbare\tmeaning\tsame").is_ok());
        assert!(parse_row("t\t-x\tbare\tmeaning\tsame\t1").is_ok());
        assert!(parse_row("t\t-x\tbare\tmeaning").is_err(), "no disposition");
        assert!(parse_row("t\t-x\tmaybe\tmeaning\tsame").is_err(), "value or bare");
        assert!(parse_row("t\t-x\tbare\tmeaning\trefused").is_err(), "no equivalent");
        assert!(parse_row("t\t-x\tbare\tmeaning\tbare-refused\t").is_err(), "empty equivalent");
        assert!(parse_row("t\t-x\tbare\tmeaning\tignored\tx").is_err(), "unknown disposition");
        assert!(parse_row("t\t-x\tbare\tmeaning\tsame\t1\textra").is_err(), "seven columns");
        assert!(parse_row("\t-x\tbare\tmeaning\tsame").is_err(), "no tool");
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
        // The repository's docs, read at run time: a published package has
        // no docs/, and its tests must build from the package.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/TOOLS.md");
        let Ok(doc) = std::fs::read_to_string(&path) else {
            assert!(
                std::env::var("PERFKIT_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "{} is missing; strict mode checks the table against it",
                path.display()
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "perfkit-test: skipped the_table_is_in_the_docs: no docs/TOOLS.md beside this package; `cargo xtask test` runs it"
            );
            return;
        };
        for row in markdown_rows() {
            assert!(doc.contains(&row), "docs/TOOLS.md lacks the row\n{row}");
        }
    }
}
