//! TCP counters from `/proc/net/snmp` and `/proc/net/netstat` (the text
//! `nstat` and `sar -n TCP,ETCP` read). Parsing only: bytes in, counters
//! out.

use serde::{Deserialize, Serialize};

/// The TCP counters checkup reads, since boot (of the reader's network
/// namespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCounters {
    /// `Tcp: OutSegs`: segments sent.
    pub out_segs: u64,
    /// `Tcp: RetransSegs`: segments retransmitted.
    pub retrans_segs: u64,
    /// `Tcp: InErrs`: segments received with errors.
    pub in_errs: u64,
    /// `Tcp: ActiveOpens`: connections opened (connect).
    pub active_opens: u64,
    /// `Tcp: PassiveOpens`: connections accepted.
    pub passive_opens: u64,
    /// `TcpExt: ListenOverflows`: a listen queue was full.
    pub listen_overflows: u64,
    /// `TcpExt: ListenDrops`: SYNs dropped at a listener, overflows included.
    pub listen_drops: u64,
}

/// Why the counters could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct TcpParseError {
    file: &'static str,
    reason: String,
}

/// Parses `/proc/net/snmp` and `/proc/net/netstat` (either may be empty
/// when unreadable: its counters stay 0). The `Tcp:` block of `snmp` is
/// required when `snmp` is given.
pub fn parse(snmp: &[u8], netstat: &[u8]) -> Result<TcpCounters, TcpParseError> {
    let mut c = TcpCounters::default();
    if !snmp.is_empty() {
        let tcp = block(snmp, "Tcp:").ok_or_else(|| TcpParseError { file: "snmp", reason: "no Tcp: block".into() })?;
        for (name, value) in tcp {
            match name {
                "OutSegs" => c.out_segs = value,
                "RetransSegs" => c.retrans_segs = value,
                "InErrs" => c.in_errs = value,
                "ActiveOpens" => c.active_opens = value,
                "PassiveOpens" => c.passive_opens = value,
                _ => {}
            }
        }
    }
    if let Some(ext) = block(netstat, "TcpExt:") {
        for (name, value) in ext {
            match name {
                "ListenOverflows" => c.listen_overflows = value,
                "ListenDrops" => c.listen_drops = value,
                _ => {}
            }
        }
    }
    Ok(c)
}

/// The (name, value) pairs of a block: a header line `PREFIX name...`
/// followed by a value line `PREFIX value...`. Values that do not parse as
/// unsigned (`MaxConn` is -1) are left out.
fn block<'a>(text: &'a [u8], prefix: &str) -> Option<Vec<(&'a str, u64)>> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let pairs = names
        .split_whitespace()
        .skip(1)
        .zip(values.split_whitespace().skip(1))
        .filter_map(|(n, v)| v.parse().ok().map(|v| (n, v)))
        .collect();
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
Tcp: 1 200 120000 -1 1234 56 7 8 9 100000 90000 321 4 5 0\n\
Udp: InDatagrams\nUdp: 3\n";
    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 17 19\n\
IpExt: InNoRoutes\nIpExt: 0\n";

    #[test]
    fn reads_the_tcp_counters() {
        let c = parse(SNMP.as_bytes(), NETSTAT.as_bytes()).unwrap();
        assert_eq!(
            c,
            TcpCounters {
                out_segs: 90000,
                retrans_segs: 321,
                in_errs: 4,
                active_opens: 1234,
                passive_opens: 56,
                listen_overflows: 17,
                listen_drops: 19,
            }
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse(b"garbage\n\xff\xfe", b"").is_err());
        assert!(parse(b"Tcp: OutSegs\n", b"").is_err());
        // Truncated values and a missing netstat are tolerated.
        let c = parse(b"Tcp: OutSegs RetransSegs\nTcp: 10\n", b"TcpExt: ListenOverflows\n").unwrap();
        assert_eq!((c.out_segs, c.retrans_segs, c.listen_overflows), (10, 0, 0));
    }
}
