//! log2 latency histograms as the kernel side keeps them.

use std::collections::BTreeMap;

use aya::maps::{HashMap as BpfHashMap, MapData};
use perfkit_probes_common::tools::{HIST_SLOTS, HistKey, HistValue};

use crate::ProbeError;

/// One log2 histogram of latencies: bucket `i` counts values of
/// `[2^i, 2^(i+1))` microseconds (bucket 0 also counts values under 1 µs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Histogram {
    /// What it is per (a PID, a cgroup id, a device number...), or 0.
    pub id: u64,
    /// A second split (an operation), or 0.
    pub sub: u32,
    /// Counts by log2 slot of microseconds.
    #[serde(serialize_with = "counts_as_list")]
    pub counts: [u64; HIST_SLOTS],
    /// Sum of the values, in nanoseconds.
    pub sum_ns: u64,
}

fn counts_as_list<S: serde::Serializer>(counts: &[u64; HIST_SLOTS], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(counts.iter())
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

    /// Adds another histogram's counts and sum to this one (two CPUs, two
    /// runs, or the per-PID histograms of one cgroup). `id` and `sub` stay
    /// this histogram's.
    pub fn merge(&mut self, other: &Histogram) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c = c.saturating_add(*o);
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The same values divided by `scale` (1000 turns microsecond buckets
    /// into millisecond ones, as bcc's `-m` does): bucket `i` moves down
    /// by the number of bits of `scale - 1` (10 for 1000, since bcc divides
    /// each value by 1000 before taking its log2 and 1000 rounds up to
    /// 1024). The sum is kept in nanoseconds, undivided. A scale of 0 or 1
    /// returns a copy.
    pub fn rescaled(&self, scale: u64) -> Histogram {
        if scale <= 1 {
            return self.clone();
        }
        let shift = 64 - (scale - 1).leading_zeros() as usize;
        let mut out = Histogram { counts: [0; HIST_SLOTS], ..self.clone() };
        for (i, &c) in self.counts.iter().enumerate() {
            let to = i.saturating_sub(shift);
            out.counts[to] = out.counts[to].saturating_add(c);
        }
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

    #[test]
    fn merge_adds_and_rescale_moves_buckets_down() {
        let mut a = Histogram::new(7, 1);
        a.counts[13] = 5; // 8192..16383 us: 8..15 ms
        a.sum_ns = 50_000_000;
        let mut b = Histogram::new(8, 2);
        b.counts[13] = 1;
        b.counts[2] = 4;
        b.sum_ns = 10_000_016;
        a.merge(&b);
        assert_eq!((a.id, a.sub), (7, 1));
        assert_eq!(a.counts[13], 6);
        assert_eq!(a.counts[2], 4);
        assert_eq!(a.sum_ns, 60_000_016);
        let ms = a.rescaled(1000);
        assert_eq!(ms.counts[3], 6);
        assert_eq!(ms.counts[0], 4, "values under a millisecond fall in the first bucket");
        assert_eq!(ms.count(), a.count());
        assert_eq!(ms.sum_ns, a.sum_ns);
        assert_eq!(a.rescaled(1), a);
        a.counts[HIST_SLOTS - 1] = u64::MAX;
        a.merge(&a.clone());
        assert_eq!(a.counts[HIST_SLOTS - 1], u64::MAX, "counts saturate");
    }
}
