//! What the current process may do with BPF and perf events.

use std::fs;

/// Capability numbers from `linux/capability.h`.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set, from `/proc/self/status`.
pub fn effective_capabilities() -> Option<u64> {
    parse_cap_eff(&fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// The capabilities missing for loading and attaching perf_event BPF
/// programs, as a readable list, or `None` when nothing is missing.
///
/// CAP_SYS_ADMIN alone is enough (kernels before 5.8 know nothing else);
/// otherwise CAP_BPF and CAP_PERFMON are both needed.
pub fn missing_for_bpf() -> Option<String> {
    missing_from(effective_capabilities()?)
}

fn missing_from(caps: u64) -> Option<String> {
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(missing.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tbash\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
    }

    #[test]
    fn root_and_bpf_perfmon_need_nothing() {
        assert_eq!(missing_from(0x1ff_ffff_ffff), None);
        assert_eq!(missing_from((1 << CAP_BPF) | (1 << CAP_PERFMON)), None);
        assert_eq!(missing_from(1 << CAP_SYS_ADMIN), None);
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(missing_from(0).as_deref(), Some("CAP_BPF, CAP_PERFMON"));
        assert_eq!(missing_from(1 << CAP_BPF).as_deref(), Some("CAP_PERFMON"));
    }
}
