//! `perfkit flamegraph`, `perfkit diff`, `perfkit convert`, and
//! `perfkit profile --format`.

use std::{
    collections::HashMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::util::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Runs perfkit with `stdin` as standard input.
fn run_with_stdin(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child =
        perfkit().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("ran: perfkit {args:?}\nstatus: {}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// Compares `actual` with the golden file `tests/data/NAME`; with
/// `PERFKIT_BLESS=1` rewrites the golden file instead.
fn golden(name: &str, actual: &str) {
    let path = data(name);
    if std::env::var_os("PERFKIT_BLESS").is_some_and(|v| v == "1") {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (PERFKIT_BLESS=1 creates it)", path.display()));
    assert!(expected == actual, "{name} differs from the golden file (PERFKIT_BLESS=1 rewrites it):\n{actual}");
}

fn convert_to_stdout(input: &Path, format: &str, extra: &[&str]) -> String {
    let out = run(perfkit().args(["convert", "-f", format, "-o", "-"]).args(extra).arg(input));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn perf_script_capture_collapses_to_the_golden_folded_stacks() {
    let folded = convert_to_stdout(&data("hotspots.perf-script"), "folded", &[]);
    golden("hotspots.perf-script.folded", &folded);
    // The known answer of the workload: 3:1 between hot_a and hot_b.
    let lines = parse_lines(&folded);
    let (a, _) = leaf_samples(&lines, "hot_a", ";main;parent_a;hot_a");
    let (b, _) = leaf_samples(&lines, "hot_b", ";main;parent_b;hot_b");
    let ratio = a as f64 / b as f64;
    assert!((2.4..=3.6).contains(&ratio), "{a}:{b}");

    let per_thread = convert_to_stdout(&data("hotspots.perf-script"), "folded", &["--roots", "thread"]);
    golden("hotspots.perf-script.per-thread.folded", &per_thread);
}

#[test]
fn folded_converts_to_the_golden_json_and_back() {
    let json = convert_to_stdout(&data("perfkit.folded"), "json", &[]);
    golden("perfkit.folded.json", &json);
    let dir = scratch_dir();
    let json_path = dir.path().join("p.json");
    fs::write(&json_path, &json).unwrap();
    let back = convert_to_stdout(&json_path, "folded", &[]);
    assert_eq!(parse_sorted(&back), parse_sorted(&fs::read_to_string(data("perfkit.folded")).unwrap()));
}

#[test]
fn pprof_round_trips_to_the_same_folded_stacks() {
    let dir = scratch_dir();
    let pb = dir.path().join("p.pb.gz");
    let out = run(perfkit().args(["convert", "-f", "pprof", "-o"]).arg(&pb).arg(data("perfkit.folded")));
    assert!(out.status.success());
    assert_eq!(&fs::read(&pb).unwrap()[..2], &[0x1f, 0x8b], "gzipped");
    let back = convert_to_stdout(&pb, "folded", &[]);
    assert_eq!(parse_sorted(&back), parse_sorted(&fs::read_to_string(data("perfkit.folded")).unwrap()));
}

fn parse_lines(folded: &str) -> Vec<(String, u64)> {
    folded
        .lines()
        .map(|l| {
            let (s, c) = l.rsplit_once(' ').unwrap();
            (s.to_owned(), c.parse().unwrap())
        })
        .collect()
}

fn parse_sorted(folded: &str) -> Vec<(String, u64)> {
    let mut v = parse_lines(folded);
    v.sort();
    v
}

/// Self counts per leaf function of folded stacks.
fn self_counts(folded: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for (stack, count) in parse_lines(folded) {
        *m.entry(stack.rsplit(';').next().unwrap().to_owned()).or_default() += count;
    }
    m
}

#[test]
fn go_tool_pprof_reads_the_profile_and_agrees_on_top_functions() {
    if !tools(&["go"]) {
        return;
    }
    let dir = scratch_dir();
    let pb = dir.path().join("p.pb.gz");
    let input = data("perfkit.folded");
    let out = run(perfkit().args(["convert", "-f", "pprof", "-o"]).arg(&pb).arg(&input));
    assert!(out.status.success());
    let out = run(Command::new("go")
        .args(["tool", "pprof", "-top", "-nodecount=1000", "-sample_index=samples"])
        .arg(&pb)
        .env("HOME", dir.path())
        .env("GOFLAGS", "-mod=mod")
        .env("PPROF_TMPDIR", dir.path()));
    assert!(out.status.success(), "go tool pprof failed: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    // Rows: flat flat% sum% cum cum% name (the name may contain spaces).
    let mut flat: HashMap<String, u64> = HashMap::new();
    for line in text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 6 {
            flat.insert(cols[5..].join(" "), cols[0].parse().unwrap_or_else(|_| panic!("row {line:?}")));
        }
    }
    // pprof represents inlining natively, and shows an inlined function as
    // `name (inline)` where the folded format writes `name_[i]`.
    let expected: HashMap<String, u64> = self_counts(&fs::read_to_string(&input).unwrap())
        .into_iter()
        .map(|(name, count)| (name.strip_suffix("_[i]").map(|n| format!("{n} (inline)")).unwrap_or(name), count))
        .collect();
    assert!(expected.contains_key("inner_spin (inline)"), "the input has an inlined frame");
    for (name, count) in &expected {
        assert_eq!(flat.get(name), Some(count), "flat count of {name} in:\n{text}");
    }
    let total_flat: u64 = flat.values().sum();
    assert_eq!(total_flat, expected.values().sum::<u64>(), "{text}");
    // The top function by self time is the same.
    let top = expected.iter().max_by_key(|(_, c)| **c).unwrap().0;
    let first_row = text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).nth(1).unwrap();
    assert!(first_row.ends_with(top.as_str()), "top row {first_row:?}, expected {top}");
}

#[test]
fn flamegraph_reads_stdin_and_detects_perf_script() {
    let input = fs::read(data("hotspots.perf-script")).unwrap();
    let out = run_with_stdin(&["flamegraph", "--title", "from perf", "--count-name", "ns"], &input);
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    let doc_opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(&svg, doc_opts).expect("well-formed SVG");
    let titles: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("title")).filter_map(|n| n.text()).collect();
    assert!(titles.iter().any(|t| t.starts_with("hot_a (") && t.contains(" ns,")), "{titles:?}");
    assert!(svg.contains("from perf"));
}

#[test]
fn flamegraph_options_reach_the_svg() {
    let dir = scratch_dir();
    let svg = dir.path().join("f.svg");
    let out = run(perfkit()
        .args(["flamegraph", "--icicle", "--colors", "blue", "--reverse", "--width", "800", "-o"])
        .arg(&svg)
        .arg(data("perfkit.folded")));
    assert!(out.status.success());
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.contains("width=\"800\""), "image width");
    assert!(text.contains("Flame graph: "), "default title names the input");
    // Reversed: the leaf functions are now the frames right above the roots
    // (thread names are roots, so leaves sit at depth 1).
    assert!(text.contains("<title>hot_a ("), "{text}");
    // Blue palette: every frame fill has more blue than red.
    let fills: Vec<&str> = text.match_indices("fill=\"rgb(").map(|(i, _)| &text[i + 10..]).collect();
    let blueish = fills
        .iter()
        .map(|f| f[..f.find(')').unwrap()].split(',').map(|v| v.trim().parse::<u32>().unwrap()).collect::<Vec<_>>())
        .filter(|c| c[2] > c[0])
        .count();
    assert!(blueish * 10 >= fills.len() * 9, "{blueish} of {} fills are blue", fills.len());
}

#[test]
fn flamegraph_merges_several_inputs() {
    let dir = scratch_dir();
    let a = dir.path().join("a.folded");
    let b = dir.path().join("b.folded");
    fs::write(&a, "app;main;x 3\n").unwrap();
    fs::write(&b, "app;main;x 2\napp;main;y 5\n").unwrap();
    let out = run(perfkit().args(["flamegraph", "-o", "-"]).arg(&a).arg(&b));
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.contains("<title>x (5 samples, 50.00%)</title>"), "{svg}");
}

#[test]
fn malformed_and_missing_inputs_are_clear_errors_with_no_output() {
    let dir = scratch_dir();
    let bad = dir.path().join("bad.folded");
    let mut text = "app;main 1\n".repeat(60);
    text.push_str("app;main x\n");
    fs::write(&bad, &text).unwrap();
    let out_dir = scratch_dir();
    for (args, expect) in [
        (vec!["flamegraph".into(), bad.display().to_string()], "line 61"),
        (vec!["flamegraph".into(), "/nonexistent/p.folded".into()], "cannot read /nonexistent/p.folded"),
        (vec!["convert".into(), "-f".into(), "pprof".into(), bad.display().to_string()], "line 61"),
        (vec!["diff".into(), bad.display().to_string(), bad.display().to_string()], "line 61"),
    ] {
        let out = run(perfkit().args(&args).arg("-o").arg(out_dir.path().join("out")));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(expect) && err.starts_with("perfkit: error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_no_output(out_dir.path());
    }
    let out = run_with_stdin(&["flamegraph", "-o", "-"], b"\xff\xfe\x00binary that is not a profile");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("malformed pprof input"), "{}", stderr(&out));
    let out = run_with_stdin(&["flamegraph", "-o", "-"], b"just some text\nthat is no profile\n");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unrecognised profile format") && err.lines().count() == 1, "{err}");
    let out = run_with_stdin(&["convert", "-f", "svg", "-o", "-"], b"");
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    let out = run(perfkit().args(["convert", "-f", "png"]).arg(data("perfkit.folded")));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("svg, folded, pprof, json"));
}

#[test]
fn diff_draws_growth_and_summarises_the_biggest_changes() {
    let dir = scratch_dir();
    let before = dir.path().join("before.folded");
    let after = dir.path().join("after.json");
    fs::write(&before, "app;main;parse 50\napp;main;render 50\n").unwrap();
    // AFTER as perfkit JSON: diff reads any format.
    let after_folded = dir.path().join("after.folded");
    fs::write(&after_folded, "app;main;parse 20\napp;main;render 150\napp;main;compress 30\n").unwrap();
    let out = run(perfkit().args(["convert", "-f", "json", "-o"]).arg(&after).arg(&after_folded));
    assert!(out.status.success());

    let svg = dir.path().join("diff.svg");
    let out = run(perfkit().args(["diff", "--normalize", "-o"]).arg(&svg).arg(&before).arg(&after));
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = summary.lines().skip(2).collect();
    // parse 50% -> 10% (-40), render 50% -> 75% (+25), compress 0 -> 15%.
    assert!(rows[0].trim_start().starts_with("-40.00") && rows[0].ends_with("parse"), "{summary}");
    assert!(rows[1].trim_start().starts_with("+25.00") && rows[1].ends_with("render"), "{summary}");
    assert!(rows[2].trim_start().starts_with("+15.00") && rows[2].ends_with("compress"), "{summary}");
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.contains("red grew, blue shrank"));
    roxmltree::Document::parse_with_options(&text, roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() })
        .expect("well-formed SVG");

    let out = run(perfkit().args(["diff", "--json", "-o"]).arg(&svg).arg(&before).arg(&after));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["functions"][0]["function"], "parse");
    assert_eq!(json["after"]["samples"], 200);
}

#[test]
fn profile_writes_each_format() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    for (format, file) in [("pprof", "p.pb.gz"), ("json", "p.json"), ("folded", "p.folded")] {
        let path = dir.path().join(file);
        let out = run(perfkit()
            .args(["profile", "-F", "199", "-f", format, "-o"])
            .arg(&path)
            .arg("--")
            .arg(hotspots())
            .arg("1"));
        assert!(out.status.success());
        // Every format reads back into the known profile.
        let folded = convert_to_stdout(&path, "folded", &[]);
        let lines = parse_lines(&folded);
        let (a, a_full) = leaf_samples(&lines, "hot_a", ";main;parent_a;hot_a");
        let (b, _) = leaf_samples(&lines, "hot_b", ";main;parent_b;hot_b");
        assert!(a > 0 && a_full * 100 >= a * 95 && b > 0, "{format}: {folded}");
    }
    // JSON and pprof carry source locations from the workload's DWARF.
    let json: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("p.json")).unwrap()).unwrap();
    let hot_a = json["frames"].as_array().unwrap().iter().find(|f| f["name"] == "hot_a").unwrap();
    assert!(hot_a["file"].as_str().unwrap().ends_with("hotspots.c"), "{hot_a}");
    assert!(hot_a["line"].as_u64().unwrap() > 0);
    assert_eq!(json["meta"]["frequency_hz"], 199);
}
