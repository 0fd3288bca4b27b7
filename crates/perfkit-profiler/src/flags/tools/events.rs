//! Flags of the event tools on TCP opens, OOM kills, mounts and capability
//! checks: tcpconnect, tcpaccept, oomkill, mountsnoop, capable.

use clap::Args;
use perfkit_probes::{
    Selection,
    tools::{
        Capable, CapableConfig, MountSnoop, MountSnoopConfig, OomKillConfig, OomKiller, TcpOpens, TcpOpensConfig,
        drive::{self, Clock, DriveError, Driver, IpVersion, TcpOpenFilter},
        run::Watch,
    },
};
use perfkit_target::ExitStatus;

use super::{Snooping, ToolFlags, ToolTargetArgs};
use crate::flags::FlagError;

/// Filters bcc's tcpconnect and tcpaccept apply to each open.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct OpenFilters {
    /// IPv4 only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// IPv6 only.
    #[arg(short = '6', long)]
    pub ipv6: bool,
}

impl OpenFilters {
    /// The library's filter, with these ports and user.
    pub fn filter(&self, ports: &[u16], uid: Option<u32>) -> TcpOpenFilter {
        TcpOpenFilter { ip: IpVersion::only(self.ipv4, self.ipv6), ports: ports.to_vec(), uid }
    }
}

/// Each TCP connect, like bcc's tcpconnect.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct TcpconnectArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    pub timestamp_short: bool,

    /// Connects to these remote ports only, comma-separated.
    #[arg(short = 'P', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    pub port: Vec<u16>,

    /// Connects by this user only.
    #[arg(short = 'u', long, value_name = "UID")]
    pub uid: Option<u32>,

    /// Print a UID column.
    #[arg(short = 'U', long)]
    pub print_uid: bool,

    /// Count connects by local address, remote address and port, and print
    /// the counts at the end.
    #[arg(short = 'c', long)]
    pub count: bool,

    /// IP version filters.
    #[command(flatten)]
    pub filters: OpenFilters,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for TcpconnectArgs {
    type Tool = TcpOpens;
    const NAME: &'static str = "tcpconnect";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<TcpOpens, FlagError> {
        let mut config = TcpOpensConfig::connects();
        config.selection = selection;
        Ok(TcpOpens::start(config)?)
    }

    fn banner(&self, _: &TcpOpens, _: &dyn Clock) -> String {
        "Tracing connect ... Hit Ctrl-C to end".to_owned()
    }

    fn drive(&self, tool: &mut TcpOpens, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = self.snooping.view(false, self.timestamp_short);
        let filter = self.filters.filter(&self.port, self.uid);
        drive::tcpconnect(tool, &view, &filter, self.print_uid, self.count, d)
    }
}

/// Each accepted TCP connection, like bcc's tcpaccept.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct TcpacceptArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// Print a time column, the clock time (bcc's -T, as --time).
    #[arg(short = 'T')]
    pub time_short: bool,

    /// Print a timestamp column, seconds since the start (bcc's -t, as
    /// --timestamp).
    #[arg(short = 't')]
    pub timestamp_short: bool,

    /// Accepts on these local ports only, comma-separated.
    #[arg(short = 'P', long, value_name = "PORT[,PORT...]", value_delimiter = ',')]
    pub port: Vec<u16>,

    /// IP version filters.
    #[command(flatten)]
    pub filters: OpenFilters,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for TcpacceptArgs {
    type Tool = TcpOpens;
    const NAME: &'static str = "tcpaccept";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<TcpOpens, FlagError> {
        let mut config = TcpOpensConfig::accepts();
        config.selection = selection;
        Ok(TcpOpens::start(config)?)
    }

    fn banner(&self, _: &TcpOpens, _: &dyn Clock) -> String {
        "Tracing accept ... Hit Ctrl-C to end".to_owned()
    }

    fn drive(&self, tool: &mut TcpOpens, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        let view = self.snooping.view(self.time_short, self.timestamp_short);
        drive::tcpaccept(tool, &view, &self.filters.filter(&self.port, None), d)
    }
}

/// Each OOM kill, like bcc's oomkill.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct OomkillArgs {
    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for OomkillArgs {
    type Tool = OomKiller;
    const NAME: &'static str = "oomkill";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        Ok(Watch::machine())
    }

    fn start(&self, _: Option<Selection>) -> Result<OomKiller, FlagError> {
        Ok(OomKiller::start(OomKillConfig::default())?)
    }

    fn banner(&self, _: &OomKiller, _: &dyn Clock) -> String {
        "Tracing OOM kills... Ctrl-C to stop.".to_owned()
    }

    fn drive(&self, tool: &mut OomKiller, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        drive::oomkill(tool, &self.snooping.view(false, false), d)
    }
}

/// Each mount and umount, like bcc's mountsnoop.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct MountsnoopArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// Print a timestamp column, seconds since the start (libbpf-tools'
    /// -t, as --timestamp).
    #[arg(short = 't')]
    pub timestamp_short: bool,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for MountsnoopArgs {
    type Tool = MountSnoop;
    const NAME: &'static str = "mountsnoop";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<MountSnoop, FlagError> {
        let mut config = MountSnoopConfig::default();
        config.selection = selection;
        Ok(MountSnoop::start(config)?)
    }

    fn banner(&self, _: &MountSnoop, _: &dyn Clock) -> String {
        "Tracing mount and umount... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut MountSnoop, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        drive::mountsnoop(tool, &self.snooping.view(false, self.timestamp_short), d)
    }
}

/// Each capability check, like bcc's capable.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct CapableArgs {
    /// What to watch.
    #[command(flatten)]
    pub target: ToolTargetArgs,

    /// Include checks made without auditing (bcc's -v; perfkit's -v is log
    /// verbosity).
    #[arg(long)]
    pub non_audit: bool,

    /// Extra columns: TID and INSETID.
    #[arg(short = 'x', long)]
    pub extra: bool,

    /// JSON, time columns and duration.
    #[command(flatten)]
    pub snooping: Snooping,
}

impl ToolFlags for CapableArgs {
    type Tool = Capable;
    const NAME: &'static str = "capable";

    fn watch(&mut self) -> Result<Watch, FlagError> {
        self.target.watch()
    }

    fn start(&self, selection: Option<Selection>) -> Result<Capable, FlagError> {
        let mut config = CapableConfig::default();
        (config.selection, config.non_audit) = (selection, self.non_audit);
        Ok(Capable::start(config)?)
    }

    fn banner(&self, _: &Capable, _: &dyn Clock) -> String {
        "Tracing capability checks... Hit Ctrl-C to end.".to_owned()
    }

    fn drive(&self, tool: &mut Capable, d: &mut Driver<'_>) -> Result<Option<ExitStatus>, DriveError> {
        drive::capable(tool, &self.snooping.view(false, false), self.extra, d)
    }
}
