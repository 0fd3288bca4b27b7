//! The event tools on TCP opens, OOM kills, mounts and capability checks:
//! `tcpconnect`, `tcpaccept`, `oomkill`, `mountsnoop`, `capable`, each in
//! bcc's layout or as JSON.

use std::{io::Write, process::ExitCode};

use anyhow::Result;
use clap::Args;
use perfkit_model::printable;
use perfkit_probes::tools::{
    Capable, CapableConfig, MountSnoop, MountSnoopConfig, OomKillConfig, OomKiller, TcpOpen, TcpOpens, TcpOpensConfig,
    run::Watch,
    snoop::{
        AcceptJson, CapJson, CapLayout, ConnectCounts, ConnectJson, MountJson, MountLayout, OomKillSeen, TcpOpenLayout,
    },
};

use super::{Snooping, ToolTarget, finish, heading, snoop_loop, stamp, write_event};

/// Filters bcc's tcpconnect and tcpaccept apply to each open.
#[derive(Debug, Args)]
pub struct OpenFilters {
    /// IPv4 only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    ipv4: bool,

    /// IPv6 only.
    #[arg(short = '6', long)]
    ipv6: bool,
}

impl OpenFilters {
    fn pass(&self, e: &TcpOpen) -> bool {
        (e.local.is_ipv4() || !self.ipv4) && (e.local.is_ipv6() || !self.ipv6)
    }
}

/// Each TCP connect, like bcc's tcpconnect.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit tcpconnect\n  perfkit tcpconnect -P 80,443 -t\n  perfkit tcpconnect -c            # counts by \
                        address and port at the end\n  perfkit tcpconnect --json -- curl -s example.com\n\nAs bcc's tcpconnect: each active \
                        open, when the connecting process enters SYN_SENT (sock:inet_sock_set_state, no kprobes), whether or not the \
                        connection then succeeds. The local port is chosen just after that moment, so it is not shown (tcplife shows it)."
)]
pub struct TcpconnectArgs {
    #[command(flatten)]
    target: ToolTarget,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    timestamp_short: bool,

    /// Connects to these remote ports only, comma-separated.
    #[arg(short = 'P', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    port: Vec<u16>,

    /// Connects by this user only.
    #[arg(short = 'u', long, value_name = "UID")]
    uid: Option<u32>,

    /// Print a UID column.
    #[arg(short = 'U', long)]
    print_uid: bool,

    /// Count connects by local address, remote address and port, and print
    /// the counts at the end.
    #[arg(short = 'c', long)]
    count: bool,

    #[command(flatten)]
    filters: OpenFilters,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn tcpconnect(mut args: TcpconnectArgs) -> Result<ExitCode> {
    args.snooping.timestamp |= args.timestamp_short;
    let mut watch = args.target.watch()?;
    let mut config = TcpOpensConfig::connects();
    config.selection = watch.selection();
    let mut tool = TcpOpens::start(config)?;
    eprintln!("Tracing connect ... Hit Ctrl-C to end");
    watch.release()?;
    let layout = TcpOpenLayout::new(args.snooping.columns(), args.print_uid);
    if !args.snooping.json && !args.count {
        heading(|o| layout.write_connect_heading(o))?;
    }
    let mut counts = ConnectCounts::new();
    let exited = snoop_loop(
        "tcpconnect",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if !args.filters.pass(e)
                || !args.port.is_empty() && !args.port.contains(&e.remote_port)
                || args.uid.is_some_and(|u| u != e.uid)
            {
                return Ok(());
            }
            if args.count {
                counts.add(e);
                Ok(())
            } else if args.snooping.json {
                write_event(out, t, ConnectJson::new(e))
            } else {
                Ok(layout.write_connect(out, e, stamp(t))?)
            }
        },
    )?;
    if args.count {
        let mut out = std::io::stdout().lock();
        if args.snooping.json {
            serde_json::to_writer(&mut out, &counts.json())?;
            writeln!(out)?;
        } else {
            counts.write(&mut out)?;
        }
    }
    Ok(finish(watch, exited))
}

/// Each accepted TCP connection, like bcc's tcpaccept.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit tcpaccept\n  perfkit tcpaccept -P 22 -T\n  perfkit tcpaccept --json -p 1234\n\nAs bcc's \
                        tcpaccept: each passive open whose handshake completed (sock:inet_sock_set_state, SYN_RECV to ESTABLISHED, \
                        no kprobes), shown under the process whose accept(2) or accept4(2) returned it; the handshake itself runs in \
                        the kernel's softirq, in no process. Connections never accepted, or accepted through io_uring, are not shown \
                        (serve --probes counts them by port)."
)]
pub struct TcpacceptArgs {
    #[command(flatten)]
    target: ToolTarget,

    /// Print a time column, the clock time (bcc's -T, as --time).
    #[arg(short = 'T')]
    time_short: bool,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    timestamp_short: bool,

    /// Accepts on these local ports only, comma-separated.
    #[arg(short = 'P', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    port: Vec<u16>,

    #[command(flatten)]
    filters: OpenFilters,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn tcpaccept(mut args: TcpacceptArgs) -> Result<ExitCode> {
    args.snooping.time |= args.time_short;
    args.snooping.timestamp |= args.timestamp_short;
    let mut watch = args.target.watch()?;
    let mut config = TcpOpensConfig::accepts();
    config.selection = watch.selection();
    let mut tool = TcpOpens::start(config)?;
    eprintln!("Tracing accept ... Hit Ctrl-C to end");
    watch.release()?;
    let layout = TcpOpenLayout::new(args.snooping.columns(), false);
    if !args.snooping.json {
        heading(|o| layout.write_accept_heading(o))?;
    }
    let exited = snoop_loop(
        "tcpaccept",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if !args.filters.pass(e) || !args.port.is_empty() && !args.port.contains(&e.local_port) {
                return Ok(());
            }
            if args.snooping.json {
                write_event(out, t, AcceptJson::new(e))
            } else {
                Ok(layout.write_accept(out, e, stamp(t))?)
            }
        },
    )?;
    Ok(finish(watch, exited))
}

/// Each OOM kill, like bcc's oomkill.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit oomkill\n  perfkit oomkill --json -d 1h\n\nAs bcc's oomkill, from oom:mark_victim (no kprobes): \
                        the process whose allocation triggered the OOM killer, the process killed, and its size in pages (its \
                        virtual memory, total_vm; bcc prints the memory the OOM killer weighed it against, which only a kprobe can \
                        read). Kernels before 6.x give the victim's PID only: its name is then read from /proc while it dies, or \
                        shown as ?. Every kill on the machine is shown: the OOM killer acts for a cgroup or the system."
)]
pub struct OomkillArgs {
    #[command(flatten)]
    snooping: Snooping,
}

/// /proc/loadavg's text, as bcc's oomkill shows it.
fn loadavg() -> String {
    std::fs::read("/proc/loadavg")
        .map(|b| printable(String::from_utf8_lossy(&b[..b.len().min(128)]).trim()).into_owned())
        .unwrap_or_default()
}

pub fn oomkill(args: OomkillArgs) -> Result<ExitCode> {
    let mut tool = OomKiller::start(OomKillConfig::default())?;
    eprintln!("Tracing OOM kills... Ctrl-C to stop.");
    let mut watch = Watch::machine();
    let page_kb = (rustix::param::page_size().max(1024) / 1024) as u64;
    snoop_loop(
        "oomkill",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            let victim = e.victim_comm.clone().or_else(|| {
                let c = super::comm_of(e.victim_pid);
                (!c.is_empty()).then_some(c)
            });
            let loadavg = loadavg();
            let seen = OomKillSeen { kill: e, victim_comm: victim.as_deref(), page_kb, loadavg: &loadavg };
            if args.snooping.json {
                write_event(out, t, seen.json())
            } else {
                Ok(seen.write(out, &args.snooping.columns(), stamp(t))?)
            }
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Each mount and umount, like bcc's mountsnoop.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit mountsnoop\n  perfkit mountsnoop --json -- unshare -m sh -c 'mount -t tmpfs none /mnt'\n\nAs bcc's \
                        mountsnoop: mount(2) and umount(2) (umount2 on x86-64) from the syscalls tracepoints, with the flags named, the \
                        caller's mount namespace, and the result. Paths keep 127 bytes; the new mount API (fsopen, fsmount, \
                        move_mount) is not watched."
)]
pub struct MountsnoopArgs {
    #[command(flatten)]
    target: ToolTarget,

    /// Print a timestamp column, seconds since the start (libbpf-tools'
    /// -t, as --timestamp).
    #[arg(short = 't')]
    timestamp_short: bool,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn mountsnoop(mut args: MountsnoopArgs) -> Result<ExitCode> {
    args.snooping.timestamp |= args.timestamp_short;
    let mut watch = args.target.watch()?;
    let mut config = MountSnoopConfig::default();
    config.selection = watch.selection();
    let mut tool = MountSnoop::start(config)?;
    eprintln!("Tracing mount and umount... Hit Ctrl-C to end.");
    watch.release()?;
    let layout = MountLayout::new(args.snooping.columns());
    if !args.snooping.json {
        heading(|o| layout.write_heading(o))?;
    }
    let exited = snoop_loop(
        "mountsnoop",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if args.snooping.json {
                write_event(out, t, MountJson::new(e))
            } else {
                Ok(layout.write(out, e, stamp(t))?)
            }
        },
    )?;
    Ok(finish(watch, exited))
}

/// Each capability check, like bcc's capable.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  perfkit capable\n  perfkit capable --non-audit -x --json -- unshare -n true\n\nAs bcc's capable: a kprobe on \
                        cap_capable, the kernel's one place that checks a capability (no tracepoint covers it), so it needs a kernel \
                        with kprobes (CONFIG_KPROBES); without them it says so and exits with an error. Audited checks only, unless --non-audit (bcc's -v)."
)]
pub struct CapableArgs {
    #[command(flatten)]
    target: ToolTarget,

    /// Include checks made without auditing (bcc's -v; perfkit's -v is log
    /// verbosity).
    #[arg(long)]
    non_audit: bool,

    /// Extra columns: TID and INSETID.
    #[arg(short = 'x', long)]
    extra: bool,

    #[command(flatten)]
    snooping: Snooping,
}

pub fn capable(args: CapableArgs) -> Result<ExitCode> {
    let mut watch = args.target.watch()?;
    let mut config = CapableConfig::default();
    config.selection = watch.selection();
    config.non_audit = args.non_audit;
    let mut tool = Capable::start(config)?;
    eprintln!("Tracing capability checks... Hit Ctrl-C to end.");
    watch.release()?;
    let layout = CapLayout::new(args.snooping.columns(), args.extra);
    if !args.snooping.json {
        heading(|o| layout.write_heading(o))?;
    }
    let exited = snoop_loop(
        "capable",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            if args.snooping.json {
                write_event(out, t, CapJson::new(e))
            } else {
                Ok(layout.write(out, e, stamp(t))?)
            }
        },
    )?;
    Ok(finish(watch, exited))
}
