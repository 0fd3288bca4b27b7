//! What procfs counters do not say, traced with eBPF over the window (as
//! root): run-queue lengths per CPU (runqlen), process churn (execsnoop:
//! execs by program) and TCP connections by port (tcpconnect and
//! tcpaccept). Shown in the reports; the rules read procfs's figures.

use std::collections::{BTreeMap, HashMap};

use perfkit_probes::tools::{
    EventSource, ExecSnoop, ExecSnoopConfig, Histogram, PortCount, Runqlen, RunqlenConfig, TcpOpenKind, TcpOpens,
    TcpOpensConfig,
};
use serde::{Deserialize, Serialize};

/// The most programs or ports listed.
const TOP: usize = 10;
/// The most distinct program names counted (a fork bomb of random names
/// stays bounded).
const MAX_PROGRAMS: usize = 4096;

/// The eBPF activity of the window; each part `None` when it could not be
/// traced (a note says why).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Activity {
    /// Run-queue length per CPU, sampled at 99 Hz.
    pub run_queue_length: Option<Vec<CpuQueue>>,
    /// Execs in the window.
    pub execs: Option<ExecChurn>,
    /// TCP connects (by remote port) and accepts (by local port).
    pub tcp_opens: Option<TcpOpensByPort>,
}

/// One CPU's run queue over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CpuQueue {
    /// The CPU.
    pub cpu: u32,
    /// Samples taken.
    pub samples: u64,
    /// Tasks waiting besides the running one, on average.
    pub mean_waiting: f64,
    /// Samples with at least one task waiting, in percent.
    pub occupancy_percent: f64,
}

/// Execs in the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecChurn {
    /// Execs seen (successful ones).
    pub execs: u64,
    /// Failed execs.
    pub failed: u64,
    /// Execs per second.
    pub per_second: f64,
    /// The programs exec'd most (`comm` after the exec), most first.
    pub top: Vec<Count>,
    /// Events lost (ring buffer full).
    pub lost: u64,
}

/// A name or port with its count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Count {
    /// The program's name, or the port.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// TCP opens in the window, by port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TcpOpensByPort {
    /// Connects by remote port, most first.
    pub connects: Vec<Count>,
    /// Accepted connections by local port, most first.
    pub accepts: Vec<Count>,
}

/// The tracers, running.
pub(crate) struct Tracing {
    runqlen: Option<(Runqlen, Vec<Histogram>)>,
    execs: Option<(ExecSnoop, BTreeMap<String, u64>, u64, u64)>,
    opens: Option<(TcpOpens, Vec<PortCount>)>,
}

impl Tracing {
    /// Starts what can start; a note for each that cannot.
    pub(crate) fn start(notes: &mut Vec<String>) -> Self {
        let runqlen = Runqlen::start(RunqlenConfig::default())
            .map_err(|e| notes.push(format!("run-queue lengths not sampled: {e}")))
            .ok()
            .map(|t| (t, Vec::new()));
        let execs = ExecSnoop::start(ExecSnoopConfig::default())
            .map_err(|e| notes.push(format!("execs not traced: {e}")))
            .ok()
            .map(|t| (t, BTreeMap::new(), 0, 0));
        let opens = TcpOpens::start(TcpOpensConfig::counts_only())
            .map_err(|e| notes.push(format!("TCP connects and accepts not traced: {e}")))
            .ok()
            .map(|t| (t, Vec::new()));
        Self { runqlen, execs, opens }
    }

    /// The window starts now: what was counted before is taken off at the
    /// end, and execs before now are dropped.
    pub(crate) fn baseline(&mut self, notes: &mut Vec<String>) {
        if let Some((t, base)) = &mut self.runqlen {
            match t.per_cpu() {
                Ok(h) => *base = h,
                Err(e) => notes.push(format!("run-queue lengths not read: {e}")),
            }
        }
        if let Some((t, ..)) = &mut self.execs {
            let _ = t.poll_events(std::time::Duration::ZERO);
        }
        if let Some((t, base)) = &mut self.opens {
            match t.counts() {
                Ok(c) => *base = c,
                Err(e) => notes.push(format!("TCP connects and accepts not read: {e}")),
            }
        }
    }

    /// Drains the execs that came (called with each snapshot, so the ring
    /// buffer never fills over a long window).
    pub(crate) fn drain(&mut self) {
        if let Some((t, by_program, execs, failed)) = &mut self.execs {
            for e in t.poll_events(std::time::Duration::ZERO) {
                if e.ret != 0 {
                    *failed += 1;
                    continue;
                }
                *execs += 1;
                if by_program.len() < MAX_PROGRAMS || by_program.contains_key(&e.comm) {
                    *by_program.entry(e.comm).or_default() += 1;
                }
            }
        }
    }

    /// What the window saw.
    pub(crate) fn finish(mut self, seconds: f64, notes: &mut Vec<String>) -> Activity {
        self.drain();
        let run_queue_length = self.runqlen.and_then(|(t, base)| match t.per_cpu() {
            Ok(now) => Some(now.iter().map(|h| queue(h, base.iter().find(|b| b.id == h.id))).collect()),
            Err(e) => {
                notes.push(format!("run-queue lengths not read: {e}"));
                None
            }
        });
        let execs = self.execs.map(|(t, by_program, execs, failed)| ExecChurn {
            execs,
            failed,
            per_second: if seconds > 0.0 { round2(execs as f64 / seconds) } else { 0.0 },
            top: top(by_program.into_iter().map(|(name, count)| Count { name, count }).collect()),
            lost: t.stats().map_or(0, |s| s.ring_full),
        });
        let tcp_opens = self.opens.and_then(|(t, base)| match t.counts() {
            Ok(now) => Some(opens_since(&now, &base)),
            Err(e) => {
                notes.push(format!("TCP connects and accepts not read: {e}"));
                None
            }
        });
        Activity { run_queue_length, execs, tcp_opens }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The most first, at most [`TOP`], names breaking ties.
fn top(mut v: Vec<Count>) -> Vec<Count> {
    v.retain(|c| c.count > 0);
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(TOP);
    v
}

/// One CPU's queue from its linear histogram of lengths, less the counts
/// before the window.
fn queue(now: &Histogram, before: Option<&Histogram>) -> CpuQueue {
    let h = before.map_or_else(|| now.clone(), |b| now.since(b));
    let samples = h.count();
    let waiting: u64 = h.counts.iter().enumerate().map(|(len, &c)| len as u64 * c).sum();
    let busy = samples - h.counts[0].min(samples);
    CpuQueue {
        cpu: h.id as u32,
        samples,
        mean_waiting: if samples > 0 { round2(waiting as f64 / samples as f64) } else { 0.0 },
        occupancy_percent: if samples > 0 { round2(100.0 * busy as f64 / samples as f64) } else { 0.0 },
    }
}

/// Opens by port in the window.
fn opens_since(now: &[PortCount], before: &[PortCount]) -> TcpOpensByPort {
    let before: HashMap<(TcpOpenKind, u16), u64> = before.iter().map(|c| ((c.kind, c.port), c.count)).collect();
    let of = |kind: TcpOpenKind| {
        top(now
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| Count {
                name: c.port.to_string(),
                count: c.count.saturating_sub(before.get(&(kind, c.port)).copied().unwrap_or(0)),
            })
            .collect())
    };
    TcpOpensByPort { connects: of(TcpOpenKind::Connect), accepts: of(TcpOpenKind::Accept) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lengths_are_means_and_occupancy_of_the_window() {
        let mut before = Histogram::new(1, 0);
        before.counts[0] = 50;
        let mut now = before.clone();
        // In the window: 10 samples empty, 10 with 2 waiting, 20 with 3.
        now.counts[0] += 10;
        now.counts[2] = 10;
        now.counts[3] = 20;
        let q = queue(&now, Some(&before));
        assert_eq!((q.cpu, q.samples), (1, 40));
        assert_eq!(q.mean_waiting, 2.0);
        assert_eq!(q.occupancy_percent, 75.0);
        assert_eq!(queue(&Histogram::new(0, 0), None).mean_waiting, 0.0);
    }

    #[test]
    fn top_keeps_the_most_and_drops_zeros() {
        let v = (0..15).map(|i| Count { name: format!("p{i:02}"), count: i }).collect();
        let t = top(v);
        assert_eq!(t.len(), TOP);
        assert_eq!(t[0].name, "p14");
        assert!(t.iter().all(|c| c.count > 0));
    }
}
