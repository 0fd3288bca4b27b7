//! Older kernels' program variants, run on this kernel: the loader picks
//! them from the kernel's BTF (`perfkit_probes::compat`), and
//! `PERFKIT_KERNEL_FEATURES` takes features away so that the variants for
//! 5.10 (no `bpf_loop`, preallocated hash maps, a one-argument
//! `sched_process_exit`) give their known answers here too. The kernels
//! themselves run under QEMU in `cargo xtask vmtest`. And a kernel without
//! BTF: `auto` falls back to perf_event and says why.

use std::process::Command;

use crate::util::*;

/// What 5.10 lacks, taken away.
const AS_ON_5_10: &str = "no-bpf-loop,no-lazy-hash-maps,no-exit-group-dead";

#[test]
fn the_5_10_variants_give_full_stacks_at_the_known_shares() {
    let Some(_serial) = privileged() else { return };
    let bin = hotspots_nofp();
    let dir = scratch_dir();
    let folded = dir.path().join("out.folded");
    let out = run(perfkit()
        .env("PERFKIT_KERNEL_FEATURES", AS_ON_5_10)
        .args(["profile", "--backend", "ebpf", "--unwind", "dwarf", "-F", "997", "-f", "folded", "-o"])
        .arg(&folded)
        .arg("--")
        .arg(bin)
        .arg("3"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("backend: eBPF, DWARF"), "{}", stderr(&out));
    assert_hotspots_profile(&read_folded(&folded));
}

#[test]
fn the_loopless_walk_goes_on_through_tail_calls_to_the_frame_limit() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "deep.c", "deep", &["-O1", "-fomit-frame-pointer", "-fno-optimize-sibling-calls"]);
    let dir = scratch_dir();
    for (depth, complete) in [("100", true), ("200", false)] {
        let folded = dir.path().join(format!("deep-{depth}.folded"));
        let out = run(perfkit()
            .env("PERFKIT_KERNEL_FEATURES", AS_ON_5_10)
            .args(["profile", "--backend", "ebpf", "-F", "499", "-f", "folded", "-o"])
            .arg(&folded)
            .arg("--")
            .arg(&bin)
            .args(["2", depth]));
        assert!(out.status.success(), "{}", stderr(&out));
        let folded = read_folded(&folded);
        let (total, full) = complete_paths(&folded, "bottom", &["descend", "bottom"]);
        assert!(total > 500, "{folded:?}");
        if complete {
            // 100 frames: thirteen runs of eight, twelve tail calls.
            assert!(full * 100 >= total * 99, "{full} of {total} 100-deep stacks complete");
        } else {
            let marked: u64 = folded
                .iter()
                .filter(|(s, _)| s.ends_with(";bottom") && s.contains(";[truncated: depth];"))
                .map(|(_, c)| c)
                .sum();
            assert!(marked * 100 >= total * 95, "{marked} of {total} 200-deep stacks are cut at 128 and marked");
            assert!(stderr(&out).contains("deeper than 128 frames"), "{}", stderr(&out));
        }
    }
}

#[test]
fn the_5_10_variants_measure_off_cpu_time() {
    let Some(_serial) = privileged() else { return };
    let bin = build_c("cc", "sleeper.c", "sleeper", &["-O1", "-pthread", "-fno-omit-frame-pointer"]);
    let dir = scratch_dir();
    let folded = dir.path().join("off.folded");
    let out = run(perfkit()
        .env("PERFKIT_KERNEL_FEATURES", AS_ON_5_10)
        .args(["offcpu", "--per-thread", "-f", "folded", "-o"])
        .arg(&folded)
        .arg("--")
        .arg(&bin)
        .arg("2"));
    assert!(out.status.success(), "{}", stderr(&out));
    let naps: u64 = read_folded(&folded)
        .iter()
        .filter(|(s, _)| s.starts_with("napper-") && s.contains("nap_loop;take_nap;"))
        .map(|(_, c)| c)
        .sum();
    assert!((1_800_000..=2_200_000).contains(&naps), "the napper was off CPU {naps} us of 2 s");
}

/// Runs perfkit with the kernel's BTF hidden (an empty file bind-mounted
/// over it in a mount namespace of its own): a kernel without BTF.
fn without_btf(args: &[&str]) -> std::process::Output {
    let script = format!("mount --bind /dev/null /sys/kernel/btf/vmlinux && exec \"$0\" {}", args.join(" "));
    run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_perfkit")))
}

#[test]
fn without_btf_auto_falls_back_to_perf_event_and_says_why() {
    let Some(_serial) = privileged() else { return };
    let bin = hotspots();
    let dir = scratch_dir();
    let folded = dir.path().join("out.folded");
    let folded_arg = folded.to_str().unwrap();
    let out =
        without_btf(&["profile", "-F", "499", "-f", "folded", "-o", folded_arg, "--", bin.to_str().unwrap(), "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("backend: perf_event") && err.contains("eBPF unavailable"), "{err}");
    assert!(err.contains("CONFIG_DEBUG_INFO_BTF"), "the reason names the kernel feature: {err}");
    assert_hotspots_profile(&read_folded(&folded));
    // Asked for by name, eBPF fails with the same reason.
    let out = without_btf(&["profile", "--backend", "ebpf", "-d", "1", "-f", "folded", "-o", folded_arg, "-a"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("CONFIG_DEBUG_INFO_BTF"), "{}", stderr(&out));
}
