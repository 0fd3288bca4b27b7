//! mountsnoop: mount(2) and umount(2) calls, with their arguments, flags,
//! mount namespace and result.

use std::time::Duration;

use perfkit_probes_common::{
    names,
    tools::{MOUNT_CALL, MountConfig, MountEvent, TOOL_MOUNTSNOOP, ToolConfig},
};

use super::{Globals, Probe, Ring, ToolStats, drain, events, tcpconn::bytes_of};
use crate::{ProbeError, Selection};

/// One mount or umount call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MountCall {
    /// CLOCK_MONOTONIC nanoseconds (the call's return).
    pub ts_ns: u64,
    /// `true` for umount.
    pub umount: bool,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// Its name.
    pub comm: String,
    /// Its mount namespace (inode number; 0 when unknown).
    pub mnt_ns: u32,
    /// 0, or the negative errno.
    pub ret: i32,
    /// The flags (`MS_*` for mount, `MNT_*` for umount).
    pub flags: u64,
    /// mount: the source; umount: the target (escaped; up to 127 bytes).
    pub source: String,
    /// mount: the target.
    pub target: String,
    /// mount: the file system type.
    pub fstype: String,
    /// mount: the data (options).
    pub data: String,
}

fn mount_call(bytes: &[u8]) -> Option<MountCall> {
    let e: MountEvent = events::record(bytes)?;
    Some(MountCall {
        ts_ns: e.ts_ns,
        umount: e.call != MOUNT_CALL,
        pid: e.pid,
        tid: e.tid,
        comm: events::text(&e.comm),
        mnt_ns: e.mnt_ns,
        ret: e.ret,
        flags: e.flags,
        source: events::text(&e.source),
        target: events::text(&e.target),
        fstype: events::text(&e.fstype),
        data: events::text(&e.data),
    })
}

const MS_FLAGS: [(u64, &str); 25] = [
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (16, "MS_SYNCHRONOUS"),
    (32, "MS_REMOUNT"),
    (64, "MS_MANDLOCK"),
    (128, "MS_DIRSYNC"),
    (256, "MS_NOSYMFOLLOW"),
    (1024, "MS_NOATIME"),
    (2048, "MS_NODIRATIME"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (32768, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
];

const MNT_FLAGS: [(u64, &str); 4] = [(1, "MNT_FORCE"), (2, "MNT_DETACH"), (4, "MNT_EXPIRE"), (8, "UMOUNT_NOFOLLOW")];

fn flags_text(mut flags: u64, names: &[(u64, &str)], prefix: Option<&str>) -> String {
    let mut parts: Vec<String> = prefix.map(str::to_owned).into_iter().collect();
    for &(bit, name) in names {
        if flags & bit != 0 {
            parts.push(name.to_owned());
            flags &= !bit;
        }
    }
    if flags != 0 {
        parts.push(format!("0x{flags:x}"));
    }
    if parts.is_empty() { "0x0".to_owned() } else { parts.join("|") }
}

/// mount(2) flags as bcc's mountsnoop writes them (`MS_NOSUID|MS_NODEV`,
/// `0x0` for none; the old magic number in the top half as `MS_MGC_VAL`).
pub fn mount_flags_text(flags: u64) -> String {
    const MS_MGC_MSK: u64 = 0xffff_0000;
    const MS_MGC_VAL: u64 = 0xc0ed_0000;
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags_text(flags & !MS_MGC_MSK, &MS_FLAGS, Some("MS_MGC_VAL"))
    } else {
        flags_text(flags, &MS_FLAGS, None)
    }
}

/// umount2(2) flags (`MNT_DETACH`, `0x0` for none).
pub fn umount_flags_text(flags: u64) -> String {
    flags_text(flags, &MNT_FLAGS, None)
}

/// Mount and umount calls (mountsnoop).
#[derive(Debug)]
pub struct MountSnoop {
    probe: Probe,
    pub(super) ring: Ring,
}

/// What mountsnoop watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountSnoopConfig {
    /// The processes to watch (`None`: all).
    pub selection: Option<Selection>,
}

impl MountSnoop {
    /// Loads and attaches.
    pub fn start(config: MountSnoopConfig) -> Result<Self, ProbeError> {
        let MountSnoopConfig { selection } = config;
        let config = match crate::btf::mnt_ns_offsets()? {
            Some([task_nsproxy, nsproxy_mnt_ns, mnt_ns_inum]) => {
                MountConfig { task_nsproxy, nsproxy_mnt_ns, mnt_ns_inum, valid: 1 }
            }
            None => MountConfig::default(),
        };
        let bytes = bytes_of(&config);
        let mut probe = Probe::load_with(
            TOOL_MOUNTSNOOP,
            Globals { selection, config: ToolConfig::default(), keep: vec![names::MOUNT_EVENTS, names::MOUNT_START] },
            &[(names::MOUNT_CONFIG, &bytes)],
        )?;
        probe.attach_tp(names::MOUNT_ENTER_PROGRAM, "syscalls", "sys_enter_mount")?;
        probe.attach_tp(names::MOUNT_EXIT_PROGRAM, "syscalls", "sys_exit_mount")?;
        probe.attach_tp(names::UMOUNT_ENTER_PROGRAM, "syscalls", "sys_enter_umount")?;
        probe.attach_tp(names::MOUNT_EXIT_PROGRAM, "syscalls", "sys_exit_umount")?;
        let ring = probe.ring(names::MOUNT_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for calls and returns those that returned.
    pub fn events(&mut self, timeout: Duration) -> Vec<MountCall> {
        drain(&mut self.ring, timeout, mount_call)
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
    fn flags_read_as_bcc_writes_them() {
        assert_eq!(mount_flags_text(0), "0x0");
        assert_eq!(mount_flags_text(2 | 4), "MS_NOSUID|MS_NODEV");
        assert_eq!(mount_flags_text(0xc0ed_0000 | 1), "MS_MGC_VAL|MS_RDONLY");
        assert_eq!(mount_flags_text(1 << 30), "0x40000000");
        assert_eq!(umount_flags_text(2), "MNT_DETACH");
        assert_eq!(umount_flags_text(0), "0x0");
    }
}
