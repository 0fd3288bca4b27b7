//! Decides whether the privileged integration tests run or are reported as
//! ignored: they run when built by root or when PERFKIT_REQUIRE_PRIVILEGED=1
//! (strict mode, CI), where a missing privilege is then a failure.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(perfkit_privileged)");
    println!("cargo::rerun-if-env-changed=PERFKIT_REQUIRE_PRIVILEGED");
    let strict = std::env::var("PERFKIT_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if strict || root {
        println!("cargo::rustc-cfg=perfkit_privileged");
    }
}
