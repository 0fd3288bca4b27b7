//! capable: capability checks, from a kprobe on `cap_capable` (no
//! tracepoint covers them), on kernels with kprobes.

use std::{path::Path, time::Duration};

use aya::programs::KProbe;
use perfkit_probes_common::{
    names,
    tools::{CapableConfig as KernelConfig, CapableEvent, TOOL_CAPABLE, ToolConfig},
};

use super::{Globals, Probe, Ring, ToolStats, drain, events, tcpconn::bytes_of, tracefs};
use crate::{ProbeError, Selection, object};

/// What capable watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapableConfig {
    /// The processes to watch (`None`: all).
    pub selection: Option<Selection>,
    /// Non-audited checks too (bcc's `-v`).
    pub non_audit: bool,
}

/// One capability check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CapCheck {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// User.
    pub uid: u32,
    /// Its name.
    pub comm: String,
    /// The capability (`CAP_SYS_ADMIN` is 21).
    pub cap: i32,
    /// Whether the check is audited (bcc's AUDIT column).
    pub audit: bool,
    /// Whether it came from setid handling (`CAP_OPT_INSETID`, bcc's
    /// INSETID column).
    pub insetid: bool,
}

fn cap_check(bytes: &[u8]) -> Option<CapCheck> {
    let e: CapableEvent = events::record(bytes)?;
    Some(CapCheck {
        ts_ns: e.ts_ns,
        pid: e.pid,
        tid: e.tid,
        uid: e.uid,
        comm: events::text(&e.comm),
        cap: e.cap,
        audit: e.opts & 2 == 0,
        insetid: e.opts & 4 != 0,
    })
}

const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability's name (`CAP_SYS_ADMIN`), or `CAP_N` for one this list
/// does not know.
pub fn capability_name(cap: i32) -> String {
    usize::try_from(cap).ok().and_then(|i| CAPS.get(i)).map_or_else(|| format!("CAP_{cap}"), |n| (*n).to_owned())
}

/// Whether this kernel has kprobes: the kprobe PMU
/// (`/sys/bus/event_source/devices/kprobe`) or tracefs's `kprobe_events`.
/// The error says what is missing.
pub fn kprobes_available(tool: &'static str) -> Result<(), ProbeError> {
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe/type");
    if pmu.exists() {
        return Ok(());
    }
    let events = tracefs::root().ok().map(|r| r.join("kprobe_events"));
    if events.as_ref().is_some_and(|p| p.exists()) {
        return Ok(());
    }
    Err(ProbeError::MissingKernelFeature {
        tool,
        feature: "kprobes (CONFIG_KPROBES)",
        detail: format!(
            "no kprobe PMU at {} and no kprobe_events in tracefs; cap_capable has no tracepoint to use instead",
            pmu.display()
        ),
    })
}

/// Capability checks (capable).
#[derive(Debug)]
pub struct Capable {
    probe: Probe,
    pub(super) ring: Ring,
}

impl Capable {
    /// Checks for kprobes, loads and attaches a kprobe on `cap_capable`,
    /// watching `selection`. Only audited checks unless `non_audit` (bcc's
    /// `-v`).
    pub fn start(config: CapableConfig) -> Result<Self, ProbeError> {
        let CapableConfig { selection, non_audit } = config;
        kprobes_available("capable")?;
        let config = KernelConfig { non_audit: u32::from(non_audit), _pad: 0 };
        let bytes = bytes_of(&config);
        let mut probe = Probe::load_with(
            TOOL_CAPABLE,
            Globals { selection, config: ToolConfig::default(), keep: vec![names::CAPABLE_EVENTS] },
            &[(names::CAPABLE_CONFIG, &bytes)],
        )?;
        let p: &mut KProbe = object::program(&mut probe.ebpf, names::CAPABLE_PROGRAM)?;
        p.load().map_err(object::load_error)?;
        // The link belongs to the program, and goes with the object.
        p.attach("cap_capable", 0).map_err(|source| ProbeError::AttachKprobe {
            program: names::CAPABLE_PROGRAM,
            function: "cap_capable",
            source,
        })?;
        let ring = probe.ring(names::CAPABLE_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for checks and returns those that came.
    pub fn events(&mut self, timeout: Duration) -> Vec<CapCheck> {
        drain(&mut self.ring, timeout, cap_check)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_named() {
        assert_eq!(capability_name(21), "CAP_SYS_ADMIN");
        assert_eq!(capability_name(0), "CAP_CHOWN");
        assert_eq!(capability_name(40), "CAP_CHECKPOINT_RESTORE");
        assert_eq!(capability_name(63), "CAP_63");
        assert_eq!(capability_name(-1), "CAP_-1");
    }
}
