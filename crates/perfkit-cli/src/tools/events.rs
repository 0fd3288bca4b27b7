//! The event tools on TCP opens, OOM kills, mounts and capability checks:
//! `tcpconnect`, `tcpaccept`, `oomkill`, `mountsnoop`, `capable`, each in
//! bcc's layout or as JSON.

use std::{collections::BTreeMap, net::IpAddr, process::ExitCode};

use anyhow::Result;
use clap::Args;
use perfkit_model::printable;
use perfkit_probes::tools::{
    Capable, CapableConfig, MountSnoop, MountSnoopConfig, OomKillConfig, OomKiller, TcpOpen, TcpOpens, TcpOpensConfig,
    capability_name, mount_flags_text, run::Watch, text::SCHEMA_VERSION, umount_flags_text,
};
use serde_json::json;

use super::{Snooping, ToolTarget, finish, snoop_loop, write_event};

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

fn ip_version(a: &IpAddr) -> u8 {
    if a.is_ipv4() { 4 } else { 6 }
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
    if !args.snooping.json && !args.count {
        let ts = args.snooping.time_heading();
        let uid = if args.print_uid { format!("{:<6} ", "UID") } else { String::new() };
        println!("{ts}{uid}{:<7} {:<12} {:<2} {:<16} {:<16} {:<6}", "PID", "COMM", "IP", "SADDR", "DADDR", "DPORT");
    }
    let mut counts: BTreeMap<(IpAddr, IpAddr, u16), u64> = BTreeMap::new();
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
                *counts.entry((e.local, e.remote, e.remote_port)).or_default() += 1;
            } else if args.snooping.json {
                write_event(
                    out,
                    t,
                    json!({
                        "pid": e.pid,
                        "tid": e.tid,
                        "uid": e.uid,
                        "comm": e.comm,
                        "ip": ip_version(&e.local),
                        "local_addr": e.local.to_string(),
                        "remote_addr": e.remote.to_string(),
                        "remote_port": e.remote_port,
                    }),
                )?;
            } else {
                let ts = args.snooping.time_column(t);
                let uid = if args.print_uid { format!("{:<6} ", e.uid) } else { String::new() };
                writeln!(
                    out,
                    "{ts}{uid}{:<7} {:<12} {:<2} {:<16} {:<16} {:<6}",
                    e.pid,
                    printable(&e.comm),
                    ip_version(&e.local),
                    e.local,
                    e.remote,
                    e.remote_port
                )?;
            }
            Ok(())
        },
    )?;
    if args.count {
        if args.snooping.json {
            let rows: Vec<serde_json::Value> = counts
                .iter()
                .map(|((l, r, p), n)| {
                    json!({"local_addr": l.to_string(), "remote_addr": r.to_string(), "remote_port": p, "connects": n})
                })
                .collect();
            println!("{}", json!({"schema_version": SCHEMA_VERSION, "tool": "tcpconnect", "counts": rows}));
        } else {
            println!("{:<25} {:<25} {:<20} {:<10}", "LADDR", "RADDR", "RPORT", "CONNECTS");
            for ((l, r, p), n) in &counts {
                println!("{:<25} {:<25} {:<20} {:<10}", l.to_string(), r.to_string(), p, n);
            }
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
    if !args.snooping.json {
        let ts = args.snooping.time_heading();
        println!(
            "{ts}{:<7} {:<12} {:<2} {:<16} {:<5} {:<16} {:<5}",
            "PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT"
        );
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
                write_event(
                    out,
                    t,
                    json!({
                        "pid": e.pid,
                        "tid": e.tid,
                        "uid": e.uid,
                        "comm": e.comm,
                        "ip": ip_version(&e.local),
                        "remote_addr": e.remote.to_string(),
                        "remote_port": e.remote_port,
                        "local_addr": e.local.to_string(),
                        "local_port": e.local_port,
                    }),
                )?;
            } else {
                let ts = args.snooping.time_column(t);
                writeln!(
                    out,
                    "{ts}{:<7} {:<12} {:<2} {:<16} {:<5} {:<16} {:<5}",
                    e.pid,
                    printable(&e.comm),
                    ip_version(&e.local),
                    e.remote,
                    e.remote_port,
                    e.local,
                    e.local_port
                )?;
            }
            Ok(())
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
            let pages = e.total_vm_kb.map(|kb| kb / page_kb);
            if args.snooping.json {
                write_event(
                    out,
                    t,
                    json!({
                        "trigger_pid": e.trigger_pid,
                        "trigger_comm": e.trigger_comm,
                        "victim_pid": e.victim_pid,
                        "victim_comm": victim,
                        "total_vm_pages": pages,
                        "total_vm_kb": e.total_vm_kb,
                        "anon_rss_kb": e.anon_rss_kb,
                        "file_rss_kb": e.file_rss_kb,
                        "shmem_rss_kb": e.shmem_rss_kb,
                        "loadavg": loadavg(),
                    }),
                )?;
            } else {
                let ts = args.snooping.time_column(t);
                let pages = pages.map_or_else(|| "? pages".to_owned(), |p| format!("{p} pages"));
                writeln!(
                    out,
                    "{ts}{} Triggered by PID {} (\"{}\"), OOM kill of PID {} (\"{}\"), {pages}, loadavg: {}",
                    crate::clock::now_hms(),
                    e.trigger_pid,
                    printable(&e.trigger_comm),
                    e.victim_pid,
                    printable(victim.as_deref().unwrap_or("?")),
                    loadavg()
                )?;
            }
            Ok(())
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

/// A negative errno as bcc writes a result (`-EPERM`), or the number.
fn errno_text(ret: i32) -> String {
    const NAMES: [&str; 41] = [
        "0",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
    ];
    match usize::try_from(-(ret as i64)) {
        Ok(n) if n > 0 && n < NAMES.len() => format!("-{}", NAMES[n]),
        _ => ret.to_string(),
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", printable(s))
}

pub fn mountsnoop(mut args: MountsnoopArgs) -> Result<ExitCode> {
    args.snooping.timestamp |= args.timestamp_short;
    let mut watch = args.target.watch()?;
    let mut config = MountSnoopConfig::default();
    config.selection = watch.selection();
    let mut tool = MountSnoop::start(config)?;
    eprintln!("Tracing mount and umount... Hit Ctrl-C to end.");
    watch.release()?;
    if !args.snooping.json {
        let ts = args.snooping.time_heading();
        println!("{ts}{:<16} {:<7} {:<7} {:<11} CALL", "COMM", "PID", "TID", "MNT_NS");
    }
    let exited = snoop_loop(
        "mountsnoop",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            let flags = if e.umount { umount_flags_text(e.flags) } else { mount_flags_text(e.flags) };
            if args.snooping.json {
                let mut v = json!({
                    "call": if e.umount { "umount" } else { "mount" },
                    "pid": e.pid,
                    "tid": e.tid,
                    "comm": e.comm,
                    "mnt_ns": e.mnt_ns,
                    "flags": e.flags,
                    "flags_text": flags,
                    "ret": e.ret,
                    "error": (e.ret < 0).then(|| std::io::Error::from_raw_os_error(-e.ret).to_string()),
                });
                if e.umount {
                    v["target"] = json!(e.source);
                } else {
                    v["source"] = json!(e.source);
                    v["target"] = json!(e.target);
                    v["fstype"] = json!(e.fstype);
                    v["data"] = json!(e.data);
                }
                write_event(out, t, v)?;
            } else {
                let call = if e.umount {
                    format!("umount({}, {flags}) = {}", quoted(&e.source), errno_text(e.ret))
                } else {
                    format!(
                        "mount({}, {}, {}, {flags}, {}) = {}",
                        quoted(&e.source),
                        quoted(&e.target),
                        quoted(&e.fstype),
                        quoted(&e.data),
                        errno_text(e.ret)
                    )
                };
                let ts = args.snooping.time_column(t);
                writeln!(out, "{ts}{:<16} {:<7} {:<7} {:<11} {call}", printable(&e.comm), e.pid, e.tid, e.mnt_ns)?;
            }
            Ok(())
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
    if !args.snooping.json {
        let ts = args.snooping.time_heading();
        if args.extra {
            println!(
                "{ts}{:<9} {:<6} {:<7} {:<7} {:<16} {:<4} {:<20} {:<6} INSETID",
                "TIME", "UID", "PID", "TID", "COMM", "CAP", "NAME", "AUDIT"
            );
        } else {
            println!("{ts}{:<9} {:<6} {:<7} {:<16} {:<4} {:<20} AUDIT", "TIME", "UID", "PID", "COMM", "CAP", "NAME");
        }
    }
    let exited = snoop_loop(
        "capable",
        args.snooping.duration,
        &mut watch,
        |t| Ok((tool.events(t), tool.stats()?)),
        |out, e, t| {
            let name = capability_name(e.cap);
            if args.snooping.json {
                write_event(
                    out,
                    t,
                    json!({
                        "uid": e.uid,
                        "pid": e.pid,
                        "tid": e.tid,
                        "comm": e.comm,
                        "cap": e.cap,
                        "name": name,
                        "audit": e.audit,
                        "insetid": e.insetid,
                    }),
                )?;
            } else {
                let ts = args.snooping.time_column(t);
                let hms = crate::clock::now_hms();
                if args.extra {
                    writeln!(
                        out,
                        "{ts}{hms:<9} {:<6} {:<7} {:<7} {:<16} {:<4} {name:<20} {:<6} {}",
                        e.uid,
                        e.pid,
                        e.tid,
                        printable(&e.comm),
                        e.cap,
                        u8::from(e.audit),
                        u8::from(e.insetid)
                    )?;
                } else {
                    writeln!(
                        out,
                        "{ts}{hms:<9} {:<6} {:<7} {:<16} {:<4} {name:<20} {}",
                        e.uid,
                        e.pid,
                        printable(&e.comm),
                        e.cap,
                        u8::from(e.audit)
                    )?;
                }
            }
            Ok(())
        },
    )?;
    Ok(finish(watch, exited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_as_bcc_names_them() {
        assert_eq!(errno_text(0), "0");
        assert_eq!(errno_text(-1), "-EPERM");
        assert_eq!(errno_text(-16), "-EBUSY");
        assert_eq!(errno_text(-40), "-ELOOP");
        assert_eq!(errno_text(-95), "-95");
    }
}
