//! Which functions' shares changed between two profiles.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Write},
};

use crate::{Frame, Profile, printable};

/// How one function's share of samples changed between two profiles.
///
/// Shares are fractions of each profile's own total, so profiles of
/// different lengths compare directly.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FunctionDelta {
    /// The frame's folded name (with `_[k]`/`_[i]` suffix).
    pub name: String,
    /// Share of samples with the function as the innermost frame, before.
    pub self_before: f64,
    /// The same, after.
    pub self_after: f64,
    /// Share of samples with the function anywhere on the stack, before.
    pub total_before: f64,
    /// The same, after.
    pub total_after: f64,
}

impl FunctionDelta {
    /// Change in self share, after minus before (positive: grew).
    pub fn self_change(&self) -> f64 {
        self.self_after - self.self_before
    }
    /// Change in total share, after minus before.
    pub fn total_change(&self) -> f64 {
        self.total_after - self.total_before
    }
}

#[derive(Default)]
struct Shares {
    self_: HashMap<String, u64>,
    total: HashMap<String, u64>,
    samples: u64,
}

fn shares(profile: &Profile) -> Shares {
    let mut s = Shares::default();
    for stack in &profile.stacks {
        s.samples += stack.count;
        let leaf = stack.frames.last().map_or_else(|| "[no stack]".to_owned(), Frame::folded_name);
        *s.self_.entry(leaf).or_default() += stack.count;
        // A recursive function counts once per sample.
        let on_stack: HashSet<String> = stack.frames.iter().map(Frame::folded_name).collect();
        for name in on_stack {
            *s.total.entry(name).or_default() += stack.count;
        }
    }
    s
}

/// The functions of either profile, those whose self share changed most
/// first (ties: total share, then name).
pub fn diff_functions(before: &Profile, after: &Profile) -> Vec<FunctionDelta> {
    let (b, a) = (shares(before), shares(after));
    let frac = |map: &HashMap<String, u64>, total: u64, name: &str| {
        if total == 0 { 0.0 } else { map.get(name).copied().unwrap_or(0) as f64 / total as f64 }
    };
    let names: HashSet<&String> =
        b.total.keys().chain(a.total.keys()).chain(b.self_.keys()).chain(a.self_.keys()).collect();
    let mut out: Vec<FunctionDelta> = names
        .into_iter()
        .map(|name| FunctionDelta {
            name: name.clone(),
            self_before: frac(&b.self_, b.samples, name),
            self_after: frac(&a.self_, a.samples, name),
            total_before: frac(&b.total, b.samples, name),
            total_after: frac(&a.total, a.samples, name),
        })
        .collect();
    out.sort_by(|x, y| {
        y.self_change()
            .abs()
            .total_cmp(&x.self_change().abs())
            .then_with(|| y.total_change().abs().total_cmp(&x.total_change().abs()))
            .then_with(|| x.name.cmp(&y.name))
    });
    out
}

/// Writes the summary of [`diff_functions`]' `deltas` as a table, the
/// `top` most changed first: self share change, self share before and
/// after, total share after and its change (percentages), and the function
/// (its name made printable). `before_samples` and `after_samples` head it.
pub fn write_diff_summary(
    w: &mut impl Write,
    deltas: &[FunctionDelta],
    before_samples: u64,
    after_samples: u64,
    top: usize,
) -> io::Result<()> {
    writeln!(w, "{before_samples} samples before, {after_samples} after; share of samples, most changed first:")?;
    writeln!(w, "{:>8} {:>8} {:>8}   {:>8} {:>8}  function", "self%", "before", "after", "total%", "change")?;
    for d in deltas.iter().take(top) {
        writeln!(
            w,
            "{:>+8.2} {:>8.2} {:>8.2}   {:>8.2} {:>+8.2}  {}",
            100.0 * d.self_change(),
            100.0 * d.self_before,
            100.0 * d.self_after,
            100.0 * d.total_after,
            100.0 * d.total_change(),
            printable(&d.name)
        )?;
    }
    Ok(())
}

/// `perfkit diff --json`'s document: the two profiles (their paths and
/// sample counts) and every function's shares, most changed first (keys
/// in alphabetical order, as the document has always had them).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct DiffReport<'a> {
    /// The later profile.
    pub after: DiffInput<'a>,
    /// The earlier profile.
    pub before: DiffInput<'a>,
    /// Every function of either profile, from [`diff_functions`].
    pub functions: Vec<DiffRow<'a>>,
}

/// One profile compared, in a [`DiffReport`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct DiffInput<'a> {
    /// Where it was read from, as given.
    pub path: &'a std::path::Path,
    /// Its total sample count.
    pub samples: u64,
}

/// One function's shares, in a [`DiffReport`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct DiffRow<'a> {
    /// The frame's folded name.
    pub function: &'a str,
    /// [`FunctionDelta::self_after`].
    pub self_after: f64,
    /// [`FunctionDelta::self_before`].
    pub self_before: f64,
    /// [`FunctionDelta::total_after`].
    pub total_after: f64,
    /// [`FunctionDelta::total_before`].
    pub total_before: f64,
}

impl<'a> DiffReport<'a> {
    /// The document of `deltas` between the profile at `before` and the
    /// one at `after`.
    pub fn new(
        before: (&'a std::path::Path, &Profile),
        after: (&'a std::path::Path, &Profile),
        deltas: &'a [FunctionDelta],
    ) -> Self {
        let input = |(path, p): (&'a std::path::Path, &Profile)| DiffInput { path, samples: p.total_samples() };
        let row = |d: &'a FunctionDelta| DiffRow {
            function: &d.name,
            self_after: d.self_after,
            self_before: d.self_before,
            total_after: d.total_after,
            total_before: d.total_before,
        };
        Self { after: input(after), before: input(before), functions: deltas.iter().map(row).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_report_keeps_its_keys() {
        let before = profile(&[("app;main;parse", 1), ("app;main;render", 1)]);
        let after = profile(&[("app;main;render", 3)]);
        let deltas = diff_functions(&before, &after);
        let doc =
            DiffReport::new((std::path::Path::new("a.folded"), &before), (std::path::Path::new("b"), &after), &deltas);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["before"], serde_json::json!({"path": "a.folded", "samples": 2}));
        assert_eq!(json["after"]["samples"], 3);
        // A tie of changes: by name.
        assert_eq!(json["functions"][0]["function"], "parse");
        let render = &json["functions"][1];
        assert_eq!(render["function"], "render");
        assert_eq!((render["self_before"].as_f64(), render["self_after"].as_f64()), (Some(0.5), Some(1.0)));
        let text = serde_json::to_string(&doc).unwrap();
        assert!(text.starts_with("{\"after\":{\"path\":\"b\",\"samples\":3},\"before\":"), "{text}");
        assert!(text.contains("{\"function\":\"render\",\"self_after\":1.0,\"self_before\":0.5,\"total_after\":1.0,\"total_before\":0.5}"), "{text}");
    }

    fn profile(lines: &[(&str, u64)]) -> Profile {
        Profile::from_folded(lines.iter().map(|(s, c)| (s.to_string(), *c)))
    }

    #[test]
    fn shares_are_relative_to_each_total_and_sorted_by_change() {
        // Before: parse 50 %, render 50 %. After (twice as long): parse 25 %,
        // render 75 %.
        let before = profile(&[("app;main;parse", 50), ("app;main;render", 50)]);
        let after = profile(&[("app;main;parse", 50), ("app;main;render", 150)]);
        let d = diff_functions(&before, &after);
        let get = |n: &str| d.iter().find(|f| f.name == n).unwrap();
        assert!((get("render").self_change() - 0.25).abs() < 1e-9);
        assert!((get("parse").self_change() + 0.25).abs() < 1e-9);
        assert_eq!(get("main").total_before, 1.0);
        assert_eq!(get("main").self_change(), 0.0);
        assert_eq!(d.last().unwrap().name, "main");
    }

    #[test]
    fn recursion_counts_once_and_new_functions_start_at_zero() {
        let before = profile(&[("t;f;f;f", 4)]);
        let after = profile(&[("t;f;g", 2), ("t;f", 2)]);
        let d = diff_functions(&before, &after);
        let f = d.iter().find(|x| x.name == "f").unwrap();
        assert_eq!((f.total_before, f.total_after), (1.0, 1.0));
        let g = d.iter().find(|x| x.name == "g").unwrap();
        assert_eq!((g.self_before, g.self_after), (0.0, 0.5));
    }

    #[test]
    fn the_summary_lists_the_top_changes_as_percentages() {
        let before = profile(&[("app;main;parse", 50), ("app;main;render", 50)]);
        let after = profile(&[("app;main;parse", 50), ("app;main;render\u{1b}[2J", 150)]);
        let mut out = Vec::new();
        write_diff_summary(&mut out, &diff_functions(&before, &after), 100, 200, 2).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "100 samples before, 200 after; share of samples, most changed first:");
        assert_eq!(lines[2], "  +75.00     0.00    75.00      75.00   +75.00  render\\x1b[2J");
        assert_eq!(lines[3], "  -50.00    50.00     0.00       0.00   -50.00  render");
    }
}
