//! bcc's (and libbpf-tools') flags on the tools named after theirs: each is
//! accepted with bcc's meaning, or refused here, before clap parses, with a
//! message naming perfkit's equivalent. A flag perfkit also spells but
//! means otherwise is never taken silently. The table is data,
//! crates/perfkit-cli/bcc-flags.tsv; docs/TOOLS.md holds it row by row
//! (perfkit-workspace-tests keeps them in step, and checks that each
//! accepted flag has a test).

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
}
