//! tcpconnect and tcpaccept: TCP opens, active and passive, with the
//! process that connected or accepted, and counts by port.

use std::{net::IpAddr, time::Duration};

use aya::maps::MapData;
use perfkit_probes_common::{
    names,
    tools::{
        CONN_ACCEPT, CONN_CONNECT, TOOL_TCPACCEPT, TOOL_TCPCONNECT, TcpConnConfig, TcpConnEvent, TcpPortKey, ToolConfig,
    },
};

use super::{Globals, Probe, Ring, ToolStats, drain, events};
use crate::{ProbeError, Selection};

/// Which opens are streamed as events (counts by port are kept for both
/// kinds either way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpOpensConfig {
    /// The processes whose opens are streamed: connects by the connecting
    /// process, accepts by the accepting one (`None`: all; counts by port
    /// are not filtered).
    pub selection: Option<Selection>,
    /// Stream connects (tcpconnect).
    pub connects: bool,
    /// Stream accepts (tcpaccept).
    pub accepts: bool,
}

impl TcpOpensConfig {
    /// Connects streamed (tcpconnect).
    pub fn connects() -> Self {
        Self { connects: true, ..Self::default() }
    }

    /// Accepts streamed (tcpaccept).
    pub fn accepts() -> Self {
        Self { accepts: true, ..Self::default() }
    }

    /// Nothing streamed: counts by port only (`serve --probes`).
    pub fn counts_only() -> Self {
        Self::default()
    }
}

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum TcpOpenKind {
    /// An active open: a connect (SYN sent).
    Connect,
    /// A passive open: a handshake completed on a listening socket.
    Accept,
}

/// One TCP open.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TcpOpen {
    /// CLOCK_MONOTONIC nanoseconds: the SYN sent (connect) or the
    /// handshake completed (accept).
    pub ts_ns: u64,
    /// Connect or accept.
    pub kind: TcpOpenKind,
    /// The process that connected, or that accepted the socket.
    pub pid: u32,
    /// Its thread.
    pub tid: u32,
    /// Its user.
    pub uid: u32,
    /// Its name.
    pub comm: String,
    /// Local address.
    pub local: IpAddr,
    /// Local port (0 for a connect: the kernel chooses it after SYN_SENT).
    pub local_port: u16,
    /// Remote address.
    pub remote: IpAddr,
    /// Remote port.
    pub remote_port: u16,
}

fn tcp_open(bytes: &[u8]) -> Option<TcpOpen> {
    let e: TcpConnEvent = events::record(bytes)?;
    Some(TcpOpen {
        ts_ns: e.ts_ns,
        kind: if e.kind == CONN_CONNECT { TcpOpenKind::Connect } else { TcpOpenKind::Accept },
        pid: e.pid,
        tid: e.tid,
        uid: e.uid,
        comm: events::text(&e.comm),
        local: events::address(e.family, &e.saddr),
        local_port: e.sport,
        remote: events::address(e.family, &e.daddr),
        remote_port: e.dport,
    })
}

/// Opens of one kind on one port since the start.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct PortCount {
    /// Connect (by remote port) or accept (by local port).
    pub kind: TcpOpenKind,
    /// The port.
    pub port: u16,
    /// Opens.
    pub count: u64,
}

/// TCP opens (tcpconnect, tcpaccept).
#[derive(Debug)]
pub struct TcpOpens {
    probe: Probe,
    pub(super) ring: Ring,
}

impl TcpOpens {
    /// Loads and attaches. A selection filters connects by the connecting
    /// process and accepts by the accepting one (counts by port are not
    /// filtered).
    pub fn start(config: TcpOpensConfig) -> Result<Self, ProbeError> {
        let selection = config.selection.clone();
        let mut c = TcpConnConfig {
            connect_events: u32::from(config.connects),
            accept_events: u32::from(config.accepts),
            ..TcpConnConfig::default()
        };
        if config.accepts {
            let o = crate::btf::fd_socket_offsets()?;
            (c.task_files, c.files_fdt, c.fdtable_max_fds, c.fdtable_fd, c.file_private_data, c.socket_sk) =
                (o[0], o[1], o[2], o[3], o[4], o[5]);
        }
        // Counts only: the ring buffer stays at its minimum.
        let mut keep = vec![names::TCP_PORT_COUNTS];
        if config.connects || config.accepts {
            keep.push(names::TCP_CONN_EVENTS);
        }
        if config.accepts {
            keep.push(names::TCP_ACCEPT_PENDING);
        }
        let tool = if config.accepts && !config.connects { TOOL_TCPACCEPT } else { TOOL_TCPCONNECT };
        let bytes = bytes_of(&c);
        let mut probe = Probe::load_with(
            tool,
            Globals { selection, config: ToolConfig::default(), keep },
            &[(names::TCP_CONN_CONFIG, &bytes)],
        )?;
        probe.attach_tp(names::TCP_CONN_PROGRAM, "sock", "inet_sock_set_state")?;
        if config.accepts {
            probe.attach_tp(names::TCP_ACCEPT_RET_PROGRAM, "syscalls", "sys_exit_accept4")?;
            probe.attach_tp(names::TCP_ACCEPT_RET_PROGRAM, "syscalls", "sys_exit_accept")?;
        }
        let ring = probe.ring(names::TCP_CONN_EVENTS)?;
        Ok(Self { probe, ring })
    }

    /// Waits up to `timeout` for opens and returns those that came
    /// (accepts once the accepting process took them).
    pub fn events(&mut self, timeout: Duration) -> Vec<TcpOpen> {
        drain(&mut self.ring, timeout, tcp_open)
    }

    /// Opens by kind and port since the start (connects by remote port,
    /// accepts by local port), sorted.
    pub fn counts(&self) -> Result<Vec<PortCount>, ProbeError> {
        let map_err = |source| ProbeError::Map { map: names::TCP_PORT_COUNTS, source };
        let map: aya::maps::HashMap<&MapData, TcpPortKey, u64> =
            aya::maps::HashMap::try_from(self.probe.map(names::TCP_PORT_COUNTS)?).map_err(map_err)?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, count) = item.map_err(map_err)?;
            let kind = match k.kind {
                CONN_CONNECT => TcpOpenKind::Connect,
                CONN_ACCEPT => TcpOpenKind::Accept,
                _ => continue,
            };
            out.push(PortCount { kind, port: k.port as u16, count });
        }
        out.sort();
        Ok(out)
    }

    /// Counters since the start (connects and accepts together).
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        let mut s = self.probe.stats_of(TOOL_TCPCONNECT)?;
        s.merge(&self.probe.stats_of(TOOL_TCPACCEPT)?);
        Ok(s)
    }
}

/// The bytes of a plain-data global.
pub(super) fn bytes_of<T: aya::Pod>(v: &T) -> Vec<u8> {
    // SAFETY: `T` is Pod: every byte is initialised plain data.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}
