//! Reading the guest's serial console: its result lines, and the table of
//! kernels by tests.

use std::collections::BTreeMap;

/// A line of the suite's output that the host understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `vmtest: booted Linux RELEASE` (printed by /init).
    Booted(String),
    /// `vmtest: PASS NAME (SECS s)`.
    Pass(String),
    /// `vmtest: FAIL NAME: REASON`.
    Fail(String, String),
    /// `vmtest: N passed, N failed`, the suite's last line.
    Summary(usize, usize),
}

/// Parses a line of the suite's output (already cleaned of control
/// characters); `None` for any other line.
pub fn parse_line(line: &str) -> Option<Line> {
    let rest = line.trim().strip_prefix("vmtest: ")?;
    if let Some(release) = rest.strip_prefix("booted Linux ") {
        return Some(Line::Booted(release.trim().to_owned()));
    }
    if let Some(pass) = rest.strip_prefix("PASS ") {
        let name = pass.split_whitespace().next()?;
        return Some(Line::Pass(name.to_owned()));
    }
    if let Some(fail) = rest.strip_prefix("FAIL ") {
        let (name, reason) = fail.split_once(": ").unwrap_or((fail, ""));
        if name.is_empty() || name.contains(' ') {
            return None;
        }
        return Some(Line::Fail(name.to_owned(), reason.trim().to_owned()));
    }
    let (passed, failed) = rest.split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some(Line::Summary(passed.parse().ok()?, failed.parse().ok()?))
}

/// The lines of one line of console output: the BIOS leaves its last line
/// unfinished and the kernel resets the terminal (`ESC c`) before its
/// first, so a reset also ends a line. Each is [`clean`]ed; empty ones are
/// dropped.
pub fn console_lines(raw: &str) -> Vec<String> {
    raw.split("\x1bc").map(clean).filter(|l| !l.is_empty()).collect()
}

/// A console line with `\r`, escape sequences (the BIOS clears the screen)
/// and other control characters removed.
pub fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI (ESC [): parameters and intermediates up to a final
            // byte. Other escapes (ESC c) are two characters.
            '\x1b' => {
                if chars.next() == Some('[') {
                    for n in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&n) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim_end().to_owned()
}

/// What became of one test on one kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
}

/// One kernel's run, as read from its console.
#[derive(Debug, Default)]
pub struct KernelRun {
    /// `uname -r`, once /init said it booted.
    pub booted: Option<String>,
    /// The results, by test name.
    pub results: BTreeMap<String, Outcome>,
    /// The suite's own summary (passed, failed), when it finished.
    pub summary: Option<(usize, usize)>,
    /// What went wrong with the VM itself (timeout, QEMU error).
    pub problem: Option<String>,
}

impl KernelRun {
    /// Takes in one cleaned console line.
    pub fn feed(&mut self, line: &str) {
        match parse_line(line) {
            Some(Line::Booted(r)) => self.booted = Some(r),
            Some(Line::Pass(n)) => {
                self.results.insert(n, Outcome::Pass);
            }
            Some(Line::Fail(n, r)) => {
                self.results.insert(n, Outcome::Fail(r));
            }
            Some(Line::Summary(p, f)) => self.summary = Some((p, f)),
            None => {}
        }
    }

    /// (passed, failed) over `tests`; a test without a result counts as
    /// failed.
    pub fn counts(&self, tests: &[&str]) -> (usize, usize) {
        let passed = tests.iter().filter(|t| self.results.get(**t) == Some(&Outcome::Pass)).count();
        (passed, tests.len() - passed)
    }

    /// Whether this kernel passed everything: booted, finished, and every
    /// test passed.
    pub fn ok(&self, tests: &[&str]) -> bool {
        self.booted.is_some() && self.summary.is_some() && self.problem.is_none() && self.counts(tests).1 == 0
    }

    /// The state of the run in a few words, for the table.
    pub fn state(&self) -> &'static str {
        match (&self.booted, &self.summary, &self.problem) {
            (None, _, _) => "no boot",
            (Some(_), None, _) => "unfinished",
            (Some(_), Some(_), Some(_)) => "vm error",
            (Some(_), Some(_), None) => "finished",
        }
    }
}

/// The table: one row per test, one column per kernel; PASS, FAIL, or
/// `-` (no result: the kernel did not boot or the suite did not get
/// there), and a last row with the state of each run.
pub fn table(tests: &[&str], runs: &[(&str, &KernelRun)]) -> String {
    let first = tests.iter().map(|t| t.len()).max().unwrap_or(0).max("suite".len());
    let widths: Vec<usize> = runs.iter().map(|(k, _)| k.len().max("unfinished".len())).collect();
    let mut out = format!("{:first$}", "test");
    for ((k, _), w) in runs.iter().zip(&widths) {
        out.push_str(&format!("  {k:w$}"));
    }
    out.push('\n');
    for t in tests {
        out.push_str(&format!("{t:first$}"));
        for ((_, run), w) in runs.iter().zip(&widths) {
            let cell = match run.results.get(*t) {
                Some(Outcome::Pass) => "PASS",
                Some(Outcome::Fail(_)) => "FAIL",
                None => "-",
            };
            out.push_str(&format!("  {cell:w$}"));
        }
        out.push('\n');
    }
    out.push_str(&format!("{:first$}", "suite"));
    for ((_, run), w) in runs.iter().zip(&widths) {
        out.push_str(&format!("  {:w$}", run.state()));
    }
    out.push('\n');
    out.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_result_lines() {
        assert_eq!(parse_line("vmtest: PASS profile_pid (4.2s)"), Some(Line::Pass("profile_pid".into())));
        assert_eq!(
            parse_line("vmtest: FAIL offcpu: expected 1.6..2.6 s, saw 0 us: a: b (3.0s)"),
            Some(Line::Fail("offcpu".into(), "expected 1.6..2.6 s, saw 0 us: a: b (3.0s)".into()))
        );
        assert_eq!(parse_line("  vmtest: 9 passed, 2 failed  "), Some(Line::Summary(9, 2)));
        assert_eq!(
            parse_line("vmtest: booted Linux 6.1.0-57-cloud-amd64"),
            Some(Line::Booted("6.1.0-57-cloud-amd64".into()))
        );
        for other in [
            "[6.1] vmtest: PASS x (1s)",
            "vmtest: running 11 test(s) on Linux 6.1.0",
            "vmtest: x passed, 2 failed",
            "vmtest: 1 passed, 2 failed, 3 skipped",
            "    | vmtest: FAIL inner: quoted stderr",
            "vmtest: FAIL : no name",
            "PASS profile_pid (1s)",
            "",
        ] {
            assert_eq!(parse_line(other), None, "{other:?}");
        }
    }

    #[test]
    fn splits_at_terminal_resets() {
        let raw = "Booting from ROM..\x1bc\x1b[?7l\x1b[2Jvmtest: booted Linux 6.1.0-57-cloud-amd64\r\n";
        assert_eq!(console_lines(raw), ["Booting from ROM..", "vmtest: booted Linux 6.1.0-57-cloud-amd64"]);
        assert_eq!(console_lines("\r\n"), Vec::<String>::new());
    }

    #[test]
    fn cleans_console_noise() {
        assert_eq!(clean("\x1bc\x1b[?7l\x1b[2Jvmtest: PASS a (1s)\r"), "vmtest: PASS a (1s)");
        assert_eq!(clean("\x1b[0mSeaBIOS\tx\r\n"), "SeaBIOS x");
    }

    #[test]
    fn counts_missing_results_as_failed_and_draws_the_table() {
        let tests = ["profile_pid", "offcpu", "tcplife"];
        let mut done = KernelRun::default();
        for l in [
            "vmtest: booted Linux 6.1.0-57-cloud-amd64",
            "vmtest: PASS profile_pid (4.0s)",
            "vmtest: FAIL offcpu: expected x, saw y (2.0s)",
            "vmtest: PASS tcplife (1.0s)",
            "vmtest: 2 passed, 1 failed",
        ] {
            done.feed(l);
        }
        assert_eq!(done.counts(&tests), (2, 1));
        assert!(!done.ok(&tests));
        assert_eq!(done.state(), "finished");
        let mut cut = KernelRun::default();
        cut.feed("vmtest: booted Linux 5.10.0-46-cloud-amd64");
        cut.feed("vmtest: PASS profile_pid (4.0s)");
        cut.problem = Some("timed out".into());
        assert_eq!(cut.counts(&tests), (1, 2));
        assert_eq!(cut.state(), "unfinished");
        let dead = KernelRun::default();
        assert_eq!(dead.state(), "no boot");
        let text = table(&tests, &[("5.10", &cut), ("6.1", &done), ("6.12", &dead)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["test", "5.10", "6.1", "6.12"]);
        assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["profile_pid", "PASS", "PASS", "-"]);
        assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["offcpu", "-", "FAIL", "-"]);
        assert_eq!(lines[4].split_whitespace().collect::<Vec<_>>(), ["suite", "unfinished", "finished", "no", "boot"]);
        let mut all = KernelRun::default();
        for l in ["vmtest: booted Linux 6.12", "vmtest: PASS profile_pid (1s)", "vmtest: 1 passed, 0 failed"] {
            all.feed(l);
        }
        assert!(all.ok(&["profile_pid"]));
    }
}
