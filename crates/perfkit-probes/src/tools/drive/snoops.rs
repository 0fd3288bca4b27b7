//! The snooping tools' runs: a heading (in text), then each event as it
//! comes, in bcc's layout or as a JSON line.

use std::{collections::HashMap, io::Write, time::Duration};

use perfkit_target::ExitStatus;

use super::{
    DriveError, Driver, ExecFilter, IpVersion, Notice, OpenFilter, SessionFilter, TcpOpenFilter, loadavg, monotonic_ns,
    process_name, snoop, stamp,
};
use crate::tools::{
    BlockIo, Capable, ExecSnoop, MountSnoop, OomKiller, OpenSnoop, TcpLife, TcpOpens, TcpRetrans, ToolStats, Tracer,
    disk_name,
    run::run_events,
    snoop::{
        AcceptJson, BlockJson, BlockLayout, CapJson, CapLayout, ConnectCounts, ConnectJson, ExecJson, ExecLayout,
        MountJson, MountLayout, OomKillSeen, OpenJson, OpenLayout, RetransFlows, RetransmitJson, SessionJson,
        SessionLayout, TcpOpenLayout, write_retransmit, write_retransmit_heading,
    },
    text::TimeColumns,
    tracetext::{TraceLayout, TraceMessageJson},
};

/// How a snooping tool shows its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnoopView {
    /// One JSON object per event instead of bcc's lines.
    pub json: bool,
    /// The time columns of the lines.
    pub columns: TimeColumns,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// The heading line, unless the view is JSON.
fn heading(
    view: &SnoopView,
    d: &mut Driver<'_>,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), DriveError> {
    if !view.json {
        write(d.write)?;
    }
    Ok(())
}

/// Runs biosnoop: each completed I/O (of the disk named `disk` only, if
/// given), with the time queued in the OS if `queued` (as the tool was
/// started).
pub fn biosnoop(
    tool: &mut BlockIo,
    queued: bool,
    disk: Option<&str>,
    view: &SnoopView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = BlockLayout::new(queued);
    heading(view, d, |o| layout.write_heading(o))?;
    let mut names: HashMap<(u32, u32), String> = HashMap::new();
    // Times from the tool's start, on the clock of the events' own
    // timestamps.
    let start_ns = monotonic_ns();
    snoop(tool, view.duration, d, |out, e, _| {
        let t = e.ts_ns.saturating_sub(start_ns) as f64 / 1e9;
        let name = names.entry((e.major, e.minor)).or_insert_with(|| disk_name(e.major, e.minor));
        if disk.is_some_and(|d| d != name) {
            return Ok(());
        }
        if view.json {
            return out.event(t, BlockJson::new(e, name));
        }
        Ok(layout.write(out.write, e, name, t)?)
    })
}

/// Runs execsnoop: the execs `filter` passes, with a UID column if
/// `uid_column`, the arguments quoted if `quote`.
pub fn execsnoop(
    tool: &mut ExecSnoop,
    view: &SnoopView,
    filter: &ExecFilter,
    uid_column: bool,
    quote: bool,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = ExecLayout::new(view.columns, uid_column, quote);
    heading(view, d, |o| layout.write_heading(o))?;
    snoop(tool, view.duration, d, |out, e, t| {
        if !filter.pass(e) {
            Ok(())
        } else if view.json {
            out.event(t, ExecJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// Runs opensnoop: the opens `filter` passes, with a UID column if
/// `uid_column` and the flags if `flags_column`.
pub fn opensnoop(
    tool: &mut OpenSnoop,
    view: &SnoopView,
    filter: &OpenFilter,
    uid_column: bool,
    flags_column: bool,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = OpenLayout::new(view.columns, uid_column, flags_column);
    heading(view, d, |o| layout.write_heading(o))?;
    snoop(tool, view.duration, d, |out, e, t| {
        if !filter.pass(e) {
            Ok(())
        } else if view.json {
            out.event(t, OpenJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// Runs tcplife: the sessions `filter` passes, in `wide` columns (for
/// IPv6) or not.
pub fn tcplife(
    tool: &mut TcpLife,
    view: &SnoopView,
    filter: &SessionFilter,
    wide: bool,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = SessionLayout::new(view.columns, wide);
    heading(view, d, |o| layout.write_heading(o))?;
    snoop(tool, view.duration, d, |out, e, t| {
        if !filter.pass(e) {
            Ok(())
        } else if view.json {
            out.event(t, SessionJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// Runs tcpretrans: each retransmission of the `ip` version, or with
/// `count` their counts by flow (and the tool's by state) at the end.
pub fn tcpretrans(
    tool: &mut TcpRetrans,
    view: &SnoopView,
    ip: IpVersion,
    count: bool,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    if !count {
        heading(view, d, write_retransmit_heading)?;
    }
    // Retransmissions (that sent something) by flow, counted here from the
    // events; the ring buffer's losses are notices.
    let mut flows = RetransFlows::new();
    let exited = snoop(tool, view.duration, d, |out, e, t| {
        if !ip.pass(&e.local) {
            Ok(())
        } else if count {
            flows.add(e);
            Ok(())
        } else if view.json {
            out.event(t, RetransmitJson::new(e))
        } else {
            Ok(write_retransmit(out.write, e, t)?)
        }
    })?;
    if count {
        let counts = tool.counts()?;
        if view.json {
            d.split().2.json_line(&flows.json(&counts))?;
        } else {
            flows.write(d.write, &counts)?;
        }
    }
    Ok(exited)
}

/// Runs tcpconnect: the connects `filter` passes, with a UID column if
/// `uid_column`, or with `count` their counts at the end.
pub fn tcpconnect(
    tool: &mut TcpOpens,
    view: &SnoopView,
    filter: &TcpOpenFilter,
    uid_column: bool,
    count: bool,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = TcpOpenLayout::new(view.columns, uid_column);
    if !count {
        heading(view, d, |o| layout.write_connect_heading(o))?;
    }
    let mut counts = ConnectCounts::new();
    let exited = snoop(tool, view.duration, d, |out, e, t| {
        if !filter.pass(e) {
            Ok(())
        } else if count {
            counts.add(e);
            Ok(())
        } else if view.json {
            out.event(t, ConnectJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write_connect(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })?;
    if count {
        if view.json {
            d.split().2.json_line(&counts.json())?;
        } else {
            counts.write(d.write)?;
        }
    }
    Ok(exited)
}

/// Runs tcpaccept: the accepts `filter` passes.
pub fn tcpaccept(
    tool: &mut TcpOpens,
    view: &SnoopView,
    filter: &TcpOpenFilter,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = TcpOpenLayout::new(view.columns, false);
    heading(view, d, |o| layout.write_accept_heading(o))?;
    snoop(tool, view.duration, d, |out, e, t| {
        if !filter.pass(e) {
            Ok(())
        } else if view.json {
            out.event(t, AcceptJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write_accept(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// The page size in kB.
fn page_kb() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page.max(1024) / 1024) as u64
}

/// Runs oomkill: each kill, with the victim's name (from /proc if the
/// kernel's record lacks it) and the load average.
pub fn oomkill(tool: &mut OomKiller, view: &SnoopView, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
    let page_kb = page_kb();
    snoop(tool, view.duration, d, |out, e, t| {
        let victim = e.victim_comm.clone().or_else(|| {
            let c = process_name(e.victim_pid);
            (!c.is_empty()).then_some(c)
        });
        let loadavg = loadavg();
        let seen = OomKillSeen { kill: e, victim_comm: victim.as_deref(), page_kb, loadavg: &loadavg };
        if view.json {
            out.event(t, seen.json())
        } else {
            let clock = out.clock;
            Ok(seen.write(out.write, &view.columns, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// Runs mountsnoop.
pub fn mountsnoop(
    tool: &mut MountSnoop,
    view: &SnoopView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = MountLayout::new(view.columns);
    heading(view, d, |o| layout.write_heading(o))?;
    snoop(tool, view.duration, d, |out, e, t| {
        if view.json {
            out.event(t, MountJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// Runs capable, with the `extra` columns (TID, INSETID) or not.
pub fn capable(
    tool: &mut Capable,
    view: &SnoopView,
    extra: bool,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = CapLayout::new(view.columns, extra);
    heading(view, d, |o| layout.write_heading(o))?;
    snoop(tool, view.duration, d, |out, e, t| {
        if view.json {
            out.event(t, CapJson::new(e))
        } else {
            let clock = out.clock;
            Ok(layout.write(out.write, e, stamp(t, &|| clock.hms()))?)
        }
    })
}

/// The messages trace shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// Of processes whose name contains this only.
    pub name: Option<String>,
    /// Containing this only.
    pub message: Option<String>,
    /// Stop after this many messages shown.
    pub max: Option<u64>,
}

/// Runs trace: each message the filter passes (the JSON names its probe
/// by its text in `probes`); at the end the hits as a notice.
pub fn trace(
    tool: &mut Tracer,
    probes: &[String],
    filter: &TraceFilter,
    view: &SnoopView,
    d: &mut Driver<'_>,
) -> Result<Option<ExitStatus>, DriveError> {
    let layout = TraceLayout::new(view.columns.clock, view.columns.seconds);
    heading(view, d, |o| layout.write_heading(o))?;
    let mut shown = 0u64;
    let mut reported = ToolStats::default();
    let (watch, stop, mut out) = d.split();
    let exited = run_events(view.duration, watch, stop, |timeout, started| {
        let messages = tool.messages(timeout);
        for m in &messages {
            if filter.max.is_some_and(|n| shown >= n) {
                break;
            }
            if filter.name.as_deref().is_some_and(|n| !m.comm.contains(n))
                || filter.message.as_deref().is_some_and(|f| !m.message.contains(f))
            {
                continue;
            }
            shown += 1;
            let t = started.elapsed().as_secs_f64();
            if view.json {
                let probe = probes.get(m.probe).map(String::as_str);
                out.json_line(&TraceMessageJson::new(m, probe, t))?;
            } else {
                let clock = out.clock;
                layout.write(out.write, m, stamp(t, &|| clock.hms()))?;
            }
        }
        out.write.flush()?;
        out.losses(&tool.stats()?, &mut reported);
        Ok::<_, DriveError>(filter.max.is_none_or(|n| shown < n))
    })?;
    let s = tool.trace_stats()?;
    (d.notify)(Notice::Hits { hits: s.tool.events, filtered: s.filtered, lost: s.tool.ring_full });
    Ok(exited)
}
