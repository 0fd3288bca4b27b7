//! log2 latency histograms as the kernel side keeps them.

use std::collections::BTreeMap;

use aya::maps::{HashMap as BpfHashMap, MapData};
use perfkit_probes_common::tools::{HIST_SLOTS, HistKey, HistValue};

use crate::ProbeError;

/// One log2 histogram of latencies: bucket `i` counts values of
/// `[2^i, 2^(i+1))` microseconds (bucket 0 also counts values under 1 µs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Histogram {
    /// What it is per (a PID, a cgroup id, a device number...), or 0.
    pub id: u64,
    /// A second split (an operation), or 0.
    pub sub: u32,
    /// Counts by log2 slot of microseconds.
    pub counts: [u64; HIST_SLOTS],
    /// Sum of the values, in nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new(id: u64, sub: u32) -> Self {
        Self { id, sub, counts: [0; HIST_SLOTS], sum_ns: 0 }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// Bucket `i`'s bounds in microseconds: `[low, high]` inclusive, as
    /// bcc prints them.
    pub fn bounds_us(i: usize) -> (u64, u64) {
        let low = if i == 0 { 0 } else { 1u64 << i };
        let high = if i >= 63 { u64::MAX } else { (1u64 << (i + 1)) - 1 };
        (low, high)
    }

    /// The non-empty range of buckets: (first, last), or `None`.
    pub fn used(&self) -> Option<(usize, usize)> {
        let first = self.counts.iter().position(|&c| c > 0)?;
        let last = self.counts.iter().rposition(|&c| c > 0)?;
        Some((first, last))
    }

    /// This histogram minus an earlier reading of it (an interval's worth).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut out = self.clone();
        for (c, e) in out.counts.iter_mut().zip(&earlier.counts) {
            *c = c.saturating_sub(*e);
        }
        out.sum_ns = out.sum_ns.saturating_sub(earlier.sum_ns);
        out
    }

    /// The value below which `q` (0..=1) of the values fall, in
    /// microseconds, at the resolution of the buckets (their upper bound).
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(Self::bounds_us(i).1);
            }
        }
        None
    }
}

/// Reads every histogram of a map (a hash map, or a per-CPU one whose
/// copies are summed), sorted by (id, sub).
pub(crate) fn read(map: &aya::maps::Map, name: &'static str) -> Result<Vec<Histogram>, ProbeError> {
    let map_err = |source| ProbeError::Map { map: name, source };
    let entries: Vec<(HistKey, u64)> = match map {
        aya::maps::Map::PerCpuHashMap(_) => {
            // Per-CPU buckets carry their own sums: the sum goes in the sum
            // slot, as the shared maps keep it.
            let hist: aya::maps::PerCpuHashMap<&MapData, HistKey, HistValue> =
                aya::maps::PerCpuHashMap::try_from(map).map_err(map_err)?;
            let mut v = Vec::new();
            for item in hist.iter() {
                let (key, values) = item.map_err(map_err)?;
                let (count, sum) = values
                    .iter()
                    .fold((0u64, 0u64), |(c, s), x| (c.saturating_add(x.count), s.saturating_add(x.sum_ns)));
                v.push((key, count));
                v.push((HistKey { slot: HIST_SLOTS as u32, ..key }, sum));
            }
            v
        }
        _ => {
            let hist: BpfHashMap<&MapData, HistKey, u64> = BpfHashMap::try_from(map).map_err(map_err)?;
            hist.iter().collect::<Result<Vec<_>, _>>().map_err(map_err)?
        }
    };
    let mut out: BTreeMap<(u64, u32), Histogram> = BTreeMap::new();
    for (key, value) in entries {
        let h = out.entry((key.id, key.sub)).or_insert_with(|| Histogram::new(key.id, key.sub));
        match key.slot as usize {
            s if s < HIST_SLOTS => h.counts[s] = h.counts[s].saturating_add(value),
            s if s == HIST_SLOTS => h.sum_ns = h.sum_ns.saturating_add(value),
            _ => {}
        }
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_quantiles_and_intervals() {
        assert_eq!(Histogram::bounds_us(0), (0, 1));
        assert_eq!(Histogram::bounds_us(1), (2, 3));
        assert_eq!(Histogram::bounds_us(10), (1024, 2047));
        let mut h = Histogram::new(0, 0);
        h.counts[3] = 90;
        h.counts[10] = 10;
        h.sum_ns = 1000;
        assert_eq!(h.count(), 100);
        assert_eq!(h.used(), Some((3, 10)));
        assert_eq!(h.quantile_us(0.5), Some(15));
        assert_eq!(h.quantile_us(0.95), Some(2047));
        let mut later = h.clone();
        later.counts[3] = 95;
        later.sum_ns = 1500;
        let d = later.since(&h);
        assert_eq!(d.count(), 5);
        assert_eq!(d.sum_ns, 500);
        assert_eq!(Histogram::new(1, 0).quantile_us(0.5), None);
    }
}
