//! The Prometheus text exposition format (version 0.0.4), written in one
//! place: every perfkit exporter (procstat's system metrics, the eBPF
//! probes' histograms and counters, `perfkit serve`, and in-house tools
//! embedding `perfkit-exporter`) hands its families, labels and values to
//! a [`Writer`], which alone knows the text.
//!
//! - A family's `# HELP` and `# TYPE` lines appear once, before all its
//!   samples, however many times (or by how many collectors) it is
//!   written; families keep the order in which they were first written.
//! - Label values are escaped by one function ([`escape_label_value`]).
//! - A histogram family declares its bucket bounds: each of its series has
//!   every bucket, then `+Inf`, `_sum` and `_count`, from the first
//!   scrape, so no `le` series appears in the middle of a window (which
//!   breaks `rate()` and `histogram_quantile()` over it).
//! - [`Collector`]: what an exporter asks at each scrape.
//!
//! ```
//! use perfkit_exposition::Writer;
//! let mut out = Writer::new();
//! out.counter("team_jobs_total", "Jobs run, per queue.").sample(&[("queue", "mail")], 7u64);
//! out.histogram("team_job_seconds", "Job run time.", &[0.001, 0.01]).observe(&[], &[1, 2], 4, 0.5);
//! let text = out.finish();
//! assert_eq!(
//!     text,
//!     "# HELP team_jobs_total Jobs run, per queue.\n# TYPE team_jobs_total counter\n\
//!      team_jobs_total{queue=\"mail\"} 7\n# HELP team_job_seconds Job run time.\n\
//!      ## TYPE team_job_seconds histogram\n\
//!      team_job_seconds_bucket{le=\"0.001\"} 1\nteam_job_seconds_bucket{le=\"0.01\"} 3\n\
//!      team_job_seconds_bucket{le=\"+Inf\"} 4\nteam_job_seconds_sum 0.5\nteam_job_seconds_count 4\n"
//! );
//! ```

use std::{borrow::Cow, collections::HashMap, fmt, fmt::Write as _};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An error a [`Collector`] returns: the scrape goes on without its
/// families, and the exporter reports it as failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A source of metrics, asked at each scrape. Collection may block (it
/// reads files or BPF maps): exporters call it off their async threads.
pub trait Collector: Send + Sync {
    /// A short name for the exporter's own metrics about the scrape
    /// (`collector="procfs"`).
    fn name(&self) -> &str;

    /// Writes this collector's families into `out`. On an error, what it
    /// wrote is discarded by the exporter.
    fn collect(&self, out: &mut Writer) -> Result<(), Error>;
}

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart); names end in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value: an integer (written exactly, however large) or a
/// floating-point number (`NaN`, `+Inf` and `-Inf` as Prometheus reads
/// them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// Anything else.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(u64::from(v))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => f.write_str("NaN"),
            Value::Float(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::Float(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

/// Escapes a label value as the text format asks: backslash, double
/// quote and line feed.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut s = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    Cow::Owned(s)
}

/// Escapes `# HELP` text: backslash and line feed.
fn escape_help(help: &str) -> Cow<'_, str> {
    if !help.contains(['\\', '\n']) {
        return Cow::Borrowed(help);
    }
    Cow::Owned(help.replace('\\', "\\\\").replace('\n', "\\n"))
}

/// Whether `name` is a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`;
/// label names take no colon, which callers check apart).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

struct FamilyBuf {
    name: String,
    kind: Kind,
    help: String,
    /// A histogram's upper bounds (without `+Inf`).
    bounds: Vec<f64>,
    /// The sample lines written so far.
    body: String,
}

/// Metric families being written; [`Writer::finish`] gives the text.
#[derive(Default)]
pub struct Writer {
    families: Vec<FamilyBuf>,
    index: HashMap<String, usize>,
}

impl Writer {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// The family `name`, declared on first use; later uses add samples
    /// under the first declaration (a name declared again with another
    /// type or other bounds keeps the first).
    fn family(&mut self, name: &str, kind: Kind, help: &str, bounds: &[f64]) -> &mut FamilyBuf {
        debug_assert!(valid_name(name), "invalid metric name {name:?}");
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(FamilyBuf {
                    name: name.to_owned(),
                    kind,
                    help: help.to_owned(),
                    bounds: bounds.to_vec(),
                    body: String::new(),
                });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        let f = &mut self.families[i];
        debug_assert_eq!(f.kind, kind, "{name} declared as {:?} and {kind:?}", f.kind);
        f
    }

    /// A counter family.
    pub fn counter(&mut self, name: &str, help: &str) -> Family<'_> {
        Family { f: self.family(name, Kind::Counter, help, &[]) }
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str) -> Family<'_> {
        Family { f: self.family(name, Kind::Gauge, help, &[]) }
    }

    /// A histogram family whose series all have the buckets `bounds`
    /// (upper bounds, increasing, without `+Inf`).
    pub fn histogram(&mut self, name: &str, help: &str, bounds: &[f64]) -> HistogramFamily<'_> {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{name}: bounds must increase");
        HistogramFamily { f: self.family(name, Kind::Histogram, help, bounds) }
    }

    /// Adds `other`'s families: samples of a family both have go under
    /// this writer's declaration, in one block.
    pub fn merge(&mut self, other: Writer) {
        for f in other.families {
            let bounds = f.bounds.clone();
            let mine = self.family(&f.name, f.kind, &f.help, &bounds);
            mine.body.push_str(&f.body);
        }
    }

    /// Whether nothing has been declared.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The exposition: each family's `# HELP` and `# TYPE`, then its
    /// samples, in the order families were first written.
    pub fn finish(self) -> String {
        let mut out = String::with_capacity(self.families.iter().map(|f| f.body.len() + f.help.len() + 64).sum());
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            out.push_str(&f.body);
        }
        out
    }
}

/// Writes `name{labels[,extra]} value\n`.
fn line(body: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], extra: Option<(&str, &str)>, v: Value) {
    body.push_str(name);
    body.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        body.push('{');
        for (i, (k, val)) in labels.iter().chain(extra.as_ref()).enumerate() {
            debug_assert!(valid_name(k) && !k.contains(':'), "invalid label name {k:?}");
            if i > 0 {
                body.push(',');
            }
            let _ = write!(body, "{k}=\"{}\"", escape_label_value(val));
        }
        body.push('}');
    }
    let _ = writeln!(body, " {v}");
}

/// A counter or gauge family.
pub struct Family<'a> {
    f: &'a mut FamilyBuf,
}

impl Family<'_> {
    /// One sample with `labels` (name, value; values are escaped here).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        line(&mut self.f.body, &self.f.name, "", labels, None, value.into());
        self
    }
}

/// A histogram family.
pub struct HistogramFamily<'a> {
    f: &'a mut FamilyBuf,
}

impl HistogramFamily<'_> {
    /// One series: `per_bucket[i]` observations fell in bucket `i` (above
    /// the previous bound, up to `bounds[i]`); `count` observations in
    /// all (those above the last bound count in `+Inf` only), summing to
    /// `sum`. Every bucket of the family is written, in cumulative form;
    /// missing counts are zero, extra ones are ignored (they count in
    /// `+Inf` through `count`).
    pub fn observe(&mut self, labels: &[(&str, &str)], per_bucket: &[u64], count: u64, sum: f64) -> &mut Self {
        let f = &mut *self.f;
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (i, bound) in f.bounds.iter().enumerate() {
            cumulative = cumulative.saturating_add(per_bucket.get(i).copied().unwrap_or(0));
            le.clear();
            let _ = write!(le, "{}", Value::Float(*bound));
            line(&mut f.body, &f.name, "_bucket", labels, Some(("le", &le)), Value::Int(cumulative));
        }
        let count = count.max(cumulative);
        line(&mut f.body, &f.name, "_bucket", labels, Some(("le", "+Inf")), Value::Int(count));
        line(&mut f.body, &f.name, "_sum", labels, None, Value::Float(sum));
        line(&mut f.body, &f.name, "_count", labels, None, Value::Int(count));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_type_once_per_family_across_writers() {
        let mut a = Writer::new();
        a.gauge("x", "An x.").sample(&[("k", "1")], 1u64);
        a.counter("y_total", "A y.").sample(&[], 2u64);
        a.gauge("x", "An x.").sample(&[("k", "2")], 2u64);
        let mut b = Writer::new();
        b.gauge("x", "An x.").sample(&[("k", "3")], 3u64);
        b.gauge("z", "A z.");
        a.merge(b);
        assert_eq!(
            a.finish(),
            "# HELP x An x.\n# TYPE x gauge\nx{k=\"1\"} 1\nx{k=\"2\"} 2\nx{k=\"3\"} 3\n\
             # HELP y_total A y.\n# TYPE y_total counter\ny_total 2\n\
             # HELP z A z.\n# TYPE z gauge\n"
        );
    }

    #[test]
    fn labels_help_and_values_are_escaped_and_exact() {
        let mut w = Writer::new();
        w.gauge("g", "back\\slash\nnewline")
            .sample(&[("comm", "we\"ird\\name\n")], f64::NAN)
            .sample(&[("a", "b"), ("c", "d")], f64::INFINITY);
        w.gauge("g", "").sample(&[], f64::NEG_INFINITY).sample(&[], u64::MAX).sample(&[], 0.000_002).sample(&[], 2.0);
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP g back\\\\slash\\nnewline\n# TYPE g gauge\ng{comm=\"we\\\"ird\\\\name\\n\"} NaN\n\
             g{a=\"b\",c=\"d\"} +Inf\ng -Inf\ng 18446744073709551615\ng 0.000002\ng 2\n"
        );
        assert_eq!(escape_label_value("plain"), Cow::Borrowed("plain"));
    }

    #[test]
    fn histograms_have_every_bucket_whatever_their_counts() {
        let bounds = [0.5, 1.0, 2.0];
        let mut w = Writer::new();
        let mut h = w.histogram("h_seconds", "H.", &bounds);
        h.observe(&[("disk", "vda")], &[], 0, 0.0);
        // Bucket 0 has 1, bucket 2 has 3, one more above the last bound,
        // and counts past the bounds are ignored (they are in `count`).
        h.observe(&[("disk", "vdb")], &[1, 0, 3, 9], 5, 7.5);
        let text = w.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[2..],
            [
                "h_seconds_bucket{disk=\"vda\",le=\"0.5\"} 0",
                "h_seconds_bucket{disk=\"vda\",le=\"1\"} 0",
                "h_seconds_bucket{disk=\"vda\",le=\"2\"} 0",
                "h_seconds_bucket{disk=\"vda\",le=\"+Inf\"} 0",
                "h_seconds_sum{disk=\"vda\"} 0",
                "h_seconds_count{disk=\"vda\"} 0",
                "h_seconds_bucket{disk=\"vdb\",le=\"0.5\"} 1",
                "h_seconds_bucket{disk=\"vdb\",le=\"1\"} 1",
                "h_seconds_bucket{disk=\"vdb\",le=\"2\"} 4",
                "h_seconds_bucket{disk=\"vdb\",le=\"+Inf\"} 5",
                "h_seconds_sum{disk=\"vdb\"} 7.5",
                "h_seconds_count{disk=\"vdb\"} 5",
            ]
        );
        // A count below the buckets' total is raised to it: +Inf is never
        // below a finite bucket.
        let mut w = Writer::new();
        w.histogram("h", "H.", &[1.0]).observe(&[], &[3], 1, 1.0);
        assert!(w.finish().contains("h_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n"));
    }
}
