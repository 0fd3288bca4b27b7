//! The tools kept loaded by an exporter, and their histograms and
//! counters as Prometheus metric families: [`ProbeMetrics`] loads the
//! probes chosen ([`Probe`]) and, at each scrape, reads them into
//! `perfkit-exposition`'s [`Writer`] (which alone writes the text).
//! Histograms are in seconds, with every bucket of [`LATENCY_BOUNDS`]
//! from the first scrape, so that `histogram_quantile()` and `rate()`
//! work over any window.

use std::{collections::BTreeMap, sync::Mutex};

use perfkit_exposition::Writer;

use super::{
    BlockIo, BlockIoConfig, Histogram, IrqKind, IrqTime, Irqs, IrqsConfig, OomKillConfig, OomKiller, RetransCount,
    Runqlat, RunqlatConfig, RunqlatPer, Syscount, SyscountConfig, TcpOpenKind, TcpOpens, TcpOpensConfig, TcpRetrans,
    TcpRetransConfig, ToolStats, disk_name, kernel_dev, softirq_name,
};
use crate::ProbeError;

/// The log2 buckets every exported latency histogram has: bucket `i`
/// holds `[2^i, 2^(i+1))` µs, so the upper bounds go from 2 µs to 2^32 µs
/// (about 72 minutes); longer values count in `+Inf` only.
pub const EXPORTED_BUCKETS: usize = 32;

/// The upper bounds, in seconds, of the [`EXPORTED_BUCKETS`] buckets.
pub const LATENCY_BOUNDS: [f64; EXPORTED_BUCKETS] = {
    let mut b = [0.0; EXPORTED_BUCKETS];
    let mut i = 0;
    while i < EXPORTED_BUCKETS {
        b[i] = (1u64 << (i + 1)) as f64 / 1e6;
        i += 1;
    }
    b
};

/// One probe an exporter can keep loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Probe {
    /// Run-queue latency (`perfkit_runqueue_latency_seconds`).
    Runqlat,
    /// Block I/O latency per disk (`perfkit_block_io_latency_seconds`).
    Biolatency,
    /// Calls, errors and time per syscall.
    Syscount,
    /// TCP retransmissions by state.
    Tcpretrans,
    /// TCP connects by remote port.
    Tcpconnect,
    /// TCP accepts by local port.
    Tcpaccept,
    /// OOM kills.
    Oomkill,
    /// Time and runs per softirq vector.
    Softirqs,
    /// Time and runs per hard IRQ handler name.
    Hardirqs,
}

/// Which probes [`ProbeMetrics`] loads.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ProbeMetricsConfig {
    /// The probes (repeats are loaded once).
    pub probes: Vec<Probe>,
    /// Run-queue latency per cgroup v2 group (label `cgroup_id`) instead
    /// of one histogram for the machine.
    pub runqlat_per_cgroup: bool,
}

impl ProbeMetricsConfig {
    /// These probes, run-queue latency for the whole machine.
    pub fn new(probes: impl IntoIterator<Item = Probe>) -> Self {
        Self { probes: probes.into_iter().collect(), runqlat_per_cgroup: false }
    }
}

/// Loading one probe failed.
#[derive(Debug, thiserror::Error)]
#[error("loading the {probe} probe")]
pub struct StartError {
    /// The probe (or probes sharing one program: `tcpconnect/tcpaccept`).
    pub probe: &'static str,
    /// Why.
    #[source]
    pub source: Box<ProbeError>,
}

fn loading(probe: &'static str) -> impl FnOnce(ProbeError) -> StartError {
    move |source| StartError { probe, source: Box::new(source) }
}

/// The probes an exporter keeps loaded, read at each scrape.
#[derive(Default)]
pub struct ProbeMetrics {
    runqlat: Option<Mutex<Runqlat>>,
    bio: Option<Mutex<BlockIo>>,
    syscount: Option<Mutex<Syscount>>,
    retrans: Option<Mutex<TcpRetrans>>,
    /// Connects and accepts by port (one probe counts both kinds).
    opens: Option<TcpOpens>,
    connects: bool,
    accepts: bool,
    oomkill: Option<Mutex<OomKiller>>,
    /// softirqs and hardirqs, one probe for both.
    irqs: Option<(Mutex<Irqs>, IrqsConfig)>,
    per_cgroup: bool,
}

impl ProbeMetrics {
    /// Loads and attaches the probes of `config`.
    pub fn start(config: &ProbeMetricsConfig) -> Result<Self, StartError> {
        let mut p = ProbeMetrics { per_cgroup: config.runqlat_per_cgroup, ..ProbeMetrics::default() };
        let wants = |probe| config.probes.contains(&probe);
        if wants(Probe::Runqlat) {
            let per = if config.runqlat_per_cgroup { RunqlatPer::Cgroup } else { RunqlatPer::All };
            let c = RunqlatConfig { per, ..Default::default() };
            p.runqlat = Some(Runqlat::start(c).map_err(loading("runqlat"))?.into());
        }
        if wants(Probe::Biolatency) {
            let c = BlockIoConfig { histograms: true, per_disk: true, ..Default::default() };
            p.bio = Some(BlockIo::start(c).map_err(loading("biolatency"))?.into());
        }
        if wants(Probe::Syscount) {
            let c = SyscountConfig { latency: true, ..Default::default() };
            p.syscount = Some(Syscount::start(c).map_err(loading("syscount"))?.into());
        }
        if wants(Probe::Tcpretrans) {
            p.retrans = Some(TcpRetrans::start(TcpRetransConfig::default()).map_err(loading("tcpretrans"))?.into());
        }
        (p.connects, p.accepts) = (wants(Probe::Tcpconnect), wants(Probe::Tcpaccept));
        if p.connects || p.accepts {
            // Counts only: nothing is streamed.
            p.opens = Some(TcpOpens::start(TcpOpensConfig::counts_only()).map_err(loading("tcpconnect/tcpaccept"))?);
        }
        if wants(Probe::Oomkill) {
            p.oomkill = Some(OomKiller::start(OomKillConfig::default()).map_err(loading("oomkill"))?.into());
        }
        let (soft, hard) = (wants(Probe::Softirqs), wants(Probe::Hardirqs));
        if soft || hard {
            let config = IrqsConfig::new(hard, soft);
            p.irqs = Some((Irqs::start(config).map_err(loading("softirqs/hardirqs"))?.into(), config));
        }
        Ok(p)
    }

    /// Whether any probe is loaded.
    pub fn any(&self) -> bool {
        self.runqlat.is_some()
            || self.bio.is_some()
            || self.syscount.is_some()
            || self.retrans.is_some()
            || self.opens.is_some()
            || self.oomkill.is_some()
            || self.irqs.is_some()
    }

    /// Reads every probe into `out`.
    pub fn write(&self, out: &mut Writer) -> Result<(), ProbeError> {
        let mut lost: Vec<(&str, ToolStats)> = Vec::new();
        if let Some(r) = &self.runqlat {
            let r = r.lock().unwrap_or_else(|e| e.into_inner());
            let mut f = out.histogram(
                "perfkit_runqueue_latency_seconds",
                "Time runnable threads waited for a CPU (runqlat).",
                &LATENCY_BOUNDS,
            );
            for h in r.histograms()? {
                let id = h.id.to_string();
                let labels: &[(&str, &str)] = if self.per_cgroup { &[("cgroup_id", &id)] } else { &[] };
                observe(&mut f, labels, &h);
            }
            lost.push(("runqlat", r.stats()?));
        }
        if let Some(b) = &self.bio {
            let b = b.lock().unwrap_or_else(|e| e.into_inner());
            let mut f = out.histogram(
                "perfkit_block_io_latency_seconds",
                "Block I/O latency from issue to completion, per disk (biolatency).",
                &LATENCY_BOUNDS,
            );
            for h in b.histograms()? {
                let (major, minor) = kernel_dev(h.id);
                observe(&mut f, &[("disk", &disk_name(major, minor))], &h);
            }
            lost.push(("biolatency", b.stats()?));
        }
        if let Some(sc) = &self.syscount {
            let sc = sc.lock().unwrap_or_else(|e| e.into_inner());
            let counts = sc.counts()?;
            let names: Vec<String> = counts.iter().map(|c| sc.name(c.nr)).collect();
            let mut f = out.counter("perfkit_syscalls_total", "System calls made, per syscall (syscount).");
            for (c, name) in counts.iter().zip(&names) {
                f.sample(&[("syscall", name)], c.count);
            }
            let mut f = out.counter("perfkit_syscall_errors_total", "System calls that failed, per syscall.");
            for (c, name) in counts.iter().zip(&names) {
                f.sample(&[("syscall", name)], c.errors);
            }
            let mut f = out.counter("perfkit_syscall_seconds_total", "Time spent in system calls, per syscall.");
            for (c, name) in counts.iter().zip(&names) {
                f.sample(&[("syscall", name)], c.total_ns as f64 / 1e9);
            }
            lost.push(("syscount", sc.stats()?));
        }
        if let Some(t) = &self.retrans {
            let t = t.lock().unwrap_or_else(|e| e.into_inner());
            let counts = t.counts()?;
            type Value = fn(&RetransCount) -> u64;
            let metrics: [(&str, &str, Value); 3] = [
                (
                    "perfkit_tcp_retransmitted_segments_total",
                    "TCP segments retransmitted (tcp_skb_pcount of each skb sent again, as the kernel's RetransSegs \
                     counts them), by the socket's TCP state (tcpretrans).",
                    |c| c.segments,
                ),
                (
                    "perfkit_tcp_retransmissions_total",
                    "TCP retransmissions sent (skbs, each of one or more segments), by the socket's TCP state \
                     (tcpretrans).",
                    |c| c.retransmissions,
                ),
                (
                    "perfkit_tcp_retransmit_failures_total",
                    "TCP retransmission attempts that sent nothing (an error such as EBUSY or ENOMEM; traced by \
                     kernels whose tcp_retransmit_skb tracepoint has err), by the socket's TCP state (tcpretrans).",
                    |c| c.failed,
                ),
            ];
            for (name, help, value) in metrics {
                let mut f = out.counter(name, help);
                for c in &counts {
                    f.sample(&[("state", c.state)], value(c));
                }
            }
            lost.push(("tcpretrans", t.stats()?));
        }
        if let Some(o) = &self.opens {
            let counts = o.counts()?;
            for (wanted, kind, name, help) in [
                (
                    self.connects,
                    TcpOpenKind::Connect,
                    "perfkit_tcp_connects_total",
                    "TCP connects (active opens: SYN sent), by remote port (tcpconnect).",
                ),
                (
                    self.accepts,
                    TcpOpenKind::Accept,
                    "perfkit_tcp_accepts_total",
                    "TCP connections accepted (passive opens: handshakes completed on a listening socket), by local \
                     port (tcpaccept).",
                ),
            ] {
                if !wanted {
                    continue;
                }
                let mut f = out.counter(name, help);
                for c in counts.iter().filter(|c| c.kind == kind) {
                    f.sample(&[("port", &c.port.to_string())], c.count);
                }
            }
            lost.push(("tcpconnect", o.stats()?));
        }
        if let Some(k) = &self.oomkill {
            let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
            // Counted in the kernel; the events themselves are not kept.
            let _ = k.events(std::time::Duration::ZERO);
            let stats = k.stats()?;
            out.counter("perfkit_oom_kills_total", "Processes killed by the OOM killer (oomkill).")
                .sample(&[], stats.events);
            lost.push(("oomkill", stats));
        }
        if let Some((irqs, config)) = &self.irqs {
            let irqs = irqs.lock().unwrap_or_else(|e| e.into_inner());
            write_irqs(out, &irqs.times()?, config.soft, config.hard);
            if config.hard {
                lost.push(("hardirqs", irqs.stats(IrqKind::Hard)?));
            }
            if config.soft {
                lost.push(("softirqs", irqs.stats(IrqKind::Soft)?));
            }
        }
        if !lost.is_empty() {
            let mut f =
                out.counter("perfkit_probe_lost_total", "Events a probe could not record, by probe and reason.");
            for (probe, s) in lost {
                for (reason, n) in
                    [("ring_full", s.ring_full), ("starts_lost", s.starts_lost), ("updates_lost", s.updates_lost)]
                {
                    f.sample(&[("probe", probe), ("reason", reason)], n);
                }
            }
        }
        Ok(())
    }
}

impl perfkit_exposition::Collector for ProbeMetrics {
    fn name(&self) -> &str {
        "probes"
    }

    fn collect(&self, out: &mut Writer) -> Result<(), perfkit_exposition::Error> {
        Ok(self.write(out)?)
    }
}

/// One log2 histogram (microseconds) as a series of a family with
/// [`LATENCY_BOUNDS`]: slots past the last bound count in `+Inf` only.
pub fn observe(f: &mut perfkit_exposition::HistogramFamily<'_>, labels: &[(&str, &str)], h: &Histogram) {
    let per_bucket = &h.counts[..EXPORTED_BUCKETS.min(h.counts.len())];
    f.observe(labels, per_bucket, h.count(), h.sum_ns as f64 / 1e9);
}

/// softirq and hardirq time and runs as counters: every softirq vector
/// from the first scrape; hard IRQ handlers by name (IRQs of one name
/// summed) as they first run.
fn write_irqs(out: &mut Writer, times: &[IrqTime], soft: bool, hard: bool) {
    if soft {
        // The kernel's ten vectors (NR_SOFTIRQS), present or not.
        let mut by_vector: BTreeMap<u32, (u64, u64)> = (0..10).map(|v| (v, (0, 0))).collect();
        for t in times.iter().filter(|t| t.kind == IrqKind::Soft) {
            let e = by_vector.entry(t.number).or_default();
            e.0 = e.0.saturating_add(t.hist.sum_ns);
            e.1 = e.1.saturating_add(t.hist.count());
        }
        let mut f =
            out.counter("perfkit_softirq_seconds_total", "Time spent in softirq handlers, per vector (softirqs).");
        for (v, (ns, _)) in &by_vector {
            f.sample(&[("vector", &softirq_name(*v))], *ns as f64 / 1e9);
        }
        let mut f =
            out.counter("perfkit_softirqs_total", "Softirq handler runs, per vector (as /proc/softirqs counts them).");
        for (v, (_, n)) in &by_vector {
            f.sample(&[("vector", &softirq_name(*v))], *n);
        }
    }
    if hard {
        let mut by_name: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for t in times.iter().filter(|t| t.kind == IrqKind::Hard) {
            let e = by_name.entry(t.name.as_str()).or_default();
            e.0 = e.0.saturating_add(t.hist.sum_ns);
            e.1 = e.1.saturating_add(t.hist.count());
        }
        let mut f = out.counter(
            "perfkit_hardirq_seconds_total",
            "Time spent in hard IRQ handlers, per handler name as in /proc/interrupts (hardirqs).",
        );
        for (name, (ns, _)) in &by_name {
            f.sample(&[("name", name)], *ns as f64 / 1e9);
        }
        let mut f = out.counter("perfkit_hardirqs_total", "Hard IRQ handler runs, per handler name.");
        for (name, (_, n)) in &by_name {
            f.sample(&[("name", name)], *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_in_seconds_with_every_bucket() {
        let mut h = Histogram::new(0, 0);
        h.counts[0] = 1;
        h.counts[2] = 3;
        h.sum_ns = 9_000;
        let mut full = Histogram::new(0, 0);
        full.counts[40] = 1;
        let mut w = Writer::new();
        let mut f = w.histogram("x_seconds", "X.", &LATENCY_BOUNDS);
        observe(&mut f, &[("disk", "vda")], &h);
        observe(&mut f, &[("disk", "vdb")], &Histogram::new(0, 0));
        observe(&mut f, &[("disk", "vdc")], &full);
        let text = w.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(lines[0], "x_seconds_bucket{disk=\"vda\",le=\"0.000002\"} 1");
        assert_eq!(lines[2], "x_seconds_bucket{disk=\"vda\",le=\"0.000008\"} 4");
        assert_eq!(lines[EXPORTED_BUCKETS - 1], "x_seconds_bucket{disk=\"vda\",le=\"4294.967296\"} 4");
        assert_eq!(lines[EXPORTED_BUCKETS], "x_seconds_bucket{disk=\"vda\",le=\"+Inf\"} 4");
        assert_eq!(lines[EXPORTED_BUCKETS + 1], "x_seconds_sum{disk=\"vda\"} 0.000009");
        assert_eq!(lines[EXPORTED_BUCKETS + 2], "x_seconds_count{disk=\"vda\"} 4");
        // The empty histogram and the one past the last bound have the
        // same `le` series as the first.
        let les = |disk: &str| -> Vec<&str> {
            lines
                .iter()
                .filter(|l| l.contains(&format!("disk=\"{disk}\",le=")))
                .map(|l| l.split("le=").nth(1).unwrap().split('}').next().unwrap())
                .collect()
        };
        assert_eq!(les("vda").len(), EXPORTED_BUCKETS + 1);
        assert_eq!(les("vda"), les("vdb"));
        assert_eq!(les("vda"), les("vdc"));
        // A value past the last bound counts in +Inf only.
        assert!(
            text.contains(
                "x_seconds_bucket{disk=\"vdc\",le=\"4294.967296\"} 0\nx_seconds_bucket{disk=\"vdc\",le=\"+Inf\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_softirq_vector_from_the_first_scrape_and_hardirqs_by_name() {
        let mut w = Writer::new();
        let mut eth = Histogram::new(0, 0);
        eth.counts[3] = 2;
        eth.sum_ns = 20_000;
        let times = [
            IrqTime { kind: IrqKind::Hard, number: 24, name: "eth0".into(), hist: eth.clone() },
            IrqTime { kind: IrqKind::Hard, number: 25, name: "eth0".into(), hist: eth },
        ];
        write_irqs(&mut w, &times, true, true);
        let text = w.finish();
        assert_eq!(text.lines().filter(|l| l.starts_with("perfkit_softirqs_total{")).count(), 10, "{text}");
        assert!(text.contains("perfkit_hardirqs_total{name=\"eth0\"} 4\n"), "{text}");
        assert!(text.contains("perfkit_hardirq_seconds_total{name=\"eth0\"} 0.00004\n"), "{text}");
    }
}
