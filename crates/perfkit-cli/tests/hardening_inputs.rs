//! Issue 17, input files: hostile pprof, folded, JSON and unrecognised
//! inputs stay within the memory budget (`--max-memory`, 512 MiB by
//! default) and linear time, and control characters from input files and
//! targets never reach an output raw. Each input is generated here and
//! planted by an unprivileged user (`pk-mallory-in`); peak memory is the
//! child's `ru_maxrss` from `wait4`.

use std::{
    fs,
    io::Write,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::util::{Measured, build_c, perfkit, privileged, run, run_measured, scratch_dir, stderr};

/// Peak RSS every hostile input must stay under: the 512 MiB budget and
/// the program itself.
const RSS_CAP: u64 = 600 << 20;

/// The unprivileged user who plants the inputs (created once).
fn mallory() -> (u32, u32) {
    let name = "pk-mallory-in";
    // Idempotent: an existing user is reused.
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        .stderr(Stdio::null())
        .status();
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").arg(flag).arg(name).output().expect("running id");
        assert!(out.status.success(), "useradd {name} failed");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Writes `bytes` to `dir/name`, owned by mallory.
fn plant(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let (uid, gid) = mallory();
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    path
}

/// A budget refusal: an error, naming the input, the limit and the flag.
fn assert_refused(ran: &Measured, input: &str, limit: &str) {
    assert!(!ran.ok, "the input was read");
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(input) && ran.stderr.contains(limit) && ran.stderr.contains("--max-memory"),
        "the error names {input}, {limit} and --max-memory: {}",
        ran.stderr
    );
    assert!(ran.rss < RSS_CAP, "peak RSS {} MiB", ran.rss >> 20);
}

/// `count` copies of `message` (protobuf bytes), gzipped.
fn gzipped_repeat(message: &[u8], count: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = message.repeat(1 << 16);
    for _ in 0..count >> 16 {
        gz.write_all(&chunk).unwrap();
    }
    gz.finish().unwrap()
}

/// pprof files of empty messages: each `Sample` (field 2), `Location`
/// (field 4) or string (field 6) is two bytes on the wire, a tag and a
/// zero length, and 50 to 150 bytes decoded. 32 KB of gzipped `Sample`s
/// took 1.25 GB, 65 KB of strings 2.4 GB.
#[test]
fn pprof_of_empty_messages_is_refused_within_the_budget() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    for (name, tag, count) in
        [("samples.pb.gz", 0x12u8, 16 << 20), ("strings.pb.gz", 0x32, 32 << 20), ("locations.pb.gz", 0x22, 16 << 20)]
    {
        let bytes = gzipped_repeat(&[tag, 0], count);
        assert!(bytes.len() < 200 << 10, "{name}: {} bytes", bytes.len());
        let input = plant(dir.path(), name, &bytes);
        let out = dir.path().join("out.folded");
        for args in [vec!["convert", "-f", "folded", "-o"], vec!["flamegraph", "-o"]] {
            let ran = run_measured(perfkit().args(&args).arg(&out).arg(&input), None);
            assert_refused(&ran, name, "512 MiB");
            assert!(ran.stderr.contains("decoded messages"), "{}", ran.stderr);
            assert!(!out.exists(), "no output from a refused input");
        }
    }
}

/// A 1 GB folded line, streamed through a pipe: killed for lack of memory
/// before; now refused once the bytes held reach the budget.
#[test]
fn a_gigabyte_folded_line_is_refused_within_the_budget() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let out = dir.path().join("flame.svg");
    let feed = Box::new(|mut stdin: std::process::ChildStdin| {
        let chunk = b"f;".repeat(1 << 19);
        let _ = stdin.write_all(b"app;");
        for _ in 0..1024 {
            if stdin.write_all(&chunk).is_err() {
                return; // perfkit stopped reading
            }
        }
        let _ = stdin.write_all(b"leaf 1\n");
    });
    let ran = run_measured(perfkit().args(["flamegraph", "-o"]).arg(&out).arg("-"), Some(feed));
    assert_refused(&ran, "standard input", "512 MiB");
    assert!(!out.exists());
    // A smaller budget refuses sooner, and names itself.
    let ran = run_measured(
        perfkit().args(["--max-memory", "64M", "flamegraph", "-o"]).arg(&out).arg("-"),
        Some(Box::new(|mut stdin: std::process::ChildStdin| {
            let chunk = b"f;".repeat(1 << 19);
            for _ in 0..128 {
                if stdin.write_all(&chunk).is_err() {
                    return;
                }
            }
        })),
    );
    assert_refused(&ran, "standard input", "64 MiB");
    assert!(ran.rss < 150 << 20, "peak RSS {} MiB with a 64 MiB budget", ran.rss >> 20);
}

/// JSON whose one stack names 96 Mi frames: 192 MB of `0,` that decoded
/// to 768 MB of indices before the stack's depth was checked. Now each
/// element is charged as it is decoded. Deep nesting is an error.
#[test]
fn huge_and_deep_json_is_refused_within_the_budget() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let mut json = br#"{"perfkit_profile": 1, "meta": {}, "frames": [{"name": "f", "kind": "user"}], "stacks": [{"thread": "t", "count": 1, "frames": ["#.to_vec();
    json.extend(b"0,".repeat(96 << 20));
    json.extend(b"0]}]}");
    let huge = plant(dir.path(), "huge.json", &json);
    drop(json);
    let ran = run_measured(perfkit().args(["convert", "-f", "folded", "-o", "-"]).arg(&huge), None);
    assert_refused(&ran, "huge.json", "512 MiB");
    fs::remove_file(&huge).unwrap();
    let mut deep = br#"{"perfkit_profile": 1, "meta": "#.to_vec();
    deep.extend(b"[".repeat(1 << 20));
    let deep = plant(dir.path(), "deep.json", &deep);
    let ran = run_measured(perfkit().args(["convert", "-f", "folded", "-o", "-"]).arg(&deep), None);
    assert!(
        !ran.ok && ran.stderr.contains("deep.json") && ran.stderr.contains("malformed perfkit JSON"),
        "{}",
        ran.stderr
    );
    assert!(ran.rss < RSS_CAP);
}

/// Input that falls through to format guessing took quadratic time
/// (160,000 lines of `x`: 45 s; 320 KB: 245 s). Detection now looks at a
/// bounded prefix and each collapser is asked once: 1 MB is one linear
/// pass, milliseconds of CPU; 5 s is a bound that load cannot reach.
#[test]
fn unrecognised_input_is_rejected_in_linear_time() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let input = plant(dir.path(), "x.txt", &b"x\n".repeat(1 << 19));
    for args in [vec!["flamegraph", "-o", "/dev/null"], vec!["convert", "-f", "json", "-o", "/dev/null"]] {
        let ran = run_measured(perfkit().args(&args).arg(&input), None);
        assert!(!ran.ok && ran.stderr.contains("unrecognised profile format"), "{}", ran.stderr);
        assert!(ran.cpu < 5.0, "{:.1} s of CPU for 1 MB", ran.cpu);
    }
}

/// Every control character in `text` but line breaks and tabs.
fn controls(text: &str) -> Vec<char> {
    text.chars().filter(|&c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')).collect()
}

/// An SVG parses as XML, and holds no control character.
fn assert_valid_svg(svg: &Path) -> String {
    let text = fs::read_to_string(svg).unwrap();
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    if let Err(e) = roxmltree::Document::parse_with_options(&text, options) {
        panic!("{} is not XML: {e}", svg.display());
    }
    assert!(controls(&text).is_empty(), "{:?}", controls(&text));
    text
}

/// Folded input with ESC and BEL (an escape sequence that would recolour
/// or retitle a terminal) gives valid SVG, and folded, JSON and pprof
/// outputs that carry them as `\x1b`, `\x07`.
#[test]
fn control_characters_in_input_files_are_escaped_in_every_output() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let input = plant(
        dir.path(),
        "evil.folded",
        "\x1b[31mred\x07;main;f\x1b]2:pwned\x07 3\napp;main;g\x7f\x00h 1\n".as_bytes(),
    );
    let svg = dir.path().join("flame.svg");
    let out = run(perfkit().args(["flamegraph", "-o"]).arg(&svg).arg(&input));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = assert_valid_svg(&svg);
    assert!(text.contains("\\x1b[31mred\\x07") && text.contains("f\\x1b]2:pwned\\x07"), "{text}");
    for format in ["svg", "folded", "json", "pprof"] {
        let path = dir.path().join(format!("out.{format}"));
        let out = run(perfkit().args(["convert", "-f", format, "-o"]).arg(&path).arg(&input));
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let text = match format {
            "svg" => assert_valid_svg(&path),
            // pprof read back through perfkit, as folded stacks.
            "pprof" => {
                let out = run(perfkit().args(["convert", "-f", "folded", "-o", "-"]).arg(&path));
                String::from_utf8(out.stdout).unwrap()
            }
            _ => fs::read_to_string(&path).unwrap(),
        };
        assert!(controls(&text).is_empty(), "{format}: {:?}", controls(&text));
        assert!(!text.contains("\\u001b"), "{format}: JSON escapes are still control characters once decoded");
        assert!(
            text.contains("x1b[31mred") && (text.contains(r"g\x7f\x00h") || text.contains(r"g\\x7f\\x00h")),
            "{format}: {text}"
        );
    }
}

/// A target whose name (comm, set with prctl) and arguments are escape
/// sequences, profiled to every format: the SVG is valid XML, and no
/// output holds a raw control character.
#[test]
fn a_target_with_escapes_in_its_name_and_arguments_gives_valid_outputs() {
    let Some(_serial) = privileged() else { return };
    let prog = build_c("cc", "redname.c", "redname", &["-O1", "-fno-omit-frame-pointer"]);
    let dir = scratch_dir();
    let svg = dir.path().join("p.svg");
    let folded = dir.path().join("p.folded");
    let out = run(perfkit()
        .args(["profile", "-o"])
        .arg(&svg)
        .arg("--folded")
        .arg(&folded)
        .arg("--")
        .arg(&prog)
        .arg("1.5")
        .arg(std::ffi::OsStr::from_bytes(b"\x1b]0;pwned\x07\x1b[2J")));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = assert_valid_svg(&svg);
    assert!(text.contains("\\x1b]0;pwned\\x07"), "the command line is in the title, escaped");
    let stacks = fs::read_to_string(&folded).unwrap();
    assert!(controls(&stacks).is_empty(), "{:?}", controls(&stacks));
    assert!(stacks.lines().any(|l| l.starts_with("\\x1b[31mred\\x07;") && l.contains("spin")), "{stacks}");
    let json = dir.path().join("p.json");
    let out = run(perfkit().args(["convert", "-f", "json", "-o"]).arg(&json).arg(&folded));
    assert!(out.status.success());
    assert!(controls(&fs::read_to_string(&json).unwrap()).is_empty());
}

/// `--max-memory` takes sizes with units, on every command that reads
/// input, and a budget smaller than an input names both.
#[test]
fn max_memory_sets_the_budget_of_every_reader() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let input = plant(dir.path(), "big.folded", "app;main;work 1\n".repeat(1 << 17).as_bytes());
    let out = run(perfkit().args(["--max-memory", "1M", "convert", "-f", "folded", "-o", "/dev/null"]).arg(&input));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("big.folded") && stderr(&out).contains("1 MiB"), "{}", stderr(&out));
    for size in ["64M", "1G", "67108864", "2g"] {
        let out = run(perfkit().args(["convert", "--max-memory", size, "-f", "folded", "-o", "/dev/null"]).arg(&input));
        assert!(out.status.success(), "{size}: {}", stderr(&out));
    }
    let out = run(perfkit().args(["convert", "--max-memory", "lots", "-f", "folded"]).arg(&input));
    assert_eq!(out.status.code(), Some(2), "a usage error");
    for cmd in ["profile", "offcpu", "flamegraph", "diff", "convert", "sys", "serve"] {
        let out = run(perfkit().args([cmd, "--help"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("--max-memory"), "{cmd} --help");
    }
    // A recording is read within the budget too.
    let rec = dir.path().join("rec");
    let out = run(perfkit().args(["sys", "record", "0.1", "2", "-o"]).arg(&rec));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(perfkit().args(["--max-memory", "16K", "sys", "report"]).arg(&rec));
    assert!(!out.status.success() && stderr(&out).contains("--max-memory"), "{}", stderr(&out));
    let out = run(perfkit().args(["sys", "report"]).arg(&rec));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `checkup --compare` reads documents anyone may have written. Their
/// bytes were charged, not what decoding built: 24 MB of `"",` decoded to
/// some 400 MB of strings under a 64 MiB budget. Now the most decoding
/// can build is charged first: the document is refused, nothing built.
#[test]
fn a_checkup_document_of_empty_strings_is_refused_within_the_budget() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let real = dir.path().join("real.json");
    let out = run(perfkit().args(["checkup", "-d", "1", "--json"]).arg(&real));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
    doc["observations"]["notes"] = serde_json::Value::Array(vec![serde_json::Value::from(""); 8 << 20]);
    let bomb = plant(dir.path(), "bomb.json", &serde_json::to_vec(&doc).unwrap());
    drop(doc);
    let ran = run_measured(perfkit().args(["--max-memory", "64M", "checkup", "--compare"]).arg(&real).arg(&bomb), None);
    assert_refused(&ran, "bomb.json", "64 MiB");
    assert!(ran.rss < 200 << 20, "peak RSS {} MiB", ran.rss >> 20);
    // The real document still compares with itself under that budget.
    let ran = run_measured(perfkit().args(["--max-memory", "64M", "checkup", "--compare"]).arg(&real).arg(&real), None);
    assert!(ran.ok, "{}", ran.stderr);
}
