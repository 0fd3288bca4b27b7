//! Correct stacks on the programs people run: cargo's default Rust build,
//! C and C++ with and without frame pointers and with lld, Go, stripped
//! distro binaries, JIT code; through shared libraries, libraries loaded
//! later, exec, deep recursion and many distinct stacks. Each test checks
//! complete root-to-leaf paths and known shares, on both backends, and
//! where it fits against `perf record --call-graph dwarf`.

use std::{
    ffi::OsStr,
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::util::*;

/// `perf record --call-graph dwarf` then `perf script`, collapsed by
/// perfkit's reader: perf's best answer on the same work.
fn perf_dwarf(command: &[&OsStr]) -> Vec<(String, u64)> {
    let dir = scratch_dir();
    let data = dir.path().join("perf.data");
    let out = run(Command::new("perf")
        .args(["record", "-q", "-F", "499", "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .args(command)
        .stdout(Stdio::null()));
    assert!(out.status.success(), "perf record failed: {}", stderr(&out));
    let script = Command::new("perf").args(["script", "-i"]).arg(&data).output().unwrap();
    let text = dir.path().join("perf.script");
    fs::write(&text, &script.stdout).unwrap();
    let folded = run(perfkit().args(["convert", "-f", "folded", "-o", "-"]).arg(&text));
    assert!(folded.status.success());
    String::from_utf8(folded.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (s, c) = l.rsplit_once(' ').unwrap();
            (s.to_owned(), c.parse().unwrap())
        })
        .collect()
}

/// The share of samples whose innermost physical frame is one of `leaves`
/// and whose stack is complete from a root function.
fn complete_share(folded: &[(String, u64)], leaves: &[&str]) -> f64 {
    let (mut total, mut full) = (0u64, 0u64);
    for (stack, count) in folded {
        let frames = physical(stack);
        if !frames.last().is_some_and(|l| leaves.contains(l)) {
            continue;
        }
        total += count;
        if frames.first().is_some_and(|f| ROOTS.contains(f)) {
            full += count;
        }
    }
    if total == 0 { 0.0 } else { full as f64 / total as f64 }
}

const RUST_PATHS: [(&[&str], f64); 2] =
    [(&["main", "parse_phase", "churn"], 0.75), (&["main", "render_phase", "churn"], 0.25)];

#[test]
fn rust_built_with_cargo_defaults_has_complete_stacks_on_both_backends() {
    let Some(_serial) = privileged() else { return };
    let bin = rusthot();
    // What this test is about: rust-lld, and no frame pointers.
    let data = fs::read(bin).unwrap();
    let comment = String::from_utf8_lossy(&data);
    assert!(comment.contains("Linker: LLD"), "cargo's default build links with lld");
    let verdict = perfkit_unwind::frame_pointers::inspect(&data).unwrap();
    assert!(!verdict.has_frame_pointers(), "{verdict:?}");

    let cmd = [bin.as_os_str(), os("3")];
    let (ebpf, err) = profile_command(&["-F", "997"], &cmd);
    assert!(err.contains("backend: eBPF, DWARF unwind tables"), "{err}");
    assert_shares(&ebpf, &RUST_PATHS, 0.99);
    // perf's naming: qualified Rust paths from the symbol table, even with
    // line-tables-only debug information.
    assert!(ebpf.iter().any(|(s, _)| s.contains(";rusthot::parse_phase;rusthot::churn")), "{ebpf:?}");

    let (perf, err) = profile_command(&["--backend", "perf", "-F", "997"], &cmd);
    assert!(err.contains("DWARF unwinding of user stack copies"), "auto must not pick frame pointers: {err}");
    assert_shares(&perf, &RUST_PATHS, 0.99);

    if tools(&["perf"]) {
        let reference = perf_dwarf(&cmd);
        let (theirs, ours) = (complete_share(&reference, &["churn"]), complete_share(&ebpf, &["churn"]));
        assert!(ours + 0.01 >= theirs, "perfkit {ours:.3} complete vs perf --call-graph dwarf {theirs:.3}");
    }
}

#[test]
fn gcc_o2_with_frame_pointers_is_judged_from_its_cfi() {
    let Some(_serial) = privileged() else { return };
    let paths: [(&[&str], f64); 2] = [(&["main", "parent_a", "hot_a"], 0.75), (&["main", "parent_b", "hot_b"], 0.25)];
    // GCC leaves frame pointers out of leaf functions even with
    // -fno-omit-frame-pointer: a frame-pointer walk from hot_a would skip
    // parent_a, so the binary must be judged as lacking them.
    let leafless = build_c("cc", "hotspots.c", "hotspots-o2-fp", &["-O2", "-fno-omit-frame-pointer"]);
    let verdict = perfkit_unwind::frame_pointers::inspect(&fs::read(&leafless).unwrap()).unwrap();
    assert!(!verdict.has_frame_pointers(), "leaf functions lack frame pointers: {verdict:?}");
    // Clang keeps them in leaves too: the walk is sound (and lld links it).
    let full = build_c("clang", "hotspots.c", "hotspots-clang-fp", &["-O2", "-fno-omit-frame-pointer", "-fuse-ld=lld"]);
    let verdict = perfkit_unwind::frame_pointers::inspect(&fs::read(&full).unwrap()).unwrap();
    assert!(verdict.has_frame_pointers(), "every function keeps a frame pointer: {verdict:?}");
    for bin in [&leafless, &full] {
        let cmd = [bin.as_os_str(), os("3")];
        let (ebpf, err) = profile_command(&["--backend", "ebpf", "-F", "997"], &cmd);
        assert!(err.contains("backend: eBPF"), "{err}");
        assert_shares(&ebpf, &paths, 0.99);
        let (perf, err) = profile_command(&["--backend", "perf", "-F", "997"], &cmd);
        let name = bin.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            err.contains(&format!("frame pointers cannot walk {name}")),
            bin == &leafless,
            "the perf backend copies stacks exactly when frame pointers cannot walk {name}: {err}"
        );
        assert_shares(&perf, &paths, 0.97);
    }
}

#[test]
fn cpp_linked_with_lld_has_all_three_hot_functions() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("g++", "cpphot.cpp", "cpphot-lld", &["-O2", "-fuse-ld=lld"]);
    let paths: [(&[&str], f64); 3] = [
        (&["main", "parse_request", "tokenize"], 0.5),
        (&["main", "draw_frame", "rasterize"], 1.0 / 3.0),
        (&["main", "digest", "mix"], 1.0 / 6.0),
    ];
    let cmd = [bin.as_os_str(), os("3")];
    for backend in ["ebpf", "perf"] {
        let (folded, _) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        assert_shares(&folded, &paths, 0.99);
    }
}

#[test]
fn go_leaf_under_two_parents_and_deep_goroutine_stacks() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["go"]) {
        return;
    }
    let bin = gohot();
    let paths: [(&[&str], f64); 2] =
        [(&["main.main", "main.parentA", "main.leaf"], 0.75), (&["main.main", "main.parentB", "main.leaf"], 0.25)];
    let cmd = [bin.as_os_str(), os("3")];
    for backend in ["ebpf", "perf"] {
        let (folded, err) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        assert_shares(&folded, &paths, 0.99);
        if backend == "perf" {
            // Go's small leaves have no frame: its CFI, not frame pointers,
            // finds their callers.
            assert!(err.contains("DWARF unwinding"), "{err}");
        }
    }
    // A goroutine 100 calls deep: the whole stack, or a note naming the
    // stack copy that would have reached it.
    let deep = [bin.as_os_str(), os("2"), os("deep")];
    for backend in ["ebpf", "perf"] {
        let (folded, err) = profile_command(&["--backend", backend, "--unwind", "dwarf", "-F", "499"], &deep);
        let (total, full) = folded.iter().filter(|(s, _)| s.contains("main.leaf")).fold((0, 0), |(t, f), (s, c)| {
            let depth = s.matches("main.deep").count();
            (t + c, f + if depth >= 101 && physical(s).first().is_some_and(|r| ROOTS.contains(r)) { *c } else { 0 })
        });
        assert!(total > 100, "{backend}: {folded:?}");
        assert!(
            full * 100 >= total * 95 || err.contains("--stack-size"),
            "{backend}: {full} of {total} deep stacks complete, and nothing said: {err}"
        );
    }
}

/// Of a process's samples (root frame `root`): how many, how many with every
/// user frame named (no `module+0x...`, no `[unknown]`), how many whose
/// outermost user frame is Go's goroutine or main-thread root, and how many
/// whose innermost user frame is named.
fn go_named_and_rooted(folded: &[(String, u64)], root: &str) -> (u64, u64, u64, u64) {
    let is_named = |f: &&str| !f.contains("+0x") && !f.starts_with('[');
    folded.iter().filter(|(s, _)| s.split(';').next() == Some(root)).fold((0, 0, 0, 0), |(t, n, r, l), (s, c)| {
        // Kernel frames, and the marker of a stack that ended early (not a
        // frame of the program), are left out.
        let user: Vec<&str> =
            s.split(';').skip(1).filter(|f| !f.ends_with("_[k]") && !f.starts_with("[truncated: ")).collect();
        let named = !user.is_empty() && user.iter().all(is_named);
        let rooted = matches!(user.first(), Some(&"runtime.goexit" | &"runtime.main"));
        let leaf = user.last().is_some_and(is_named);
        (t + c, n + if named { *c } else { 0 }, r + if rooted { *c } else { 0 }, l + if leaf { *c } else { 0 })
    })
}

#[test]
fn stripped_go_is_named_and_unwound_from_its_function_table() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["go"]) {
        return;
    }
    // No symbols, no DWARF: names, files and inlined calls come from
    // .gopclntab, and so does the CFI both backends walk with, from its SP
    // deltas (main.leaf has no frame: a frame-pointer walk, perf -g's,
    // skips its caller).
    let bin = gohot_stripped();
    let cmd = [bin.as_os_str(), os("3")];
    let paths: [(&[&str], f64); 2] =
        [(&["main.main", "main.parentA", "main.leaf"], 0.75), (&["main.main", "main.parentB", "main.leaf"], 0.25)];
    for backend in ["ebpf", "perf"] {
        let (folded, err) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        // Samples taken before the eBPF walker's table is published are
        // walked by frame pointers (the leaf's caller skipped).
        assert_shares(&folded, &paths, 0.97);
        if backend == "perf" {
            assert!(err.contains("DWARF unwinding"), "{err}");
        }
        let (total, named, rooted, _) = go_named_and_rooted(&folded, "gohot-stripped");
        assert!(total > 300, "{backend}: {total} samples\n{err}");
        assert!(named * 100 >= total * 99, "{backend}: {named} of {total} samples named\n{folded:?}");
        assert!(
            rooted * 100 >= total * 95,
            "{backend}: {rooted} of {total} samples reach runtime.goexit or runtime.main"
        );
        // main.step is inlined into main.leaf, where the time is spent:
        // its multiply and add are 3 of the loop's 7 instructions. Which
        // of them a sample's pc lands on depends on the CPU (over half in
        // step on Intel machines, about 27 % on an AMD EPYC), so the check
        // is that a good part of leaf's samples carry the inlined frame.
        let leaf: u64 = folded.iter().filter(|(s, _)| s.contains(";main.leaf")).map(|(_, c)| c).sum();
        let inlined: u64 = folded.iter().filter(|(s, _)| s.contains(";main.leaf;main.step_[i]")).map(|(_, c)| c).sum();
        assert!(leaf * 100 >= total * 90, "{backend}: {leaf} of {total} in main.leaf");
        assert!(inlined * 5 >= leaf, "{backend}: {inlined} of {leaf} main.leaf samples in the inlined main.step");
        // Nothing in main.leaf is ever rooted elsewhere than main.main.
        assert!(
            folded.iter().filter(|(s, _)| s.contains(";main.leaf")).all(|(s, _)| s.contains(";main.main;")),
            "{backend}: {folded:?}"
        );
    }
}

#[test]
fn a_stripped_debian_go_program_is_named() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["fzf"]) {
        return;
    }
    // fzf as Debian ships it (Go, stripped) filtering 300,000 lines, ten
    // times: the time is in its matching algorithm.
    let dir = scratch_dir();
    let input = dir.path().join("lines");
    let mut data = String::new();
    let mut x: u64 = 88172645463325252;
    for _ in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push_str(&format!("/usr/share/{:x}/src/{:x}/module_{}.go\n", x >> 40, x & 0xffff, x % 977));
    }
    fs::write(&input, data).unwrap();
    let script =
        format!("for p in a1 b2 c3 d4 e5 f6 a7 b8 c9 d0; do fzf -f \"$p\" < {} > /dev/null; done", input.display());
    let cmd = [os("sh"), os("-c"), OsStr::new(&script)];
    for backend in ["ebpf", "perf"] {
        let (folded, err) = profile_command(&["--backend", backend, "-F", "499"], &cmd);
        let (total, named, rooted, leaf_named) = go_named_and_rooted(&folded, "fzf");
        assert!(total > 200, "{backend}: {total} samples of fzf\n{err}\n{folded:?}");
        assert!(leaf_named * 100 >= total * 97, "{backend}: {leaf_named} of {total} fzf leaves named\n{folded:?}");
        assert!(named * 100 >= total * 95, "{backend}: {named} of {total} fzf stacks named\n{folded:?}");
        // Its own code (matching, merging and sorting the results), and in
        // it the matcher.
        let share = |pattern: &str| -> u64 {
            folded.iter().filter(|(s, _)| s.starts_with("fzf;") && s.contains(pattern)).map(|(_, c)| c).sum()
        };
        let (own, algo) = (share("junegunn/fzf/src"), share("junegunn/fzf/src/algo."));
        assert!(own * 2 >= total, "{backend}: {own} of {total} fzf samples in its own code\n{folded:?}");
        assert!(algo * 10 >= total, "{backend}: {algo} of {total} fzf samples in its matcher\n{folded:?}");
        // The eBPF walker follows the runtime's switches to the g0 stack
        // back to the goroutine's; the perf backend's copy of the g0 stack
        // does not hold the goroutine's frames, and the kernel's
        // frame-pointer walk of the same sample takes over there.
        assert!(rooted * 100 >= total * 95, "{backend}: {rooted} of {total} reach runtime.goexit or runtime.main");
    }
}

#[test]
fn a_stripped_distro_binary_reaches_the_libc_start() {
    let Some(_serial) = privileged() else { return };
    // xz and liblzma as Debian ships them: no symbols, no frame pointers.
    let dir = scratch_dir();
    let input = dir.path().join("input");
    let mut data = Vec::with_capacity(24 << 20);
    let mut x: u64 = 88172645463325252;
    while data.len() < 24 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Words from a small alphabet: compressible, slow to compress well.
        data.extend_from_slice(format!("{} ", x % 50_000).as_bytes());
    }
    fs::write(&input, &data).unwrap();
    let script = format!("xz -9 -T1 -c < {} > /dev/null", input.display());
    let cmd = [os("sh"), os("-c"), OsStr::new(&script)];
    let (folded, err) = profile_command(&["-F", "499", "--per-process"], &cmd);
    let xz: Vec<(String, u64)> = folded.iter().filter(|(s, _)| s.starts_with("xz-")).cloned().collect();
    let total: u64 = xz.iter().map(|(_, c)| c).sum();
    assert!(total > 300, "{err}\n{folded:?}");
    let complete: u64 = xz.iter().filter(|(s, _)| s.contains(";__libc_start_call_main;")).map(|(_, c)| c).sum();
    assert!(complete * 100 >= total * 95, "only {complete} of {total} xz samples reach __libc_start_call_main");
    // Unresolved code in the stripped library keeps its place: module and
    // address, several distinct hot spots rather than one [unknown].
    let spots: std::collections::HashSet<&str> = xz
        .iter()
        .flat_map(|(s, _)| s.split(';'))
        .filter(|f| f.starts_with("liblzma.so") && f.contains("+0x"))
        .collect();
    assert!(spots.len() >= 3, "liblzma's unresolved frames should keep their addresses: {spots:?}");
    if tools(&["perf"]) {
        let reference = perf_dwarf(&cmd);
        let perf_xz: Vec<(String, u64)> = reference.iter().filter(|(s, _)| s.starts_with("xz")).cloned().collect();
        let perf_total: u64 = perf_xz.iter().map(|(_, c)| c).sum();
        let perf_complete: u64 =
            perf_xz.iter().filter(|(s, _)| s.contains(";__libc_start_call_main;")).map(|(_, c)| c).sum();
        assert!(
            complete as f64 / total as f64 + 0.02 >= perf_complete as f64 / perf_total.max(1) as f64,
            "perfkit {complete}/{total} vs perf --call-graph dwarf {perf_complete}/{perf_total}"
        );
    }
}

#[test]
fn a_stripped_program_is_named_from_its_separate_debug_file() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["objcopy"]) {
        return;
    }
    // hotspots without a symbol table, its symbols and DWARF moved to a
    // debug file beside it that its .gnu_debuglink names, as distributions
    // ship libraries: its functions are in no .dynsym.
    let dir = scratch_dir();
    let exe = dir.path().join("hotspots-stripped");
    let debug = dir.path().join("hotspots-stripped.debug");
    let objcopy = |args: &[&OsStr]| assert!(Command::new("objcopy").args(args).status().unwrap().success(), "{args:?}");
    objcopy(&[os("--only-keep-debug"), hotspots_nofp().as_os_str(), debug.as_os_str()]);
    let link = format!("--add-gnu-debuglink={}", debug.display());
    objcopy(&[os("--strip-all"), OsStr::new(&link), hotspots_nofp().as_os_str(), exe.as_os_str()]);
    let cmd = [exe.as_os_str(), os("2")];
    let paths = |folded: &[(String, u64)]| {
        let (a, a_full) = complete_paths(folded, "hot_a", &["main", "parent_a", "hot_a"]);
        let (b, b_full) = complete_paths(folded, "hot_b", &["main", "parent_b", "hot_b"]);
        (a, a_full, b, b_full)
    };
    // By default its symbol table names the functions, its DWARF is not
    // read; asked for, the DWARF names them the same and gives their
    // lines. Both backends.
    for extra in [&["--backend", "ebpf"][..], &["--backend", "perf"], &["--separate-debug-info"]] {
        let (folded, err) = profile_command(&[extra, &["-F", "499"][..]].concat(), &cmd);
        let (a, a_full, b, b_full) = paths(&folded);
        assert!(a + b > 300, "{extra:?}: {err}\n{folded:?}");
        assert!((a_full + b_full) * 100 >= (a + b) * 95, "{extra:?}: {a_full}+{b_full} of {a}+{b} on their paths");
        let share = a as f64 / (a + b) as f64;
        assert!((share - 0.75).abs() < 0.07, "{extra:?}: hot_a has {share:.3} of the hot samples, not 3/4");
        let unresolved: u64 = folded.iter().filter(|(s, _)| s.contains("hotspots-stripped+0x")).map(|(_, c)| c).sum();
        assert!(unresolved * 100 <= (a + b) * 2, "{extra:?}: {unresolved} samples with unresolved frames");
    }
    // The debug file found again, read whole: file:line in JSON.
    let json = dir.path().join("p.json");
    let out = run(perfkit()
        .args(["profile", "-F", "499", "--separate-debug-info", "-f", "json", "-o"])
        .arg(&json)
        .arg("--")
        .args(cmd));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(&json).unwrap();
    assert!(
        text.contains("hotspots.c"),
        "no file:line from the debug file's DWARF in {}",
        &text[..text.len().min(2000)]
    );
}

#[test]
fn calls_through_a_library_without_frame_pointers_keep_their_callers() {
    let Some(_serial) = privileged() else { return };
    // qsort in Debian's libc (no frame pointers) calls back into the program.
    let bin = build_c("cc", "qsortcb.c", "qsortcb", &["-O2"]);
    let cmd = [bin.as_os_str(), os("3")];
    for backend in ["ebpf", "perf"] {
        let (folded, _) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        let (total, full) = folded.iter().filter(|(s, _)| s.contains("compare_keys")).fold((0, 0), |(t, f), (s, c)| {
            let p = physical(s);
            let through = p.first() == Some(&"_start")
                && p.windows(2).any(|w| w == ["main", "sort_phase"])
                // `qsort_r` from DWARF, `__qsort_r` from the symbol
                // tables (perf's choice: non-weak before weak).
                && p.iter().any(|f| f.trim_start_matches('_').starts_with("qsort"))
                && p.last() == Some(&"compare_keys");
            (t + c, f + if through { *c } else { 0 })
        });
        assert!(total > 200, "{backend}: {folded:?}");
        assert!(full * 100 >= total * 99, "{backend}: only {full} of {total} callbacks keep main;sort_phase;qsort");
    }
}

#[test]
fn a_library_loaded_after_sampling_starts_is_unwound() {
    let Some(_serial) = privileged() else { return };
    let lib = build_c("cc", "libhot.c", "libhot.so", &["-O2", "-fPIC", "-shared", "-fomit-frame-pointer"]);
    let host = build_c("cc", "dlhost.c", "dlhost", &["-O2", "-ldl"]);
    let cmd = [host.as_os_str(), lib.as_os_str(), os("2.5")];
    for backend in ["ebpf", "perf"] {
        let (folded, _) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        let (total, full) = complete_paths(&folded, "lib_inner", &["main", "run_plugin", "lib_hot", "lib_inner"]);
        assert!(total > 300, "{backend}: {folded:?}");
        assert!(full * 100 >= total * 99, "{backend}: {full} of {total} samples in the dlopened library complete");
    }
}

#[test]
fn recursion_deeper_than_the_limit_is_marked_and_reported() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "deep.c", "deep", &["-O1", "-fomit-frame-pointer", "-fno-optimize-sibling-calls"]);
    let (folded, err) = profile_command(&["-F", "499"], &[bin.as_os_str(), os("2"), os("200")]);
    let bottom: u64 = folded.iter().filter(|(s, _)| s.ends_with(";bottom")).map(|(_, c)| c).sum();
    let marked: u64 = folded
        .iter()
        .filter(|(s, _)| s.ends_with(";bottom") && s.starts_with("deep;[truncated: depth];"))
        .map(|(_, c)| c)
        .sum();
    assert!(bottom > 500, "{folded:?}");
    assert!(marked * 100 >= bottom * 95, "{marked} of {bottom} 200-deep stacks are marked [truncated: depth]");
    assert!(err.contains("deeper than 128 frames"), "the summary says where the limit is: {err}");
    // 100 deep fits: complete.
    let (folded, _) = profile_command(&["-F", "499"], &[bin.as_os_str(), os("2"), os("100")]);
    let (total, full) = complete_paths(&folded, "bottom", &["descend", "bottom"]);
    assert!(full * 100 >= total * 99, "{full} of {total} 100-deep stacks complete");
}

#[test]
fn a_target_that_execs_mid_run_has_both_images_unwound_and_named() {
    let Some(_serial) = privileged() else { return };
    let execer = build_c("cc", "execer.c", "execer", &["-O1", "-fomit-frame-pointer"]);
    let after = hotspots_nofp();
    let cmd = [execer.as_os_str(), os("1.5"), after.as_os_str(), os("1.5")];
    for backend in ["ebpf", "perf"] {
        let (folded, _) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        let before: Vec<(String, u64)> = folded.iter().filter(|(s, _)| s.starts_with("execer;")).cloned().collect();
        let (b, b_full) = complete_paths(&before, "before_exec", &["main", "before_exec"]);
        assert!(b > 500 && b_full * 100 >= b * 99, "{backend}: before exec {b_full}/{b}: {folded:?}");
        // The new image carries its own name, and its own symbols.
        let after: Vec<(String, u64)> =
            folded.iter().filter(|(s, _)| s.starts_with("hotspots-nofp;")).cloned().collect();
        let (a, a_full) = complete_paths(&after, "hot_a", &["main", "parent_a", "hot_a"]);
        assert!(a > 300 && a_full * 100 >= a * 99, "{backend}: after exec {a_full}/{a}: {folded:?}");
        assert!(!before.iter().any(|(s, _)| s.contains("hot_a")), "{backend}: samples labelled with the wrong image");
    }
}

#[test]
fn many_distinct_stacks_lose_almost_nothing() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "manystacks.c", "manystacks", &["-O2"]);
    let (folded, err) = profile_command(&["-F", "999"], &[bin.as_os_str(), os("5")]);
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    assert!(folded.len() >= 3000, "{} distinct stacks", folded.len());
    let lost: u64 = folded.iter().filter(|(s, _)| s.contains("[lost stack]")).map(|(_, c)| c).sum();
    let dropped: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("dropped samples: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((lost + dropped) * 1000 <= (total + dropped) * 5, "{lost} lost, {dropped} dropped of {total}: {err}");
}

#[test]
fn node_jit_frames_are_named_from_its_perf_map() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["node"]) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/fib.js");
    let (folded, err) =
        profile_command(&["-F", "499"], &[os("node"), os("--perf-basic-prof"), script.as_os_str(), os("3")]);
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    let js: u64 =
        folded.iter().filter(|(s, _)| s.rsplit(';').next().is_some_and(|l| l.contains("fib"))).map(|(_, c)| c).sum();
    let unknown: u64 = folded.iter().filter(|(s, _)| s.ends_with(";[unknown]")).map(|(_, c)| c).sum();
    assert!(js * 100 >= total * 70, "JIT frames named: {js} of {total}: {err}");
    assert!(unknown * 100 <= total * 5, "{unknown} of {total} samples end in [unknown]");
    assert!(err.contains("JIT symbols:") && err.contains("perf-"), "{err}");
}

#[test]
fn java_jit_frames_are_named_from_its_perf_map() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["java", "javac"]) {
        return;
    }
    let classes = scratch_dir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/Hot.java");
    let out = run(Command::new("javac").arg("-d").arg(classes.path()).arg(&source));
    assert!(out.status.success());
    let (folded, err) = profile_command(
        &["-F", "499"],
        &[
            os("java"),
            os("-XX:+UnlockDiagnosticVMOptions"),
            os("-XX:+DumpPerfMapAtExit"),
            os("-cp"),
            classes.path().as_os_str(),
            os("Hot"),
            os("3"),
        ],
    );
    let total: u64 = folded.iter().map(|(_, c)| c).sum();
    let java: u64 =
        folded.iter().filter(|(s, _)| s.contains("Hot.spin") || s.contains("Hot.main")).map(|(_, c)| c).sum();
    assert!(java * 100 >= total * 70, "Java frames named: {java} of {total}: {err}");
}

#[test]
fn perf_maps_that_are_links_or_someone_elses_are_not_read() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["node"]) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/fib.js");
    for kind in ["symlink", "foreign"] {
        // Node without --perf-basic-prof writes no map: plant one.
        let mut node = Command::new("node").arg(&script).arg("4").spawn().unwrap();
        let map = format!("/tmp/perf-{}.map", node.id());
        let decoy = scratch_dir();
        let target = decoy.path().join("real.map");
        fs::write(&target, "0 ffffffffffff planted_symbol\n").unwrap();
        match kind {
            "symlink" => std::os::unix::fs::symlink(&target, &map).unwrap(),
            _ => {
                fs::copy(&target, &map).unwrap();
                std::os::unix::fs::chown(&map, Some(65534), Some(65534)).unwrap();
                fs::set_permissions(&map, fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let dir = scratch_dir();
        let folded = dir.path().join("out.folded");
        let out = run(perfkit()
            .args(["profile", "-d", "1.5", "-p", &node.id().to_string(), "-o"])
            .arg(dir.path().join("f.svg"))
            .arg("--folded")
            .arg(&folded));
        let _ = node.kill();
        let _ = node.wait();
        let _ = fs::remove_file(&map);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        let why = if kind == "symlink" { "is a symbolic link; not read" } else { "owned by uid 65534" };
        assert!(err.contains(why), "{kind}: {err}");
        assert!(!fs::read_to_string(&folded).unwrap().contains("planted_symbol"), "{kind}: the planted map was read");
    }
}

/// The reasons of the `[truncated: REASON]` markers in a profile, with
/// their samples.
fn markers(folded: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for (stack, count) in folded {
        let Some(at) = stack.find(";[truncated: ") else { continue };
        let reason = stack[at + 13..].split(']').next().unwrap_or_default().to_owned();
        match out.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += count,
            None => out.push((reason, *count)),
        }
    }
    out
}

/// The summary's list of functions by self time.
fn top_functions(err: &str) -> &str {
    err.split("top functions by self time:").nth(1).unwrap_or_default()
}

#[test]
fn stacks_ending_in_anonymous_code_are_marked_anon_code_in_every_format() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "anoncode.c", "anoncode", &["-O2"]);
    for backend in [&["--backend", "ebpf"][..], &["--backend", "perf"], &["--backend", "perf", "--unwind", "dwarf"]] {
        let mut extra = backend.to_vec();
        extra.extend(["-F", "997"]);
        let (folded, err) = profile_command(&extra, &[bin.as_os_str(), os("2")]);
        // The generated code's samples: its leaf is unresolved memory.
        let total: u64 = folded.iter().filter(|(s, _)| physical(s).last() == Some(&"[unknown]")).map(|(_, c)| c).sum();
        let marked: u64 = folded
            .iter()
            .filter(|(s, _)| {
                physical(s).last() == Some(&"[unknown]") && s.starts_with("anoncode;[truncated: anon-code];")
            })
            .map(|(_, c)| c)
            .sum();
        assert!(total > 400, "{backend:?}: {folded:?}");
        assert!(marked * 100 >= total * 99, "{backend:?}: {marked} of {total} samples in generated code are marked");
        // Never a leaf directly under the root.
        assert!(!folded.iter().any(|(s, _)| s.starts_with("anoncode;[unknown]")), "{backend:?}: {folded:?}");
        assert!(err.contains("[anon-code]"), "{backend:?}: the summary names the reason: {err}");
        assert!(!top_functions(&err).contains("[truncated"), "{backend:?}: a marker is not a function: {err}");
    }
    // The marker is a frame like any other: pprof, JSON and SVG carry it.
    let dir = scratch_dir();
    let (folded, _) = profile_command(&["-F", "499"], &[bin.as_os_str(), os("1")]);
    let text: String = folded.iter().map(|(s, c)| format!("{s} {c}\n")).collect();
    let input = dir.path().join("in.folded");
    fs::write(&input, text).unwrap();
    for (format, file) in [("pprof", "p.pb.gz"), ("json", "p.json"), ("svg", "p.svg")] {
        let out = dir.path().join(file);
        let r = run(perfkit().args(["convert", "-f", format, "-o"]).arg(&out).arg(&input));
        assert!(r.status.success(), "{}", stderr(&r));
        let back = dir.path().join(format!("{file}.folded"));
        if format == "svg" {
            let svg = fs::read_to_string(&out).unwrap();
            assert!(svg.contains("[truncated: anon-code]"), "the flame graph draws the marker");
            continue;
        }
        if format == "json" {
            let json: String = fs::read_to_string(&out).unwrap().split_whitespace().collect();
            assert!(json.contains(r#""truncated":"anon-code""#), "the JSON marker frame carries its reason: {json}");
        }
        let r = run(perfkit().args(["convert", "-f", "folded", "-o"]).arg(&back).arg(&out));
        assert!(r.status.success(), "{}", stderr(&r));
        let again = read_folded(&back);
        assert_eq!(markers(&again), markers(&folded), "{format} keeps the markers");
    }
}

#[test]
fn a_library_copied_and_dlopened_in_a_loop_ends_no_stack_at_signal_frames() {
    let Some(_serial) = privileged() else { return };
    // A 2 MiB library, copied to a new file every 2 ms of work in it: a
    // sixth of the time is spent copying, in a function with a 64 KiB
    // buffer on its stack (a frame whose CFA offset does not fit 16 bits,
    // once reported as a signal frame).
    let lib =
        build_c("cc", "libhot.c", "libpad.so", &["-O2", "-fPIC", "-shared", "-fomit-frame-pointer", "-DPAD_KIB=2048"]);
    let host = build_c("cc", "dlloop.c", "dlloop", &["-O2", "-ldl"]);
    for backend in ["ebpf", "perf"] {
        let dir = scratch_dir();
        let cmd = [host.as_os_str(), lib.as_os_str(), os("3"), dir.path().as_os_str(), os("2")];
        let (folded, err) = profile_command(&["--backend", backend, "-F", "997"], &cmd);
        let reasons = markers(&folded);
        assert!(!err.contains("signal"), "{backend}: no signal frame: {err}");
        for (reason, n) in &reasons {
            // The reasons that can be right here: a copy newer than the
            // mappings' last reading, a copy walked before its table was
            // ready (table-pending; or no-cfi when the walker had only
            // frame pointers), and (perf) the 64 KiB frame deeper than the
            // stack copy. Never a signal frame or an unfollowable rule:
            // there are none.
            assert!(
                reason == "unmapped"
                    || reason == "no-cfi"
                    || reason == "table-pending"
                    || (backend == "perf" && reason == "stack-copy"),
                "{backend}: {n} stacks end with [truncated: {reason}]: {reasons:?}"
            );
        }
        let (total, _) = complete_paths(&folded, "lib_inner", &["main", "run_copy", "lib_hot", "lib_inner"]);
        assert!(total > 300, "{backend}: {folded:?}");
        let copying: Vec<(String, u64)> =
            folded.iter().filter(|(s, _)| physical(s).contains(&"copy")).cloned().collect();
        let (n, rooted): (u64, u64) = copying
            .iter()
            .fold((0, 0), |(n, r), (s, c)| (n + c, r + if physical(s).first() == Some(&"_start") { *c } else { 0 }));
        assert!(n > 150, "{backend}: too few samples while copying: {folded:?}");
        if backend == "ebpf" {
            // The kernel walker follows frames of up to 256 KiB.
            assert!(rooted * 100 >= n * 95, "{backend}: {rooted} of {n} samples while copying reach _start");
        } else {
            // Each stack copy is 16 KiB: the 64 KiB frame is beyond it, and
            // says so.
            let marked: u64 =
                copying.iter().filter(|(s, _)| s.contains("[truncated: stack-copy]")).map(|(_, c)| c).sum();
            assert!(
                (rooted + marked) * 100 >= n * 99,
                "{backend}: {rooted} rooted, {marked} marked of {n}: {copying:?}"
            );
        }
    }
}
