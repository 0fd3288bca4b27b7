//! oomkill: the processes the OOM killer chooses, with the process whose
//! allocation triggered it.

use std::time::Duration;

use perfkit_probes_common::{
    names,
    tools::{NO_FIELD, OomEvent, OomFields, TOOL_OOMKILL, ToolConfig},
};

use super::{Globals, Probe, Ring, ToolStats, drain, events, tcpconn::bytes_of, tracefs};
use crate::ProbeError;

/// One OOM kill.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OomKill {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The process whose allocation triggered the OOM killer.
    pub trigger_pid: u32,
    /// Its name.
    pub trigger_comm: String,
    /// The process killed.
    pub victim_pid: u32,
    /// Its name, when the kernel's record carries it (6.x; `None` before).
    pub victim_comm: Option<String>,
    /// The victim's virtual memory size in kB (`None` when the record
    /// lacks it).
    pub total_vm_kb: Option<u64>,
    /// Its anonymous resident memory, kB.
    pub anon_rss_kb: Option<u64>,
    /// Its file-backed resident memory, kB.
    pub file_rss_kb: Option<u64>,
    /// Its shared-memory resident memory, kB.
    pub shmem_rss_kb: Option<u64>,
}

fn oom_kill(bytes: &[u8]) -> Option<OomKill> {
    let e: OomEvent = events::record(bytes)?;
    let kb = |v: u64| (v != u64::MAX).then_some(v);
    Some(OomKill {
        ts_ns: e.ts_ns,
        trigger_pid: e.trigger_pid,
        trigger_comm: events::text(&e.trigger_comm),
        victim_pid: e.victim_pid,
        victim_comm: (e.victim_comm[0] != 0).then(|| events::text(&e.victim_comm)),
        total_vm_kb: kb(e.total_vm_kb),
        anon_rss_kb: kb(e.anon_rss_kb),
        file_rss_kb: kb(e.file_rss_kb),
        shmem_rss_kb: kb(e.shmem_rss_kb),
    })
}

/// OOM kills (oomkill). Every kill on the machine: the OOM killer acts for
/// a cgroup or the whole system, not for a process.
#[derive(Debug)]
pub struct OomKiller {
    probe: Probe,
    pub(super) ring: Ring,
}

/// What oomkill watches: every OOM kill (they are the machine's or a
/// cgroup's, not a process's doing), so nothing yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OomKillConfig {}

impl OomKiller {
    /// Loads and attaches to oom:mark_victim.
    pub fn start(config: OomKillConfig) -> Result<Self, ProbeError> {
        let OomKillConfig {} = config;
        let f = tracefs::fields("oom", "mark_victim")?;
        let at = |name: &str| f.get(name).map_or(NO_FIELD, |f| f.offset);
        let fields = OomFields {
            pid: tracefs::offset(&f, "mark_victim", "pid")?,
            comm: at("comm"),
            total_vm: at("total_vm"),
            anon_rss: at("anon_rss"),
            file_rss: at("file_rss"),
            shmem_rss: at("shmem_rss"),
        };
        let bytes = bytes_of(&fields);
        let mut probe = Probe::load_with(
            TOOL_OOMKILL,
            Globals { selection: None, config: ToolConfig::default(), keep: vec![names::OOM_EVENTS] },
            &[(names::OOM_FIELDS, &bytes)],
        )?;
        probe.attach_tp(names::OOM_VICTIM_PROGRAM, "oom", "mark_victim")?;
        let ring = probe.ring(names::OOM_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for kills and returns those that came.
    pub fn events(&mut self, timeout: Duration) -> Vec<OomKill> {
        drain(&mut self.ring, timeout, oom_kill)
    }

    /// Counters since the start (`events`: kills).
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}
