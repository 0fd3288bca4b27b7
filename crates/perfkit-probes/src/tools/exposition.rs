//! The tools' histograms and counters in the Prometheus text exposition
//! format: histograms as `_bucket{le=...}`, `_sum` and `_count` in
//! seconds, so that `histogram_quantile()` works. Pure formatting: the
//! caller reads the tools and serves the text.

use std::fmt::Write;

use super::Histogram;

/// Escapes a label value (backslash, quote, newline).
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The log2 buckets every exported histogram has, from the first scrape:
/// upper bounds 2 µs to 2^32 µs (about 72 minutes); longer values count
/// in `+Inf` only. A fixed set, so that no `le` series appears mid-window
/// (which breaks `rate()` and `histogram_quantile()` over it).
pub const EXPORTED_BUCKETS: usize = 32;

/// Writes one histogram (microsecond log2 buckets) as a Prometheus
/// histogram in seconds, with `labels` (`disk="vda"`, or empty): always
/// the same [`EXPORTED_BUCKETS`] buckets, then `+Inf`.
pub fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (i, c) in h.counts.iter().enumerate().take(EXPORTED_BUCKETS) {
        cumulative = cumulative.saturating_add(*c);
        // Bucket i holds [2^i, 2^(i+1)) µs: its upper bound in seconds.
        let le = (1u64 << (i + 1)) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count());
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_in_seconds() {
        let mut h = Histogram::new(0, 0);
        h.counts[0] = 1;
        h.counts[2] = 3;
        h.sum_ns = 9_000;
        let mut out = String::new();
        histogram(&mut out, "x_seconds", "disk=\"vda\"", &h);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "x_seconds_bucket{disk=\"vda\",le=\"0.000002\"} 1");
        assert_eq!(lines[2], "x_seconds_bucket{disk=\"vda\",le=\"0.000008\"} 4");
        assert_eq!(lines[EXPORTED_BUCKETS + 1], "x_seconds_sum{disk=\"vda\"} 0.000009");
        assert_eq!(lines[EXPORTED_BUCKETS + 2], "x_seconds_count{disk=\"vda\"} 4");
        assert_eq!(lines[EXPORTED_BUCKETS], "x_seconds_bucket{disk=\"vda\",le=\"+Inf\"} 4");
        // An empty histogram has every bucket too, the same as a full one.
        let mut out = String::new();
        histogram(&mut out, "y", "", &Histogram::new(0, 0));
        let les = |text: &str| -> Vec<String> {
            text.lines().filter(|l| l.contains("_bucket")).map(|l| l.split("le=").nth(1).unwrap().to_owned()).collect()
        };
        let mut full = Histogram::new(0, 0);
        full.counts[40] = 1;
        let mut out_full = String::new();
        histogram(&mut out_full, "y", "", &full);
        assert_eq!(
            les(&out).iter().map(|l| l.split('}').next().unwrap()).collect::<Vec<_>>(),
            les(&out_full).iter().map(|l| l.split('}').next().unwrap()).collect::<Vec<_>>()
        );
        assert_eq!(les(&out).len(), EXPORTED_BUCKETS + 1);
        assert!(out.starts_with("y_bucket{le=\"0.000002\"} 0\n"), "{out}");
        assert!(out.ends_with("y_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"), "{out}");
        // A value past the last bound counts in +Inf only.
        assert!(out_full.contains("le=\"4294.967296\"} 0\ny_bucket{le=\"+Inf\"} 1"), "{out_full}");
        assert_eq!(label_value("a\"b\\c"), "a\\\"b\\\\c");
    }
}
