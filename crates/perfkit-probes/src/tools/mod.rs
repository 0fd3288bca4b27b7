//! The bcc-style tools, user side: each loads its programs from the shipped
//! object, attaches them to tracepoints, and reads typed histograms,
//! counters or events. Nothing here prints on its own: [`run`] runs a tool
//! as bcc's tools run (intervals, a duration, the watched command's exit, a
//! stop flag) and [`text`] writes bcc's layouts into any `Write` and gives
//! the JSON documents as types; the `perfkit` commands and in-house tools
//! choose where output goes.
//!
//! | tool | kernel side | reads |
//! |---|---|---|
//! | [`Runqlat`] | sched_wakeup, sched_wakeup_new, sched_switch (raw) | [`Histogram`]s |
//! | [`BlockIo`] | block:block_rq_insert, block_rq_issue, block_rq_complete | [`Histogram`]s, [`BlockEvent`]s |
//! | [`Syscount`] | raw_syscalls:sys_enter, sys_exit (raw) | [`SyscallCount`]s |
//! | [`ExecSnoop`] | syscalls:sys_enter/exit_execve(at), sched:sched_process_exec | [`ExecEvent`]s |
//! | [`OpenSnoop`] | syscalls:sys_enter/exit_open(at) | [`OpenEvent`]s |
//! | [`TcpLife`] | sock:inet_sock_set_state | [`TcpSession`]s |
//! | [`TcpRetrans`] | tcp:tcp_retransmit_skb | [`Retransmit`]s, [`RetransCount`]s by state (segments, failed attempts apart) |
//! | [`TcpOpens`] | sock:inet_sock_set_state, syscalls:sys_exit_accept(4) | [`TcpOpen`]s (tcpconnect, tcpaccept), [`PortCount`]s |
//! | [`OomKiller`] | oom:mark_victim | [`OomKill`]s |
//! | [`MountSnoop`] | syscalls:sys_enter/exit_mount, sys_enter/exit_umount | [`MountCall`]s |
//! | [`Capable`] | a kprobe on cap_capable (kernels with kprobes) | [`CapCheck`]s |
//! | [`Irqs`] (hardirqs, softirqs) | irq_handler_entry/exit, softirq_entry/exit (raw) | [`IrqTime`]s: a [`Histogram`] per handler or vector |
//! | [`Runqlen`] | a perf_event program on cpu-clock per CPU | a [`Histogram`] of queue lengths per CPU |
//! | [`FuncCounter`] | uprobes, USDT probes, tracepoints ([`ProbeSpec`]) | [`FuncCount`]s |
//! | [`FuncLatency`] | a uprobe and a uretprobe per function | a [`LatencyHistogram`] |
//! | [`Memleak`] | uprobes and uretprobes on a user allocator, or the kmem tracepoints | outstanding [`Allocation`]s, [`StackTotal`]s, stacks |
//! | [`Tracer`] | uprobes, uretprobes, USDT probes, tracepoints ([`TraceProbeSpec`]) | [`TraceMessage`]s |
//! | [`ArgDist`] | the same ([`ArgdistSpec`]) | an [`Aggregate`] per specifier |
//!
//! Every tool counts what it could not record ([`ToolStats`]): events lost
//! to a full ring buffer, starts lost to a full map, ends whose start came
//! before the tool.

mod capable;
pub mod drive;
mod events;
mod hist;
mod irqs;
mod memleak;
pub mod metrics;
mod mountsnoop;
mod oomkill;
pub mod probespec;
pub mod run;
mod runqlen;
pub mod snoop;
mod source;
pub mod syscount;
mod tcpconn;
pub mod text;
mod trace;
pub mod traceexpr;
pub mod tracefs;
pub mod tracetext;
mod ufunc;
mod wakestack;

use std::{
    collections::HashMap,
    fs,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{TracePoint, raw_trace_point::RawTracePointLinkId, trace_point::TracePointLinkId},
};
pub use capable::{CapCheck, Capable, CapableConfig, capability_name, kprobes_available};
pub use events::{BlockEvent, ExecEvent, OpenEvent, Retransmit, TcpSession, disk_name, kernel_dev, tcp_state_name};
pub use hist::Histogram;
pub use irqs::{
    IrqIntervals, IrqKind, IrqReport, IrqRow, IrqRowJson, IrqTime, Irqs, IrqsConfig, softirq_name, write_irq_dists,
    write_irq_table,
};
pub use memleak::{
    Allocation, AllocationJson, Memleak, MemleakConfig, MemleakCountersJson, MemleakMode, MemleakReport, StackGroup,
    StackGroupJson, StackTotal, oldest_first, write_memleak,
};
pub use mountsnoop::{MountCall, MountSnoop, MountSnoopConfig, mount_flags_text, umount_flags_text};
pub use oomkill::{OomKill, OomKillConfig, OomKiller};
pub use perfkit_probes_common::memleak::MemleakStats;
pub use perfkit_probes_common::tools::ToolStats;
use perfkit_probes_common::{
    filter::FilterConfig,
    names,
    tools::{
        BlockFields, MAX_SYSCALLS, OP_DISCARD, OP_FLUSH, OP_READ, OP_SYNC, OP_WRITE, PER_CGROUP, PER_NONE, PER_PIDNS,
        PER_PROCESS, PER_THREAD, SockFields, SyscallKey, SyscallName, SyscallStat, TOOL_BIO, TOOL_EXECSNOOP,
        TOOL_OPENSNOOP, TOOL_RUNQLAT, TOOL_SYSCOUNT, TOOL_TCPACCEPT, TOOL_TCPCONNECT, TOOL_TCPLIFE, TOOL_TCPRETRANS,
        ToolConfig,
    },
};
pub use probespec::{ProbeSpec, ProbeTarget, ResolvedProbe, Resolver, SpecError};
pub use runqlen::{
    DEFAULT_RUNQLEN_HZ, LengthJson, Runqlen, RunqlenConfig, RunqlenHist, RunqlenHistJson, RunqlenIntervals,
    RunqlenReport, occupancy_percent, write_runqlen, write_runqlen_hist,
};
#[cfg(feature = "tokio")]
pub use source::EventStream;
pub use source::{EventSource, Events};
pub use tcpconn::{PortCount, TcpOpen, TcpOpenKind, TcpOpens, TcpOpensConfig};
pub use trace::{
    Aggregate, ArgDist, ArgDistConfig, MAX_DISTINCT, MAX_STRING_SIZE, TraceConfig, TraceMessage, TraceStats, Tracer,
};
pub use traceexpr::{ArgdistMode, ArgdistSpec, ExprError, TraceProbeSpec, Value};
pub use ufunc::{
    FuncCount, FuncCountConfig, FuncCountIntervals, FuncCountReport, FuncCounter, FuncLatency, FuncLatencyConfig,
    FuncLatencyReport, LatencyHistogram, LatencyUnit, ProbeCountJson, write_funccount,
};
pub use wakestack::{
    CountedStack, StackCountConfig, StackCountReport, StackCountRow, StackCountRowJson, StackCounter, StackKinds,
    WakerRow, WakerRowJson, WakeupStack, WakeupTime, WakeupTimeConfig, WakeuptimeReport, stack_addresses,
    write_stackcount, write_stackcount_folded, write_wakeuptime, write_wakeuptime_folded,
};

use crate::{KernelFeatures, ProbeError, Selection, object, sampler::filter_config};

/// Ring buffers in the object, and the size each tool's own gets.
const RINGS: [&str; 12] = [
    names::TCP_CONN_EVENTS,
    names::OOM_EVENTS,
    names::MOUNT_EVENTS,
    names::CAPABLE_EVENTS,
    names::BIO_EVENTS,
    names::EXEC_EVENTS,
    names::OPEN_EVENTS,
    names::TCP_LIFE_EVENTS,
    names::TCP_RETRANS_EVENTS,
    names::REQUESTS,
    names::LATE,
    perfkit_probes_common::trace::EVENTS,
];

/// Ring buffer bytes for a tool that streams events.
pub const DEFAULT_RING_BYTES: u32 = 4 << 20;

/// A loaded object with some programs attached.
struct Probe {
    ebpf: Ebpf,
    raw: Vec<(&'static str, RawTracePointLinkId)>,
    tps: Vec<(&'static str, TracePointLinkId)>,
    tool: u32,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("tool", &self.tool).finish_non_exhaustive()
    }
}

/// Shrinks the maps a tool does not use to their minimum, so that loading
/// the shared object for one tool does not allocate the others' memory.
pub(crate) fn shrink_unused(loader: &mut EbpfLoader<'_>, keep: &[&str]) {
    for ring in RINGS {
        if !keep.contains(&ring) {
            loader.map_max_entries(ring, 4096);
        }
    }
    for map in [
        names::ROWS,
        names::PROCS,
        names::PAGES,
        names::FILE_STATE,
        names::OFF_CPU_START,
        names::COUNTS,
        names::STACKS,
        names::TARGET_TGIDS,
        names::TARGET_TIDS,
        names::SYSCALL_NAMES,
        names::RUNQ_START,
        names::RUNQ_HIST,
        names::SYS_COUNTS,
        names::SYS_START,
        names::TOOL_COMMS,
        names::TCP_ACCEPT_PENDING,
        names::TCP_PORT_COUNTS,
        names::MOUNT_START,
        names::IRQ_HIST,
        perfkit_probes_common::ufunc::START,
        perfkit_probes_common::memleak::ALLOCS,
        perfkit_probes_common::memleak::COMBINED,
        perfkit_probes_common::memleak::STACKS,
        perfkit_probes_common::memleak::SIZES,
        perfkit_probes_common::memleak::MEMPTRS,
        perfkit_probes_common::wakestack::WAKE_START,
        perfkit_probes_common::wakestack::WAKE_COUNTS,
        perfkit_probes_common::wakestack::STACKCOUNT_COUNTS,
        perfkit_probes_common::wakestack::STACK_IDS,
    ] {
        if !keep.contains(&map) {
            loader.map_max_entries(map, 1);
        }
    }
}

struct Globals {
    selection: Option<Selection>,
    config: ToolConfig,
    /// The maps the tool uses; its ring buffers get [`DEFAULT_RING_BYTES`].
    keep: Vec<&'static str>,
}

impl Probe {
    fn load(tool: u32, g: Globals) -> Result<Self, ProbeError> {
        Self::load_with(tool, g, &[])
    }

    /// [`Probe::load`], with a tool's own globals set (name, bytes).
    fn load_with(tool: u32, g: Globals, extra: &[(&'static str, &[u8])]) -> Result<Self, ProbeError> {
        Self::load_sized(tool, g, extra, &[])
    }

    /// [`Probe::load_with`], with some of the tool's maps sized (name,
    /// entries).
    fn load_sized(
        tool: u32,
        g: Globals,
        extra: &[(&'static str, &[u8])],
        sizes: &[(&'static str, u32)],
    ) -> Result<Self, ProbeError> {
        if let Some(missing) = crate::privileges::missing_for_bpf() {
            return Err(ProbeError::PermissionDenied { what: "loading BPF programs", missing });
        }
        let offsets = crate::btf::kernel_offsets()?;
        let (tool_offsets, missing) = crate::btf::tool_offsets()?;
        if !missing.is_empty() {
            tracing::debug!(?missing, "kernel fields the tools cannot read");
        }
        let filter = g.selection.as_ref().map_or(
            FilterConfig { mode: perfkit_probes_common::filter::MODE_ALL, ..FilterConfig::default() },
            filter_config,
        );
        let (block, sock) = if tool == TOOL_BIO {
            (block_fields()?, SockFields::default())
        } else if [TOOL_TCPLIFE, TOOL_TCPRETRANS, TOOL_TCPCONNECT, TOOL_TCPACCEPT].contains(&tool) {
            (BlockFields::default(), sock_fields()?)
        } else {
            (BlockFields::default(), SockFields::default())
        };
        let mut keep = g.keep.clone();
        match &g.selection {
            Some(Selection::Processes { .. }) => keep.push(names::TARGET_TGIDS),
            Some(Selection::Threads(_)) => keep.push(names::TARGET_TIDS),
            _ => {}
        }
        let mut loader = object::loader();
        loader
            .override_global(names::FILTER, &filter, true)
            .override_global(names::OFFSETS, &offsets, true)
            .override_global(names::TOOL_CONFIG, &g.config, true)
            .override_global(names::TOOL_OFFSETS, &tool_offsets, true)
            .override_global(names::BLOCK_FIELDS, &block, true)
            .override_global(names::SOCK_FIELDS, &sock, true);
        for &(name, bytes) in extra {
            loader.override_global(name, bytes, true);
        }
        shrink_unused(&mut loader, &keep);
        for &(map, entries) in sizes {
            loader.map_max_entries(map, entries);
        }
        for ring in RINGS {
            if keep.contains(&ring) && ring != names::REQUESTS {
                loader.map_max_entries(ring, DEFAULT_RING_BYTES);
            }
        }
        let mut ebpf = object::load(&mut loader)?;
        if let Some(selection) = &g.selection {
            object::fill_selection(&mut ebpf, selection)?;
        }
        let mut probe = Self { ebpf, raw: Vec::new(), tps: Vec::new(), tool };
        if let Some(Selection::Processes { follow_children: true, .. }) = &g.selection {
            probe.attach_raw(names::FORK_PROGRAM, "sched_process_fork")?;
            probe.attach_raw(KernelFeatures::detect()?.programs().exit, "sched_process_exit")?;
        }
        Ok(probe)
    }

    fn attach_raw(&mut self, program: &'static str, tracepoint: &'static str) -> Result<(), ProbeError> {
        let link = object::attach_raw(&mut self.ebpf, program, tracepoint)?;
        self.raw.push((program, link));
        Ok(())
    }

    fn attach_tp(
        &mut self,
        program: &'static str,
        category: &'static str,
        name: &'static str,
    ) -> Result<(), ProbeError> {
        if !tracefs::root()?.join("events").join(category).join(name).is_dir() {
            return Err(ProbeError::MissingTracepoint { category: category.to_owned(), name: name.to_owned() });
        }
        let p: &mut TracePoint = object::program(&mut self.ebpf, program)?;
        if p.fd().is_err() {
            p.load().map_err(object::load_error)?;
        }
        let link = p.attach(category, name).map_err(object::tracepoint_error(program, name))?;
        self.tps.push((program, link));
        Ok(())
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, ProbeError> {
        object::map(&self.ebpf, name)
    }

    /// The names the tool remembered (`TOOL_COMMS`), escaped for printing.
    fn comms(&self) -> Result<HashMap<u32, String>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::TOOL_COMMS, source };
        let map: aya::maps::HashMap<&MapData, u32, [u8; perfkit_probes_common::COMM_LEN]> =
            aya::maps::HashMap::try_from(self.map(names::TOOL_COMMS)?).map_err(map_err)?;
        let mut out = HashMap::new();
        for item in map.iter() {
            let (id, comm) = item.map_err(map_err)?;
            let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
            out.insert(id, perfkit_model::escape_bytes(&comm[..len]));
        }
        Ok(out)
    }

    fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.stats_of(self.tool)
    }

    /// The counters of one tool's slot.
    fn stats_of(&self, tool: u32) -> Result<ToolStats, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::TOOL_STATS, source };
        let stats: PerCpuArray<&MapData, ToolStats> =
            PerCpuArray::try_from(self.map(names::TOOL_STATS)?).map_err(map_err)?;
        let mut total = ToolStats::default();
        for cpu in stats.get(&tool, 0).map_err(map_err)?.iter() {
            total.merge(cpu);
        }
        Ok(total)
    }

    fn ring(&mut self, name: &'static str) -> Result<Ring, ProbeError> {
        RingBuf::try_from(object::take_map(&mut self.ebpf, name)?)
            .map(Ring)
            .map_err(|source| ProbeError::Map { map: name, source })
    }

    fn detach(&mut self) {
        object::detach_raw(&mut self.ebpf, self.raw.drain(..));
        for (name, link) in self.tps.drain(..) {
            if let Some(p) = self.ebpf.program_mut(name)
                && let Ok(p) = <&mut TracePoint>::try_from(p)
            {
                let _ = p.detach(link);
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.detach();
    }
}

fn block_fields() -> Result<BlockFields, ProbeError> {
    let issue = tracefs::fields("block", "block_rq_issue")?;
    let complete = tracefs::fields("block", "block_rq_complete")?;
    let at = |f: &HashMap<String, tracefs::Field>, ev: &str, name: &str| tracefs::offset(f, ev, name);
    Ok(BlockFields {
        dev: at(&issue, "block_rq_issue", "dev")?,
        sector: at(&issue, "block_rq_issue", "sector")?,
        nr_sector: at(&issue, "block_rq_issue", "nr_sector")?,
        bytes: issue.get("bytes").map_or(u32::MAX, |f| f.offset),
        rwbs: at(&issue, "block_rq_issue", "rwbs")?,
        rwbs_len: issue.get("rwbs").map_or(8, |f| f.size),
        complete_dev: at(&complete, "block_rq_complete", "dev")?,
        complete_sector: at(&complete, "block_rq_complete", "sector")?,
        complete_error: at(&complete, "block_rq_complete", "error")?,
        complete_rwbs: at(&complete, "block_rq_complete", "rwbs")?,
    })
}

fn sock_fields() -> Result<SockFields, ProbeError> {
    let state = tracefs::fields("sock", "inet_sock_set_state")?;
    let retrans = tracefs::fields("tcp", "tcp_retransmit_skb")?;
    let mut out = SockFields::default();
    let s = [
        "skaddr", "oldstate", "newstate", "sport", "dport", "family", "protocol", "saddr", "daddr", "saddr_v6",
        "daddr_v6",
    ];
    for (i, name) in s.iter().enumerate() {
        out.state[i] = tracefs::offset(&state, "inet_sock_set_state", name)?;
    }
    let r = ["skaddr", "state", "sport", "dport", "family", "saddr", "daddr", "saddr_v6", "daddr_v6", "skbaddr", "err"];
    for (i, name) in r.iter().enumerate() {
        out.retrans[i] = match tracefs::offset(&retrans, "tcp_retransmit_skb", name) {
            // Added in 5.12; before, the kernel side tells IPv4 from the
            // v4-mapped IPv6 addresses the record always carries.
            Err(_) if *name == "family" => perfkit_probes_common::tools::NO_FIELD,
            // Newer kernels trace failed attempts too, with their error;
            // older ones trace only successful retransmissions.
            Err(_) if *name == "err" => perfkit_probes_common::tools::NO_FIELD,
            other => other?,
        };
    }
    Ok(out)
}

/// What a runqlat histogram is per.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunqlatPer {
    /// One histogram.
    #[default]
    All,
    /// Per process (bcc's `-P`).
    Process,
    /// Per thread (bcc's `-L`).
    Thread,
    /// Per PID namespace (bcc's `--pidnss`).
    PidNamespace,
    /// Per cgroup v2 group (its id).
    Cgroup,
}

/// The one shape of every tool: a configuration (which tasks, as a
/// [`Selection`], and the tool's options) -> [`start`](Tool::start) -> a
/// handle that reads what the kernel side gathered ([`Histogram`]s,
/// counts, or events through [`EventSource`]) and its loss counters.
///
/// ```no_run
/// use perfkit_probes::tools::{Runqlat, RunqlatConfig, RunqlatPer, Tool};
///
/// let mut config = RunqlatConfig::default();
/// config.per = RunqlatPer::Process;
/// let runqlat = Runqlat::start(config)?;
/// # Ok::<(), perfkit_probes::ProbeError>(())
/// ```
pub trait Tool: Sized {
    /// What to watch and how.
    type Config;

    /// Loads the tool's programs and attaches them.
    fn start(config: Self::Config) -> Result<Self, ProbeError>;

    /// Counters since the start: events seen and lost.
    fn stats(&self) -> Result<ToolStats, ProbeError>;
}

macro_rules! tool {
    ($tool:ty, $config:ty) => {
        impl Tool for $tool {
            type Config = $config;

            fn start(config: $config) -> Result<Self, ProbeError> {
                <$tool>::start(config)
            }

            fn stats(&self) -> Result<ToolStats, ProbeError> {
                <$tool>::stats(self)
            }
        }
    };
}

tool!(Runqlat, RunqlatConfig);
tool!(BlockIo, BlockIoConfig);
tool!(Syscount, SyscountConfig);
tool!(ExecSnoop, ExecSnoopConfig);
tool!(OpenSnoop, OpenSnoopConfig);
tool!(TcpLife, TcpLifeConfig);
tool!(TcpRetrans, TcpRetransConfig);
tool!(TcpOpens, TcpOpensConfig);
tool!(OomKiller, OomKillConfig);
tool!(MountSnoop, MountSnoopConfig);
tool!(Capable, CapableConfig);
tool!(Runqlen, RunqlenConfig);
tool!(FuncCounter, FuncCountConfig);
tool!(FuncLatency, FuncLatencyConfig);
tool!(Memleak, MemleakConfig);
tool!(Tracer, TraceConfig);
tool!(ArgDist, ArgDistConfig);

impl Tool for Irqs {
    type Config = IrqsConfig;

    fn start(config: IrqsConfig) -> Result<Self, ProbeError> {
        Irqs::start(config)
    }

    /// Hard and soft IRQs' counters together ([`Irqs::stats`] has each).
    fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.total_stats()
    }
}

/// What runqlat watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunqlatConfig {
    /// The threads to watch (`None`: all).
    pub selection: Option<Selection>,
    /// What each histogram is per.
    pub per: RunqlatPer,
}

/// Run-queue latency: how long runnable threads wait for a CPU.
#[derive(Debug)]
pub struct Runqlat {
    probe: Probe,
}

impl Runqlat {
    /// Loads and attaches.
    pub fn start(config: RunqlatConfig) -> Result<Self, ProbeError> {
        let RunqlatConfig { selection, per } = config;
        let config = ToolConfig {
            runq_per: match per {
                RunqlatPer::All => PER_NONE,
                RunqlatPer::Process => PER_PROCESS,
                RunqlatPer::Thread => PER_THREAD,
                RunqlatPer::PidNamespace => PER_PIDNS,
                RunqlatPer::Cgroup => PER_CGROUP,
            },
            ..ToolConfig::default()
        };
        let (_, missing) = crate::btf::tool_offsets()?;
        if (matches!(per, RunqlatPer::Cgroup) || matches!(selection, Some(Selection::Cgroup { .. })))
            && let Some(m) = missing.iter().find(|m| {
                m.starts_with("cgroup")
                    || m.starts_with("css_set")
                    || m.starts_with("kernfs")
                    || m.starts_with("task_struct.cgroups")
            })
        {
            return Err(ProbeError::Btf(format!("the kernel's BTF has no field {m}, needed to tell cgroups apart")));
        }
        let mut keep = vec![names::RUNQ_START, names::RUNQ_HIST];
        if matches!(per, RunqlatPer::Process | RunqlatPer::Thread) {
            keep.push(names::TOOL_COMMS);
        }
        let mut probe = Probe::load(TOOL_RUNQLAT, Globals { selection, config, keep })?;
        probe.attach_raw(names::RUNQ_WAKEUP_PROGRAM, "sched_wakeup")?;
        probe.attach_raw(names::RUNQ_WAKEUP_NEW_PROGRAM, "sched_wakeup_new")?;
        probe.attach_raw(names::RUNQ_SWITCH_PROGRAM, "sched_switch")?;
        Ok(Self { probe })
    }

    /// The histograms since the start (microsecond buckets), by id.
    pub fn histograms(&self) -> Result<Vec<Histogram>, ProbeError> {
        hist::read(self.probe.map(names::RUNQ_HIST)?, names::RUNQ_HIST)
    }

    /// Per process or thread: the name of each id counted, as it was when
    /// first counted (kept after the process exits; empty otherwise).
    pub fn names(&self) -> Result<HashMap<u32, String>, ProbeError> {
        self.probe.comms()
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

/// What biolatency measures and how it splits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockIoConfig {
    /// Keep latency histograms.
    pub histograms: bool,
    /// One histogram per disk (bcc's `-D`).
    pub per_disk: bool,
    /// One histogram per operation (bcc's `-F`).
    pub per_flags: bool,
    /// Measure from insertion into the OS queue, not from issue to the
    /// device (bcc's `-Q`).
    pub queued: bool,
    /// Stream one event per completed I/O (biosnoop).
    pub events: bool,
}

/// Block I/O latency (biolatency) and events (biosnoop).
#[derive(Debug)]
pub struct BlockIo {
    probe: Probe,
    ring: Ring,
}

impl BlockIo {
    /// Loads and attaches. Block I/O is not filtered by process: a disk
    /// serves whoever queued it, and completions run in interrupts.
    pub fn start(config: BlockIoConfig) -> Result<Self, ProbeError> {
        let tool_config = ToolConfig {
            bio_hist: u32::from(config.histograms),
            bio_per_disk: u32::from(config.per_disk),
            bio_per_flags: u32::from(config.per_flags),
            bio_queued: u32::from(config.queued),
            bio_snoop: u32::from(config.events),
            ..ToolConfig::default()
        };
        let keep = if config.events { vec![names::BIO_EVENTS] } else { vec![] };
        let mut probe = Probe::load(TOOL_BIO, Globals { selection: None, config: tool_config, keep })?;
        if config.queued {
            probe.attach_tp(names::BIO_INSERT_PROGRAM, "block", "block_rq_insert")?;
        }
        probe.attach_tp(names::BIO_ISSUE_PROGRAM, "block", "block_rq_issue")?;
        probe.attach_tp(names::BIO_COMPLETE_PROGRAM, "block", "block_rq_complete")?;
        // Without events the ring is the smallest one and stays empty; it
        // is there so that every BlockIo has a descriptor to watch.
        let ring = probe.ring(names::BIO_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// The histograms since the start: `id` is the device number (with
    /// `per_disk`), `sub` the operation (with `per_flags`, see
    /// [`operation_name`]).
    pub fn histograms(&self) -> Result<Vec<Histogram>, ProbeError> {
        hist::read(self.probe.map(names::BIO_HIST)?, names::BIO_HIST)
    }

    /// Waits up to `timeout` for events and returns those that came.
    pub fn events(&mut self, timeout: Duration) -> Vec<BlockEvent> {
        drain(&mut self.ring, timeout, events::block_event)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

/// The name of a biolatency operation (`sub` of a per-flags histogram).
pub fn operation_name(op: u32) -> String {
    let base = match op & 0xf {
        OP_READ => "Read",
        OP_WRITE => "Write",
        OP_DISCARD => "Discard",
        OP_FLUSH => "Flush",
        _ => "Other",
    };
    if op & OP_SYNC != 0 { format!("Sync-{base}") } else { base.to_owned() }
}

/// What syscount counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyscountConfig {
    /// The threads to count (`None`: all).
    pub selection: Option<Selection>,
    /// Per process (bcc's `-P`).
    pub per_process: bool,
    /// Time each call (bcc's `-L`).
    pub latency: bool,
    /// Failed calls only (bcc's `-x`).
    pub failed_only: bool,
}

/// Calls of one syscall (by one process with `per_process`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyscallCount {
    /// The process, or 0.
    pub pid: u32,
    /// The syscall number.
    pub nr: u32,
    /// Calls.
    pub count: u64,
    /// Failed calls.
    pub errors: u64,
    /// Time in the calls, in nanoseconds (with latency).
    pub total_ns: u64,
}

/// Syscall counts (and latency).
#[derive(Debug)]
pub struct Syscount {
    probe: Probe,
    names: HashMap<u32, String>,
}

impl Syscount {
    /// Loads and attaches; reads the syscall names from the kernel first.
    pub fn start(config: SyscountConfig) -> Result<Self, ProbeError> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let tool_config = ToolConfig {
            sys_per_process: u32::from(config.per_process),
            sys_latency: u32::from(config.latency),
            sys_failed_only: u32::from(config.failed_only),
            names_tid: tid,
            ..ToolConfig::default()
        };
        let mut probe = Probe::load(
            TOOL_SYSCOUNT,
            Globals {
                selection: config.selection,
                config: tool_config,
                keep: vec![names::SYSCALL_NAMES, names::SYS_COUNTS, names::SYS_START, names::TOOL_COMMS],
            },
        )?;
        let names = match read_syscall_names(&mut probe) {
            Ok(n) if !n.is_empty() => n,
            Ok(_) => {
                tracing::warn!("the kernel's syscall metadata could not be read; syscalls are named by number");
                HashMap::new()
            }
            Err(e) => {
                tracing::warn!(%e, "reading the kernel's syscall names failed; syscalls are named by number");
                HashMap::new()
            }
        };
        // Syscall entries matter only for their latency.
        if tool_config.sys_latency != 0 {
            probe.attach_raw(names::SYS_ENTER_PROGRAM, "sys_enter")?;
        }
        probe.attach_raw(names::SYS_EXIT_PROGRAM, "sys_exit")?;
        Ok(Self { probe, names })
    }

    /// Syscall names by number, as the kernel names them (`openat`).
    pub fn names(&self) -> &HashMap<u32, String> {
        &self.names
    }

    /// A syscall's name, or `syscall_NR`.
    pub fn name(&self, nr: u32) -> String {
        self.names.get(&nr).cloned().unwrap_or_else(|| format!("syscall_{nr}"))
    }

    /// Per process: the name of each process counted, as it was when first
    /// counted (kept after the process exits).
    pub fn process_names(&self) -> Result<HashMap<u32, String>, ProbeError> {
        self.probe.comms()
    }

    /// The counts since the start.
    pub fn counts(&self) -> Result<Vec<SyscallCount>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::SYS_COUNTS, source };
        let map: aya::maps::PerCpuHashMap<&MapData, SyscallKey, SyscallStat> =
            aya::maps::PerCpuHashMap::try_from(self.probe.map(names::SYS_COUNTS)?).map_err(map_err)?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, per_cpu) = item.map_err(map_err)?;
            let mut c = SyscallCount { pid: k.pid, nr: k.nr, count: 0, errors: 0, total_ns: 0 };
            for v in per_cpu.iter() {
                c.count = c.count.saturating_add(v.count);
                c.errors = c.errors.saturating_add(v.errors);
                c.total_ns = c.total_ns.saturating_add(v.total_ns);
            }
            out.push(c);
        }
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.nr.cmp(&b.nr)).then(a.pid.cmp(&b.pid)));
        Ok(out)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

/// A text symbol's address from /proc/kallsyms (`None` when absent or
/// hidden by kptr_restrict).
fn kallsyms_address(symbol: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let (addr, _, name) = (parts.next()?, parts.next()?, parts.next()?);
        (name == symbol).then(|| u64::from_str_radix(addr, 16).ok()).flatten().filter(|&a| a != 0)
    })
}

/// The targets of RIP-relative 64-bit loads (`mov disp32(%rip), %r64`) in
/// x86-64 code at `base`: where a function reads a global pointer.
fn rip_relative_loads(code: &[u8], base: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..code.len().saturating_sub(7) {
        let (rex, op, modrm) = (code[i], code[i + 1], code[i + 2]);
        if (rex == 0x48 || rex == 0x4c) && op == 0x8b && modrm & 0xc7 == 0x05 {
            let disp = i32::from_le_bytes([code[i + 3], code[i + 4], code[i + 5], code[i + 6]]);
            out.push(base.wrapping_add((i + 7) as u64).wrapping_add(disp as i64 as u64));
        }
    }
    out
}

/// Runs one step of the kernel side's name reader, in this thread.
fn names_step(probe: &mut Probe, step: u64, addr: u64, first: u32) -> Result<(), ProbeError> {
    let map_err = |source| ProbeError::Map { map: names::SYSCALL_NAMES_REQUEST, source };
    let mut request: Array<&mut MapData, u64> =
        Array::try_from(object::map_mut(&mut probe.ebpf, names::SYSCALL_NAMES_REQUEST)?).map_err(map_err)?;
    request.set(perfkit_probes_common::tools::NAMES_STEP, step, 0).map_err(map_err)?;
    request.set(perfkit_probes_common::tools::NAMES_ADDR, addr, 0).map_err(map_err)?;
    request.set(perfkit_probes_common::tools::NAMES_FIRST, u64::from(first), 0).map_err(map_err)?;
    // Any syscall on this thread runs the reader once.
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() };
    Ok(())
}

/// Reads the syscall names from the kernel's own metadata: the table that
/// `get_syscall_name` reads (found in its code), each entry checked
/// against the number it holds.
fn read_syscall_names(probe: &mut Probe) -> Result<HashMap<u32, String>, ProbeError> {
    use perfkit_probes_common::tools::{NAMES_CODE_LEN, NAMES_PER_RUN, NAMES_STEP_CODE, NAMES_STEP_TABLE};
    let Some(function) = kallsyms_address("get_syscall_name") else { return Ok(HashMap::new()) };
    probe.attach_raw(names::SYSCALL_NAMES_PROGRAM, "sys_enter")?;
    let result = (|| {
        names_step(probe, NAMES_STEP_CODE, function, 0)?;
        let map_err = |source| ProbeError::Map { map: names::SYSCALL_NAMES_CODE, source };
        let code: Array<&MapData, [u8; NAMES_CODE_LEN]> =
            Array::try_from(probe.map(names::SYSCALL_NAMES_CODE)?).map_err(map_err)?;
        let code = code.get(&0, 0).map_err(map_err)?;
        for candidate in rip_relative_loads(&code, function) {
            for first in (0..MAX_SYSCALLS).step_by(NAMES_PER_RUN as usize) {
                names_step(probe, NAMES_STEP_TABLE, candidate, first)?;
            }
            let names = syscall_names_read(probe)?;
            // The real table names hundreds of syscalls, each checked.
            if names.len() >= 64 {
                return Ok(names);
            }
        }
        Ok(HashMap::new())
    })();
    object::detach_raw(&mut probe.ebpf, probe.raw.pop());
    result
}

fn syscall_names_read(probe: &Probe) -> Result<HashMap<u32, String>, ProbeError> {
    let map_err = |source| ProbeError::Map { map: names::SYSCALL_NAMES, source };
    let array: Array<&MapData, SyscallName> = Array::try_from(probe.map(names::SYSCALL_NAMES)?).map_err(map_err)?;
    let mut out = HashMap::new();
    for nr in 0..MAX_SYSCALLS {
        let Ok(n) = array.get(&nr, 0) else { continue };
        let len = n.name.iter().position(|&b| b == 0).unwrap_or(n.name.len());
        if len == 0 {
            continue;
        }
        let name = String::from_utf8_lossy(&n.name[..len]);
        out.insert(nr, name.strip_prefix("sys_").unwrap_or(&name).to_owned());
    }
    Ok(out)
}

/// What execsnoop watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecSnoopConfig {
    /// The processes to watch (`None`: all).
    pub selection: Option<Selection>,
}

/// Exec events (execsnoop).
#[derive(Debug)]
pub struct ExecSnoop {
    probe: Probe,
    ring: Ring,
    pending: HashMap<u32, ExecEvent>,
}

impl ExecSnoop {
    /// Loads and attaches.
    pub fn start(config: ExecSnoopConfig) -> Result<Self, ProbeError> {
        let ExecSnoopConfig { selection } = config;
        let mut probe = Probe::load(
            TOOL_EXECSNOOP,
            Globals { selection, config: ToolConfig::default(), keep: vec![names::EXEC_EVENTS] },
        )?;
        probe.attach_tp(names::EXEC_ENTER_PROGRAM, "syscalls", "sys_enter_execve")?;
        probe.attach_tp(names::EXEC_EXIT_PROGRAM, "syscalls", "sys_exit_execve")?;
        // The new image's path and argv (before sys_exit_execve(at)).
        probe.attach_tp(names::EXEC_IMAGE_PROGRAM, "sched", "sched_process_exec")?;
        // execveat is newer; without it, execve alone is watched.
        if probe.attach_tp(names::EXECAT_ENTER_PROGRAM, "syscalls", "sys_enter_execveat").is_ok() {
            let _ = probe.attach_tp(names::EXEC_EXIT_PROGRAM, "syscalls", "sys_exit_execveat");
        }
        let ring = probe.ring(names::EXEC_EVENTS)?;
        Ok(Self { probe, ring, pending: HashMap::new() })
    }

    /// Waits up to `timeout` for execs and returns those that returned
    /// (each with its arguments and result).
    pub fn events(&mut self, timeout: Duration) -> Vec<ExecEvent> {
        let parts = drain(&mut self.ring, timeout, events::exec_part);
        events::join_execs(&mut self.pending, parts)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

/// What opensnoop watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenSnoopConfig {
    /// The processes to watch (`None`: all).
    pub selection: Option<Selection>,
    /// Only opens that fail (bcc's `-x`).
    pub failed_only: bool,
}

/// Open events (opensnoop).
#[derive(Debug)]
pub struct OpenSnoop {
    probe: Probe,
    ring: Ring,
}

impl OpenSnoop {
    /// Loads and attaches.
    pub fn start(config: OpenSnoopConfig) -> Result<Self, ProbeError> {
        let OpenSnoopConfig { selection, failed_only } = config;
        let config = ToolConfig { open_failed_only: u32::from(failed_only), ..ToolConfig::default() };
        let mut probe = Probe::load(TOOL_OPENSNOOP, Globals { selection, config, keep: vec![names::OPEN_EVENTS] })?;
        probe.attach_tp(names::OPENAT_ENTER_PROGRAM, "syscalls", "sys_enter_openat")?;
        probe.attach_tp(names::OPEN_EXIT_PROGRAM, "syscalls", "sys_exit_openat")?;
        // open(2) exists on x86-64 but not on newer architectures.
        if probe.attach_tp(names::OPEN_ENTER_PROGRAM, "syscalls", "sys_enter_open").is_ok() {
            probe.attach_tp(names::OPEN_EXIT_PROGRAM, "syscalls", "sys_exit_open")?;
        }
        let ring = probe.ring(names::OPEN_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for opens and returns those that came.
    pub fn events(&mut self, timeout: Duration) -> Vec<OpenEvent> {
        drain(&mut self.ring, timeout, events::open_event)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

/// What tcplife watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpLifeConfig {
    /// The processes whose sessions are reported (`None`: all; the kernel
    /// filters on the owner it recorded).
    pub selection: Option<Selection>,
}

/// TCP sessions (tcplife).
#[derive(Debug)]
pub struct TcpLife {
    probe: Probe,
    ring: Ring,
}

impl TcpLife {
    /// Loads and attaches.
    pub fn start(config: TcpLifeConfig) -> Result<Self, ProbeError> {
        let TcpLifeConfig { selection } = config;
        let (_, missing) = crate::btf::tool_offsets()?;
        if let Some(m) = missing.iter().find(|m| m.starts_with("tcp_sock")) {
            return Err(ProbeError::Btf(format!("the kernel's BTF has no field {m}, needed for bytes in and out")));
        }
        let mut probe = Probe::load(
            TOOL_TCPLIFE,
            Globals { selection, config: ToolConfig::default(), keep: vec![names::TCP_LIFE_EVENTS] },
        )?;
        probe.attach_tp(names::TCP_STATE_PROGRAM, "sock", "inet_sock_set_state")?;
        let ring = probe.ring(names::TCP_LIFE_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for sessions to close and returns them.
    pub fn events(&mut self, timeout: Duration) -> Vec<TcpSession> {
        drain(&mut self.ring, timeout, events::tcp_session)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

/// Retransmissions in one TCP state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetransCount {
    /// The state (`ESTABLISHED`...).
    pub state: &'static str,
    /// Successful retransmissions (skbs sent again).
    pub retransmissions: u64,
    /// Their segments (`tcp_skb_pcount()`), what the kernel's
    /// `RetransSegs` counts.
    pub segments: u64,
    /// Failed attempts (the skb was not sent: `-EBUSY` while an earlier
    /// copy is still queued below TCP, `-ENOMEM`...); traced by newer
    /// kernels only.
    pub failed: u64,
    /// Their segments.
    pub failed_segments: u64,
}

/// What tcpretrans watches: every socket (retransmissions run in timers
/// and softirqs, not in their owner's context), so nothing yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpRetransConfig {}

/// TCP retransmissions (tcpretrans).
#[derive(Debug)]
pub struct TcpRetrans {
    probe: Probe,
    ring: Ring,
}

impl TcpRetrans {
    /// Loads and attaches (every socket).
    pub fn start(config: TcpRetransConfig) -> Result<Self, ProbeError> {
        let TcpRetransConfig {} = config;
        let mut probe = Probe::load(
            TOOL_TCPRETRANS,
            Globals { selection: None, config: ToolConfig::default(), keep: vec![names::TCP_RETRANS_EVENTS] },
        )?;
        let (_, missing) = crate::btf::tool_offsets()?;
        if let Some(m) = missing.iter().find(|m| m.starts_with("sk_buff") || m.starts_with("tcp_skb_cb")) {
            return Err(ProbeError::Btf(format!(
                "the kernel's BTF has no field {m}, needed to count the segments of a retransmission"
            )));
        }
        probe.attach_tp(names::TCP_RETRANS_PROGRAM, "tcp", "tcp_retransmit_skb")?;
        let ring = probe.ring(names::TCP_RETRANS_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for retransmissions and returns them.
    pub fn events(&mut self, timeout: Duration) -> Vec<Retransmit> {
        drain(&mut self.ring, timeout, events::retransmit)
    }

    /// Retransmissions since the start, by TCP state (states with any).
    pub fn counts(&self) -> Result<Vec<RetransCount>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::TCP_RETRANS_COUNTS, source };
        let array: Array<&MapData, u64> =
            Array::try_from(self.probe.map(names::TCP_RETRANS_COUNTS)?).map_err(map_err)?;
        let slot = |kind: u32, state: u32| array.get(&(16 * kind + state), 0).map_err(map_err);
        let mut out = Vec::new();
        for state in 0..16u32 {
            let c = RetransCount {
                state: events::tcp_state_name(state),
                retransmissions: slot(perfkit_probes_common::tools::RETRANS_HITS, state)?,
                segments: slot(perfkit_probes_common::tools::RETRANS_SEGS, state)?,
                failed: slot(perfkit_probes_common::tools::RETRANS_FAILED, state)?,
                failed_segments: slot(perfkit_probes_common::tools::RETRANS_FAILED_SEGS, state)?,
            };
            if c.retransmissions > 0 || c.failed > 0 {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        self.probe.stats()
    }
}

macro_rules! event_source {
    ($tool:ty, $event:ty) => {
        impl AsFd for $tool {
            /// Readable when the kernel side has written events.
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.ring.0.as_fd()
            }
        }

        impl source::sealed::Sealed for $tool {}

        impl EventSource for $tool {
            type Event = $event;

            fn poll_events(&mut self, timeout: Duration) -> Vec<$event> {
                self.events(timeout)
            }
        }
    };
}

event_source!(BlockIo, BlockEvent);
event_source!(ExecSnoop, ExecEvent);
event_source!(OpenSnoop, OpenEvent);
event_source!(TcpLife, TcpSession);
event_source!(TcpRetrans, Retransmit);
event_source!(TcpOpens, TcpOpen);
event_source!(OomKiller, OomKill);
event_source!(MountSnoop, MountCall);
event_source!(Capable, CapCheck);

/// A ring buffer of events.
struct Ring(RingBuf<MapData>);

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ring")
    }
}

/// Reads what a ring buffer holds, waiting up to `timeout` for the first
/// item.
fn drain<T>(ring: &mut Ring, timeout: Duration, parse: impl Fn(&[u8]) -> Option<T>) -> Vec<T> {
    let ring = &mut ring.0;
    let mut out = Vec::new();
    let read = |ring: &mut RingBuf<MapData>, out: &mut Vec<T>| {
        while let Some(item) = ring.next() {
            if let Some(v) = parse(&item) {
                out.push(v);
            }
        }
    };
    read(ring, &mut out);
    if out.is_empty() && !timeout.is_zero() {
        let mut pfd = libc::pollfd { fd: ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        read(ring, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rip_relative_loads() {
        // endbr64; mov 0x1234(%rip),%rax; ret
        let code = [0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8b, 0x05, 0x34, 0x12, 0x00, 0x00, 0xc3, 0, 0, 0, 0];
        assert_eq!(rip_relative_loads(&code, 0x1000), vec![0x1000 + 11 + 0x1234]);
        assert!(rip_relative_loads(&[0x90; 16], 0).is_empty());
    }
}
