//! wakeuptime and stackcount: time blocked summed by the waker's stacks,
//! and hits of user functions, USDT probes and tracepoints counted by
//! stack. Both keep stacks as the kernel takes them (`bpf_get_stackid`:
//! frame pointers for user stacks, as bcc's tools) and return them as
//! addresses ([`RawStack`]), for `perfkit-symbols` to name.

use std::{
    collections::HashMap,
    io::{self, Write},
    time::Duration,
};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, StackTraceMap};
use perfkit_model::{Frame, Stack, printable, raw::RawStack};
use perfkit_probes_common::{
    tools::ToolStats,
    wakestack::{
        self, DEFAULT_STACK_STORAGE, NOT_TAKEN, STACKCOUNT_ENTRY_PROGRAM, STACKCOUNT_TP_PROGRAM,
        STACKCOUNT_UPROBE_PROGRAM, StackCountKey, WAKE_SWITCH_PROGRAM, WAKE_WAKING_PROGRAM, WakeKey, WakeStackConfig,
    },
};
use serde::Serialize;

use super::{
    Globals, Probe, ProbeTarget, ResolvedProbe,
    text::SCHEMA_VERSION,
    ufunc::{UprobeLink, attach_tracepoint, attach_uprobe},
};
use crate::{ProbeError, Selection};

/// `-EFAULT`: no user stack (a kernel thread, or the interrupted task of an
/// interrupt).
const EFAULT: i32 = 14;

/// Which stacks to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackKinds {
    /// User stacks (frame pointers).
    pub user: bool,
    /// Kernel stacks.
    pub kernel: bool,
}

impl Default for StackKinds {
    fn default() -> Self {
        Self { user: true, kernel: true }
    }
}

/// What wakeuptime measures.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WakeupTimeConfig {
    /// The threads whose blocks count (`None`: every thread).
    pub selection: Option<Selection>,
    /// Blocks shorter than this are left out.
    pub min_block: Duration,
    /// Blocks longer than this are left out.
    pub max_block: Duration,
    /// Leave out kernel threads' blocks (bcc's `-u`).
    pub user_threads_only: bool,
    /// The waker's stacks taken.
    pub stacks: StackKinds,
    /// Distinct stacks kept (bcc's `--stack-storage-size`).
    pub stack_storage: u32,
}

impl Default for WakeupTimeConfig {
    fn default() -> Self {
        Self {
            selection: None,
            // bcc's default: 1 microsecond.
            min_block: Duration::from_micros(1),
            max_block: Duration::from_nanos(u64::MAX),
            user_threads_only: false,
            stacks: StackKinds::default(),
            stack_storage: DEFAULT_STACK_STORAGE,
        }
    }
}

/// Time threads were blocked, under the stacks of the thread that woke
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WakeupStack {
    /// The waker's process id.
    pub waker_pid: u32,
    /// The waker's thread name.
    pub waker: String,
    /// The woken thread's process id.
    pub target_pid: u32,
    /// The woken thread's name.
    pub target: String,
    /// The waker's user stack, innermost first.
    pub user: RawStack,
    /// The waker's kernel stack, innermost first.
    pub kernel: RawStack,
    /// Nanoseconds blocked.
    pub blocked_ns: u64,
}

/// wakeuptime: attached to sched_switch and sched_waking.
#[derive(Debug)]
pub struct WakeupTime {
    probe: Probe,
}

/// Whether a configuration asks for a usable number of stacks.
fn check_storage(n: u32) -> Result<(), ProbeError> {
    if n == 0 || n > 1 << 20 {
        return Err(ProbeError::InvalidConfig(format!("{n} stacks: the stack storage holds 1 to 1048576")));
    }
    Ok(())
}

fn load(
    selection: Option<Selection>,
    config: &WakeStackConfig,
    keep: &[&'static str],
    stack_storage: u32,
) -> Result<Probe, ProbeError> {
    check_storage(stack_storage)?;
    let mut keep = keep.to_vec();
    keep.extend([wakestack::STACK_IDS, wakestack::STATS]);
    Probe::load_sized(
        u32::MAX,
        Globals { selection, config: Default::default(), keep },
        &[(wakestack::CONFIG, &super::tcpconn::bytes_of(config))],
        &[(wakestack::STACK_IDS, stack_storage)],
    )
}

impl WakeupTime {
    /// Loads and attaches the two programs.
    pub fn start(config: WakeupTimeConfig) -> Result<Self, ProbeError> {
        let c = WakeStackConfig {
            min_block_ns: u64::try_from(config.min_block.as_nanos()).unwrap_or(u64::MAX),
            max_block_ns: u64::try_from(config.max_block.as_nanos()).unwrap_or(u64::MAX),
            user_threads_only: config.user_threads_only as u32,
            user_stacks: config.stacks.user as u32,
            kernel_stacks: config.stacks.kernel as u32,
            _pad: 0,
        };
        if c.min_block_ns > c.max_block_ns {
            return Err(ProbeError::InvalidConfig("the shortest block is longer than the longest".into()));
        }
        let mut probe =
            load(config.selection, &c, &[wakestack::WAKE_START, wakestack::WAKE_COUNTS], config.stack_storage)?;
        // The waker side first: a start is never left without its reader.
        probe.attach_raw(WAKE_WAKING_PROGRAM, "sched_waking")?;
        probe.attach_raw(WAKE_SWITCH_PROGRAM, "sched_switch")?;
        Ok(Self { probe })
    }

    /// The time blocked since the start, by waker stack and names.
    pub fn stacks(&self) -> Result<Vec<WakeupStack>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: wakestack::WAKE_COUNTS, source };
        let counts: BpfHashMap<&MapData, WakeKey, u64> =
            BpfHashMap::try_from(self.probe.map(wakestack::WAKE_COUNTS)?).map_err(map_err)?;
        let mut ids = StackReader::new(&self.probe)?;
        let mut out = Vec::new();
        for item in counts.iter() {
            let (k, blocked_ns) = item.map_err(map_err)?;
            out.push(WakeupStack {
                waker_pid: k.waker_tgid,
                waker: comm_text(&k.waker),
                target_pid: k.target_tgid,
                target: comm_text(&k.target),
                user: ids.stack(k.user_stack)?,
                kernel: ids.stack(k.kernel_stack)?,
                blocked_ns,
            });
        }
        Ok(out)
    }

    /// Counters since the start (`events`: wakeups counted; `starts_lost`:
    /// blocks not tracked, `updates_lost`: wakeups not counted, full maps).
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        read_stats(&self.probe)
    }
}

/// What stackcount counts.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StackCountConfig {
    /// The processes whose hits count (`None`: every process).
    pub selection: Option<Selection>,
    /// The probes (user functions, USDT probes, tracepoints), at most
    /// [`MAX_PROBES`](perfkit_probes_common::ufunc::MAX_PROBES).
    pub probes: Vec<ResolvedProbe>,
    /// The stacks taken.
    pub stacks: StackKinds,
    /// Distinct stacks kept; 0: [`DEFAULT_STACK_STORAGE`].
    pub stack_storage: u32,
}

/// Hits of probes under one stack of one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CountedStack {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Thread name.
    pub comm: String,
    /// User stack, innermost first (the probed function's address first).
    pub user: RawStack,
    /// Kernel stack, innermost first.
    pub kernel: RawStack,
    /// Hits.
    pub count: u64,
}

/// stackcount: one program on every probe, counting by stack.
#[derive(Debug)]
pub struct StackCounter {
    // Detached (closed) before the object is dropped.
    links: Vec<UprobeLink>,
    probe: Probe,
    probes: Vec<ResolvedProbe>,
}

impl StackCounter {
    /// Loads and attaches to every probe.
    pub fn start(config: StackCountConfig) -> Result<Self, ProbeError> {
        let StackCountConfig { selection, probes, stacks, stack_storage } = config;
        let max = perfkit_probes_common::ufunc::MAX_PROBES;
        if probes.is_empty() || probes.len() > max {
            return Err(ProbeError::InvalidConfig(format!("{} probes: stackcount attaches 1 to {max}", probes.len())));
        }
        if !stacks.user && !stacks.kernel {
            return Err(ProbeError::InvalidConfig("stackcount needs user or kernel stacks, or both".into()));
        }
        let c = WakeStackConfig {
            min_block_ns: 0,
            max_block_ns: u64::MAX,
            user_threads_only: 0,
            user_stacks: stacks.user as u32,
            kernel_stacks: stacks.kernel as u32,
            _pad: 0,
        };
        let storage = if stack_storage == 0 { DEFAULT_STACK_STORAGE } else { stack_storage };
        let mut probe = load(selection, &c, &[wakestack::STACKCOUNT_COUNTS], storage)?;
        let mut links = Vec::new();
        for p in &probes {
            match &p.target {
                ProbeTarget::Uprobe { .. } => {
                    let program =
                        if p.at_function_entry() { STACKCOUNT_ENTRY_PROGRAM } else { STACKCOUNT_UPROBE_PROGRAM };
                    links.push(attach_uprobe(&mut probe, program, p, false)?);
                }
                ProbeTarget::Tracepoint { category, name } => {
                    attach_tracepoint(&mut probe, STACKCOUNT_TP_PROGRAM, category, name)?
                }
            }
        }
        Ok(Self { links, probe, probes })
    }

    /// The probes attached.
    pub fn probes(&self) -> &[ResolvedProbe] {
        &self.probes
    }

    /// Uprobes attached (the rest are tracepoints).
    pub fn uprobes(&self) -> usize {
        self.links.len()
    }

    /// Hits since the start, by thread and stack.
    pub fn stacks(&self) -> Result<Vec<CountedStack>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: wakestack::STACKCOUNT_COUNTS, source };
        let counts: BpfHashMap<&MapData, StackCountKey, u64> =
            BpfHashMap::try_from(self.probe.map(wakestack::STACKCOUNT_COUNTS)?).map_err(map_err)?;
        let mut ids = StackReader::new(&self.probe)?;
        let mut out = Vec::new();
        for item in counts.iter() {
            let (k, count) = item.map_err(map_err)?;
            let mut user = ids.stack(k.user_stack)?;
            if k.entry_return != 0 {
                user = with_caller(user, k.entry_return);
            }
            out.push(CountedStack {
                pid: k.tgid,
                tid: k.tid,
                comm: comm_text(&k.comm),
                user,
                kernel: ids.stack(k.kernel_stack)?,
                count,
            });
        }
        Ok(out)
    }

    /// Counters since the start (`events`: hits; `updates_lost`: hits not
    /// counted, a full map).
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        read_stats(&self.probe)
    }
}

/// A user stack taken at a function's first instruction, with the caller
/// put back: a frame-pointer walk from there goes from the function to its
/// caller's caller (kernels before 6.10 do not look at the return address
/// on top of the stack), so when the second frame is not the return
/// address read at the probe, it is inserted.
fn with_caller(user: RawStack, ret: u64) -> RawStack {
    match user {
        RawStack::Frames(mut f) if !f.is_empty() && f.get(1) != Some(&ret) => {
            f.insert(1, ret);
            RawStack::Frames(f)
        }
        other => other,
    }
}

/// A thread name as the kernel keeps it, escaped for printing.
fn comm_text(comm: &[u8; 16]) -> String {
    let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    perfkit_model::escape_bytes(&comm[..len])
}

/// Reads stacks by id, each once.
struct StackReader<'a> {
    map: StackTraceMap<&'a MapData>,
    cache: HashMap<u32, Vec<u64>>,
}

impl<'a> StackReader<'a> {
    fn new(probe: &'a Probe) -> Result<Self, ProbeError> {
        let map = StackTraceMap::try_from(probe.map(wakestack::STACK_IDS)?)
            .map_err(|source| ProbeError::Map { map: wakestack::STACK_IDS, source })?;
        Ok(Self { map, cache: HashMap::new() })
    }

    /// The stack of a key's id: frames, none (not taken, or no user stack),
    /// or lost (the storage was full, or the stack was read as it changed).
    fn stack(&mut self, id: i32) -> Result<RawStack, ProbeError> {
        if id == NOT_TAKEN || id == -EFAULT {
            return Ok(RawStack::None);
        }
        let Ok(id) = u32::try_from(id) else { return Ok(RawStack::Lost) };
        if let Some(f) = self.cache.get(&id) {
            return Ok(RawStack::Frames(f.clone()));
        }
        match self.map.get(&id, 0) {
            Ok(trace) => {
                let frames: Vec<u64> = trace.frames().iter().map(|f| f.ip).take_while(|&ip| ip != 0).collect();
                self.cache.insert(id, frames.clone());
                Ok(if frames.is_empty() { RawStack::None } else { RawStack::Frames(frames) })
            }
            Err(aya::maps::MapError::KeyNotFound) => Ok(RawStack::Lost),
            Err(source) => Err(ProbeError::Map { map: wakestack::STACK_IDS, source }),
        }
    }
}

fn read_stats(probe: &Probe) -> Result<ToolStats, ProbeError> {
    let map_err = |source| ProbeError::Map { map: wakestack::STATS, source };
    let stats: PerCpuArray<&MapData, ToolStats> =
        PerCpuArray::try_from(probe.map(wakestack::STATS)?).map_err(map_err)?;
    let mut total = ToolStats::default();
    for cpu in stats.get(&0, 0).map_err(map_err)?.iter() {
        total.merge(cpu);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_of_an_entry_probe_is_put_back_once() {
        // Kernels before 6.10: function, caller's caller.
        assert_eq!(with_caller(RawStack::Frames(vec![0x10, 0x30]), 0x20), RawStack::Frames(vec![0x10, 0x20, 0x30]));
        // Kernels that push the return address themselves.
        assert_eq!(
            with_caller(RawStack::Frames(vec![0x10, 0x20, 0x30]), 0x20),
            RawStack::Frames(vec![0x10, 0x20, 0x30])
        );
        assert_eq!(with_caller(RawStack::Lost, 0x20), RawStack::Lost);
    }

    #[test]
    fn names_are_cut_at_the_nul_and_escaped() {
        assert_eq!(comm_text(b"reader\0\0\0\0\0\0\0\0\0\0"), "reader");
        assert_eq!(comm_text(b"a\x1bb\0............"), "a\\x1bb");
    }

    #[test]
    fn storage_bounds_are_checked() {
        assert!(check_storage(0).is_err());
        assert!(check_storage(16_384).is_ok());
        assert!(check_storage(u32::MAX).is_err());
    }
}

/// The raw addresses of a stack (`kernel 0x... user 0x...`; `[lost]` for a
/// stack that could not be kept, `-` for none), as `--addresses` shows them.
pub fn stack_addresses(user: &RawStack, kernel: &RawStack) -> String {
    let list = |s: &RawStack| match s {
        RawStack::Frames(f) => f.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>().join(" "),
        RawStack::Lost => "[lost]".to_owned(),
        RawStack::None => "-".to_owned(),
    };
    format!("kernel {} user {}", list(kernel), list(user))
}

/// One row of wakeuptime: the time a waker stack made targets of one
/// name wait, merged by names and symbolized frames.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WakerRow {
    /// The waker's name.
    pub waker: String,
    /// The target's name.
    pub target: String,
    /// The waker's stack, root first.
    pub frames: Vec<Frame>,
    /// Blocked time, nanoseconds.
    pub blocked_ns: u64,
    /// The raw addresses of one of its stacks ([`stack_addresses`]), if
    /// asked for.
    pub addresses: Option<String>,
}

impl WakerRow {
    /// A row.
    pub fn new(waker: String, target: String, frames: Vec<Frame>, blocked_ns: u64, addresses: Option<String>) -> Self {
        Self { waker, target, frames, blocked_ns, addresses }
    }
}

/// Writes wakeuptime's rows as bcc: the target, the waker's frames
/// (innermost first), the addresses, the waker and the microseconds.
pub fn write_wakeuptime(out: &mut dyn Write, rows: &[WakerRow]) -> io::Result<()> {
    for r in rows {
        writeln!(out, "    {:<16} {}", "target:", printable(&r.target))?;
        for f in r.frames.iter().rev() {
            writeln!(out, "    {}", printable(&f.folded_name()))?;
        }
        if let Some(a) = &r.addresses {
            writeln!(out, "    {a}")?;
        }
        writeln!(out, "    {:<16} {}", "waker:", printable(&r.waker))?;
        writeln!(out, "        {}\n", r.blocked_ns / 1000)?;
    }
    Ok(())
}

/// Writes wakeuptime's rows as folded lines: `waker;frames;target usecs`.
pub fn write_wakeuptime_folded(out: &mut dyn Write, rows: &[WakerRow]) -> io::Result<()> {
    for r in rows {
        let line = Stack::new(r.waker.clone(), r.frames.clone(), 0).folded();
        let target = Stack::new(r.target.clone(), Vec::new(), 0).folded();
        writeln!(out, "{line};{target} {}", r.blocked_ns / 1000)?;
    }
    Ok(())
}

/// A row of [`WakeuptimeReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WakerRowJson<'a> {
    /// The raw addresses, with `--addresses`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<&'a str>,
    /// Blocked time, microseconds.
    pub blocked_usecs: u64,
    /// The waker's stack, root first.
    pub frames: &'a [Frame],
    /// The target's name.
    pub target: &'a str,
    /// The waker's name.
    pub waker: &'a str,
}

/// wakeuptime's JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WakeuptimeReport<'a> {
    /// Blocked time under stacks that could not be kept, microseconds.
    pub lost_stacks_blocked_usecs: u64,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The rows, the largest last.
    pub stacks: Vec<WakerRowJson<'a>>,
    /// When (RFC 3339).
    pub time: String,
    /// `wakeuptime`.
    pub tool: &'static str,
}

impl<'a> WakeuptimeReport<'a> {
    /// The report of `rows` at `time`; `lost_ns` blocked under lost stacks.
    pub fn new(time: String, rows: &'a [WakerRow], lost_ns: u64) -> Self {
        let stacks = rows
            .iter()
            .map(|r| WakerRowJson {
                addresses: r.addresses.as_deref(),
                blocked_usecs: r.blocked_ns / 1000,
                frames: &r.frames,
                target: &r.target,
                waker: &r.waker,
            })
            .collect();
        Self {
            lost_stacks_blocked_usecs: lost_ns / 1000,
            schema_version: SCHEMA_VERSION,
            stacks,
            time,
            tool: "wakeuptime",
        }
    }
}

/// One row of stackcount: hits under one pair of symbolized stacks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackCountRow {
    /// The thread's name (`comm [PID]` per process).
    pub comm: String,
    /// The user stack, root first.
    pub user: Vec<Frame>,
    /// The kernel stack, root first.
    pub kernel: Vec<Frame>,
    /// Hits in the interval.
    pub count: u64,
    /// The raw addresses of one of its stacks, if asked for.
    pub addresses: Option<String>,
}

impl StackCountRow {
    /// A row.
    pub fn new(comm: String, user: Vec<Frame>, kernel: Vec<Frame>, count: u64, addresses: Option<String>) -> Self {
        Self { comm, user, kernel, count, addresses }
    }
}

/// Writes stackcount's rows as bcc: kernel frames then user frames,
/// innermost first (`--` between them when `delimited`), the addresses,
/// the process (`per_pid`) and the count.
pub fn write_stackcount(out: &mut dyn Write, rows: &[StackCountRow], delimited: bool, per_pid: bool) -> io::Result<()> {
    for r in rows {
        for f in r.kernel.iter().rev() {
            writeln!(out, "  {}", printable(&f.name))?;
        }
        if delimited && !r.user.is_empty() && !r.kernel.is_empty() {
            writeln!(out, "    --")?;
        }
        for f in r.user.iter().rev() {
            writeln!(out, "  {}", printable(&f.name))?;
        }
        if let Some(a) = &r.addresses {
            writeln!(out, "    {a}")?;
        }
        if per_pid {
            writeln!(out, "    {}", printable(&r.comm))?;
        }
        writeln!(out, "    {}\n", r.count)?;
    }
    Ok(())
}

/// Writes stackcount's rows as folded lines (`comm-PID;user;kernel N`,
/// a `-` frame between user and kernel when `delimited`).
pub fn write_stackcount_folded(out: &mut dyn Write, rows: &[StackCountRow], delimited: bool) -> io::Result<()> {
    for r in rows {
        let root = r.comm.replace(" [", "-").replace(']', "");
        let mut frames = r.user.clone();
        if delimited && !r.user.is_empty() && !r.kernel.is_empty() {
            frames.push(Frame::user("-"));
        }
        frames.extend(r.kernel.iter().cloned());
        writeln!(out, "{} {}", Stack::new(root, frames, 0).folded(), r.count)?;
    }
    Ok(())
}

/// A row of [`StackCountReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackCountRowJson<'a> {
    /// The raw addresses, with `--addresses`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<&'a str>,
    /// The thread's name.
    pub comm: &'a str,
    /// Hits.
    pub count: u64,
    /// The kernel stack, root first.
    pub kernel_frames: &'a [Frame],
    /// The user stack, root first.
    pub user_frames: &'a [Frame],
}

/// stackcount's JSON document, one per interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackCountReport<'a> {
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// The pattern as given.
    pub pattern: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The rows, the largest last.
    pub stacks: Vec<StackCountRowJson<'a>>,
    /// When (RFC 3339).
    pub time: String,
    /// `stackcount`.
    pub tool: &'static str,
}

impl<'a> StackCountReport<'a> {
    /// The report of `rows` for `pattern` at `time`.
    pub fn new(time: String, interval: Option<Duration>, pattern: String, rows: &'a [StackCountRow]) -> Self {
        let stacks = rows
            .iter()
            .map(|r| StackCountRowJson {
                addresses: r.addresses.as_deref(),
                comm: &r.comm,
                count: r.count,
                kernel_frames: &r.kernel,
                user_frames: &r.user,
            })
            .collect();
        Self {
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            pattern,
            schema_version: SCHEMA_VERSION,
            stacks,
            time,
            tool: "stackcount",
        }
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn wakeuptime_rows_as_bcc_folded_and_json() {
        let rows = [WakerRow::new(
            "kworker".into(),
            "app".into(),
            vec![Frame::kernel("ret_from_fork"), Frame::kernel("try_to_wake_up")],
            2_500_000,
            Some(stack_addresses(&RawStack::None, &RawStack::Frames(vec![0x10, 0x20]))),
        )];
        let mut out = Vec::new();
        write_wakeuptime(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "    target:          app\n    try_to_wake_up_[k]\n    ret_from_fork_[k]\n    kernel 0x10 0x20 user -\n    \
             waker:           kworker\n        2500\n\n"
        );
        let mut out = Vec::new();
        write_wakeuptime_folded(&mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "kworker;ret_from_fork_[k];try_to_wake_up_[k];app 2500\n");
        let json = serde_json::to_string(&WakeuptimeReport::new("T".into(), &rows, 1500)).unwrap();
        assert!(json.starts_with(r#"{"lost_stacks_blocked_usecs":1,"schema_version":2,"stacks":[{"addresses":"kernel 0x10 0x20 user -","blocked_usecs":2500,"frames":["#), "{json}");
        assert!(json.ends_with(r#"],"target":"app","waker":"kworker"}],"time":"T","tool":"wakeuptime"}"#), "{json}");
    }

    #[test]
    fn stackcount_rows_with_the_delimiter() {
        let rows = [StackCountRow::new(
            "app [7]".into(),
            vec![Frame::user("main"), Frame::user("f")],
            vec![Frame::kernel("sys_write")],
            3,
            None,
        )];
        let mut out = Vec::new();
        write_stackcount(&mut out, &rows, true, true).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "  sys_write\n    --\n  f\n  main\n    app [7]\n    3\n\n");
        let mut out = Vec::new();
        write_stackcount_folded(&mut out, &rows, true).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "app-7;main;f;-;sys_write_[k] 3\n");
        let json = serde_json::to_string(&StackCountReport::new("T".into(), None, "c:write".into(), &rows)).unwrap();
        assert!(json.starts_with(r#"{"interval_seconds":null,"pattern":"c:write","schema_version":2,"stacks":[{"comm":"app [7]","count":3,"kernel_frames":["#), "{json}");
    }
}
