//! Decides whether the privileged integration tests run or are reported as
//! ignored: they run when built by root or when PERFKIT_REQUIRE_PRIVILEGED=1
//! (strict mode, CI), where a missing privilege is then a failure.
//!
//! Likewise the tests that check perfkit's output with the ecosystem's own
//! tools (`go tool pprof`, headless Chromium, sysstat, Prometheus) run when those tools are
//! installed or in strict mode, where a missing tool is then a failure.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(perfkit_privileged)");
    println!("cargo::rustc-check-cfg=cfg(perfkit_tools)");
    println!("cargo::rerun-if-env-changed=PERFKIT_REQUIRE_PRIVILEGED");
    println!("cargo::rerun-if-env-changed=PATH");
    let strict = std::env::var("PERFKIT_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if strict || root {
        println!("cargo::rustc-cfg=perfkit_privileged");
    }
    let on_path = |tool: &str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    };
    let tools = ["go", "chromium", "pidstat", "mpstat", "iostat", "prometheus", "promtool", "python3", "perf"];
    if strict || tools.iter().all(|t| on_path(t)) {
        println!("cargo::rustc-cfg=perfkit_tools");
    }
}
