//! The event tools on TCP opens, OOM kills, mounts and capability checks:
//! `tcpconnect`, `tcpaccept`, `oomkill`, `mountsnoop`, `capable`, each in
//! bcc's layout or as JSON.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use perfkit_probes::tools::{
    Capable, CapableConfig, MountSnoop, MountSnoopConfig, OomKillConfig, OomKiller, TcpOpens, TcpOpensConfig,
    drive::{self, IpVersion, TcpOpenFilter},
    run::Watch,
};

use super::{Snooping, ToolTarget, run};

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
    /// The library's filter, with these ports and user.
    fn filter(&self, ports: &[u16], uid: Option<u32>) -> TcpOpenFilter {
        TcpOpenFilter { ip: IpVersion::only(self.ipv4, self.ipv6), ports: ports.to_vec(), uid }
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

pub fn tcpconnect(args: TcpconnectArgs) -> Result<ExitCode> {
    let view = args.snooping.view(false, args.timestamp_short);
    let filter = args.filters.filter(&args.port, args.uid);
    let start = |selection| {
        let mut config = TcpOpensConfig::connects();
        config.selection = selection;
        Ok(TcpOpens::start(config)?)
    };
    let banner = |_: &_| "Tracing connect ... Hit Ctrl-C to end".to_owned();
    let (uid, count) = (args.print_uid, args.count);
    run("tcpconnect", args.target.watch()?, start, banner, |t, d| drive::tcpconnect(t, &view, &filter, uid, count, d))
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

pub fn tcpaccept(args: TcpacceptArgs) -> Result<ExitCode> {
    let view = args.snooping.view(args.time_short, args.timestamp_short);
    let filter = args.filters.filter(&args.port, None);
    let start = |selection| {
        let mut config = TcpOpensConfig::accepts();
        config.selection = selection;
        Ok(TcpOpens::start(config)?)
    };
    let banner = |_: &_| "Tracing accept ... Hit Ctrl-C to end".to_owned();
    run("tcpaccept", args.target.watch()?, start, banner, |t, d| drive::tcpaccept(t, &view, &filter, d))
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

pub fn oomkill(args: OomkillArgs) -> Result<ExitCode> {
    let view = args.snooping.view(false, false);
    let start = |_| Ok(OomKiller::start(OomKillConfig::default())?);
    let banner = |_: &_| "Tracing OOM kills... Ctrl-C to stop.".to_owned();
    run("oomkill", Watch::machine(), start, banner, |t, d| drive::oomkill(t, &view, d))
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

pub fn mountsnoop(args: MountsnoopArgs) -> Result<ExitCode> {
    let view = args.snooping.view(false, args.timestamp_short);
    let start = |selection| {
        let mut config = MountSnoopConfig::default();
        config.selection = selection;
        Ok(MountSnoop::start(config)?)
    };
    let banner = |_: &_| "Tracing mount and umount... Hit Ctrl-C to end.".to_owned();
    run("mountsnoop", args.target.watch()?, start, banner, |t, d| drive::mountsnoop(t, &view, d))
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
    let view = args.snooping.view(false, false);
    let start = |selection| {
        let mut config = CapableConfig::default();
        (config.selection, config.non_audit) = (selection, args.non_audit);
        Ok(Capable::start(config)?)
    };
    let banner = |_: &_| "Tracing capability checks... Hit Ctrl-C to end.".to_owned();
    run("capable", args.target.watch()?, start, banner, |t, d| drive::capable(t, &view, args.extra, d))
}
